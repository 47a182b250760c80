// The timeline (a Gantt chart) of a run's traced steps: two lanes per worker, its thread ("main":
// forward and backward per unit, the optimizer, packing for collectives, waiting) and its collectives
// ("comm": each all-gather, reduce-scatter and all-reduce from the moment it starts moving data until it
// completes). Drawn as SVG, so every block has a tooltip (its name, duration and bytes) and hovering
// shows it in the readout line; a student sees communication overlap compute, and FSDP's prefetch.
//
// A run that recovered from a failed worker (a fault injected with "Break something during the run")
// traced the steps around the fault as well as its last steps: the pills choose between those windows
// (or one step), and each recovery in the window is a band across every worker (class cmp-recovery,
// with data-step, data-rank, data-cause, data-detected-ms, data-ms): from the start of the step's failed
// try to the failure being noticed, then to every worker being ready to train the step again. A band
// much longer than the steps around it (a hang waits for the deadline) is drawn shortened, and says so.
//
// Pipeline parallelism (PP): a stage's thread shows its micro-batches' forwards and backwards (F0, B0,
// ...) and, between them, the time it waits for its neighbour (the 'wait' spans: the bubble); its comm
// lane the sends to the next or previous stage. Under each stage a label gives the share of its steps
// it waited (measured, class cmp-bubble-label, data-measured) beside the predicted (N−1)/(M+N−1)
// (data-predicted); the line under the chart gives their mean (#compare-bubble).

import type { TraceEvent } from '../../util/trace';
import type { FailureCause } from '../../parallel/faults';
import type { RecoveryRecord, RunRecord, StepRecord } from './runner';
import { bubbleFraction, measuredBubble } from '../../parallel/pp-layout';
import { median } from '../../util/stats';
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
  { id: 'wait', label: 'waiting for others (PP: the bubble)', color: '#f59e0b' },
  { id: 'all-gather', label: 'all-gather', color: '#3b82f6' },
  { id: 'reduce-scatter', label: 'reduce-scatter', color: '#c026d3' },
  { id: 'all-reduce', label: 'all-reduce', color: '#7c3aed' },
  { id: 'send', label: 'send to a neighbour stage', color: '#0ea5e9' },
  { id: 'broadcast', label: 'broadcast', color: '#64748b' },
];
const KIND = new Map(KINDS.map((k) => [k.id, k]));

/** Which legend entry a trace event belongs to. */
export function kindOf(e: TraceEvent): Kind {
  if (e.cat === 'wait') return KIND.get('wait')!;
  if (e.lane === 'comm') return KIND.get(e.name.split(' ')[0]) ?? KIND.get('all-reduce')!;
  if (e.cat === 'comm') return KIND.get('copy')!;
  if (e.name.startsWith('forward') || e.name === 'head and loss' || /^F\d+$/.test(e.name)) return KIND.get('forward')!; // PP: F3 is micro-batch 3's forward
  if (e.name.startsWith('backward') || /^B\d+$/.test(e.name)) return KIND.get('backward')!;
  return KIND.get('update')!;
}

/** A tick spacing that gives about `target` ticks over `span` ms (1, 2, 5 times a power of ten). */
export function tickStep(span: number, target = 8): number {
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

/** A cause in a few words, for a band's label. */
export const CAUSE_WORDS: Record<FailureCause, string> = {
  crash: 'crash', hang: 'hang', slow: 'too slow', nan: 'NaN gradients', oom: 'out of memory', error: 'error',
};

/** "40 ms", "1.2 s", "12 s". */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** A recovery's band label: "recovery: worker 1 crash, noticed in 3 ms, recovered in 412 ms". */
export function recoveryLabel(r: RecoveryRecord): string {
  return `recovery: worker ${r.rank} ${CAUSE_WORDS[r.cause]}, noticed in ${duration(r.detected_ms)}, recovered in ${duration(r.ms)}`;
}

/** Traced steps as windows of consecutive steps: index ranges [first, last] into trace.steps. */
export function stepWindows(steps: number[]): [number, number][] {
  const out: [number, number][] = [];
  steps.forEach((step, i) => {
    const last = out.at(-1);
    if (last && steps[last[1]] === step - 1) last[1] = i;
    else out.push([i, i]);
  });
  return out;
}

/** A band of the time axis drawn shorter than it lasted. */
export interface Band {
  start: number;
  end: number;
}

/** At most this share of the other (not banded) time shown, for all bands together. */
const BAND_SHARE = 0.6;

/**
 * Time (ms on the shared clock, from t0 to t1) to x (0 to width), linear except in the bands: when
 * they last longer than BAND_SHARE x the rest of the time shown, each is drawn as if it lasted
 * BAND_SHARE x the rest / the number of bands (`shortened` says which were). `span` is the drawn
 * length of the whole window in ms of the linear scale (for ticks).
 */
export function timeScale(t0: number, t1: number, bands: Band[], width: number): { x: (t: number) => number; shortened: boolean[]; span: number } {
  const clipped = bands.map((b) => ({ start: Math.max(t0, b.start), end: Math.min(t1, b.end) })).map((b) => ({ ...b, len: Math.max(0, b.end - b.start) }));
  const rest = Math.max(0, t1 - t0 - clipped.reduce((t, b) => t + b.len, 0));
  const cap = rest > 0 ? (BAND_SHARE * rest) / Math.max(1, clipped.length) : Infinity;
  const drawn = clipped.map((b) => Math.min(b.len, cap));
  const span = Math.max(1e-3, rest + drawn.reduce((t, d) => t + d, 0));
  const x = (t: number) => {
    let v = t - t0;
    clipped.forEach((b, i) => {
      if (t > b.start && b.len > 0) v -= (Math.min(t, b.end) - b.start) * (1 - drawn[i] / b.len);
    });
    return (v / span) * width;
  };
  return { x, shortened: clipped.map((b, i) => drawn[i] < b.len - 1e-9), span };
}

/**
 * PP: the share of each stage's own step time it spent waiting (the union of its main-lane 'wait'
 * spans over the sum of its step times), for the steps shown.
 */
export function idleShares(perWorker: TraceEvent[][], stepMs: number[]): number[] {
  return perWorker.map((events, r) => {
    const waits = events.filter((e) => e.lane === 'main' && e.cat === 'wait').map((e) => [e.ts, e.ts + e.dur] as [number, number]);
    return stepMs[r] > 0 ? unionLength(waits) / stepMs[r] : 0;
  });
}

/**
 * PP: each stage's bubble as measured (pp-layout.ts measuredBubble: the part of the schedule it did not
 * work), the median over the traced steps; from the trace's wait spans when the steps lack stage times.
 */
export function bubbleShares(steps: StepRecord[], perWorker: TraceEvent[][], stepMs: number[]): number[] {
  const shown = steps.filter((st) => st.traced && st.ranks.every((r) => r.pipeline));
  if (!shown.length) return idleShares(perWorker, stepMs);
  const per = shown.map((st) => measuredBubble(st.ranks.map((r) => r.pipeline!)).perStage);
  return perWorker.map((_, r) => median(per.map((p) => p[r])));
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
const BAND_ROW = 20; // recovery labels, above the step labels, when a recovery is shown
const BUBBLE_H = 16; // PP: the stage's bubble label, under its lanes

export class Timeline {
  private readonly pills = h('div', { class: 'cmp-pills', role: 'group', 'aria-label': 'Steps shown' });
  private readonly canvas = h('div', { class: 'cmp-timeline', id: 'compare-timeline' });
  private readonly readout = h('p', { class: 'cmp-readout', 'aria-live': 'polite' }, 'Hover a block to see what it is.');
  private readonly overlap = h('p', { class: 'cmp-overlap muted' });
  private readonly recoveryKey = h('span', { class: 'split-value', hidden: true }, h('i', { class: 'swatch cmp-recovery-swatch' }), 'recovery (a worker failed)');
  private run: RunRecord | null = null;
  // What is shown: a window of consecutive traced steps, or one step (indices into trace.steps).
  private shown: { window: number } | { step: number } = { window: 0 };
  private width = 0;

  constructor(root: HTMLElement) {
    const legend = h('div', { class: 'cmp-legend', 'aria-label': 'Colours of the timeline' },
      ...KINDS.filter((k) => k.id !== 'broadcast').map((k) => h('span', { class: 'split-value' }, h('i', { class: 'swatch', style: `--c:${k.color}` }), k.label)),
      this.recoveryKey);
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

  /** Shows a run: the window of its traced steps with a recovery in it, else its last steps. */
  show(run: RunRecord | null): void {
    this.run = run;
    const t = run?.trace;
    const windows = t ? stepWindows(t.steps) : [];
    const recovered = windows.findIndex(([a, b]) => (run?.recoveries ?? []).some((r) => r.step >= t!.steps[a] && r.step <= t!.steps[b]));
    this.shown = { window: recovered >= 0 ? recovered : Math.max(0, windows.length - 1) };
    this.recoveryKey.hidden = !(run?.recoveries?.length);
    this.drawPills();
    this.draw();
  }

  private drawPills(): void {
    const t = this.run?.trace;
    if (!t) {
      this.pills.replaceChildren();
      return;
    }
    const pill = (label: string, what: { window: number } | { step: number }) => {
      const on = 'window' in what ? 'window' in this.shown && this.shown.window === what.window : 'step' in this.shown && this.shown.step === what.step;
      const b = h('button', { type: 'button', class: 'cmp-pill', 'aria-pressed': String(on) }, label);
      b.addEventListener('click', () => {
        this.shown = what;
        this.drawPills();
        this.draw();
      });
      return b;
    };
    const recovered = (step: number) => (this.run?.recoveries ?? []).some((r) => r.step === step);
    const windows = stepWindows(t.steps).map(([a, b], w, all) => {
      const n = b - a + 1;
      const label = w === all.length - 1 ? `last ${n} step${n > 1 ? 's' : ''}`
        : n === 1 ? `step ${t.steps[a]}` : `steps ${t.steps[a]}–${t.steps[b]}`;
      return pill(t.steps.slice(a, b + 1).some(recovered) ? `${label} · recovery` : label, { window: w });
    });
    this.pills.replaceChildren(...windows, ...t.steps.map((step, i) => pill(`step ${step}`, { step: i })));
  }

  /**
   * The events of the steps shown, per worker, the recoveries of those steps, and the time range they
   * cover (a recovery happens before its step's events: the step is traced as trained again).
   */
  private visible(): { perWorker: TraceEvent[][]; t0: number; t1: number; starts: { step: number; ts: number }[]; recoveries: RecoveryRecord[]; stepMs: number[] } | null {
    const t = this.run?.trace;
    if (!t) return null;
    const windows = stepWindows(t.steps);
    const [a, b] = 'step' in this.shown ? [this.shown.step, this.shown.step] : windows[Math.min(this.shown.window, windows.length - 1)];
    const lo = t.stepStart[a];
    const hi = b + 1 < t.steps.length ? t.stepStart[b + 1] : Infinity;
    const perWorker = t.perWorker.map((events) => events.filter((e) => e.ts >= lo && e.ts < hi));
    const all = perWorker.flat();
    if (!all.length) return null;
    const recoveries = (this.run?.recoveries ?? []).filter((r) => r.step >= t.steps[a] && r.step <= t.steps[b]);
    const t0 = Math.min(...all.map((e) => e.ts), ...recoveries.map((r) => r.started_at));
    const t1 = Math.max(...all.map((e) => e.ts + e.dur), ...recoveries.map((r) => r.recovered_at));
    const starts = t.steps.map((step, i) => ({ step, ts: t.stepStart[i] })).slice(a, b + 1);
    // each worker's own step time over the steps shown
    const stepMs = t.perWorker.map((_, r) => t.rankMs.slice(a, b + 1).reduce((sum, ms) => sum + (ms[r] ?? 0), 0));
    return { perWorker, t0, t1: Math.max(t1, t0 + 1e-3), starts, recoveries, stepMs };
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
    const bands = v.recoveries.map((r) => ({ start: r.started_at, end: r.recovered_at }));
    const scale = timeScale(v.t0, v.t1, bands, plot);
    const x = (t: number) => GUTTER + scale.x(t);
    const top = v.recoveries.length ? BAND_ROW : 0;
    const pp = this.run.dist.strategy === 'pp' && v.perWorker.length > 1;
    const laneY = (rank: number) => top + AXIS + rank * (MAIN_H + COMM_H + GAP + (pp ? BUBBLE_H : 0));
    const H = laneY(v.perWorker.length) + 4;
    const svg = s('svg', { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Timeline of ${this.run.label}: ${v.perWorker.length} workers${v.recoveries.length ? `, ${v.recoveries.length} recover${v.recoveries.length > 1 ? 'ies' : 'y'}` : ''}` });

    // time axis (no ticks inside a band drawn shortened, none crowding the one before)
    const step = tickStep(scale.span);
    const inShortened = (t: number) => bands.some((b, i) => scale.shortened[i] && t > b.start && t < b.end);
    let lastX = -Infinity;
    // a tick's label is not drawn across a step's marker line (nor its grid line right on it)
    const stepXs = v.starts.map((st) => x(st.ts));
    for (let t = 0; t <= v.t1 - v.t0 + 1e-9; t += step) {
      const X = x(v.t0 + t);
      const half = (`${+t.toFixed(3)} ms`.length * 6.6) / 2 + 4;
      const [left, right] = t === 0 ? [X - 2, X + 2 * half] : [X - half, X + half];
      if (inShortened(v.t0 + t) || X - lastX < 44 || stepXs.some((sx) => sx >= left && sx <= right)) continue;
      lastX = X;
      svg.append(
        s('line', { x1: X, x2: X, y1: top + AXIS - 4, y2: H, class: 'cmp-grid' }),
        s('text', { x: X, y: top + AXIS - 8, class: 'cmp-tick', 'text-anchor': t === 0 ? 'start' : 'middle' }, `${+t.toFixed(3)} ms`),
      );
    }
    // A step trained again after a recovery says so, in as many words as fit before the next step's label.
    const replayed = new Set(v.recoveries.map((r) => r.step));
    v.starts.forEach((st, i) => {
      const X = x(st.ts);
      const room = (i + 1 < v.starts.length ? x(v.starts[i + 1].ts) : W) - X - 10;
      const again = replayed.has(st.step);
      const words = again ? [`step ${st.step} · trained again`, `step ${st.step} again`, `step ${st.step}`] : [`step ${st.step}`];
      const label = words.find((w) => w.length * 6.6 <= room) ?? words.at(-1)!;
      svg.append(s('line', { x1: X, x2: X, y1: top + 2, y2: H, class: 'cmp-step-line' }),
        s('text', { x: X + 5, y: top + 12, class: 'cmp-step-label', 'data-step': st.step, ...(again ? { 'data-replayed': 'true' } : {}) },
          ...(again ? [s('title', {}, `step ${st.step}, trained again after the recovery`)] : []), label));
    });

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
    if (pp) this.drawBubbles(svg, v.perWorker, v.stepMs, laneY);
    // over the lanes (no worker traced anything then: the failed try's spans were dropped with it)
    v.recoveries.forEach((r, i) => svg.append(this.band(r, x, scale.shortened[i], top, H, W)));
    this.canvas.replaceChildren(svg);
    this.drawOverlap(v.perWorker, pp ? v.stepMs : null);
  }

  /** PP: under each stage's lanes, the share of its steps it waited, beside the predicted bubble. */
  private drawBubbles(svg: SVGSVGElement, perWorker: TraceEvent[][], stepMs: number[], laneY: (rank: number) => number): void {
    const d = this.run!.dist;
    const N = perWorker.length;
    const M = d.microbatches ?? 4;
    const predicted = bubbleFraction(N, M);
    bubbleShares(this.run!.steps, perWorker, stepMs).forEach((share, rank) => {
      const y = laneY(rank) + MAIN_H + COMM_H + BUBBLE_H - 4;
      const text = `stage ${rank}: idle ${pct(share)} of the schedule (the bubble, measured) · predicted (N−1)/(M+N−1) = ${N - 1}/${M + N - 1} = ${pct(predicted)}`;
      svg.append(s('text', { x: GUTTER, y, class: 'cmp-bubble-label', 'data-rank': rank, 'data-measured': share.toFixed(4), 'data-predicted': predicted.toFixed(4) },
        s('title', {}, `Stage ${rank} did not work ${pct(share)} of the pipeline schedule in the steps shown (waiting for a neighbour: its amber 'wait' spans, or done before the last stage finished); with equal stages a synchronous pipeline of ${N} stages and ${M} micro-batches idles (N−1)/(M+N−1) = ${pct(predicted)} of it.`), text));
    });
  }

  /**
   * A recovery across every worker: the failed try until the failure was noticed (lighter), then the
   * recovery until every worker was ready to train the step again; its label above the lanes.
   */
  private band(r: RecoveryRecord, x: (t: number) => number, shortened: boolean, top: number, H: number, W: number): SVGGElement {
    const X1 = x(r.started_at);
    const Xd = x(r.detected_at);
    const X2 = Math.max(X1 + 2, x(r.recovered_at));
    const label = recoveryLabel(r) + (shortened ? ' (drawn shortened)' : '');
    const what = `${label} · step ${r.step} · restored from ${r.restored_from.replace(/\brank (\d+)/g, 'worker $1')} · ${r.message}`;
    const fits = X1 + 4 + label.length * 6.2 < W;
    const g = s('g', {
      class: 'cmp-recovery', 'data-kind': 'recovery', 'data-what': what, 'data-step': r.step, 'data-rank': r.rank, 'data-cause': r.cause,
      'data-detected-ms': Math.round(r.detected_ms), 'data-ms': Math.round(r.ms), 'data-shortened': String(shortened),
    },
    s('title', {}, what),
    s('rect', { x: X1, y: top, width: Math.max(1, Xd - X1), height: H - top, class: 'cmp-recovery-noticing' }),
    s('rect', { x: Xd, y: top, width: Math.max(1, X2 - Xd), height: H - top, class: `cmp-recovery-band${shortened ? ' shortened' : ''}` }),
    s('line', { x1: X1, x2: X1, y1: 2, y2: H, class: 'cmp-recovery-edge' }),
    s('text', { x: fits ? X1 + 4 : W - 4, y: 14, class: 'cmp-recovery-label', 'text-anchor': fits ? 'start' : 'end' }, label));
    return g;
  }

  private drawOverlap(perWorker: TraceEvent[][], ppStepMs: number[] | null): void {
    delete this.overlap.dataset.measured;
    delete this.overlap.dataset.predicted;
    this.overlap.id = '';
    if (perWorker.length < 2) {
      this.overlap.textContent = 'One worker: nothing to communicate, the thread computes all the time.';
      return;
    }
    if (ppStepMs) {
      const d = this.run!.dist;
      const N = perWorker.length;
      const M = d.microbatches ?? 4;
      const shares = bubbleShares(this.run!.steps, perWorker, ppStepMs);
      const mean = shares.reduce((a, b) => a + b, 0) / N;
      const predicted = bubbleFraction(N, M);
      this.overlap.id = 'compare-bubble';
      this.overlap.dataset.measured = mean.toFixed(4);
      this.overlap.dataset.predicted = predicted.toFixed(4);
      this.overlap.textContent = `Bubble: the ${N} stages sat idle ${pct(mean)} of the schedule on average (measured: the amber spans, and a stage done before the last), the cost model predicts (N−1)/(M+N−1) = ${N - 1}/${M + N - 1} = ${pct(predicted)} ` +
        `for ${M} micro-batches (${d.schedule === 'gpipe' ? 'GPipe' : '1F1B'}). More micro-batches shrink it; the first stage also waits for the gradients to come back, the last for the activations to arrive.`;
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

const pct = (x: number) => `${Math.round(100 * x)}%`;
