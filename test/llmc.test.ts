// The llm.c reference: from the same weights, this GPT-2 must give llm.c's logits, loss, every
// gradient and the losses of 10 AdamW steps, on every backend claimed to work in Node. Two fixtures:
// llmc-tiny (small weights, GELU nearly linear) and llmc-wide (large weights, T < block_size), where a
// slip in GELU's or softmax's derivative shows. Each tensor is held to its backend's relative tolerance.

import { describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { toleranceFor, verifyLlmc } from '../src/verify';
import { readLlmcModel, readLlmcState, CheckpointError } from '../src/model/llmc';
import { loadFixture } from './helpers';

const fixtures = [
  { name: 'llmc-tiny', n_layer: 2 },
  { name: 'llmc-wide', n_layer: 3 },
];

describe.each(fixtures.flatMap((f) => (['cpu', 'wasm'] as const).map((backend) => ({ ...f, backend }))))(
  'llm.c fixture $name on $backend',
  ({ name, n_layer, backend }) => {
    it('matches logits, loss, every gradient and 10 AdamW losses', async () => {
      const fx = loadFixture(name);
      expect((await initNodeBackend(backend)).name).toBe(backend);
      const tol = toleranceFor(backend);
      const r = await verifyLlmc(fx.model, fx.state, fx.adamw);
      expect(r.backend).toBe(backend);
      expect(r.tolerance).toEqual(tol);
      expect(r.logits_rel, 'logits').toBeLessThanOrEqual(tol.logits);
      expect(r.loss_rel, 'loss').toBeLessThanOrEqual(tol.loss);
      expect(Object.keys(r.grads_rel)).toHaveLength(4 + 12 * n_layer); // every parameter is compared
      for (const [p, e] of Object.entries(r.grads_rel)) expect(e, `grad ${p}`).toBeLessThanOrEqual(tol.grads);
      expect(r.adamw_losses).toHaveLength(10);
      expect(r.adamw_rel!, 'AdamW losses').toBeLessThanOrEqual(tol.adamw);
      expect(r.ok).toBe(true);
    });
  },
);

describe('llm.c checkpoint reader', () => {
  const fx = loadFixture();

  it('reads the fixture shape', () => {
    const m = readLlmcModel(fx.model);
    expect(m.config).toMatchObject({ n_layer: 2, n_head: 4, n_embd: 64, block_size: 32, vocab_size: 65 });
    expect(m.paddedVocab).toBe(128);
  });

  it('reads a state whose T is shorter than block_size (llmc-wide: T 40, block_size 48)', () => {
    const wide = loadFixture('llmc-wide');
    const m = readLlmcModel(wide.model);
    expect(m.config).toMatchObject({ n_layer: 3, n_head: 4, n_embd: 64, block_size: 48, vocab_size: 65 });
    const s = readLlmcState(wide.state, m);
    expect([s.B, s.T, s.logits.length]).toEqual([2, 40, 2 * 40 * 65]);
  });

  it('rejects a truncated file, a wrong magic and a non-llm.c file with specific messages', () => {
    expect(() => readLlmcModel(fx.model.slice(0, fx.model.byteLength - 4))).toThrow(/truncated or corrupt/);
    const bad = fx.model.slice(0);
    new Int32Array(bad)[0] = 123;
    expect(() => readLlmcModel(bad)).toThrow(/magic 123/);
    expect(() => readLlmcModel(new ArrayBuffer(10))).toThrow(CheckpointError);
  });
});
