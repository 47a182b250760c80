// DDP hands its gradient buckets to the collectives in index order on every rank, whatever order the
// gradient reads finish in. On WebGPU reading a tensor back is asynchronous and reads can resolve out
// of order; two buckets issued in a different order on two ranks would be summed with each other. The
// fake collective below records the order buckets reach it; the gradient reads resolve in reverse.

import { describe, expect, it } from 'vitest';
import type * as tf from '@tensorflow/tfjs';
import { makeConfig } from '../src/model/config';
import { buildParamTable } from '../src/model/params';
import { assignBuckets, backwardOrder, bucketBufferSizes } from '../src/parallel/layout';
import { DDPSync } from '../src/parallel/ddp';
import type { Collectives } from '../src/parallel/collectives';
import { noTrace } from '../src/util/trace';

/** A world of one that records every buffer handed to allReduceMean, in call order. */
function recordingCollectives(calls: Float32Array[]): Collectives {
  return {
    rank: 0, world: 1, kind: 'ring', stats: { bytesSent: 0, commMs: 0, ops: 0 }, tracer: noTrace, step: 0,
    alloc: (n) => new Float32Array(n),
    allReduceMean: async (buf) => (calls.push(buf), buf),
    allReduceSum: async (buf) => buf,
    send: async () => {},
    recv: async (_from, n) => new Float32Array(n),
    reduceScatterMean: async (buf) => buf,
    allGather: async (chunk) => chunk,
    broadcast: async (buf) => buf,
    abort() {},
    close() {},
  };
}

describe('DDP bucket order', () => {
  it('issues buckets to the collectives in index order when gradient reads resolve in reverse', async () => {
    const table = buildParamTable({ ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16 }), vocab_size: 65 });
    const buckets = assignBuckets(table, 0.01 * 2 ** 20, 0.002 * 2 ** 20);
    expect(buckets.length).toBeGreaterThan(3);
    const sizes = bucketBufferSizes(buckets);
    const calls: Float32Array[] = [];
    const buffers: Float32Array[] = sizes.map((n) => new Float32Array(n)); // bucket i packs into buffers[i]
    const sync = new DDPSync(buckets, recordingCollectives(calls), buffers, false); // one read per gradient, as on the CPU backends
    sync.setLocalLoss(Promise.resolve(1));

    // Fake gradient tensors whose data() resolves only when released, and release them last-first.
    const release: (() => void)[] = [];
    const grads = new Map(backwardOrder(table).map((p) => {
      const data = new Promise<Float32Array>((resolve) => release.push(() => resolve(new Float32Array(p.size))));
      return [p.name, { data: () => data, dispose() {} } as unknown as tf.Tensor];
    }));
    for (const [name, g] of grads) await sync.hooks.gradsReady!(new Map([[name, g]])); // every bucket launched
    for (const r of release.reverse()) {
      r();
      await new Promise((resolve) => setTimeout(resolve, 0)); // let the bucket whose reads are all done proceed
    }
    await sync.finish(new Map(), new Float32Array(table.total));
    expect(calls.map((b) => buffers.indexOf(b))).toEqual(buckets.map((b) => b.index)); // the collective saw bucket 0, 1, 2, ...
    expect(sync.issued).toEqual(buckets.map((b) => b.index));
  });
});
