// Scaling benchmark: tokens/s of DDP on 2 worker_threads against 1, at the same per-worker batch, through
// the real runtime (Coordinator + spawnNodeWorker: one tfjs wasm engine per thread), per transport.

import type { RunConfig } from '../src/model/config';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnNodeWorker } from '../src/parallel/node-spawn';
import type { TransportKind } from '../src/parallel/collectives';
import { DEFAULT_BUCKET_MB } from '../src/parallel/layout';
import type { RankStepStats } from '../src/parallel/protocol';
import type { MemoryReport } from '../src/train/trainer';
import { maxMemory } from './fsdp';
import { median } from '../src/util/stats';
import { flopsPerToken } from '../src/parallel/costmodel';

/** Anchors measured in the same run (bench/anchors.ts), GFLOP/s; null where not measured. */
export interface ScalingAnchors { gemm1t: number | null; gemm2t: number | null; tfjsMatmul: number | null }

export interface ScalingRow {
  /** single: 1 worker; independent: N single workers stepping at once, no communication (the ceiling
   *  that compute contention alone leaves); ddp: N workers averaging gradients. */
  run: 'single' | 'independent' | 'ddp';
  strategy: 'single' | 'ddp';
  transport: TransportKind | null; // null: one worker, nothing to communicate
  workers: number;
  batch_per_worker: number;
  global_batch: number;
  steps: number; // timed (after warm-up)
  ms_per_step: number;
  tokens_per_s: number;
  speedup: number | null; // tokens/s over the 1-worker run's
  exposed_pct: number; // the worst rank's median share of its step spent in comm + wait
  /**
   * Of that, what communication itself costs: the collectives' CPU time plus the wait that even the
   * last rank to finish its backward had (data still in flight when every rank was ready): per step,
   * comm + wait - stragglerMs. The worst rank's median share of its step.
   */
  exposed_comm_pct: number;
  /**
   * The rest: waiting for a slower rank (RankStepStats.stragglerMs: wait - the step's smallest wait);
   * the worst rank's median share. For independent workers, what the same lockstep would cost them:
   * (slowest step - own step) / slowest step.
   */
  straggler_pct: number;
  /** Achieved GFLOP/s (nanoGPT's FLOPs per token x tokens/s): all workers together, and per worker. */
  gflops: number;
  gflops_per_worker: number;
  /** Shares (%) of this run's anchors (null without them): all workers against GEMM on 2 threads (the
   *  machine's two cores), one worker against GEMM on 1 thread and against tfjs-wasm's best matmul. */
  pct_of_gemm_2t: number | null;
  pct_of_gemm_1t_per_worker: number | null;
  pct_of_tfjs_wasm_matmul_per_worker: number | null;
  per_rank: { rank: number; compute_ms: number; comm_ms: number; wait_ms: number; bytes_sent: number; exposed_pct: number; exposed_comm_pct: number; straggler_pct: number }[];
  hub_bytes_per_step?: number;
  memory: MemoryReport; // the last step's, the largest over ranks per kind
}

/** Steps `coordinators` together (each its own run); per step: the slowest one's ms, every rank's stats. */
async function measure(cfg: RunConfig, text: string, dist: DistOptions, steps: number, warmup: number, copies = 1) {
  const cs: Coordinator[] = [];
  try {
    for (let i = 0; i < copies; i++) cs.push(await Coordinator.create(cfg, text, dist, spawnNodeWorker));
    const ms: number[] = [];
    const ranks: RankStepStats[][] = [];
    const hub: number[] = [];
    for (let i = 0; i < warmup + steps; i++) {
      const all = await Promise.all(cs.map((c) => c.trainStep()));
      ms.push(Math.max(...all.map((s) => s.ms)));
      ranks.push(all.flatMap((s) => s.perRank));
      if (all[0].hubBytes !== undefined) hub.push(all[0].hubBytes);
    }
    return { ms, ranks, hub, tokens: cfg.batch_size * cfg.grad_accum * cfg.block_size * dist.workers * copies };
  } finally {
    for (const c of cs) c.dispose();
  }
}

export async function runScaling(
  cfg: RunConfig,
  text: string,
  opts: { transports: TransportKind[]; workers?: number; steps?: number; warmup?: number; onRow?: (r: ScalingRow) => void; anchors?: ScalingAnchors },
): Promise<ScalingRow[]> {
  const { transports, workers = 2, steps = 15, warmup = 3 } = opts;
  const rows: ScalingRow[] = [];
  let base: number | null = null;
  const single: DistOptions = { strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB };
  const runs: { run: ScalingRow['run']; dist: DistOptions; copies: number }[] = [
    { run: 'single', dist: single, copies: 1 },
    { run: 'independent', dist: single, copies: workers },
    ...transports.map((transport) => ({ run: 'ddp' as const, dist: { strategy: 'ddp', workers, transport, bucketMb: DEFAULT_BUCKET_MB } as DistOptions, copies: 1 })),
  ];
  for (const { run, dist, copies } of runs) {
    const m = await measure(cfg, text, dist, steps, warmup, copies);
    const world = dist.workers * copies;
    const msPerStep = median(m.ms, warmup);
    const tokensPerSec = (m.tokens / msPerStep) * 1000;
    const gflops = (flopsPerToken(cfg) * tokensPerSec) / 1e9;
    const share = (x: number, anchor: number | null | undefined) => (anchor ? (100 * x) / anchor : null);
    if (run === 'single') base = tokensPerSec;
    const perRank = Array.from({ length: world }, (_, r) => {
      const of = (f: (s: RankStepStats, step: RankStepStats[]) => number) => median(m.ranks.map((rs) => f(rs[r], rs)), warmup);
      const slowest = (step: RankStepStats[]) => Math.max(...step.map((x) => x.ms));
      const straggler = (s: RankStepStats) => s.stragglerMs ?? 0;
      return {
        rank: r,
        compute_ms: of((s) => s.computeMs),
        comm_ms: of((s) => s.commMs),
        wait_ms: of((s) => s.waitMs),
        bytes_sent: of((s) => s.bytesSent),
        exposed_pct: of((s) => (100 * (s.commMs + s.waitMs)) / s.ms),
        exposed_comm_pct: of((s) => (100 * (s.commMs + s.waitMs - straggler(s))) / s.ms),
        straggler_pct: run === 'independent'
          ? of((s, step) => (100 * (slowest(step) - s.ms)) / slowest(step))
          : of((s) => (100 * straggler(s)) / s.ms),
      };
    });
    const row: ScalingRow = {
      run,
      strategy: dist.strategy as 'single' | 'ddp',
      transport: dist.strategy === 'single' ? null : dist.transport,
      workers: world,
      batch_per_worker: cfg.batch_size,
      global_batch: cfg.batch_size * cfg.grad_accum * world,
      steps,
      ms_per_step: msPerStep,
      tokens_per_s: tokensPerSec,
      speedup: base === null ? null : tokensPerSec / base,
      exposed_pct: Math.max(...perRank.map((r) => r.exposed_pct)),
      exposed_comm_pct: Math.max(...perRank.map((r) => r.exposed_comm_pct)),
      straggler_pct: Math.max(...perRank.map((r) => r.straggler_pct)),
      gflops,
      gflops_per_worker: gflops / world,
      pct_of_gemm_2t: share(gflops, opts.anchors?.gemm2t),
      pct_of_gemm_1t_per_worker: share(gflops / world, opts.anchors?.gemm1t),
      pct_of_tfjs_wasm_matmul_per_worker: share(gflops / world, opts.anchors?.tfjsMatmul),
      per_rank: perRank,
      ...(m.hub.length ? { hub_bytes_per_step: median(m.hub, warmup) } : {}),
      memory: maxMemory(m.ranks.at(-1)!),
    };
    rows.push(row);
    opts.onRow?.(row);
  }
  return rows;
}
