// DDP and FSDP with real Web Workers in headless Chromium: 2 ranks x batch 2 train exactly like 1 rank
// x batch 4, on wasm (every transport) and once on WebGPU; FSDP workers hold only shards at rest. A run
// whose workers are killed and hung recovers (new Workers) and trains exactly like one without faults.

import { describe, expect, it } from 'vitest';
import { Coordinator, type DistOptions } from '../../src/parallel/coordinator';
import { spawnWebWorker } from '../../src/parallel/browser-spawn';
import { makeConfig, type BackendName } from '../../src/model/config';
import type { TransportKind } from '../../src/parallel/collectives';
import type { Injection } from '../../src/parallel/faults';

const text = (await (await fetch('/data/tinyshakespeare.txt')).text()).slice(0, 60_000);

async function run(backend: BackendName, dist: DistOptions, batch: number, steps: number) {
  const cfg = makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, batch_size: batch, backend, vocab_size: 65 });
  const c = await Coordinator.create(cfg, text, dist, spawnWebWorker);
  try {
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) losses.push((await c.trainStep()).loss);
    const params = [await c.exportParams(), ...(dist.strategy === 'ddp' ? [await c.ranks[1].api.exportParams()] : [])];
    const memory = await Promise.all(c.ranks.map((r) => r.api.memory()));
    return { losses, params, memory, backend: c.info.backend.name, numParams: c.info.numParams, recoveries: [...c.recoveries] };
  } finally {
    c.dispose();
  }
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

describe('DDP in real Workers', () => {
  it('is cross-origin isolated, so the shared transport is available', () => {
    expect(crossOriginIsolated).toBe(true);
  });

  const cases: [BackendName, TransportKind, 'ddp' | 'fsdp', number][] = [
    ['wasm', 'ring', 'ddp', 4], ['wasm', 'star', 'ddp', 4], ['wasm', 'shared', 'ddp', 4], ['webgpu', 'ring', 'ddp', 2],
    ['wasm', 'shared', 'fsdp', 4], ['webgpu', 'ring', 'fsdp', 2],
  ];
  it.each(cases)('%s, %s, %s: 2 workers x batch 2 equal 1 worker x batch 4', async (backend, transport, strategy, steps) => {
    const ref = await run(backend, { strategy: 'single', workers: 1, transport: 'ring', bucketMb: 25 }, 4, steps);
    const ddp = await run(backend, { strategy, workers: 2, transport, bucketMb: 0.02, shard: 'full' }, 2, steps);
    expect(ddp.backend).toBe(backend);
    for (let i = 0; i < steps; i++) expect(Math.abs(ddp.losses[i] - ref.losses[i])).toBeLessThan(1e-5);
    for (const p of ddp.params) expect(maxDiff(p, ref.params[0])).toBeLessThan(1e-5);
    if (strategy === 'ddp') expect(ddp.memory[0].numTensors).toBe(ddp.memory[1].numTensors);
    const full = 3 * 4 * ddp.numParams; // parameters, m and v of a whole replica
    for (const m of ddp.memory) {
      // a replica each: every parameter as a tensor, and m and v too on GPU backends (on wasm, AdamW keeps them on the host)
      if (strategy === 'ddp') expect(m.numBytes).toBeGreaterThanOrEqual(backend === 'wasm' ? full / 3 : full);
      else expect(m.numBytes).toBeLessThan(0.6 * full); // FSDP at rest: half of each, plus masks
    }
  });
});

describe('faults in real Workers', () => {
  it('wasm, ring, ddp: a killed and a hung worker are replaced; the losses and tensor counts equal a run without faults', async () => {
    const dist: DistOptions = { strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 0.02 };
    const deadlines = { factor: 10, floorMs: 1_500, firstMs: 1_500 }; // short enough for a test
    const inject: Injection[] = [{ kind: 'kill', rank: 1, step: 3 }, { kind: 'hang', rank: 0, step: 6 }];
    const clean = await run('wasm', { ...dist, faults: { deadlines } }, 2, 8);
    const faulty = await run('wasm', { ...dist, faults: { deadlines, inject } }, 2, 8);
    expect(clean.recoveries).toEqual([]);
    expect(faulty.recoveries.map((r) => [r.step, r.rank, r.cause])).toEqual([[3, 1, 'crash'], [6, 0, 'hang']]);
    for (const r of faulty.recoveries) {
      expect(r.restored_from).toMatch(/replica/);
      expect(r.replayed_steps).toBe(0);
      expect(r.detected_ms).toBeGreaterThan(0);
      expect(r.ms).toBeGreaterThan(0);
    }
    expect(faulty.recoveries[1].detected_ms).toBeGreaterThanOrEqual(deadlines.floorMs); // a hang is noticed at the deadline
    expect(faulty.losses).toEqual(clean.losses); // bit for bit: no step lost, none applied twice
    expect(faulty.params).toEqual(clean.params);
    // The new Workers hold what the old ones held: nothing leaked, nothing missing.
    expect(faulty.memory.map((m) => m.numTensors)).toEqual(clean.memory.map((m) => m.numTensors));
  });
});
