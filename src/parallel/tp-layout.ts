// Tensor parallelism's layout (Megatron-LM's split of a GPT-2 block; the trainer is ./tp.ts): which
// part of each parameter rank r of N holds, the rank's local parameter table, rank r's slice of a full
// flat vector and the whole vector again from every rank's slices, and the figures the cost model and the
// tests hold a run to (bytes per step, memory per rank). Pure: no tfjs, so the page and the CLI can check
// a run's shape before starting it.
//
// Vocabulary: C = n_embd, NH = n_head, hs = C / NH, N workers, Cl = C / N (= NH/N heads x hs).
//   columns     - a Linear weight (in, out) split along out (and its bias the same way): rank r computes
//                 its own outputs. c_attn: q, k and v columns of heads [r NH/N, (r+1) NH/N), three ranges
//                 [j C + r Cl, j C + (r+1) Cl) for j = q, k, v; mlp.c_fc: [r 4C/N, (r+1) 4C/N).
//   rows        - a Linear weight split along in: rank r's output is a partial sum (attn.c_proj rows
//                 [r Cl, (r+1) Cl), mlp.c_proj rows [r 4C/N, (r+1) 4C/N)): all-reduce SUM, then the
//                 (replicated) bias once.
//   replicated  - every rank holds all of it: wte (and the tied head), wpe, the LayerNorms, ln_f and the
//                 two row-parallel layers' biases.
// A rank's local table keeps the full table's names and order, with local shapes and offsets: its flat
// vector (parameters, gradients, AdamW m and v) is that table's layout.

import { HOST_OPTIMIZER_BACKENDS, type ModelConfig } from '../model/config';
import type { ParamSpec, ParamTable, UnitSpec } from '../model/params';
import type { TransportKind } from './collectives';
import { TrainingError } from '../train/errors';

/** How one parameter is split among the ranks (ranges for rank r). */
export type TPSplit =
  | { kind: 'replicated' }
  | { kind: 'columns'; ranges: [number, number][] } // ranges of the last axis (out; a bias's only axis)
  | { kind: 'rows'; lo: number; hi: number }; // range of the first axis (in)

/** A parameter of a rank's local table: its local shape and offset, the split, and the full parameter. */
export interface TPParamSpec extends ParamSpec {
  split: TPSplit;
  full: ParamSpec;
}

export interface TPTable extends ParamTable {
  params: TPParamSpec[];
  byName: Map<string, TPParamSpec>;
  /** Floats of the split (columns, rows) parameters and of the replicated ones, in this local table. */
  sharded: number;
  replicated: number;
}

/** Worker counts tensor parallelism accepts: the divisors of n_head (each rank owns whole heads). */
export function tpWorkerCounts(nHead: number): number[] {
  return Array.from({ length: nHead }, (_, i) => i + 1).filter((n) => nHead % n === 0);
}

/** Why N workers cannot split this model's heads, or null when they can. */
export function tpError(cfg: Pick<ModelConfig, 'n_head'>, N: number): string | null {
  if (Number.isInteger(N) && N >= 1 && cfg.n_head % N === 0) return null;
  const counts = tpWorkerCounts(cfg.n_head);
  const list = counts.length > 1 ? `${counts.slice(0, -1).join(', ')} or ${counts.at(-1)}` : `${counts[0]}`;
  return `tensor parallelism splits the ${cfg.n_head} heads among the workers: use ${list} workers (not ${N})`;
}

/** Throws the clear error when N workers cannot split the heads (the CLI and the page call it before starting). */
export function tpCheck(cfg: Pick<ModelConfig, 'n_head'>, N: number): void {
  const e = tpError(cfg, N);
  if (e) throw new TrainingError(e);
}

/** Rank r's heads: [h0, h0 + nh) of n_head. */
export function tpHeads(cfg: Pick<ModelConfig, 'n_head'>, N: number, r: number): { h0: number; nh: number } {
  tpCheck(cfg, N);
  const nh = cfg.n_head / N;
  return { h0: r * nh, nh };
}

/** How rank r of N holds a parameter of the full table (by its name and full shape). */
export function tpSplit(spec: Pick<ParamSpec, 'name' | 'shape'>, N: number, r: number): TPSplit {
  const out = spec.shape[spec.shape.length - 1];
  const part = (w: number, base = 0): [number, number] => [base + (r * w) / N, base + ((r + 1) * w) / N];
  if (/\.attn\.c_attn\.(weight|bias)$/.test(spec.name)) {
    const C = out / 3; // q | k | v, each C wide
    return { kind: 'columns', ranges: [0, 1, 2].map((j) => part(C, j * C)) };
  }
  if (/\.mlp\.c_fc\.(weight|bias)$/.test(spec.name)) return { kind: 'columns', ranges: [part(out)] };
  if (/\.(attn|mlp)\.c_proj\.weight$/.test(spec.name)) {
    const [lo, hi] = part(spec.shape[0]);
    return { kind: 'rows', lo, hi };
  }
  return { kind: 'replicated' };
}

function localShape(shape: number[], split: TPSplit): number[] {
  if (split.kind === 'replicated') return shape;
  if (split.kind === 'rows') return [split.hi - split.lo, ...shape.slice(1)];
  const width = split.ranges.reduce((n, [lo, hi]) => n + hi - lo, 0);
  return [...shape.slice(0, -1), width];
}

/** Rank r's local table: the full table's names, order, units and weight-decay flags, with local shapes and offsets. */
export function tpLocalTable(table: ParamTable, N: number, r: number): TPTable {
  const params: TPParamSpec[] = [];
  const units: UnitSpec[] = [];
  let offset = 0;
  let sharded = 0;
  for (const u of table.units) {
    const start = offset;
    const unitParams: TPParamSpec[] = [];
    for (const full of u.params) {
      const split = tpSplit(full, N, r);
      const shape = localShape(full.shape, split);
      const size = shape.reduce((a, b) => a * b, 1);
      const spec: TPParamSpec = { name: full.name, shape, size, offset, unit: full.unit, decay: full.decay, split, full };
      params.push(spec);
      unitParams.push(spec);
      offset += size;
      if (split.kind !== 'replicated') sharded += size;
    }
    units.push({ index: u.index, name: u.name, offset: start, size: offset - start, params: unitParams });
  }
  return { params, units, byName: new Map(params.map((p) => [p.name, p])), total: offset, sharded, replicated: offset - sharded };
}

/**
 * Copies between a full parameter (src/dst at `fullAt`) and its local part (at `localAt`): toLocal true
 * takes rank r's part of the full one, false puts it back.
 */
function copyPart(full: Float32Array, local: Float32Array, p: TPParamSpec, toLocal: boolean): void {
  const f = p.full;
  const move = (fo: number, lo: number, n: number) => {
    if (toLocal) local.set(full.subarray(f.offset + fo, f.offset + fo + n), p.offset + lo);
    else full.set(local.subarray(p.offset + lo, p.offset + lo + n), f.offset + fo);
  };
  const s = p.split;
  if (s.kind === 'replicated') return move(0, 0, f.size);
  const out = f.shape[f.shape.length - 1];
  if (s.kind === 'rows') return move(s.lo * out, 0, (s.hi - s.lo) * out);
  // columns: every row of the full parameter holds the ranges; the local row is them side by side
  const rows = f.size / out;
  const width = p.shape[p.shape.length - 1];
  for (let i = 0; i < rows; i++) {
    let at = 0;
    for (const [lo, hi] of s.ranges) {
      move(i * out + lo, i * width + at, hi - lo);
      at += hi - lo;
    }
  }
}

/** Rank r's local flat vector (parameters, gradients, m or v) from a full one. */
export function tpSlice(full: Float32Array, table: ParamTable, N: number, r: number): Float32Array {
  if (full.length !== table.total) throw new Error(`tpSlice: ${full.length} values, the model has ${table.total}`);
  const local = tpLocalTable(table, N, r);
  const out = new Float32Array(local.total);
  for (const p of local.params) copyPart(full, out, p, true);
  return out;
}

/** The full flat vector from every rank's local one (the inverse of tpSlice; replicated parameters from rank 0). */
export function tpAssemble(perRank: Float32Array[], table: ParamTable, N: number): Float32Array {
  if (perRank.length !== N) throw new Error(`tpAssemble: ${perRank.length} parts for ${N} ranks`);
  const full = new Float32Array(table.total);
  for (let r = N - 1; r >= 0; r--) {
    const local = tpLocalTable(table, N, r);
    if (perRank[r].length !== local.total) throw new Error(`tpAssemble: rank ${r}'s part has ${perRank[r].length} values, its table ${local.total}`);
    for (const p of local.params) copyPart(full, perRank[r], p, false); // rank 0 last: its replicated values stay
  }
  return full;
}

// ---- figures for the cost model and the tests -----------------------------------------------------

/** Bytes one rank sends in an all-reduce of `floats` floats over N ranks (what its bytesSent counts). */
function allReduceBytes(transport: TransportKind, floats: number, N: number): number {
  if (N === 1) return 0;
  const S = 4 * floats;
  return transport === 'ring' ? (2 * (N - 1) * S) / N : S; // star: up to the hub; shared: its buffer into shared memory
}

export interface TPBytes {
  allReduces: number; // per step: 4 per block per micro-batch, and the norm's
  activationFloats: number; // floats of each activation all-reduce: B * T * C
  normFloats: number; // the gradient norm's all-reduce: one float per rank
  bytes: number; // sent by one rank per step
}

/**
 * Per rank per step: 2 all-reduces of (B*T, C) in forward and 2 in backward per block per micro-batch
 * (4 n_layer K of B*T*C floats), each 2(N-1)/N x S on the ring (S on star and shared), and the small
 * all-reduce of the gradient norm's sums of squares (N floats).
 */
export function tpBytesPerStep(cfg: Pick<ModelConfig, 'n_layer' | 'n_embd' | 'block_size'> & { batch_size: number; grad_accum: number }, N: number, transport: TransportKind = 'ring'): TPBytes {
  const activationFloats = cfg.batch_size * cfg.block_size * cfg.n_embd;
  const n = 4 * cfg.n_layer * cfg.grad_accum;
  return {
    allReduces: n + 1,
    activationFloats,
    normFloats: N,
    bytes: n * allReduceBytes(transport, activationFloats, N) + allReduceBytes(transport, N, N),
  };
}

export interface TPMemory {
  localParams: number; // floats this rank holds: the sharded ones (~1/N) and the replicated ones
  sharded: number;
  replicated: number;
  params: number; // bytes at rest, by kind (as MemoryReport)
  grads: number;
  optimizer: number; // AdamW m and v; on the CPU backends also the master copy of the weights
}

/** What one rank holds at rest: 4 bytes per local parameter for weights and gradients, 8 (12 on the CPU backends) for AdamW. */
export function tpMemoryPerRank(table: ParamTable, N: number, backend: string): TPMemory {
  const local = tpLocalTable(table, N, 0);
  const P = local.total;
  const host = HOST_OPTIMIZER_BACKENDS.includes(backend);
  return { localParams: P, sharded: local.sharded, replicated: local.replicated, params: 4 * P, grads: 4 * P, optimizer: (host ? 12 : 8) * P };
}
