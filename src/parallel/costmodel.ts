// A cost model a teacher can put on the board: how long a step should take, how many bytes each worker
// should move, and how much memory each worker needs, for each strategy. Measured numbers sit beside
// these predictions in the page and in `npm run bench`; the gap is the lesson.
//
//   compute     FLOPs per token 6N + 12*L*H*Q*T (nanoGPT's estimate_mfu; N without wpe), times the
//               tokens one worker processes per step, divided by the backend's FLOP/s (shared when
//               there are more CPU workers than cores).
//   ring        all-reduce 2(n-1)*alpha + 2(n-1)/n * S/beta; reduce-scatter and all-gather
//               (n-1)*alpha + (n-1)/n * S/beta each (alpha: latency per message, beta: bytes/s per link).
//   star        every rank sends S to the coordinator and gets S back; the coordinator's link carries
//               n*S each way: 2*alpha + 2n * S/beta.
//   copies      gradients read back from the backend and results uploaded (hostCopy): a GPU's cost.
//   waiting     a synchronous step waits for the slowest worker: measured by a probe of N workers
//               computing at once without communicating, which also gives the FLOP/s each then gets.
//   memory      16 bytes per parameter for DDP (fp32 weights, gradients, AdamW m and v), 20 on the CPU
//               backends (their AdamW also keeps a master copy of the weights); FULL_SHARD 16/n per
//               parameter plus the gathered units (about two blocks and the root at the peak).

import { HOST_OPTIMIZER_BACKENDS, type ModelConfig, type RunConfig } from '../model/config';
import { buildParamTable, type ParamTable } from '../model/params';
import type { TransportKind } from './collectives';
import { assignBuckets, gradientSync, shardLayout, type ShardStrategy, type Strategy } from './layout';

/** What calibration measures on the user's machine. */
export interface Calibration {
  flops: number; // training FLOP/s of one worker on this backend, with a core to itself
  cores?: number; // CPU cores (navigator.hardwareConcurrency): more CPU workers than cores share them
  /** FLOP/s of one worker while `workers` workers compute at once with no communication (a probe). */
  concurrent?: { workers: number; flops: number; stragglerMs: number };
  /** Bytes per second between JavaScript and the backend (tensor upload, readback): large on a GPU. */
  hostCopy?: { upload: number; readback: number };
  alpha: Record<TransportKind, number>; // seconds per message
  beta: Record<TransportKind, number>; // bytes per second
}

/** A calibration for what does not depend on one: predict()'s bytes and memory. */
export const UNCALIBRATED: Calibration = { flops: 1, alpha: { ring: 0, star: 0, shared: 0 }, beta: { ring: 1, star: 1, shared: 1 } };

export interface Plan {
  strategy: Strategy;
  workers: number;
  transport: TransportKind;
  bucketMb: number;
  shard?: ShardStrategy;
}

export interface Prediction {
  compute_ms: number;
  comm_ms: number;
  copy_ms: number; // moving gradients and gathered parameters between the backend and JavaScript
  step_ms: number; // compute + comm + copies + waiting for the slowest worker (nothing overlaps on one thread per worker)
  tokens_per_s: number;
  bytes_per_rank: number; // sent per step
  memory: { params: number; grads: number; optimizer: number; gathered_peak: number; activations_peak: number; total: number };
}

/** nanoGPT's estimate_mfu: FLOPs per token of a forward and backward pass. */
export function flopsPerToken(cfg: ModelConfig): number {
  const N = buildParamTable(cfg).total - cfg.block_size * cfg.n_embd;
  return 6 * N + 12 * cfg.n_layer * cfg.n_head * (cfg.n_embd / cfg.n_head) * cfg.block_size;
}

export type CollectiveOp = 'all-reduce' | 'reduce-scatter' | 'all-gather';

/**
 * Seconds a collective of S bytes (the full, unsharded size) takes over n ranks, and the bytes one
 * rank sends in it (what the workers' bytes_sent counts).
 */
export function collectiveCost(kind: TransportKind, op: CollectiveOp, S: number, n: number, alpha: number, beta: number): { seconds: number; bytes: number } {
  if (n === 1) return { seconds: 0, bytes: 0 };
  const half = op !== 'all-reduce';
  if (kind === 'star') {
    // to the hub and back; the hub's link carries n times what one rank sends
    const up = op === 'all-gather' ? S / n : S;
    const down = op === 'reduce-scatter' ? S / n : S;
    return { seconds: 2 * alpha + (n * (up + down)) / beta, bytes: up };
  }
  const seconds = (half ? 1 : 2) * ((n - 1) * alpha + ((n - 1) / n) * (S / beta));
  if (kind === 'ring') return { seconds, bytes: (half ? 1 : 2) * ((n - 1) / n) * S };
  return { seconds, bytes: op === 'all-gather' ? S / n : S }; // shared: what a rank writes into shared memory
}

/** Activation bytes saved for backward: per block ~19 (B,T,C) tensors and 2 attention maps, fp32. */
export function activationBytes(cfg: ModelConfig, B: number): number {
  const T = cfg.block_size;
  return 4 * cfg.n_layer * (19 * B * T * cfg.n_embd + 2 * B * cfg.n_head * T * T);
}

export function predict(cfg: RunConfig, plan: Plan, cal: Calibration, table: ParamTable = buildParamTable(cfg)): Prediction {
  const n = plan.workers;
  const { alpha: a, beta: b } = { alpha: cal.alpha[plan.transport], beta: cal.beta[plan.transport] };
  const tokens = cfg.batch_size * cfg.grad_accum * cfg.block_size; // per worker
  // Workers computing at once slow each other down (shared cores, caches, memory bandwidth): with a
  // probe of exactly this many workers, use its FLOP/s; otherwise share the cores.
  const probe = n > 1 && cal.concurrent?.workers === n ? cal.concurrent : null;
  const shareOfCore = cal.cores ? Math.min(1, cal.cores / n) : 1;
  const compute = (tokens * flopsPerToken(cfg)) / (probe ? probe.flops : cal.flops * shareOfCore);
  const P = table.total;
  const sync = gradientSync(plan);
  const shard = plan.shard ?? 'full';
  let comm = 0;
  let bytes = 0;
  const masterCopy = HOST_OPTIMIZER_BACKENDS.includes(cfg.backend) ? 4 * P : 0;
  const memory = { params: 4 * P, grads: 4 * P, optimizer: 8 * P + masterCopy, gathered_peak: 0, activations_peak: activationBytes(cfg, cfg.batch_size), total: 0 };
  const add = (op: CollectiveOp, S: number, times = 1) => {
    const c = collectiveCost(plan.transport, op, S, n, a, b);
    comm += times * c.seconds;
    bytes += times * c.bytes;
  };
  if (n > 1 && sync === 'all-reduce') {
    const buckets = assignBuckets(table, plan.bucketMb * 2 ** 20);
    buckets.forEach((bucket, i) => add('all-reduce', 4 * bucket.size + (i === buckets.length - 1 ? 4 : 0)));
  } else if (sync === 'shard') {
    const shardFloats = table.units.reduce((s, u) => s + shardLayout(u, n).shard, 0);
    memory.params = memory.grads = 4 * shardFloats;
    memory.optimizer = 8 * shardFloats;
    const [root, ...blocks] = table.units.map((u) => 4 * shardLayout(u, n).padded);
    memory.gathered_peak = root + (shard === 'full' ? 2 * Math.max(...blocks) : blocks.reduce((x, y) => x + y, 0));
    const K = cfg.grad_accum; // FSDP communicates on every micro-batch
    add('all-gather', root, K); // the root stays gathered from its forward to the embedding backward
    add('reduce-scatter', root, K);
    for (const S of blocks) {
      add('all-gather', S, shard === 'full' ? 2 * K : K); // FULL_SHARD gathers again for backward
      add('reduce-scatter', S, K);
    }
  }
  // Scalars: FSDP all-reduces the step's loss and the squared gradient norm; DDP sends the loss
  // as one more float of its last bucket.
  if (n > 1 && sync === 'shard') add('all-reduce', 4, 2);
  memory.total = memory.params + memory.grads + memory.optimizer + memory.gathered_peak + memory.activations_peak;
  // A synchronous step waits for the slowest worker: the probe's mean gap between the slowest worker's
  // compute and the average, once per step.
  const straggler = probe ? probe.stragglerMs / 1000 : 0;
  // Host copies: DDP reads every gradient back and uploads the averaged ones; FSDP reads each unit's
  // gradients back and uploads every gathered unit; its optimizer uploads the parameter and gradient
  // shards and reads the updated parameter shard back (the shards live on the host).
  let readback = 0;
  let upload = 0;
  if (n > 1 && sync === 'all-reduce') [readback, upload] = [4 * P, 4 * P];
  else if (sync === 'shard') {
    const [root, ...blocks] = table.units.map((u) => 4 * shardLayout(u, n).padded);
    const all = root + blocks.reduce((x, y) => x + y, 0);
    readback = cfg.grad_accum * all + all / n;
    upload = cfg.grad_accum * (root + (shard === 'full' ? 2 : 1) * (all - root)) + (2 * all) / n;
  }
  const copy = cal.hostCopy ? readback / cal.hostCopy.readback + upload / cal.hostCopy.upload : 0;
  const step = compute + comm + copy + straggler;
  return {
    compute_ms: compute * 1000,
    comm_ms: comm * 1000,
    copy_ms: copy * 1000,
    step_ms: step * 1000,
    tokens_per_s: (n * tokens) / step,
    bytes_per_rank: bytes,
    memory,
  };
}

/**
 * Fits alpha and beta of a transport from all-reduce timings at two or more sizes (least squares on
 * t = c0 + c1 * S, then inverting the transport's formula).
 */
export function fitAlphaBeta(kind: TransportKind, n: number, samples: { bytes: number; seconds: number }[]): { alpha: number; beta: number } {
  const m = samples.length;
  const mx = samples.reduce((s, p) => s + p.bytes, 0) / m;
  const my = samples.reduce((s, p) => s + p.seconds, 0) / m;
  const sxy = samples.reduce((s, p) => s + (p.bytes - mx) * (p.seconds - my), 0);
  const sxx = samples.reduce((s, p) => s + (p.bytes - mx) ** 2, 0);
  const c1 = Math.max(sxy / sxx, 1e-15);
  const c0 = Math.max(my - c1 * mx, 0);
  if (kind === 'star') return { alpha: c0 / 2, beta: (2 * n) / c1 };
  return { alpha: c0 / (2 * (n - 1)), beta: (2 * (n - 1)) / n / c1 };
}

/** Training FLOP/s a worker achieved: the model's FLOPs for the tokens it processed in computeMs. */
export function achievedFlops(cfg: RunConfig, computeMs: number): number {
  return (cfg.batch_size * cfg.grad_accum * cfg.block_size * flopsPerToken(cfg)) / (computeMs / 1000);
}
