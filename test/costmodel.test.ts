// The cost model: formulas against hand-computed values, and predicted bytes against the bytes the
// workers really send (in-process ranks), for every transport and strategy.

import { describe, expect, it } from 'vitest';
import { collectiveCost, fitAlphaBeta, flopsPerToken, predict, type Calibration } from '../src/parallel/costmodel';
import { makeConfig } from '../src/model/config';
import { buildParamTable } from '../src/model/params';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { initNodeBackend } from '../src/backend/node';
import { charTokenizer } from '../src/data/tokenizer';
import { shakespeare } from './helpers';

const cal: Calibration = { flops: 20e9, alpha: { ring: 1e-4, star: 1e-4, shared: 1e-5 }, beta: { ring: 1e9, star: 1e9, shared: 4e9 } };

describe('formulas', () => {
  it('FLOPs per token: 6N + 12*L*H*Q*T with N excluding wpe (nanoGPT)', () => {
    const cfg = makeConfig('shakespeare-cpu', { vocab_size: 65 });
    // N = 809,856 - 64*128 = 801,664; 6N = 4,809,984; 12*4*4*32*64 = 393,216
    expect(flopsPerToken(cfg)).toBe(5_203_200);
  });

  it('ring, star and shared collectives: time and bytes per rank', () => {
    const S = 1e6;
    const ring = collectiveCost('ring', 'all-reduce', S, 4, 1e-4, 1e9);
    expect(ring.seconds).toBeCloseTo(2 * (3e-4 + 0.75e-3), 12);
    expect(ring.bytes).toBe(1.5e6);
    expect(collectiveCost('ring', 'reduce-scatter', S, 4, 1e-4, 1e9).seconds).toBeCloseTo(3e-4 + 0.75e-3, 12);
    const star = collectiveCost('star', 'all-reduce', S, 4, 1e-4, 1e9);
    expect(star.seconds).toBeCloseTo(2e-4 + (4 * 2e6) / 1e9, 12);
    expect(star.bytes).toBe(1e6);
    expect(collectiveCost('shared', 'all-gather', S, 4, 1e-5, 4e9).bytes).toBe(2.5e5);
    expect(collectiveCost('ring', 'all-reduce', S, 1, 1e-4, 1e9)).toEqual({ seconds: 0, bytes: 0 });
  });

  it('memory: 16 bytes per parameter for DDP (20 on CPU backends, with the master copy), 16/n plus gathered units for FULL_SHARD', () => {
    const cfg = makeConfig('gpt2', { backend: 'webgpu' });
    const P = buildParamTable(cfg).total;
    const ddp = predict(cfg, { strategy: 'ddp', workers: 4, transport: 'ring', bucketMb: 25 }, cal).memory;
    expect(ddp.params + ddp.grads + ddp.optimizer).toBe(16 * P);
    const onWasm = predict({ ...cfg, backend: 'wasm' }, { strategy: 'ddp', workers: 4, transport: 'ring', bucketMb: 25 }, cal).memory;
    expect(onWasm.params + onWasm.grads + onWasm.optimizer).toBe(20 * P);
    const fsdp = predict(cfg, { strategy: 'fsdp', workers: 4, transport: 'ring', bucketMb: 25, shard: 'full' }, cal).memory;
    expect((fsdp.params + fsdp.grads + fsdp.optimizer) / (16 * P)).toBeCloseTo(0.25, 3);
    const block = buildParamTable(cfg).units[1].size * 4;
    expect(fsdp.gathered_peak).toBeGreaterThan(2 * block);
  });

  it('compute scales with tokens; more workers add communication', () => {
    const cfg = makeConfig('shakespeare-cpu', { vocab_size: 65 });
    const one = predict(cfg, { strategy: 'single', workers: 1, transport: 'ring', bucketMb: 25 }, cal);
    expect(one.compute_ms).toBeCloseTo((12 * 64 * 5_203_200) / 20e9 * 1000, 9);
    expect(one.comm_ms).toBe(0);
    const two = predict(cfg, { strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25 }, cal);
    expect(two.compute_ms).toBe(one.compute_ms);
    expect(two.comm_ms).toBeGreaterThan(0);
    expect(two.tokens_per_s).toBeGreaterThan(one.tokens_per_s);
  });

  it('uses a probe of N workers computing at once: its FLOP/s and its straggler gap', () => {
    const cfg = makeConfig('shakespeare-cpu', { vocab_size: 65 });
    const ddp = { strategy: 'ddp' as const, workers: 2, transport: 'ring' as const, bucketMb: 25 };
    const plain = predict(cfg, ddp, cal);
    const probed = predict(cfg, ddp, { ...cal, concurrent: { workers: 2, flops: 10e9, stragglerMs: 7 } });
    expect(probed.compute_ms).toBeCloseTo(plain.compute_ms * 2, 9); // half the FLOP/s
    expect(probed.step_ms).toBeCloseTo(probed.compute_ms + probed.comm_ms + 7, 9);
    const four = predict(cfg, { ...ddp, workers: 4 }, { ...cal, concurrent: { workers: 2, flops: 10e9, stragglerMs: 7 } });
    expect(four.compute_ms).toBe(plain.compute_ms); // a probe of 2 says nothing about 4
  });

  it('adds host copies: DDP reads every gradient back and uploads the averaged ones', () => {
    const cfg = makeConfig('shakespeare-cpu', { vocab_size: 65 });
    const P = buildParamTable(cfg).total;
    const ddp = { strategy: 'ddp' as const, workers: 2, transport: 'ring' as const, bucketMb: 25 };
    const p = predict(cfg, ddp, { ...cal, hostCopy: { upload: 2e9, readback: 1e9 } });
    expect(p.copy_ms).toBeCloseTo((4 * P / 1e9 + 4 * P / 2e9) * 1000, 9);
    expect(p.step_ms).toBeCloseTo(p.compute_ms + p.comm_ms + p.copy_ms, 9);
    expect(predict(cfg, ddp, cal).copy_ms).toBe(0); // not calibrated: not counted
    const single = predict(cfg, { ...ddp, strategy: 'single', workers: 1 }, { ...cal, hostCopy: { upload: 2e9, readback: 1e9 } });
    expect(single.copy_ms).toBe(0); // one worker keeps everything in the backend
  });

  it('fits alpha and beta back from timings made with them', () => {
    for (const kind of ['ring', 'star', 'shared'] as const) {
      const samples = [1e5, 1e6, 4e6].map((bytes) => ({ bytes, seconds: collectiveCost(kind, 'all-reduce', bytes, 4, 2e-4, 3e9).seconds }));
      const fit = fitAlphaBeta(kind, 4, samples);
      expect(fit.alpha).toBeCloseTo(2e-4, 9);
      expect(fit.beta / 3e9).toBeCloseTo(1, 6);
    }
  });
});

describe('predicted bytes equal the bytes workers send', () => {
  const text = shakespeare.slice(0, 50_000);
  const cfg = { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, batch_size: 2, backend: 'wasm' }), vocab_size: charTokenizer(text).vocabSize };
  const cases: DistOptions[] = [
    { strategy: 'ddp', workers: 3, transport: 'ring', bucketMb: 0.01 },
    { strategy: 'ddp', workers: 2, transport: 'star', bucketMb: 25 },
    { strategy: 'ddp', workers: 4, transport: 'shared', bucketMb: 25 },
    { strategy: 'fsdp', workers: 4, transport: 'ring', bucketMb: 25, shard: 'full' },
    { strategy: 'fsdp', workers: 2, transport: 'ring', bucketMb: 25, shard: 'grad_op' },
    { strategy: 'fsdp', workers: 3, transport: 'star', bucketMb: 25, shard: 'full' },
    { strategy: 'fsdp', workers: 2, transport: 'shared', bucketMb: 25, shard: 'full' },
  ];
  it.each(cases)('%o', async (dist) => {
    const c = await Coordinator.create(cfg, text, dist, spawnInProcess(initNodeBackend));
    const s = await c.trainStep();
    c.dispose();
    const predicted = predict(cfg, dist, cal).bytes_per_rank;
    for (const r of s.perRank) expect(r.bytesSent, `predicted ${predicted}`).toBeCloseTo(predicted, -2); // chunk rounding
  });
});
