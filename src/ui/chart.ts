// The live loss chart: train loss per step (raw and smoothed) and validation loss at eval steps, and the
// gradient norm per step (before clipping) on a second axis at the right, from 0. A step that was
// trained again after a worker failed and the run recovered is marked with a ring on its loss.
// Append-only arrays; at most one redraw per animation frame however fast events arrive.
// One chart for the page's lifetime: a new run calls reset(), never builds a second uPlot.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { loss, small, tick } from './format';

const SMOOTHING = 0.9; // exponential moving average of the per-step loss, debiased as TensorBoard does
const STEP_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000, 100000];
const FONT = '14px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
const GRAD_NORM_HELP = 'Size of the gradient before clipping; clipping scales it down to grad_clip when larger';
const RECOVERED_HELP = 'A worker failed during this step: the run aborted it on every worker, recovered and trained it again';

export class LossChart {
  private readonly plot: uPlot;
  private readonly resizeObserver: ResizeObserver;
  private steps: number[] = [];
  private raw: (number | null)[] = [];
  private smooth: (number | null)[] = [];
  private val: (number | null)[] = [];
  private gradNorm: (number | null)[] = [];
  private recovered: (number | null)[] = []; // the loss of a recovered step, null elsewhere
  private ema = 0;
  private emaSteps = 0;
  private frame = 0;
  private recoveredLegend: HTMLElement | null = null;

  constructor(private readonly container: HTMLElement, private readonly empty: HTMLElement) {
    const axis: uPlot.Axis = { font: FONT, labelFont: FONT, stroke: '#475569', grid: { stroke: '#e8ebf0', width: 1 }, ticks: { stroke: '#e8ebf0', width: 1 } };
    this.plot = new uPlot(
      {
        width: Math.max(300, container.clientWidth),
        height: this.height(),
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false }, gn: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        legend: { live: true },
        axes: [
          { ...axis, label: 'step', labelSize: 26, incrs: STEP_INCRS, values: (_u, ticks) => ticks.map((t) => t.toLocaleString('en-US')) },
          { ...axis, label: 'loss', labelSize: 26, size: 56, values: (_u, ticks) => ticks.map(tick) },
          { ...axis, scale: 'gn', side: 1, label: 'grad norm', labelSize: 26, size: 56, grid: { show: false }, values: (_u, ticks) => ticks.map(tick) },
        ],
        series: [
          { label: 'step', value: (_u, v) => (v == null ? '–' : String(v)) },
          { label: 'train (step)', stroke: 'rgba(37, 99, 235, 0.28)', width: 1, points: { show: false }, value: fmt },
          { label: 'train (smoothed)', stroke: '#2563eb', width: 2.5, points: { show: false }, value: fmt },
          { label: 'val', stroke: '#ea580c', width: 2, spanGaps: true, points: { show: true, size: 9, fill: '#ea580c', stroke: '#ea580c' }, value: fmt },
          { label: 'grad norm', scale: 'gn', stroke: 'rgba(22, 163, 74, 0.8)', width: 1.25, points: { show: false }, value: (_u, v) => (v == null ? '–' : small(v)) },
          { label: 'recovered', stroke: '#111827', width: 0, paths: () => null, points: { show: true, size: 15, width: 2.5, stroke: '#111827', fill: 'rgba(255, 255, 255, 0)' }, value: (_u, v) => (v == null ? '–' : 'yes') },
        ],
      },
      this.data(),
      container,
    );
    const gradNormLegend = this.plot.root.querySelectorAll<HTMLElement>('.u-legend .u-series')[4];
    if (gradNormLegend) gradNormLegend.title = GRAD_NORM_HELP;
    this.recoveredLegend = this.plot.root.querySelectorAll<HTMLElement>('.u-legend .u-series')[5] ?? null;
    if (this.recoveredLegend) this.recoveredLegend.title = RECOVERED_HELP;
    this.showRecoveredLegend(false);
    this.resizeObserver = new ResizeObserver(() => this.plot.setSize({ width: Math.max(300, this.container.clientWidth), height: this.height() }));
    this.resizeObserver.observe(container);
  }

  private height(): number {
    return window.innerWidth < 700 ? 260 : 340;
  }

  private data(): uPlot.AlignedData {
    return [this.steps, this.raw, this.smooth, this.val, this.gradNorm, this.recovered];
  }

  /** Clears the chart for a new run. */
  reset(): void {
    this.steps = [];
    this.raw = [];
    this.smooth = [];
    this.val = [];
    this.gradNorm = [];
    this.recovered = [];
    this.showRecoveredLegend(false);
    this.ema = 0;
    this.emaSteps = 0;
    this.schedule();
  }

  /** A run's history (from a checkpoint, which keeps no grad norms): losses[i] is the loss of step i + 1. */
  setHistory(losses: number[], valLosses: [number, number][]): void {
    this.reset();
    losses.forEach((l, i) => this.addStep(i + 1, l));
    for (const [step, v] of valLosses) this.addVal(step, v);
  }

  addStep(step: number, loss: number, gradNorm: number | null = null): void {
    // A step already on the chart: a recovery went back to an older checkpoint and trains it again.
    const again = this.steps.length ? step - this.steps[0] : -1;
    if (again >= 0 && again < this.steps.length) this.truncate(again);
    this.ema = SMOOTHING * this.ema + (1 - SMOOTHING) * loss;
    this.emaSteps++;
    this.steps.push(step);
    this.raw.push(loss);
    this.smooth.push(this.ema / (1 - SMOOTHING ** this.emaSteps));
    this.val.push(null);
    this.gradNorm.push(gradNorm);
    this.recovered.push(null);
    this.schedule();
  }

  /** Drops the points from index i on, and the smoothing state they made. */
  private truncate(i: number): void {
    for (const a of [this.steps, this.raw, this.smooth, this.val, this.gradNorm, this.recovered]) a.length = i;
    this.ema = 0;
    this.emaSteps = 0;
    for (const l of this.raw) {
      if (l == null) continue;
      this.ema = SMOOTHING * this.ema + (1 - SMOOTHING) * l;
      this.emaSteps++;
    }
  }

  /** Marks a step the run trained again after recovering from a failed worker (once its loss is on the chart). */
  markRecovered(step: number): void {
    const i = this.steps.length ? step - this.steps[0] : -1;
    if (i < 0 || this.steps[i] !== step || this.raw[i] == null) return;
    this.recovered[i] = this.raw[i];
    this.showRecoveredLegend(true);
    this.schedule();
  }

  /** The legend names the recovered-step marks only once there are some. */
  private showRecoveredLegend(show: boolean): void {
    if (this.recoveredLegend) this.recoveredLegend.style.display = show ? '' : 'none';
  }

  addVal(step: number, loss: number): void {
    const i = this.steps.length ? step - this.steps[0] : -1;
    if (i >= 0 && this.steps[i] === step) this.val[i] = loss;
    else {
      this.steps.push(step);
      this.raw.push(null);
      this.smooth.push(null);
      this.val.push(loss);
      this.gradNorm.push(null);
      this.recovered.push(null);
    }
    this.schedule();
  }

  get points(): number {
    return this.steps.length;
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.plot.setData(this.data());
      this.empty.hidden = this.steps.length > 0;
    });
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.resizeObserver.disconnect();
    this.plot.destroy();
  }
}

function fmt(_u: uPlot, v: number | null): string {
  return loss(v);
}
