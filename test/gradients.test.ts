// Gradients, not only losses and weights: N workers x batch b must hand their optimizers the same
// gradient, tensor by tensor and before clipping, as one worker with batch N*b. AdamW ignores a constant
// scale of the gradient and clipping normalises it, so the loss and parameter equivalence tests
// (ddp.test.ts, fsdp.test.ts) would pass a missing 1/N in the all-reduce, a sum instead of a mean, or
// a missing 1/K in accumulation; these fail on each of them. Ranks run in this thread over comlink.

import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { buildParamTable } from '../src/model/params';
import { Trainer } from '../src/train/trainer';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import type { ShardStrategy, Strategy } from '../src/parallel/layout';
import { shakespeare, worstRelative } from './helpers';

const text = shakespeare.slice(0, 100_000);
const vocab = charTokenizer(text).vocabSize;
const spawn = spawnInProcess(initNodeBackend);
const STEPS = 2; // the second step's gradients are taken at parameters the first update made
const RELATIVE = 1e-5; // per tensor: max |a - b| over max |reference|

function config(overrides: Record<string, unknown>): RunConfig {
  return { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, backend: 'wasm', ...overrides }), vocab_size: vocab };
}

/** The gradient (before clipping) and its norm of each step, as one worker computes it. */
async function singleGrads(cfg: RunConfig) {
  const t = new Trainer(cfg, makeDataset(text, charTokenizer(text), cfg.block_size));
  const steps = [];
  for (let i = 0; i < STEPS; i++) steps.push(await t.trainStep(undefined, { grads: true }));
  t.dispose();
  return steps;
}

async function distGrads(cfg: RunConfig, dist: DistOptions) {
  const c = await Coordinator.create(cfg, text, dist, spawn);
  try {
    const steps = [];
    for (let i = 0; i < STEPS; i++) steps.push(await c.trainStep({ grads: true }));
    return steps;
  } finally {
    c.dispose();
  }
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

const CASES: { strategy: Strategy; shard?: ShardStrategy }[] = [
  { strategy: 'ddp' }, { strategy: 'fsdp', shard: 'full' }, { strategy: 'fsdp', shard: 'grad_op' }, { strategy: 'fsdp', shard: 'none' },
];

describe('every gradient tensor, before the optimizer, equals one worker with the global batch', () => {
  for (const c of CASES) {
    const name = c.strategy === 'fsdp' ? `fsdp ${c.shard}` : c.strategy;
    it.each([2, 3, 4])(`${name}: N=%i x batch 2 vs one worker x batch 2N`, async (N) => {
      const ref = await singleGrads(config({ batch_size: 2 * N }));
      const run = await distGrads(config({ batch_size: 2 }), { ...c, workers: N, transport: 'ring', bucketMb: 0.01 });
      for (let i = 0; i < STEPS; i++) {
        const worst = worstRelative(run[i].grads!, ref[i].grads!, buildParamTable(config({})));
        expect(worst.rel, `step ${i + 1}, ${worst.name}`).toBeLessThan(RELATIVE);
        expect(Math.abs(run[i].gradNorm - ref[i].gradNorm) / ref[i].gradNorm, `step ${i + 1} gradient norm`).toBeLessThan(RELATIVE);
      }
    });

    it(`${name}: accumulation, N=2 x 2 micro-batches x batch 2 vs one worker x batch 8`, async () => {
      const ref = await singleGrads(config({ batch_size: 8 }));
      const run = await distGrads(config({ batch_size: 2, grad_accum: 2 }), { ...c, workers: 2, transport: 'ring', bucketMb: 0.01 });
      for (let i = 0; i < STEPS; i++) {
        const worst = worstRelative(run[i].grads!, ref[i].grads!, buildParamTable(config({})));
        expect(worst.rel, `step ${i + 1}, ${worst.name}`).toBeLessThan(RELATIVE);
      }
    });
  }

  it('one worker accumulating 2 micro-batches of 4 gives the gradient of one batch of 8', async () => {
    const ref = await singleGrads(config({ batch_size: 8 }));
    const acc = await singleGrads(config({ batch_size: 4, grad_accum: 2 }));
    for (let i = 0; i < STEPS; i++) expect(worstRelative(acc[i].grads!, ref[i].grads!, buildParamTable(config({}))).rel).toBeLessThan(RELATIVE);
  });
});
