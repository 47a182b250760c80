// DDP against a single worker: N ranks x batch b must train exactly like one worker with batch N*b
// (same samples, mean gradients), for every transport. Ranks run in this thread behind comlink over
// MessageChannels (the same messages as real Workers; test/browser/distributed.test.ts runs real ones).

import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { Coordinator, DistError, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { assignBuckets, backwardOrder } from '../src/parallel/layout';
import { buildParamTable } from '../src/model/params';
import { TRANSPORTS } from '../src/parallel/collectives';
import { maxAbsDiff, shakespeare } from './helpers';

const text = shakespeare.slice(0, 100_000);
const vocab = charTokenizer(text).vocabSize;
const spawn = spawnInProcess(initNodeBackend);
const STEPS = 5;

function config(overrides: Record<string, unknown>): RunConfig {
  return { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, backend: 'wasm', ...overrides }), vocab_size: vocab };
}

async function single(cfg: RunConfig) {
  const tok = charTokenizer(text);
  const t = new Trainer(cfg, makeDataset(text, tok, cfg.block_size));
  const losses: number[] = [];
  for (let i = 0; i < STEPS; i++) losses.push((await t.trainStep()).loss);
  const params = await t.exportParams();
  t.dispose();
  return { losses, params };
}

async function ddp(cfg: RunConfig, dist: Partial<DistOptions>) {
  const c = await Coordinator.create(cfg, text, { strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25, ...dist }, spawn);
  const losses: number[] = [];
  const orders: number[][][] = [];
  const bytes: number[][] = [];
  for (let i = 0; i < STEPS; i++) {
    const s = await c.trainStep();
    // Waiting split: the rank that waited least waited only for data; the others' extra wait was for it.
    expect(Math.min(...s.perRank.map((r) => r.stragglerMs!))).toBe(0);
    for (const r of s.perRank) expect(r.stragglerMs!).toBeCloseTo(r.waitMs - Math.min(...s.perRank.map((x) => x.waitMs)), 9);
    losses.push(s.loss);
    orders.push(s.perRank.map((r) => r.buckets));
    bytes.push(s.perRank.map((r) => r.bytesSent));
  }
  const params = await Promise.all(c.ranks.map((r) => r.api.exportParams()));
  c.dispose();
  return { losses, params, orders, bytes };
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('DDP equals a single worker with the global batch', () => {
  for (const transport of TRANSPORTS) {
    it.each([2, 4])(`${transport}: N=%i x batch 2 vs one worker x batch 2N, 5 AdamW steps`, async (N) => {
      const ref = await single(config({ batch_size: 2 * N }));
      const run = await ddp(config({ batch_size: 2 }), { workers: N, transport });
      for (let i = 0; i < STEPS; i++) expect(Math.abs(run.losses[i] - ref.losses[i]), `step ${i + 1}`).toBeLessThan(1e-5);
      for (const p of run.params) expect(maxAbsDiff(p, ref.params)).toBeLessThan(1e-5); // every parameter, every replica
      expect(maxAbsDiff(run.params[1], run.params[0])).toBe(0); // replicas identical, bit for bit
    });
  }

  it('N = 1 equals single exactly', async () => {
    const ref = await single(config({ batch_size: 4 }));
    const run = await ddp(config({ batch_size: 4 }), { workers: 1 });
    expect(run.losses).toEqual(ref.losses);
    expect(maxAbsDiff(run.params[0], ref.params)).toBe(0);
  });

  it('accumulation: N=2 x 2 micro-batches x batch 2 equals one worker x batch 8, with no communication on inner micro-steps', async () => {
    const ref = await single(config({ batch_size: 8 }));
    const run = await ddp(config({ batch_size: 2, grad_accum: 2 }), { workers: 2, bucketMb: 0.01 });
    for (let i = 0; i < STEPS; i++) expect(Math.abs(run.losses[i] - ref.losses[i])).toBeLessThan(1e-5);
    expect(maxAbsDiff(run.params[0], ref.params)).toBeLessThan(1e-5);
    const once = await ddp(config({ batch_size: 4, grad_accum: 1 }), { workers: 2, bucketMb: 0.01 });
    expect(run.bytes[0]).toEqual(once.bytes[0]); // accumulating 2 micro-batches sends what one batch sends
  });

  it('issues buckets in the same order on every rank, in backward order', async () => {
    const cfg = config({ batch_size: 2 });
    const buckets = assignBuckets(buildParamTable(cfg), 0.01 * 2 ** 20, 0.002 * 2 ** 20);
    expect(buckets.length).toBeGreaterThan(3);
    const run = await ddp(cfg, { workers: 3, bucketMb: 0.01 });
    for (const step of run.orders) {
      for (const order of step) expect(order).toEqual(buckets.map((b) => b.index));
    }
  });

  it('rejects bad distributed settings with specific messages', async () => {
    await expect(Coordinator.create(config({}), text, { strategy: 'ddp', workers: 9, transport: 'ring', bucketMb: 25 }, spawn)).rejects.toThrow(/workers must be a whole number from 1 to 8/);
    await expect(Coordinator.create(config({}), text, { strategy: 'single', workers: 2, transport: 'ring', bucketMb: 25 }, spawn)).rejects.toThrow(DistError);
    await expect(Coordinator.create(config({}), text, { strategy: 'ddp', workers: 2, transport: 'pigeon' as never, bucketMb: 25 }, spawn)).rejects.toThrow(/transport must be ring, star, shared or network/);
  });
});

describe('buckets', () => {
  const table = buildParamTable(makeConfig('gpt2'));
  it('follow backward order, count the tied wte once, and respect the cap (small first bucket)', () => {
    const order = backwardOrder(table);
    expect(order.map((p) => p.name).slice(0, 3)).toEqual(['ln_f.bias', 'ln_f.weight', 'h.11.mlp.c_proj.bias']);
    expect(order.at(-1)!.name).toBe('wte');
    expect(order).toHaveLength(table.params.length);
    const buckets = assignBuckets(table);
    expect(buckets.flatMap((b) => b.params).map((p) => p.name)).toEqual(order.map((p) => p.name));
    expect(buckets.reduce((s, b) => s + b.size, 0)).toBe(table.total); // every parameter exactly once
    expect(buckets[0].size * 4).toBeLessThanOrEqual(2 ** 20);
    for (const b of buckets) if (b.params.length > 1) expect(b.size * 4).toBeLessThanOrEqual(25 * 2 ** 20);
    expect(buckets.at(-1)!.params.map((p) => p.name)).toEqual(['wte']); // 154 MB: a bucket of its own
  });
});
