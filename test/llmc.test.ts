// The llm.c reference: from the same weights, this GPT-2 must give llm.c's logits, loss, every
// gradient and the losses of 10 AdamW steps, on every backend claimed to work in Node.

import { describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { TOLERANCE, verifyLlmc } from '../src/verify';
import { readLlmcModel, CheckpointError } from '../src/model/llmc';
import { loadFixture } from './helpers';

const fx = loadFixture();

describe.each(['cpu', 'wasm'] as const)('llm.c fixture on %s', (backend) => {
  it('matches logits, loss, every gradient and 10 AdamW losses', async () => {
    expect((await initNodeBackend(backend)).name).toBe(backend);
    const r = await verifyLlmc(fx.model, fx.state, fx.adamw);
    expect(r.backend).toBe(backend);
    expect(r.logits_maxdiff).toBeLessThan(TOLERANCE.logits);
    expect(Math.abs(r.loss - r.loss_ref)).toBeLessThan(TOLERANCE.loss);
    expect(Object.keys(r.grads)).toHaveLength(4 + 12 * 2); // every parameter of a 2-layer GPT-2 is compared
    for (const [name, d] of Object.entries(r.grads)) expect(d, name).toBeLessThan(TOLERANCE.grads);
    expect(r.adamw_losses).toHaveLength(10);
    expect(r.adamw_maxdiff!).toBeLessThan(TOLERANCE.adamw);
    expect(r.ok).toBe(true);
  });
});

describe('llm.c checkpoint reader', () => {
  it('reads the fixture shape', () => {
    const m = readLlmcModel(fx.model);
    expect(m.config).toMatchObject({ n_layer: 2, n_head: 4, n_embd: 64, block_size: 32, vocab_size: 65 });
    expect(m.paddedVocab).toBe(128);
  });

  it('rejects a truncated file, a wrong magic and a non-llm.c file with specific messages', () => {
    expect(() => readLlmcModel(fx.model.slice(0, fx.model.byteLength - 4))).toThrow(/truncated or corrupt/);
    const bad = fx.model.slice(0);
    new Int32Array(bad)[0] = 123;
    expect(() => readLlmcModel(bad)).toThrow(/magic 123/);
    expect(() => readLlmcModel(new ArrayBuffer(10))).toThrow(CheckpointError);
  });
});
