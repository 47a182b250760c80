// The training loop: learning, invariants (accumulation), memory discipline, NaN safety, checkpoints.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer, TrainingError } from '../src/train/trainer';
import { Session, type TrainEvent } from '../src/train/session';
import { decodeCheckpoint, encodeCheckpoint } from '../src/train/checkpoint';
import { initParams } from '../src/model/params';
import { mapMaxDiff, maxAbsDiff, shakespeare } from './helpers';

const text = shakespeare.slice(0, 200_000);
const tok = charTokenizer(text);

function trainer(overrides: Record<string, unknown> = {}, init?: Float32Array): Trainer {
  const cfg: RunConfig = { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, eval_iters: 2, ...overrides }), vocab_size: tok.vocabSize };
  return new Trainer(cfg, makeDataset(text, tok, cfg.block_size), init);
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('Trainer', () => {
  it('overfits one batch (loss falls below a quarter of its start)', async () => {
    const t = trainer({ lr: 3e-3, warmup_iters: 0, weight_decay: 0, max_iters: 150, lr_decay_iters: 150 });
    const fixed = t.microBatches();
    t.microBatches = () => fixed; // the same batch every step
    const losses: number[] = [];
    for (let i = 0; i < 150; i++) losses.push((await t.trainStep()).loss);
    expect(losses[0]).toBeGreaterThan(3); // ~ln(65) at init
    expect(losses[149]).toBeLessThan(losses[0] / 4);
    t.dispose();
  });

  it('does not grow the tensor count across steps, evals and samples (with accumulation and dropout)', async () => {
    const t = trainer({ grad_accum: 2, dropout: 0.1 });
    await t.trainStep();
    await t.evalLoss('val', 1);
    await t.sample('', 3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await t.trainStep();
    await t.evalLoss('val', 1);
    await t.sample('Th', 3);
    expect(tf.memory().numTensors).toBe(before);
    t.dispose();
  });

  it('frees every tensor it made on dispose', async () => {
    const start = tf.memory().numTensors;
    const t = trainer();
    await t.trainStep();
    t.dispose();
    expect(tf.memory().numTensors).toBe(start);
  });

  it('gradient accumulation k x b equals batch k*b (loss and every parameter after 3 steps)', async () => {
    const a = trainer({ batch_size: 4, grad_accum: 2 });
    const b = trainer({ batch_size: 8, grad_accum: 1 });
    for (let i = 0; i < 3; i++) {
      const [la, lb] = [(await a.trainStep()).loss, (await b.trainStep()).loss];
      expect(Math.abs(la - lb)).toBeLessThan(1e-5);
    }
    expect(await mapMaxDiff(a.params, b.params)).toBeLessThan(1e-5);
    a.dispose();
    b.dispose();
  });

  it('gives the same losses for the same seed and different ones for another seed', async () => {
    const run = async (seed: number) => {
      const t = trainer({ seed });
      const l = [(await t.trainStep()).loss, (await t.trainStep()).loss];
      t.dispose();
      return l;
    };
    expect(await run(5)).toEqual(await run(5));
    expect(await run(5)).not.toEqual(await run(6));
  });

  it('stops on a NaN loss before the update, leaving the parameters untouched', async () => {
    const cfg = trainer().cfg;
    const init = initParams(trainer().table, cfg, 1);
    init[3] = NaN; // a broken weight in wte
    const t = trainer({}, init);
    await expect(t.trainStep()).rejects.toThrow(TrainingError);
    await expect(t.trainStep()).rejects.toThrow(/update was skipped.*Lower lr/);
    expect(t.step).toBe(0);
    const after = await t.exportParams();
    expect(Number.isNaN(after[3])).toBe(true);
    after[3] = init[3] = 0;
    expect(maxAbsDiff(after, init)).toBe(0);
    t.dispose();
  });
});

describe('checkpoints', () => {
  it('resume continues exactly: same losses as an uninterrupted run', async () => {
    const a = trainer();
    for (let i = 0; i < 3; i++) await a.trainStep();
    const buf = encodeCheckpoint(await a.toCheckpoint({ losses: [1, 2, 3] }));
    const b = trainer();
    const ck = decodeCheckpoint(buf);
    expect(ck.header.step).toBe(3);
    expect(ck.header.losses).toEqual([1, 2, 3]);
    b.restore(ck);
    for (let i = 0; i < 2; i++) expect((await b.trainStep()).loss).toBe((await a.trainStep()).loss);
    a.dispose();
    b.dispose();
  });

  it('rejects damaged files with specific messages', async () => {
    const a = trainer();
    const buf = encodeCheckpoint(await a.toCheckpoint());
    a.dispose();
    expect(() => decodeCheckpoint(new ArrayBuffer(40))).toThrow(/not a checkpoint of this trainer/);
    expect(() => decodeCheckpoint(buf.slice(0, buf.byteLength - 8))).toThrow(/truncated or corrupt/);
    const corrupt = buf.slice(0);
    new Uint8Array(corrupt)[16] = 0x78; // garble the JSON header
    expect(() => decodeCheckpoint(corrupt)).toThrow(/header/);
  });
});

describe('Session', () => {
  it('runs to max_iters with evals and samples, and pause/resume/stop work between steps', async () => {
    const t = trainer({ max_iters: 6 });
    const events: TrainEvent[] = [];
    const s = new Session(t, { maxIters: 6, evalInterval: 3, evalIters: 1, sampleInterval: 3, sampleTokens: 5 }, (e) => {
      events.push(e);
      if (e.type === 'step' && e.stats.step === 2) s.pause();
    });
    const done = s.run();
    await new Promise((r) => setTimeout(r, 50));
    expect(s.state).toBe('paused');
    expect(t.step).toBe(2);
    s.resume();
    expect(await done).toBe('done');
    expect(t.step).toBe(6);
    expect(events.filter((e) => e.type === 'eval').map((e) => (e as { step: number }).step)).toEqual([3, 6]);
    expect(events.filter((e) => e.type === 'sample')).toHaveLength(2);
    const last = events.filter((e) => e.type === 'step').at(-1)! as Extract<TrainEvent, { type: 'step' }>;
    expect(last.etaMs).toBe(0);
    expect(last.tokensPerSec).toBeGreaterThan(0);
    t.dispose();
  });
});
