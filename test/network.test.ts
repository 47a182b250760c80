// The network transport over a real relay on loopback (src/classroom/relay.ts, WebSockets): its
// collectives equal a plain computation and the ring's, DDP through it equals one worker with the global
// batch, bytes are counted, malicious clients are dropped while the relay keeps serving, and a slow
// reader does not make the relay buffer without bound. (test/collectives.test.ts and p2p.test.ts run the
// same transport in-process, over MessagePorts.)

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Relay } from '../src/classroom/relay';
import type { RelayRun, RunLimits } from '../src/classroom/hub';
import { chunkBounds, type Collectives } from '../src/parallel/collectives';
import { makeCollectives, wire } from '../src/parallel/wiring';
import { CHUNK_FLOATS, FrameType, HIGH_WATER, encodeFrame, chunkCount, type Header } from '../src/parallel/transports/network';
import { COLLECTIVE_KINDS } from '../src/parallel/transports/base';
import { mulberry32 } from '../src/model/params';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { Coordinator, type RankHandle } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { spawnNodeWorker } from '../src/parallel/node-spawn';
import { parseInjection } from '../src/parallel/faults';
import { maxAbsDiff, shakespeare } from './helpers';
import { cli } from './run-cli';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let relay: Relay;
beforeAll(async () => {
  relay = await Relay.start({ host: '127.0.0.1', port: 0, dist: null });
});
afterAll(async () => {
  await relay.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const info = (run: RelayRun) => ({ url: relay.wsUrl, secret: run.secret, tokens: run.tokens });

/** N honest ranks in this process, each with its own WebSocket to the relay. */
function group(N: number, limits: Partial<RunLimits> = {}, run = relay.createRun({ world: N, limits })): { run: RelayRun; ranks: Collectives[]; close(): void } {
  const w = wire('network', N, { relay: info(run) });
  const ranks = w.endpoints.map((ep, r) => makeCollectives(r, N, ep));
  return { run, ranks, close: () => ranks.forEach((c) => c.close()) };
}
/** Some of the ranks of `run` (the others are played by the test). */
function someRanks(run: RelayRun, ranks: number[]): Collectives[] {
  const w = wire('network', run.world, { relay: info(run) });
  return ranks.map((r) => makeCollectives(r, run.world, w.endpoints[r]));
}

const randomArrays = (N: number, S: number, seed: number) => {
  const rand = mulberry32(seed);
  return Array.from({ length: N }, () => Float32Array.from({ length: S }, () => rand() * 2 - 1));
};
const mean = (xs: Float32Array[]) => Float32Array.from(xs[0], (_, i) => xs.reduce((s, x) => s + x[i], 0) / xs.length);
const sum = (xs: Float32Array[]) => Float32Array.from(xs[0], (_, i) => xs.reduce((s, x) => s + x[i], 0));
const close = (a: Float32Array, b: Float32Array) => {
  expect(a.length).toBe(b.length);
  expect(maxAbsDiff(a, b)).toBeLessThan(1e-6);
};

/** A raw client (the test plays a browser, honest or not): what it received and how its link closed. */
async function rawClient(hello: object | null) {
  const ws = new WebSocket(relay.wsUrl);
  const texts: string[] = [];
  const frames: Buffer[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  ws.on('message', (d, isBinary) => (isBinary ? frames.push(d as Buffer) : texts.push(d.toString())));
  await new Promise((r) => ws.once('open', r));
  if (hello) ws.send(JSON.stringify({ t: 'hello', ...hello }));
  const welcome = async () => {
    for (let i = 0; i < 200 && !texts.length; i++) await sleep(5);
    return JSON.parse(texts[0] ?? 'null');
  };
  return { ws, texts, frames, closed, welcome };
}
const errorsOf = (c: { texts: string[] }) => c.texts.map((t) => JSON.parse(t)).filter((m) => m.t === 'error').map((m) => m.message as string);

/** The frames of one message (a request or a send), as a rank would send them. */
function frames(h: Omit<Header, 'chunk' | 'chunks'>, data: Float32Array | null): Uint8Array[] {
  const n = chunkCount(h.length);
  return Array.from({ length: n }, (_, chunk) => encodeFrame({ ...h, chunk, chunks: n }, data));
}
const request = (kind: (typeof COLLECTIVE_KINDS)[number], from: number, data: Float32Array, seq = 1, step = 0) =>
  frames({ type: FrameType.REQUEST, kind: COLLECTIVE_KINDS.indexOf(kind), seq, step, from, to: 0, length: data.length, total: 0 }, data);

describe('network collectives over a relay on loopback', () => {
  it.each([2, 3])('N=%i: all-reduce mean and sum, reduce-scatter, all-gather, broadcast and send/recv equal the ring and a plain computation', async (N) => {
    const g = group(N);
    const ring = wire('ring', N);
    const rg = ring.endpoints.map((ep, r) => makeCollectives(r, N, ep));
    for (const S of [1, 17, CHUNK_FLOATS + 5]) { // the last spans two frames
      const data = randomArrays(N, S, N * 7 + S);
      const m = await Promise.all(g.ranks.map((c, r) => c.allReduceMean(data[r].slice())));
      const mr = await Promise.all(rg.map((c, r) => c.allReduceMean(data[r].slice())));
      m.forEach((o, r) => {
        close(o, mean(data));
        close(o, mr[r]);
      });
      const s = await Promise.all(g.ranks.map((c, r) => c.allReduceSum(data[r].slice())));
      for (const o of s) close(o, sum(data));
      const shards = await Promise.all(g.ranks.map((c, r) => c.reduceScatterMean(data[r].slice())));
      shards.forEach((sh, r) => close(sh, mean(data).slice(...chunkBounds(S, N, r))));
      const full = await Promise.all(g.ranks.map((c, r) => c.allGather(shards[r], S)));
      for (const f of full) close(f, mean(data));
      const root = N - 1;
      const b = await Promise.all(g.ranks.map((c, r) => c.broadcast(data[r].slice(), root)));
      for (const o of b) expect(Array.from(o.subarray(0, 50))).toEqual(Array.from(data[root].subarray(0, 50)));
    }
    // send/recv: every ordered pair, sends first
    await Promise.all(g.ranks.flatMap((c, a) => g.ranks.map((_, b) => (a === b ? null : c.send(Float32Array.of(a, b, 7), b))).filter(Boolean)));
    const got = await Promise.all(g.ranks.map((c, b) => Promise.all(g.ranks.map((_, a) => (a === b ? null : c.recv(a, 3))).filter(Boolean))));
    got.forEach((list, b) => list.forEach((x) => expect(x![1]).toBe(b)));
    g.close();
    rg.forEach((c) => c.close());
  });

  it('counts bytes: S up per rank per all-reduce, N x S each way through the relay', async () => {
    const N = 3;
    const S = 1000;
    const g = group(N);
    await Promise.all(g.ranks.map((c, r) => c.allReduceMean(randomArrays(N, S, 1)[r])));
    for (const c of g.ranks) expect(c.stats.bytesSent).toBe(4 * S);
    expect(g.run.stats).toMatchObject({ bytesIn: N * 4 * S, bytesOut: N * 4 * S, ops: 1 });
    expect(g.run.list().map((c) => c.rank).sort()).toEqual([0, 1, 2]); // the client list, with heartbeats
    for (const c of g.run.list()) expect(Date.now() - c.lastSeen).toBeLessThan(5_000);
    g.close();
  });
});

describe('DDP over the network transport', () => {
  const text = shakespeare.slice(0, 100_000);
  const vocab = charTokenizer(text).vocabSize;
  const config = (batch: number): RunConfig => ({ ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, backend: 'wasm', batch_size: batch }), vocab_size: vocab });
  const STEPS = 4;

  it('2 workers x batch 2 through the relay equal one worker x batch 4 (losses and parameters within 1e-5)', async () => {
    await initNodeBackend('wasm');
    const t = new Trainer(config(4), makeDataset(text, charTokenizer(text), 16));
    const ref: number[] = [];
    for (let i = 0; i < STEPS; i++) ref.push((await t.trainStep()).loss);
    const refParams = await t.exportParams();
    t.dispose();

    const run = relay.createRun({ world: 2 });
    const c = await Coordinator.create(config(2), text, { strategy: 'ddp', workers: 2, transport: 'network', bucketMb: 0.01, relay: info(run) }, spawnInProcess(initNodeBackend));
    for (let i = 0; i < STEPS; i++) {
      const s = await c.trainStep();
      expect(Math.abs(s.loss - ref[i]), `step ${i + 1}`).toBeLessThan(1e-5);
      for (const r of s.perRank) expect(r.bytesSent).toBeGreaterThan(0);
    }
    const params = await Promise.all(c.ranks.map((r) => r.api.exportParams()));
    for (const p of params) expect(maxAbsDiff(p, refParams)).toBeLessThan(1e-5);
    expect(maxAbsDiff(params[0], params[1])).toBe(0);
    expect(run.stats.bytesIn).toBeGreaterThan(0);
    c.dispose();
  });

  it('worker_threads ranks through the relay survive a killed worker (the rewiring is a newer generation): the losses equal a clean run', async () => {
    const FAST = { factor: 10, floorMs: 1_500, firstMs: 1_500 };
    const losses = async (inject: string[], spawn: (rank: number) => RankHandle = spawnNodeWorker) => {
      const run = relay.createRun({ world: 2 });
      const c = await Coordinator.create(config(2), text, {
        strategy: 'ddp', workers: 2, transport: 'network', bucketMb: 0.01, relay: info(run),
        faults: { deadlines: FAST, inject: inject.map((t) => parseInjection(t, 2)) },
      }, spawn);
      try {
        const out: number[] = [];
        for (let i = 0; i < 3; i++) out.push((await c.trainStep()).loss);
        return { out, recoveries: c.recoveries.map((r) => [r.step, r.rank, r.cause]), generation: run.generation };
      } finally {
        c.dispose();
      }
    };
    const clean = await losses([], spawnInProcess(initNodeBackend)); // the same math in this thread
    const faulty = await losses(['kill-worker:1@2']);
    expect(faulty.recoveries).toEqual([[2, 1, 'crash']]);
    expect(faulty.out).toEqual(clean.out);
    expect(faulty.generation).toBeGreaterThan(clean.generation);
  }, 60_000);

  it('the CLI: --transport network starts a relay on loopback and reports bytes per step', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'net-')), 'run.json');
    const r = await cli('train', '--preset', 'tiny', '--strategy', 'ddp', '--workers', '2', '--transport', 'network', '--steps', '2', '--eval-iters', '1', '--json', file);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/network/);
    const j = JSON.parse(readFileSync(file, 'utf8'));
    expect(j.bytes_per_step).toHaveLength(2);
    expect(j.bytes_per_step[0]).toBeGreaterThan(0);
    expect(j.hub_bytes_per_step).toBe(2 * 2 * j.bytes_per_step[0]); // through the relay: N x S in, N x S out
  }, 60_000);
});

describe('a malicious client is dropped; the relay keeps serving', () => {
  it('wrong secret, unknown token, a rank already connected, or data before the hello: refused', async () => {
    const run = relay.createRun({ world: 2 });
    const honest = someRanks(run, [0]);
    const cases: [object | null, RegExp][] = [
      [{ secret: 'x'.repeat(32) }, /wrong secret/],
      [{ secret: run.secret, token: 'f'.repeat(32) }, /unknown rank token/],
    ];
    for (const [hello, why] of cases) {
      const c = await rawClient(hello);
      expect((await c.closed).code).toBe(4008);
      expect(errorsOf(c)[0]).toMatch(why);
    }
    for (let i = 0; i < 100 && !run.list().some((c) => c.rank === 0); i++) await sleep(5);
    const twin = await rawClient({ secret: run.secret, token: run.tokens[0], generation: (await firstGeneration(run)) }); // claims rank 0, held by the honest rank
    expect((await twin.closed).code).toBe(4008);
    expect(errorsOf(twin)[0]).toMatch(/rank 0 is already connected/);
    const early = await rawClient(null);
    early.ws.send(new Uint8Array(64));
    expect((await early.closed).code).toBe(4008);
    expect(run.list().map((c) => c.rank)).toEqual([0]); // the honest rank is still there
    honest[0].close();
  });

  // N = 3: ranks 0 and 1 honest, rank 2 played by the test. Each attack drops rank 2; the honest ranks'
  // all-reduce in progress fails with an error naming rank 2 and why (the coordinator's fault handling
  // then rewires the run: a new generation), and the same run, rewired, works again.
  const attacks: [string, (rank2: Awaited<ReturnType<typeof rawClient>>) => void, RegExp][] = [
    ['sends as another rank', (c) => request('all-reduce', 1, new Float32Array(10)).forEach((f) => c.ws.send(f)), /rank 2 sent a frame as rank 1/],
    ['the wrong size (the others agree on theirs)', (c) => request('all-reduce', 2, new Float32Array(11)).forEach((f) => c.ws.send(f)), /all-reduce #1 of step 0 with 11 floats but the others are in all-reduce #1 of step 0 with 10 floats/],
    ['a chunk whose payload does not fit its header', (c) => c.ws.send(request('all-reduce', 2, new Float32Array(10))[0].subarray(0, 40)), /chunk 0 carries 8 bytes; a message of 10 floats needs 40/],
    ['garbage bytes', (c) => c.ws.send(Uint8Array.from({ length: 100 }, (_, i) => (i * 37) & 255)), /magic number/],
    ['a NaN in its gradient', (c) => request('all-reduce', 2, Float32Array.from({ length: 10 }, (_, i) => (i === 3 ? NaN : 1))).forEach((f) => c.ws.send(f)), /non-finite value \(NaN\) at float 3/],
    ['a flood of frames', (c) => {
      for (let i = 0; i < 300; i++) c.ws.send(JSON.stringify({ t: 'beat' }));
    }, /flooding: more than 100 frames in a second/],
    ['a message over the size limit', (c) => c.ws.send(encodeFrame({ type: FrameType.REQUEST, kind: 0, seq: 1, step: 0, from: 2, to: 0, length: 5000, total: 0, chunk: 0, chunks: 1 }, new Float32Array(5000))), /5000 floats is over the limit of 4096/],
    ['code in a control message', (c) => c.ws.send('{"t":"beat","__proto__":{"x":1},"f":"function(){}"}x'), /not a control message/],
  ];
  it.each(attacks)('%s', async (_, attack, why) => {
    const run = relay.createRun({ world: 3, limits: { maxFramesPerSecond: 100, maxFloats: 4096 } });
    const honest = someRanks(run, [0, 1]);
    const generation = await firstGeneration(run, honest);
    const evil = await rawClient({ secret: run.secret, token: run.tokens[2], generation });
    expect((await evil.welcome()).rank).toBe(2);
    const inFlight = honest.map((c) => c.allReduceMean(new Float32Array(10).fill(1)));
    attack(evil);
    expect((await evil.closed).code).toBe(4008);
    expect(errorsOf(evil)[0]).toMatch(why);
    for (const p of inFlight) await expect(p).rejects.toThrow(/network transport: rank 2 was dropped by the relay: /);
    expect(run.drops.map((d) => d.rank)).toEqual([2]);
    honest.forEach((c) => c.close());
    // the relay goes on: the run, rewired (a newer generation), and every rank honest this time
    const again = group(3, {}, run);
    const out = await Promise.all(again.ranks.map((c, r) => c.allReduceSum(Float32Array.of(r, 1))));
    for (const o of out) expect(Array.from(o)).toEqual([3, 3]);
    again.close();
  });

  it('with 2 ranks the relay cannot tell who is wrong: both collectives fail with the mismatch error', async () => {
    const run = relay.createRun({ world: 2 });
    const [honest] = someRanks(run, [0]);
    const generation = await firstGeneration(run, [honest]);
    const other = await rawClient({ secret: run.secret, token: run.tokens[1], generation });
    await other.welcome();
    const p = honest.allReduceMean(new Float32Array(10));
    request('all-reduce', 1, new Float32Array(11)).forEach((f) => other.ws.send(f));
    await expect(p).rejects.toThrow(/network transport: rank 0 is in all-reduce #1 of step 0 with 10 floats but rank 1 is in all-reduce #1 of step 0 with 11 floats/);
    honest.close();
    other.ws.close();
  });
});

describe('backpressure', () => {
  it('a reader that stops reading: the relay pauses the sender, and its buffers stay bounded', async () => {
    const maxQueuedBytes = 2 << 20;
    const run = relay.createRun({ world: 2, limits: { maxQueuedBytes } });
    const [sender] = someRanks(run, [0]);
    const generation = await firstGeneration(run, [sender]);
    const slow = await rawClient({ secret: run.secret, token: run.tokens[1], generation });
    await slow.welcome();
    slow.ws.pause(); // reads nothing: its socket's buffers fill, then the relay's queue for it
    const M = 48; // messages of 1 MB: 48 MB in all
    for (let k = 0; k < M; k++) await sender.send(new Float32Array(CHUNK_FLOATS).fill(k), 1); // queued on the sender
    let most = 0;
    for (let i = 0; i < 60; i++) {
      most = Math.max(most, run.bufferedBytes());
      await sleep(10);
    }
    const bound = maxQueuedBytes + HIGH_WATER + 2 * 4 * CHUNK_FLOATS; // its queue, its socket, a message on its way in
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(bound);
    expect(run.list().find((c) => c.rank === 0)!.paused).toBe(true); // the sender waits
    slow.ws.resume(); // the reader catches up: everything arrives, in order
    for (let i = 0; i < 500 && slow.frames.length < M; i++) {
      most = Math.max(most, run.bufferedBytes());
      await sleep(10);
    }
    expect(slow.frames.length).toBe(M);
    expect(most).toBeLessThanOrEqual(bound);
    expect(slow.frames.map((f) => new Float32Array(f.buffer.slice(f.byteOffset + 32, f.byteOffset + 36))[0])).toEqual(Array.from({ length: M }, (_, k) => k));
    sender.close();
    slow.ws.close();
  }, 30_000);
});

/** The generation the test's raw clients join with: the honest ranks' (waits until one of them joined). */
async function firstGeneration(run: RelayRun, honest: Collectives[] = []): Promise<number> {
  for (let i = 0; i < 200 && run.list().filter((c) => c.rank >= 0).length < honest.length; i++) await sleep(5);
  return run.generation;
}
