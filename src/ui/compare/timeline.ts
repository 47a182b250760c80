// The timeline (a Gantt chart) of a run's traced steps: two lanes per worker, its thread ("main":
// forward and backward per unit, the optimizer, packing for collectives, waiting) and its collectives
// ("comm": each all-gather, reduce-scatter and all-reduce from the moment it starts moving data until it
// completes). Drawn as SVG, so every block has a tooltip (its name, duration and bytes) and hovering
// shows it in the readout line; a student sees communication overlap compute, and FSDP's prefetch.

import type { TraceEvent } from '../../util/trace';
import type { RunRecord } from './runner';
import { h } from '../dom';
import * as fmt from '../format';

export interface Kind {
  id: string;
  label: string;
  color: string;
}

export const KINDS: readonly Kind[] = [
  { id: 'forward', label: 'forward', color: '#5eead4' },
  { id: 'backward', label: 'backward', color: '#0d9488' },
  { id: 'update', label: 'grad norm, optimizer', color: '#134e4a' },
  { id: 'copy', label: 'copies for collectives', color: '#c4b5fd' },
  { id: 'wait', label: 'waiting for others', color: '#f59e0b' },
  { id: 'all-gather', label: 'all-gather', color: '#3b82f6' },
  { id: 'reduce-scatter', label: 'reduce-scatter', color: '#c026d3' },
  { id: 'all-reduce', label: 'all-reduce', color: '#7c3aed' },
  { id: 'broadcast', label: 'broadcast', color: '#64748b' },
];
const KIND = new Map(KINDS.map((k) => [k.id, k]));

/** Which legend entry a trace event belongs to. */
export function kindOf(e: TraceEvent): Kind {
  if (e.cat === 'wait') return KIND.get('wait')!;
  if (e.lane === 'comm') return KIND.get(e.name.split(' ')[0]) ?? KIND.get('all-reduce')!;
  if (e.cat === 'comm') return KIND.get('copy')!;
  if (e.name.startsWith('forward') || e.name === 'head and loss') return KIND.get('forward')!;
  if (e.name.startsWith('backward')) return KIND.get('backward')!;
  return KIND.get('update')!;
}

/** A tick spacing that gives about `target` ticks over `span` ms (1, 2, 5 times a power of ten). */
export function tickStep(span: number, target = 8): number {
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** Total length of the union of intervals [start, end). */
function unionLength(iv: [number, number][]): number {
  const s = [...iv].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of s) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/**
 * How much of a worker's communication ran while it computed: the time its collectives were in flight
 * (commMs), and the part of it during compute spans (hiddenMs).
 */
export function overlapFraction(events: TraceEvent[]): { commMs: number; hiddenMs: number } {
  const comm = events.filter((e) => e.lane === 'comm').map((e) => [e.ts, e.ts + e.dur] as [number, number]);
  const compute = events.filter((e) => e.lane === 'main' && e.cat === 'compute').map((e) => [e.ts, e.ts + e.dur] as [number, number]);
  const commMs = unionLength(comm);
  // |comm ∩ compute| = |comm| + |compute| - |comm ∪ compute|
  const hiddenMs = commMs + unionLength(compute) - unionLength([...comm, ...compute]);
  return { commMs, hiddenMs: Math.max(0, hiddenMs) };
}

/** Short labels that fit in a block. */
function short(name: string): string {
  return name.replace(/^forward /, 'fwd ').replace(/^backward /, 'bwd ').replace('head and loss', 'head').replace('gradient norm', 'norm')
    .replace(/^pack bucket /, 'pack ').replace(/^unshard /, 'unshard ');
}

const SVG = 'http://www.w3.org/2000/svg';
function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (Node | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

const GUTTER = 92; // worker labels
const AXIS = 40; // step labels, then tick labels, above the lanes
const MAIN_H = 26;
const COMM_H = 16;
const GAP = 12;

export class Timeline {
  private readonly pills = h('div', { class: 'cmp-pills', role: 'group', 'aria-label': 'Steps shown' });
  private readonly canvas = h('div', { class: 'cmp-timeline', id: 'compare-timeline' });
  private readonly readout = h('p', { class: 'cmp-readout', 'aria-live': 'polite' }, 'Hover a block to see what it is.');
  private readonly overlap = h('p', { class: 'cmp-overlap muted' });
  private run: RunRecord | null = null;
  private only: number | null = null; // index of the traced step shown alone, or all
  private width = 0;

  constructor(root: HTMLElement) {
    const legend = h('div', { class: 'cmp-legend', 'aria-label': 'Colours of the timeline' },
      ...KINDS.filter((k) => k.id !== 'broadcast').map((k) => h('span', { class: 'split-value' }, h('i', { class: 'swatch', style: `--c:${k.color}` }), k.label)));
    root.append(h('div', { class: 'cmp-timeline-head' }, this.pills, legend), this.canvas, this.readout, this.overlap);
    this.canvas.addEventListener('mouseover', (e) => {
      const t = (e.target as Element).closest('[data-what]');
      if (t) this.readout.textContent = t.getAttribute('data-what');
    });
    // Redraw when the width changes, in the next frame: drawing inside the observer's callback would
    // resize what it observes (a "ResizeObserver loop" error).
    new ResizeObserver(() => requestAnimationFrame(() => {
      if (this.canvas.clientWidth !== this.width) this.draw();
    })).observe(this.canvas);
  }

  show(run: RunRecord | null): void {
    this.run = run;
    this.only = null;
    this.drawPills();
    this.draw();
  }

  private drawPills(): void {
    const t = this.run?.trace;
    if (!t) {
      this.pills.replaceChildren();
      return;
    }
    const pill = (label: string, index: number | null) => {
      const b = h('button', { type: 'button', class: 'cmp-pill', 'aria-pressed': String(this.only === index) }, label);
      b.addEventListener('click', () => {
        this.only = index;
        this.drawPills();
        this.draw();
      });
      return b;
    };
    this.pills.replaceChildren(pill(`last ${t.steps.length} steps`, null), ...t.steps.map((step, i) => pill(`step ${step}`, i)));
  }

  /** The events of the steps shown, per worker, and the time range they cover. */
  private visible(): { perWorker: TraceEvent[][]; t0: number; t1: number; starts: { step: number; ts: number }[] } | null {
    const t = this.run?.trace;
    if (!t) return null;
    const lo = this.only === null ? -Infinity : t.stepStart[this.only];
    const hi = this.only === null || this.only === t.steps.length - 1 ? Infinity : t.stepStart[this.only + 1];
    const perWorker = t.perWorker.map((events) => events.filter((e) => e.ts >= lo && e.ts < hi));
    const all = perWorker.flat();
    if (!all.length) return null;
    const t0 = Math.min(...all.map((e) => e.ts));
    const t1 = Math.max(...all.map((e) => e.ts + e.dur));
    const starts = t.steps.map((step, i) => ({ step, ts: t.stepStart[i] })).filter((x) => x.ts >= lo && x.ts < hi);
    return { perWorker, t0, t1: Math.max(t1, t0 + 1e-3), starts };
  }

  private draw(): void {
    this.width = this.canvas.clientWidth;
    const v = this.visible();
    if (!v || !this.run) {
      this.canvas.replaceChildren(h('p', { class: 'muted cmp-empty' }, 'The timeline of the last steps of the selected run appears here.'));
      this.overlap.textContent = '';
      return;
    }
    const W = Math.max(480, this.width);
    const plot = W - GUTTER - 8;
    const x = (t: number) => GUTTER + ((t - v.t0) / (v.t1 - v.t0)) * plot;
    const laneY = (rank: number) => AXIS + rank * (MAIN_H + COMM_H + GAP);
    const H = laneY(v.perWorker.length) + 4;
    const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Timeline of ${this.run.label}: ${v.perWorker.length} workers` });

    // time axis
    const step = tickStep(v.t1 - v.t0);
    for (let t = 0; t <= v.t1 - v.t0 + 1e-9; t += step) {
      const X = x(v.t0 + t);
      svg.append(
        s('line', { x1: X, x2: X, y1: AXIS - 4, y2: H, class: 'cmp-grid' }),
        s('text', { x: X, y: AXIS - 8, class: 'cmp-tick', 'text-anchor': t === 0 ? 'start' : 'middle' }, `${+t.toFixed(3)} ms`),
      );
    }
    for (const st of v.starts) {
      const X = x(st.ts);
      svg.append(s('line', { x1: X, x2: X, y1: 2, y2: H, class: 'cmp-step-line' }), s('text', { x: X + 5, y: 12, class: 'cmp-step-label' }, `step ${st.step}`));
    }

    v.perWorker.forEach((events, rank) => {
      const y = laneY(rank);
      svg.append(
        s('text', { x: 0, y: y + MAIN_H / 2 + 5, class: 'cmp-lane-label' }, `worker ${rank}`),
        s('text', { x: 0, y: y + MAIN_H + COMM_H / 2 + 4, class: 'cmp-lane-sub' }, 'collectives'),
        s('rect', { x: GUTTER, y, width: plot, height: MAIN_H, class: 'cmp-lane' }),
        s('rect', { x: GUTTER, y: y + MAIN_H + 2, width: plot, height: COMM_H - 2, class: 'cmp-lane' }),
      );
      // waits first: work done while waiting (a gathered unit unpacked as it arrives) is drawn over them
      const ordered = [...events].sort((a, b) => Number(b.cat === 'wait') - Number(a.cat === 'wait'));
      for (const e of ordered) {
        const k = kindOf(e);
        const comm = e.lane === 'comm';
        const X = x(e.ts);
        const w = Math.max(0.75, x(e.ts + e.dur) - X);
        const top = comm ? y + MAIN_H + 2 : y;
        const height = comm ? COMM_H - 2 : MAIN_H;
        const what = `worker ${rank} · ${e.name} · ${e.dur.toFixed(2)} ms${e.bytes ? ` · ${fmt.bytes(e.bytes)} sent` : ''} · at ${(e.ts - v.t0).toFixed(2)} ms`;
        const g = s('g', { 'data-what': what, 'data-kind': k.id },
          s('title', {}, what),
          s('rect', { x: X, y: top, width: w, height, fill: k.color, class: 'cmp-block' }));
        const label = short(e.name);
        if (!comm && w > label.length * 6.4 + 8) {
          g.append(s('text', { x: X + w / 2, y: top + height / 2 + 4, class: k.id === 'forward' || k.id === 'copy' || k.id === 'wait' ? 'cmp-block-label dark' : 'cmp-block-label', 'text-anchor': 'middle' }, label));
        }
        svg.append(g);
      }
    });
    this.canvas.replaceChildren(svg);
    this.drawOverlap(v.perWorker);
  }

  private drawOverlap(perWorker: TraceEvent[][]): void {
    if (perWorker.length < 2) {
      this.overlap.textContent = 'One worker: nothing to communicate, the thread computes all the time.';
      return;
    }
    const o = perWorker.map(overlapFraction);
    const comm = o.reduce((t, x) => t + x.commMs, 0);
    const hidden = o.reduce((t, x) => t + x.hiddenMs, 0);
    this.overlap.textContent = comm > 0
      ? `Overlap: ${Math.round((100 * hidden) / comm)}% of the time collectives were in flight, the worker was computing at the same time (hidden communication); the rest it waited or copied.`
      : '';
  }
}
