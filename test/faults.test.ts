// Faults: a run that loses a worker (killed, hung, out of memory) or whose gradients turn NaN detects
// it, aborts the step on every rank (nothing applied anywhere), recovers (DDP from a healthy replica,
// FSDP from the shards and the failed rank's buddy copy), replays the step, and ends with the same
// per-step losses as a run without faults. Ranks in this thread over comlink (an injected kill closes
// the rank's channel and fails its handle, as a dead worker's would).

import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
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

async function run(dist: DistOptions, inject: Injection[] = []) {
  const c = await Coordinator.create(config(), text, { ...dist, faults: { deadlines: FAST, inject } }, spawn);
  try {
    const losses: number[] = [];
    for (let i = 0; i < STEPS; i++) losses.push((await c.trainStep()).loss);
    return { losses, recoveries: c.recoveries, params: await c.exportParams() };
  } finally {
    c.dispose();
  }
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

const ALL: Injection[] = ['kill-worker:1@2', 'nan:0@3', 'oom:1@4', 'hang-worker:0@6'].map((t) => parseInjection(t, 2));

describe('a run survives killed, hung, out-of-memory and poisoned workers and loses no step', () => {
  const cases: { name: string; dist: DistOptions }[] = [
    ...(['ring', 'star', 'shared'] as TransportKind[]).map((transport) => ({ name: `ddp ${transport}`, dist: { strategy: 'ddp' as const, workers: 2, transport, bucketMb: 0.01 } })),
    { name: 'fsdp full ring', dist: { strategy: 'fsdp', workers: 2, transport: 'ring', bucketMb: 25, shard: 'full' } },
  ];
  for (const { name, dist } of cases) {
    it(`${name}: kill, nan, oom and hang, each recovered; the losses equal a run without faults`, async () => {
      const clean = await run(dist);
      const faulty = await run(dist, ALL);
      expect(faulty.recoveries.map((r) => [r.step, r.rank, r.cause])).toEqual([[2, 1, 'crash'], [3, 0, 'nan'], [4, 1, 'oom'], [6, 0, 'hang']]);
      for (const r of faulty.recoveries) {
        expect(r.replayed_steps).toBe(0);
        expect(r.restored_from).toMatch(dist.strategy === 'fsdp' ? /shards/ : /replica/);
      }
      expect(faulty.losses).toEqual(clean.losses); // bit for bit: the same samples, the same math
      expect(faulty.params).toEqual(clean.params);
    });
  }
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
