// Tensor and pipeline parallelism in real Web Workers (headless Chromium): 2 workers train exactly like
// one worker with the same global batch, on wasm and once on WebGPU, and a checkpoint is put together
// from both workers' parts. (Node worker_threads: test/model-parallel.test.ts; the full matrix in one
// thread: test/tp.test.ts, test/pp.test.ts.)

import { describe, expect, it } from 'vitest';
import { Coordinator, DIST_DEFAULTS, type DistOptions } from '../../src/parallel/coordinator';
import { spawnWebWorker } from '../../src/parallel/browser-spawn';
import { makeConfig, type BackendName } from '../../src/model/config';
import { decodeCheckpoint } from '../../src/train/checkpoint';

const text = (await (await fetch('/data/tinyshakespeare.txt')).text()).slice(0, 60_000);

async function run(backend: BackendName, dist: Partial<DistOptions>, steps: number) {
  const cfg = makeConfig('tiny', { n_layer: 2, n_head: 4, n_embd: 32, block_size: 16, batch_size: 4, backend, vocab_size: 65 });
  const c = await Coordinator.create(cfg, text, { ...DIST_DEFAULTS, ...dist } as DistOptions, spawnWebWorker);
  try {
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) losses.push((await c.trainStep()).loss);
    const checkpoint = decodeCheckpoint(await c.exportCheckpoint());
    return { losses, params: await c.exportParams(), checkpoint, backend: c.info.backend.name };
  } finally {
    c.dispose();
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

describe('tensor and pipeline parallelism in real Workers', () => {
  const cases: [BackendName, Partial<DistOptions>, number][] = [
    ['wasm', { strategy: 'tp', workers: 2 }, 3],
    ['wasm', { strategy: 'pp', workers: 2, microbatches: 2, schedule: '1f1b' }, 3],
    ['webgpu', { strategy: 'pp', workers: 2, microbatches: 2, schedule: 'gpipe' }, 2],
    ['webgpu', { strategy: 'tp', workers: 2 }, 1], // (SwiftShader is slow: one step checks forward, backward and the update)
  ];
  it.each(cases)('%s, %o: 2 workers equal 1 worker with the same batch', async (backend, dist, steps) => {
    const ref = await run(backend, { strategy: 'single', workers: 1 }, steps);
    const got = await run(backend, { transport: 'ring', ...dist }, steps);
    expect(got.backend).toBe(backend);
    for (let i = 0; i < steps; i++) expect(Math.abs(got.losses[i] - ref.losses[i]), `loss of step ${i + 1}`).toBeLessThan(1e-5);
    expect(maxDiff(got.params, ref.params)).toBeLessThan(1e-5);
    expect(got.checkpoint.header.step).toBe(steps);
    expect(maxDiff(got.checkpoint.params, ref.params)).toBeLessThan(1e-5);
  });
});
