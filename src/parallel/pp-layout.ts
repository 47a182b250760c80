// Pipeline parallelism, the pure part (no tfjs: the coordinator, the CLI, the page's timeline and the
// cost model use it before anything starts): which blocks and parameters each stage owns, the local
// flat layout of a stage's parameters, the micro-batch schedules (GPipe and 1F1B) as lists of
// operations per stage, the bubble, the activations in flight, and the bytes a rank moves per step.
// src/parallel/pp.ts runs it; its header comment describes the design.
//
// Vocabulary: N stages (one per rank), M micro-batches per step, G = batch_size x grad_accum rows in a
// step's global batch, B_micro = G / M rows per micro-batch, T tokens per row, C channels, V vocabulary.

import { ConfigError, type RunConfig } from '../model/config';
import type { ParamSpec, ParamTable, UnitSpec } from '../model/params';
import { chunkBounds } from './collectives';
import { PIPELINE_SCHEDULES, type PipelineSchedule } from './layout';

export { PIPELINE_SCHEDULES, type PipelineSchedule };

/** One operation of a stage: the forward (F) or the backward (B) of micro-batch mb. */
export interface PipelineOp {
  op: 'F' | 'B';
  mb: number;
}

// ---- stages and micro-batches ------------------------------------------------------------------------

/**
 * Throws a ConfigError unless N stages and M micro-batches fit the model and the batch: every stage
 * needs at least one transformer block (N <= n_layer), and the step's global batch of G rows must
 * split into M equal micro-batches (M divides G).
 */
export function ppCheck(cfg: Pick<RunConfig, 'n_layer' | 'batch_size' | 'grad_accum'>, N: number, M: number): void {
  if (!(Number.isInteger(N) && N >= 1)) throw new ConfigError(`pipeline parallelism needs a whole number of stages (workers) >= 1, got ${N}`);
  if (N > cfg.n_layer) {
    throw new ConfigError(
      `pipeline parallelism gives every stage (worker) at least one transformer block: ${N} workers need n_layer >= ${N}, ` +
        `this model has n_layer ${cfg.n_layer}. Use at most ${cfg.n_layer} workers, or more layers`,
    );
  }
  const G = cfg.batch_size * cfg.grad_accum;
  if (!(Number.isInteger(M) && M >= 1)) throw new ConfigError(`the number of micro-batches must be a whole number >= 1, got ${M}`);
  if (G % M !== 0) {
    const divisors = Array.from({ length: G }, (_, i) => i + 1).filter((d) => G % d === 0);
    throw new ConfigError(
      `${M} micro-batches do not divide the step's batch of ${G} sequences (batch_size ${cfg.batch_size} x grad_accum ${cfg.grad_accum}); ` +
        `use one of ${divisors.join(', ')}`,
    );
  }
}

/** Rows per micro-batch: G / M. */
export function microBatchRows(cfg: Pick<RunConfig, 'batch_size' | 'grad_accum'>, M: number): number {
  return (cfg.batch_size * cfg.grad_accum) / M;
}

/** Stage r's blocks [lo, hi): n_layer split into N contiguous runs as evenly as possible, earlier stages one more. */
export function stageBlocks(nLayer: number, N: number, r: number): [number, number] {
  const base = Math.floor(nLayer / N);
  const extra = nLayer % N;
  const lo = r * base + Math.min(r, extra);
  return [lo, lo + base + (r < extra ? 1 : 0)];
}

/**
 * The parameters stage r owns, in the table's order: its blocks; stage 0 also wte and wpe (the
 * embedding); the last stage ln_f and its own copy of wte (the tied head). With N = 1, everything.
 */
export function stageParams(table: ParamTable, N: number, r: number): ParamSpec[] {
  const nLayer = table.units.length - 1;
  const [lo, hi] = stageBlocks(nLayer, N, r);
  const first = r === 0;
  const last = r === N - 1;
  return table.params.filter((p) => {
    if (p.unit > 0) return p.unit - 1 >= lo && p.unit - 1 < hi;
    if (p.name === 'wte') return first || last;
    if (p.name === 'wpe') return first;
    return last; // ln_f
  });
}

/**
 * Stage r's own parameter table: its parameters (stageParams) with offsets into a local flat vector,
 * packed in the same order; units are the global units' parts this stage owns. Its gradients and
 * AdamW's m and v use the same layout (HostAdamW takes it as is).
 */
export function stageTable(table: ParamTable, N: number, r: number): ParamTable {
  const params: ParamSpec[] = [];
  const units: UnitSpec[] = [];
  let offset = 0;
  for (const p of stageParams(table, N, r)) {
    const local = { ...p, offset };
    params.push(local);
    let u = units.at(-1);
    if (!u || u.index !== p.unit) units.push((u = { index: p.unit, name: table.units[p.unit].name, offset, size: 0, params: [] }));
    u.params.push(local);
    u.size += p.size;
    offset += p.size;
  }
  return { params, units, byName: new Map(params.map((p) => [p.name, p])), total: offset };
}

/** Stage r's local vector (its parameters, gradients, m or v) cut from a full flat vector. */
export function ppSlice(flat: Float32Array, table: ParamTable, N: number, r: number): Float32Array {
  if (flat.length !== table.total) throw new ConfigError(`a flat vector of ${flat.length} values, this model has ${table.total}`);
  const local = stageTable(table, N, r);
  const out = new Float32Array(local.total);
  for (const p of local.params) {
    const g = table.byName.get(p.name)!;
    out.set(flat.subarray(g.offset, g.offset + g.size), p.offset);
  }
  return out;
}

/**
 * The full flat vector from every stage's local vector (perRank[r] in stageTable(table, N, r)'s
 * layout). wte is taken from stage 0 (the last stage's copy is identical after every step).
 */
export function ppAssemble(perRank: Float32Array[], table: ParamTable, N: number): Float32Array {
  if (perRank.length !== N) throw new Error(`ppAssemble: ${perRank.length} vectors for ${N} stages`);
  const flat = new Float32Array(table.total);
  for (let r = N - 1; r >= 0; r--) { // stage 0 last, so its wte is the one kept
    const local = stageTable(table, N, r);
    if (perRank[r].length !== local.total) throw new Error(`ppAssemble: stage ${r} sent ${perRank[r].length} values, it owns ${local.total}`);
    for (const p of local.params) flat.set(perRank[r].subarray(p.offset, p.offset + p.size), table.byName.get(p.name)!.offset);
  }
  return flat;
}

// ---- schedules ----------------------------------------------------------------------------------------

/**
 * The order in which each stage runs its forwards (F) and backwards (B), one list per stage:
 *   gpipe - all M forwards, then all M backwards in reverse (GPipe; activations of M micro-batches held).
 *   1f1b  - PyTorch's Schedule1F1B / Megatron's non-interleaved schedule: stage r runs
 *           w = min(N - r - 1, M) warm-up forwards, then alternates one forward, one backward while
 *           forwards remain (steady state), then the remaining backwards (cool-down); backwards in
 *           micro-batch order. At most min(N - r, M) micro-batches are in flight on stage r.
 * Sends never block (the collectives queue them), so any stage order consistent with data dependencies
 * completes; these two are the classic ones.
 */
export function pipelineSchedule(kind: PipelineSchedule, N: number, M: number): PipelineOp[][] {
  return Array.from({ length: N }, (_, r) => {
    const ops: PipelineOp[] = [];
    if (kind === 'gpipe') {
      for (let m = 0; m < M; m++) ops.push({ op: 'F', mb: m });
      for (let m = M - 1; m >= 0; m--) ops.push({ op: 'B', mb: m });
      return ops;
    }
    if (kind !== '1f1b') throw new ConfigError(`unknown pipeline schedule "${kind}" (use ${PIPELINE_SCHEDULES.join(' or ')})`);
    const warmup = Math.min(N - r - 1, M);
    for (let m = 0; m < warmup; m++) ops.push({ op: 'F', mb: m });
    let b = 0;
    for (let f = warmup; f < M; f++) {
      ops.push({ op: 'F', mb: f });
      ops.push({ op: 'B', mb: b++ });
    }
    while (b < M) ops.push({ op: 'B', mb: b++ });
    return ops;
  });
}

/** The pipeline bubble of a synchronous schedule with equal stage times: (N - 1) / (M + N - 1) of the step idle. */
export function bubbleFraction(N: number, M: number): number {
  return (N - 1) / (M + N - 1);
}

/**
 * The bubble as measured: every stage starts the step together; the schedule lasts as long as the
 * stage that finishes last (the longest span), and a stage is idle for the part of that it did not work
 * (waiting for a neighbour, or done early). Per stage 1 - busy / longest span, and their mean: what
 * (N-1)/(M+N-1) predicts. (The step's wte exchange, norm and update after the schedule are left out.)
 */
export function measuredBubble(stages: { spanMs: number; busyMs: number }[]): { perStage: number[]; mean: number } {
  const span = Math.max(...stages.map((s) => s.spanMs));
  const perStage = stages.map((s) => (span > 0 ? Math.max(0, 1 - s.busyMs / span) : 0));
  return { perStage, mean: perStage.reduce((a, b) => a + b, 0) / Math.max(1, perStage.length) };
}

/** The most micro-batches whose activations stage r holds at once: GPipe M, 1F1B min(N - r, M). */
export function peakInFlight(kind: PipelineSchedule, N: number, M: number, r: number): number {
  return kind === 'gpipe' ? M : Math.min(N - r, M);
}

/** The same, counted from a stage's operation list (what the tests hold peakInFlight to). */
export function inFlightOf(ops: PipelineOp[]): number {
  let alive = 0;
  let peak = 0;
  for (const o of ops) {
    alive += o.op === 'F' ? 1 : -1;
    peak = Math.max(peak, alive);
  }
  return peak;
}

// ---- bytes ------------------------------------------------------------------------------------------

/** Floats in one micro-batch's activation (or its gradient) crossing a stage boundary: B_micro x T x C. */
export function boundaryFloats(cfg: Pick<RunConfig, 'batch_size' | 'grad_accum' | 'block_size' | 'n_embd'>, M: number): number {
  return microBatchRows(cfg, M) * cfg.block_size * cfg.n_embd;
}

/**
 * Bytes each rank sends per step (index r), as the ring transport counts them (every point-to-point
 * message of a pipeline is one hop on the ring: r -> r + 1, r + 1 -> r, and 0 <-> N - 1 are neighbours):
 *   - forward: every micro-batch's activation to the next stage (r < N - 1): M x B_micro T C floats;
 *   - backward: every micro-batch's activation gradient to the previous stage (r > 0): the same;
 *   - the tied wte: the first and the last stage send each other their wte gradient (V x C floats);
 *   - the gradient norm and the loss: one ring all-reduce of 2 floats, ~2 (N-1)/N x 2 floats per rank
 *     (exactly: all chunks but rank r's in the reduce-scatter, all but rank r-1's in the all-gather).
 * With N = 1 nothing moves.
 */
export function ppBytesPerStep(cfg: Pick<RunConfig, 'batch_size' | 'grad_accum' | 'block_size' | 'n_embd' | 'vocab_size'>, N: number, M: number): number[] {
  const act = M * boundaryFloats(cfg, M) * 4;
  const wte = cfg.vocab_size * cfg.n_embd * 4;
  const S = 2;
  const chunk = (i: number) => {
    const [lo, hi] = chunkBounds(S, N, ((i % N) + N) % N);
    return hi - lo;
  };
  const scalars = (r: number) => (N > 1 ? (S - chunk(r) + S - chunk(r - 1)) * 4 : 0);
  return Array.from({ length: N }, (_, r) =>
    (r < N - 1 ? act : 0) + (r > 0 ? act : 0) + (N > 1 && (r === 0 || r === N - 1) ? wte : 0) + scalars(r));
}
