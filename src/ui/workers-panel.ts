// The Workers panel: one card per rank (its backend, state, the last step's time split into compute /
// communication / waiting as a stacked bar with ms values, its memory by kind as a second stacked bar,
// bytes sent per step, tf.memory()), and the group's totals above them (tokens/s, global batch, bytes
// per step, and for star the bytes through this page). What a worker is doing right now is not
// observable from here, so a card shows the run's state and the split of the last step that finished.
//
// Memory bars (src/ui/memory.ts) come with every step (RankStepStats.memory) and share one scale: at
// least a full replica at rest (16 bytes per parameter) plus the same activations and buffers, what a
// DDP worker would hold, so the bars of a model split among the workers (FSDP, TP, PP) come out shorter.
// One line above the cards gives the expected bytes at rest. Under TP a card names the heads its worker
// holds, under PP the blocks of its stage; the subtitle says in one sentence what the strategy does, with
// the run's numbers (heads per worker; blocks per stage, micro-batches and the bubble).
//
// Updates are batched into one DOM write per animation frame. Numbers are also exposed as data
// attributes for tests: on each .worker data-compute-ms, data-bytes-sent, data-num-tensors, data-backend
// and data-mem-{params,grads,optimizer,gathered,activations,comm,total} (and data-replaced-at, the step
// at which a failed worker was last replaced by a new one, src/ui/faults-panel.ts); on #memory-expect
// data-expected-bytes and data-measured-bytes (at rest, the largest worker's).

import type { RankStepStats } from '../parallel/protocol';
import type { RunState, TrainEvent } from '../train/session';
import type { DistOptions } from '../parallel/coordinator';
import type { ParamTable } from '../model/params';
import type { RunConfig } from '../model/config';
import type { RankMemory } from './run';
import { byId, h } from './dom';
import * as fmt from './format';
import { MEMORY_KINDS, MemoryBar, SHARD_NAMES, atRest, expectedAtRest, memoryLegend, memoryTotal, replicaBytesPerParam } from './memory';
import { gradientSync, splitsBatch } from '../parallel/layout';
import { bubbleFraction, stageBlocks } from '../parallel/pp-layout';

/** What the descriptions need of the model: its heads and blocks, and the batch micro-batches cut. */
export type RunShape = Pick<RunConfig, 'n_head' | 'n_layer' | 'batch_size' | 'grad_accum'>;

type StepEvent = Extract<TrainEvent, { type: 'step' }>;
export type Phase = 'starting' | RunState;

const STATE_LABELS: Record<Phase, string> = {
  starting: 'starting', running: 'training', paused: 'paused', idle: 'idle', stopped: 'idle', done: 'idle', error: 'error',
};

const TRANSPORT_NAMES: Record<string, string> = { ring: 'ring', star: 'star (through this page)', shared: 'shared memory', network: 'the network (through the relay)' };

interface Card {
  root: HTMLElement;
  backend: HTMLElement;
  part: HTMLElement; // TP: the heads it holds; PP: its stage's blocks
  replaced: HTMLElement;
  mem: MemoryBar;
  state: HTMLElement;
  track: HTMLElement;
  fill: HTMLElement;
  segs: { compute: HTMLElement; comm: HTMLElement; wait: HTMLElement };
  total: HTMLElement;
  values: { compute: HTMLElement; comm: HTMLElement; wait: HTMLElement };
  sent: HTMLElement;
  memory: HTMLElement;
  tensors: HTMLElement;
}

/** "0.4 ms", "12 ms", "1,204 ms". */
function ms(x: number): string {
  return `${x < 10 ? x.toFixed(1) : fmt.count(x)} ms`;
}

export class WorkersPanel {
  private readonly list = byId('workers');
  private readonly empty = byId('workers-empty');
  private readonly totals = byId('workers-totals');
  private readonly note = byId('workers-notice');
  private readonly subtitle = byId('workers-subtitle');
  private readonly expect = byId('memory-expect');
  private cards: Card[] = [];
  private backends: string[] = []; // per rank ('' until known)
  private table: ParamTable | null = null; // the model's parameters, for the memory expectations
  private shape: RunShape | null = null; // the model's heads and blocks, for TP's and PP's descriptions
  private dist: DistOptions | null = null;
  private batch: { sequences: number; tokens: number } | null = null; // global batch per step
  private phase: Phase = 'idle';
  private failedRank: number | null = null;
  private replaced = new Map<number, { step: number; replaced: boolean }>(); // by rank: its last recovery
  private last: StepEvent | null = null;
  private memory: (RankMemory | null)[] = [];
  private live = false; // cards belong to a run (not a preview of the setup)
  private frame = 0;

  constructor() {
    byId('memory-legend').replaceChildren(memoryLegend());
  }

  /** Before any run: cards for the workers the setup would start, so changing `workers` shows them. */
  preview(dist: DistOptions | null, backend: string, batch: { sequences: number; tokens: number } | null): void {
    if (this.live) return;
    this.build(dist, backend, 'idle', batch);
  }

  /** The model the setup would build (before any run; a run's own comes with ready()). */
  previewModel(table: ParamTable | null, shape: RunShape | null = null): void {
    if (this.live) return;
    this.table = table;
    this.shape = shape;
    this.schedule();
  }

  /** A run is starting with these options: fresh cards in the "starting" state. */
  start(dist: DistOptions, backend: string, batch: { sequences: number; tokens: number }, table: ParamTable | null, shape: RunShape | null = null): void {
    this.live = true;
    this.table = table;
    this.shape = shape;
    this.build(dist, backend, 'starting', batch);
  }

  private build(dist: DistOptions | null, backend: string, phase: Phase, batch: { sequences: number; tokens: number } | null): void {
    this.dist = dist;
    this.batch = batch;
    this.backends = Array.from({ length: dist?.workers ?? 0 }, () => backend);
    this.phase = phase;
    this.failedRank = null;
    this.replaced.clear();
    this.last = null;
    this.memory = [];
    this.note.hidden = true;
    const n = dist?.workers ?? 0;
    if (this.cards.length !== n) {
      this.cards = Array.from({ length: n }, (_, r) => this.card(r));
      this.list.replaceChildren(...this.cards.map((c) => c.root));
      // Balanced rows: up to 4 cards in one row, 5 to 8 in two.
      this.list.style.setProperty('--cols', String(n <= 4 ? Math.max(1, n) : Math.ceil(n / 2)));
    }
    this.schedule();
  }

  private card(rank: number): Card {
    const seg = (kind: string) => h('span', { class: `seg ${kind}` });
    const row = (label: string | Node, cls = '') => {
      const v = h('dd', {}, '–');
      return { el: h('div', { class: `row ${cls}` }, h('dt', {}, label), v), v };
    };
    const timed = (kind: string, label: string) => row(h('span', { class: `split-value ${kind}` }, h('i', { class: 'swatch' }), label));
    const segs = { compute: seg('compute'), comm: seg('comm'), wait: seg('wait') };
    const fill = h('div', { class: 'split-fill' }, segs.compute, segs.comm, segs.wait);
    const track = h('div', { class: 'split-track', role: 'img' }, fill);
    const c = timed('compute', 'compute');
    const m = timed('comm', 'comm');
    const w = timed('wait', 'waiting');
    const sent = row('sent / step', 'first');
    const memory = row('tf.memory()');
    const tensors = row('tensors');
    const mem = new MemoryBar();
    const backend = h('span', { class: 'worker-backend' });
    const part = h('span', { class: 'worker-backend worker-part', hidden: true });
    const replaced = h('span', { class: 'worker-replaced' });
    const state = h('span', { class: 'worker-state' });
    const total = h('span', { class: 'split-total' }, '–');
    const root = h('article', { class: 'worker', 'data-rank': rank },
      h('header', {}, h('div', {}, h('h3', {}, `Worker ${rank}`), backend, part, replaced), state),
      h('div', { class: 'bar-caption' }, 'last step'),
      h('div', { class: 'split' }, track, total),
      h('dl', { class: 'worker-nums' }, c.el, m.el, w.el),
      mem.root,
      h('dl', { class: 'worker-nums' }, sent.el, memory.el, tensors.el),
    );
    return { root, backend, part, replaced, mem, state, track, fill, segs, total, values: { compute: c.v, comm: m.v, wait: w.v }, sent: sent.v, memory: memory.v, tensors: tensors.v };
  }

  /**
   * The run's workers are built: the backend each chose (one per rank), the options they run with, any
   * fallback notice, and the model they built.
   */
  ready(backends: string[], dist: DistOptions, notice: string | null, table: ParamTable | null): void {
    this.backends = backends;
    this.dist = dist;
    this.table = table;
    this.note.hidden = !notice;
    this.note.textContent = notice ? `Note: ${notice}.` : '';
    this.schedule();
  }

  onStep(e: StepEvent): void {
    this.last = e;
    this.schedule();
  }

  /** A worker failed during `step` and the run recovered: replaced by a new worker, or (bad gradients) kept. */
  markRecovered(rank: number, step: number, replaced: boolean): void {
    this.replaced.set(rank, { step, replaced });
    this.schedule();
  }

  setMemory(m: (RankMemory | null)[]): void {
    this.memory = m;
    this.schedule();
  }

  /** The run's state; an error that names a crashed worker marks that worker only. */
  setPhase(phase: Phase, message?: string): void {
    this.phase = phase;
    const crashed = phase === 'error' && message ? /worker (\d+) crashed/.exec(message) : null;
    this.failedRank = crashed ? Number(crashed[1]) : null;
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  private draw(): void {
    this.frame = 0;
    const d = this.dist;
    this.empty.hidden = this.cards.length > 0;
    this.subtitle.textContent = d ? describe(d, this.shape) : '';
    const e = this.last;
    const perRank: RankStepStats[] = e?.stats.perRank ?? [];
    const longest = Math.max(1, ...perRank.map((r) => r.computeMs + r.commMs + r.waitMs));
    // Memory: one scale for all cards, at least what a full replica (a DDP worker) with the same
    // activations and buffers would hold, so sharded workers' bars come out shorter.
    const replica = this.table ? replicaBytesPerParam(this.backends[0] ?? '') * this.table.total : 0;
    const memScale = Math.max(1, ...perRank.map((r) => Math.max(memoryTotal(r.memory), replica + r.memory.activations_peak + r.memory.comm_buffers)));
    this.drawExpectation(perRank);
    this.cards.forEach((c, rank) => {
      const r = perRank[rank];
      const state = this.failedRank !== null ? (rank === this.failedRank ? 'error' : 'idle') : STATE_LABELS[this.phase];
      c.root.dataset.state = state;
      c.state.textContent = state;
      const backend = this.backends[rank] ?? '';
      c.backend.textContent = backend ? `${backend} · rank ${rank}` : `rank ${rank}`;
      c.root.dataset.backend = backend;
      const part = d && this.shape ? partOf(d, this.shape, rank) : '';
      c.part.textContent = part;
      c.part.hidden = !part;
      const rec = this.replaced.get(rank);
      c.replaced.textContent = !rec ? '' : rec.replaced ? `replaced at step ${fmt.count(rec.step)}` : `recovered at step ${fmt.count(rec.step)}`;
      setData(c.root, 'replacedAt', rec?.replaced ? String(rec.step) : undefined);
      c.mem.update(r?.memory ?? null, memScale, replica);
      for (const k of MEMORY_KINDS) setData(c.root, memKey(k.data), r ? String(r.memory[k.key]) : undefined);
      setData(c.root, 'memTotal', r ? String(memoryTotal(r.memory)) : undefined);
      if (r) {
        const total = r.computeMs + r.commMs + r.waitMs;
        c.fill.style.width = `${((total / longest) * 100).toFixed(1)}%`;
        for (const k of ['compute', 'comm', 'wait'] as const) {
          const v = r[`${k}Ms`];
          c.segs[k].style.flexGrow = String(v);
          c.values[k].textContent = ms(v);
        }
        // Waiting, split: for a slower worker to finish its backward, or for data still in flight.
        const slower = r.stragglerMs ?? 0;
        c.values.wait.title = `${ms(slower)} waiting for a slower worker, ${ms(r.waitMs - slower)} for data in flight`;
        c.values.wait.textContent = slower >= 0.05 ? `${ms(r.waitMs)} (${ms(slower)} for a slower worker)` : ms(r.waitMs);
        setData(c.root, 'stragglerMs', String(slower));
        c.track.setAttribute('aria-label', `last step: compute ${ms(r.computeMs)}, communication ${ms(r.commMs)}, waiting ${ms(r.waitMs)}`);
        c.total.textContent = ms(total);
        c.sent.textContent = fmt.bytes(r.bytesSent);
        c.sent.title = r.buckets.length ? `gradients all-reduced in ${r.buckets.length} bucket${r.buckets.length === 1 ? '' : 's'}` : '';
        Object.assign(c.root.dataset, { computeMs: String(r.computeMs), commMs: String(r.commMs), waitMs: String(r.waitMs), bytesSent: String(r.bytesSent) });
      } else {
        c.fill.style.width = '0';
        for (const k of ['compute', 'comm', 'wait'] as const) c.values[k].textContent = '–';
        c.values.wait.title = '';
        setData(c.root, 'stragglerMs', undefined);
        c.track.removeAttribute('aria-label');
        c.total.textContent = '–';
        c.sent.textContent = '–';
        c.sent.title = '';
      }
      const m = this.memory[rank];
      c.memory.textContent = m ? fmt.bytes(m.numBytes) : '–';
      c.memory.title = 'tf.memory() of this worker: the bytes of every tensor alive (model, AdamW state, caches)';
      c.tensors.textContent = m ? fmt.count(m.numTensors) : '–';
      if (m) c.root.dataset.numTensors = String(m.numTensors);
    });
    this.drawTotals(e, perRank);
  }

  private drawTotals(e: StepEvent | null, perRank: RankStepStats[]): void {
    const d = this.dist;
    if (!d) {
      this.totals.replaceChildren();
      return;
    }
    const stat = (label: string, value: string, title?: string) => h('div', { class: 'stat', title }, h('dt', {}, label), h('dd', {}, value));
    const sent = perRank.reduce((s, r) => s + r.bytesSent, 0);
    const hub = e?.stats.hubBytes;
    const backends = [...new Set(this.backends.filter(Boolean))];
    this.totals.replaceChildren(
      stat('workers', backends.length > 1 ? `${d.workers}: ${backends.join(' + ')}` : `${d.workers} × ${backends[0] || '…'}`),
      stat('group tokens / s', e ? fmt.count(e.tokensPerSec) : '–', 'Tokens per second of all workers together (median of recent steps)'),
      stat('global batch', this.batch ? `${fmt.count(this.batch.sequences)} seqs` : '–', this.batch ? `${fmt.count(this.batch.sequences)} sequences (${fmt.count(this.batch.tokens)} tokens) per optimizer step over all workers: ${splitsBatch(d) ? 'workers × batch_size × grad_accum' : d.strategy === 'single' ? 'batch_size × grad_accum' : 'batch_size × grad_accum (every worker works on the same batch)'}` : undefined),
      d.transport === 'star' && d.strategy !== 'single'
        ? stat('through this page', hub === undefined ? '–' : `${fmt.bytes(hub)} / step`, 'Star: every worker sends its data (gradients, FSDP shards, TP activations, PP messages) to this page and gets the result back (bytes in + out)')
        : stat('all workers sent', e ? `${fmt.bytes(sent)} / step` : '–', 'Bytes all workers put on their links (or into shared memory) in the last step'),
    );
    this.totals.dataset.hubBytes = hub === undefined ? '' : String(hub);
  }

  /** One line: what a worker should hold at rest, and what the workers report. */
  private drawExpectation(perRank: RankStepStats[]): void {
    const d = this.dist;
    const t = this.table;
    if (!d || !t) {
      this.expect.replaceChildren();
      this.expect.hidden = true;
      return;
    }
    const backend = this.backends[0] ?? '';
    const x = expectedAtRest(t, d, backend);
    const measured = perRank.length ? Math.max(...perRank.map((r) => atRest(r.memory))) : null;
    const sync = gradientSync(d);
    const sharded = sync === 'shard';
    const bytesEach = `weights 4 + gradients 4 + AdamW m and v 8${replicaBytesPerParam(backend) > 16 ? ' + the master copy the CPU optimizer updates 4' : ''} bytes per parameter`;
    const what = sharded ? `${SHARD_NAMES[d.shard ?? 'full']} keeps a 1/${d.workers} shard of weights, gradients and AdamW m and v`
      : sync === 'tensor' && d.workers > 1 ? `${bytesEach} of its slices (every worker holds as many)`
        : sync === 'pipeline' && d.workers > 1 ? `${bytesEach} of its stage; stages differ (the first holds the embeddings, the last ln_f and the tied head)`
          : bytesEach;
    this.expect.hidden = false;
    this.expect.replaceChildren(
      'At rest, expected per worker: ', h('strong', {}, `${x.formula} ${sharded && d.workers > 1 ? '≈' : '='} ${fmt.bytes(x.bytes)}`), ` (${what})`,
      ...(measured === null ? [] : [' · measured: ', h('strong', {}, fmt.bytes(measured))]),
    );
    this.expect.dataset.expectedBytes = String(x.bytes);
    this.expect.dataset.measuredBytes = measured === null ? '' : String(measured);
  }
}

/** data-mem-{kind} as a dataset key: memParams, memGathered, ... */
const memKey = (kind: string) => `mem${kind[0].toUpperCase()}${kind.slice(1)}`;

function setData(el: HTMLElement, key: string, value: string | undefined): void {
  if (value === undefined) delete el.dataset[key];
  else el.dataset[key] = value;
}

/** TP: the heads rank r holds; PP: its stage's blocks (with the embedding or the head). '' when it does not split. */
export function partOf(d: Pick<DistOptions, 'strategy' | 'workers'>, shape: RunShape, rank: number): string {
  const N = d.workers;
  if (d.strategy === 'tp' && N > 1 && shape.n_head % N === 0) {
    const nh = shape.n_head / N;
    return nh === 1 ? `head ${rank}` : `heads ${rank * nh}–${(rank + 1) * nh - 1}`;
  }
  if (d.strategy === 'pp' && N > 1 && N <= shape.n_layer) {
    const [lo, hi] = stageBlocks(shape.n_layer, N, rank);
    const blocks = hi - lo === 1 ? `block ${lo}` : `blocks ${lo}–${hi - 1}`;
    return `stage ${rank}: ${rank === 0 ? 'embedding, ' : ''}${blocks}${rank === N - 1 ? ', head' : ''}`;
  }
  return '';
}

/**
 * What the strategy does, in one sentence, with the run's numbers: heads per worker (TP); blocks per
 * stage, micro-batches and the bubble (PP). `shape` may be null before the setup is valid.
 */
export function describe(d: DistOptions, shape: RunShape | null): string {
  const over = TRANSPORT_NAMES[d.transport] ?? d.transport;
  const N = d.workers;
  if (d.strategy === 'single') return 'One worker trains the whole batch.';
  if (d.strategy === 'tp') {
    const heads = shape && shape.n_head % N === 0 ? `${shape.n_head / N} of the ${shape.n_head} heads` : 'its share of the heads';
    const per = shape ? ` (${4 * shape.n_layer} per micro-batch for ${shape.n_layer} blocks)` : '';
    return `TP: each of ${N} workers holds ${heads} and 1/${N} of the MLP in every block, and all work on the same batch; partial activations are all-reduced over ${over} 4 times per block${per}, 2 in forward and 2 in backward.`;
  }
  if (d.strategy === 'pp') {
    const M = d.microbatches ?? 4;
    const schedule = (d.schedule ?? '1f1b') === 'gpipe' ? 'GPipe (all forwards, then all backwards)' : '1F1B (one forward, one backward in the steady state)';
    const rows = shape ? (shape.batch_size * shape.grad_accum) / M : null;
    const stages = shape && N <= shape.n_layer
      ? Array.from({ length: N }, (_, r) => {
        const [lo, hi] = stageBlocks(shape.n_layer, N, r);
        return hi - lo;
      })
      : null;
    const blocks = stages ? (stages.every((b) => b === stages[0]) ? `${stages[0]} block${stages[0] > 1 ? 's' : ''} each` : `${stages.join(', ')} blocks`) : 'consecutive blocks';
    return `PP: ${N} stages of ${blocks}; every step's batch goes through in ${M} micro-batch${M > 1 ? 'es' : ''}${rows !== null && Number.isInteger(rows) ? ` of ${rows} sequence${rows === 1 ? '' : 's'}` : ''}, ` +
      `activations forward and their gradients back over ${over}, scheduled ${schedule}; each stage idles (N−1)/(M+N−1) = ${Math.round(100 * bubbleFraction(N, M))}% of a step (the bubble).`;
  }
  if (d.strategy === 'ddp') return `DDP: ${d.workers} copies of the model, gradients averaged over ${over} every step.`;
  if (d.strategy === 'diloco') {
    const H = d.innerSteps ?? 20;
    const c = d.outerCompress && d.outerCompress !== 'none' ? ` in ${d.outerCompress}` : '';
    return `DiLoCo: ${d.workers} copies of the model, each trains alone for ${H} step${H > 1 ? 's' : ''}; then their pseudo-gradients are averaged over ${over}${c} and an outer Nesterov step (lr ${d.outerLr ?? 0.7}, momentum ${d.outerMomentum ?? 0.9}) updates the shared model: 1/${H} of DDP's traffic.`;
  }
  if (gradientSync(d) !== 'shard') return `FSDP NO_SHARD: ${d.workers} full copies of the model, gradients all-reduced over ${over}: the same as DDP, the control.`;
  const prefetch = d.prefetch === false ? 'without backward prefetch' : 'with backward prefetch';
  return `FSDP ${SHARD_NAMES[d.shard ?? 'full']}: each of ${d.workers} workers keeps a 1/${d.workers} shard of the model; units are all-gathered over ${over} when needed, gradients reduce-scattered (${prefetch}).`;
}
