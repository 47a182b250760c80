// Collectives: what N workers use to agree on numbers. All-reduce, reduce-scatter, all-gather and
// broadcast, over three transports a class can compare:
//   ring   - each rank talks only to its neighbours over MessagePorts; a ring all-reduce is a
//            reduce-scatter then an all-gather, N-1 steps each, moving 2(N-1)/N x S per rank (as NCCL).
//            ArrayBuffers are transferred (zero-copy), never cloned.
//   star   - every rank sends its whole buffer to the coordinator, which sums and sends back: simple,
//            and the coordinator's link carries N x S each way (the naive design a class should see lose).
//   shared - one shared memory all ranks can read (needs cross-origin isolation in a browser): each
//            rank reduces its own chunk of every rank's buffer, between two barriers.
// Every collective is issued in the same order on every rank; a rank runs them one at a time.
// The sums run in WebAssembly SIMD over each rank's communication memory (src/dist/reduce.ts); buffers
// from alloc() live in that memory and are reduced where they lie (ring, shared), without staging copies.
//
// Vocabulary: S is a buffer's length in floats; the chunk (shard) of rank r is [lo, hi) of
// chunkBounds(S, N, r); "mean" ops divide the sum by N.

import { serializer } from '../util/serial';
import { clock, noTrace, type Tracer } from '../util/trace';
import { CommMemory, PIECE, alignUp, pages } from './reduce';
import { unlessOutOfMemory } from '../util/wasm';

/** A MessagePort, a Worker, or Node's worker_threads MessagePort: what the transports need of one. */
export interface PortLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((ev: MessageEvent) => void) | null;
  close?(): void;
}

export interface CommStats {
  bytesSent: number; // bytes this rank put on its links (or wrote to shared memory)
  commMs: number; // CPU time spent inside collective code (copies, sums, posting)
  ops: number;
}

export interface Collectives {
  readonly rank: number;
  readonly world: number;
  readonly kind: TransportKind;
  readonly stats: CommStats;
  tracer: Tracer;
  /**
   * A zeroed buffer of n floats that this transport reduces where it lies (DDP's buckets), while its
   * registered room lasts; an ordinary Float32Array after that. Every rank must allocate the same sizes
   * in the same order.
   */
  alloc(n: number): Float32Array;
  /** In place: buf becomes the element-wise mean over ranks. */
  allReduceMean(buf: Float32Array): Promise<Float32Array>;
  /** Returns this rank's chunk of the element-wise mean (buf is used as scratch). */
  reduceScatterMean(buf: Float32Array): Promise<Float32Array>;
  /** Every rank's chunk, concatenated into a buffer of length total. */
  allGather(chunk: Float32Array, total: number): Promise<Float32Array>;
  /** In place: buf becomes root's buf. */
  broadcast(buf: Float32Array, root: number): Promise<Float32Array>;
  close(): void;
}

export type TransportKind = 'ring' | 'star' | 'shared';
export const TRANSPORTS: readonly TransportKind[] = ['ring', 'star', 'shared'];

/** [lo, hi) of chunk i when S elements are split into N nearly equal contiguous chunks. */
export function chunkBounds(S: number, N: number, i: number): [number, number] {
  return [Math.floor((i * S) / N), Math.floor(((i + 1) * S) / N)];
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/** A rank's own communication memory with room for `registered` floats, or none (ordinary buffers) if that cannot be had. */
function localMemory(registered: number): CommMemory {
  return unlessOutOfMemory(() => CommMemory.local(registered)) ?? CommMemory.local(0);
}

/** Floats per ring message (2 MB), unless a test asks for less. */
export const RING_PIECE = 1 << 19;
const MAX_SPARES = 64; // kept received pieces per length
const COPIES_AHEAD = 1; // pieces of the first step sent before the first one arrives

export interface RingOptions {
  registered?: number; // floats of registered buffers (alloc())
  piece?: number; // floats per message
}

/** Values handed out in arrival order to whoever awaits them. */
class Inbox<T> {
  private items: T[] = [];
  private waiters: ((v: T) => void)[] = [];
  /** An inbox of a port's messages (unwrapped). */
  static of<T>(port: PortLike, unwrap: (data: unknown) => T): Inbox<T> {
    const inbox = new Inbox<T>();
    port.onmessage = (ev) => inbox.deliver(unwrap(ev.data));
    return inbox;
  }
  deliver(v: T): void {
    const w = this.waiters.shift();
    if (w) w(v);
    else this.items.push(v);
  }
  next(): Promise<T> {
    const v = this.items.shift();
    return v !== undefined ? Promise.resolve(v) : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** A ring message: one piece of one stream (a collective's phase and step: "rs0", "ag1", "bc"). */
interface Piece { stream: string; data: Float32Array }

/**
 * A ring link's messages, one inbox per stream. A rank may interleave sends of different streams (the
 * first step's copies with the pieces it passes on); its neighbour still reads each stream in order.
 */
class Streams {
  private inboxes = new Map<string, Inbox<Float32Array>>();
  constructor(port: PortLike) {
    port.onmessage = (ev) => this.inbox((ev.data as Piece).stream).deliver((ev.data as Piece).data);
  }
  private inbox(stream: string): Inbox<Float32Array> {
    let q = this.inboxes.get(stream);
    if (!q) this.inboxes.set(stream, (q = new Inbox<Float32Array>()));
    return q;
  }
  next(stream: string): Promise<Float32Array> {
    return this.inbox(stream).next();
  }
}

/** Base: one collective at a time per rank, and CPU time of the synchronous parts counted as comm. */
abstract class Base {
  readonly stats: CommStats = { bytesSent: 0, commMs: 0, ops: 0 };
  tracer: Tracer = noTrace; // records each collective, with its bytes, on the "comm" lane
  private readonly queue = serializer();
  constructor(readonly rank: number, readonly world: number, protected readonly mem: CommMemory | null) {}

  alloc(n: number): Float32Array {
    return this.mem ? this.mem.alloc(n) : new Float32Array(n);
  }

  /** Runs one collective after the ones issued before it. */
  protected serial<R>(name: string, fn: () => Promise<R>): Promise<R> {
    this.stats.ops += 1;
    return this.queue(async () => {
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

// ---------------------------------------------------------------------------------------------------
// ring

export class RingCollectives extends Base implements Collectives {
  readonly kind = 'ring';
  private inbox: Streams | null;
  declare protected readonly mem: CommMemory;
  /** Floats per message: a chunk travels in pieces, so a rank sums or stores one piece while the next
   *  is on its way, and rarely sits idle waiting for a message (as NCCL's slices). */
  readonly piece: number;

  /**
   * next: the port to rank (r+1) mod N; prev: the port from rank (r-1) mod N. Both null when N = 1.
   * registered: floats of this rank's memory that alloc() hands out.
   */
  constructor(rank: number, world: number, private next: PortLike | null, private prev: PortLike | null, opts: RingOptions = {}) {
    super(rank, world, localMemory(opts.registered ?? 0));
    if (world > 1 && (!next || !prev)) throw new Error(`ring rank ${rank} of ${world} needs both neighbour ports`);
    this.inbox = prev ? new Streams(prev) : null;
    this.piece = opts.piece ?? RING_PIECE;
  }

  /** [lo, hi) in message pieces. */
  private *split(lo: number, hi: number): Generator<[number, number]> {
    for (let o = lo; o < hi; o += this.piece) yield [o, Math.min(hi, o + this.piece)];
  }

  /** Hands a piece of a stream to the next rank: transferred, so it is gone from here (zero-copy). */
  private forward(stream: string, data: Float32Array): void {
    this.timed(() => {
      this.stats.bytesSent += data.byteLength;
      this.next!.postMessage({ stream, data } satisfies Piece, [data.buffer]);
    });
  }

  /**
   * Received pieces a collective did not pass on, kept for later sends: copying into memory already in
   * use is several times faster than allocating a fresh buffer (page faults). Bounded per length.
   */
  private spares = new Map<number, Float32Array[]>();

  private keepSpare(x: Float32Array): void {
    const list = this.spares.get(x.length) ?? [];
    if (list.length < MAX_SPARES) list.push(x);
    this.spares.set(x.length, list);
  }

  /** Sends a copy of buf[lo, hi) (a ring's only copies: every later send passes on what arrived). */
  private sendCopy(stream: string, buf: Float32Array, [lo, hi]: [number, number]): void {
    const reuse = this.spares.get(hi - lo)?.pop();
    this.forward(stream, this.timed(() => (reuse ? (reuse.set(buf.subarray(lo, hi)), reuse) : buf.slice(lo, hi))));
  }

  /**
   * Ring reduce-scatter. Step s: each piece received from the previous rank gets this rank's share added
   * and is passed on as it is. At the last step the piece in hand holds part of chunk `rank` summed over
   * all ranks but this one: `last` finishes it (adds this rank's share, divides by N, keeps it).
   * The first step's copies go out one piece ahead of the pieces coming in, so the data in flight stays
   * small enough for the caches.
   */
  private async reduceScatterSteps(buf: Float32Array, last: (incoming: Float32Array, mine: Float32Array, at: number) => void): Promise<void> {
    const { rank: r, world: N } = this;
    const copies = [...this.split(...chunkBounds(buf.length, N, mod(r - 1, N)))];
    const sendCopies = (upTo: number) => {
      while (copies.length && upTo-- > 0) this.sendCopy('rs0', buf, copies.shift()!);
    };
    sendCopies(COPIES_AHEAD);
    for (let s = 0; s < N - 1; s++) {
      const [lo, hi] = chunkBounds(buf.length, N, mod(r - s - 2, N)); // summed over the s + 1 ranks before this one
      for (const [a, b] of this.split(lo, hi)) {
        const incoming = await this.inbox!.next(`rs${s}`);
        const mine = buf.subarray(a, b);
        if (s === N - 2) last(incoming, mine, a - lo);
        else {
          this.timed(() => this.mem.addScaled(incoming, incoming, mine, 1));
          this.forward(`rs${s + 1}`, incoming);
        }
        sendCopies(1);
      }
      sendCopies(Infinity); // before waiting on the next step, which the neighbour may need these for
    }
  }

  /** Ring all-gather: N-1 steps, each storing the pieces of one chunk into buf and passing them on. */
  private async gatherSteps(buf: Float32Array): Promise<void> {
    const { rank: r, world: N } = this;
    for (let s = 0; s < N - 1; s++) {
      for (const [a] of this.split(...chunkBounds(buf.length, N, mod(r - s - 1, N)))) {
        const incoming = await this.inbox!.next(`ag${s}`);
        this.timed(() => buf.set(incoming, a));
        if (s < N - 2) this.forward(`ag${s + 1}`, incoming);
        else this.keepSpare(incoming);
      }
    }
  }

  allReduceMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce', async () => {
      if (this.world === 1) return buf;
      // Each finished piece of chunk `rank` is written into buf and sent on at once: the all-gather's start.
      await this.reduceScatterSteps(buf, (incoming, mine) => {
        this.timed(() => this.mem.addScaled(mine, incoming, mine, 1 / this.world, [incoming]));
        this.forward('ag0', incoming);
      });
      await this.gatherSteps(buf);
      return buf;
    });
  }

  reduceScatterMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('reduce-scatter', async () => {
      const out = buf.slice(...chunkBounds(buf.length, this.world, this.rank));
      if (this.world === 1) return out;
      await this.reduceScatterSteps(buf, (incoming, mine, at) => {
        this.timed(() => this.mem.addScaled(out.subarray(at, at + mine.length), incoming, mine, 1 / this.world));
        this.keepSpare(incoming);
      });
      return out;
    });
  }

  allGather(chunk: Float32Array, total: number): Promise<Float32Array> {
    return this.serial('all-gather', async () => {
      const buf = new Float32Array(total);
      const [lo, hi] = chunkBounds(total, this.world, this.rank);
      this.timed(() => buf.set(chunk, lo));
      if (this.world === 1) return buf;
      for (const piece of this.split(lo, hi)) this.sendCopy('ag0', buf, piece);
      await this.gatherSteps(buf);
      return buf;
    });
  }

  broadcast(buf: Float32Array, root: number): Promise<Float32Array> {
    return this.serial('broadcast', async () => {
      if (this.world === 1) return buf;
      const lastHop = mod(this.rank + 1, this.world) === root;
      for (const piece of this.split(0, buf.length)) {
        if (this.rank === root) {
          this.sendCopy('bc', buf, piece);
          continue;
        }
        const incoming = await this.inbox!.next('bc');
        this.timed(() => buf.set(incoming, piece[0]));
        if (lastHop) this.keepSpare(incoming);
        else this.forward('bc', incoming); // pass it along the ring
      }
      return buf;
    });
  }

  close(): void {
    this.next?.close?.();
    this.prev?.close?.();
  }
}

// ---------------------------------------------------------------------------------------------------
// star: ranks talk only to the coordinator's hub

type StarOp = 'allreduce' | 'reducescatter' | 'allgather' | 'broadcast';
interface StarRequest { op: StarOp; data: Float32Array; total?: number; root?: number }

export class StarCollectives extends Base implements Collectives {
  readonly kind = 'star';
  private inbox: Inbox<Float32Array>;

  constructor(rank: number, world: number, private hub: PortLike) {
    super(rank, world, null); // the hub does the sums
    this.inbox = Inbox.of(hub, (d) => d as Float32Array);
  }

  private request(req: StarRequest): Promise<Float32Array> {
    this.timed(() => {
      this.stats.bytesSent += req.data.byteLength;
      this.hub.postMessage(req, [req.data.buffer]);
    });
    return this.inbox.next();
  }

  allReduceMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce', async () => {
      const out = await this.request({ op: 'allreduce', data: buf.slice() });
      this.timed(() => buf.set(out));
      return buf;
    });
  }

  reduceScatterMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('reduce-scatter', () => this.request({ op: 'reducescatter', data: buf.slice() }));
  }

  allGather(chunk: Float32Array, total: number): Promise<Float32Array> {
    return this.serial('all-gather', () => this.request({ op: 'allgather', data: chunk.slice(), total }));
  }

  broadcast(buf: Float32Array, root: number): Promise<Float32Array> {
    return this.serial('broadcast', async () => {
      const out = await this.request({ op: 'broadcast', data: this.rank === root ? buf.slice() : new Float32Array(0), root });
      if (this.rank !== root) this.timed(() => buf.set(out));
      return buf;
    });
  }

  close(): void {
    this.hub.close?.();
  }
}

/**
 * The coordinator's side of the star: waits for the same collective from every rank, computes it,
 * and answers each. A rank that issues a different collective than the others is a bug (ranks must
 * issue collectives in one order): the hub reports it instead of mixing data.
 */
export class StarHub {
  readonly stats = { bytesIn: 0, bytesOut: 0, ops: 0, busyMs: 0 };
  private inboxes: Inbox<StarRequest>[];
  private closed = false;

  constructor(private ports: PortLike[], private onError: (message: string) => void = () => {}) {
    this.inboxes = ports.map((p) => Inbox.of(p, (d) => d as StarRequest));
    void this.loop();
  }

  private async loop(): Promise<void> {
    const N = this.ports.length;
    while (!this.closed) {
      const reqs = await Promise.all(this.inboxes.map((b) => b.next()));
      if (this.closed) return;
      const t0 = performance.now();
      this.stats.ops += 1;
      for (const r of reqs) this.stats.bytesIn += r.data.byteLength;
      const op = reqs[0].op;
      if (reqs.some((r) => r.op !== op)) {
        this.onError(`ranks issued different collectives at the same time (${reqs.map((r) => r.op).join(', ')}): every rank must issue collectives in the same order`);
        return;
      }
      let replies: Float32Array[];
      if (op === 'allreduce' || op === 'reducescatter') {
        const sum = reqs[0].data;
        for (let j = 1; j < N; j++) {
          const d = reqs[j].data;
          for (let i = 0; i < sum.length; i++) sum[i] += d[i];
        }
        for (let i = 0; i < sum.length; i++) sum[i] /= N;
        replies = op === 'allreduce'
          ? reqs.map((_, j) => (j === N - 1 ? sum : sum.slice()))
          : reqs.map((_, j) => sum.slice(...chunkBounds(sum.length, N, j)));
      } else if (op === 'allgather') {
        const total = reqs[0].total!;
        const full = new Float32Array(total);
        reqs.forEach((r, j) => full.set(r.data, chunkBounds(total, N, j)[0]));
        replies = reqs.map((_, j) => (j === N - 1 ? full : full.slice()));
      } else {
        const src = reqs[reqs[0].root!].data;
        replies = reqs.map((_, j) => (j === N - 1 ? src : src.slice()));
      }
      replies.forEach((data, j) => {
        this.stats.bytesOut += data.byteLength;
        this.ports[j].postMessage(data, [data.buffer]);
      });
      this.stats.busyMs += performance.now() - t0;
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.ports) p.close?.();
  }
}

// ---------------------------------------------------------------------------------------------------
// shared: one shared WebAssembly.Memory holding a barrier, N slots and a result area for staging pieces
// of ordinary buffers, and each rank's registered region (alloc()) and scratch

/** The largest WebAssembly memory (4 GiB less one page: 65536 pages do not fit a 32-bit length). */
const MAX_MEMORY_BYTES = 65535 * 65536;

/**
 * Byte offsets of everything in the shared transport's memory, for N ranks, staging pieces of `capacity`
 * floats, and `registered` floats of registered buffers per rank. Control words (Int32): [arrived,
 * generation], then per rank the (float offset in its region or -1, length) of the buffer it reduces.
 */
export function sharedLayout(world: number, capacity: number, registered: number) {
  const slot = alignUp(capacity * 4);
  const region = alignUp(registered * 4);
  const slots = alignUp(4 * (2 + 2 * world));
  const result = slots + world * slot;
  const regions = result + slot;
  const scratch = regions + world * region;
  return {
    slots: Array.from({ length: world }, (_, j) => slots + j * slot),
    result,
    regions: Array.from({ length: world }, (_, j): [number, number] => [regions + j * region, regions + (j + 1) * region]),
    scratch: Array.from({ length: world }, (_, j) => scratch + j * 2 * PIECE * 4),
    bytes: scratch + world * 2 * PIECE * 4,
  };
}

type WaitAsync = (a: Int32Array, i: number, v: number) => { async: boolean; value: Promise<string> | string };

export class SharedCollectives extends Base implements Collectives {
  readonly kind = 'shared';
  declare protected readonly mem: CommMemory;
  private ctrl: Int32Array;
  private slots: Float32Array[];
  private result: Float32Array;
  private regions: number[]; // byte offset of each rank's registered region
  readonly capacity: number;

  constructor(rank: number, world: number, ep: SharedEndpoint) {
    const l = sharedLayout(world, ep.capacity, ep.registered);
    if (ep.memory.buffer.byteLength < l.bytes) throw new Error(`shared memory of ${ep.memory.buffer.byteLength} bytes does not fit ${world} ranks`);
    super(rank, world, new CommMemory(ep.memory, { region: l.regions[rank], scratch: l.scratch[rank] }));
    this.capacity = ep.capacity;
    this.ctrl = new Int32Array(ep.memory.buffer, 0, 2 + 2 * world);
    this.slots = l.slots.map((o) => this.mem.view(o, ep.capacity));
    this.result = this.mem.view(l.result, ep.capacity);
    this.regions = l.regions.map(([lo]) => lo);
  }

  /** A reusable barrier: the last rank to arrive bumps the generation and wakes the others. */
  private async barrier(): Promise<void> {
    if (this.world === 1) return;
    const gen = Atomics.load(this.ctrl, 1);
    if (Atomics.add(this.ctrl, 0, 1) === this.world - 1) {
      Atomics.store(this.ctrl, 0, 0);
      Atomics.add(this.ctrl, 1, 1);
      Atomics.notify(this.ctrl, 1);
      return;
    }
    const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
    while (Atomics.load(this.ctrl, 1) === gen) {
      const r = waitAsync(this.ctrl, 1, gen);
      if (r.async) await r.value;
    }
  }

  /**
   * Says where buf lies and waits for every rank to do the same. True if every rank's buffer is
   * registered at the same place in its region (reduce them where they lie), false if none is (stage).
   */
  private async registeredEverywhere(buf: Float32Array): Promise<boolean> {
    const off = this.mem.regionOffset(buf);
    Atomics.store(this.ctrl, 2 + 2 * this.rank, off < 0 ? -1 : off / 4);
    Atomics.store(this.ctrl, 3 + 2 * this.rank, buf.length);
    await this.barrier();
    const at = (j: number) => `${Atomics.load(this.ctrl, 2 + 2 * j)}:${Atomics.load(this.ctrl, 3 + 2 * j)}`;
    const places = Array.from({ length: this.world }, (_, j) => at(j));
    if (places.some((p) => p !== places[0])) {
      throw new Error(`shared transport: ranks reduced different buffers at once (float offset:length per rank ${places.join(', ')}); every rank must allocate and reduce its buffers in the same order`);
    }
    return off >= 0;
  }

  /** buf registered on every rank, at the same place of each region: each rank reduces its own chunk of all. */
  private async reduceRegistered(buf: Float32Array, keepAll: boolean): Promise<Float32Array> {
    const { rank: r, world: N } = this;
    const [lo, hi] = chunkBounds(buf.length, N, r);
    const mine = buf.subarray(lo, hi);
    const at = (j: number) => this.mem.view(this.regions[j] + this.mem.regionOffset(mine), hi - lo);
    const others = Array.from({ length: N - 1 }, (_, k) => at((r + 1 + k) % N));
    this.timed(() => {
      this.mem.mean(mine, [mine, ...others], keepAll ? others : []);
      this.stats.bytesSent += (keepAll ? N : 1) * mine.byteLength;
    });
    await this.barrier();
    return keepAll ? buf : this.timed(() => mine.slice());
  }

  /** Runs body(o, len) for each piece [o, o+len) of an S-long buffer, between barriers. */
  private async pieces(S: number, body: (o: number, len: number) => Promise<void>): Promise<void> {
    for (let o = 0; o < S || (S === 0 && o === 0); o += this.capacity) {
      await body(o, Math.min(this.capacity, S - o));
      if (S === 0) break;
    }
  }

  private async reduce(buf: Float32Array, keepAll: boolean): Promise<Float32Array> {
    if (await this.registeredEverywhere(buf)) return this.reduceRegistered(buf, keepAll);
    const { rank: r, world: N } = this;
    const [myLo, myHi] = chunkBounds(buf.length, N, r);
    const mine = new Float32Array(myHi - myLo);
    await this.pieces(buf.length, async (o, len) => {
      this.timed(() => {
        this.slots[r].set(buf.subarray(o, o + len));
        this.stats.bytesSent += len * 4;
      });
      await this.barrier();
      // each rank reduces its own chunk of the piece: keepAll ? the piece split N ways : my shard
      const [lo, hi] = keepAll ? chunkBounds(len, N, r) : [Math.max(myLo, o) - o, Math.min(myHi, o + len) - o];
      this.timed(() => {
        if (hi <= lo) return;
        const out = keepAll ? this.result.subarray(lo, hi) : mine.subarray(o + lo - myLo, o + hi - myLo);
        this.mem.mean(out, this.slots.map((slot) => slot.subarray(lo, hi)));
      });
      await this.barrier();
      if (keepAll) {
        this.timed(() => buf.set(this.result.subarray(0, len), o));
        await this.barrier();
      }
    });
    return keepAll ? buf : mine;
  }

  allReduceMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce', () => (this.world === 1 ? Promise.resolve(buf) : this.reduce(buf, true)));
  }

  reduceScatterMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('reduce-scatter', () => this.reduce(buf, false));
  }

  allGather(chunk: Float32Array, total: number): Promise<Float32Array> {
    return this.serial('all-gather', async () => {
      const out = new Float32Array(total);
      const [myLo, myHi] = chunkBounds(total, this.world, this.rank);
      await this.pieces(total, async (o, len) => {
        const lo = Math.max(myLo, o);
        const hi = Math.min(myHi, o + len);
        this.timed(() => {
          if (hi > lo) this.result.set(chunk.subarray(lo - myLo, hi - myLo), lo - o);
          this.stats.bytesSent += Math.max(0, hi - lo) * 4;
        });
        await this.barrier();
        this.timed(() => out.set(this.result.subarray(0, len), o));
        await this.barrier();
      });
      return out;
    });
  }

  broadcast(buf: Float32Array, root: number): Promise<Float32Array> {
    return this.serial('broadcast', async () => {
      if (this.world === 1) return buf;
      await this.pieces(buf.length, async (o, len) => {
        if (this.rank === root) {
          this.timed(() => {
            this.result.set(buf.subarray(o, o + len));
            this.stats.bytesSent += len * 4;
          });
        }
        await this.barrier();
        if (this.rank !== root) this.timed(() => buf.set(this.result.subarray(0, len), o));
        await this.barrier();
      });
      return buf;
    });
  }

  close(): void {}
}

// ---------------------------------------------------------------------------------------------------
// wiring: what the coordinator creates and hands to each rank

/** The shared transport's memory and its layout's sizes (see sharedLayout). */
export interface SharedEndpoint { kind: 'shared'; memory: WebAssembly.Memory; capacity: number; registered: number }

/** What a rank needs to build its Collectives (sent to it inside a Worker message). */
export type CommEndpoint =
  | { kind: 'ring'; next: PortLike | null; prev: PortLike | null }
  | { kind: 'star'; hub: PortLike }
  | SharedEndpoint;

/**
 * A rank's Collectives. For the ring, opts.registered: floats of registered buffers (alloc()) this rank
 * wants; the shared transport's were fixed by wire().
 */
export function makeCollectives(rank: number, world: number, ep: CommEndpoint, opts: RingOptions = {}): Collectives {
  if (ep.kind === 'ring') return new RingCollectives(rank, world, ep.next, ep.prev, opts);
  if (ep.kind === 'star') return new StarCollectives(rank, world, ep.hub);
  return new SharedCollectives(rank, world, ep);
}

/** Transferables inside an endpoint (MessagePorts must be listed to be sent to a Worker). */
export function endpointTransfers(ep: CommEndpoint): Transferable[] {
  if (ep.kind === 'ring') return [ep.next, ep.prev].filter((p): p is PortLike => p !== null) as unknown as Transferable[];
  if (ep.kind === 'star') return [ep.hub as unknown as Transferable];
  return [];
}

export interface Wiring {
  endpoints: CommEndpoint[];
  hub: StarHub | null; // the coordinator's side of a star
  close(): void;
}

/**
 * Creates the links for N ranks: ring (N channels, rank r -> r+1), star (N channels to a hub run by the
 * caller), or shared (one shared memory: staging pieces of `capacity` floats, and `registered` floats of
 * registered buffers per rank, or none if that would not fit a WebAssembly memory).
 */
export function wire(
  kind: TransportKind,
  world: number,
  opts: { capacity?: number; registered?: number; newChannel?: () => { port1: PortLike; port2: PortLike }; onHubError?: (m: string) => void } = {},
): Wiring {
  const channel = opts.newChannel ?? (() => new MessageChannel() as unknown as { port1: PortLike; port2: PortLike });
  if (kind === 'ring') {
    if (world === 1) return { endpoints: [{ kind: 'ring', next: null, prev: null }], hub: null, close() {} };
    const links = Array.from({ length: world }, channel); // links[r]: r -> r+1
    return {
      endpoints: links.map((_, r) => ({ kind: 'ring', next: links[r].port1, prev: links[mod(r - 1, world)].port2 })),
      hub: null,
      close() {},
    };
  }
  if (kind === 'star') {
    const links = Array.from({ length: world }, channel);
    const hub = new StarHub(links.map((l) => l.port2), opts.onHubError);
    return { endpoints: links.map((l) => ({ kind: 'star', hub: l.port1 })), hub, close: () => hub.close() };
  }
  if (typeof SharedArrayBuffer === 'undefined') {
    throw new Error('the shared transport needs SharedArrayBuffer, which this page does not have (it is not cross-origin isolated)');
  }
  const capacity = opts.capacity ?? 1 << 20;
  const memoryFor = (registered: number): WebAssembly.Memory | null => {
    const bytes = sharedLayout(world, capacity, registered).bytes;
    return bytes > MAX_MEMORY_BYTES ? null : unlessOutOfMemory(() => new WebAssembly.Memory({ initial: pages(bytes), maximum: pages(bytes), shared: true }));
  };
  // Room for every rank's registered buffers if it can be had; else ordinary buffers, staged.
  let registered = opts.registered ?? 0;
  let memory = memoryFor(registered);
  if (!memory && registered > 0) memory = memoryFor((registered = 0));
  if (!memory) throw new Error(`the shared transport's memory (${world + 1} staging pieces of ${capacity} floats) cannot be allocated; use smaller buckets or another transport`);
  return { endpoints: Array.from({ length: world }, () => ({ kind: 'shared', memory, capacity, registered })), hub: null, close() {} };
}
