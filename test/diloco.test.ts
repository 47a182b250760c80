// DiLoCo (src/parallel/diloco.ts): the outer step's math pinned against N local Trainers, the outer
// Nesterov step against PyTorch's SGD(nesterov=True) by hand, the fp16 / int8 wire formats, the bytes
// each rank sends, checkpoints and recovery. Ranks run in this thread behind comlink (as test/ddp.test.ts).

import { beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { Coordinator, DistError, type DistOptions } from '../src/parallel/coordinator';
import { spawnInProcess } from '../src/parallel/spawn';
import { gradientSync, holdsReplica } from '../src/parallel/layout';
import { makeCollectives, wire } from '../src/parallel/wiring';
import type { TransportKind } from '../src/parallel/collectives';
import { INT8_BLOCK, allReduceMeanCompressed, compressedBytesSent, dilocoOuterBytes, fromHalf, outerNesterov, pack, packedFloats, roundTrip, toHalf } from '../src/parallel/diloco';
import { decodeCheckpoint } from '../src/train/checkpoint';
import { buildParamTable, mulberry32 } from '../src/model/params';
import { maxAbsDiff, shakespeare } from './helpers';
import { expectedAtRest } from '../src/ui/memory';

const text = shakespeare.slice(0, 100_000);
const vocab = charTokenizer(text).vocabSize;
const spawn = spawnInProcess(initNodeBackend);

function config(overrides: Record<string, unknown> = {}): RunConfig {
  return { ...makeConfig('tiny', { n_layer: 2, n_embd: 32, block_size: 16, backend: 'wasm', batch_size: 2, ...overrides }), vocab_size: vocab };
}

const dist = (d: Partial<DistOptions>): DistOptions => ({ strategy: 'diloco', workers: 2, transport: 'ring', bucketMb: 25, ...d });

async function run(cfg: RunConfig, d: Partial<DistOptions>, steps: number) {
  const c = await Coordinator.create(cfg, text, dist(d), spawn);
  try {
    const stats = [];
    for (let i = 0; i < steps; i++) stats.push(await c.trainStep());
    const params = await Promise.all(c.ranks.map((r) => r.api.exportParams()));
    const val = await c.evalLoss('val', 4);
    return { stats, params, val, recoveries: [...c.recoveries] };
  } finally {
    c.dispose();
  }
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('layout', () => {
  it("diloco has its own gradient sync ('outer'), holds replicas, and is not DDP's all-reduce", () => {
    expect(gradientSync({ strategy: 'diloco' })).toBe('outer');
    expect(holdsReplica({ strategy: 'diloco' })).toBe(true);
    expect(gradientSync({ strategy: 'ddp' })).toBe('all-reduce');
  });
});

describe('outer Nesterov step', () => {
  it('matches PyTorch SGD(nesterov=True) computed by hand over two steps', () => {
    const theta = Float32Array.from([1, 2, -3]);
    const v = new Float32Array(3);
    // step 1: buf = g; g' = g + 0.9 buf; p -= 0.7 g'
    outerNesterov(theta, v, Float32Array.from([0.5, -1, 0.25]), 0.7, 0.9);
    expect(maxAbsDiff(v, [0.5, -1, 0.25])).toBeLessThan(1e-7);
    expect(maxAbsDiff(theta, [0.335, 3.33, -3.3325])).toBeLessThan(1e-6);
    // step 2: buf = 0.9 buf + g = [0.25, -0.5, 0.225]; g' = g + 0.9 buf = [0.025, -0.05, 0.2025]
    outerNesterov(theta, v, Float32Array.from([-0.2, 0.4, 0]), 0.7, 0.9);
    expect(maxAbsDiff(v, [0.25, -0.5, 0.225])).toBeLessThan(1e-7);
    expect(maxAbsDiff(theta, [0.3175, 3.365, -3.47425])).toBeLessThan(1e-6);
  });

  it('with lr 1 and no momentum, the global model becomes the mean of the replicas', () => {
    const theta = Float32Array.from([1, 1]);
    const avg = Float32Array.from([(1 - 0.5 + 1 - 0.7) / 2, (1 - 2 + 1 - 4) / 2]); // replicas [0.5, 2] and [0.7, 4]
    outerNesterov(theta, new Float32Array(2), avg, 1, 0);
    expect(maxAbsDiff(theta, [0.6, 3])).toBeLessThan(1e-6);
  });
});

describe('compression', () => {
  const rand = mulberry32(7);
  const x = Float32Array.from({ length: 3000 }, (_, i) => (rand() * 2 - 1) * (i % 7 === 0 ? 1e-3 : 0.05));

  it('fp16: exact bits for known values, saturating, and round trips within half precision', () => {
    expect([1, -2, 65504, 1e6, 2 ** -24, 0.1, 0].map(toHalf)).toEqual([0x3c00, 0xc000, 0x7bff, 0x7bff, 0x0001, 0x2e66, 0]);
    expect(fromHalf(0x3c00)).toBe(1);
    expect(fromHalf(0x2e66)).toBeCloseTo(0.0999755859375, 12);
    const rt = roundTrip(x, 'fp16');
    for (let i = 0; i < x.length; i++) expect(Math.abs(rt[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 2 ** -11 + 2 ** -25);
    expect(pack(x, 'fp16').byteLength).toBe(2 * x.length);
  });

  it('int8: within half a step of its block scale; no packed word is ever NaN or infinite', () => {
    const rt = roundTrip(x, 'int8');
    for (let b = 0; b < x.length / INT8_BLOCK; b++) {
      const block = x.subarray(b * INT8_BLOCK, (b + 1) * INT8_BLOCK);
      const scale = Math.max(...block.map(Math.abs)) / 126;
      for (let i = 0; i < block.length; i++) expect(Math.abs(rt[b * INT8_BLOCK + i] - block[i])).toBeLessThanOrEqual(scale / 2 + 1e-9);
    }
    expect(pack(x, 'int8').byteLength).toBe(4 * Math.ceil(x.length / INT8_BLOCK) + x.length);
    // every byte pattern the code can make, in every position of a word: -126..126 in turn
    const all = Float32Array.from({ length: 4 * 253 * 4 }, (_, i) => ((i % 253) - 126) / 126);
    for (const w of pack(all, 'int8')) expect(Number.isFinite(w)).toBe(true);
    expect(maxAbsDiff(roundTrip(all, 'int8'), all)).toBeLessThan(1e-6);
    expect(roundTrip(new Float32Array(10), 'int8')).toEqual(new Float32Array(10)); // an all-zero block: scale 0
  });

  const group = (kind: TransportKind, N: number) => {
    const w = wire(kind, N, { capacity: 64 });
    const ranks = w.endpoints.map((ep, r) => makeCollectives(r, N, ep));
    return { ranks, close: () => (ranks.forEach((c) => c.close()), w.close()) };
  };

  for (const transport of ['ring', 'star', 'shared'] as TransportKind[]) {
    it.each([['fp16', 2], ['int8', 3], ['fp16', 4], ['none', 3]] as const)(`${transport}: %s over %i ranks, the identical average on every rank, and the bytes it says`, async (kind, N) => {
      const P = 1001;
      const r0 = mulberry32(N);
      const xs = Array.from({ length: N }, () => Float32Array.from({ length: P }, () => (r0() * 2 - 1) * 0.01));
      const mean = Float32Array.from(xs[0], (_, i) => xs.reduce((s, x) => s + x[i], 0) / N);
      const g = group(transport, N);
      try {
        const out = await Promise.all(g.ranks.map((c, r) => allReduceMeanCompressed(c, xs[r].slice(), kind)));
        for (const o of out) expect(maxAbsDiff(o, out[0])).toBe(0); // bit for bit
        const tol = kind === 'none' ? 1e-8 : kind === 'fp16' ? N * 0.01 * 2 ** -10 : N * (0.01 / 126);
        expect(maxAbsDiff(out[0], mean)).toBeLessThan(tol);
        if (transport === 'ring' && kind !== 'none') {
          g.ranks.forEach((c, r) => expect(c.stats.bytesSent).toBe(compressedBytesSent(P, N, r, kind)));
          const total = g.ranks.reduce((n, c) => n + c.stats.bytesSent, 0);
          expect(Math.abs(total / N - dilocoOuterBytes(P, N, kind)) / dilocoOuterBytes(P, N, kind)).toBeLessThan(0.02);
        }
      } finally {
        g.close();
      }
    });
  }

  it('packs whole words', () => {
    expect(packedFloats(5, 'fp16')).toBe(3);
    expect(packedFloats(257, 'int8')).toBe(2 + 65);
  });
});

describe('DiLoCo through the coordinator', () => {
  it('H = 1, outer lr 1, no momentum: the new parameters are the mean of N local AdamW steps (not DDP\'s update)', async () => {
    const cfg = config();
    const N = 2;
    // the reference: N Trainers from the same initial weights, each one AdamW step on its slice
    const tok = charTokenizer(text);
    const locals: Float32Array[] = [];
    const losses: number[] = [];
    for (let r = 0; r < N; r++) {
      const t = new Trainer(cfg, makeDataset(text, tok, cfg.block_size));
      t.rank = r;
      t.world = N;
      losses.push((await t.trainStep()).loss);
      locals.push(await t.exportParams());
      t.dispose();
    }
    const mean = Float32Array.from(locals[0], (_, i) => (locals[0][i] + locals[1][i]) / 2);
    const d = await run(cfg, { workers: N, innerSteps: 1, outerLr: 1, outerMomentum: 0 }, 1);
    for (const p of d.params) expect(maxAbsDiff(p, mean)).toBeLessThan(1e-6);
    expect(maxAbsDiff(d.params[0], d.params[1])).toBe(0);
    expect(d.stats[0].loss).toBeCloseTo((losses[0] + losses[1]) / 2, 6); // the mean over ranks
    // DDP's averaged-gradient step is another update: a diloco run that ran DDP would fail above
    const ddp = await Coordinator.create(cfg, text, dist({ strategy: 'ddp', workers: N }), spawn);
    await ddp.trainStep();
    const ddpParams = await ddp.exportParams();
    ddp.dispose();
    expect(maxAbsDiff(ddpParams, mean)).toBeGreaterThan(1e-5); // (10x the tolerance above)
  });

  it('sends nothing between outer steps and 2(N-1)/N x 4P per rank at each (every H-th and the last); replicas identical after', async () => {
    const cfg = config({ max_iters: 7 });
    const d = await run(cfg, { workers: 2, innerSteps: 3 }, 7);
    const P = d.params[0].length;
    const sent = d.stats.map((s) => s.perRank.map((r) => r.bytesSent));
    const outer = [3, 6, 7];
    sent.forEach((ranks, i) => {
      const step = i + 1;
      if (!outer.includes(step)) expect(ranks, `step ${step}`).toEqual([0, 0]);
      else expect(ranks.reduce((a, b) => a + b, 0), `step ${step}`).toBe(2 * dilocoOuterBytes(P, 2, 'none')); // = 2 x 4P
    });
    expect(dilocoOuterBytes(P, 2, 'none')).toBe(4 * P);
    expect(maxAbsDiff(d.params[0], d.params[1])).toBe(0); // step 7 is the run's last: an outer step
    // the replicas differ between outer steps: each trained its own slice
    const mid = await run(cfg, { workers: 2, innerSteps: 3 }, 2);
    expect(maxAbsDiff(mid.params[0], mid.params[1])).toBeGreaterThan(0);
    expect(mid.stats[1].loss).toBeCloseTo((mid.stats[1].perRank[0].loss + mid.stats[1].perRank[1].loss) / 2, 9);
  });

  it('holds at rest what the page expects: a replica (20 bytes per parameter on wasm) and the outer state (8 more)', async () => {
    const cfg = config({ max_iters: 2 });
    const d = await run(cfg, { workers: 2, innerSteps: 1 }, 2);
    const table = buildParamTable(cfg);
    for (const r of d.stats.at(-1)!.perRank) {
      const m = r.memory;
      expect(m.params + m.grads + m.optimizer + m.buddy).toBe(expectedAtRest(table, { strategy: 'diloco', workers: 2 }, 'wasm').bytes);
      expect(m.params + m.grads + m.optimizer).toBe((20 + 8) * table.total);
    }
  });

  it('int8 over 3 ranks: bytes per rank as packed, and the replicas identical', async () => {
    const cfg = config();
    const d = await run(cfg, { workers: 3, innerSteps: 2, outerCompress: 'int8' }, 2);
    const P = d.params[0].length;
    d.stats[1].perRank.forEach((r, rank) => expect(r.bytesSent).toBe(compressedBytesSent(P, 3, rank, 'int8')));
    expect(d.stats[0].perRank.map((r) => r.bytesSent)).toEqual([0, 0, 0]);
    expect(maxAbsDiff(d.params[0], d.params[2])).toBe(0);
  });

  it('H = 5 trains about as well as DDP after the same steps (tiny model)', async () => {
    const cfg = config({ max_iters: 40, lr: 3e-3, warmup_iters: 2, lr_decay_iters: 40 });
    const ddp = await Coordinator.create(cfg, text, dist({ strategy: 'ddp' }), spawn);
    for (let i = 0; i < 40; i++) await ddp.trainStep();
    const ddpVal = await ddp.evalLoss('val', 4);
    ddp.dispose();
    const d = await run(cfg, { innerSteps: 5 }, 40);
    const first = d.stats[0].loss;
    console.log(`tiny, 40 steps, 2 workers: val loss ddp ${ddpVal.toFixed(4)}, diloco H=5 ${d.val.toFixed(4)}`);
    expect(d.val).toBeLessThan(first - 0.5); // it learns
    expect(Math.abs(d.val - ddpVal), `diloco ${d.val} vs ddp ${ddpVal}`).toBeLessThan(0.15);
  });

  it('a checkpoint holds the global model of the last outer step, at that step', async () => {
    const cfg = config();
    const c = await Coordinator.create(cfg, text, dist({ innerSteps: 2 }), spawn);
    try {
      await c.trainStep();
      await c.trainStep();
      const global = await c.exportParams(); // just after an outer step: the global model
      await c.trainStep();
      const ck = decodeCheckpoint(await c.exportCheckpoint());
      expect(ck.header.step).toBe(2);
      expect(maxAbsDiff(ck.params, global)).toBe(0);
    } finally {
      c.dispose();
    }
  });

  it('a killed rank: the run goes back to the last outer step, replays the steps since, and trains on', async () => {
    const cfg = config({ max_iters: 6 });
    const clean = await run(cfg, { innerSteps: 3 }, 6);
    const faulted = await run(cfg, { innerSteps: 3, faults: { inject: [{ kind: 'kill', rank: 1, step: 5 }] } }, 6);
    expect(faulted.recoveries).toHaveLength(1);
    expect(faulted.recoveries[0]).toMatchObject({ step: 5, rank: 1, cause: 'crash', replayed_steps: 1 });
    expect(faulted.recoveries[0].restored_from).toMatch(/global model of the last outer step \(step 3\)/);
    expect(faulted.stats.at(-1)!.step).toBe(5); // trainStep answered step 4 again (replayed), then 5
    const faultedFinal = await run(cfg, { innerSteps: 3, faults: { inject: [{ kind: 'kill', rank: 1, step: 5 }] } }, 7);
    expect(faultedFinal.stats.at(-1)!.step).toBe(6);
    expect(maxAbsDiff(faultedFinal.params[0], faultedFinal.params[1])).toBe(0);
    // the same batches; only the AdamW states differ (every rank goes on with one rank's): close, not equal
    expect(maxAbsDiff(faultedFinal.params[0], clean.params[0])).toBeLessThan(0.05);
    expect(Math.abs(faultedFinal.stats.at(-1)!.loss - clean.stats.at(-1)!.loss)).toBeLessThan(0.05);
  });

  it('refuses bad settings with specific messages', async () => {
    await expect(Coordinator.create(config(), text, dist({ innerSteps: 0 }), spawn)).rejects.toThrow(/inner steps \(DiLoCo's H\) must be a whole number of at least 1, got 0/);
    await expect(Coordinator.create(config(), text, dist({ outerLr: -1 }), spawn)).rejects.toThrow(DistError);
    await expect(Coordinator.create(config(), text, dist({ outerMomentum: 1 }), spawn)).rejects.toThrow(/outer momentum must be at least 0 and below 1, got 1/);
    await expect(Coordinator.create(config(), text, dist({ outerCompress: 'bf16' as never }), spawn)).rejects.toThrow(/outer compression must be none, fp16 or int8, got "bf16"/);
  });
});
