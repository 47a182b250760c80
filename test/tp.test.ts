// Tensor parallelism (src/parallel/tp.ts) against one worker with the same global batch: losses, gradient
// norms, every gradient tensor before clipping (assembled from the ranks' slices) and the final parameters,
// over the ring, star and shared transports, with accumulation and with dropout; the layout's slice and
// assemble; the bytes a rank sends per step against tpBytesPerStep; no tensors left behind.
// The ranks are N TPTrainers in this thread, wired with wire() + makeCollectives, stepped together.
//
// What would fail if the backward all-reduce of d(ln_1 out) / d(ln_2 out) were left out: each rank's
// LayerNorm gradients (replicated) and everything below them would come from its own heads' share only,
// so h.*.ln_1.* and the embeddings' gradients differ from one worker's (checked per tensor below), and
// the ranks' replicated copies disagree (checked too).

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { buildParamTable, initParams, mulberry32 } from '../src/model/params';
import { Trainer, type StepStats } from '../src/train/trainer';
import type { Checkpoint } from '../src/train/checkpoint';
import { TPTrainer } from '../src/parallel/tp';
import { tpAssemble, tpBytesPerStep, tpCheck, tpError, tpLocalTable, tpMemoryPerRank, tpSlice } from '../src/parallel/tp-layout';
import { makeCollectives, wire } from '../src/parallel/wiring';
import type { TransportKind } from '../src/parallel/collectives';
import { maxAbsDiff, shakespeare, worstRelative } from './helpers';

const text = shakespeare.slice(0, 100_000);
const tokenizer = charTokenizer(text);
const vocab = tokenizer.vocabSize;
const STEPS = 3;
const RELATIVE = 1e-5;

function config(overrides: Record<string, unknown> = {}): RunConfig {
  return { ...makeConfig('tiny', { n_layer: 2, n_head: 4, n_embd: 32, block_size: 16, batch_size: 2, backend: 'wasm', ...overrides }), vocab_size: vocab };
}

const dataset = (cfg: RunConfig) => makeDataset(text, tokenizer, cfg.block_size);

interface Options {
  ckpt?: Checkpoint; // start from it (restore) instead of the initial parameters
  hostOptimizer?: boolean; // TP: AdamW on the host (the wasm default) or in tfjs kernels (the GPU backends')
}

/** One worker: each step's stats (with its gradient), the final parameters, a validation loss and a sample. */
async function single(cfg: RunConfig, opts: Options = {}) {
  const t = new Trainer(cfg, dataset(cfg));
  if (opts.ckpt) t.restore(opts.ckpt);
  const steps: StepStats[] = [];
  for (let i = 0; i < STEPS; i++) steps.push(await t.trainStep(undefined, { grads: true }));
  const params = await t.exportParams();
  const evalLoss = await t.evalLoss('val', 2);
  const sample = await t.sample('ROMEO:', 12, { seed: 3 });
  t.dispose();
  return { steps, params, evalLoss, sample };
}

/** N TP ranks in this thread: each step's stats (gradients assembled), bytes sent per rank, the final parameters. */
async function tensorParallel(cfg: RunConfig, N: number, kind: TransportKind = 'ring', opts: Options = {}) {
  const table = buildParamTable(cfg);
  const w = wire(kind, N);
  const colls = w.endpoints.map((ep, r) => makeCollectives(r, N, ep));
  const data = dataset(cfg);
  const full = initParams(table, cfg, cfg.seed); // what Trainer starts from
  const ranks = colls.map((c) => new TPTrainer(cfg, data, full, c, { hostOptimizer: opts.hostOptimizer }));
  if (opts.ckpt) for (const t of ranks) t.restore(opts.ckpt);
  try {
    const steps: StepStats[] = [];
    const tensors: number[] = [];
    for (let i = 0; i < STEPS; i++) {
      const perRank = await Promise.all(ranks.map((t) => t.trainStep({ grads: true })));
      for (const s of perRank) {
        expect(s.loss).toBe(perRank[0].loss); // the head is replicated: the same loss everywhere
        expect(s.gradNorm).toBe(perRank[0].gradNorm);
      }
      steps.push({ ...perRank[0], grads: tpAssemble(perRank.map((s) => s.grads!), table, N) });
      tensors.push(tf.memory().numTensors);
    }
    const bytes = colls.map((c) => c.stats.bytesSent);
    const locals = await Promise.all(ranks.map((t) => t.localState()));
    const exported = await Promise.all(ranks.map((t) => t.exportParams()));
    const evalLoss = await Promise.all(ranks.map((t) => t.evalLoss('val', 2))); // collectives: every rank calls them
    const sample = await Promise.all(ranks.map((t) => t.sample('ROMEO:', 12, { seed: 3 })));
    const memory = ranks.map((t) => ({ ...t.memory }));
    return { steps, bytes, tensors, locals, exported, evalLoss, sample, memory, params: tpAssemble(locals.map((l) => l.params), table, N) };
  } finally {
    for (const t of ranks) t.dispose();
    for (const c of colls) c.close();
    w.close();
  }
}
/** Everything TP must equal one worker in. */
function expectEqual(run: Awaited<ReturnType<typeof tensorParallel>>, ref: Awaited<ReturnType<typeof single>>, cfg: RunConfig, N: number, adamT = STEPS) {
  for (let i = 0; i < STEPS; i++) {
    const [a, b] = [run.steps[i], ref.steps[i]];
    expect(Math.abs(a.loss - b.loss) / b.loss, `step ${i + 1} loss`).toBeLessThan(RELATIVE);
    expect(Math.abs(a.gradNorm - b.gradNorm) / b.gradNorm, `step ${i + 1} gradient norm`).toBeLessThan(RELATIVE);
    const worst = worstRelative(a.grads!, b.grads!, buildParamTable(cfg));
    expect(worst.rel, `step ${i + 1}, ${worst.name}`).toBeLessThan(RELATIVE);
    expect(a.tokens).toBe(b.tokens);
  }
  expect(maxAbsDiff(run.params, ref.params)).toBeLessThan(1e-5);
  const table = buildParamTable(cfg);
  for (let r = 0; r < N; r++) {
    // every rank's replicated copies are identical (bitwise) and its slices are its part of the whole
    expect(maxAbsDiff(run.locals[r].params, tpSlice(run.params, table, N, r))).toBe(0);
    expect(maxAbsDiff(run.exported[r], run.params)).toBe(0);
    expect(run.locals[r].t).toBe(adamT);
  }
  // evaluation and samples: rank 0 answers with the full model, the others with a placeholder
  expect(Math.abs(run.evalLoss[0] - ref.evalLoss)).toBeLessThan(1e-5);
  expect(run.evalLoss.slice(1).every(Number.isNaN)).toBe(true);
  expect(run.sample[0]).toBe(ref.sample);
  expect(run.sample.slice(1).every((x) => x === '')).toBe(true);
  expect(run.tensors.at(-1), 'tensors left behind by a step').toBe(run.tensors[0]);
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('tp-layout', () => {
  it('refuses worker counts that do not divide the heads, with a clear error', () => {
    expect(() => tpCheck({ n_head: 4 }, 3)).toThrow('tensor parallelism splits the 4 heads among the workers: use 1, 2 or 4 workers');
    expect(tpError({ n_head: 12 }, 5)).toMatch(/splits the 12 heads among the workers: use 1, 2, 3, 4, 6 or 12 workers/);
    for (const n of [1, 2, 3, 4, 6, 12]) expect(tpError({ n_head: 12 }, n)).toBeNull();
    const cfg = config();
    const w = wire('ring', 3);
    const colls = w.endpoints.map((ep, r) => makeCollectives(r, 3, ep));
    expect(() => new TPTrainer(cfg, dataset(cfg), initParams(buildParamTable(cfg), cfg, 1), colls[0])).toThrow(/splits the 4 heads among the workers/);
    for (const c of colls) c.close();
  });

  it('slices and assembles: tpAssemble(tpSlice(x)) == x; each rank holds its heads\' q, k, v columns and its rows', () => {
    const cfg = config();
    const table = buildParamTable(cfg);
    const rand = mulberry32(7);
    const x = Float32Array.from({ length: table.total }, () => rand() - 0.5);
    const C = cfg.n_embd;
    for (const N of [1, 2, 4]) {
      const parts = Array.from({ length: N }, (_, r) => tpSlice(x, table, N, r));
      expect(maxAbsDiff(tpAssemble(parts, table, N), x)).toBe(0);
      const local = tpLocalTable(table, N, 1 % N);
      expect(parts[0].length).toBe(local.total);
      expect(local.sharded + local.replicated).toBe(local.total);
      expect(local.sharded * N + local.replicated).toBe(table.total);
      expect(tpMemoryPerRank(table, N, 'wasm')).toMatchObject({ localParams: local.total, params: 4 * local.total, optimizer: 12 * local.total });
      // rank r's c_attn: row i holds q, k and v columns [j C + r C/N, j C + (r+1) C/N)
      const r = N - 1;
      const full = table.byName.get('h.1.attn.c_attn.weight')!;
      const mine = tpLocalTable(table, N, r).byName.get('h.1.attn.c_attn.weight')!;
      expect(mine.shape).toEqual([C, (3 * C) / N]);
      const Cl = C / N;
      for (const i of [0, 5, C - 1]) {
        for (let j = 0; j < 3; j++) {
          for (const c of [0, Cl - 1]) {
            expect(parts[r][mine.offset + i * 3 * Cl + j * Cl + c]).toBe(x[full.offset + i * 3 * C + j * C + r * Cl + c]);
          }
        }
      }
      // mlp.c_proj rows [r 4C/N, (r+1) 4C/N)
      const fp = table.byName.get('h.0.mlp.c_proj.weight')!;
      const mp = tpLocalTable(table, N, r).byName.get('h.0.mlp.c_proj.weight')!;
      expect(mp.shape).toEqual([(4 * C) / N, C]);
      expect(parts[r][mp.offset]).toBe(x[fp.offset + r * (4 * C / N) * C]);
    }
  });
});

describe('tensor parallelism equals one worker with the same global batch', () => {
  it.each([2, 4])('N=%i over the ring, 3 AdamW steps: losses, gradient norms, every gradient, parameters, bytes', async (N) => {
    const cfg = config();
    const ref = await single(cfg);
    const run = await tensorParallel(cfg, N, 'ring');
    expectEqual(run, ref, cfg, N);
    const expected = tpBytesPerStep(cfg, N, 'ring');
    expect(expected.allReduces).toBe(4 * cfg.n_layer + 1);
    for (const b of run.bytes) expect(b).toBe(STEPS * expected.bytes);
    const m = tpMemoryPerRank(buildParamTable(cfg), N, 'wasm');
    for (const mem of run.memory) {
      expect(mem).toMatchObject({ params: m.params, grads: m.grads, optimizer: m.optimizer });
      expect(mem.comm_buffers).toBe(4 * cfg.batch_size * cfg.block_size * cfg.n_embd); // one (B*T, C) all-reduce at a time
      expect(mem.activations_peak).toBeGreaterThan(0);
    }
  });

  it('N=2 with 2 micro-batches (grad_accum), weight decay and clipping', async () => {
    const cfg = config({ grad_accum: 2, weight_decay: 0.5, grad_clip: 0.05 });
    const ref = await single(cfg);
    expect(ref.steps[0].gradNorm).toBeGreaterThan(0.05); // clipping really happens
    const run = await tensorParallel(cfg, 2, 'ring');
    expectEqual(run, ref, cfg, 2);
    for (const b of run.bytes) expect(b).toBe(STEPS * tpBytesPerStep(cfg, 2, 'ring').bytes);
  });

  it.each(['star', 'shared'] as TransportKind[])('N=2 over %s', async (kind) => {
    const cfg = config();
    const ref = await single(cfg);
    const run = await tensorParallel(cfg, 2, kind);
    expectEqual(run, ref, cfg, 2);
    for (const b of run.bytes) expect(b).toBe(STEPS * tpBytesPerStep(cfg, 2, kind).bytes);
  });

  it.each([true, false])('restores from a full checkpoint and continues as one worker does (host AdamW: %s)', async (hostOptimizer) => {
    const cfg = config({ weight_decay: 0.5 });
    const t = new Trainer(cfg, dataset(cfg));
    for (let i = 0; i < 2; i++) await t.trainStep();
    const ckpt = await t.toCheckpoint();
    t.dispose();
    const ref = await single(cfg, { ckpt });
    const run = await tensorParallel(cfg, 2, 'ring', { ckpt, hostOptimizer });
    expect(run.steps[0].step).toBe(3);
    expectEqual(run, ref, cfg, 2, 2 + STEPS);
  });

  it('N=4 with dropout: each rank\'s attention mask is its heads\' slice of one worker\'s', async () => {
    const cfg = config({ dropout: 0.2 });
    const ref = await single(cfg);
    const run = await tensorParallel(cfg, 4, 'ring');
    expectEqual(run, ref, cfg, 4);
  });

  it('a NaN gradient on one rank (poison) stops every rank before the update; beforeUpdate sees it and may refuse', async () => {
    const cfg = config();
    const N = 2;
    const w = wire('ring', N);
    const colls = w.endpoints.map((ep, r) => makeCollectives(r, N, ep));
    const full = initParams(buildParamTable(cfg), cfg, cfg.seed);
    const ranks = colls.map((c) => new TPTrainer(cfg, dataset(cfg), full, c));
    try {
      const before = await Promise.all(ranks.map((t) => t.localState()));
      // without beforeUpdate: checkFinite throws on every rank (the NaN reaches all of them through the all-reduces)
      const thrown = await Promise.allSettled(ranks.map((t, r) => t.trainStep({ poison: r === 1 })));
      for (const s of thrown) expect(s.status === 'rejected' && String(s.reason)).toMatch(/the loss became .* \(gradient norm NaN\) at step 1/);
      // with beforeUpdate: the ready check names the bad gradient; refusing leaves everything as it was
      const seen: { gradNorm: number; nonFinite: string | null }[] = [];
      const refused = await Promise.allSettled(ranks.map((t, r) => t.trainStep({ poison: r === 1, beforeUpdate: async (c) => { seen.push(c); throw new Error('refused'); } })));
      expect(refused.every((s) => s.status === 'rejected')).toBe(true);
      expect(seen).toHaveLength(N);
      for (const c of seen) expect(Number.isNaN(c.gradNorm) && c.nonFinite !== null).toBe(true);
      const after = await Promise.all(ranks.map((t) => t.localState()));
      for (let r = 0; r < N; r++) expect(maxAbsDiff(after[r].params, before[r].params)).toBe(0);
      expect(ranks.every((t) => t.step === 0)).toBe(true);
      // and the next clean step runs
      const ok = await Promise.all(ranks.map((t) => t.trainStep()));
      expect(ok.every((s) => s.step === 1 && Number.isFinite(s.gradNorm))).toBe(true);
    } finally {
      for (const t of ranks) t.dispose();
      for (const c of colls) c.close();
      w.close();
    }
  });
});
