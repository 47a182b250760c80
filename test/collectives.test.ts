// Collectives with no workers at all: N ranks in one thread, linked by MessageChannels (ring, star)
// or one shared memory (shared), checked against a plain sum for N = 1..8 and lengths that do not
// divide by N, for ordinary buffers (staged through scratch) and registered ones (alloc()).

import { describe, expect, it } from 'vitest';
import { TRANSPORTS, chunkBounds, type Collectives, type TransportKind } from '../src/parallel/collectives';
import { makeCollectives, wire } from '../src/parallel/wiring';
import { mulberry32 } from '../src/model/params';
import { PIECE } from '../src/parallel/reduce';

// capacity: the shared transport's staging pieces; piece: the ring's message size (small, so chunks
// travel in several pieces)
function group(kind: TransportKind, N: number, capacity = 7, registered = 0, piece = 4): { ranks: Collectives[]; close(): void } {
  const w = wire(kind, N, { capacity, registered });
  const ranks = w.endpoints.map((ep, r) => makeCollectives(r, N, ep, { registered, piece }));
  return { ranks, close: () => { ranks.forEach((c) => c.close()); w.close(); } };
}

const randomArrays = (N: number, S: number, seed: number) => {
  const rand = mulberry32(seed);
  return Array.from({ length: N }, () => Float32Array.from({ length: S }, () => rand() * 2 - 1));
};

const mean = (xs: Float32Array[]) => Float32Array.from(xs[0], (_, i) => xs.reduce((s, x) => s + x[i], 0) / xs.length);

function expectClose(a: Float32Array, b: Float32Array) {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  expect(d).toBeLessThan(1e-6);
}

describe('chunkBounds', () => {
  it('splits any length into N contiguous chunks that cover it exactly once', () => {
    for (const [S, N] of [[10, 3], [7, 8], [0, 4], [1000, 7]]) {
      const sizes = Array.from({ length: N }, (_, i) => chunkBounds(S, N, i)).map(([lo, hi]) => hi - lo);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(S);
      expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      expect(chunkBounds(S, N, N - 1)[1]).toBe(S);
    }
  });
});

describe.each(TRANSPORTS)('%s collectives', (kind) => {
  const cases: [number, number][] = [[1, 5], [2, 10], [2, 11], [3, 1], [3, 17], [4, 64], [5, 33], [8, 100], [8, 3]];

  it.each(cases)('all-reduce mean: N=%i, S=%i', async (N, S) => {
    const g = group(kind, N);
    const data = randomArrays(N, S, N * 100 + S);
    const expected = mean(data);
    const out = await Promise.all(g.ranks.map((c, r) => c.allReduceMean(data[r].slice())));
    for (const o of out) expectClose(o, expected);
    g.close();
  });

  it.each(cases)('reduce-scatter then all-gather: N=%i, S=%i', async (N, S) => {
    const g = group(kind, N);
    const data = randomArrays(N, S, 7 * N + S);
    const expected = mean(data);
    const shards = await Promise.all(g.ranks.map((c, r) => c.reduceScatterMean(data[r].slice())));
    shards.forEach((s, r) => expectClose(s, expected.slice(...chunkBounds(S, N, r))));
    const full = await Promise.all(g.ranks.map((c, r) => c.allGather(shards[r], S)));
    for (const f of full) expectClose(f, expected);
    g.close();
  });

  it('broadcast from every root, and several collectives back to back keep their order', async () => {
    const N = 4;
    const g = group(kind, N);
    for (let root = 0; root < N; root++) {
      const data = randomArrays(N, 13, root);
      const out = await Promise.all(g.ranks.map((c, r) => c.broadcast(data[r], root)));
      for (const o of out) expect(Array.from(o)).toEqual(Array.from(data[root]));
    }
    // Issued without awaiting, as DDP issues bucket all-reduces: each rank runs them in issue order.
    const a = randomArrays(N, 9, 1);
    const b = randomArrays(N, 20, 2);
    const results = g.ranks.map((c, r) => Promise.all([c.allReduceMean(a[r]), c.allReduceMean(b[r])]));
    for (const [ra, rb] of await Promise.all(results)) {
      expectClose(ra, mean(randomArrays(N, 9, 1)));
      expectClose(rb, mean(randomArrays(N, 20, 2)));
    }
    g.close();
  });

  // Registered buffers, as DDP's buckets: a first one of another size, so the second does not start the
  // region; lengths that span several scratch pieces.
  it.each([...cases, [2, 2 * PIECE + 37], [3, 3 * PIECE + 5]] as [number, number][])('all-reduce and reduce-scatter of registered buffers: N=%i, S=%i', async (N, S) => {
    const g = group(kind, N, 7, 2 * S + 100, S > 1000 ? 5000 : 4);
    const first = g.ranks.map((c) => c.alloc(50));
    const bufs = g.ranks.map((c) => c.alloc(S));
    if (kind !== 'star') bufs.forEach((b, r) => expect(b.buffer).toBe(first[r].buffer)); // one memory: registered
    const data = randomArrays(N, S, N + 3 * S);
    const expected = mean(data);
    bufs.forEach((b, r) => b.set(data[r]));
    first.forEach((b, r) => b.fill(r));
    const out = await Promise.all(g.ranks.map((c, r) => c.allReduceMean(bufs[r])));
    out.forEach((o, r) => {
      expect(o).toBe(bufs[r]);
      expectClose(o, expected);
    });
    first.forEach((b, r) => expect(b.every((x) => x === r)).toBe(true)); // neighbours untouched
    bufs.forEach((b, r) => b.set(data[r]));
    const shards = await Promise.all(g.ranks.map((c, r) => c.reduceScatterMean(bufs[r])));
    shards.forEach((sh, r) => expectClose(sh, expected.slice(...chunkBounds(S, N, r))));
    g.close();
  });

  it('alloc() hands out registered buffers while room lasts, then ordinary ones, and both reduce alike', async () => {
    const N = 2;
    const g = group(kind, N, 7, 100);
    const reg = g.ranks.map((c) => c.alloc(80));
    const plain = g.ranks.map((c) => c.alloc(80)); // no room left
    const more = g.ranks.map((c) => c.alloc(80));
    expect(plain[0].buffer).not.toBe(more[0].buffer); // each its own ArrayBuffer
    expect(plain[0].byteLength).toBe(plain[0].buffer.byteLength);
    if (kind !== 'star') expect(reg[0].buffer.byteLength).toBeGreaterThan(reg[0].byteLength); // inside the memory
    for (const bufs of [reg, plain]) {
      const data = randomArrays(N, 80, 5);
      bufs.forEach((b, r) => b.set(data[r]));
      for (const o of await Promise.all(g.ranks.map((c, r) => c.allReduceMean(bufs[r])))) expectClose(o, mean(data));
    }
    g.close();
  });

  it('counts the bytes each rank sends', async () => {
    const N = 4;
    const S = 1000;
    const g = group(kind, N, 4096, S);
    await Promise.all(g.ranks.map((c, r) => c.allReduceMean(randomArrays(N, S, 3)[r])));
    const bufs = g.ranks.map((c) => c.alloc(S)); // registered: the same count
    await Promise.all(g.ranks.map((c, r) => c.allReduceMean(bufs[r])));
    const sent = g.ranks.map((c) => c.stats.bytesSent);
    if (kind === 'ring') for (const b of sent) expect(b).toBe(2 * 2 * ((N - 1) / N) * S * 4); // 2(N-1)/N x S
    if (kind === 'star') for (const b of sent) expect(b).toBe(2 * S * 4); // the whole buffer to the hub
    if (kind === 'shared') for (const b of sent) expect(b).toBe(2 * S * 4); // written once into shared memory
    g.close();
  });
});

describe('every message says which collective it belongs to', () => {
  // A mismatch (two ranks in different collectives, or the same one of different steps) is an error
  // that names both sides on every transport, never a silent sum of unrelated buffers.
  for (const kind of TRANSPORTS) {
    it(`${kind}: equal-length collectives issued in a different order fail, naming both ranks`, async () => {
      const g = group(kind, 2);
      const x = () => new Float32Array(12);
      const [r0, r1] = g.ranks;
      const out = await Promise.allSettled([
        r0.allReduceMean(x()), r0.reduceScatterMean(x()), // rank 0: all-reduce, then reduce-scatter
        r1.reduceScatterMean(x()), r1.allReduceMean(x()), // rank 1: the other way round
      ]);
      const errors = out.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]).toMatch(new RegExp(`${kind} transport: rank \\d is in (all-reduce|reduce-scatter) #1 of step 0 but rank \\d is in (all-reduce|reduce-scatter) #1 of step 0`));
      g.close();
    });

    it(`${kind}: the same collective of another step fails`, async () => {
      const g = group(kind, 2);
      g.ranks[1].step = 3;
      const out = await Promise.allSettled(g.ranks.map((c) => c.allGather(new Float32Array(6), 12)));
      const errors = out.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
      expect(errors.length).toBeGreaterThan(0);
      expect(errors[0]).toMatch(/all-gather #1 of step (0|3) but rank \d is in all-gather #1 of step (3|0)/);
      g.close();
    });
  }
});

describe('shared transport', () => {
  it('refuses ranks that reduce different buffers at once, instead of mixing their data', async () => {
    const g = group('shared', 2, 7, 100);
    const a = g.ranks[0].alloc(10);
    g.ranks[1].alloc(5); // rank 1 allocated in another order
    const b = g.ranks[1].alloc(10);
    const out = await Promise.allSettled([g.ranks[0].allReduceMean(a), g.ranks[1].allReduceMean(b)]);
    for (const o of out) {
      expect(o.status).toBe('rejected');
      expect(String((o as PromiseRejectedResult).reason)).toMatch(/ranks reduced different buffers.*same order/);
    }
    g.close();
  });

  it('a registered region too large for one WebAssembly memory falls back to staging', async () => {
    const g = group('shared', 2, 7, 2 ** 30); // 2 x 4 GiB of registered buffers cannot be
    const bufs = g.ranks.map((c) => c.alloc(10));
    expect(bufs[0].byteLength).toBe(bufs[0].buffer.byteLength); // an ordinary buffer
    const data = randomArrays(2, 10, 9);
    bufs.forEach((b, r) => b.set(data[r]));
    for (const o of await Promise.all(g.ranks.map((c, r) => c.allReduceMean(bufs[r])))) expectClose(o, mean(data));
    g.close();
  });
});
