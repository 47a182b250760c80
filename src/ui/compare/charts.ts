// The Compare view's charts (uPlot, as the page's loss chart): the loss curves of every compared run on
// one chart; DDP against DiLoCo, the loss against tokens and against wall time (measured, and as the cost
// model predicts it over classroom Wi-Fi, dashed); and the what-if memory per worker against the number
// of workers, with the budget.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { loss, tick } from '../format';
import { STRATEGY_LABELS, WHATIF_KEYS, type StrategyKey } from './settings';

const FONT = '14px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const AXIS: uPlot.Axis = { font: FONT, labelFont: FONT, stroke: '#475569', grid: { stroke: '#e8ebf0', width: 1 }, ticks: { stroke: '#e8ebf0', width: 1 } };

/** One colour and line style per strategy: identical curves stay visible on top of each other. */
export const STRATEGY_STYLE: Record<StrategyKey, { color: string; width: number; dash?: number[] }> = {
  single: { color: 'rgba(17, 24, 39, 0.22)', width: 9 },
  ddp: { color: '#2563eb', width: 2.5 },
  'fsdp-full': { color: '#ea580c', width: 2.5, dash: [10, 7] },
  'fsdp-noprefetch': { color: '#a16207', width: 2.5, dash: [4, 4] },
  'fsdp-grad_op': { color: '#16a34a', width: 2.5, dash: [2, 6] },
  tp: { color: '#9333ea', width: 2.5, dash: [6, 4] },
  'pp-1f1b': { color: '#0891b2', width: 2.5, dash: [14, 5, 2, 5] },
  'pp-gpipe': { color: '#be123c', width: 2.5, dash: [3, 9] },
  diloco: { color: '#0d9488', width: 2.5 },
};
export const STRATEGY_SWATCH: Record<StrategyKey, string> = {
  single: '#6b7280', ddp: '#2563eb', 'fsdp-full': '#ea580c', 'fsdp-noprefetch': '#a16207', 'fsdp-grad_op': '#16a34a', tp: '#9333ea', 'pp-1f1b': '#0891b2', 'pp-gpipe': '#be123c', diloco: '#0d9488',
};

function size(container: HTMLElement, height: number) {
  return { width: Math.max(300, container.clientWidth), height };
}

/** A chart that fits its container's width, rebuilt when its series change. */
abstract class Chart {
  protected plot: uPlot | null = null;
  constructor(protected readonly container: HTMLElement, protected readonly height: number) {
    // Follows the container's width, in the next frame (resizing inside the callback would loop).
    new ResizeObserver(() => requestAnimationFrame(() => {
      if (this.plot && this.plot.width !== size(this.container, this.height).width) this.plot.setSize(size(this.container, this.height));
    })).observe(container);
  }

  protected build(opts: Omit<uPlot.Options, 'width' | 'height'>, data: uPlot.AlignedData): void {
    this.plot?.destroy();
    this.plot = new uPlot({ ...size(this.container, this.height), ...opts }, data, this.container);
  }
}

export class LossOverlay extends Chart {
  /** runs: each compared run's losses (losses[i] is the loss of step i + 1). */
  set(runs: { key: StrategyKey; losses: number[] }[]): void {
    if (!runs.length) {
      this.plot?.destroy();
      this.plot = null;
      return;
    }
    const steps = Array.from({ length: Math.max(...runs.map((r) => r.losses.length)) }, (_, i) => i + 1);
    this.build(
      {
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false } },
        axes: [
          { ...AXIS, label: 'step', labelSize: 26, values: (_u, t) => t.map((v) => (Number.isInteger(v) ? String(v) : '')) },
          { ...AXIS, label: 'loss', labelSize: 26, size: 56, values: (_u, t) => t.map(tick) },
        ],
        series: [
          { label: 'step', value: (_u, v) => (v == null ? '–' : String(v)) },
          ...runs.map((r) => ({
            label: STRATEGY_LABELS[r.key],
            stroke: STRATEGY_STYLE[r.key].color,
            width: STRATEGY_STYLE[r.key].width,
            dash: STRATEGY_STYLE[r.key].dash,
            points: { show: false },
            value: (_u: uPlot, v: number | null) => loss(v),
          })),
        ],
      },
      [steps, ...runs.map((r) => steps.map((_, i) => r.losses[i] ?? null))],
    );
  }
}

/** One curve of a loss chart against tokens or wall time: x and loss per step, in order. */
export interface XYSeries {
  key: StrategyKey;
  label: string;
  x: number[];
  y: number[];
  dashed?: boolean; // a what-if (predicted), not a measurement
}

/**
 * Loss against a quantity every run has per step (tokens seen, seconds of wall time): the runs' x values
 * differ, so the series are merged onto one sorted x axis with gaps (uPlot's aligned data), and joined.
 */
export class LossAgainst extends Chart {
  /** The series drawn (for tests). */
  shown: XYSeries[] = [];

  constructor(container: HTMLElement, height: number, private readonly xLabel: string, private readonly xValue: (v: number) => string) {
    super(container, height);
  }

  set(series: XYSeries[]): void {
    this.shown = series;
    if (!series.length) {
      this.plot?.destroy();
      this.plot = null;
      return;
    }
    const xs = [...new Set(series.flatMap((s) => s.x))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const columns = series.map((s) => {
      const col: (number | null)[] = xs.map(() => null);
      s.x.forEach((x, i) => (col[at.get(x)!] = s.y[i]));
      return col;
    });
    this.build(
      {
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false } },
        axes: [
          { ...AXIS, label: this.xLabel, labelSize: 26, values: (_u, t) => t.map(this.xValue) },
          { ...AXIS, label: 'loss', labelSize: 26, size: 56, values: (_u, t) => t.map(tick) },
        ],
        series: [
          { label: this.xLabel, value: (_u, v) => (v == null ? '–' : this.xValue(v)) },
          ...series.map((r) => ({
            label: r.label,
            stroke: STRATEGY_SWATCH[r.key],
            width: 2.5,
            dash: r.dashed ? [6, 5] : undefined,
            points: { show: false },
            spanGaps: true,
            value: (_u: uPlot, v: number | null) => loss(v),
          })),
        ],
      },
      [xs, ...columns],
    );
  }
}

const GB = 2 ** 30;

/**
 * The y range of the memory chart: from a little under the smallest need to ten times the larger of the
 * budget and DDP's need (which does not change with the workers), so where the budget crosses the
 * strategies stays readable; a line beyond it is clipped at the top.
 */
export function memoryRange(bytes: Partial<Record<StrategyKey, (number | null)[]>>, budget: number): [number, number] {
  const all = Object.values(bytes).flatMap((xs) => (xs ?? []).filter((x): x is number => x !== null && x > 0));
  const ddp = (bytes.ddp ?? []).find((x): x is number => x !== null) ?? budget;
  const min = Math.min(budget, ...all);
  const max = Math.max(budget, ...all);
  return [min / 1.5, Math.min(max * 1.2, Math.max(budget, ddp) * 10)];
}

export class MemoryChart extends Chart {
  /** The y range drawn (bytes), for tests. */
  range: { lo: number; hi: number } | null = null;

  /**
   * Memory per worker (bytes) of each strategy for workers[i] workers (null where that many cannot split
   * the model that way: TP's divisors of n_head, PP's at most n_layer stages), and the budget line.
   */
  set(workers: number[], bytes: Record<StrategyKey, (number | null)[]>, budget: number, at: number): void {
    const marker: uPlot.Series = { label: 'budget', stroke: '#b91c1c', width: 2, dash: [6, 4], points: { show: false }, value: (_u, v) => (v == null ? '–' : gb(v)) };
    const [lo, hi] = memoryRange(bytes, budget);
    this.range = { lo, hi };
    this.build(
      {
        cursor: { drag: { x: false, y: false } },
        // y: the region where the budget and the strategies cross, not single's line to the top
        // (it trains the whole global batch, whose activations grow with the workers): lines beyond are clipped
        scales: { x: { time: false, distr: 3, log: 2 }, y: { distr: 3, log: 10, range: () => [lo, hi] } },
        axes: [
          { ...AXIS, label: 'workers', labelSize: 26, values: (_u, t) => t.map((v) => String(Math.round(v))) },
          { ...AXIS, label: 'memory per worker', labelSize: 26, size: 70, splits: decades, values: (_u, t) => t.map(gb) },
        ],
        series: [
          { label: 'workers', value: (_u, v) => (v == null ? '–' : String(v)) },
          ...WHATIF_KEYS.map((k) => ({
            label: STRATEGY_LABELS[k],
            stroke: STRATEGY_SWATCH[k],
            width: k === 'single' ? 2 : 2.5,
            dash: STRATEGY_STYLE[k].dash,
            points: { show: false },
            spanGaps: true, // TP exists only at the divisors of n_head: join them
            value: (_u: uPlot, v: number | null) => (v == null ? '–' : gb(v)),
          })),
          marker,
        ],
        hooks: {
          // the what-if's number of workers, as a vertical line
          draw: [(u) => {
            const X = u.valToPos(at, 'x', true);
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = 'rgba(67, 56, 202, 0.5)';
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(X, u.bbox.top);
            ctx.lineTo(X, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.restore();
          }],
        },
      },
      [workers, ...WHATIF_KEYS.map((k) => bytes[k]), workers.map(() => budget)],
    );
  }
}

/** Log-axis ticks at 1, 10 and 100 KB, MB, GB, TB only (uPlot's default labels 2..9 of every decade too). */
function decades(_u: uPlot, _axis: number, min: number, max: number): number[] {
  const out: number[] = [];
  for (const unit of [2 ** 10, 2 ** 20, 2 ** 30, 2 ** 40]) for (const m of [1, 10, 100]) if (unit * m >= min && unit * m <= max) out.push(unit * m);
  return out;
}

function gb(b: number): string {
  if (b >= 2 ** 40) return `${+(b / 2 ** 40).toPrecision(3)} TB`;
  if (b >= GB) return `${+(b / GB).toPrecision(3)} GB`;
  if (b >= 2 ** 20) return `${+(b / 2 ** 20).toPrecision(3)} MB`;
  return `${+(b / 2 ** 10).toPrecision(3)} KB`;
}
