// FSDP against a single worker with the global batch (and so against DDP): FULL_SHARD, SHARD_GRAD_OP
// and NO_SHARD, N = 2, 3, 4, on a model whose unit sizes do not divide by 3 (padding). Then what a
// worker holds at rest: only shards, with real worker_threads (each rank its own tfjs engine).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { spawnNodeWorker } from '../src/parallel/node-spawn';
import { buildParamTable } from '../src/model/params';
import { shardLayout, SHARD_STRATEGIES } from '../src/parallel/layout';
import { expectedAtRest } from '../src/ui/memory';
import { maxAbsDiff, shakespeare } from './helpers';

const text = shakespeare.slice(0, 100_000);
const vocab = charTokenizer(text).vocabSize;
const STEPS = 5;

function config(overrides: Record<string, unknown>): RunConfig {
  return { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, backend: 'wasm', ...overrides }), vocab_size: vocab };
}

async function single(cfg: RunConfig) {
  const t = new Trainer(cfg, makeDataset(text, charTokenizer(text), cfg.block_size));
  const losses: number[] = [];
  for (let i = 0; i < STEPS; i++) losses.push((await t.trainStep()).loss);
  const params = await t.exportParams();
  t.dispose();
  return { losses, params };
}

async function distributed(cfg: RunConfig, dist: DistOptions, spawn = spawnInProcess(initNodeBackend)) {
  const c = await Coordinator.create(cfg, text, dist, spawn);
  try {
    const steps = [];
    for (let i = 0; i < STEPS; i++) steps.push(await c.trainStep());
    return { losses: steps.map((s) => s.loss), steps, params: await c.exportParams(), coordinator: c };
  } catch (e) {
    c.dispose();
    throw e;
  }
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('FSDP equals a single worker with the global batch', () => {
  it('uses a model whose units do not divide by 3 (so N = 3 pads)', () => {
    const table = buildParamTable(config({}));
    expect(table.units.every((u) => u.size % 3 !== 0)).toBe(true);
  });

  for (const shard of SHARD_STRATEGIES) {
    it.each([2, 3, 4])(`${shard}: N=%i x batch 2 vs one worker x batch 2N, 5 AdamW steps`, async (N) => {
      const ref = await single(config({ batch_size: 2 * N }));
      const run = await distributed(config({ batch_size: 2 }), { strategy: 'fsdp', workers: N, transport: 'ring', bucketMb: 25, shard });
      run.coordinator.dispose();
      for (let i = 0; i < STEPS; i++) expect(Math.abs(run.losses[i] - ref.losses[i]), `step ${i + 1}`).toBeLessThan(1e-5);
      expect(maxAbsDiff(run.params, ref.params)).toBeLessThan(1e-5);
    });
  }

  it('full equals DDP with accumulation, weight decay and clipping active, without prefetch, over star', async () => {
    const cfg = config({ batch_size: 2, grad_accum: 2, weight_decay: 0.5, grad_clip: 0.05 });
    const ddp = await distributed(cfg, { strategy: 'ddp', workers: 2, transport: 'star', bucketMb: 25 });
    ddp.coordinator.dispose();
    const fsdp = await distributed(cfg, { strategy: 'fsdp', workers: 2, transport: 'star', bucketMb: 25, shard: 'full', prefetch: false });
    fsdp.coordinator.dispose();
    expect(ddp.steps[0].gradNorm).toBeGreaterThan(0.05); // clipping really happens
    for (let i = 0; i < STEPS; i++) expect(Math.abs(fsdp.losses[i] - ddp.losses[i])).toBeLessThan(1e-5);
    expect(maxAbsDiff(fsdp.params, ddp.params)).toBeLessThan(1e-5);
  });

  it('moves 3(N-1)/N x S per rank per step for full (the root unit, kept gathered, 2x), 2(N-1)/N x S for grad_op', async () => {
    const N = 4;
    const cfg = config({ batch_size: 2 });
    const table = buildParamTable(cfg);
    const padded = table.units.map((u) => shardLayout(u, N).padded * 4); // bytes
    const [root, blocks] = [padded[0], padded.slice(1).reduce((a, b) => a + b, 0)];
    const scalars = 2 * 2 * ((N - 1) / N) * 4; // the loss and the gradient norm: two 1-float all-reduces
    const f = (N - 1) / N;
    const expected = { full: f * (3 * blocks + 2 * root), grad_op: f * 2 * (blocks + root) };
    for (const shard of ['full', 'grad_op'] as const) {
      const run = await distributed(cfg, { strategy: 'fsdp', workers: N, transport: 'ring', bucketMb: 25, shard });
      run.coordinator.dispose();
      for (const r of run.steps[1].perRank) expect(Math.abs(r.bytesSent - expected[shard] - scalars)).toBeLessThan(4 * N * table.units.length); // chunk rounding
    }
  });
});

describe('FSDP checkpoints', () => {
  it('resume from a checkpoint (put together from the shards) continues exactly like an uninterrupted run', async () => {
    const cfg = config({ batch_size: 2 });
    const dist: DistOptions = { strategy: 'fsdp', workers: 3, transport: 'ring', bucketMb: 25, shard: 'full' };
    const whole = await distributed(cfg, dist); // 5 steps
    whole.coordinator.dispose();
    const spawn = spawnInProcess(initNodeBackend);
    const first = await Coordinator.create(cfg, text, dist, spawn);
    for (let i = 0; i < 3; i++) await first.trainStep();
    const ckpt = await first.exportCheckpoint();
    first.dispose();
    const second = await Coordinator.create(cfg, text, dist, spawn, ckpt);
    expect(second.step).toBe(3);
    const losses = [(await second.trainStep()).loss, (await second.trainStep()).loss];
    second.dispose();
    expect(losses).toEqual(whole.losses.slice(3));
  });

  it('saved from the shards of 4 workers, loads into 2 FSDP workers and into one: the same next losses', async () => {
    const spawn = spawnInProcess(initNodeBackend);
    const four = await Coordinator.create(config({ batch_size: 2 }), text, { strategy: 'fsdp', workers: 4, transport: 'ring', bucketMb: 25, shard: 'full' }, spawn);
    for (let i = 0; i < 3; i++) await four.trainStep();
    const ckpt = await four.exportCheckpoint(); // every worker's own shards, put together on the coordinator
    const next = async (c: Coordinator) => {
      const losses = [(await c.trainStep()).loss, (await c.trainStep()).loss];
      c.dispose();
      return losses;
    };
    const ref = await next(four);
    // the same global batch of 8 sequences, split another way: re-sharded on load
    const two = await next(await Coordinator.create(config({ batch_size: 4 }), text, { strategy: 'fsdp', workers: 2, transport: 'ring', bucketMb: 25, shard: 'full' }, spawn, ckpt));
    const one = await next(await Coordinator.create(config({ batch_size: 8 }), text, { strategy: 'single', workers: 1, transport: 'ring', bucketMb: 25 }, spawn, ckpt));
    for (const losses of [two, one]) losses.forEach((l, i) => expect(Math.abs(l - ref[i]), `step ${4 + i}`).toBeLessThan(1e-5));
  });
});

describe('FSDP memory, with one tfjs engine per rank (worker_threads)', () => {
  const N = 4;
  const cfg = config({ batch_size: 2, n_layer: 3 });
  const table = buildParamTable(cfg);
  let full: Awaited<ReturnType<typeof distributed>>;
  let ddp: Awaited<ReturnType<typeof distributed>>;

  beforeAll(async () => {
    full = await distributed(cfg, { strategy: 'fsdp', workers: N, transport: 'shared', bucketMb: 25, shard: 'full' }, spawnNodeWorker);
    ddp = await distributed(cfg, { strategy: 'ddp', workers: N, transport: 'shared', bucketMb: 25 }, spawnNodeWorker);
  }, 120_000);
  afterAll(() => {
    full?.coordinator.dispose();
    ddp?.coordinator.dispose();
  });

  it('keeps only shards at rest: no gathered unit, and less than one full copy of the parameters', async () => {
    const shardFloats = table.units.reduce((s, u) => s + shardLayout(u, N).shard, 0);
    for (const h of full.coordinator.ranks) {
      const m = await h.api.memory();
      // tensors: shards of m and v (4 bytes each), 1-byte decay masks, the causal mask: nothing unsharded
      // (the parameter shards live on the host, the all-gathers' input)
      expect(m.numBytes).toBeGreaterThanOrEqual(2 * 4 * shardFloats);
      expect(m.numBytes).toBeLessThanOrEqual(2 * 4 * shardFloats + shardFloats + 4 * cfg.block_size ** 2);
      expect(m.numBytes).toBeLessThan(4 * table.total);
    }
    const dm = await ddp.coordinator.ranks[0].api.memory();
    expect(dm.numBytes).toBeGreaterThanOrEqual(4 * table.total); // a DDP replica: every parameter (m and v: on the host, on wasm)
  });

  it('reports memory by kind: shards at rest, at most two gathered blocks plus the root at the peak', () => {
    const stats = full.steps.at(-1)!.perRank;
    const shardFloats = table.units.reduce((s, u) => s + shardLayout(u, N).shard, 0);
    const [root, block] = [table.units[0].size, table.units[1].size];
    const rest = (m: typeof stats[0]['memory']) => m.params + m.grads + m.optimizer + m.buddy;
    const formula = expectedAtRest(table, { strategy: 'fsdp', shard: 'full', workers: N }, 'wasm').bytes; // 16 + 12 (buddy) B per shard float
    for (const r of stats) {
      // measured: what is allocated (host shards, gradient shards, m and v tensors, decay masks)
      expect(r.memory.params).toBe(4 * shardFloats);
      expect(r.memory.grads).toBe(4 * shardFloats);
      expect(r.memory.optimizer).toBeGreaterThan(8 * shardFloats); // m and v, and the masks of units decayed only in part
      expect(r.memory.optimizer).toBeLessThanOrEqual(9 * shardFloats); // masks: 1 byte per element at most
      expect(r.memory.buddy).toBe(12 * shardFloats); // the next rank's shards of weights, m and v
      expect(rest(r.memory) - formula).toBe(r.memory.optimizer - 8 * shardFloats); // the formula leaves the masks out
      expect(r.memory.gathered_peak).toBeGreaterThanOrEqual(4 * (root + block));
      expect(r.memory.gathered_peak).toBeLessThanOrEqual(4 * (root + 2 * block));
      expect(r.memory.activations_peak).toBeGreaterThan(0);
    }
    const d = ddp.steps.at(-1)!.perRank[0].memory;
    expect(d.params).toBe(4 * table.total);
    // a wasm replica: tensors 4, the host AdamW's gradients 4, m and v 8 and master copy 4: the formula's 20
    expect(rest(d)).toBe(expectedAtRest(table, { strategy: 'ddp', workers: N }, 'wasm').bytes);
    // the shards alone: under 0.3 of a replica; the buddy copy (for recovery) adds 12 bytes per parameter / N
    expect((rest(stats[0].memory) - stats[0].memory.buddy) / rest(d)).toBeLessThan(0.3);
    expect(d.buddy).toBe(0); // replicas recover from each other
  });
});
