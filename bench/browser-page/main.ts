// The browser half of `npm run bench`: runs in headless Chromium with real Web Workers, the same
// coordinator, ranks and cost model as the page. bench/browser.ts calls window.bench(options).

import { Coordinator, type DistOptions, type DistStepStats } from '../../src/parallel/coordinator';
import { spawnWebWorker } from '../../src/parallel/browser-spawn';
import { makeConfig, type BackendName, type RunConfig } from '../../src/model/config';
import { charTokenizer } from '../../src/data/tokenizer';
import { achievedFlops, predict, type Calibration } from '../../src/parallel/costmodel';
import { LINK_ROUNDS, ProbePool, bracket, measureLink, summarizeProbe, type ProbeSample } from '../../src/ui/compare/runner';
import { DEFAULT_MICROBATCHES, STRATEGY_KEYS, configFor, distFor, planOf, type StrategyKey } from '../../src/ui/compare/settings';
import { DEFAULT_BUCKET_MB } from '../../src/parallel/layout';
import type { TransportKind } from '../../src/parallel/collectives';
import type { MemoryReport } from '../../src/train/trainer';
import { median } from '../../src/util/stats';

/** What the browser section measures (bench/browser.ts prints it and puts it in bench.json). */
export interface BrowserBenchResult {
  memcpy_gbps: number;
  collectives: { transport: TransportKind; workers: number; mbytes: number; busbw_gbps: number; seconds: number }[];
  /** alpha and beta fitted per transport and number of workers, with the fit's RMS relative error */
  fits: { transport: TransportKind; workers: number; alpha: number; beta: number; error: number; ordered: boolean }[];
  runs: RunRow[];
  /** os.loadavg() (1 min) before and after the section, and the busy-loop processes started for it */
  load?: { before: number; after: number; busy_processes: number };
  calibration: Calibration;
  tracing: { off_ms: number; on_ms: number; overhead_pct: number } | null; // DDP steps with trace recording off and on
  crossOriginIsolated: boolean;
}

export interface BrowserBenchOptions {
  preset: string;
  backend: BackendName;
  strategies: string[]; // the Compare view's (single, ddp, fsdp-full, fsdp-noprefetch, fsdp-grad_op, tp, pp-1f1b, pp-gpipe) and fsdp-none
  workers: number;
  transport: TransportKind;
  steps: number;
  warmup: number;
  sizesMb: number[];
  collWorkers: number[];
  transports: TransportKind[];
  tracing?: boolean; // time trace recording's overhead (default on)
}

export interface RunRow {
  strategy: string;
  workers: number;
  transport: TransportKind;
  batch_per_worker: number;
  shard: string | null;
  prefetch: boolean | null;
  tokens_per_s: number;
  ms_per_step: number;
  compute_ms: number;
  comm_ms: number;
  wait_ms: number;
  bytes_per_rank: number;
  predicted_ms_per_step: number;
  predicted_bytes_per_rank: number;
  predicted: { compute_ms: number; comm_ms: number; copy_ms: number; wait_ms: number; fixed_ms: number; sync_points: number };
  error: number; // measured / predicted - 1
  /** The probes around the run (their mean), what it was predicted with; change: after / before - 1. */
  probe: { workers: number; compute_ms: number; flops: number; straggler_ms: number; overhead_ms: number; change: number; samples: ProbeSample[] };
  steps_ms: number[]; // every step's, warm-up included
  compute_per_step: number[]; // the slowest worker's compute of every step
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
  if (name === 'fsdp-none') return { strategy: 'fsdp', workers, transport, bucketMb: DEFAULT_BUCKET_MB, shard: 'none' };
  if (!(STRATEGY_KEYS as readonly string[]).includes(name)) {
    throw new Error(`unknown strategy "${name}": use ${[...STRATEGY_KEYS, 'fsdp-none'].join(', ')}`);
  }
  return distFor(name as StrategyKey, { workers, transport, microbatches: DEFAULT_MICROBATCHES }, DEFAULT_BUCKET_MB);
}

/** The config a strategy runs with the same global batch (single, TP and PP: workers x batch). */
function configOf(name: string, base: RunConfig, workers: number): RunConfig {
  return name === 'fsdp-none' ? base : configFor(name as StrategyKey, base, workers);
}

async function bench(o: BrowserBenchOptions) {
  const text = await (await fetch('/data/tinyshakespeare.txt')).text();
  const vocab = charTokenizer(text).vocabSize;
  const made = makeConfig(o.preset, { backend: o.backend });
  const base: RunConfig = { ...made, vocab_size: made.tokenizer === 'char' ? vocab : made.vocab_size };
  const tiny = { ...makeConfig('tiny', { backend: o.backend }), vocab_size: vocab };

  // Collectives: all-reduce bus bandwidth over real Workers (a tiny model just to start the ranks),
  // rounds over the sizes, smallest first (medians), as the Compare view calibrates.
  const collectives: BrowserBenchResult['collectives'] = [];
  const fits: BrowserBenchResult['fits'] = [];
  let hostCopy: Calibration['hostCopy'];
  for (const transport of o.transports) {
    for (const workers of o.collWorkers) {
      // probeMb: registered room for the largest size, so every size is timed on a registered buffer, as DDP's buckets are
      const c = await Coordinator.create(tiny, text, { strategy: 'ddp', workers, transport, bucketMb: Math.max(...o.sizesMb), probeMb: Math.max(...o.sizesMb) }, spawnWebWorker);
      try {
        const link = await measureLink(c, o.sizesMb.map((mb) => mb * 2 ** 20), 5, LINK_ROUNDS);
        hostCopy ??= link.hostCopy;
        for (const smp of link.samples) {
          collectives.push({ transport, workers, mbytes: smp.bytes / 2 ** 20, busbw_gbps: (smp.bytes * (2 * (workers - 1)) / workers) / smp.seconds / 1e9, seconds: smp.seconds });
        }
        fits.push({ transport, workers, alpha: link.alpha, beta: link.beta, error: link.fit!.error, ordered: link.fit!.ordered });
      } finally {
        c.dispose();
      }
    }
  }

  // Calibration of the cost model: alpha and beta per transport at the run's worker count.
  const cores = o.backend === 'webgpu' ? undefined : navigator.hardwareConcurrency; // CPU backends share the cores
  const cal: Calibration = { flops: 0, cores, hostCopy, alpha: { ring: NaN, star: NaN, shared: NaN, network: NaN }, beta: { ring: NaN, star: NaN, shared: NaN, network: NaN } }; // NaN until measured
  for (const f of fits.filter((x) => x.workers === o.workers)) {
    cal.alpha[f.transport] = f.alpha;
    cal.beta[f.transport] = f.beta;
  }

  // Strategies: the same model, data, seed and global batch (single, TP and PP get workers x batch),
  // each between two probes of what its workers get (N workers computing at once, no communication).
  const runs: RunRow[] = [];
  const probes = new ProbePool(text, spawnWebWorker);
  try {
    for (const name of o.strategies) {
      const p = plan(name, o.workers, o.transport);
      const cfg = configOf(name, base, o.workers);
      const probeCfg = p.workers > 1 ? base : cfg;
      const before = await probes.measure(probeCfg, p.workers, 2);
      const c = await Coordinator.create(cfg, text, p, spawnWebWorker);
      const steps: DistStepStats[] = [];
      const during: ProbeSample[] = []; // probe steps between the timed steps: the load of the same moments
      try {
        for (let i = 0; i < o.steps; i++) {
          steps.push(await c.trainStep());
          if (i + 1 >= o.warmup && i + 1 < o.steps) during.push(...await probes.samples(probeCfg, p.workers, 1, 0));
        }
      } finally {
        c.dispose();
      }
      const probe = bracket(before, await probes.measure(probeCfg, p.workers, 2), during.length ? summarizeProbe(probeCfg, p.workers, during) : undefined);
      const measured = steps.slice(o.warmup);
      const per = (f: (r: (typeof measured)[0]['perRank'][0]) => number) => median(measured.map((s) => Math.max(...s.perRank.map(f))));
      const ms = median(measured.map((s) => s.ms));
      if (name === 'single') cal.flops = achievedFlops(cfg, per((r) => r.computeMs));
      if (p.workers > 1 && !cal.concurrent) Object.assign(cal, { concurrent: { workers: probe.workers, flops: probe.flops, stragglerMs: probe.stragglerMs }, stepOverheadMs: probe.overheadMs });
      const runCal: Calibration = probe.workers === 1
        ? { ...cal, flops: probe.flops, stepOverheadMs: probe.overheadMs }
        : { ...cal, flops: cal.flops || probe.flops, concurrent: { workers: probe.workers, flops: probe.flops, stragglerMs: probe.stragglerMs }, stepOverheadMs: probe.overheadMs };
      const pred = predict(cfg, planOf(p), runCal);
      const memory = Object.fromEntries(Object.keys(steps.at(-1)!.perRank[0].memory).map((k) => [k, Math.max(...steps.at(-1)!.perRank.map((r) => r.memory[k as keyof MemoryReport]))])) as unknown as MemoryReport;
      runs.push({
        strategy: name, workers: p.workers, transport: p.transport, batch_per_worker: cfg.batch_size, prefetch: p.strategy === 'fsdp' ? p.prefetch ?? true : null, shard: p.shard ?? null,
        tokens_per_s: (steps[0].tokens / ms) * 1000, ms_per_step: ms,
        compute_ms: per((r) => r.computeMs), comm_ms: per((r) => r.commMs), wait_ms: per((r) => r.waitMs),
        bytes_per_rank: per((r) => r.bytesSent),
        predicted_ms_per_step: pred.step_ms, predicted_bytes_per_rank: pred.bytes_per_rank,
        predicted: { compute_ms: pred.compute_ms, comm_ms: pred.comm_ms, copy_ms: pred.copy_ms, wait_ms: pred.wait_ms, fixed_ms: pred.fixed_ms, sync_points: pred.sync_points },
        error: pred.step_ms > 0 ? ms / pred.step_ms - 1 : NaN,
        probe: { workers: probe.workers, compute_ms: probe.computeMs, flops: probe.flops, straggler_ms: probe.stragglerMs, overhead_ms: probe.overheadMs, change: probe.change, samples: during },
        steps_ms: steps.map((s) => s.ms), compute_per_step: steps.map((s) => Math.max(...s.perRank.map((r) => r.computeMs))),
        losses: steps.map((s) => s.loss), memory,
      });
    }
  } finally {
    probes.dispose();
  }
  // Tracing overhead: the same DDP group, steps with trace recording off and on, interleaved.
  let tracing: { off_ms: number; on_ms: number; overhead_pct: number } | null = null;
  if (o.workers > 1 && o.tracing !== false) {
    const c = await Coordinator.create(base, text, plan('ddp', o.workers, o.transport), spawnWebWorker);
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
  return { memcpy_gbps: memcpyGbps(), collectives, fits, runs, calibration: cal, tracing, crossOriginIsolated };
}

(window as unknown as { bench: typeof bench }).bench = bench;
