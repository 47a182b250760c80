// What every transport shares: running collectives one at a time per rank (in the order they are
// issued), counting their bytes and CPU time, tracing them, and a queue of incoming messages. The
// transports themselves are ring.ts, star.ts and shared.ts; the interface is ../collectives.ts.

import { serializer } from '../../util/serial';
import { clock, noTrace, type Tracer } from '../../util/trace';
import type { CommMemory } from '../reduce';
import type { CommStats, PortLike } from '../collectives';

/** a mod n, in [0, n) also for negative a (ring neighbours: rank - 1). */
export const mod = (a: number, n: number) => ((a % n) + n) % n;

/** Values handed out in arrival order to whoever awaits them (or an error to all, once failed). */
export class Inbox<T> {
  private items: T[] = [];
  private waiters: { resolve: (v: T) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  /** An inbox of a port's messages (unwrapped). */
  static of<T>(port: PortLike, unwrap: (data: unknown) => T): Inbox<T> {
    const inbox = new Inbox<T>();
    port.onmessage = (ev) => inbox.deliver(unwrap(ev.data));
    return inbox;
  }
  deliver(v: T): void {
    const w = this.waiters.shift();
    if (w) w.resolve(v);
    else this.items.push(v);
  }
  next(): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const v = this.items.shift();
    return v !== undefined ? Promise.resolve(v) : new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  /** Every wait, now and later, fails with e (a step aborted: nothing more will arrive). */
  fail(e: Error): void {
    this.failure = e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}

/** What collective a message belongs to: its kind, its sequence number on the rank, and the step. */
export interface Tag {
  kind: CollectiveKind;
  seq: number; // 1, 2, ... in the order this rank issued its collectives
  step: number;
}

export const COLLECTIVE_KINDS = ['all-reduce', 'reduce-scatter', 'all-gather', 'broadcast'] as const;
export type CollectiveKind = (typeof COLLECTIVE_KINDS)[number];

export const describeTag = (t: Tag) => `${t.kind} #${t.seq} of step ${t.step}`;
export const sameTag = (a: Tag, b: Tag) => a.kind === b.kind && a.seq === b.seq && a.step === b.step;

/** Two ranks are in different collectives: an error that names both sides, never a silent sum. */
export function mismatch(transport: string, mine: { rank: number; tag: Tag }, theirs: { rank: number; tag: Tag }): Error {
  return new Error(
    `${transport} transport: rank ${mine.rank} is in ${describeTag(mine.tag)} but rank ${theirs.rank} is in ${describeTag(theirs.tag)}; ` +
      'every rank must issue the same collectives in the same order',
  );
}

/**
 * Base: one collective at a time per rank, each tagged (Tag) so that transports can check that all
 * ranks are in the same one, and CPU time of the synchronous parts counted as comm.
 */
export abstract class Base {
  readonly stats: CommStats = { bytesSent: 0, commMs: 0, ops: 0 };
  tracer: Tracer = noTrace; // records each collective, with its bytes, on the "comm" lane
  /** The training step the next collectives belong to (the rank sets it before each step). */
  step = 0;
  private seq = 0;
  /** The running collective's tag (collectives run one at a time). */
  protected tag: Tag = { kind: 'all-reduce', seq: 0, step: 0 };
  private readonly queue = serializer();
  constructor(readonly rank: number, readonly world: number, protected readonly mem: CommMemory | null) {}

  alloc(n: number): Float32Array {
    return this.mem ? this.mem.alloc(n) : new Float32Array(n);
  }

  /** Set by abort(): every collective waiting or issued after it fails with this. */
  protected aborted: Error | null = null;

  /**
   * Gives up on every collective in flight and every later one (the coordinator aborts a step when a
   * rank failed: the others would wait for its messages forever). The links are not used again.
   */
  abort(reason: Error): void {
    this.aborted ??= reason;
    this.wake(reason);
  }

  /** Wakes whatever this transport's collectives are waiting on, so that they see `aborted`. */
  protected abstract wake(reason: Error): void;

  /** Runs one collective after the ones issued before it; it is numbered (its Tag) when issued. */
  protected serial<R>(name: CollectiveKind, fn: () => Promise<R>): Promise<R> {
    this.stats.ops += 1;
    const tag: Tag = { kind: name, seq: ++this.seq, step: this.step };
    return this.queue(async () => {
      if (this.aborted) throw this.aborted;
      this.tag = tag;
      const ts = clock();
      const b0 = this.stats.bytesSent;
      try {
        return await fn();
      } finally {
        this.tracer.record(name, 'comm', 'comm', ts, this.stats.bytesSent - b0);
      }
    });
  }

  /** Synchronous collective work (copies, sums, posting): counted as comm time, and traced on the
   * main lane (it runs on the worker's thread, between or inside its other spans). */
  protected timed<R>(fn: () => R): R {
    const t0 = performance.now();
    try {
      return this.tracer.span('collective work', 'comm', fn);
    } finally {
      this.stats.commMs += performance.now() - t0;
    }
  }
}
