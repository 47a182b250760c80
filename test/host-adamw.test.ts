// The CPU backends' AdamW (src/train/host-adamw.ts) against the tfjs AdamW (src/train/optim.ts) bit for
// bit, its JavaScript fallback against its SIMD kernel, and its sum of squares against a plain one.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig } from '../src/model/config';
import { buildParamTable, initParams, paramViews } from '../src/model/params';
import { AdamW } from '../src/train/optim';
import { HostAdamW } from '../src/train/host-adamw';
import { mulberry32 } from '../src/model/params';

const cfg = makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16 });
const table = buildParamTable({ ...cfg, vocab_size: 65 });
const opts = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
const randomGrads = (seed: number) => {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: table.total }, () => (rand() * 2 - 1) * 0.05);
};

describe.each(['cpu', 'wasm'] as const)('HostAdamW on the %s backend', (backend) => {
  beforeAll(async () => {
    await initNodeBackend(backend);
  });

  it('equals the tfjs AdamW bit for bit over steps with weight decay on 2-D weights and a clip factor', async () => {
    const init = initParams(table, { ...cfg, vocab_size: 65 }, 3);
    const host = new HostAdamW(table, opts, init);
    expect(host.simd).toBe(true);
    const decay = new Set(table.params.filter((p) => p.decay).map((p) => p.name));
    const ref = new AdamW(opts, (n) => decay.has(n));
    let params = new Map(table.params.map((p) => [p.name, tf.tensor(init.subarray(p.offset, p.offset + p.size), p.shape)]));
    for (let step = 0; step < 3; step++) {
      const g = randomGrads(step);
      const grads = new Map([...paramViews(table, g)].map(([n, a]) => [n, tf.tensor(a, table.byName.get(n)!.shape)]));
      const [lr, clip] = [1e-3 * (step + 1), step === 1 ? 0.37 : 1];
      const scale = tf.scalar(clip);
      const next = ref.step(params, grads, lr, scale);
      await host.readGrads(grads);
      host.step(lr, clip);
      tf.dispose([scale, ...grads.values(), ...params.values()]);
      params = next;
    }
    for (const p of table.params) {
      const got = host.params.subarray(p.offset, p.offset + p.size);
      expect(got, p.name).toEqual(await params.get(p.name)!.data());
    }
    const st = await ref.state();
    for (const p of table.params) expect(host.m.subarray(p.offset, p.offset + p.size), p.name).toEqual(st.m.get(p.name));
    tf.dispose([...params.values()]);
    ref.dispose();
  });
});

describe('HostAdamW kernels', () => {
  it('the JavaScript fallback equals the SIMD kernel bit for bit, and the sum of squares a plain one', () => {
    const init = initParams(table, { ...cfg, vocab_size: 65 }, 5);
    const [simd, js] = [new HostAdamW(table, opts, init), new HostAdamW(table, opts, init, false)];
    expect(js.simd).toBe(false);
    for (let step = 0; step < 3; step++) {
      const g = randomGrads(10 + step);
      for (const h of [simd, js]) {
        h.grads.set(g);
        h.step(2e-3, 0.5);
      }
    }
    expect(simd.params).toEqual(js.params);
    expect(simd.v).toEqual(js.v);
    const plain = simd.grads.reduce((s, x) => s + x * x, 0);
    expect(Math.abs(simd.sumOfSquares() - plain) / plain).toBeLessThan(1e-12);
    expect(js.sumOfSquares()).toBeCloseTo(plain, 12);
  });
});
