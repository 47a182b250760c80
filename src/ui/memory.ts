// A worker's memory by kind (RankStepStats.memory, a MemoryReport sent with every step) as one stacked
// horizontal bar, and what the memory at rest should be. The kinds, in the bar's order:
//   at rest (between steps): params, grads, optimizer (AdamW m and v): 16 bytes per parameter for a
//     full replica (single, DDP, FSDP NO_SHARD; 20 on the CPU backends, whose AdamW keeps a master copy
//     of the weights); FULL_SHARD and SHARD_GRAD_OP keep 1/N of each unit; TP keeps 1/N of every
//     block's split weights (its heads, its MLP columns) and all of the replicated ones (embeddings,
//     LayerNorms, two biases); PP keeps its stage's blocks (and the embedding or the head).
//   peaks during a step: gathered (unsharded parameters alive at once, FSDP), activations (saved for
//     backward), comm buffers (messages in flight).
// Peaks need not coincide, so a bar's total is an upper bound of the worker's footprint.
//
// Bars that should be compared share a scale (bytes at 100% of the track): MemoryBar.update(m, scale).
// No tfjs here (pure layout from src/parallel/layout.ts, types from the trainer).

import type { MemoryReport } from '../train/trainer';
import type { DistOptions } from '../parallel/coordinator';
import type { ParamTable } from '../model/params';
import { gradientSync, shardLayout } from '../parallel/layout';
import { stageBlocks, stageTable } from '../parallel/pp-layout';
import { tpMemoryPerRank } from '../parallel/tp-layout';
import { HOST_OPTIMIZER_BACKENDS } from '../model/config';
import { h } from './dom';
import * as fmt from './format';

export type MemoryKind = keyof MemoryReport;

export interface MemoryKindSpec {
  key: MemoryKind;
  label: string; // short, for the legend and the card
  data: string; // the data attribute of a worker card: data-mem-{data}
  title: string; // one line a student understands
}

export const MEMORY_KINDS: readonly MemoryKindSpec[] = [
  { key: 'params', label: 'params', data: 'params', title: 'Parameters at rest, 4 bytes each: all of them, or only this worker\'s part: its shard (FSDP), its slice of every layer (TP), its stage (PP)' },
  { key: 'grads', label: 'grads', data: 'grads', title: 'Gradients a step keeps, 4 bytes per parameter (a shard under FSDP: reduce-scattered)' },
  { key: 'optimizer', label: 'optimizer', data: 'optimizer', title: 'AdamW state at rest: m and v, 8 bytes per parameter (a shard under FSDP), and on the CPU backends the master copy of the weights it updates, 4 more' },
  { key: 'buddy', label: 'buddy copy', data: 'buddy', title: 'FSDP: the next worker\'s shards (weights, m and v), kept so that if it fails nothing is lost: 12 bytes per parameter ÷ N' },
  { key: 'gathered_peak', label: 'gathered', data: 'gathered', title: 'FSDP: most unsharded (all-gathered) parameters alive at once during a training step: the root unit and, with backward prefetch, two blocks (the next one arrives before this one is freed; on a 2-block model that is all of it), one without; an evaluation\'s temporary full copy is not counted' },
  { key: 'activations_peak', label: 'activations', data: 'activations', title: 'Most activations alive at once: what forward saves for backward (PP: of every micro-batch in flight on this stage)' },
  { key: 'comm_buffers', label: 'comm buffers', data: 'comm', title: 'Most bytes of communication buffers alive at once (gradient buckets, all-gathers in flight)' },
];

export const AT_REST: readonly MemoryKind[] = ['params', 'grads', 'optimizer', 'buddy'];

export function memoryTotal(m: MemoryReport): number {
  return MEMORY_KINDS.reduce((s, k) => s + m[k.key], 0);
}

export function atRest(m: MemoryReport): number {
  return AT_REST.reduce((s, k) => s + m[k], 0);
}

/** 16 bytes per parameter: fp32 weights (4) + gradients (4) + AdamW m and v (8). */
export const BYTES_PER_PARAM = 16;

/** FSDP: a worker also keeps the next worker's shards of weights, m and v (faults.ts): 12 bytes per parameter ÷ N. */
export const BUDDY_BYTES_PER_PARAM = 12;

/** DiLoCo: a worker also keeps the global model of the last outer step and the outer momentum, 4 + 4 bytes per parameter. */
export const DILOCO_OUTER_BYTES_PER_PARAM = 8;

/** What a full replica keeps per parameter on a backend: 16, and 4 more on the CPU backends, whose
 *  AdamW updates a master copy of the weights on the host (src/train/host-adamw.ts). */
export function replicaBytesPerParam(backend: string): number {
  return BYTES_PER_PARAM + (HOST_OPTIMIZER_BACKENDS.includes(backend) ? 4 : 0);
}

export const SHARD_NAMES: Record<NonNullable<DistOptions['shard']>, string> = { full: 'FULL_SHARD', grad_op: 'SHARD_GRAD_OP', none: 'NO_SHARD' };

/**
 * The bytes one worker should hold at rest, and how they add up: 16 per parameter for a full replica
 * (20 on the CPU backends), 16 per parameter of its shards (each unit padded to a multiple of N) when
 * FSDP shards; 16 (20) per parameter of its slices under TP (tp-layout.ts tpMemoryPerRank), and of the
 * largest stage under PP (pp-layout.ts stageTable: stage 0 also holds wte and wpe, the last ln_f and
 * its copy of the tied wte); a replica and DiLoCo's outer state (8 per parameter) under DiLoCo.
 */
export function expectedAtRest(table: ParamTable, d: Pick<DistOptions, 'strategy' | 'shard' | 'workers'>, backend: string): { bytes: number; formula: string } {
  const P = table.total;
  const replica = replicaBytesPerParam(backend);
  const sync = gradientSync(d);
  const N = d.workers;
  if (sync === 'tensor' && N > 1) {
    const m = tpMemoryPerRank(table, N, backend);
    return {
      bytes: m.params + m.grads + m.optimizer,
      formula: `${replica} B × ${fmt.count(m.localParams)} parameters (1/${N} of the ${fmt.count(m.sharded * N)} split among the workers + all ${fmt.count(m.replicated)} replicated: embeddings, LayerNorms, 2 biases per block)`,
    };
  }
  if (sync === 'pipeline' && N > 1) {
    const stages = Array.from({ length: N }, (_, r) => ({ r, floats: stageTable(table, N, r).total }));
    const big = stages.reduce((a, b) => (b.floats > a.floats ? b : a));
    const [lo, hi] = stageBlocks(table.units.length - 1, N, big.r);
    const extra = big.r === 0 ? ', wte and wpe' : big.r === N - 1 ? ', ln_f and its copy of wte' : '';
    return {
      bytes: replica * big.floats,
      formula: `${replica} B × ${fmt.count(big.floats)} parameters of the largest stage (worker ${big.r}: block${hi - lo > 1 ? `s ${lo}–${hi - 1}` : ` ${lo}`}${extra})`,
    };
  }
  if (d.strategy === 'diloco' && N > 1) {
    // and the outer optimizer (src/parallel/diloco.ts OuterState): the global model and its momentum
    return { bytes: (replica + DILOCO_OUTER_BYTES_PER_PARAM) * P, formula: `(${replica} + ${DILOCO_OUTER_BYTES_PER_PARAM} B: the global model and the outer momentum) × ${fmt.count(P)} parameters` };
  }
  if (sync !== 'shard') return { bytes: replica * P, formula: `${replica} B × ${fmt.count(P)} parameters` };
  const floats = table.units.reduce((s, u) => s + shardLayout(u, d.workers).shard, 0);
  if (d.workers === 1) return { bytes: BYTES_PER_PARAM * floats, formula: `${BYTES_PER_PARAM} B × ${fmt.count(P)} parameters` };
  // and the buddy copy of the next worker's shards (weights, m, v), kept for recovery
  const b = BYTES_PER_PARAM + BUDDY_BYTES_PER_PARAM;
  return { bytes: b * floats, formula: `${b} B × ${fmt.count(P)} parameters ÷ ${d.workers} workers (${BYTES_PER_PARAM} for the shards, ${BUDDY_BYTES_PER_PARAM} for a neighbour's buddy copy)` };
}

/** The legend of the bars' colours (once per panel). */
export function memoryLegend(): HTMLElement {
  return h('div', { class: 'mem-legend', 'aria-label': 'Colours of each worker\'s memory bar' },
    ...MEMORY_KINDS.map((k) => h('span', { class: `mem-key ${k.data}`, title: k.title }, h('i', { class: 'swatch' }), k.label)),
    h('span', { class: 'mem-key replica', title: `Where a full replica at rest ends: what every DDP worker really keeps, ${BYTES_PER_PARAM} bytes per parameter (weights, gradients, AdamW m and v), ${BYTES_PER_PARAM + 4} on the CPU backends (and the master copy their AdamW updates); measured on the same basis as every bar` }, h('i', { class: 'tick' }), 'full replica at rest'),
  );
}

/** One worker's stacked bar with its total, and the bytes of every kind below it. */
export class MemoryBar {
  readonly root: HTMLElement;
  private readonly track: HTMLElement;
  private readonly fill: HTMLElement;
  private readonly marker: HTMLElement;
  private readonly total: HTMLElement;
  private readonly segs = new Map<MemoryKind, HTMLElement>();
  private readonly values = new Map<MemoryKind, HTMLElement>();

  constructor() {
    this.fill = h('div', { class: 'mem-fill' });
    for (const k of MEMORY_KINDS) {
      const seg = h('span', { class: `mem-seg ${k.data}` });
      this.segs.set(k.key, seg);
      this.fill.append(seg);
    }
    this.marker = h('i', { class: 'mem-replica', hidden: true });
    this.track = h('div', { class: 'mem-track', role: 'img' }, this.fill, this.marker);
    this.total = h('span', { class: 'mem-total' }, '–');
    const kinds = h('dl', { class: 'mem-kinds' }, ...MEMORY_KINDS.map((k) => {
      const v = h('dd', {}, '–');
      this.values.set(k.key, v);
      return h('div', { class: `mem-kind ${k.data}`, title: k.title }, h('dt', {}, h('i', { class: 'swatch' }), k.label), v);
    }));
    this.root = h('div', { class: 'mem' }, h('div', { class: 'bar-caption' }, 'memory by kind'), h('div', { class: 'mem-bar' }, this.track, this.total), kinds);
  }

  /**
   * Draws m with `scale` bytes at the full track (shared by the bars to compare); `replica`: the bytes
   * of a full replica at rest, marked on the track. null clears the bar.
   */
  update(m: MemoryReport | null, scale: number, replica?: number): void {
    if (!m) {
      this.fill.style.width = '0';
      for (const v of this.values.values()) v.textContent = '–';
      this.total.textContent = '–';
      this.track.removeAttribute('aria-label');
      this.marker.hidden = true;
      return;
    }
    const total = memoryTotal(m);
    const s = Math.max(scale, total, 1);
    this.fill.style.width = `${((total / s) * 100).toFixed(2)}%`;
    for (const k of MEMORY_KINDS) {
      const seg = this.segs.get(k.key)!;
      seg.style.width = total > 0 ? `${((m[k.key] / total) * 100).toFixed(2)}%` : '0';
      seg.title = `${k.label}: ${fmt.bytes(m[k.key])}`;
      this.values.get(k.key)!.textContent = fmt.bytes(m[k.key]);
    }
    this.total.textContent = fmt.bytes(total);
    this.total.title = `at rest ${fmt.bytes(atRest(m))} + peaks during a step ${fmt.bytes(total - atRest(m))} (the peaks need not coincide)`;
    this.track.setAttribute('aria-label', `memory: ${MEMORY_KINDS.map((k) => `${k.label} ${fmt.bytes(m[k.key])}`).join(', ')}; ${fmt.bytes(total)} in all`);
    this.marker.hidden = !replica;
    if (replica) this.marker.style.left = `${Math.min(100, (replica / s) * 100).toFixed(2)}%`;
  }
}
