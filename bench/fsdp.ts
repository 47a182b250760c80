// FSDP benchmark, with real worker_threads (Coordinator + spawnNodeWorker: one tfjs wasm engine per rank):
//
//   memory      bytes a worker keeps at rest (params + grads + optimizer, from RankStepStats.memory) for
//               `baby` at N = 4, FULL_SHARD against DDP, and the peaks (gathered units, activations).
//   throughput  FSDP full / DDP tokens/s at N = 2 on shakespeare-cpu and baby, with and without prefetch.
//   bytes       bytes sent per step per rank for full, grad_op and none: measured against the textbook
//               3(N-1)/N x S (full) or 2(N-1)/N x S, and the exact figure for this implementation.
//   costmodel   alpha/beta of the ring fitted from timed all-reduces, FLOP/s from the single run's compute
//               time; predicted against measured ms per step for single, ddp and fsdp full at N = 2.

import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { makeConfig, type RunConfig } from '../src/model/config';
import { buildParamTable } from '../src/model/params';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnNodeWorker } from '../src/parallel/node-spawn';
import { DEFAULT_BUCKET_MB, shardLayout, type ShardStrategy, type Strategy } from '../src/parallel/layout';
import { UNCALIBRATED, achievedFlops, fitAlphaBeta, predict, type Calibration, type Plan } from '../src/parallel/costmodel';
import type { RankStepStats } from '../src/parallel/protocol';
import type { MemoryReport } from '../src/train/trainer';
import { median } from '../src/util/stats';

const MB = 2 ** 20;
const note = (s: string) => process.stderr.write(`  [fsdp ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

/**
 * How busy the machine was with other processes during a run: the machine's busy share (/proc/stat)
 * minus this process's own CPU time (all its threads), as a % of all cores. Linux only (null elsewhere).
 */
function otherLoad() {
  const stat = () => {
    if (!existsSync('/proc/stat')) return null;
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { total, idle: f[3] + f[4] };
  };
  const s0 = stat();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return (): number | null => {
    const s1 = stat();
    if (!s0 || !s1 || s1.total === s0.total) return null;
    const busy = 1 - (s1.idle - s0.idle) / (s1.total - s0.total);
    const c = process.cpuUsage(c0);
    const mine = (c.user + c.system) / 1e3 / (performance.now() - t0) / availableParallelism();
    return Math.max(0, 100 * (busy - mine));
  };
}

/** One entry of bench.json's top-level `runs` (the same shape for the scaling, fsdp and browser sections). */
export interface RunEntry {
  section: 'scaling' | 'fsdp' | 'browser';
  variant?: string; // browser: the Compare strategy (e.g. fsdp-noprefetch, pp-1f1b)
  error?: number | null; // browser: measured vs predicted step time
  load_average?: unknown; // browser: the machine's load around the section
  preset: string;
  strategy: Strategy;
  shard: ShardStrategy | null;
  prefetch: boolean | null;
  workers: number;
  transport: string | null;
  batch_per_worker: number;
  steps: number; // timed, after `warmup`
  warmup: number;
  tokens_per_s: number;
  ms_per_step: number;
  compute_ms: number; // mean over ranks of each rank's median
  comm_ms: number;
  wait_ms: number;
  bytes_per_rank: number; // sent per step (the largest rank's median)
  predicted_ms_per_step: number | null; // cost model, where its calibration applies (same preset, ring)
  memory: MemoryReport; // the last step's, the largest over ranks per kind
}

export interface Measured {
  label: string;
  cfg: RunConfig;
  dist: DistOptions;
  steps: number;
  warmup: number;
  ms_per_step: number;
  tokens_per_s: number;
  per_rank: { rank: number; compute_ms: number; comm_ms: number; wait_ms: number; bytes_sent: number; exposed_pct: number }[];
  exposed_pct: number; // the worst rank's median share of its step in comm + wait
  bytes_per_rank: number;
  memory: MemoryReport;
  other_cpu_pct: number | null; // the machine's CPU other processes used during the run (contamination)
}

/** The largest value over ranks of each memory kind, from the last step. */
export function maxMemory(ranks: RankStepStats[]): MemoryReport {
  const keys = ['params', 'grads', 'optimizer', 'buddy', 'gathered_peak', 'activations_peak', 'comm_buffers'] as const;
  return Object.fromEntries(keys.map((k) => [k, Math.max(...ranks.map((r) => r.memory[k]))])) as unknown as MemoryReport;
}

const plan = (d: DistOptions): Plan => ({ strategy: d.strategy, workers: d.workers, transport: d.transport, bucketMb: d.bucketMb, shard: d.shard });

/** Runs warmup + steps training steps; `after` runs on the live coordinator before it is disposed. */
async function measure(label: string, cfg: RunConfig, text: string, dist: DistOptions, steps: number, warmup: number, after?: (c: Coordinator) => Promise<void>): Promise<Measured> {
  note(`${label}: ${cfg.preset}, batch ${cfg.batch_size} per worker, ${warmup} + ${steps} steps`);
  const c = await Coordinator.create(cfg, text, dist, spawnNodeWorker);
  try {
    const other = otherLoad(); // over the steps, not the start-up
    const ms: number[] = [];
    const ranks: RankStepStats[][] = [];
    for (let i = 0; i < warmup + steps; i++) {
      const s = await c.trainStep();
      ms.push(s.ms);
      ranks.push(s.perRank);
    }
    const otherPct = other();
    await after?.(c);
    const msPerStep = median(ms, warmup);
    const perRank = ranks[0].map((_, r) => {
      const of = (f: (s: RankStepStats) => number) => median(ranks.map((rs) => f(rs[r])), warmup);
      return {
        rank: r, compute_ms: of((s) => s.computeMs), comm_ms: of((s) => s.commMs), wait_ms: of((s) => s.waitMs),
        bytes_sent: of((s) => s.bytesSent), exposed_pct: of((s) => (100 * (s.commMs + s.waitMs)) / s.ms),
      };
    });
    return {
      label, cfg, dist, steps, warmup,
      ms_per_step: msPerStep,
      tokens_per_s: ((cfg.batch_size * cfg.grad_accum * cfg.block_size * dist.workers) / msPerStep) * 1000,
      per_rank: perRank,
      exposed_pct: Math.max(...perRank.map((r) => r.exposed_pct)),
      bytes_per_rank: Math.max(...perRank.map((r) => r.bytes_sent)),
      memory: maxMemory(ranks.at(-1)!),
      other_cpu_pct: otherPct,
    };
  } finally {
    c.dispose();
  }
}

/**
 * N single workers stepping at once, with no communication: the median compute ms of the slowest. The
 * FLOP/s one worker gets while N share the machine (cores, memory bandwidth), without any collective.
 */
/**
 * N independent single workers stepping at once (no communication): the compute time each gets
 * (the mean worker's median) and the straggler gap (median over steps of the slowest worker's compute
 * minus the mean), the cost model's `concurrent` calibration.
 */
async function contendedComputeMs(cfg: RunConfig, text: string, N: number, steps: number, warmup: number): Promise<{ compute_ms: number; straggler_ms: number; other_cpu_pct: number | null }> {
  note(`${N} independent singles: ${cfg.preset}, batch ${cfg.batch_size}, ${warmup} + ${steps} steps`);
  const single: DistOptions = { strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB };
  const cs: Coordinator[] = [];
  try {
    for (let i = 0; i < N; i++) cs.push(await Coordinator.create(cfg, text, single, spawnNodeWorker));
    const other = otherLoad();
    const compute: number[][] = cs.map(() => []);
    for (let i = 0; i < warmup + steps; i++) {
      const all = await Promise.all(cs.map((c) => c.trainStep()));
      all.forEach((s, k) => compute[k].push(s.perRank[0].computeMs));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const perStep = compute[0].map((_, i) => compute.map((c) => c[i]));
    return {
      compute_ms: median(perStep.map(mean), warmup),
      straggler_ms: median(perStep.map((xs) => Math.max(...xs) - mean(xs)), warmup),
      other_cpu_pct: other(),
    };
  } finally {
    for (const c of cs) c.dispose();
  }
}

/** Bytes one rank sends per step: the textbook figure and the exact one for this implementation (ring). */
export function analyticBytes(cfg: RunConfig, N: number, kind: ShardStrategy) {
  const table = buildParamTable(cfg);
  const f = (N - 1) / N;
  const S = 4 * table.total;
  const padded = table.units.map((u) => 4 * shardLayout(u, N).padded);
  const root = padded[0];
  const blocks = padded.slice(1).reduce((a, b) => a + b, 0);
  const scalar = 2 * f * 4; // a ring all-reduce of one float (the loss; FSDP also the squared gradient norm)
  const exact = kind === 'full' ? f * (3 * blocks + 2 * root) + 2 * scalar // the root unit is gathered once
    : kind === 'grad_op' ? f * 2 * (blocks + root) + 2 * scalar
      : 2 * f * S + scalar; // none = DDP: every bucket all-reduced
  return { S, textbook: (kind === 'full' ? 3 : 2) * f * S, exact };
}

const shakespeare = (batch: number): RunConfig => ({ ...makeConfig('shakespeare-cpu', { vocab_size: 65, batch_size: batch }), backend: 'wasm' });
const baby = (batch: number): RunConfig => ({ ...makeConfig('baby', { vocab_size: 65, batch_size: batch }), backend: 'wasm' });
const ddpOpts = (workers: number): DistOptions => ({ strategy: 'ddp', workers, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB });
const fsdpOpts = (workers: number, shard: ShardStrategy, prefetch = true): DistOptions => ({ strategy: 'fsdp', workers, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB, shard, prefetch });

export interface FsdpOptions {
  steps: number; // shakespeare-cpu timed steps
  warmup: number;
  babySteps: number;
  babyWarmup: number;
  memoryWorkers: number;
  calibrationKb: number[];
}

export async function runFsdp(text: string, o: FsdpOptions) {
  const f1 = (x: number) => x.toFixed(1);
  const f2 = (x: number) => x.toFixed(2);
  const mb = (b: number) => (b / MB).toFixed(2);
  const thousands = (x: number) => Math.round(x).toLocaleString('en-US');
  const pctOrDash = (x: number | null) => (x === null ? '-' : `${x.toFixed(0)}%`);
  const load0 = loadavg();
  const t0 = performance.now();
  const measured: Measured[] = [];
  const run = async (...args: Parameters<typeof measure>) => {
    const m = await measure(...args);
    measured.push(m);
    return m;
  };

  console.log(`\n## fsdp\n\nreal worker_threads (Coordinator + spawnNodeWorker, one tfjs wasm engine per rank), ring transport, ${DEFAULT_BUCKET_MB} MB DDP buckets`);

  // Measured first, printed after: the shakespeare-cpu runs (b, c, d) come first, being the shortest
  // and the most sensitive to other processes on a shared machine; then baby (b), then memory (a).
  // ---- b) throughput at N = 2 -----------------------------------------------------------------------
  const single = await run('single', shakespeare(12), text, { strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB }, o.steps, o.warmup);
  const samples: { bytes: number; seconds: number }[] = [];
  let hostCopy: Calibration['hostCopy'];
  const ddp = await run('ddp', shakespeare(12), text, ddpOpts(2), o.steps, o.warmup, async (c) => {
    // d) calibration of the ring at N = 2, on the live ranks, after the timed steps
    for (const kb of o.calibrationKb) {
      const bytes = kb * 1024;
      samples.push({ bytes, seconds: await c.timeCollective('all-reduce', bytes, 20) });
    }
    const t = await c.timeHostCopy(4 * 2 ** 20, 9);
    hostCopy = { upload: (4 * 2 ** 20) / Math.max(t.upload, 1e-6), readback: (4 * 2 ** 20) / Math.max(t.readback, 1e-6) };
  });
  const full = await run('fsdp full', shakespeare(12), text, fsdpOpts(2, 'full'), o.steps, o.warmup);
  const fullNoPf = await run('fsdp full, no prefetch', shakespeare(12), text, fsdpOpts(2, 'full', false), o.steps, o.warmup);
  const gradOp = await run('fsdp grad_op', shakespeare(12), text, fsdpOpts(2, 'grad_op'), o.steps, o.warmup);
  const none = await run('fsdp none', shakespeare(12), text, fsdpOpts(2, 'none'), o.steps, o.warmup);
  const contendedRun = await contendedComputeMs(shakespeare(12), text, 2, o.steps, o.warmup);
  const bDdp = await run('ddp', baby(2), text, ddpOpts(2), o.babySteps, o.babyWarmup);
  const bFull = await run('fsdp full', baby(2), text, fsdpOpts(2, 'full'), o.babySteps, o.babyWarmup);
  const bFullNoPf = await run('fsdp full, no prefetch', baby(2), text, fsdpOpts(2, 'full', false), o.babySteps, o.babyWarmup);
  // a) memory: baby at N = 4, batch 1, 2 steps (memory does not depend on the number of steps)
  const N4 = o.memoryWorkers;
  const memCfg = baby(1);
  const memDdp = await run('ddp', memCfg, text, ddpOpts(N4), 1, 1);
  const memFull = await run('fsdp full', memCfg, text, fsdpOpts(N4, 'full'), 1, 1);

  // ---- a) memory: baby at N = 4 ---------------------------------------------------------------------
  const rest = (m: MemoryReport) => m.params + m.grads + m.optimizer;
  const peak = (m: MemoryReport) => rest(m) + m.gathered_peak + m.activations_peak;
  const memory = [memDdp, memFull].map((m) => {
    const p = predict(m.cfg, plan(m.dist), UNCALIBRATED).memory;
    return {
      run: m.label, preset: m.cfg.preset, workers: m.dist.workers, batch_per_worker: m.cfg.batch_size, steps: m.warmup + m.steps,
      ...m.memory,
      at_rest: rest(m.memory), at_rest_vs_ddp: rest(m.memory) / rest(memDdp.memory),
      peak: peak(m.memory), peak_vs_ddp: peak(m.memory) / peak(memDdp.memory),
      predicted: { at_rest: p.params + p.grads + p.optimizer, gathered_peak: p.gathered_peak, activations_peak: p.activations_peak },
    };
  });
  const P = buildParamTable(memCfg).total;
  console.log(`\n### memory per worker: ${memCfg.preset} (${(P / 1e6).toFixed(2)}M parameters, ${memCfg.n_layer} layers, n_embd ${memCfg.n_embd}, block ${memCfg.block_size}), N = ${N4}\n`);
  console.log(`batch 1 per worker and 2 steps (memory does not depend on the number of steps; baby is big for 2 cores). ` +
    `MB (2^20 bytes) from RankStepStats.memory of the last step, the largest rank; peak = at rest + gathered_peak + activations_peak\n`);
  console.log('| run | params | grads | optimizer | at rest | vs DDP | gathered_peak | activations_peak | comm_buffers | peak | vs DDP | predicted at rest / gathered / activations |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of memory) {
    console.log(`| ${r.run} | ${mb(r.params)} | ${mb(r.grads)} | ${mb(r.optimizer)} | ${mb(r.at_rest)} | ${f2(r.at_rest_vs_ddp)}x | ${mb(r.gathered_peak)} | ` +
      `${mb(r.activations_peak)} | ${mb(r.comm_buffers)} | ${mb(r.peak)} | ${f2(r.peak_vs_ddp)}x | ` +
      `${mb(r.predicted.at_rest)} / ${mb(r.predicted.gathered_peak)} / ${mb(r.predicted.activations_peak)} |`);
  }
  const ratio = memory[1].at_rest_vs_ddp;
  console.log(`target: FULL_SHARD at rest <= 0.30x DDP's; measured ${f2(ratio)}x: ${ratio <= 0.3 ? 'met' : 'missed'}`);

  // ---- b) throughput: the table --------------------------------------------------------------------
  const groups = [
    { base: ddp, rows: [ddp, full, fullNoPf, gradOp, none] },
    { base: bDdp, rows: [bDdp, bFull, bFullNoPf] },
  ];
  const throughput = groups.flatMap(({ base, rows }) => rows.map((m) => ({
    preset: m.cfg.preset, run: m.label, workers: m.dist.workers, batch_per_worker: m.cfg.batch_size, steps: m.steps, warmup: m.warmup,
    ms_per_step: m.ms_per_step, tokens_per_s: m.tokens_per_s, vs_ddp: m.tokens_per_s / base.tokens_per_s, exposed_pct: m.exposed_pct,
    other_cpu_pct: m.other_cpu_pct, per_rank: m.per_rank,
  })));
  console.log(`\n### throughput at N = 2: FSDP against DDP\n\nshakespeare-cpu: batch 12 per worker, medians of ${o.steps} steps after ${o.warmup} warm-up; ` +
    `baby: batch 2 per worker, medians of ${o.babySteps} steps after ${o.babyWarmup} warm-up. Per-rank times: the slowest rank's medians\n`);
  console.log('| preset | run | ms/step | tokens/s | vs DDP | compute ms | comm ms | wait ms | exposed comm+wait | other processes\' CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of throughput) {
    const slow = r.per_rank.reduce((a, b) => (b.compute_ms + b.comm_ms + b.wait_ms > a.compute_ms + a.comm_ms + a.wait_ms ? b : a));
    console.log(`| ${r.preset} | ${r.run} | ${f1(r.ms_per_step)} | ${thousands(r.tokens_per_s)} | ${f2(r.vs_ddp)}x | ${f1(slow.compute_ms)} | ${f1(slow.comm_ms)} | ${f1(slow.wait_ms)} | ${f1(r.exposed_pct)}% | ${pctOrDash(r.other_cpu_pct)} |`);
  }
  for (const [pf, nopf] of [[full, fullNoPf], [bFull, bFullNoPf]]) {
    const r = throughput.find((t) => t.preset === pf.cfg.preset && t.run === pf.label)!;
    const n = throughput.find((t) => t.preset === nopf.cfg.preset && t.run === nopf.label)!;
    console.log(`target ${r.preset}: fsdp full with prefetch >= 0.8x DDP; measured ${f2(r.vs_ddp)}x: ${r.vs_ddp >= 0.8 ? 'met' : 'missed'} ` +
      `(without prefetch ${f2(n.vs_ddp)}x)`);
  }

  // ---- c) bytes per step per rank -------------------------------------------------------------------
  const kind = (m: Measured): ShardStrategy => (m.dist.strategy === 'fsdp' ? m.dist.shard ?? 'full' : 'none');
  const bytes = [full, gradOp, none, ddp, memFull, memDdp].map((m) => {
    const a = analyticBytes(m.cfg, m.dist.workers, kind(m));
    return {
      preset: m.cfg.preset, run: m.label, workers: m.dist.workers, S: a.S, textbook: a.textbook, exact: a.exact,
      cost_model: predict(m.cfg, plan(m.dist), UNCALIBRATED).bytes_per_rank, measured: m.bytes_per_rank, measured_vs_exact: m.bytes_per_rank / a.exact,
    };
  });
  console.log(`\n### bytes sent per step per rank (ring)\n\nS = 4 bytes x parameters. textbook: 3(N-1)/N x S for full, 2(N-1)/N x S for grad_op and none (DDP). ` +
    `exact: full (N-1)/N x (3 S_blocks + 2 S_root) (the root unit stays gathered from its forward to the embedding backward, so it is gathered once), ` +
    `grad_op 2(N-1)/N x (S_blocks + S_root), units padded to a multiple of N, plus two 4-byte all-reduces (loss, squared gradient norm); ` +
    `none/DDP 2(N-1)/N x S plus one (loss). MB = 2^20 bytes\n`);
  console.log('| preset | run | N | S MB | textbook MB | exact MB | cost model MB | measured MB | measured / exact |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of bytes) {
    console.log(`| ${r.preset} | ${r.run} | ${r.workers} | ${mb(r.S)} | ${mb(r.textbook)} | ${mb(r.exact)} | ${mb(r.cost_model)} | ${mb(r.measured)} | ${r.measured_vs_exact.toFixed(4)} |`);
  }

  // ---- d) cost model: predicted against measured ms per step ----------------------------------------
  const fit = fitAlphaBeta('ring', 2, samples);
  const flops = achievedFlops(single.cfg, single.per_rank[0].compute_ms);
  // The probe of 2 workers computing at once (no communication): the FLOP/s each gets and the straggler gap.
  const contended = contendedRun.compute_ms;
  const flops2 = achievedFlops(single.cfg, contended);
  const calibration: Calibration = {
    flops, cores: availableParallelism(), hostCopy, concurrent: { workers: 2, flops: flops2, stragglerMs: contendedRun.straggler_ms },
    alpha: { ring: fit.alpha, star: NaN, shared: NaN, network: NaN }, beta: { ring: fit.beta, star: NaN, shared: NaN, network: NaN },
  };
  const { concurrent: _, ...withoutProbe } = calibration;
  const costmodel = [single, ddp, full].map((m) => {
    const p = predict(m.cfg, plan(m.dist), calibration);
    const p2 = predict(m.cfg, plan(m.dist), withoutProbe);
    const err = m.ms_per_step / p.step_ms - 1;
    const err2 = m.ms_per_step / p2.step_ms - 1;
    return {
      run: m.label, preset: m.cfg.preset, workers: m.dist.workers,
      predicted_compute_ms: p.compute_ms, predicted_comm_ms: p.comm_ms, predicted_ms_per_step: p.step_ms,
      measured_ms_per_step: m.ms_per_step, measured_compute_ms: Math.max(...m.per_rank.map((r) => r.compute_ms)),
      error_pct: 100 * err, within_25pct: Math.abs(err) <= 0.25, other_cpu_pct: m.other_cpu_pct,
      without_probe: { predicted_ms_per_step: p2.step_ms, error_pct: 100 * err2, within_25pct: Math.abs(err2) <= 0.25 },
    };
  });
  console.log(`\n### cost model at N = 2, shakespeare-cpu, batch 12 per worker\n`);
  console.log(`ring all-reduce, slowest rank's median: ${samples.map((s) => `${s.bytes / 1024} KB ${(s.seconds * 1000).toFixed(2)} ms`).join(', ')} ` +
    `-> alpha ${(fit.alpha * 1e6).toFixed(1)} us, beta ${(fit.beta / 1e9).toFixed(2)} GB/s (fitAlphaBeta); ` +
    `FLOP/s from the single run's median compute (${f1(single.per_rank[0].compute_ms)} ms): ${(flops / 1e9).toFixed(1)} GFLOP/s (achievedFlops); ` +
    `with 2 independent singles stepping at once (the probe): ${f1(contended)} ms of compute each, ${(flops2 / 1e9).toFixed(1)} GFLOP/s, ` +
    `the slowest ${f1(contendedRun.straggler_ms)} ms behind the mean (other processes' CPU ${pctOrDash(contendedRun.other_cpu_pct)}). ` +
    `Last two columns: the prediction without the probe (one worker's FLOP/s, no waiting)\n`);
  const sign = (x: number) => `${x >= 0 ? '+' : ''}${f1(x)}%`;
  console.log('| run | predicted compute ms | predicted comm ms | predicted ms/step | measured ms/step | measured compute ms (slowest rank) | error | within 25% | predicted without the probe | error | other processes\' CPU |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of costmodel) {
    console.log(`| ${r.run} | ${f1(r.predicted_compute_ms)} | ${f1(r.predicted_comm_ms)} | ${f1(r.predicted_ms_per_step)} | ${f1(r.measured_ms_per_step)} | ` +
      `${f1(r.measured_compute_ms)} | ${sign(r.error_pct)} | ${r.within_25pct ? 'yes' : 'no'} | ${f1(r.without_probe.predicted_ms_per_step)} | ${sign(r.without_probe.error_pct)} | ${pctOrDash(r.other_cpu_pct)} |`);
  }
  const worst = Math.max(...costmodel.map((r) => Math.abs(r.error_pct)));
  console.log(`target: predicted within 25% of measured for single, ddp and fsdp full; worst ${f1(worst)}%: ${worst <= 25 ? 'met' : 'missed'}`);

  const load1 = loadavg();
  console.log(`\nsection time ${f1((performance.now() - t0) / 1000)} s; 1-minute load average ${f2(load0[0])} before, ${f2(load1[0])} after. ` +
    `"other processes' CPU": the share of the machine's CPU that other processes used during a run's steps (above ~10%: contaminated)`);

  const runs = measured.map((m) => toRunEntry('fsdp', m, calibration));
  return { memory, throughput, bytes, costmodel, calibration: { ring_all_reduce: samples, alpha: fit.alpha, beta: fit.beta, flops, concurrent: calibration.concurrent!, hostCopy, preset: single.cfg.preset }, load_average: [load0[0], load1[0]], runs };
}

/** A measured run as a `runs` entry; the cost model's prediction only where its calibration applies. */
export function toRunEntry(section: RunEntry['section'], m: Measured, cal: (Calibration & { preset?: string }) | null, calPreset = 'shakespeare-cpu'): RunEntry {
  const mean = (f: (r: Measured['per_rank'][number]) => number) => m.per_rank.reduce((s, r) => s + f(r), 0) / m.per_rank.length;
  const applies = cal !== null && m.cfg.preset === calPreset && (m.dist.workers === 1 || m.dist.transport === 'ring');
  return {
    section,
    preset: m.cfg.preset,
    strategy: m.dist.strategy,
    shard: m.dist.strategy === 'fsdp' ? m.dist.shard ?? 'full' : null,
    prefetch: m.dist.strategy === 'fsdp' ? m.dist.prefetch ?? true : null,
    workers: m.dist.workers,
    transport: m.dist.workers > 1 ? m.dist.transport : null,
    batch_per_worker: m.cfg.batch_size,
    steps: m.steps,
    warmup: m.warmup,
    tokens_per_s: m.tokens_per_s,
    ms_per_step: m.ms_per_step,
    compute_ms: mean((r) => r.compute_ms),
    comm_ms: mean((r) => r.comm_ms),
    wait_ms: mean((r) => r.wait_ms),
    bytes_per_rank: m.bytes_per_rank,
    predicted_ms_per_step: applies ? predict(m.cfg, plan(m.dist), cal).step_ms : null,
    memory: m.memory,
  };
}
