// What the Compare view runs: the strategies, the number of workers, the transport and the number of
// steps, and their round trip through the URL. Pure functions (no DOM), tested in Node.
//
// The compare settings live in the URL's hash (#compare?strategies=single,ddp&workers=2&steps=20&break=kill@10,
// with PP's micro-batches as &microbatches=4 when a pipeline is among the strategies, and DiLoCo's inner
// steps and compression as &inner_steps=20&outer_compress=fp16 when DiLoCo is),
// not in its query: the query belongs to the setup form (src/ui/setup.ts), which names every key it
// does not know as a problem, and keeps the hash when it rewrites the query.

import type { RunConfig } from '../../model/config';
import type { DistOptions, FaultOptions } from '../../parallel/coordinator';
import type { TransportKind } from '../../parallel/collectives';
import { DEFAULT_INNER_STEPS, OUTER_COMPRESS, type OuterCompress, type Plan } from '../../parallel/costmodel';
import { FAULT_KINDS, type FaultKind } from '../../parallel/faults';
import { splitsBatch, type Strategy } from '../../parallel/layout';
import { checkSplit } from '../../parallel/parts';

export type StrategyKey = 'single' | 'ddp' | 'fsdp-full' | 'fsdp-noprefetch' | 'fsdp-grad_op' | 'tp' | 'pp-1f1b' | 'pp-gpipe' | 'diloco';
export const STRATEGY_KEYS: readonly StrategyKey[] = ['single', 'ddp', 'fsdp-full', 'fsdp-noprefetch', 'fsdp-grad_op', 'tp', 'pp-1f1b', 'pp-gpipe', 'diloco'];
/** The what-if's strategies: FSDP full without prefetch is a comparison of its own (what prefetch hides), not a choice. */
export const WHATIF_KEYS: readonly StrategyKey[] = STRATEGY_KEYS.filter((k) => k !== 'fsdp-noprefetch');
export const isFsdp = (key: StrategyKey): boolean => key === 'fsdp-full' || key === 'fsdp-noprefetch' || key === 'fsdp-grad_op';

export const STRATEGY_LABELS: Record<StrategyKey, string> = {
  single: 'single',
  ddp: 'DDP',
  'fsdp-full': 'FSDP full',
  'fsdp-noprefetch': 'FSDP full, no prefetch',
  'fsdp-grad_op': 'FSDP grad_op',
  tp: 'TP',
  'pp-1f1b': 'PP 1F1B',
  'pp-gpipe': 'PP GPipe',
  diloco: 'DiLoCo',
};

/** One line a student understands, per strategy. */
export const STRATEGY_HELP: Record<StrategyKey, string> = {
  single: 'one worker trains the whole global batch',
  ddp: 'every worker keeps the whole model and averages gradients (all-reduce)',
  'fsdp-full': 'every worker keeps 1/N of the model; blocks are gathered for forward and again for backward (the next one prefetched)',
  'fsdp-noprefetch': 'FSDP full with backward prefetch off: each block\'s gather starts only when its backward needs it',
  'fsdp-grad_op': 'like FSDP full, but a gathered block stays until its backward (fewer gathers, more memory)',
  tp: 'every layer split across the workers (whole heads, MLP columns); activations all-reduced 4 times per block',
  'pp-1f1b': 'each worker a stage of blocks; micro-batches flow through, one forward then one backward',
  'pp-gpipe': 'each worker a stage of blocks; all micro-batches forward, then all backward (more in flight)',
  diloco: 'every worker trains its own copy for H steps without talking, then the copies average what they learned (an outer Nesterov step): 1/H of DDP\'s traffic',
};

/**
 * Strategies whose losses are not those of one worker with the global batch (DiLoCo's replicas drift
 * apart for H steps): their curves are compared against tokens and wall time, not expected to coincide.
 */
export const NOT_SAME_MATH: readonly StrategyKey[] = ['diloco'];

/** The strategies that split the model itself (their workers all work on the same batch). */
export const MODEL_PARALLEL: readonly StrategyKey[] = ['tp', 'pp-1f1b', 'pp-gpipe'];
export const isPipeline = (key: StrategyKey): boolean => key === 'pp-1f1b' || key === 'pp-gpipe';

/** PP's micro-batches per step in a comparison, unless the settings say otherwise. */
export const DEFAULT_MICROBATCHES = 4;

export const TRANSPORT_KINDS: readonly TransportKind[] = ['ring', 'star', 'shared'];
export const MIN_WORKERS = 2;
export const MAX_COMPARE_WORKERS = 8; // MAX_WORKERS of the coordinator
export const MIN_STEPS = 4;
export const MAX_STEPS = 200;
export const MAX_MICROBATCHES = 64;
export const MAX_INNER_STEPS = 1000;
export { DEFAULT_INNER_STEPS, OUTER_COMPRESS, type OuterCompress };

/** "Break something during the run": a fault on worker FAULT_RANK while it trains `step` (1-based). */
export interface CompareFault {
  kind: FaultKind;
  step: number;
}

export interface CompareSettings {
  strategies: StrategyKey[];
  workers: number; // of every multi-worker strategy; single trains their global batch alone
  transport: TransportKind;
  steps: number;
  fault?: CompareFault; // none when absent; only strategies with 2 or more workers get it
  microbatches?: number; // PP's micro-batches per step (DEFAULT_MICROBATCHES when absent)
  innerSteps?: number; // DiLoCo's H (DEFAULT_INNER_STEPS when absent)
  outerCompress?: OuterCompress; // DiLoCo's pseudo-gradients on the wire ('none', fp32, when absent)
}

/** The worker the Compare view breaks: every strategy it breaks has at least 2. */
export const FAULT_RANK = 1;
/** The first step a fault may hit: step 1 times the deadlines (until then they are generous). */
export const MIN_FAULT_STEP = 2;
/**
 * A hang is noticed at the step's deadline, 10 x the median step with a 10 s floor by default; the
 * Compare view lowers the floor to this, so a class waits about 2 s, not 10.
 */
export const COMPARE_HANG_FLOOR_MS = 2000;

/** The menu's words for each fault (on worker 1). */
export const FAULT_LABELS: Record<FaultKind, string> = {
  kill: 'kill worker 1',
  hang: 'hang worker 1',
  nan: 'NaN gradients on worker 1',
  oom: 'worker 1 out of memory',
};

export const DEFAULT_COMPARE: CompareSettings = { strategies: ['single', 'ddp', 'fsdp-full'], workers: 2, transport: 'ring', steps: 20 };

/** Steps left out of the speed figures (start-up: the backend compiles its kernels). */
export function warmupSteps(steps: number): number {
  return Math.min(3, Math.floor(steps / 3));
}

/** The last steps, recorded for the timeline (tracing costs a little, so they are not timed either). */
export function tracedSteps(steps: number): number {
  return Math.min(3, Math.max(1, Math.floor(steps / 3)));
}

/** The default step of a fault: the middle of the timed steps (after the warm-up, before the traced ones). */
export function middleStep(steps: number): number {
  const first = warmupSteps(steps) + 1;
  const last = steps - tracedSteps(steps);
  return Math.max(MIN_FAULT_STEP, Math.min(steps, Math.floor((first + Math.max(first, last)) / 2)));
}

/** Why a fault step cannot be used with this many steps, or null. */
export function faultStepProblem(step: number, steps: number): string | null {
  return Number.isInteger(step) && step >= MIN_FAULT_STEP && step <= steps ? null
    : `the fault's step must be a whole number from ${MIN_FAULT_STEP} to the number of steps (${steps})`;
}

/**
 * The fault options of a strategy: the injection when it has 2 or more workers (one worker has no replica
 * to recover from), with a shorter deadline floor for a hang (COMPARE_HANG_FLOOR_MS); otherwise none.
 */
export function faultsFor(fault: CompareFault | undefined, workers: number): FaultOptions | undefined {
  if (!fault || workers < 2) return undefined;
  return {
    inject: [{ kind: fault.kind, rank: FAULT_RANK, step: fault.step }],
    ...(fault.kind === 'hang' ? { deadlines: { floorMs: COMPARE_HANG_FLOOR_MS } } : {}),
  };
}

/**
 * The config a strategy runs, all with the same global batch of workers x batch_size x grad_accum
 * sequences: DDP and FSDP split it (each worker's batch_size is the setup's); single, TP and PP work
 * on all of it at once (batch_size x workers).
 */
export function configFor(key: StrategyKey, cfg: RunConfig, workers: number): RunConfig {
  return splitsBatch({ strategy: strategyOf(key) }) ? cfg : { ...cfg, batch_size: cfg.batch_size * workers };
}

/** The coordinator's strategy of a compared one. */
export function strategyOf(key: StrategyKey): Strategy {
  return isFsdp(key) ? 'fsdp' : isPipeline(key) ? 'pp' : key as Strategy;
}

export function distFor(key: StrategyKey, s: Pick<CompareSettings, 'workers' | 'transport' | 'microbatches' | 'innerSteps' | 'outerCompress'>, bucketMb: number): DistOptions {
  if (key === 'single') return { strategy: 'single', workers: 1, transport: s.transport, bucketMb };
  if (key === 'diloco') {
    return { strategy: 'diloco', workers: s.workers, transport: s.transport, bucketMb, innerSteps: s.innerSteps ?? DEFAULT_INNER_STEPS, outerCompress: s.outerCompress ?? 'none' };
  }
  if (key === 'ddp') return { strategy: 'ddp', workers: s.workers, transport: s.transport, bucketMb };
  if (key === 'tp') return { strategy: 'tp', workers: s.workers, transport: s.transport, bucketMb };
  if (isPipeline(key)) {
    return { strategy: 'pp', workers: s.workers, transport: s.transport, bucketMb, microbatches: s.microbatches ?? DEFAULT_MICROBATCHES, schedule: key === 'pp-gpipe' ? 'gpipe' : '1f1b' };
  }
  return { strategy: 'fsdp', workers: s.workers, transport: s.transport, bucketMb, shard: key === 'fsdp-grad_op' ? 'grad_op' : 'full', prefetch: key !== 'fsdp-noprefetch' };
}

/**
 * Why the setup cannot be run under some of the chosen strategies (TP's workers must divide n_head;
 * PP needs at most one worker per block, and micro-batches that divide its batch), or null.
 */
export function splitProblem(strategies: readonly StrategyKey[], cfg: RunConfig, s: Pick<CompareSettings, 'workers' | 'transport' | 'microbatches'>): string | null {
  for (const key of strategies) {
    try {
      checkSplit(configFor(key, cfg, s.workers), distFor(key, s, 25));
    } catch (e) {
      return `${STRATEGY_LABELS[key]}: ${(e as Error).message}`;
    }
  }
  return null;
}

/** The cost model's plan of a run. */
export function planOf(d: DistOptions): Plan {
  return {
    strategy: d.strategy, workers: d.workers, transport: d.transport, bucketMb: d.bucketMb, shard: d.shard, microbatches: d.microbatches, schedule: d.schedule,
    prefetch: d.prefetch, buddies: d.faults?.buddies !== false,
    ...(d.strategy === 'diloco' ? { innerSteps: d.innerSteps ?? DEFAULT_INNER_STEPS, outerCompress: d.outerCompress ?? 'none' } : {}),
  };
}

/** The URL hash of these settings ("#compare?..."). */
export function toHash(s: CompareSettings): string {
  const q = new URLSearchParams({ strategies: s.strategies.join(','), workers: String(s.workers), transport: s.transport, steps: String(s.steps) });
  if (s.fault) q.set('break', `${s.fault.kind}@${s.fault.step}`);
  if (s.microbatches !== undefined && (s.strategies.some(isPipeline) || s.microbatches !== DEFAULT_MICROBATCHES)) q.set('microbatches', String(s.microbatches));
  const diloco = s.strategies.includes('diloco');
  if (s.innerSteps !== undefined && (diloco || s.innerSteps !== DEFAULT_INNER_STEPS)) q.set('inner_steps', String(s.innerSteps));
  if (s.outerCompress !== undefined && (diloco || s.outerCompress !== 'none')) q.set('outer_compress', s.outerCompress);
  return '#compare?' + q.toString().replace(/%2C/g, ',').replace(/%40/g, '@');
}

/**
 * Reads compare settings from a URL hash. Never throws: what cannot be used falls back to the
 * default and `problems` says so. A hash that is not "#compare..." gives the defaults, silently.
 */
export function fromHash(hash: string): { settings: CompareSettings; problems: string[]; present: boolean } {
  const settings: CompareSettings = { ...DEFAULT_COMPARE, strategies: [...DEFAULT_COMPARE.strategies] };
  const problems: string[] = [];
  const m = /^#compare(?:\?(.*))?$/.exec(hash);
  if (!m) return { settings, problems, present: false };
  const q = new URLSearchParams(m[1] ?? '');
  const list = q.get('strategies');
  if (list !== null) {
    const keys = list.split(',').map((k) => k.trim()).filter(Boolean);
    const unknown = keys.filter((k) => !(STRATEGY_KEYS as readonly string[]).includes(k));
    const known = STRATEGY_KEYS.filter((k) => keys.includes(k));
    if (unknown.length) problems.push(`unknown strateg${unknown.length === 1 ? 'y' : 'ies'} ${unknown.map((k) => `"${k}"`).join(', ')} (choose from ${STRATEGY_KEYS.join(', ')})`);
    if (known.length) settings.strategies = known;
  }
  const int = (key: 'workers' | 'steps', lo: number, hi: number) => {
    const raw = q.get(key);
    if (raw === null) return;
    const n = Number(raw);
    if (raw.trim() !== '' && Number.isInteger(n) && n >= lo && n <= hi) settings[key] = n;
    else problems.push(`${key} must be a whole number from ${lo} to ${hi}, got "${raw}"`);
  };
  int('workers', MIN_WORKERS, MAX_COMPARE_WORKERS);
  int('steps', MIN_STEPS, MAX_STEPS);
  const mb = q.get('microbatches');
  if (mb !== null) {
    const n = Number(mb);
    if (mb.trim() !== '' && Number.isInteger(n) && n >= 1 && n <= MAX_MICROBATCHES) settings.microbatches = n;
    else problems.push(`microbatches must be a whole number from 1 to ${MAX_MICROBATCHES}, got "${mb}"`);
  }
  const h = q.get('inner_steps');
  if (h !== null) {
    const n = Number(h);
    if (h.trim() !== '' && Number.isInteger(n) && n >= 1 && n <= MAX_INNER_STEPS) settings.innerSteps = n;
    else problems.push(`inner_steps must be a whole number from 1 to ${MAX_INNER_STEPS}, got "${h}"`);
  }
  const oc = q.get('outer_compress');
  if (oc !== null) {
    if ((OUTER_COMPRESS as readonly string[]).includes(oc)) settings.outerCompress = oc as OuterCompress;
    else problems.push(`outer_compress must be ${OUTER_COMPRESS.join(', ')}, got "${oc}"`);
  }
  const t = q.get('transport');
  if (t !== null) {
    if ((TRANSPORT_KINDS as readonly string[]).includes(t)) settings.transport = t as TransportKind;
    else problems.push(`transport must be ring, star or shared, got "${t}"`);
  }
  const b = q.get('break');
  if (b !== null && b !== '' && b !== 'none') {
    // "kill@10" (worker 1 at step 10), or "kill" (at the middle of the timed steps)
    const m = /^([a-z]+)(?:@(\d+))?$/.exec(b.trim());
    const kind = m?.[1] as FaultKind | undefined;
    if (!m || !kind || !FAULT_KINDS.includes(kind)) {
      problems.push(`break must be KIND or KIND@STEP with KIND one of ${FAULT_KINDS.join(', ')} (e.g. kill@10), got "${b}"`);
    } else {
      const step = m[2] === undefined ? middleStep(settings.steps) : Number(m[2]);
      const problem = faultStepProblem(step, settings.steps);
      if (problem) problems.push(`break=${b}: ${problem}`);
      else settings.fault = { kind, step };
    }
  }
  return { settings, problems, present: true };
}
