// The shared transport: one shared WebAssembly.Memory (needs cross-origin isolation in a browser)
// holding a barrier, N slots and a result area for staging pieces of ordinary buffers, and each rank's
// registered region (alloc()) and scratch. Each rank reduces its own chunk of every rank's buffer,
// between two barriers; registered buffers are reduced where they lie, with no copies at all.
//
// Point-to-point (send/recv, transports/base.ts) does not use the shared memory, which is built for
// collectives of all ranks at once (barriers): wire() makes a MessageChannel per pair of ranks (N(N-1)/2,
// at most 28 for 8 ranks), and a message goes straight to its destination, transferred: one hop, its
// bytes counted once in the sender's bytesSent. No rank waits on another to relay, so nothing can deadlock.

import { CommMemory, PIECE, alignUp } from '../reduce';
import { chunkBounds, type Collectives, type PortLike } from '../collectives';
import { Base, COLLECTIVE_KINDS, mismatch, sameTag, type P2PMessage, type Tag } from './base';

/**
 * The shared transport's memory and its layout's sizes (see sharedLayout), and its point-to-point links:
 * peers[j] is the port to rank j (null at this rank's own index).
 */
export interface SharedEndpoint { kind: 'shared'; memory: WebAssembly.Memory; capacity: number; registered: number; peers?: (PortLike | null)[] }

/** The largest WebAssembly memory (4 GiB less one page: 65536 pages do not fit a 32-bit length). */
export const MAX_MEMORY_BYTES = 65535 * 65536;

/**
 * Byte offsets of everything in the shared transport's memory, for N ranks, staging pieces of `capacity`
 * floats, and `registered` floats of registered buffers per rank. Control words (Int32): [arrived,
 * generation], then per rank CONTROL_WORDS: the tag of the collective it is in (kind, sequence number,
 * step) and the (float offset in its region or -1, length) of the buffer it reduces.
 */
export function sharedLayout(world: number, capacity: number, registered: number) {
  const slot = alignUp(capacity * 4);
  const region = alignUp(registered * 4);
  const slots = alignUp(4 * (2 + CONTROL_WORDS * world));
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

/** Control words per rank: kind, seq, step (the tag), offset, length (the buffer it reduces). */
const CONTROL_WORDS = 5;

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
    this.ctrl = new Int32Array(ep.memory.buffer, 0, 2 + CONTROL_WORDS * world);
    this.slots = l.slots.map((o) => this.mem.view(o, ep.capacity));
    this.result = this.mem.view(l.result, ep.capacity);
    this.regions = l.regions.map(([lo]) => lo);
    this.peers = ep.peers ?? [];
    for (const p of this.peers) if (p) p.onmessage = (ev) => this.arrived(ev.data as P2PMessage);
  }

  private peers: (PortLike | null)[];

  /** Straight to the destination over the pair's own channel. */
  protected route(msg: P2PMessage): void {
    const port = this.peers[msg.to];
    if (!port) throw new Error(`shared transport: rank ${this.rank} has no link to rank ${msg.to} for send/recv (wire() makes one per pair)`);
    this.stats.bytesSent += msg.data.byteLength;
    port.postMessage(msg, [msg.data.buffer]);
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
      if (this.aborted) throw this.aborted;
      const r = waitAsync(this.ctrl, 1, gen);
      if (r.async) await r.value;
    }
  }

  /** Wakes every rank waiting at the barrier: this one then sees `aborted`; the others wait again. */
  protected wake(): void {
    Atomics.notify(this.ctrl, 1);
  }

  /** Control word k of rank j. */
  private word(j: number, k: number): number {
    return 2 + CONTROL_WORDS * j + k;
  }

  /**
   * Says which collective this rank is in (and, for a reduce, where its buffer lies), and waits for
   * every rank to do the same: a rank in another collective is an error that names both. Every
   * collective has at least one more barrier after this one, so no rank overwrites these words while
   * another still reads them.
   */
  private async announce(place: [number, number] = [-1, 0]): Promise<void> {
    const words = [COLLECTIVE_KINDS.indexOf(this.tag.kind), this.tag.seq, this.tag.step, ...place];
    words.forEach((w, k) => Atomics.store(this.ctrl, this.word(this.rank, k), w));
    await this.barrier();
    const tagOf = (j: number): Tag => ({
      kind: COLLECTIVE_KINDS[Atomics.load(this.ctrl, this.word(j, 0))], seq: Atomics.load(this.ctrl, this.word(j, 1)), step: Atomics.load(this.ctrl, this.word(j, 2)),
    });
    const other = Array.from({ length: this.world }, (_, j) => j).find((j) => !sameTag(tagOf(j), this.tag));
    if (other !== undefined) {
      // Every rank sees a mismatch when any does: all read the words before any moves on and rewrites them.
      const error = mismatch('shared', { rank: this.rank, tag: this.tag }, { rank: other, tag: tagOf(other) });
      await this.barrier();
      throw error;
    }
  }

  /**
   * Says where buf lies and waits for every rank to do the same. True if every rank's buffer is
   * registered at the same place in its region (reduce them where they lie), false if none is (stage).
   */
  private async registeredEverywhere(buf: Float32Array): Promise<boolean> {
    const off = this.mem.regionOffset(buf);
    await this.announce([off < 0 ? -1 : off / 4, buf.length]);
    const at = (j: number) => `${Atomics.load(this.ctrl, this.word(j, 3))}:${Atomics.load(this.ctrl, this.word(j, 4))}`;
    const places = Array.from({ length: this.world }, (_, j) => at(j));
    if (places.some((p) => p !== places[0])) {
      throw new Error(`shared transport: ranks reduced different buffers at once (float offset:length per rank ${places.join(', ')}); every rank must allocate and reduce its buffers in the same order`);
    }
    return off >= 0;
  }

  /**
   * out = the element-wise mean of the sources (the sum, in an all-reduce-sum), copied into each of
   * `also`; out may be sources[0] or [1].
   */
  private combine(out: Float32Array, sources: Float32Array[], also: Float32Array[] = []): void {
    if (this.tag.kind !== 'all-reduce-sum') return this.mem.mean(out, sources, also);
    const N = sources.length;
    if (N === 1) {
      if (out !== sources[0]) out.set(sources[0]);
      for (const x of also) x.set(out);
      return;
    }
    for (let j = 1; j < N; j++) this.mem.addScaled(out, j === 1 ? sources[0] : out, sources[j], 1, j === N - 1 ? also : []);
  }

  /** buf registered on every rank, at the same place of each region: each rank reduces its own chunk of all. */
  private async reduceRegistered(buf: Float32Array, keepAll: boolean): Promise<Float32Array> {
    const { rank: r, world: N } = this;
    const [lo, hi] = chunkBounds(buf.length, N, r);
    const mine = buf.subarray(lo, hi);
    const at = (j: number) => this.mem.view(this.regions[j] + this.mem.regionOffset(mine), hi - lo);
    const others = Array.from({ length: N - 1 }, (_, k) => at((r + 1 + k) % N));
    this.timed(() => {
      this.combine(mine, [mine, ...others], keepAll ? others : []);
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
        this.combine(out, this.slots.map((slot) => slot.subarray(lo, hi)));
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

  allReduceSum(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce-sum', () => (this.world === 1 ? Promise.resolve(buf) : this.reduce(buf, true)));
  }

  reduceScatterMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('reduce-scatter', () => this.reduce(buf, false));
  }

  allGather(chunk: Float32Array, total: number): Promise<Float32Array> {
    return this.serial('all-gather', async () => {
      await this.announce();
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
      await this.announce();
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

  close(): void {
    for (const p of this.peers) p?.close?.();
  }
}
