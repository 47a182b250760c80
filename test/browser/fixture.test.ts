// In headless Chromium, inside a real module Worker (the one the page uses): the llm.c fixtures on the
// wasm backend, on WebGPU (SwiftShader here: slow, but the WebGPU code path is the one real GPUs run)
// and on WebGL, each tensor held to its backend's relative tolerance (src/verify.ts). Both fixtures: the
// wide one (large weights, where a GELU or softmax slip shows) takes ~35 s on SwiftShader, the tiny ~15 s.

import { describe, expect, it } from 'vitest';
import * as Comlink from 'comlink';
import type { RankAPI } from '../../src/parallel/protocol';
import { toleranceFor } from '../../src/verify';
import tinyModel from '../fixtures/llmc-tiny/model.bin?url';
import tinyState from '../fixtures/llmc-tiny/state.bin?url';
import tinyExpected from '../fixtures/llmc-tiny/expected.json';
import wideModel from '../fixtures/llmc-wide/model.bin?url';
import wideState from '../fixtures/llmc-wide/state.bin?url';
import wideExpected from '../fixtures/llmc-wide/expected.json';

const bytes = async (url: string) => (await fetch(url)).arrayBuffer();

const tiny = { name: 'llmc-tiny', model: tinyModel, state: tinyState, adamw: tinyExpected.adamw };
const wide = { name: 'llmc-wide', model: wideModel, state: wideState, adamw: wideExpected.adamw };
const cases = [
  ...(['wasm', 'webgpu', 'webgl'] as const).map((backend) => ({ fx: tiny, backend })),
  ...(['wasm', 'webgpu', 'webgl'] as const).map((backend) => ({ fx: wide, backend })),
];

describe.each(cases)('llm.c fixture $fx.name in a Worker on $backend', ({ fx, backend }) => {
  it('matches logits, loss, every gradient and 10 AdamW losses', async () => {
    const worker = new Worker(new URL('../../workers/rank.worker.ts', import.meta.url), { type: 'module' });
    const api = Comlink.wrap<RankAPI>(worker);
    try {
      const tol = toleranceFor(backend);
      const r = await api.verifyLlmc(backend, await bytes(fx.model), await bytes(fx.state), fx.adamw);
      expect(r.backend).toBe(backend);
      expect(r.logits_rel, 'logits').toBeLessThanOrEqual(tol.logits);
      expect(r.loss_rel, 'loss').toBeLessThanOrEqual(tol.loss);
      for (const [p, e] of Object.entries(r.grads_rel)) expect(e, `grad ${p}`).toBeLessThanOrEqual(tol.grads);
      expect(r.adamw_rel!, 'AdamW losses').toBeLessThanOrEqual(tol.adamw);
      expect(r.ok).toBe(true);
      expect(await api.memory()).toMatchObject({ numTensors: 0 }); // verify frees everything it made
    } finally {
      worker.terminate();
    }
  });
});
