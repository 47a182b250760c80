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

describe('model parallelism', () => {
  const cfg = makeConfig('shakespeare-cpu', { vocab_size: 65, backend: 'webgpu' }); // L 4, H 4, C 128, B 12, T 64
  const plan = (strategy: 'tp' | 'pp', workers: number, extra: object = {}) => ({ strategy, workers, transport: 'ring' as const, bucketMb: 25, ...extra });

  it('TP: 4 ring all-reduces of a (B, T, C) activation per block per micro-batch, and the norm', () => {
    const S = 4 * 12 * 64 * 128;
    const p = predict({ ...cfg, grad_accum: 2 }, plan('tp', 4), cal);
    expect(p.bytes_per_rank).toBeCloseTo(4 * 4 * 2 * 1.5 * S + 1.5 * 4 * 4, 6); // the norm: one float per rank
    // each worker holds 1/4 of the split weights and all of the rest; one worker holds it all
    const single = predict(cfg, { ...plan('tp', 1), strategy: 'single' }, cal).memory;
    const tp = p.memory;
    expect(tp.params).toBeLessThan(single.params);
    expect(tp.params).toBeGreaterThan(single.params / 4); // wte, wpe and the LayerNorms stay whole
    expect(tp.activations_peak).toBeLessThan(single.activations_peak);
    // less compute per worker than one worker's, never less than a quarter
    const one = predict(cfg, { ...plan('tp', 1), strategy: 'single' }, cal).compute_ms;
    expect(p.compute_ms / 2).toBeLessThan(one); // (grad_accum 2: twice the tokens)
    expect(p.compute_ms / 2).toBeGreaterThan(one / 4);
  });

  it('PP: the bubble is (N-1)/(M+N-1); more micro-batches shrink it; 1F1B holds fewer activations than GPipe', () => {
    const few = predict(cfg, plan('pp', 4, { microbatches: 1, schedule: 'gpipe' }), cal);
    const many = predict(cfg, plan('pp', 4, { microbatches: 12, schedule: 'gpipe' }), cal);
    expect(few.bubble).toBeCloseTo(3 / 4, 12);
    expect(many.bubble).toBeCloseTo(3 / 15, 12);
    expect(many.step_ms).toBeLessThan(few.step_ms);
    const onefb = predict(cfg, plan('pp', 2, { microbatches: 12, schedule: '1f1b' }), cal);
    const gpipe = predict(cfg, plan('pp', 2, { microbatches: 12, schedule: 'gpipe' }), cal);
    expect(onefb.memory.activations_peak).toBeLessThan(gpipe.memory.activations_peak / 4); // 2 in flight against 12
    expect(onefb.bytes_per_rank).toBe(gpipe.bytes_per_rank); // the same messages, in another order
  });

  it('what moves least: PP sends activations at stage boundaries only, DDP the whole gradient, TP activations per block', () => {
    const big = makeConfig('gpt2', { backend: 'webgpu' });
    const bytes = (p: object) => predict(big, { transport: 'ring', bucketMb: 25, ...p } as never, cal).bytes_per_rank;
    const pp = bytes({ strategy: 'pp', workers: 4, microbatches: 4 });
    expect(pp).toBeLessThan(bytes({ strategy: 'ddp', workers: 4 }));
    expect(pp).toBeLessThan(bytes({ strategy: 'tp', workers: 4 }));
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
