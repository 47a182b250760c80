// In headless Chromium, inside a real module Worker (the one the page uses): the llm.c fixture on the
// wasm backend, on WebGPU (SwiftShader here: slow, but the WebGPU code path is the one real GPUs run)
// and on WebGL.

import { describe, expect, it } from 'vitest';
import * as Comlink from 'comlink';
import type { RankAPI } from '../../src/parallel/protocol';
import { TOLERANCE } from '../../src/verify';
import modelUrl from '../fixtures/llmc-tiny/model.bin?url';
import stateUrl from '../fixtures/llmc-tiny/state.bin?url';
import expected from '../fixtures/llmc-tiny/expected.json';

const bytes = async (url: string) => (await fetch(url)).arrayBuffer();

describe.each(['wasm', 'webgpu', 'webgl'] as const)('llm.c fixture in a Worker on %s', (backend) => {
  it('matches logits, loss, every gradient and 10 AdamW losses', async () => {
    const worker = new Worker(new URL('../../workers/rank.worker.ts', import.meta.url), { type: 'module' });
    const api = Comlink.wrap<RankAPI>(worker);
    try {
      const r = await api.verifyLlmc(backend, await bytes(modelUrl), await bytes(stateUrl), expected.adamw);
      expect(r.backend).toBe(backend);
      expect(r.logits_maxdiff).toBeLessThan(TOLERANCE.logits);
      expect(Math.abs(r.loss - r.loss_ref)).toBeLessThan(TOLERANCE.loss);
      for (const [name, d] of Object.entries(r.grads)) expect(d, name).toBeLessThan(TOLERANCE.grads);
      expect(r.adamw_maxdiff!).toBeLessThan(TOLERANCE.adamw);
      expect(r.ok).toBe(true);
      expect(await api.memory()).toMatchObject({ numTensors: 0 }); // verify frees everything it made
    } finally {
      worker.terminate();
    }
  });
});
