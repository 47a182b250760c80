// What the Compare view runs: the strategies, the number of workers, the transport and the number of
// steps, and their round trip through the URL. Pure functions (no DOM), tested in Node.
//
// The compare settings live in the URL's hash (#compare?strategies=single,ddp&workers=2&steps=20),
// not in its query: the query belongs to the setup form (src/ui/setup.ts), which names every key it
// does not know as a problem, and keeps the hash when it rewrites the query.

import type { RunConfig } from '../../model/config';
import type { DistOptions } from '../../parallel/coordinator';
import type { TransportKind } from '../../parallel/collectives';
import type { Plan } from '../../parallel/costmodel';

export type StrategyKey = 'single' | 'ddp' | 'fsdp-full' | 'fsdp-grad_op';
export const STRATEGY_KEYS: readonly StrategyKey[] = ['single', 'ddp', 'fsdp-full', 'fsdp-grad_op'];

export const STRATEGY_LABELS: Record<StrategyKey, string> = {
  single: 'single',
  ddp: 'DDP',
  'fsdp-full': 'FSDP full',
  'fsdp-grad_op': 'FSDP grad_op',
};

/** One line a student understands, per strategy. */
export const STRATEGY_HELP: Record<StrategyKey, string> = {
  single: 'one worker trains the whole global batch',
  ddp: 'every worker keeps the whole model and averages gradients (all-reduce)',
  'fsdp-full': 'every worker keeps 1/N of the model; blocks are gathered for forward and again for backward',
  'fsdp-grad_op': 'like FSDP full, but a gathered block stays until its backward (fewer gathers, more memory)',
};

export const TRANSPORT_KINDS: readonly TransportKind[] = ['ring', 'star', 'shared'];
export const MIN_WORKERS = 2;
export const MAX_COMPARE_WORKERS = 8; // MAX_WORKERS of the coordinator
export const MIN_STEPS = 4;
export const MAX_STEPS = 200;

export interface CompareSettings {
  strategies: StrategyKey[];
  workers: number; // of every multi-worker strategy; single trains their global batch alone
  transport: TransportKind;
  steps: number;
}

export const DEFAULT_COMPARE: CompareSettings = { strategies: ['single', 'ddp', 'fsdp-full'], workers: 2, transport: 'ring', steps: 20 };

/** Steps left out of the speed figures (start-up: the backend compiles its kernels). */
export function warmupSteps(steps: number): number {
  return Math.min(3, Math.floor(steps / 3));
}

/** The last steps, recorded for the timeline (tracing costs a little, so they are not timed either). */
export function tracedSteps(steps: number): number {
  return Math.min(3, Math.max(1, Math.floor(steps / 3)));
}

/** The config a strategy runs: single trains the global batch (workers x batch_size) on its own. */
export function configFor(key: StrategyKey, cfg: RunConfig, workers: number): RunConfig {
  return key === 'single' ? { ...cfg, batch_size: cfg.batch_size * workers } : cfg;
}

export function distFor(key: StrategyKey, s: Pick<CompareSettings, 'workers' | 'transport'>, bucketMb: number): DistOptions {
  if (key === 'single') return { strategy: 'single', workers: 1, transport: s.transport, bucketMb };
  if (key === 'ddp') return { strategy: 'ddp', workers: s.workers, transport: s.transport, bucketMb };
  return { strategy: 'fsdp', workers: s.workers, transport: s.transport, bucketMb, shard: key === 'fsdp-full' ? 'full' : 'grad_op', prefetch: true };
}

/** The cost model's plan of a run. */
export function planOf(d: DistOptions): Plan {
  return { strategy: d.strategy, workers: d.workers, transport: d.transport, bucketMb: d.bucketMb, shard: d.shard };
}

/** The URL hash of these settings ("#compare?..."). */
export function toHash(s: CompareSettings): string {
  const q = new URLSearchParams({ strategies: s.strategies.join(','), workers: String(s.workers), transport: s.transport, steps: String(s.steps) });
  return '#compare?' + q.toString().replace(/%2C/g, ',');
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
  const t = q.get('transport');
  if (t !== null) {
    if ((TRANSPORT_KINDS as readonly string[]).includes(t)) settings.transport = t as TransportKind;
    else problems.push(`transport must be ring, star or shared, got "${t}"`);
  }
  return { settings, problems, present: true };
}
