// The cost model: formulas against hand-computed values, and predicted bytes against the bytes the
// workers really send (in-process ranks), for every transport and strategy.

import { describe, expect, it } from 'vitest';
import { collectiveCost, drift, fitAlphaBeta, flopsPerToken, predict, workerFlops, type Calibration } from '../src/parallel/costmodel';
import { makeConfig } from '../src/model/config';
import { assignBuckets } from '../src/parallel/layout';
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
    expect((fsdp.params + fsdp.grads) / (8 * P)).toBeCloseTo(0.25, 3);
    expect(fsdp.optimizer / (8 * P)).toBeGreaterThanOrEqual(0.25); // m and v of the shards, and the weight-decay masks
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
    // the lag at each point the workers meet: the bucket all-reduce and "every rank ready"
    expect(probed.sync_points).toBe(assignBuckets(buildParamTable(cfg), 25 * 2 ** 20).length + 1);
    expect(probed.step_ms).toBeCloseTo(probed.compute_ms + probed.comm_ms + probed.sync_points * 7, 9);
    const four = predict(cfg, { ...ddp, workers: 4 }, { ...cal, concurrent: { workers: 2, flops: 10e9, stragglerMs: 7 } });
    expect(four.compute_ms).toBe(plain.compute_ms); // a probe of 2 says nothing about 4 on a GPU (no cores given)
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

  it('fits alpha and beta back from timings made with them, and reports its own error', () => {
    for (const kind of ['ring', 'star', 'shared'] as const) {
      const samples = [1e5, 1e6, 4e6].map((bytes) => ({ bytes, seconds: collectiveCost(kind, 'all-reduce', bytes, 4, 2e-4, 3e9).seconds }));
      const fit = fitAlphaBeta(kind, 4, samples);
      expect(fit.alpha).toBeCloseTo(2e-4, 9);
      expect(fit.beta / 3e9).toBeCloseTo(1, 6);
      expect(fit.error).toBeLessThan(1e-9);
      expect(fit.ordered).toBe(true);
    }
    // a disturbed timing: the 4 MB all-reduce ran faster than the 1 MB one; the fit says so
    const bad = fitAlphaBeta('ring', 2, [{ bytes: 2 ** 16, seconds: 2e-4 }, { bytes: 2 ** 20, seconds: 2e-3 }, { bytes: 2 ** 22, seconds: 1.5e-3 }]);
    expect(bad.ordered).toBe(false);
    expect(bad.error).toBeGreaterThan(0.1);
    expect(bad.alpha).toBeGreaterThanOrEqual(0);
    expect(bad.beta).toBeGreaterThan(0);
  });

  it('fixed costs: the coordinator\'s round trips per step, two more and the copied part with buddy copies; a sync point per FSDP gather', () => {
    const cfg = makeConfig('tiny', { vocab_size: 65 });
    const c: Calibration = { ...cal, stepOverheadMs: 3, hostCopy: { upload: 1e9, readback: 1e9 }, concurrent: { workers: 2, flops: 10e9, stragglerMs: 2 } };
    const ddp = predict(cfg, { strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25 }, c);
    expect(ddp.fixed_ms).toBe(3);
    const full = predict(cfg, { strategy: 'fsdp', shard: 'full', workers: 2, transport: 'ring', bucketMb: 25 }, c);
    const P = buildParamTable(cfg).total;
    expect(full.memory.buddy).toBeGreaterThanOrEqual(12 * P / 2);
    expect(full.fixed_ms).toBeCloseTo(6 + (full.memory.buddy / 1e9) * 1000, 9);
    expect(predict(cfg, { strategy: 'fsdp', shard: 'full', workers: 2, transport: 'ring', bucketMb: 25, buddies: false }, c).fixed_ms).toBe(3);
    // tiny: the root, 2 blocks gathered twice (full) or once (grad_op), the scatters, the scalars, the gate
    expect(full.sync_points).toBe(1 + 4 + 3);
    expect(predict(cfg, { strategy: 'fsdp', shard: 'grad_op', workers: 2, transport: 'ring', bucketMb: 25 }, c).sync_points).toBe(1 + 2 + 3);
    expect(full.wait_ms).toBeCloseTo(8 * 2, 9);
    expect(full.step_ms).toBeCloseTo(full.compute_ms + full.comm_ms + full.copy_ms + full.wait_ms + full.fixed_ms, 9);
  });

  it('never predicts more throughput than the cores give: 8 CPU workers on 2 cores share what the probe of 2 measured', () => {
    const cfg = makeConfig('tiny', { vocab_size: 65, backend: 'wasm' });
    const c: Calibration = { ...cal, flops: 4e9, cores: 2, concurrent: { workers: 2, flops: 2.5e9, stragglerMs: 1 } };
    const at = (n: number) => predict(cfg, { strategy: 'ddp', workers: n, transport: 'ring', bucketMb: 25 }, c);
    const single = predict(cfg, { strategy: 'single', workers: 1, transport: 'ring', bucketMb: 25 }, c);
    const capacity = (2 * 2.5e9) / flopsPerToken(cfg); // tokens/s of 2 workers computing at once
    for (const n of [2, 3, 4, 8]) expect(at(n).tokens_per_s).toBeLessThanOrEqual(capacity * 1.0001);
    expect(single.tokens_per_s).toBeLessThanOrEqual(4e9 / flopsPerToken(cfg));
    expect(workerFlops(c, 8)).toBeCloseTo(5e9 / 8, 3);
    expect(workerFlops({ ...c, concurrent: undefined }, 8)).toBeCloseTo(8e9 / 8, 3);
  });

  it('drift: a run more than 20% from its prediction is flagged', () => {
    expect(drift(100, 115)).toMatchObject({ drifted: false });
    expect(drift(100, 125).drifted).toBe(true);
    expect(drift(100, 75).drifted).toBe(true);
    expect(drift(100, 125).error).toBeCloseTo(0.25, 9);
  });

  it('memory on one basis: FSDP counts its masks, buddy copy, gathered units (one block fewer without prefetch) and buffers; DDP its buckets', () => {
    const cfg = makeConfig('tiny', { vocab_size: 65, backend: 'wasm' });
    const table = buildParamTable(cfg);
    const [root, b1] = table.units.map((u) => 4 * u.size);
    const on = predict(cfg, { strategy: 'fsdp', shard: 'full', workers: 2, transport: 'ring', bucketMb: 25 }, cal).memory;
    const off = predict(cfg, { strategy: 'fsdp', shard: 'full', workers: 2, transport: 'ring', bucketMb: 25, prefetch: false }, cal).memory;
    expect(on.gathered_peak).toBe(root + 2 * b1); // tiny has 2 blocks: with prefetch, all of it
    expect(off.gathered_peak).toBe(root + b1);
    expect(on.optimizer).toBeGreaterThan(2 * on.params); // m, v and the masks
    expect(on.total).toBe(on.params + on.grads + on.optimizer + on.buddy + on.gathered_peak + on.activations_peak + on.comm_buffers);
    const ddp = predict(cfg, { strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25 }, cal).memory;
    expect(ddp.comm_buffers).toBe(4 * table.total + 4);
    expect(ddp.params + ddp.grads + ddp.optimizer).toBe(20 * table.total);
    expect(on.params + on.grads + on.optimizer + on.buddy).toBeLessThan(0.75 * (ddp.params + ddp.grads + ddp.optimizer)); // what FSDP saves at N = 2
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
