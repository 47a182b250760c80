// The browser half of `npm run bench`: runs in headless Chromium with real Web Workers, the same
// coordinator, ranks and cost model as the page. bench/browser.ts calls window.bench(options).

import { Coordinator, type DistOptions } from '../../src/parallel/coordinator';
import { spawnWebWorker } from '../../src/parallel/browser-spawn';
import { makeConfig, type BackendName, type RunConfig } from '../../src/model/config';
import { charTokenizer } from '../../src/data/tokenizer';
import { achievedFlops, fitAlphaBeta, predict, type Calibration } from '../../src/parallel/costmodel';
import { DEFAULT_BUCKET_MB } from '../../src/parallel/layout';
import type { TransportKind } from '../../src/parallel/collectives';
import type { MemoryReport } from '../../src/train/trainer';
import { median } from '../../src/util/stats';

export interface BrowserBenchOptions {
  preset: string;
  backend: BackendName;
  strategies: string[]; // single, ddp, fsdp-full, fsdp-grad_op, fsdp-none
  workers: number;
  transport: TransportKind;
  steps: number;
  warmup: number;
  sizesMb: number[];
  collWorkers: number[];
  transports: TransportKind[];
}

export interface RunRow {
  strategy: string;
  workers: number;
  transport: TransportKind;
  tokens_per_s: number;
  ms_per_step: number;
  compute_ms: number;
  comm_ms: number;
  wait_ms: number;
  bytes_per_rank: number;
  predicted_ms_per_step: number;
  predicted_bytes_per_rank: number;
  losses: number[];
  memory: MemoryReport;
}


function memcpyGbps(): number {
  const n = 16 * 2 ** 20; // 64 MB of floats
  const src = new Float32Array(n).fill(1);
  const dst = new Float32Array(n);
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    dst.set(src);
    times.push(performance.now() - t0);
  }
  return (n * 4) / (median(times.slice(2)) / 1000) / 1e9;
}

function plan(name: string, workers: number, transport: TransportKind): DistOptions {
  if (name === 'single') return { strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB };
  if (name === 'ddp') return { strategy: 'ddp', workers, transport, bucketMb: DEFAULT_BUCKET_MB };
  const shard = name.replace('fsdp-', '') as DistOptions['shard'];
  if (!name.startsWith('fsdp-') || !['full', 'grad_op', 'none'].includes(shard!)) {
    throw new Error(`unknown strategy "${name}": use single, ddp, fsdp-full, fsdp-grad_op or fsdp-none`);
  }
  return { strategy: 'fsdp', workers, transport, bucketMb: DEFAULT_BUCKET_MB, shard };
}

async function bench(o: BrowserBenchOptions) {
  const text = await (await fetch('/data/tinyshakespeare.txt')).text();
  const vocab = charTokenizer(text).vocabSize;
  const base = makeConfig(o.preset, { backend: o.backend });
  const cfgFor = (batch: number): RunConfig => ({ ...base, batch_size: batch, vocab_size: base.tokenizer === 'char' ? vocab : base.vocab_size });
  const tiny = { ...makeConfig('tiny', { backend: o.backend }), vocab_size: vocab };

  // Collectives: all-reduce bus bandwidth over real Workers (a tiny model just to start the ranks).
  const collectives: { transport: TransportKind; workers: number; mbytes: number; busbw_gbps: number; seconds: number }[] = [];
  let hostCopy: Calibration['hostCopy'];
  for (const transport of o.transports) {
    for (const workers of o.collWorkers) {
      // probeMb: registered room for the largest size, so every size is timed on a registered buffer, as DDP's buckets are
      const c = await Coordinator.create(tiny, text, { strategy: 'ddp', workers, transport, bucketMb: Math.max(...o.sizesMb), probeMb: Math.max(...o.sizesMb) }, spawnWebWorker);
      if (!hostCopy) {
        const bytes = 4 * 2 ** 20;
        const t = await c.timeHostCopy(bytes, 5);
        hostCopy = { upload: bytes / Math.max(t.upload, 1e-6), readback: bytes / Math.max(t.readback, 1e-6) };
      }
      for (const mb of o.sizesMb) {
        const bytes = mb * 2 ** 20;
        const seconds = await c.timeCollective('all-reduce', bytes, mb >= 16 ? 5 : 9);
        collectives.push({ transport, workers, mbytes: mb, busbw_gbps: (bytes * (2 * (workers - 1)) / workers) / seconds / 1e9, seconds });
      }
      c.dispose();
    }
  }

  // Calibration of the cost model: alpha and beta per transport at the run's worker count.
  const cores = o.backend === 'webgpu' ? undefined : navigator.hardwareConcurrency; // CPU backends share the cores
  const cal: Calibration = { flops: 0, cores, hostCopy, alpha: { ring: NaN, star: NaN, shared: NaN }, beta: { ring: NaN, star: NaN, shared: NaN } }; // NaN until measured
  for (const t of o.transports) {
    const samples = collectives.filter((r) => r.transport === t && r.workers === o.workers).map((r) => ({ bytes: r.mbytes * 2 ** 20, seconds: r.seconds }));
    if (samples.length >= 2) Object.assign(cal, { alpha: { ...cal.alpha, [t]: fitAlphaBeta(t, o.workers, samples).alpha }, beta: { ...cal.beta, [t]: fitAlphaBeta(t, o.workers, samples).beta } });
  }

  // The probe: `workers` independent single workers stepping at once, no communication: the FLOP/s
  // each then gets, and how far the slowest lags the mean (what a synchronous step waits for).
  if (o.workers > 1) {
    const solo: DistOptions = { strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB };
    const cs = await Promise.all(Array.from({ length: o.workers }, () => Coordinator.create(cfgFor(base.batch_size), text, solo, spawnWebWorker)));
    const perStep: number[][] = [];
    for (let i = 0; i < o.warmup + 5; i++) perStep.push((await Promise.all(cs.map((c) => c.trainStep()))).map((s) => s.perRank[0].computeMs));
    for (const c of cs) c.dispose();
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const measured = perStep.slice(o.warmup);
    cal.concurrent = {
      workers: o.workers,
      flops: achievedFlops(cfgFor(base.batch_size), median(measured.map(mean))),
      stragglerMs: median(measured.map((xs) => Math.max(...xs) - mean(xs))),
    };
  }

  // Strategies: the same model, data, seed and global batch (single gets workers x batch).
  const runs: RunRow[] = [];
  for (const name of o.strategies) {
    const p = plan(name, o.workers, o.transport);
    const cfg = cfgFor(name === 'single' ? base.batch_size * o.workers : base.batch_size);
    const c = await Coordinator.create(cfg, text, p, spawnWebWorker);
    const steps = [];
    for (let i = 0; i < o.steps; i++) steps.push(await c.trainStep());
    c.dispose();
    const measured = steps.slice(o.warmup);
    const per = (f: (r: (typeof measured)[0]['perRank'][0]) => number) => median(measured.map((s) => Math.max(...s.perRank.map(f))));
    const ms = median(measured.map((s) => s.ms));
    if (name === 'single') cal.flops = achievedFlops(cfg, per((r) => r.computeMs));
    runs.push({
      strategy: name, workers: p.workers, transport: p.transport,
      tokens_per_s: (steps[0].tokens / ms) * 1000, ms_per_step: ms,
      compute_ms: per((r) => r.computeMs), comm_ms: per((r) => r.commMs), wait_ms: per((r) => r.waitMs),
      bytes_per_rank: per((r) => r.bytesSent),
      predicted_ms_per_step: NaN, predicted_bytes_per_rank: predict(cfg, p, cal).bytes_per_rank,
      losses: steps.map((s) => s.loss), memory: steps.at(-1)!.perRank[0].memory,
    });
  }
  for (const r of runs) {
    const cfg = cfgFor(r.strategy === 'single' ? base.batch_size * o.workers : base.batch_size);
    if (cal.flops > 0) r.predicted_ms_per_step = predict(cfg, plan(r.strategy, o.workers, o.transport), cal).step_ms;
  }
  // Tracing overhead: the same DDP group, steps with trace recording off and on, interleaved.
  let tracing: { off_ms: number; on_ms: number; overhead_pct: number } | null = null;
  if (o.workers > 1) {
    const c = await Coordinator.create(cfgFor(base.batch_size), text, plan('ddp', o.workers, o.transport), spawnWebWorker);
    const off: number[] = [];
    const on: number[] = [];
    for (let i = 0; i < o.warmup; i++) await c.trainStep();
    for (let i = 0; i < 2 * o.steps; i++) {
      const record = i % 2 === 1;
      await c.setTracing(record);
      (record ? on : off).push((await c.trainStep()).ms);
    }
    c.dispose();
    tracing = { off_ms: median(off), on_ms: median(on), overhead_pct: (100 * (median(on) - median(off))) / median(off) };
  }
  return { memcpy_gbps: memcpyGbps(), collectives, runs, calibration: cal, tracing, crossOriginIsolated };
}

(window as unknown as { bench: typeof bench }).bench = bench;
