// Collectives with no workers at all: N ranks in one thread, linked by MessageChannels (ring, star)
// or one SharedArrayBuffer (shared), checked against a plain sum for N = 1..8 and lengths that do not
// divide by N.

import { describe, expect, it } from 'vitest';
import { TRANSPORTS, chunkBounds, makeCollectives, wire, type Collectives, type TransportKind } from '../src/dist/collectives';
import { mulberry32 } from '../src/model/params';

function group(kind: TransportKind, N: number, capacity = 7): { ranks: Collectives[]; close(): void } {
  const w = wire(kind, N, { capacity });
  const ranks = w.endpoints.map((ep, r) => makeCollectives(r, N, ep));
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

  it('counts the bytes each rank sends', async () => {
    const N = 4;
    const S = 1000;
    const g = group(kind, N, 4096);
    await Promise.all(g.ranks.map((c, r) => c.allReduceMean(randomArrays(N, S, 3)[r])));
    const sent = g.ranks.map((c) => c.stats.bytesSent);
    if (kind === 'ring') for (const b of sent) expect(b).toBe(2 * ((N - 1) / N) * S * 4); // 2(N-1)/N x S
    if (kind === 'star') for (const b of sent) expect(b).toBe(S * 4); // the whole buffer to the hub
    if (kind === 'shared') for (const b of sent) expect(b).toBe(S * 4); // written once into shared memory
    g.close();
  });
});
