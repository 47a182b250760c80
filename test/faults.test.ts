// Faults: a run that loses a worker (killed, hung, out of memory) or whose gradients turn NaN detects
// it, aborts the step on every rank (nothing applied anywhere), recovers (DDP from a healthy replica,
// FSDP from the shards and the failed rank's buddy copy), replays the step, and ends with the same
// per-step losses as a run without faults. Ranks in Node worker_threads (each its own tfjs engine: a
// killed worker really dies), and in this thread over comlink for the policy tests (an injected kill
// there closes the rank's channel and fails its handle, as a dead worker's would).

import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { spawnNodeWorker } from '../src/parallel/node-spawn';
import { parseInjection, type Injection } from '../src/parallel/faults';
import type { TransportKind } from '../src/parallel/collectives';
import { shakespeare } from './helpers';

const text = shakespeare.slice(0, 100_000);
const vocab = charTokenizer(text).vocabSize;
const spawn = spawnInProcess(initNodeBackend);
const STEPS = 8;
const FAST = { factor: 10, floorMs: 1_500, firstMs: 1_500 }; // deadlines short enough for a test

function config(): RunConfig {
  return { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, batch_size: 2, backend: 'wasm' }), vocab_size: vocab };
}

async function run(dist: DistOptions, inject: Injection[] = [], spawnRank = spawn) {
  const c = await Coordinator.create(config(), text, { ...dist, faults: { deadlines: FAST, inject } }, spawnRank);
  try {
    const losses: number[] = [];
    for (let i = 0; i < STEPS; i++) losses.push((await c.trainStep()).loss);
    const tensors = await Promise.all(c.ranks.map(async (h) => (await h.api.memory()).numTensors));
    return { losses, recoveries: c.recoveries, params: await c.exportParams(), tensors };
  } finally {
    c.dispose();
  }
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

const ALL: Injection[] = ['kill-worker:1@2', 'nan:0@3', 'oom:1@4', 'hang-worker:0@6'].map((t) => parseInjection(t, 2));

describe('a run survives killed, hung, out-of-memory and poisoned workers and loses no step', () => {
  const cases: [string, DistOptions][] = [
    ...(['ring', 'star', 'shared'] as TransportKind[]).map((transport): [string, DistOptions] => [`ddp ${transport}`, { strategy: 'ddp', workers: 2, transport, bucketMb: 0.01 }]),
    ['fsdp full ring', { strategy: 'fsdp', workers: 2, transport: 'ring', bucketMb: 25, shard: 'full' }],
    ['tp ring', { strategy: 'tp', workers: 2, transport: 'ring', bucketMb: 25 }],
    ['pp 1f1b ring', { strategy: 'pp', workers: 2, transport: 'ring', bucketMb: 25, microbatches: 2, schedule: '1f1b' }],
  ];
  it.each(cases)('%s (worker_threads): kill, nan, oom and hang, each recovered; the losses equal a run without faults', async (_, dist) => {
    const clean = await run(dist, [], spawnNodeWorker);
    const faulty = await run(dist, ALL, spawnNodeWorker);
    expect(faulty.recoveries.map((r) => [r.step, r.rank, r.cause])).toEqual([[2, 1, 'crash'], [3, 0, 'nan'], [4, 1, 'oom'], [6, 0, 'hang']]);
    for (const r of faulty.recoveries) {
      expect(r.replayed_steps).toBe(0);
      expect(r.restored_from).toMatch({ ddp: /replica/, fsdp: /shards/, tp: /part/, pp: /part/ }[dist.strategy as string]!);
    }
    expect(faulty.losses).toEqual(clean.losses); // bit for bit: the same samples, the same math
    expect(faulty.params).toEqual(clean.params);
    expect(faulty.tensors).toEqual(clean.tensors); // no tensor leaks, on the workers kept or the fresh ones
  }, 120_000);

  it('in this thread too (the tests\' fast path): a killed rank is replaced and nothing is lost', async () => {
    const dist: DistOptions = { strategy: 'fsdp', workers: 3, transport: 'ring', bucketMb: 25, shard: 'grad_op' };
    const clean = await run(dist);
    const faulty = await run(dist, [parseInjection('kill-worker:2@4', 3)]);
    expect(faulty.recoveries.map((r) => [r.step, r.rank, r.cause, r.restored_from])).toEqual([[4, 2, 'crash', "every rank's shards and rank 0's buddy copy of rank 2"]]);
    expect(faulty.losses).toEqual(clean.losses);
  });
});

describe('when the state of the step is lost too, the last checkpoint', () => {
  it('fsdp: both ranks die at once (a shard and its buddy copy): back to the checkpoint of step 2, steps 3 and 4 trained again', async () => {
    const dist: DistOptions = { strategy: 'fsdp', workers: 2, transport: 'ring', bucketMb: 25, shard: 'full' };
    const clean = await run(dist);
    let saved: ArrayBuffer | null = null;
    const inject = ['kill-worker:0@4', 'kill-worker:1@4'].map((t) => parseInjection(t, 2));
    const c = await Coordinator.create(config(), text, { ...dist, faults: { deadlines: FAST, inject, lastCheckpoint: async () => saved } }, spawn);
    try {
      const losses: number[] = [];
      while (c.step < STEPS) {
        const s = await c.trainStep();
        losses[s.step - 1] = s.loss; // a replayed step replaces what it had
        if (s.step === 2) saved = await c.exportCheckpoint();
      }
      expect(c.recoveries).toHaveLength(1);
      expect(c.recoveries[0]).toMatchObject({ step: 4, cause: 'crash', replayed_steps: 1 });
      expect(c.recoveries[0].restored_from).toMatch(/^the last checkpoint \(step 2\), since rank \d's shards are lost and no fresh buddy copy/);
      expect(losses).toEqual(clean.losses);
    } finally {
      c.dispose();
    }
  });
});

describe('fsdp without buddy copies', () => {
  it('keeps none (no memory, no bytes), and a worker\'s death then says that its shards are lost', async () => {
    const dist: DistOptions = { strategy: 'fsdp', workers: 2, transport: 'ring', bucketMb: 25, shard: 'full' };
    const c = await Coordinator.create(config(), text, { ...dist, faults: { deadlines: FAST, buddies: false, inject: [parseInjection('kill-worker:1@2', 2)] } }, spawn);
    try {
      const first = await c.trainStep();
      expect(first.buddyBytes).toBeUndefined();
      expect(first.perRank.every((r) => r.memory.buddy === 0)).toBe(true);
      await expect(c.trainStep()).rejects.toThrow(/rank 1's shards are lost and no fresh buddy copy of it is left.*resume from the last checkpoint/);
    } finally {
      c.dispose();
    }
  });
});

describe('a fault that comes back when the step is replayed is the run\'s own', () => {
  const dist: DistOptions = { strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 0.01 };
  const twice = (t: string) => [parseInjection(t, 2), parseInjection(t, 2)]; // the second fires on the replay

  it('NaN twice: stops (the default), naming the step and the tensor', async () => {
    await expect(run(dist, twice('nan:0@3'))).rejects.toThrow(/step 3: the averaged gradient of \S+ is not finite.*again when the step was replayed: the training diverged.*parameters are those of step 2\. Lower lr/);
  });

  it('NaN twice with onNaN skip: the step\'s update is dropped and the run goes on', async () => {
    const c = await Coordinator.create(config(), text, { ...dist, faults: { deadlines: FAST, inject: twice('nan:0@3'), onNaN: 'skip' } }, spawn);
    try {
      const steps = [];
      while (c.step < STEPS) steps.push(await c.trainStep());
      expect(steps.map((s) => s.step)).toEqual([1, 2, 4, 5, 6, 7, 8]); // step 3 skipped
      expect(steps.every((s) => Number.isFinite(s.loss))).toBe(true);
      expect(c.recoveries.map((r) => [r.step, r.cause])).toEqual([[3, 'nan'], [3, 'nan']]);
      expect(c.recoveries[1].restored_from).toMatch(/skipped \(no update\)/);
    } finally {
      c.dispose();
    }
  });

  it('out of memory twice: says what failed and what the cost model says would fit', async () => {
    await expect(run(dist, twice('oom:1@3'))).rejects.toThrow(/rank 1 ran out of memory twice training step 3 \(preset tiny, batch_size 2 per worker, ddp x2\); the cost model puts a worker at [\d.]+ MB\. Try batch_size 1 \([\d.]+ MB per worker\), or strategy fsdp with shard full/);
  });
});

describe('fault injection flags', () => {
  it('parses KIND:RANK@STEP and says what is wrong otherwise', () => {
    expect(parseInjection('kill-worker:1@5', 2)).toEqual({ kind: 'kill', rank: 1, step: 5 });
    expect(parseInjection('nan:0@1', 1)).toEqual({ kind: 'nan', rank: 0, step: 1 });
    expect(() => parseInjection('explode:1@5', 2)).toThrow(/KIND one of kill-worker, hang-worker, nan, oom/);
    expect(() => parseInjection('kill-worker:2@5', 2)).toThrow(/rank 2 does not exist \(ranks are 0 to 1\)/);
    expect(() => parseInjection('kill-worker:0@0', 2)).toThrow(/steps count from 1/);
  });
});
