// The ring transport: each rank talks only to its neighbours over MessagePorts; a ring all-reduce is a
// reduce-scatter then an all-gather, N-1 steps each, moving 2(N-1)/N x S per rank (as NCCL).
// ArrayBuffers are transferred (zero-copy), never cloned; a chunk travels in pieces (2 MB), so a rank
// sums one piece while the next is in flight.
//
// Point-to-point (send/recv, transports/base.ts): the ring's channels are two-way, so a rank's `next`
// port also receives from rank r+1 and its `prev` port also sends to rank r-1. A message goes the
// shorter way round (forward on a tie) and is relayed, transferred again, by each rank on its path:
// min(d, N-d) hops for ranks d apart, each counted in the bytesSent of the rank that posts it. A relay
// runs when the relaying rank's event loop is free (between its tasks), not when it reaches a recv.
// Pipeline stages r <-> r+1 and first <-> last (the tied embedding) are neighbours on the ring: one hop.

import { CommMemory } from '../reduce';
import { unlessOutOfMemory } from '../../util/wasm';
import { chunkBounds, type Collectives, type PortLike } from '../collectives';
import { Base, Inbox, isP2P, mismatch, mod, sameTag, type P2PMessage, type Tag } from './base';

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

/**
 * A ring message: one piece of one stream (a collective's phase and ring step: "rs0", "ag1", "bc"), and
 * the tag of the collective it belongs to (kind, sequence number on the sender, training step).
 */
interface Piece { stream: string; tag: Tag; data: Float32Array }

/**
 * A ring link's messages, one inbox per stream. A rank may interleave sends of different streams (the
 * first step's copies with the pieces it passes on); its neighbour still reads each stream in order.
 */
class Streams {
  private inboxes = new Map<string, Inbox<Piece>>();
  private failure: Error | null = null;
  deliver(piece: Piece): void {
    this.inbox(piece.stream).deliver(piece);
  }
  private inbox(stream: string): Inbox<Piece> {
    let q = this.inboxes.get(stream);
    if (!q) {
      this.inboxes.set(stream, (q = new Inbox<Piece>()));
      if (this.failure) q.fail(this.failure);
    }
    return q;
  }
  fail(e: Error): void {
    this.failure = e;
    for (const q of this.inboxes.values()) q.fail(e);
  }
  next(stream: string): Promise<Piece> {
    return this.inbox(stream).next();
  }
}

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
    this.inbox = prev ? new Streams() : null;
    if (prev) prev.onmessage = (ev) => (isP2P(ev.data) ? this.p2pArrived(ev.data) : this.inbox!.deliver(ev.data as Piece));
    if (next) next.onmessage = (ev) => this.p2pArrived(ev.data as P2PMessage); // only point-to-point comes back this way
    this.piece = opts.piece ?? RING_PIECE;
  }

  /** A point-to-point message from a neighbour: for this rank, or passed on (unless this rank aborted). */
  private p2pArrived(msg: P2PMessage): void {
    if (msg.to === this.rank) this.arrived(msg);
    else if (!this.aborted) this.timed(() => this.route(msg));
  }

  /** One hop the shorter way round: forward (next) if the destination is no farther that way, else back (prev). */
  protected route(msg: P2PMessage): void {
    const d = mod(msg.to - this.rank, this.world);
    const port = d <= this.world - d ? this.next! : this.prev!;
    this.stats.bytesSent += msg.data.byteLength;
    port.postMessage(msg, [msg.data.buffer]);
  }

  protected wake(reason: Error): void {
    this.inbox?.fail(reason);
  }

  /** The next piece of a stream from the previous rank; it must belong to the collective running here. */
  private async receive(stream: string): Promise<Float32Array> {
    const piece = await this.inbox!.next(stream);
    if (!sameTag(piece.tag, this.tag)) throw mismatch('ring', { rank: this.rank, tag: this.tag }, { rank: mod(this.rank - 1, this.world), tag: piece.tag });
    return piece.data;
  }

  /** [lo, hi) in message pieces. */
  private *split(lo: number, hi: number): Generator<[number, number]> {
    for (let o = lo; o < hi; o += this.piece) yield [o, Math.min(hi, o + this.piece)];
  }

  /** Hands a piece of a stream to the next rank: transferred, so it is gone from here (zero-copy). */
  private forward(stream: string, data: Float32Array): void {
    this.timed(() => {
      this.stats.bytesSent += data.byteLength;
      this.next!.postMessage({ stream, tag: this.tag, data } satisfies Piece, [data.buffer]);
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
        const incoming = await this.receive(`rs${s}`);
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
        const incoming = await this.receive(`ag${s}`);
        this.timed(() => buf.set(incoming, a));
        if (s < N - 2) this.forward(`ag${s + 1}`, incoming);
        else this.keepSpare(incoming);
      }
    }
  }

  /** Ring all-reduce: the reduce-scatter's last step scales by `scale` (1/N: the mean, 1: the sum). */
  private allReduce(kind: 'all-reduce' | 'all-reduce-sum', buf: Float32Array, scale: number): Promise<Float32Array> {
    return this.serial(kind, async () => {
      if (this.world === 1) return buf;
      // Each finished piece of chunk `rank` is written into buf and sent on at once: the all-gather's start.
      await this.reduceScatterSteps(buf, (incoming, mine) => {
        this.timed(() => this.mem.addScaled(mine, incoming, mine, scale, [incoming]));
        this.forward('ag0', incoming);
      });
      await this.gatherSteps(buf);
      return buf;
    });
  }

  allReduceMean(buf: Float32Array): Promise<Float32Array> {
    return this.allReduce('all-reduce', buf, 1 / this.world);
  }

  allReduceSum(buf: Float32Array): Promise<Float32Array> {
    return this.allReduce('all-reduce-sum', buf, 1);
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
        const incoming = await this.receive('bc');
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
