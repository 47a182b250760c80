// DDP's gradient synchronisation, after PyTorch's DistributedDataParallel reducer:
// - Buckets: parameters in ~reverse order (the order backward produces their gradients), packed into
//   buckets of at most `capBytes` (PyTorch's default 25 MB), the first one small (1 MB) so the first
//   all-reduce starts early. Every rank computes the same buckets, and all-reduces them in the same order.
// - Overlap: as backward finishes a parameter's gradient (UnitHooks.gradsReady), its bucket is marked;
//   a bucket whose gradients are all ready starts its all-reduce at once, while the remaining blocks'
//   backward runs. The step then waits only for what is still in flight.
// - Mean: each bucket is averaged over ranks, so every replica applies the same update.
// - Buffers: each bucket packs into its own buffer, allocated once from the collectives (registered:
//   reduced where it lies, as NCCL's registered buffers) and reused every step.

import * as tf from '@tensorflow/tfjs';
import type { Grads, UnitHooks } from '../model/gpt';
import { HOST_OPTIMIZER_BACKENDS } from '../model/config';
import type { GradSync } from '../train/trainer';
import type { Collectives } from './collectives';
import type { Bucket } from './layout';
import { clock } from '../util/trace';

/** Time a rank spent blocked on communication, not counting the collective work done meanwhile. */
export class WaitClock {
  waitMs = 0;
  constructor(private coll: Collectives) {}
  async wait<R>(p: Promise<R>): Promise<R> {
    const t0 = performance.now();
    const ts = clock();
    const c0 = this.coll.stats.commMs;
    try {
      return await p;
    } finally {
      this.waitMs += Math.max(0, performance.now() - t0 - (this.coll.stats.commMs - c0));
      this.coll.tracer.record('wait', 'wait', 'main', ts);
    }
  }
}

/** Lets queued messages (a neighbour's chunk, a hub's reply) be handled between two blocks' backward. */
let yieldChannel: MessageChannel | null = null;
const yieldWaiters: (() => void)[] = [];
export function yieldToEventLoop(): Promise<void> {
  if (!yieldChannel) {
    yieldChannel = new MessageChannel();
    yieldChannel.port1.onmessage = () => yieldWaiters.shift()?.();
    for (const p of [yieldChannel.port1, yieldChannel.port2]) (p as unknown as { unref?: () => void }).unref?.(); // Node: do not keep the process alive
  }
  return new Promise((resolve) => {
    yieldWaiters.push(resolve);
    yieldChannel!.port2.postMessage(0);
  });
}

/** One step's DDP synchronisation (a new one per step). */
export class DDPSync implements GradSync {
  readonly clock: WaitClock;
  private reads = new Map<string, Promise<Float32Array>>(); // per gradient (CPU backends)
  private ready = new Map<string, tf.Tensor>(); // GPU backends: gradients kept on the device until their bucket is complete
  private bucketReads = new Map<number, Promise<Float32Array>>(); // GPU backends: one readback per bucket

  private launched: Promise<Float32Array>[] = [];
  readonly issued: number[] = []; // bucket indices in the order they reached the collectives
  private lastIssued: Promise<unknown> = Promise.resolve(); // the previous bucket's hand-over to the collectives
  commBytesPeak = 0; // bucket buffers alive (all of them, until finish)
  private localLoss: Promise<number> | null = null;

  /** buffers: one per bucket, bucketBufferSizes(buckets) long, from coll.alloc(); reused every step. */
  /**
   * perBucket: read each bucket back at once (concatenated on the device) rather than each gradient: on a
   * GPU every readback is a round trip (the default there); on the CPU backends a read is a copy.
   */
  constructor(
    private buckets: Bucket[], private coll: Collectives, private buffers: Float32Array[],
    private readonly perBucket = !HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend()),
  ) {
    this.clock = new WaitClock(coll);
  }

  readonly hooks: UnitHooks = {
    gradsReady: (grads) =>
      this.coll.tracer.span('read gradients', 'comm', () => {
        for (const [name, g] of grads) {
          if (this.perBucket) this.ready.set(name, g);
          else this.reads.set(name, g.data() as Promise<Float32Array>);
        }
        // Buckets start strictly in order, so every rank issues the same all-reduces in the same order.
        while (this.launched.length < this.buckets.length && this.buckets[this.launched.length].params.every((p) => this.isReady(p.name))) {
          const b = this.buckets[this.launched.length];
          if (this.perBucket) this.bucketReads.set(b.index, this.readBucket(b));
          const reduced = this.allReduce(b);
          reduced.catch(() => {}); // awaited in finish(); an aborted step may never get there
          this.launched.push(reduced);
        }
      }),
    afterBackward: () => this.clock.wait(yieldToEventLoop()),
  };

  private isReady(name: string): boolean {
    return this.perBucket ? this.ready.has(name) : this.reads.has(name);
  }

  /** A bucket's gradients as one flat tensor on the device, read back at once (asynchronously). */
  private readBucket(b: Bucket): Promise<Float32Array> {
    const flat = tf.tidy(() => tf.concat(b.params.map((p) => tf.reshape(this.ready.get(p.name)!, [-1]))));
    return flat.data().then(
      (d) => (flat.dispose(), d as Float32Array),
      (e) => (flat.dispose(), Promise.reject(e)),
    );
  }

  setLocalLoss(loss: Promise<number>): void {
    this.localLoss = loss;
  }

  /**
   * Packs a bucket and all-reduces it. The last bucket carries the step's loss as one more float.
   * Reads of gradients may finish out of order (on WebGPU readback is asynchronous), but every rank must
   * hand its buckets to the collectives in the same order, or two ranks would sum different buckets: a
   * bucket is handed over only after the one before it.
   */
  private allReduce(b: Bucket): Promise<Float32Array> {
    this.commBytesPeak += b.size * 4;
    const last = b.index === this.buckets.length - 1;
    const before = this.lastIssued;
    const handedOver = (async () => {
      const arrays = this.perBucket ? [await this.bucketReads.get(b.index)!] : await Promise.all(b.params.map((p) => this.reads.get(p.name)!));
      const loss = last ? await this.localLoss : null;
      await before;
      this.issued.push(b.index);
      // Wrapped, so that handedOver resolves when the all-reduce is issued, not when it is done.
      return { reduced: this.coll.allReduceMean(this.pack(b, arrays, loss)) };
    })();
    this.lastIssued = handedOver;
    return handedOver.then((h) => h.reduced);
  }

  private pack(b: Bucket, arrays: Float32Array[], loss: number | null): Float32Array {
    const last = b.index === this.buckets.length - 1;
    return this.coll.tracer.span(`pack bucket ${b.index}`, 'comm', () => {
      const out = this.buffers[b.index];
      let o = 0;
      for (const a of arrays) {
        out.set(a, o);
        o += a.length;
      }
      if (last) out[o] = loss ?? NaN;
      return out;
    });
  }

  async finish(grads: Grads, into?: Float32Array): Promise<{ grads: Grads; loss: number }> {
    if (this.launched.length < this.buckets.length) {
      const missing = this.buckets[this.launched.length].params.filter((p) => !this.isReady(p.name)).map((p) => p.name);
      throw new Error(`DDP: the gradients of ${missing.join(', ')} never became ready, so their bucket was never all-reduced`);
    }
    const flats = await this.clock.wait(Promise.all(this.launched));
    const loss = flats[flats.length - 1][this.buckets[this.buckets.length - 1].size];
    const reduced = new Map<string, tf.Tensor>();
    // Into the host optimizer's flat gradients, or into new tensors.
    this.coll.tracer.span('unpack gradients', 'comm', () =>
      this.buckets.forEach((b, i) => {
        let o = 0;
        for (const p of b.params) {
          const g = flats[i].subarray(o, o + p.size);
          if (into) into.set(g, p.offset);
          else reduced.set(p.name, tf.tensor(g, p.shape));
          o += p.size;
        }
      }),
    );
    for (const g of grads.values()) g.dispose();
    if (into) return { grads: new Map(), loss };
    return {
      // In the local map's order, so everything downstream (the gradient norm) sums as one worker would.
      grads: new Map([...grads.keys()].map((name) => [name, reduced.get(name)!])),
      loss,
    };
  }
}
