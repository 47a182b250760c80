// Runs the compared strategies one after another: a Coordinator per strategy (disposed before the next
// starts, so they never compete for the cores), the same config, text and seed, and the same global
// batch (DDP and FSDP split it, each worker training batch_size; single, TP and PP train all of it,
// workers x batch_size, on every worker). Records every step's loss, time split and bytes; turns tracing
// on for the last few steps only;
// and, on the first multi-worker run, times the transport's all-reduce for the cost model. With a fault
// to inject ("Break something during the run"), the data-parallel strategies of 2 or more workers get it
// (TP and PP keep no copy of a worker's part to recover from), the steps
// around it are traced too, and every recovery is recorded on the trace events' clock.
// No DOM here: the view renders what this returns.

import type { RunConfig } from '../../model/config';
import type { InitInfo } from '../../parallel/protocol';
import type { MemoryReport, StageTime } from '../../train/trainer';
import { clock, type TraceEvent } from '../../util/trace';
import type { Recovery } from '../../parallel/faults';
import type { TransportKind } from '../../parallel/collectives';
import { Coordinator, type DistOptions, type RankHandle } from '../../parallel/coordinator';
import { achievedFlops, fitAlphaBeta } from '../../parallel/costmodel';
import { DEFAULT_PROBE_MB } from '../../parallel/layout';
import { MODEL_PARALLEL, STRATEGY_LABELS, configFor, distFor, faultsFor, tracedSteps, warmupSteps, type CompareSettings, type StrategyKey } from './settings';
import { median } from '../../util/stats';

export type Spawn = (rank: number) => RankHandle;

export interface RankRecord {
  ms: number;
  computeMs: number;
  commMs: number;
  waitMs: number;
  stragglerMs: number; // of waitMs, waiting for a slower worker (RankStepStats.stragglerMs)
  bytesSent: number;
  pipeline?: StageTime; // PP: this stage's schedule (pp-layout.ts measuredBubble)
}

export interface StepRecord {
  step: number;
  loss: number;
  ms: number; // the coordinator's wall time of the step (every worker, and the messages to and from them)
  tokens: number; // by all workers
  traced: boolean;
  recovered: boolean; // the step failed and was trained again after a recovery (its times are the replay's, on a rebuilt run: not timed)
  ranks: RankRecord[];
}

/**
 * A recovery (coordinator.recoveries) and when it happened, in ms on the trace events' shared clock
 * (util/trace.ts clock()): the failed try of the step started, the failure was noticed (detected_ms
 * later), every rank was ready to train the step again (ms after that).
 */
export interface RecoveryRecord extends Recovery {
  started_at: number;
  detected_at: number;
  recovered_at: number;
}

export interface TraceRecord {
  steps: number[]; // the traced steps
  perWorker: TraceEvent[][]; // rank -> its events of those steps, in order
  stepStart: number[]; // per traced step, when its first event began (shared clock, ms)
  rankMs: number[][]; // per traced step, each rank's own step time
}

export interface RunRecord {
  key: StrategyKey;
  label: string;
  dist: DistOptions; // as run (a shared transport without SharedArrayBuffer became ring)
  cfg: RunConfig; // as run (single: the global batch), vocab_size from the tokenizer, the backend the ranks chose
  info: InitInfo;
  notice: string | null;
  steps: StepRecord[];
  memory: MemoryReport[]; // per rank, as of the last step
  trace: TraceRecord | null;
  recoveries: RecoveryRecord[];
  /** The cost model's probe right before and right after this run (what its workers got then). */
  probe?: RunProbe;
}

/**
 * A probe: `workers` independent single workers stepping at once with no communication, on the batch
 * each worker of the run computes. What each then computes per step (FLOP/s), how far the slowest lags
 * the mean per step, and the coordinator's own cost per step (its round trips: step time less the worker's).
 */
export interface Probe {
  workers: number;
  flops: number;
  computeMs: number;
  stragglerMs: number;
  overheadMs: number;
}

/** The probes around a run, and what the run is predicted with: their mean (the load during the run lies between). */
export interface RunProbe extends Probe {
  before: Probe;
  after: Probe;
  during?: Probe; // the probe steps between the run's timed steps (what the prediction uses when present)
  /** after / before - 1 of the compute time: more than 20% either way, the machine's load changed during the run. */
  change: number;
}

/** All-reduce timings of a transport and the alpha and beta fitted to them. */
export interface LinkCalibration {
  transport: TransportKind;
  workers: number;
  samples: { bytes: number; seconds: number }[];
  alpha: number; // seconds per message
  beta: number; // bytes per second
  /** `workers` single workers stepping at once, no communication: FLOP/s each and the straggler gap. */
  concurrent?: { workers: number; flops: number; stragglerMs: number };
  /** The coordinator's fixed cost per step (ms), from the probe. */
  stepOverheadMs?: number;
  /** Bytes per second of tensor upload and readback on the backend. */
  hostCopy?: { upload: number; readback: number };
  /** The fit's root mean square relative error, and whether the timings grew with the size. */
  fit?: { error: number; ordered: boolean; rounds: number };
}

/** All-reduce sizes timed to fit alpha and beta, smallest first: up to the registered probe a DDP rank keeps. */
export const LINK_SIZES = [16 * 2 ** 10, 64 * 2 ** 10, 256 * 2 ** 10, 2 ** 20, DEFAULT_PROBE_MB * 2 ** 20];
/** Rounds over the sizes (each a median of LINK_ITERS all-reduces); a size's timing is the median over rounds. */
export const LINK_ROUNDS = 3;
export const LINK_ITERS = 5;

export type Progress =
  | { phase: 'starting'; key: StrategyKey; index: number; count: number }
  | { phase: 'training'; key: StrategyKey; index: number; count: number; step: number; steps: number; recoveries: number }
  | { phase: 'link'; key: StrategyKey; index: number; count: number };

export interface CompareRequest {
  config: RunConfig;
  text: string;
  settings: CompareSettings;
  bucketMb: number;
}

/** Lets the view stop a comparison after the step in flight. */
export class StopSignal {
  stopped = false;
  stop(): void {
    this.stopped = true;
  }
}

export class CompareStopped extends Error {
  constructor() {
    super('stopped');
    this.name = 'CompareStopped';
  }
}

/**
 * Runs every strategy of the request in turn. onRun receives each finished run at once (the view shows
 * results as they come). Times the link on the first multi-worker run unless `link` is false.
 */
export async function runCompare(
  req: CompareRequest,
  spawn: Spawn,
  hooks: { onProgress(p: Progress): void; onRun(r: RunRecord): void; onLink?(l: LinkCalibration): void },
  signal: StopSignal = new StopSignal(),
  link = true,
): Promise<RunRecord[]> {
  const { strategies, steps } = req.settings;
  const runs: RunRecord[] = [];
  let linkDone = !link;
  const probes = new ProbePool(req.text, spawn);
  try {
    for (const [index, key] of strategies.entries()) {
      const at = { key, index, count: strategies.length };
      hooks.onProgress({ phase: 'starting', ...at });
      const cfg = configFor(key, req.config, req.settings.workers);
      const dist = distFor(key, req.settings, req.bucketMb);
      const faults = MODEL_PARALLEL.includes(key) ? undefined : faultsFor(req.settings.fault, dist.workers);
      // The probe's config: what each worker of a data-parallel run computes (single: all of it).
      const probeCfg = dist.workers > 1 ? configFor('ddp', req.config, dist.workers) : cfg;
      const before = link ? await probes.measure(probeCfg, dist.workers, 2) : null;
      // The probe also steps between the run's timed steps: what the workers get is sampled at the same
      // moments as the run itself, so a load that comes and goes is measured, not assumed away.
      const during: ProbeSample[] = [];
      const first = warmupSteps(steps);
      const between = before ? async (i: number, traced: boolean) => {
        if (i + 1 >= first && !traced) during.push(...await probes.samples(probeCfg, dist.workers, 1, 0));
      } : undefined;
      const coordinator = await Coordinator.create(cfg, req.text, faults ? { ...dist, faults } : dist, spawn);
      try {
        const around = faults ? req.settings.fault!.step : undefined;
        const run = await trainSteps(coordinator, key, cfg, steps, signal, (step) => hooks.onProgress({ phase: 'training', ...at, step, steps, recoveries: coordinator.recoveries.length }), around, between);
        let measured: LinkCalibration | null = null;
        if (!linkDone && run.dist.workers > 1) {
          hooks.onProgress({ phase: 'link', ...at });
          measured = await measureLink(coordinator);
          linkDone = true;
        }
        coordinator.dispose();
        if (before) run.probe = bracket(before, await probes.measure(probeCfg, dist.workers, 2), during.length ? summarizeProbe(probeCfg, dist.workers, during) : undefined);
        runs.push(run);
        hooks.onRun(run);
        if (measured) {
          const p = run.probe;
          hooks.onLink?.({ ...measured, ...(p ? { concurrent: { workers: p.workers, flops: p.flops, stragglerMs: p.stragglerMs }, stepOverheadMs: p.overheadMs } : {}) });
        }
      } finally {
        coordinator.dispose();
      }
    }
  } finally {
    probes.dispose();
  }
  return runs;
}

/**
 * The probes around a run and between its steps, and what the run is predicted with: the probe steps
 * taken between its timed steps when there are any (the same moments), else the mean of before and after.
 */
export function bracket(before: Probe, after: Probe, during?: Probe): RunProbe {
  const change = after.computeMs / before.computeMs - 1;
  if (during) return { ...during, before, after, during, change };
  const computeMs = (before.computeMs + after.computeMs) / 2;
  return {
    workers: before.workers,
    computeMs,
    flops: (before.flops * before.computeMs) / computeMs, // the same FLOPs in the mean time
    stragglerMs: (before.stragglerMs + after.stragglerMs) / 2,
    overheadMs: (before.overheadMs + after.overheadMs) / 2,
    before,
    after,
    change,
  };
}

/** One probe step: the mean compute time of its workers, the slowest one's lag, the coordinators' own time. */
export interface ProbeSample {
  computeMs: number;
  stragglerMs: number;
  overheadMs: number;
}

/** Medians of probe steps. */
export function summarizeProbe(cfg: RunConfig, n: number, samples: ProbeSample[]): Probe {
  const computeMs = median(samples.map((x) => x.computeMs));
  return {
    workers: n,
    computeMs,
    flops: achievedFlops(cfg, computeMs),
    stragglerMs: n > 1 ? median(samples.map((x) => x.stragglerMs)) : 0,
    overheadMs: median(samples.map((x) => x.overheadMs)),
  };
}

/**
 * Probe workers kept for a whole comparison (started once per config and number of workers, idle
 * between probes), so probing before, between and after the steps of every run costs steps, not starts.
 */
export class ProbePool {
  private readonly pools = new Map<string, Promise<Coordinator[]>>();
  constructor(private readonly text: string, private readonly spawn: Spawn) {}

  /** `steps` probe steps (after a warm-up of 2 when the pool is new, else `warmup`). */
  async samples(cfg: RunConfig, n: number, steps: number, warmup = 1): Promise<ProbeSample[]> {
    const key = JSON.stringify([cfg, n]);
    let pool = this.pools.get(key);
    const fresh = !pool;
    if (!pool) {
      const solo = { strategy: 'single' as const, workers: 1, transport: 'ring' as const, bucketMb: 25 };
      pool = Promise.all(Array.from({ length: n }, () => Coordinator.create(cfg, this.text, solo, this.spawn)));
      this.pools.set(key, pool);
    }
    return probeSteps(await pool, steps, fresh ? Math.max(2, warmup) : warmup);
  }

  async measure(cfg: RunConfig, n: number, steps = PROBE_STEPS): Promise<Probe> {
    return summarizeProbe(cfg, n, await this.samples(cfg, n, steps));
  }

  dispose(): void {
    for (const p of this.pools.values()) void p.then((cs) => cs.forEach((c) => c.dispose()), () => {});
    this.pools.clear();
  }
}

/** Timed steps of a probe (after its warm-up). */
export const PROBE_STEPS = 4;

/** Steps every coordinator of a probe at once; one sample per timed step. */
async function probeSteps(cs: Coordinator[], steps: number, warmup: number): Promise<ProbeSample[]> {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const out: ProbeSample[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const stats = await Promise.all(cs.map((c) => c.trainStep()));
    if (i < warmup) continue;
    const compute = stats.map((s) => s.perRank[0].computeMs);
    out.push({ computeMs: mean(compute), stragglerMs: Math.max(...compute) - mean(compute), overheadMs: mean(stats.map((s) => Math.max(0, s.ms - s.perRank[0].ms))) });
  }
  return out;
}

/**
 * The cost model's probe: n independent single workers stepping at once with no communication. How
 * fast each then computes (they share the cores), and how far the slowest lags the mean per step.
 */
export async function measureConcurrent(cfg: RunConfig, text: string, n: number, spawn: Spawn, steps = 5, warmup = 2): Promise<Probe> {
  const solo = { strategy: 'single' as const, workers: 1, transport: 'ring' as const, bucketMb: 25 };
  const cs = await Promise.all(Array.from({ length: n }, () => Coordinator.create(cfg, text, solo, spawn)));
  try {
    return summarizeProbe(cfg, n, await probeSteps(cs, steps, warmup));
  } finally {
    for (const c of cs) c.dispose();
  }
}

/**
 * Trains `steps` steps, tracing the last few, and with `around` (the step a fault is injected at) also
 * the steps before and after it, so the timeline can show the recovery between them.
 */
async function trainSteps(
  c: Coordinator, key: StrategyKey, cfg: RunConfig, steps: number, signal: StopSignal, onStep: (step: number) => void, around?: number,
  between?: (i: number, traced: boolean) => Promise<void>,
): Promise<RunRecord> {
  const traceFrom = steps - tracedSteps(steps);
  // i is 0-based, a fault's step 1-based: steps around-1 .. around+1 are i = around-2 .. around
  const isTraced = (i: number) => i >= traceFrom || (around !== undefined && i >= around - 2 && i <= around);
  const records: StepRecord[] = [];
  const perWorker: TraceEvent[][] = c.ranks.map(() => []);
  const trace: TraceRecord = { steps: [], perWorker, stepStart: [], rankMs: [] };
  const recoveries: RecoveryRecord[] = [];
  let memory: MemoryReport[] = [];
  let tracing = false;
  onStep(0);
  for (let i = 0; i < steps; i++) {
    if (signal.stopped) throw new CompareStopped();
    const traced = isTraced(i);
    if (traced !== tracing) await c.setTracing((tracing = traced));
    const known = c.recoveries.length;
    const start = clock();
    const s = await c.trainStep();
    const end = clock();
    // The coordinator times each recovery from the start of the try that failed (detected_ms) and from
    // the detection (ms); the tries of a step follow one another, so each is placed after the previous.
    let at = start;
    for (const r of c.recoveries.slice(known)) {
      const detected = Math.min(end, at + r.detected_ms);
      const recovered = Math.min(end, detected + r.ms);
      recoveries.push({ ...r, started_at: at, detected_at: detected, recovered_at: recovered });
      at = recovered;
    }
    records.push({
      step: s.step, loss: s.loss, ms: s.ms, tokens: s.tokens, traced, recovered: c.recoveries.length > known,
      ranks: s.perRank.map((r) => ({
        ms: r.ms, computeMs: r.computeMs, commMs: r.commMs, waitMs: r.waitMs, stragglerMs: r.stragglerMs ?? 0, bytesSent: r.bytesSent,
        ...(r.pipeline ? { pipeline: r.pipeline } : {}),
      })),
    });
    memory = s.perRank.map((r) => r.memory);
    if (traced) {
      const events = s.perRank.map((r) => r.trace ?? []);
      events.forEach((e, rank) => perWorker[rank].push(...e));
      trace.steps.push(s.step);
      trace.stepStart.push(Math.min(...events.flat().map((e) => e.ts)));
      trace.rankMs.push(s.perRank.map((r) => r.ms));
    }
    onStep(i + 1);
    if (between && i + 1 < steps) await between(i, traced || isTraced(i + 1));
  }
  if (tracing) await c.setTracing(false);
  return {
    key, label: STRATEGY_LABELS[key], dist: c.dist, cfg: { ...cfg, vocab_size: c.info.vocabSize, backend: c.info.backend.name }, info: c.info, notice: c.notice,
    steps: records, memory, trace: trace.steps.length ? trace : null, recoveries,
  };
}

/**
 * Times all-reduces on a live coordinator's ranks and fits alpha and beta: LINK_ROUNDS rounds over the
 * sizes, smallest first, each timing the median of `iters` all-reduces (the slowest rank's), a size's
 * time the median over the rounds; the fit reports its own error and whether the timings grew with size.
 */
export async function measureLink(c: Coordinator, sizes = LINK_SIZES, iters = LINK_ITERS, rounds = LINK_ROUNDS): Promise<LinkCalibration> {
  const ordered = [...sizes].sort((a, b) => a - b);
  const times = ordered.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    for (const [i, bytes] of ordered.entries()) times[i].push(await c.timeCollective('all-reduce', bytes, iters));
  }
  const samples = ordered.map((bytes, i) => ({ bytes, seconds: median(times[i]) }));
  const { transport, workers } = c.dist;
  const copy = await c.timeHostCopy(HOST_COPY_BYTES, iters);
  const hostCopy = { upload: HOST_COPY_BYTES / Math.max(copy.upload, 1e-6), readback: HOST_COPY_BYTES / Math.max(copy.readback, 1e-6) };
  const { alpha, beta, error, ordered: grew } = fitAlphaBeta(transport, workers, samples);
  return { transport, workers, samples, hostCopy, alpha, beta, fit: { error, ordered: grew, rounds } };
}

/** Bytes moved to time the backend's upload and readback (bytes per second). */
const HOST_COPY_BYTES = 4 * 2 ** 20;

/**
 * The cost model's calibration without a comparison to take it from: a few steps of one worker (its
 * median compute time) and a DDP group's all-reduce timings.
 */
export async function calibrate(
  req: CompareRequest,
  spawn: Spawn,
  onProgress: (what: string) => void,
  haveCompute: boolean,
): Promise<{ probe: RunRecord | null; link: LinkCalibration }> {
  let probe: RunRecord | null = null;
  if (!haveCompute) {
    onProgress('timing one worker');
    const cfg = configFor('single', req.config, 1);
    const c = await Coordinator.create(cfg, req.text, distFor('single', req.settings, req.bucketMb), spawn);
    try {
      probe = await trainSteps(c, 'single', cfg, 5, new StopSignal(), () => {});
    } finally {
      c.dispose();
    }
  }
  onProgress(`timing the ${req.settings.transport} all-reduce on ${req.settings.workers} workers`);
  const c = await Coordinator.create(req.config, req.text, distFor('ddp', req.settings, req.bucketMb), spawn);
  let link: LinkCalibration;
  try {
    link = await measureLink(c);
  } finally {
    c.dispose();
  }
  onProgress(`timing ${req.settings.workers} workers computing at once`);
  const cfg = configFor('ddp', req.config, req.settings.workers);
  const p = await measureConcurrent(cfg, req.text, req.settings.workers, spawn);
  return { probe, link: { ...link, concurrent: { workers: p.workers, flops: p.flops, stragglerMs: p.stragglerMs }, stepOverheadMs: p.overheadMs } };
}
