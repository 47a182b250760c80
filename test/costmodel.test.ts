// The cost model: formulas against hand-computed values, and predicted bytes against the bytes the
// workers really send (in-process ranks), for every transport and strategy.

import { describe, expect, it } from 'vitest';
import { collectiveCost, drift, fitAlphaBeta, flopsPerToken, perTransport, predict, wifiCalibration, wifiScenario, workerFlops, type Calibration } from '../src/parallel/costmodel';
import { makeConfig } from '../src/model/config';
import { assignBuckets } from '../src/parallel/layout';
import { buildParamTable } from '../src/model/params';
import { Coordinator, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { initNodeBackend } from '../src/backend/node';
import { charTokenizer } from '../src/data/tokenizer';
import { shakespeare } from './helpers';

const cal: Calibration = { flops: 20e9, alpha: { ...perTransport(1e-4), shared: 1e-5 }, beta: { ...perTransport(1e9), shared: 4e9 } };

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

describe('DiLoCo and classroom Wi-Fi', () => {
  const cfg = makeConfig('shakespeare-cpu', { vocab_size: 65 });
  const P = buildParamTable(cfg).total; // 809,856
  const plan = (strategy: 'ddp' | 'diloco', workers: number, extra: object = {}) => ({ strategy, workers, transport: 'ring' as const, bucketMb: 25, ...extra });

  it('sends DDP\'s bytes / H: 2(N-1)/N x P x bytes per value / H on the ring (fp32, fp16, int8), and computes as DDP', () => {
    const n = 4;
    const H = 10;
    const ddp = predict(cfg, plan('ddp', n), cal);
    // DDP: every bucket all-reduced each step, 4P bytes of gradients and the loss's 4: 1.5 x (4P + 4)
    expect(ddp.bytes_per_rank).toBeCloseTo(1.5 * (4 * P + 4), 6);
    const fp32 = predict(cfg, plan('diloco', n, { innerSteps: H }), cal);
    expect(fp32.bytes_per_rank).toBeCloseTo((1.5 * 4 * P) / H, 6); // 485,913.6 bytes per step
    expect(fp32.bytes_per_rank / ddp.bytes_per_rank).toBeCloseTo(1 / H, 5);
    expect(predict(cfg, plan('diloco', n, { innerSteps: H, outerCompress: 'fp16' }), cal).bytes_per_rank).toBeCloseTo((1.5 * 2 * P) / H, 6);
    expect(predict(cfg, plan('diloco', n, { innerSteps: H, outerCompress: 'int8' }), cal).bytes_per_rank).toBeCloseTo((1.5 * P) / H, 6);
    expect(fp32.outer).toEqual({ inner_steps: H, comm_ms: expect.any(Number), bytes: 1.5 * 4 * P, copy_ms: 0 });
    // the outer all-reduce: 2(n-1)*alpha + 2(n-1)/n * 4P/beta, paid once every H steps
    expect(fp32.outer!.comm_ms).toBeCloseTo(1000 * (6e-4 + (1.5 * 4 * P) / 1e9), 9);
    expect(fp32.comm_ms).toBeCloseTo(fp32.outer!.comm_ms / H, 9);
    expect(fp32.compute_ms).toBe(ddp.compute_ms);
    expect(fp32.memory.optimizer - ddp.memory.optimizer).toBe(8 * P); // the global model and the outer momentum
    expect(predict(cfg, plan('diloco', 1, { innerSteps: H }), cal).bytes_per_rank).toBe(0);
    // H = 20 by default
    expect(predict(cfg, plan('diloco', n), cal).bytes_per_rank).toBeCloseTo((1.5 * 4 * P) / 20, 6);
  });

  it('classroom Wi-Fi: 20 MB/s shared, beta = W/N; DDP\'s step grows with N and P, DiLoCo\'s stays near compute; where each stops paying', () => {
    const W = 20e6;
    // one laptop's FLOP/s such that its compute for a step is 500 ms
    const tokens = cfg.batch_size * cfg.block_size;
    const c = 0.5;
    const laptop: Calibration = { flops: (tokens * flopsPerToken(cfg)) / c, alpha: cal.alpha, beta: cal.beta };
    const wifi = { total: W, alpha: 0 };
    const s = wifiScenario(cfg, laptop, { innerSteps: 20, wifi, max: 8 });
    const at = (n: number) => s.points[n - 1];
    expect(s.single.step_ms).toBeCloseTo(500, 9);
    // N = 4: a ring all-reduce of S moves 2(N-1)/N x S per rank at W/N each: 2(N-1) x S / W
    // DDP: 500 + 2*3*(4P + 4)/20e6 s = 500 + 971.8 ms; DiLoCo: 500 + 2*3*4P/20e6/20 s = 500 + 48.6 ms
    expect(at(4).ddp.step_ms).toBeCloseTo(500 + (1000 * 6 * (4 * P + 4)) / W, 6);
    expect(at(4).ddp.step_ms).toBeCloseTo(1471.83, 1);
    expect(at(4).diloco.step_ms).toBeCloseTo(500 + (1000 * 6 * 4 * P) / W / 20, 6);
    expect(at(4).diloco.step_ms).toBeCloseTo(548.58, 1);
    expect(at(4).ddp.bytes_per_rank / at(4).diloco.bytes_per_rank).toBeCloseTo(20, 3);
    // DDP's step grows with N; DiLoCo's stays within 25% of the compute up to 8 laptops (+113 ms at 8: 14 x 4P / W / 20)
    for (let n = 2; n <= 8; n++) {
      expect(at(n).ddp.step_ms).toBeGreaterThan(at(n - 1).ddp.step_ms);
      expect(at(n).diloco.step_ms).toBeLessThan(1.25 * 500);
    }
    // efficiency c / step < 1/2 from 2(N-1) x (4P+4) / W > c: N - 1 > 0.5 x 20e6 / (2 x 3,239,428) = 1.54, so N >= 3
    expect(s.ddpStopsAt).toBe(3);
    expect(at(2).ddpEfficiency).toBeCloseTo(500 / (500 + (1000 * 2 * (4 * P + 4)) / W), 9);
    expect(s.dilocoStopsAt).toBeNull(); // N - 1 > 1.54 x 20 = 30.9: not within 8
    expect(wifiScenario(cfg, laptop, { innerSteps: 20, wifi, max: 32 }).dilocoStopsAt).toBe(32);
    // a bigger model: DDP's step grows with P at the same compute per token... and the same N
    const big = makeConfig('baby', { vocab_size: 65 });
    const bigLaptop: Calibration = { ...laptop, flops: (big.batch_size * big.block_size * flopsPerToken(big)) / c };
    const b = wifiScenario(big, bigLaptop, { innerSteps: 20, wifi, max: 4 });
    expect(b.points[3].ddp.step_ms - 500).toBeGreaterThan(at(4).ddp.step_ms - 500);
    expect(b.points[3].ddp.step_ms - 500).toBeCloseTo((1000 * 6 * (4 * buildParamTable(big).total + 4)) / W, 3);
    // the Wi-Fi calibration: beta = W / N for every transport, the laptops' own FLOP/s
    const wc = wifiCalibration(laptop, 5, { total: W, alpha: 0.005 });
    expect(wc.beta.ring).toBe(4e6);
    expect(wc.alpha.star).toBe(0.005);
    expect(wc.cores).toBeUndefined();
  });
});
