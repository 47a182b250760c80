// What every transport shares: running collectives one at a time per rank (in the order they are
// issued), counting their bytes and CPU time, tracing them, and a queue of incoming messages. The
// transports themselves are ring.ts, star.ts and shared.ts; the interface is ../collectives.ts.
//
// Point-to-point (send/recv, for pipeline parallelism) lives here too; a transport only routes a
// message one hop (route()) and hands arrivals for this rank to arrived(). Choices:
//   - send/recv are outside the collectives' serial order: they take no collective sequence number and
//     never wait in the collectives' queue, and a collective never waits for them. A rank may thus have
//     a recv pending (the next stage's gradient) while its all-reduces run (tensor parallelism inside a
//     stage), and a send issued between collectives goes out at once. A send resolves once posted
//     (MessagePorts buffer without bound), so sends never block and a schedule whose receives match
//     its sends cannot deadlock.
//   - Each message carries the step and a sequence number per (sender, receiver) pair (1, 2, ... for the
//     link's life); recv(from, n) expects the next number from `from`, this rank's step and n floats,
//     and otherwise fails naming both ranks, the sizes and the steps.
//   - Messages from one sender arrive in the order sent (every route is FIFO: one fixed path of
//     MessagePorts per pair), into one inbox per sender, taken by recvs in the order they were called.
//   - abort() fails pending and later recvs with the reason.
//   - The buffer is transferred when it owns its whole ArrayBuffer (zero-copy); a view of part of a
//     larger buffer (a registered buffer from alloc() is always one: its memory holds scratch too),
//     or of shared memory, is copied first.

import { serializer } from '../../util/serial';
import { clock, noTrace, type Tracer } from '../../util/trace';
import type { CommMemory } from '../reduce';
import type { CommStats, PortLike, TransportKind } from '../collectives';

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

export const COLLECTIVE_KINDS = ['all-reduce', 'reduce-scatter', 'all-gather', 'broadcast', 'all-reduce-sum'] as const;
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

/** A point-to-point message (send/recv): from rank `from` to rank `to`, the seq-th on that pair, of a step. */
export interface P2PMessage { p2p: true; from: number; to: number; seq: number; step: number; data: Float32Array }

export const isP2P = (d: unknown): d is P2PMessage => typeof d === 'object' && d !== null && (d as P2PMessage).p2p === true;

/**
 * buf as it can be posted without a copy: itself when it is the whole of an ordinary ArrayBuffer (then
 * transferred), else a copy of its floats (a view of part of a larger buffer, or of shared memory).
 */
export function transferable(buf: Float32Array): Float32Array {
  const whole = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
  return whole && !(typeof SharedArrayBuffer !== 'undefined' && buf.buffer instanceof SharedArrayBuffer) ? buf : buf.slice();
}

/**
 * Base: one collective at a time per rank, each tagged (Tag) so that transports can check that all
 * ranks are in the same one, and CPU time of the synchronous parts counted as comm.
 */
export abstract class Base {
  abstract readonly kind: TransportKind;
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
    for (const q of this.p2pInboxes.values()) q.fail(this.aborted);
    this.wake(reason);
  }

  // Point-to-point (see the file header): messages sent to each rank and received from each so far,
  // and one inbox per sender.
  private sentTo = new Map<number, number>();
  private receivedFrom = new Map<number, number>();
  private p2pInboxes = new Map<number, Inbox<P2PMessage>>();

  private p2pInbox(from: number): Inbox<P2PMessage> {
    let q = this.p2pInboxes.get(from);
    if (!q) {
      this.p2pInboxes.set(from, (q = new Inbox<P2PMessage>()));
      if (this.aborted) q.fail(this.aborted);
    }
    return q;
  }

  /** A point-to-point message for this rank arrived (the transport calls this). */
  protected arrived(msg: P2PMessage): void {
    this.p2pInbox(msg.from).deliver(msg);
  }

  /**
   * Posts a point-to-point message one hop towards msg.to (never this rank), transferring its buffer,
   * and counts the bytes this rank puts on its link. Called inside timed() by the caller.
   */
  protected abstract route(msg: P2PMessage): void;

  private checkPeer(r: number, what: string): void {
    if (!Number.isInteger(r) || r < 0 || r >= this.world) {
      throw new Error(`${this.kind} transport: rank ${this.rank} cannot ${what} rank ${r}: the ranks are 0 to ${this.world - 1}`);
    }
  }

  send(buf: Float32Array, to: number): Promise<void> {
    try {
      this.checkPeer(to, 'send to');
      if (this.aborted) throw this.aborted;
      const seq = (this.sentTo.get(to) ?? 0) + 1;
      this.sentTo.set(to, seq);
      const ts = clock();
      const b0 = this.stats.bytesSent;
      this.timed(() => {
        const msg: P2PMessage = { p2p: true, from: this.rank, to, seq, step: this.step, data: transferable(buf) };
        if (to === this.rank) this.arrived(msg);
        else this.route(msg);
      });
      this.tracer.record(`send to rank ${to}`, 'comm', 'comm', ts, this.stats.bytesSent - b0);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async recv(from: number, n: number): Promise<Float32Array> {
    this.checkPeer(from, 'receive from');
    const seq = (this.receivedFrom.get(from) ?? 0) + 1;
    this.receivedFrom.set(from, seq);
    const step = this.step;
    const ts = clock();
    let msg: P2PMessage;
    try {
      msg = await this.p2pInbox(from).next();
    } finally {
      this.tracer.record(`recv from rank ${from}`, 'wait', 'main', ts);
    }
    const expected = `${this.kind} transport: rank ${this.rank} expected message #${seq} of step ${step} from rank ${from} with ${n} floats`;
    if (msg.seq !== seq || msg.step !== step) {
      throw new Error(`${expected}, but rank ${from} sent message #${msg.seq} of step ${msg.step} (${msg.data.length} floats); every recv must match one send, in order`);
    }
    if (msg.data.length !== n) {
      throw new Error(`${expected}, but rank ${from} sent ${msg.data.length} floats (message #${seq} of step ${step})`);
    }
    return msg.data;
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
