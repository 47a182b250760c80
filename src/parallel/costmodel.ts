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
//   waiting     a synchronous step waits for the slowest worker at every point where the workers meet
//               (each bucket all-reduce, each FSDP all-gather, the end of its reduce-scatters, the
//               step's "every rank ready"): sync points x the lag of the slowest worker, measured by a
//               probe of N workers computing at once without communicating, which also gives the
//               FLOP/s each then gets (what the workers really get, load included).
//   fixed       per step: the coordinator's round trips to every worker (prepare, commit), measured by
//               the probe; FSDP, TP and PP add the buddy copies (a worker's part to its neighbour: two
//               more round trips and 12 bytes per parameter of the part copied); per collective: alpha;
//               per FSDP unit: its all-gathers and reduce-scatter, each a sync point.
//   cores       n CPU workers never get more than the cores give: beyond the probe, the FLOP/s of all
//               workers together is capped at what the probe (or cores x one worker) measured.
//   memory      what each worker allocates, on one basis for every strategy: weights, gradients and
//               AdamW m and v (16 bytes per parameter), plus on the CPU backends the master copy of the
//               weights a replica's host AdamW updates (20); FULL_SHARD 16/n per parameter (its AdamW
//               runs on the shards, with a weight-decay mask) plus the gathered units (the root and
//               two blocks with prefetch, one without), the buddy copy of a neighbour's part (12/n),
//               the communication buffers (DDP's buckets, FSDP's gathers and scatters in flight).
//   tensor      TP (Megatron): each worker computes 1/n of every block (its heads, its MLP columns) on
//               the whole batch and repeats the embeddings and the head; 4 all-reduces of a (B,T,C)
//               activation per block per micro-batch (2 in forward, 2 in backward) on the critical path.
//   pipeline    PP: stage r computes its blocks (and the embedding or the head) for every micro-batch;
//               with equal stages a step takes (M + n - 1) micro-batch slots of the slowest stage, of
//               which n - 1 are idle (the bubble, (n-1)/(M+n-1)); each boundary carries a (B/M,T,C)
//               activation forward and its gradient back per micro-batch, and the first and last stage
//               swap their tied wte gradients. Memory: the stage's parameters, and the activations of
//               the micro-batches in flight (GPipe: M; 1F1B: at most n - r).
//   diloco      local SGD (DiLoCo): every worker computes as under DDP but all-reduces nothing per step;
//               every H steps the ranks all-reduce their pseudo-gradients, P values of 4 (fp32), 2 (fp16)
//               or 1 (int8) bytes: per step on the ring 2(n-1)/n * P * bytes per value / H sent, and
//               (2(n-1)*alpha + 2(n-1)/n * P*bytes/beta) / H of time. Memory: DDP's replica, plus the
//               global model and the outer momentum (8 bytes per parameter), and the pseudo-gradient.
//   network     the relay between browsers: every rank sends S up and gets the sum back (as star, the
//               relay's link carrying n*S each way), alpha and beta measured through it.
//   wi-fi       classroom Wi-Fi: one shared medium of W bytes/s (20 MB/s) for the whole class, so every
//               rank gets beta = W/n and all ranks' traffic shares it (a ring all-reduce of S then takes
//               2(n-1)*alpha + 2(n-1)*S/W); each laptop computes on its own cores.

import { HOST_OPTIMIZER_BACKENDS, type ModelConfig, type RunConfig } from '../model/config';
import { buildParamTable, type ParamTable } from '../model/params';
import { TRANSPORTS, type TransportKind } from './collectives';
import { assignBuckets, gradientSync, shardLayout, type PipelineSchedule, type ShardStrategy, type Strategy } from './layout';
import { bubbleFraction, peakInFlight, ppBytesPerStep, stageBlocks } from './pp-layout';

/** What calibration measures on the user's machine. */
export interface Calibration {
  flops: number; // training FLOP/s of one worker on this backend, with a core to itself
  cores?: number; // CPU cores (navigator.hardwareConcurrency): more CPU workers than cores share them
  /**
   * FLOP/s of one worker while `workers` workers compute at once with no communication (a probe), and
   * the slowest one's lag per step (what a synchronous step waits for at each point the workers meet).
   */
  concurrent?: { workers: number; flops: number; stragglerMs: number };
  /** Fixed cost of a step (ms): the coordinator's round trips to the workers and back, measured by the probe. */
  stepOverheadMs?: number;
  /** Bytes per second between JavaScript and the backend (tensor upload, readback): large on a GPU. */
  hostCopy?: { upload: number; readback: number };
  alpha: Record<TransportKind, number>; // seconds per message
  beta: Record<TransportKind, number>; // bytes per second
}

/** A calibration for what does not depend on one: predict()'s bytes and memory. */
export const UNCALIBRATED: Calibration = { flops: 1, alpha: perTransport(0), beta: perTransport(1) };

/** The same value for every transport (TRANSPORTS), e.g. a link measured once used for all. */
export function perTransport(v: number): Record<TransportKind, number> {
  return Object.fromEntries(TRANSPORTS.map((t) => [t, v])) as Record<TransportKind, number>;
}

/** DiLoCo's pseudo-gradients on the wire: fp32, fp16 or int8. */
export type OuterCompress = 'none' | 'fp16' | 'int8';
export const OUTER_COMPRESS: readonly OuterCompress[] = ['none', 'fp16', 'int8'];
/** Bytes of one value of a pseudo-gradient as it travels. */
export const BYTES_PER_VALUE: Record<OuterCompress, number> = { none: 4, fp16: 2, int8: 1 };
/** DiLoCo's defaults (coordinator.ts DIST_DEFAULTS): H = 20 inner steps between two outer steps. */
export const DEFAULT_INNER_STEPS = 20;

export interface Plan {
  strategy: Strategy;
  workers: number;
  transport: TransportKind;
  bucketMb: number;
  shard?: ShardStrategy;
  microbatches?: number; // PP (default 4)
  schedule?: PipelineSchedule; // PP (default 1f1b)
  prefetch?: boolean; // FSDP's backward prefetch (default on)
  buddies?: boolean; // FSDP, TP, PP with 2+ workers keep a neighbour's part (default on, as the coordinator)
  innerSteps?: number; // DiLoCo: H, inner steps between two outer all-reduces (default 20)
  outerCompress?: OuterCompress; // DiLoCo: how the pseudo-gradients travel (default none: fp32)
}

export interface Prediction {
  compute_ms: number;
  comm_ms: number;
  copy_ms: number; // moving gradients and gathered parameters between the backend and JavaScript
  step_ms: number; // compute + comm + copies + waiting + fixed costs (nothing overlaps on one thread per worker)
  wait_ms: number; // waiting for the slowest worker: sync points x its lag (PP: and the bubble)
  fixed_ms: number; // the step's fixed costs: the coordinator's round trips, the buddy copies
  sync_points: number; // where the workers meet in a step
  tokens_per_s: number;
  bytes_per_rank: number; // sent per step (PP: the busiest rank's)
  bytes_by_rank?: number[]; // PP: each stage's, which differ
  bubble?: number; // PP: the share of a step a stage sits idle
  bubble_ms?: number; // PP: that idle time (part of step_ms; measured as waiting)
  outer?: { inner_steps: number; comm_ms: number; bytes: number; copy_ms: number }; // DiLoCo: one outer step's all-reduce (1/H of it is in each step's figures)
  memory: PredictedMemory;
}

/** Bytes per worker by kind, as MemoryReport measures them; total is their sum (peaks need not coincide). */
export interface PredictedMemory {
  params: number;
  grads: number;
  optimizer: number;
  buddy: number;
  gathered_peak: number;
  activations_peak: number;
  comm_buffers: number;
  total: number;
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
  if (kind === 'star' || (kind as string) === 'network') {
    // to the hub (star: this page; network: the relay) and back; the hub's link carries n times what one rank sends
    const up = op === 'all-gather' ? S / n : S;
    const down = op === 'reduce-scatter' ? S / n : S;
    return { seconds: 2 * alpha + (n * (up + down)) / beta, bytes: up };
  }
  const seconds = (half ? 1 : 2) * ((n - 1) * alpha + ((n - 1) / n) * (S / beta));
  if (kind === 'ring') return { seconds, bytes: (half ? 1 : 2) * ((n - 1) / n) * S };
  return { seconds, bytes: op === 'all-gather' ? S / n : S }; // shared: what a rank writes into shared memory
}

/**
 * Activation bytes saved for backward: per block ~19 (B,T,C) tensors and 2 attention maps, fp32. Under
 * tensor parallelism over tp workers, 16 of those (B,T,C) widths (q, k, v, the attention output, the MLP's
 * 4C-wide ones) and the attention maps are split; LayerNorm's and the residual's stay whole.
 */
export function activationBytes(cfg: ModelConfig, B: number, layers = cfg.n_layer, tp = 1): number {
  const T = cfg.block_size;
  const widths = tp === 1 ? 19 : 3 + 16 / tp;
  return 4 * layers * (widths * B * T * cfg.n_embd + (2 * B * cfg.n_head * T * T) / tp);
}

/** Parameters inside the transformer blocks that TP splits: c_attn, c_fc (weights and biases), both c_proj weights. */
function splitByTP(table: ParamTable): number {
  return table.params.filter((p) => /\.(c_attn\.|c_fc\.|c_proj\.weight)/.test(p.name)).reduce((n, p) => n + p.size, 0);
}

/**
 * FLOP/s one of n workers gets: the probe's when it measured exactly n at once; otherwise one worker's,
 * capped so that all n together never get more than the cores give (the probe's total when it kept
 * every core busy, else cores x one worker's). On a GPU (no cores given) every worker gets its own.
 */
export function workerFlops(cal: Calibration, n: number): number {
  const probe = cal.concurrent;
  if (n > 1 && probe?.workers === n) return probe.flops;
  if (!cal.cores) return cal.flops;
  const capacity = probe && probe.workers >= cal.cores ? Math.min(probe.workers * probe.flops, cal.cores * cal.flops) : cal.cores * cal.flops;
  return Math.min(cal.flops, capacity / n);
}

/** The slowest worker's lag at each point the workers meet (ms): the probe's when it measured n workers. */
function lagMs(cal: Calibration, n: number): number {
  if (n < 2 || !cal.concurrent) return 0;
  // A probe of other than n workers: the lag grows with the share of a core each gets.
  return cal.concurrent.workers === n ? cal.concurrent.stragglerMs : cal.concurrent.stragglerMs * Math.max(1, n / cal.concurrent.workers);
}

/** FSDP's weight-decay masks: 1 byte per element of a unit's shard that holds decayed and undecayed parameters. */
function maskBytes(table: ParamTable, n: number): number {
  let bytes = 0;
  for (const u of table.units) {
    const decay = u.params.some((p) => p.decay);
    const keep = u.params.some((p) => !p.decay);
    if (decay && keep) bytes += shardLayout(u, n).shard;
  }
  return bytes;
}

/** Where the workers of a data-parallel step meet: each is a point where the fastest waits for the slowest. */
export function syncPoints(cfg: RunConfig, plan: Plan, table: ParamTable = buildParamTable(cfg)): number {
  const n = plan.workers;
  if (n < 2) return 0;
  const sync = gradientSync(plan);
  const K = cfg.grad_accum;
  if (plan.strategy === 'diloco') return 1; // "every rank ready" (the outer all-reduce, once every H steps, is left out)
  if (sync === 'all-reduce') return assignBuckets(table, plan.bucketMb * 2 ** 20).length + 1; // each bucket, and "every rank ready"
  if (sync === 'shard') {
    const blocks = table.units.length - 1;
    const gathers = 1 + ((plan.shard ?? 'full') === 'full' ? 2 : 1) * blocks;
    return K * gathers + 1 + 1 + 1; // the gathers, the reduce-scatters at the end of backward, the two scalars, "every rank ready"
  }
  if (sync === 'tensor') return 4 * cfg.n_layer * K + 1 + 1;
  return 1; // PP: its waits are the bubble; and "every rank ready"
}

export function predict(cfg: RunConfig, plan: Plan, cal: Calibration, table: ParamTable = buildParamTable(cfg)): Prediction {
  const sync = gradientSync(plan);
  if (sync === 'tensor' || sync === 'pipeline') return predictModelParallel(cfg, plan, cal, table);
  const n = plan.workers;
  const { alpha: a, beta: b } = { alpha: cal.alpha[plan.transport], beta: cal.beta[plan.transport] };
  const tokens = cfg.batch_size * cfg.grad_accum * cfg.block_size; // per worker
  // Workers computing at once slow each other down (shared cores, caches, memory bandwidth): with a
  // probe of exactly this many workers, use its FLOP/s; otherwise share what the cores give.
  const compute = (tokens * flopsPerToken(cfg)) / workerFlops(cal, n);
  const P = table.total;
  const shard = plan.shard ?? 'full';
  const prefetch = plan.prefetch ?? true;
  let comm = 0;
  let bytes = 0;
  const masterCopy = HOST_OPTIMIZER_BACKENDS.includes(cfg.backend) ? 4 * P : 0;
  const memory: PredictedMemory = {
    params: 4 * P, grads: 4 * P, optimizer: 8 * P + masterCopy, buddy: 0, gathered_peak: 0,
    activations_peak: activationBytes(cfg, cfg.batch_size), comm_buffers: 0, total: 0,
  };
  const add = (op: CollectiveOp, S: number, times = 1) => {
    const c = collectiveCost(plan.transport, op, S, n, a, b);
    comm += times * c.seconds;
    bytes += times * c.bytes;
  };
  let buddyBytes = 0;
  const diloco = plan.strategy === 'diloco';
  const H = Math.max(1, plan.innerSteps ?? DEFAULT_INNER_STEPS);
  let outer: Prediction['outer'];
  if (diloco) {
    // no per-step all-reduce: every H steps one of the P pseudo-gradients, at the bytes per value of its compression
    const bpv = BYTES_PER_VALUE[plan.outerCompress ?? 'none'];
    const c = collectiveCost(plan.transport, 'all-reduce', P * bpv, n, a, b);
    const copyS = n > 1 && cal.hostCopy ? 4 * P / cal.hostCopy.readback + 4 * P / cal.hostCopy.upload : 0; // the replica read back, the new global model uploaded
    outer = { inner_steps: H, comm_ms: c.seconds * 1000, bytes: c.bytes, copy_ms: copyS * 1000 };
    comm = c.seconds / H;
    bytes = c.bytes / H;
    memory.optimizer += 8 * P; // the global model and the outer (Nesterov) momentum
    memory.comm_buffers = n > 1 ? 4 * P : 0; // the pseudo-gradient
  } else if (n > 1 && sync === 'all-reduce') {
    const buckets = assignBuckets(table, plan.bucketMb * 2 ** 20);
    buckets.forEach((bucket, i) => add('all-reduce', 4 * bucket.size + (i === buckets.length - 1 ? 4 : 0)));
    memory.comm_buffers = buckets.reduce((s, k) => s + 4 * k.size, 4); // registered, one per bucket
  } else if (sync === 'shard') {
    const shardFloats = table.units.reduce((s, u) => s + shardLayout(u, n).shard, 0);
    memory.params = memory.grads = 4 * shardFloats;
    memory.optimizer = 8 * shardFloats + (n > 1 ? maskBytes(table, n) : 0); // the tfjs AdamW on the shards: m, v, masks
    const [root, ...blocks] = table.units.map((u) => 4 * shardLayout(u, n).padded);
    const maxBlock = Math.max(0, ...blocks);
    // FULL_SHARD: a block at a time, and the next one's gather in flight under prefetch; SHARD_GRAD_OP keeps them all
    memory.gathered_peak = root + (shard === 'full' ? Math.min(blocks.length, prefetch ? 2 : 1) * maxBlock : blocks.reduce((x, y) => x + y, 0));
    memory.comm_buffers = n > 1 ? root + Math.min(blocks.length, 2) * maxBlock : 0; // a gather and a scatter in flight, and the root's
    if (n > 1 && (plan.buddies ?? true)) buddyBytes = memory.buddy = 12 * shardFloats;
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
  memory.total = memory.params + memory.grads + memory.optimizer + memory.buddy + memory.gathered_peak + memory.activations_peak + memory.comm_buffers;
  // A synchronous step waits for the slowest worker wherever the workers meet.
  const points = syncPoints(cfg, plan, table);
  const wait = (points * lagMs(cal, n)) / 1000;
  // Host copies: DDP reads every gradient back and uploads the averaged ones; FSDP reads each unit's
  // gradients back and uploads every gathered unit; its optimizer uploads the parameter and gradient
  // shards and reads the updated parameter shard back (the shards live on the host).
  let readback = 0;
  let upload = 0;
  if (diloco) [readback, upload] = n > 1 ? [(4 * P) / H, (4 * P) / H] : [0, 0];
  else if (n > 1 && sync === 'all-reduce') [readback, upload] = [4 * P, 4 * P];
  else if (sync === 'shard') {
    const [root, ...blocks] = table.units.map((u) => 4 * shardLayout(u, n).padded);
    const all = root + blocks.reduce((x, y) => x + y, 0);
    readback = cfg.grad_accum * all + all / n;
    upload = cfg.grad_accum * (root + (shard === 'full' ? 2 : 1) * (all - root)) + (2 * all) / n;
  }
  const copy = cal.hostCopy ? readback / cal.hostCopy.readback + upload / cal.hostCopy.upload : 0;
  const fixed = fixedCost(cal, buddyBytes);
  const step = compute + comm + copy + wait + fixed;
  return {
    compute_ms: compute * 1000,
    comm_ms: comm * 1000,
    copy_ms: copy * 1000,
    wait_ms: wait * 1000,
    fixed_ms: fixed * 1000,
    sync_points: points,
    step_ms: step * 1000,
    tokens_per_s: (n * tokens) / step,
    bytes_per_rank: bytes,
    ...(outer ? { outer } : {}),
    memory,
  };
}

/**
 * A step's fixed cost (seconds): the coordinator's round trips (prepare, commit), and with buddy copies
 * two more (export a part, hand it to the neighbour) and the part's bytes copied out of the backend.
 */
function fixedCost(cal: Calibration, buddyBytes: number): number {
  const trips = (cal.stepOverheadMs ?? 0) / 1000;
  if (!buddyBytes) return trips;
  return 2 * trips + (cal.hostCopy ? buddyBytes / cal.hostCopy.readback : 0);
}

/**
 * TP and PP: every worker works on the whole batch (batch x accum sequences), each on its part of the
 * model; see the header for the formulas. Host copies (a GPU's readbacks of activations) are left out.
 */
function predictModelParallel(cfg: RunConfig, plan: Plan, cal: Calibration, table: ParamTable): Prediction {
  const n = plan.workers;
  const { alpha: a, beta: b } = { alpha: cal.alpha[plan.transport], beta: cal.beta[plan.transport] };
  const { batch_size: B, grad_accum: K, block_size: T, n_embd: C, n_layer: L, n_head: H } = cfg;
  const tokens = B * K * T; // the step's, on every worker
  const flops = workerFlops(cal, n);
  const P = table.total;
  const wpe = cfg.block_size * C;
  const attention = 12 * L * H * (C / H) * T; // per token, all blocks
  const perBlock = (P - wpe - cfg.vocab_size * C - 2 * C) / L; // one block's parameters
  const masterCopy = HOST_OPTIMIZER_BACKENDS.includes(cfg.backend) ? 4 : 0;
  const state = (floats: number) => ({ params: 4 * floats, grads: 4 * floats, optimizer: (8 + masterCopy) * floats, buddy: n > 1 && (plan.buddies ?? true) ? 12 * floats : 0 });
  let comm = 0;
  let bytes = 0;
  let computeS: number;
  let memory: Prediction['memory'];
  let bytesByRank: number[] | undefined;
  let bubble: number | undefined;
  let idleS = 0;
  if (gradientSync(plan) === 'tensor') {
    const split = splitByTP(table);
    // each worker: its 1/n of the split weights and of attention, all of the rest (embeddings, head, LayerNorms)
    computeS = (tokens * (6 * (split / n + (P - wpe - split)) + attention / n)) / flops;
    const S = 4 * B * T * C; // one micro-batch's (B, T, C) activation
    for (let i = 0; i < 4 * L * K; i++) {
      const c = collectiveCost(plan.transport, 'all-reduce', S, n, a, b);
      comm += c.seconds;
      bytes += c.bytes;
    }
    const norm = collectiveCost(plan.transport, 'all-reduce', 4 * n, n, a, b); // the gradient norm: each rank's sum of squares in its own slot
    comm += norm.seconds;
    bytes += norm.bytes;
    memory = { ...state(split / n + P - split), gathered_peak: 0, activations_peak: activationBytes(cfg, B, L, n), comm_buffers: n > 1 ? S : 0, total: 0 };
  } else {
    const M = plan.microbatches ?? 4;
    const schedule = plan.schedule ?? '1f1b';
    const stages = Array.from({ length: n }, (_, r) => {
      const [lo, hi] = stageBlocks(L, n, r);
      const blocks = hi - lo;
      const floats = blocks * perBlock + (r === 0 ? cfg.vocab_size * C + wpe : 0) + (r === n - 1 ? (n > 1 ? cfg.vocab_size * C : 0) + 2 * C : 0);
      const flopsPerToken = 6 * (blocks * perBlock + (r === n - 1 ? cfg.vocab_size * C : 0)) + (attention * blocks) / L;
      return { blocks, floats, seconds: (tokens * flopsPerToken) / flops, inFlight: peakInFlight(schedule, n, M, r) };
    });
    // M slots of work and n - 1 idle ones, on the slowest stage's clock
    computeS = Math.max(...stages.map((s) => s.seconds));
    bubble = bubbleFraction(n, M);
    idleS = (computeS * (n - 1)) / M;
    bytesByRank = ppBytesPerStep(cfg, n, M);
    bytes = Math.max(...bytesByRank);
    // messages on the critical path: each boundary once forward and once back per micro-batch
    const act = (4 * B * K * T * C) / M;
    if (n > 1) comm = 2 * (M + n - 2) * (a + act / b) + 2 * (a + (4 * cfg.vocab_size * C) / b);
    const busiest = stages.reduce((x, y) => (y.floats > x.floats ? y : x));
    const activations = Math.max(...stages.map((s) => activationBytes(cfg, (B * K) / M, s.blocks) * s.inFlight));
    memory = { ...state(busiest.floats), gathered_peak: 0, activations_peak: activations, comm_buffers: n > 1 ? 2 * act : 0, total: 0 };
  }
  memory.total = memory.params + memory.grads + memory.optimizer + memory.buddy + memory.activations_peak + memory.comm_buffers;
  const points = syncPoints(cfg, plan, table);
  const wait = (points * lagMs(cal, n)) / 1000;
  const fixed = fixedCost(cal, memory.buddy);
  const step = computeS + idleS + comm + wait + fixed;
  return {
    compute_ms: computeS * 1000,
    comm_ms: comm * 1000,
    copy_ms: 0,
    wait_ms: (wait + idleS) * 1000,
    fixed_ms: fixed * 1000,
    sync_points: points,
    step_ms: step * 1000,
    tokens_per_s: tokens / step,
    bytes_per_rank: bytes,
    ...(bytesByRank ? { bytes_by_rank: bytesByRank, bubble, bubble_ms: idleS * 1000 } : {}),
    memory,
  };
}

// ---- classroom Wi-Fi -----------------------------------------------------------------------------------

/** A classroom's Wi-Fi: one medium of about 20 MB/s that the whole class shares. */
export const WIFI_BYTES_PER_S = 20e6;
/** Its latency per message when nothing was measured through the relay (a Wi-Fi round trip, a few ms). */
export const WIFI_ALPHA_S = 0.005;

export interface Wifi {
  total: number; // bytes/s of the shared medium, for all ranks together
  alpha: number; // seconds per message
}

/**
 * A calibration for n laptops on a shared Wi-Fi: each computes on its own cores at `cal.flops` (no
 * sharing, no probe of workers on one machine, no fixed costs of this page's coordinator), and every
 * transport gets beta = total / n (all ranks' traffic shares the medium) and the Wi-Fi's alpha.
 */
export function wifiCalibration(cal: Calibration, n: number, wifi: Wifi = { total: WIFI_BYTES_PER_S, alpha: WIFI_ALPHA_S }): Calibration {
  return { flops: cal.flops, hostCopy: cal.hostCopy, alpha: perTransport(wifi.alpha), beta: perTransport(wifi.total / Math.max(1, n)) };
}

export interface WifiPoint {
  workers: number;
  ddp: Prediction;
  diloco: Prediction;
  /** Tokens/s against one laptop alone, over n: 1 is perfect scaling, below 1/2 more than half the step waits on the Wi-Fi. */
  ddpEfficiency: number;
  dilocoEfficiency: number;
}

export interface WifiScenario {
  points: WifiPoint[]; // workers 1..max
  single: Prediction; // one laptop alone (batch_size per step, as one worker of the others)
  /** Fewest workers from which a strategy "stops paying": each laptop spends more than half its step on the Wi-Fi (efficiency < 1/2); null: never up to max. */
  ddpStopsAt: number | null;
  dilocoStopsAt: number | null;
}

/** Efficiency below which a strategy no longer pays: the laptops spend more than half of every step waiting on the link. */
export const PAYS_EFFICIENCY = 0.5;

/**
 * Per-step DDP against DiLoCo on a classroom's shared Wi-Fi, for 1..max laptops each training
 * batch_size sequences per step (ring all-reduces; the Wi-Fi's beta = total / n). A laptop's compute c
 * stays the same; DDP adds 2(n-1)(alpha + 4P/W) per step, DiLoCo 1/H of that at its bytes per value; so
 * DDP's efficiency c / step drops below 1/2 from n > 1 + c / (2(alpha + 4P/W)), DiLoCo's about H times later.
 */
export function wifiScenario(cfg: RunConfig, cal: Calibration, opts: { innerSteps?: number; outerCompress?: OuterCompress; bucketMb?: number; wifi?: Wifi; max?: number } = {}, table: ParamTable = buildParamTable(cfg)): WifiScenario {
  const max = opts.max ?? 32;
  const bucketMb = opts.bucketMb ?? 25;
  const wifi = opts.wifi ?? { total: WIFI_BYTES_PER_S, alpha: WIFI_ALPHA_S };
  const single = predict(cfg, { strategy: 'single', workers: 1, transport: 'ring', bucketMb }, wifiCalibration(cal, 1, wifi), table);
  const points: WifiPoint[] = [];
  for (let n = 1; n <= max; n++) {
    const c = wifiCalibration(cal, n, wifi);
    const ddp = predict(cfg, { strategy: 'ddp', workers: n, transport: 'ring', bucketMb }, c, table);
    const diloco = predict(cfg, { strategy: 'diloco', workers: n, transport: 'ring', bucketMb, innerSteps: opts.innerSteps, outerCompress: opts.outerCompress }, c, table);
    const eff = (p: Prediction) => p.tokens_per_s / (n * single.tokens_per_s);
    points.push({ workers: n, ddp, diloco, ddpEfficiency: eff(ddp), dilocoEfficiency: eff(diloco) });
  }
  const stops = (k: 'ddpEfficiency' | 'dilocoEfficiency') => points.find((p) => p.workers >= 2 && p[k] < PAYS_EFFICIENCY)?.workers ?? null;
  return { points, single, ddpStopsAt: stops('ddpEfficiency'), dilocoStopsAt: stops('dilocoEfficiency') };
}

/**
 * Fits alpha and beta of a transport from all-reduce timings at two or more sizes: least squares on
 * t = c0 + c1 * S weighted by 1/t (each timing's relative error counts alike, so the small sizes, where
 * latency shows, are not drowned by the large), c0 and c1 kept non-negative, then the transport's formula
 * inverted. `error` is the fit's own: the root mean square of the relative residuals; `ordered` says
 * whether a larger size never took less time than a smaller one (a timing disturbed by other work).
 */
export function fitAlphaBeta(kind: TransportKind, n: number, samples: { bytes: number; seconds: number }[]): { alpha: number; beta: number; error: number; ordered: boolean } {
  const w = samples.map((p) => 1 / Math.max(p.seconds, 1e-9) ** 2);
  const sw = w.reduce((s, x) => s + x, 0);
  const mx = samples.reduce((s, p, i) => s + w[i] * p.bytes, 0) / sw;
  const my = samples.reduce((s, p, i) => s + w[i] * p.seconds, 0) / sw;
  const sxy = samples.reduce((s, p, i) => s + w[i] * (p.bytes - mx) * (p.seconds - my), 0);
  const sxx = samples.reduce((s, p, i) => s + w[i] * (p.bytes - mx) ** 2, 0);
  let c1 = sxx > 0 ? sxy / sxx : 0;
  let c0 = my - c1 * mx;
  if (c0 < 0) {
    // through the origin: no latency to see
    c0 = 0;
    c1 = samples.reduce((s, p, i) => s + w[i] * p.bytes * p.seconds, 0) / samples.reduce((s, p, i) => s + w[i] * p.bytes ** 2, 0);
  }
  if (!(c1 > 0)) {
    // no bandwidth term to see (larger sizes no slower): all latency
    c1 = 1e-15;
    c0 = my;
  }
  const error = Math.sqrt(samples.reduce((s, p) => s + ((c0 + c1 * p.bytes - p.seconds) / p.seconds) ** 2, 0) / samples.length);
  const sorted = [...samples].sort((x, y) => x.bytes - y.bytes);
  const ordered = sorted.every((p, i) => i === 0 || p.seconds >= sorted[i - 1].seconds);
  const fit = kind === 'star' ? { alpha: c0 / 2, beta: (2 * n) / c1 } : { alpha: c0 / (2 * (n - 1)), beta: (2 * (n - 1)) / n / c1 };
  return { ...fit, error, ordered };
}

/**
 * How far a measurement is from its prediction, and whether that is drift: more than `tolerance`
 * (20%) either way says the conditions changed since the calibration (other programs took the cores,
 * or let them go) and the prediction should not be trusted until the model is calibrated again.
 */
export function drift(predictedMs: number, measuredMs: number, tolerance = 0.2): { error: number; drifted: boolean } {
  const error = measuredMs / predictedMs - 1;
  return { error, drifted: !(Math.abs(error) <= tolerance) };
}

/** Training FLOP/s a worker achieved: the model's FLOPs for the tokens it processed in computeMs. */
export function achievedFlops(cfg: RunConfig, computeMs: number): number {
  return (cfg.batch_size * cfg.grad_accum * cfg.block_size * flopsPerToken(cfg)) / (computeMs / 1000);
}
