// The explicit per-block backward against tfjs autodiff (tf.grads) of the same forward, on random
// small configs, with both attention kernels and with dropout on. The forward itself is checked
// against llm.c in llmc.test.ts; this checks that every hand-written gradient formula is right.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { GPT, type AttentionKernel } from '../src/model/gpt';
import { buildParamTable, mulberry32 } from '../src/model/params';
import type { ModelConfig } from '../src/model/config';

beforeAll(async () => {
  await initNodeBackend('cpu'); // tf.grads needs gather's gradient, which wasm lacks
});

function randomSetup(seed: number, dropout = 0) {
  const rand = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const n_head = int(1, 3);
  const cfg: ModelConfig = { n_layer: int(1, 3), n_head, n_embd: n_head * int(2, 6), block_size: int(4, 9), vocab_size: int(5, 23), dropout };
  const table = buildParamTable(cfg);
  // Every parameter random (LayerNorm weights near 1), so a formula that ignores one shows up.
  const flat = Float32Array.from({ length: table.total }, () => (rand() - 0.5) * 0.6);
  for (const p of table.params) if (/ln_\w*\.?weight$|ln_f\.weight/.test(p.name)) for (let i = 0; i < p.size; i++) flat[p.offset + i] += 1;
  const B = int(1, 3);
  const T = int(2, cfg.block_size);
  const tokens = () => Int32Array.from({ length: B * T }, () => int(0, cfg.vocab_size - 1));
  return { cfg, table, flat, batch: { B, T, x: tokens(), y: tokens() } };
}

async function compare(seed: number, kernel: AttentionKernel, dropout = 0) {
  const { cfg, table, flat, batch } = randomSetup(seed, dropout);
  const model = new GPT(cfg, table, kernel);
  const names = table.params.map((p) => p.name);
  const tensors = table.params.map((p) => tf.tensor(flat.subarray(p.offset, p.offset + p.size), p.shape));
  const byName = new Map(names.map((n, i) => [n, tensors[i]]));
  const dropSeed = dropout > 0 ? 4242 : undefined;

  const grads = new Map<string, tf.Tensor>();
  const loss = await model.forwardBackward((n) => byName.get(n)!, batch, { training: dropout > 0, dropoutSeed: dropSeed }, grads);
  const oracle = tf.grads((...ps: tf.Tensor[]) => {
    const m = new Map(names.map((n, i) => [n, ps[i]]));
    const logits = model.logits((n) => m.get(n)!, batch.x, batch.B, batch.T, { dropSeed });
    return model.crossEntropy(logits, tf.tensor1d(batch.y, 'int32'), 1).loss;
  })(tensors);
  const refLoss = tf.tidy(() => model.crossEntropy(model.logits((n) => byName.get(n)!, batch.x, batch.B, batch.T, { dropSeed }), tf.tensor1d(batch.y, 'int32'), 1).loss);

  expect(Math.abs((await loss.data())[0] - (await refLoss.data())[0])).toBeLessThan(1e-5);
  for (let i = 0; i < names.length; i++) {
    const ours = await grads.get(names[i])!.data();
    const ref = await oracle[i].data();
    const scale = Math.max(1e-3, ...Array.from(ref, Math.abs));
    let diff = 0;
    for (let j = 0; j < ref.length; j++) diff = Math.max(diff, Math.abs(ours[j] - ref[j]));
    expect(diff / scale, `${names[i]} (config ${JSON.stringify(cfg)}, B ${batch.B}, T ${batch.T})`).toBeLessThan(1e-4);
  }
  tf.dispose([loss, refLoss, ...grads.values(), ...oracle, ...tensors]);
  model.dispose();
}

describe('per-block backward equals tfjs autodiff', () => {
  for (const kernel of ['matmul', 'conv'] as const) {
    it.each([1, 2, 3, 4, 5])(`random config %i, ${kernel} attention`, (seed) => compare(seed, kernel));
  }
  it.each([11, 12])('with dropout 0.3, random config %i', (seed) => compare(seed, 'matmul', 0.3));

  it('uses dropout masks only in training, and the same ones for the same seed', async () => {
    const { cfg, table, flat, batch } = randomSetup(7, 0.5);
    const model = new GPT(cfg, table);
    const ps = new Map(table.params.map((p) => [p.name, tf.tensor(flat.subarray(p.offset, p.offset + p.size), p.shape)]));
    const run = async (training: boolean, dropoutSeed: number) => {
      const grads = new Map<string, tf.Tensor>();
      const loss = await model.forwardBackward((n) => ps.get(n)!, batch, { training, dropoutSeed }, grads);
      const v = (await loss.data())[0];
      tf.dispose([loss, ...grads.values()]);
      return v;
    };
    const evalLoss = await run(false, 1);
    expect(await run(false, 2)).toBe(evalLoss);
    expect(await run(true, 1)).toBe(await run(true, 1));
    expect(await run(true, 1)).not.toBe(evalLoss);
    expect(await run(true, 1)).not.toBe(await run(true, 2));
    tf.dispose([...ps.values()]);
    model.dispose();
  });
});
