// Faults: what can go wrong with a rank, how the coordinator notices, and what it records when it
// recovers. Vocabulary:
//   failure   - a fact with a rank and a cause: the worker crashed, it hung (missed the step's deadline
//               and sent no heartbeat), it threw (out of memory, a lost GPU device, any exception), or its
//               gradients were not finite (checked before the optimizer, never applied).
//   deadline  - how long a phase of a step may take: a multiple of the median step time with a floor,
//               measured, not guessed (hivemind's users fight guessed timeouts); generous until a step
//               has been timed (the first ones compile kernels).
//   heartbeat - every rank posts a beat every HEARTBEAT_MS from its own event loop; at the deadline, a
//               rank that still beats is slow (the deadline is extended a few times), one that does not
//               is hung. A rank waiting in a collective for a dead peer still beats: it is not blamed.
//   recovery  - abort the step on every rank (nothing applied anywhere), take the state at the step's
//               start from a healthy replica (DDP) or from the shards and the failed rank's buddy copy
//               (FSDP), replace the failed worker, restart every rank from that state, replay the step.
//   injection - a fault made on purpose (`--inject kill-worker:1@5`, the page's "Break something").

import type { RunConfig } from '../model/config';
import { UNCALIBRATED, predict, type Plan } from './costmodel';
import { MAX_WORKERS, gradientSync } from './layout';

export const FAULT_KINDS = ['kill', 'hang', 'nan', 'oom'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** A fault to inject: on `rank`, while it trains step `step` (1-based, as the progress line counts). */
export interface Injection {
  kind: FaultKind;
  rank: number;
  step: number;
}

/** Why a rank failed. */
export type FailureCause = 'crash' | 'hang' | 'slow' | 'nan' | 'oom' | 'error';

/** A rank failed: the coordinator aborts the step, recovers and replays it. */
export class RankFailure extends Error {
  constructor(readonly rank: number, readonly cause: FailureCause, message: string) {
    super(message);
    this.name = 'RankFailure';
  }

  /** The failure of an exception a rank's call rejected with. */
  static of(rank: number, e: unknown): RankFailure {
    if (e instanceof RankFailure) return e;
    const err = e instanceof Error ? e : new Error(String(e));
    const oom = err instanceof RangeError || /out of memory|allocation failed|cannot allocate/i.test(err.message);
    return new RankFailure(rank, oom ? 'oom' : 'error', `rank ${rank} failed: ${err.message}`);
  }
}

/** What the run JSON and the page list for every recovery. */
export interface Recovery {
  step: number; // the step being trained when the fault was detected (1-based)
  rank: number;
  cause: FailureCause;
  message: string;
  detected_ms: number; // from the start of the step to the detection
  restored_from: string; // "rank 0's replica", "the shards and rank 2's buddy copy of rank 1"
  replayed_steps: number; // steps trained again (0: the failed step itself is not counted; it had no effect)
  ms: number; // from the detection until every rank was ready to replay
}

/** How long a step may take, and how a rank's silence is judged. */
export interface Deadlines {
  factor: number; // deadline = factor x the median of recent step times ...
  floorMs: number; // ... at least this
  firstMs: number; // until a step has been timed
}

export const DEFAULT_DEADLINES: Deadlines = { factor: 10, floorMs: 10_000, firstMs: 120_000 };
export const HEARTBEAT_MS = 200;
const EXTENSIONS = 3; // a rank that is slow but alive gets the deadline this many more times

/** "kill-worker:1@5" (or kill, hang-worker, hang, nan, oom) -> an Injection; an error names what is wrong. */
export function parseInjection(text: string, workers: number): Injection {
  const m = /^([a-z-]+):(\d+)@(\d+)$/.exec(text.trim());
  const kind = m?.[1].replace(/-worker$/, '') as FaultKind | undefined;
  if (!m || !kind || !FAULT_KINDS.includes(kind)) {
    throw new Error(`--inject needs KIND:RANK@STEP with KIND one of kill-worker, hang-worker, nan, oom (e.g. kill-worker:1@5), got "${text}"`);
  }
  const rank = Number(m[2]);
  const step = Number(m[3]);
  if (rank >= workers) throw new Error(`--inject ${text}: rank ${rank} does not exist (ranks are 0 to ${workers - 1})`);
  if (step < 1) throw new Error(`--inject ${text}: steps count from 1`);
  return { kind, rank, step };
}

/**
 * Watches the ranks of one run: their heartbeats, and the deadline of each phase of a step.
 * race(calls) settles like Promise.all, or rejects with a RankFailure for the rank that hung.
 */
export class Watchdog {
  private lastBeat: number[];
  private recent: number[] = []; // step times (ms)

  constructor(world: number, private deadlines: Deadlines) {
    this.lastBeat = new Array(world).fill(performance.now());
  }

  /** A rank's heartbeat port: every message is a beat. */
  listen(rank: number, port: { onmessage: ((ev: MessageEvent) => void) | null }): void {
    this.lastBeat[rank] = performance.now();
    port.onmessage = () => (this.lastBeat[rank] = performance.now());
  }

  /** A step took this long: later deadlines follow. */
  timed(ms: number): void {
    this.recent.push(ms);
    if (this.recent.length > 50) this.recent.shift();
  }

  deadlineMs(): number {
    if (this.recent.length === 0) return this.deadlines.firstMs;
    const sorted = [...this.recent].sort((a, b) => a - b);
    return Math.max(this.deadlines.floorMs, this.deadlines.factor * sorted[sorted.length >> 1]);
  }

  /** Every rank's call, within the deadline (extended while the late ranks still beat). */
  race<R>(calls: Promise<R>[]): Promise<R[]> {
    const deadline = this.deadlineMs();
    const answered = calls.map(() => false);
    calls.forEach((c, r) => c.then(() => (answered[r] = true), () => {}));
    return new Promise<R[]>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout>;
      let extensions = 0;
      const check = () => {
        const now = performance.now();
        const late = answered.flatMap((a, r) => (a ? [] : [r]));
        const silentFor = (r: number) => now - this.lastBeat[r];
        const silent = late.find((r) => silentFor(r) > Math.max(2000, deadline / 2));
        if (silent !== undefined) {
          reject(new RankFailure(silent, 'hang', `rank ${silent} missed the step's deadline (${Math.round(deadline)} ms) and sent no heartbeat for ${Math.round(silentFor(silent))} ms: it hung or died`));
        } else if (extensions++ < EXTENSIONS) {
          timer = setTimeout(check, deadline);
        } else {
          reject(new RankFailure(late[0], 'slow', `rank ${late[0]} is alive but missed the step's deadline ${EXTENSIONS + 1} times (${Math.round(deadline)} ms each)`));
        }
      };
      timer = setTimeout(check, deadline);
      Promise.all(calls).then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }
}

/** Running out of memory twice on the same step: what failed, and what the cost model says would fit. */
export function outOfMemoryAdvice(rank: number, step: number, cfg: RunConfig, dist: Plan): string {
  const mb = (plan: Plan, batch = cfg.batch_size) => (predict({ ...cfg, batch_size: batch }, plan, UNCALIBRATED).memory.total / 2 ** 20).toFixed(1);
  const more = Math.min(MAX_WORKERS, dist.workers * 2);
  const sharded = gradientSync(dist) === 'shard';
  const ideas = [
    ...(cfg.batch_size > 1 ? [`batch_size ${Math.ceil(cfg.batch_size / 2)} (${mb(dist, Math.ceil(cfg.batch_size / 2))} MB per worker)`] : []),
    ...(!sharded && dist.workers > 1 ? [`strategy fsdp with shard full (${mb({ ...dist, strategy: 'fsdp', shard: 'full' })} MB per worker)`] : []),
    ...(sharded && more > dist.workers ? [`more FSDP workers (${mb({ ...dist, workers: more })} MB each with ${more})`] : []),
    ...(cfg.n_layer > 1 ? ['a smaller model'] : []),
  ];
  const now = `${dist.strategy}${dist.strategy === 'fsdp' ? ` ${dist.shard ?? 'full'}` : ''} x${dist.workers}`;
  return `rank ${rank} ran out of memory twice training step ${step} (preset ${cfg.preset}, batch_size ${cfg.batch_size} per worker, ${now}); ` +
    `the cost model puts a worker at ${mb(dist)} MB. Try ${ideas.join(', or ')}`;
}
