// The collectives added for tensor and pipeline parallelism, on every transport, with N ranks in one
// thread (as test/collectives.test.ts): allReduceSum (the sum, not the mean), and point-to-point
// send/recv between any two ranks (neighbours or not), in order, tagged with step and sequence number,
// failing loudly on a mismatch or an abort, with the bytes each rank puts on its links counted per hop.

import { describe, expect, it } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { TRANSPORTS, type Collectives, type PortLike, type TransportKind } from '../src/parallel/collectives';
import { endpointTransfers, makeCollectives, wire, type CommEndpoint } from '../src/parallel/wiring';
import { mulberry32 } from '../src/model/params';
import { Tracer } from '../src/util/trace';

function group(kind: TransportKind, N: number, registered = 0): { ranks: Collectives[]; hubStats: { bytesIn: number; bytesOut: number } | null; close(): void } {
  const w = wire(kind, N, { capacity: 7, registered });
  const ranks = w.endpoints.map((ep, r) => makeCollectives(r, N, ep, { registered, piece: 4 }));
  return { ranks, hubStats: w.hub?.stats ?? null, close: () => { ranks.forEach((c) => c.close()); w.close(); } };
}

const randomArrays = (N: number, S: number, seed: number) => {
  const rand = mulberry32(seed);
  return Array.from({ length: N }, () => Float32Array.from({ length: S }, () => rand() * 2 - 1));
};
const sum = (xs: Float32Array[]) => Float32Array.from(xs[0], (_, i) => xs.reduce((s, x) => s + x[i], 0));
const rejection = async (p: Promise<unknown>) => String(await p.then(() => 'resolved', (e) => e));

/** Ring hops from a to b: the shorter way round. */
const ringHops = (a: number, b: number, N: number) => Math.min((b - a + N) % N, (a - b + N) % N);

describe.each(TRANSPORTS)('%s: allReduceSum', (kind) => {
  it.each([2, 3, 4])('N=%i: the exact sum of small integers, not the mean, for lengths over several pieces', async (N) => {
    const g = group(kind, N);
    for (const S of [1, 5, 23]) {
      const data = Array.from({ length: N }, (_, r) => Float32Array.from({ length: S }, (_, i) => (r + 1) * 10 + (i % 7)));
      const expected = sum(data);
      const out = await Promise.all(g.ranks.map((c, r) => c.allReduceSum(data[r].slice())));
      for (const o of out) expect(Array.from(o)).toEqual(Array.from(expected));
      expect(out[0][0]).toBe(10 * (N * (N + 1)) / 2); // 10 + 20 + ...: not divided by N
    }
    g.close();
  });

  it.each([2, 3, 4])('N=%i: random floats to 1e-6 relative, ordinary and registered buffers, in issue order with the mean', async (N) => {
    const S = 37;
    const g = group(kind, N, 4 * S);
    const data = randomArrays(N, S, N);
    const expected = sum(data);
    const close = (o: Float32Array, e: Float32Array) => {
      for (let i = 0; i < S; i++) expect(Math.abs(o[i] - e[i])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(e[i])));
    };
    const reg = g.ranks.map((c, r) => {
      const b = c.alloc(S);
      b.set(data[r]);
      return b;
    });
    // issued without awaiting: a sum, a mean, a registered sum; each rank runs them in this order
    const results = await Promise.all(g.ranks.map((c, r) => Promise.all([c.allReduceSum(data[r].slice()), c.allReduceMean(data[r].slice()), c.allReduceSum(reg[r])])));
    for (const [s, m, rs] of results) {
      close(s, expected);
      close(m, expected.map((x) => x / N));
      close(rs, expected);
    }
    results.forEach(([, , rs], r) => expect(rs).toBe(reg[r])); // in place
    g.close();
  });

  it('counts bytes as allReduceMean does', async () => {
    const N = 4;
    const S = 1000;
    const sent = [];
    for (const op of ['mean', 'sum'] as const) {
      const g = group(kind, N);
      const data = randomArrays(N, S, 3);
      await Promise.all(g.ranks.map((c, r) => (op === 'sum' ? c.allReduceSum(data[r]) : c.allReduceMean(data[r]))));
      sent.push(g.ranks.map((c) => c.stats.bytesSent));
      g.close();
    }
    expect(sent[1]).toEqual(sent[0]);
    expect(sent[1][0]).toBeGreaterThan(0);
  });

  it('a rank in allReduceSum and one in allReduceMean fail with the mismatch error, naming both', async () => {
    const g = group(kind, 2);
    const out = await Promise.allSettled([g.ranks[0].allReduceSum(new Float32Array(12)), g.ranks[1].allReduceMean(new Float32Array(12))]);
    const errors = out.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(new RegExp(`${kind} transport: rank \\d is in all-reduce(-sum)? #1 of step 0 but rank \\d is in all-reduce(-sum)? #1 of step 0`));
    expect(errors[0]).toContain('all-reduce-sum');
    g.close();
  });
});

describe.each(TRANSPORTS)('%s: send/recv', (kind) => {
  /** Message k from a to b: n floats that say who sent it to whom. */
  const message = (a: number, b: number, k: number, n = 5 + k) => Float32Array.from({ length: n }, (_, i) => a * 1000 + b * 100 + k * 10 + i);

  it.each([2, 3, 4])('N=%i: every ordered pair, several messages each, in order, all directions at once', async (N) => {
    const g = group(kind, N);
    const K = 3;
    // every rank posts all its sends first (both directions of every pair in flight at once), then receives
    const sends = g.ranks.flatMap((c, a) => g.ranks.flatMap((_, b) => (a === b ? [] : Array.from({ length: K }, (_, k) => c.send(message(a, b, k), b)))));
    await Promise.all(sends); // resolve without any recv
    const got = await Promise.all(g.ranks.map((c, b) => Promise.all(g.ranks.flatMap((_, a) => (a === b ? [] : Array.from({ length: K }, (_, k) => c.recv(a, 5 + k).then((x) => [a, k, x] as const)))))));
    got.forEach((list, b) => {
      expect(list.length).toBe((N - 1) * K);
      for (const [a, k, x] of list) expect(Array.from(x)).toEqual(Array.from(message(a, b, k)));
    });
    // recvs first this time, then the sends: the recvs wait
    const pending = g.ranks.map((c, b) => c.recv((b + 1) % N, 4));
    await Promise.all(g.ranks.map((c, a) => c.send(message(a, (a - 1 + N) % N, 9, 4), (a - 1 + N) % N)));
    (await Promise.all(pending)).forEach((x, b) => expect(Array.from(x)).toEqual(Array.from(message((b + 1) % N, b, 9, 4))));
    g.close();
  });

  it('a buffer that owns its ArrayBuffer is transferred; a view of part of one is copied', async () => {
    const g = group(kind, 3);
    const whole = message(0, 2, 0);
    const big = new Float32Array(20).map((_, i) => i);
    await g.ranks[0].send(whole, 2);
    await g.ranks[0].send(big.subarray(3, 8), 2);
    expect(whole.length).toBe(0); // detached: zero-copy
    expect(Array.from(big.subarray(0, 4))).toEqual([0, 1, 2, 3]); // untouched
    expect(Array.from(await g.ranks[2].recv(0, 5))).toEqual(Array.from(message(0, 2, 0)));
    expect(Array.from(await g.ranks[2].recv(0, 5))).toEqual([3, 4, 5, 6, 7]);
    g.close();
  });

  it('a message of the wrong length, or of another step, is an error naming both ranks, the sizes and the step', async () => {
    const g = group(kind, 3);
    const [r0, , r2] = g.ranks;
    await r0.send(new Float32Array(4), 2);
    expect(await rejection(r2.recv(0, 5))).toMatch(
      new RegExp(`${kind} transport: rank 2 expected message #1 of step 0 from rank 0 with 5 floats, but rank 0 sent 4 floats`),
    );
    r2.step = 1;
    await r0.send(new Float32Array(5), 2); // rank 0 still at step 0
    expect(await rejection(r2.recv(0, 5))).toMatch(/rank 2 expected message #2 of step 1 from rank 0 with 5 floats, but rank 0 sent message #2 of step 0 \(5 floats\)/);
    expect(await rejection(r2.recv(7, 5))).toMatch(/rank 2 cannot receive from rank 7/);
    expect(await rejection(r0.send(new Float32Array(1), -1))).toMatch(/rank 0 cannot send to rank -1/);
    g.close();
  });

  it('abort() fails a pending recv, and later recvs and sends, with the reason', async () => {
    const g = group(kind, 2);
    const pending = g.ranks[1].recv(0, 3);
    const reason = new Error('step 4 aborted: rank 0 died');
    g.ranks[1].abort(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(g.ranks[1].recv(0, 3)).rejects.toBe(reason);
    await expect(g.ranks[1].send(new Float32Array(3), 0)).rejects.toBe(reason);
    g.close();
  });

  it('a pending recv does not hold up a later collective of the same rank', async () => {
    const g = group(kind, 2);
    const pending = g.ranks[1].recv(0, 2);
    const out = await Promise.all(g.ranks.map((c, r) => c.allReduceSum(Float32Array.of(r + 1, 1))));
    for (const o of out) expect(Array.from(o)).toEqual([3, 2]);
    await g.ranks[0].send(Float32Array.of(7, 8), 1);
    expect(Array.from(await pending)).toEqual([7, 8]);
    g.close();
  });

  it.each([2, 3, 4])('N=%i: bytesSent counts every hop (ring: the shorter way round; star: to the hub; shared: direct)', async (N) => {
    const S = 100;
    for (let a = 0; a < N; a++) {
      for (let b = 0; b < N; b++) {
        if (a === b) continue;
        const g = group(kind, N);
        await g.ranks[a].send(new Float32Array(S), b);
        await g.ranks[b].recv(a, S);
        const sent = g.ranks.map((c) => c.stats.bytesSent);
        expect(sent[a]).toBe(4 * S); // the sender's own link, once
        const hops = kind === 'ring' ? ringHops(a, b, N) : 1;
        expect(sent.reduce((x, y) => x + y, 0)).toBe(4 * S * hops); // relays counted on the relaying ranks
        if (kind === 'star') expect(g.hubStats).toMatchObject({ bytesIn: 4 * S, bytesOut: 4 * S });
        g.close();
      }
    }
  });

  it('traces a send on the comm lane with its bytes, and a recv as a wait on the main lane', async () => {
    const g = group(kind, 3);
    const tracers = g.ranks.map((c) => {
      c.tracer = new Tracer();
      c.tracer.enabled = true;
      return c.tracer;
    });
    const pending = g.ranks[2].recv(0, 10);
    await new Promise((r) => setTimeout(r, 20));
    await g.ranks[0].send(new Float32Array(10), 2);
    await pending;
    expect(tracers[0].take()).toContainEqual(expect.objectContaining({ name: 'send to rank 2', cat: 'comm', lane: 'comm', bytes: 40 }));
    const wait = tracers[2].take().find((e) => e.name === 'recv from rank 0');
    expect(wait).toMatchObject({ cat: 'wait', lane: 'main' });
    expect(wait!.dur).toBeGreaterThanOrEqual(10);
    g.close();
  });

  it('the endpoints cross a postMessage with endpointTransfers() (as to a Worker) and still work', async () => {
    const N = 3;
    const w = wire(kind, N, { capacity: 7, newChannel: () => new MessageChannel() as unknown as { port1: PortLike; port2: PortLike } });
    const moved = await Promise.all(w.endpoints.map((ep) => new Promise<CommEndpoint>((resolve) => {
      const { port1, port2 } = new MessageChannel();
      port2.once('message', (m) => {
        port1.close();
        port2.close();
        resolve(m as CommEndpoint);
      });
      port1.postMessage(ep, endpointTransfers(ep) as never); // throws if a port inside is not listed
    })));
    const ranks = moved.map((ep, r) => makeCollectives(r, N, ep));
    await Promise.all(ranks.map((c, r) => c.send(Float32Array.of(r), (r + 2) % N)));
    const got = await Promise.all(ranks.map((c, r) => c.recv((r + 1) % N, 1)));
    expect(got.map((x) => x[0])).toEqual([1, 2, 0]);
    const sums = await Promise.all(ranks.map((c, r) => c.allReduceSum(Float32Array.of(r, 1))));
    for (const s of sums) expect(Array.from(s)).toEqual([3, 3]);
    ranks.forEach((c) => c.close());
    w.close();
  });
});
