// Pipeline parallelism against one worker with the same global batch: N stages x M micro-batches, GPipe
// and 1F1B, must give the same losses, gradient norms, per-tensor gradients (before clipping) and final
// parameters. The stages run in this thread (one tfjs engine), wired with the real transports.
// Then the pure schedule and byte counts, the activations 1F1B saves, and the errors.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { ConfigError, makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset, type Dataset } from '../src/data/dataset';
import { buildParamTable, initParams } from '../src/model/params';
import { Trainer, type StepOptions, type StepStats } from '../src/train/trainer';
import { PPTrainer } from '../src/parallel/pp';
import { makeCollectives, wire } from '../src/parallel/wiring';
import type { Collectives, TransportKind } from '../src/parallel/collectives';
import {
  bubbleFraction, inFlightOf, peakInFlight, pipelineSchedule, ppAssemble, ppBytesPerStep, ppCheck, ppSlice, stageBlocks, stageTable,
  type PipelineSchedule,
} from '../src/parallel/pp-layout';
import { Tracer } from '../src/util/trace';
import { maxAbsDiff, shakespeare, worstRelative } from './helpers';

const text = shakespeare.slice(0, 50_000);
const tokenizer = charTokenizer(text);
const STEPS = 2; // the second step's gradients are taken at parameters the first update made
const RELATIVE = 1e-5;

const cfg: RunConfig = {
  ...makeConfig('tiny', { n_layer: 4, n_head: 4, n_embd: 32, block_size: 16, batch_size: 8, backend: 'wasm', weight_decay: 0.1, grad_clip: 1 }),
  vocab_size: tokenizer.vocabSize,
};
const table = buildParamTable(cfg);
let data: Dataset;
let init: Float32Array;
/** N PPTrainers over one wiring, stepped together. */
function pipeline(N: number, M: number, schedule: PipelineSchedule, kind: TransportKind = 'ring', optimizer?: 'host' | 'tfjs') {
  const w = wire(kind, N);
  const colls: Collectives[] = w.endpoints.map((ep, r) => makeCollectives(r, N, ep));
  const ranks = colls.map((c) => new PPTrainer(cfg, data, init, c, { microbatches: M, schedule, optimizer }));
  return {
    ranks,
    colls,
    /** One step on every rank; also each rank's bytes sent during it. */
    async step(opts: (r: number) => StepOptions = () => ({ grads: true })) {
      const b0 = colls.map((c) => c.stats.bytesSent);
      const stats = await Promise.all(ranks.map((t, r) => t.trainStep(opts(r))));
      return { stats, bytes: colls.map((c, r) => c.stats.bytesSent - b0[r]) };
    },
    exportParams: () => Promise.all(ranks.map((t) => t.exportParams())),
    close() {
      for (const t of ranks) t.dispose();
      for (const c of colls) c.close();
      w.close();
    },
  };
}

let reference: StepStats[];
let refParams: Float32Array;

beforeAll(async () => {
  await initNodeBackend('wasm');
  data = makeDataset(text, tokenizer, cfg.block_size);
  init = initParams(table, cfg, cfg.seed);
  const t = new Trainer(cfg, data, init);
  reference = [];
  for (let i = 0; i < STEPS; i++) reference.push(await t.trainStep(undefined, { grads: true }));
  refParams = await t.exportParams();
  t.dispose();
});

/** A run's steps against the one-worker reference. */
function expectEqualToReference(steps: StepStats[][], N: number, params: Float32Array) {
  for (let i = 0; i < STEPS; i++) {
    const ref = reference[i];
    for (const s of steps[i]) {
      expect(Math.abs(s.loss - ref.loss), `step ${i + 1} loss`).toBeLessThan(1e-5);
      expect(Math.abs(s.gradNorm - ref.gradNorm) / ref.gradNorm, `step ${i + 1} gradient norm`).toBeLessThan(RELATIVE);
      expect(s.tokens).toBe(ref.tokens);
    }
    const grads = ppAssemble(steps[i].map((s) => s.grads!), table, N);
    const worst = worstRelative(grads, ref.grads!, table);
    expect(worst.rel, `step ${i + 1}, ${worst.name}`).toBeLessThan(RELATIVE);
  }
  expect(maxAbsDiff(params, refParams)).toBeLessThan(1e-5);
}

const activationPeaks = new Map<string, number[]>();

describe('a pipeline of N stages x M micro-batches equals one worker with the whole batch', () => {
  it('checks the reference really clips and decays', () => {
    expect(reference[0].gradNorm).toBeGreaterThan(0); // (grad_clip 1: the norm decides whether it clips)
    expect(cfg.dropout).toBe(0);
  });

  for (const N of [2, 4]) {
    for (const schedule of ['gpipe', '1f1b'] as const) {
      it.each([1, 2, 4, 8])(`N=${N}, ${schedule}, M=%i`, async (M) => {
        const run = pipeline(N, M, schedule);
        try {
          const steps: StepStats[][] = [];
          for (let i = 0; i < STEPS; i++) {
            const { stats, bytes } = await run.step();
            steps.push(stats);
            expect(bytes, `step ${i + 1} bytes per rank`).toEqual(ppBytesPerStep(cfg, N, M));
          }
          const exported = await run.exportParams();
          for (const e of exported) expect(maxAbsDiff(e, exported[0])).toBe(0);
          expectEqualToReference(steps, N, exported[0]);
          // the tied wte: the first and the last stage's copies stay identical, bit for bit
          const wte = await Promise.all([run.ranks[0], run.ranks[N - 1]].map((t) => t.params.get('wte')!.data()));
          expect(maxAbsDiff(wte[0], wte[1])).toBe(0);
          activationPeaks.set(`${N} ${schedule} ${M}`, run.ranks.map((t) => t.memory.activations_peak));
          for (const t of run.ranks) expect(t.clock.waitMs).toBeGreaterThanOrEqual(0);
        } finally {
          run.close();
        }
      });
    }
  }

  it('N=1: one stage owning everything is one worker', async () => {
    const run = pipeline(1, 2, '1f1b');
    try {
      const steps: StepStats[][] = [];
      for (let i = 0; i < STEPS; i++) steps.push((await run.step()).stats);
      expectEqualToReference(steps, 1, (await run.exportParams())[0]);
      expect(run.colls[0].stats.bytesSent).toBe(0);
    } finally {
      run.close();
    }
  });

  for (const kind of ['star', 'shared'] as const) {
    it(`over the ${kind} transport (N=3, M=4, 1f1b; blocks 2+1+1)`, async () => {
      const run = pipeline(3, 4, '1f1b', kind);
      try {
        const steps: StepStats[][] = [];
        for (let i = 0; i < STEPS; i++) steps.push((await run.step()).stats);
        expectEqualToReference(steps, 3, (await run.exportParams())[0]);
      } finally {
        run.close();
      }
    });
  }

  it('with the tfjs AdamW (the GPU backends\' path): the same, and its local state restores', async () => {
    const run = pipeline(2, 4, 'gpipe', 'ring', 'tfjs');
    try {
      const steps: StepStats[][] = [];
      for (let i = 0; i < STEPS; i++) steps.push((await run.step()).stats);
      expectEqualToReference(steps, 2, (await run.exportParams())[0]);
      const wte = await Promise.all([run.ranks[0], run.ranks[1]].map((t) => t.params.get('wte')!.data()));
      expect(maxAbsDiff(wte[0], wte[1])).toBe(0);
      const states = await Promise.all(run.ranks.map((t) => t.localState()));
      expect(states.map((s) => s.t)).toEqual([STEPS, STEPS]);
      expect(maxAbsDiff(ppAssemble(states.map((s) => s.params), table, 2), refParams)).toBeLessThan(1e-5);
      expect(states[0].m.some((x) => x !== 0)).toBe(true);
    } finally {
      run.close();
    }
  });

  it('with dropout and M = 1 (the micro-batch is the whole batch) it draws one worker\'s masks; with M = 2 others', async () => {
    const drop: RunConfig = { ...cfg, dropout: 0.2 };
    const t = new Trainer(drop, data, init);
    const ref = await t.trainStep(undefined, { grads: true });
    t.dispose();
    const losses: number[] = [];
    for (const M of [1, 2]) {
      const w = wire('ring', 2);
      const colls = w.endpoints.map((ep, r) => makeCollectives(r, 2, ep));
      const ranks = colls.map((c) => new PPTrainer(drop, data, init, c, { microbatches: M, schedule: '1f1b' }));
      try {
        const stats = await Promise.all(ranks.map((r) => r.trainStep({ grads: true })));
        losses.push(stats[0].loss);
        if (M === 1) expect(worstRelative(ppAssemble(stats.map((s) => s.grads!), table, 2), ref.grads!, table).rel).toBeLessThan(RELATIVE);
      } finally {
        for (const r of ranks) r.dispose();
        for (const c of colls) c.close();
      }
    }
    expect(Math.abs(losses[0] - ref.loss)).toBeLessThan(1e-5);
    expect(Number.isFinite(losses[1])).toBe(true);
    expect(Math.abs(losses[1] - ref.loss)).toBeGreaterThan(1e-6); // other masks (equally valid)
  });

  it('1F1B holds fewer activations than GPipe for M > N (measured, N=2, M=8)', () => {
    const gpipe = activationPeaks.get('2 gpipe 8')!;
    const f1b = activationPeaks.get('2 1f1b 8')!;
    expect(gpipe && f1b).toBeTruthy();
    for (let r = 0; r < 2; r++) {
      expect(f1b[r]).toBeLessThan(gpipe[r]);
      // a micro-batch's activations are the same on both: the ratio is the ratio of micro-batches in flight
      expect(f1b[r] / gpipe[r]).toBeCloseTo(peakInFlight('1f1b', 2, 8, r) / peakInFlight('gpipe', 2, 8, r), 5);
    }
  });
});

describe('a pipeline step', () => {
  it('traces F and B of every micro-batch once per stage, waits in recv, and keeps the tensor count flat', async () => {
    const N = 2;
    const M = 4;
    const run = pipeline(N, M, 'gpipe');
    try {
      await run.step(() => ({}));
      const tensors = tf.memory().numTensors;
      for (const c of run.colls) {
        c.tracer = new Tracer();
        c.tracer.enabled = true;
      }
      await run.step(() => ({}));
      await run.step(() => ({}));
      expect(tf.memory().numTensors).toBe(tensors);
      for (const c of run.colls) {
        const names = c.tracer.take().filter((e) => e.cat === 'compute' && /^[FB]\d+$/.test(e.name)).map((e) => e.name);
        const expected = pipelineSchedule('gpipe', N, M)[c.rank].map((o) => `${o.op}${o.mb}`);
        expect(names).toEqual([...expected, ...expected]);
      }
      expect(run.ranks[1].clock.waitMs).toBeGreaterThan(0); // the last stage waits for the first's forwards
    } finally {
      run.close();
    }
  });

  it('with a NaN on one rank, beforeUpdate sees it and a rejection leaves every stage as it was; then it trains on', async () => {
    const run = pipeline(2, 2, '1f1b');
    try {
      const before = await run.exportParams();
      const checks: { loss: number; gradNorm: number; nonFinite: string | null }[] = [];
      const results = await Promise.allSettled(run.ranks.map((t, r) => t.trainStep({
        poison: r === 1,
        beforeUpdate: async (c) => {
          checks[r] = c;
          throw new Error('rejected');
        },
      })));
      expect(results.every((x) => x.status === 'rejected')).toBe(true);
      expect(checks.every((c) => Number.isNaN(c.gradNorm))).toBe(true);
      expect(checks[1].nonFinite).toBe(stageTable(table, 2, 1).params[0].name);
      expect(checks[0].nonFinite).toBeNull(); // its own gradients are fine
      expect(run.ranks.map((t) => t.step)).toEqual([0, 0]);
      expect(maxAbsDiff((await run.exportParams())[0], before[0])).toBe(0);
      // without beforeUpdate a non-finite step throws, again before any update
      const thrown = await Promise.allSettled(run.ranks.map((t, r) => t.trainStep({ poison: r === 0 })));
      expect(thrown.every((x) => x.status === 'rejected' && /loss became/.test(String(x.reason)))).toBe(true);
      const { stats } = await run.step();
      expect(stats.map((s) => s.step)).toEqual([1, 1]);
      expect(Math.abs(stats[0].loss - reference[0].loss)).toBeLessThan(1e-5);
    } finally {
      run.close();
    }
  });

  it('restores from a checkpoint of the whole model (its slices, AdamW state and step) and exports local state', async () => {
    const run = pipeline(2, 2, 'gpipe');
    try {
      await run.step();
      const states = await Promise.all(run.ranks.map((t) => t.localState()));
      expect(states.map((s) => s.t)).toEqual([1, 1]);
      const whole = (k: 'params' | 'm' | 'v') => ppAssemble(states.map((s) => s[k]), table, 2);
      const header = { version: 1, config: cfg, tokenizer: tokenizer.spec(), step: 1, adam_t: 1, num_params: table.total };
      const ckpt = { header, params: whole('params'), m: whole('m'), v: whole('v') };
      const other = pipeline(4, 4, '1f1b'); // another split of the same model
      try {
        for (const t of other.ranks) t.restore(ckpt);
        const a = (await run.step()).stats[0];
        const b = (await other.step()).stats[0];
        expect(Math.abs(a.loss - b.loss)).toBeLessThan(1e-5);
        expect(Math.abs(a.loss - reference[1].loss)).toBeLessThan(1e-5);
        expect(maxAbsDiff((await other.exportParams())[0], refParams)).toBeLessThan(1e-5);
      } finally {
        other.close();
      }
    } finally {
      run.close();
    }
  });

  it('evaluates and samples with the whole model on rank 0 (a collective), as one worker does', async () => {
    const run = pipeline(2, 1, 'gpipe');
    const t = new Trainer(cfg, data, init);
    try {
      const losses = await Promise.all(run.ranks.map((r) => r.evalLoss('val', 2)));
      expect(Math.abs(losses[0] - (await t.evalLoss('val', 2)))).toBeLessThan(1e-5);
      expect(Number.isNaN(losses[1])).toBe(true);
      const samples = await Promise.all(run.ranks.map((r) => r.sample('Th', 8, { temperature: 0 })));
      expect(samples[0]).toBe(await t.sample('Th', 8, { temperature: 0 }));
      expect(samples[1]).toBe('');
    } finally {
      t.dispose();
      run.close();
    }
  });

  it('refuses more stages than blocks, and micro-batches that do not divide the batch, with clear errors', () => {
    expect(() => ppCheck(cfg, 5, 1)).toThrow(ConfigError);
    expect(() => ppCheck(cfg, 5, 1)).toThrow(/n_layer 4.*at most 4 workers/);
    expect(() => ppCheck(cfg, 2, 3)).toThrow(/3 micro-batches do not divide the step's batch of 8 sequences.*1, 2, 4, 8/);
    expect(() => ppCheck(cfg, 4, 8)).not.toThrow();
    const w = wire('ring', 5);
    const colls = w.endpoints.map((ep, r) => makeCollectives(r, 5, ep));
    try {
      expect(() => new PPTrainer(cfg, data, init, colls[0], { microbatches: 2, schedule: '1f1b' })).toThrow(/at most 4 workers/);
    } finally {
      for (const c of colls) c.close();
    }
    const one = makeCollectives(0, 1, { kind: 'ring', next: null, prev: null });
    expect(() => new PPTrainer(cfg, data, init, one, { microbatches: 3, schedule: 'gpipe' })).toThrow(/do not divide/);
  });
});

describe('the pipeline layout (pure)', () => {
  it('splits blocks contiguously, earlier stages one more; stages own their blocks, stage 0 the embedding, the last the head', () => {
    expect([0, 1, 2].map((r) => stageBlocks(4, 3, r))).toEqual([[0, 2], [2, 3], [3, 4]]);
    expect([0, 1, 2, 3].map((r) => stageBlocks(10, 4, r))).toEqual([[0, 3], [3, 6], [6, 8], [8, 10]]);
    const names = (N: number, r: number) => stageTable(table, N, r).params.map((p) => p.name);
    expect(names(2, 0).slice(0, 3)).toEqual(['wte', 'wpe', 'h.0.ln_1.weight']);
    expect(names(2, 1).slice(0, 4)).toEqual(['wte', 'ln_f.weight', 'ln_f.bias', 'h.2.ln_1.weight']);
    expect(names(4, 1).every((n) => n.startsWith('h.1.'))).toBe(true);
    expect(stageTable(table, 1, 0).total).toBe(table.total);
    // slicing and assembling are inverses (wte from stage 0)
    const flat = Float32Array.from({ length: table.total }, (_, i) => i);
    for (const N of [1, 2, 3, 4]) {
      expect(ppAssemble(Array.from({ length: N }, (_, r) => ppSlice(flat, table, N, r)), table, N)).toEqual(flat);
    }
  });

  for (const kind of ['gpipe', '1f1b'] as const) {
    it(`${kind}: every stage runs each F and B once, B after its F; at most ${kind === 'gpipe' ? 'M' : 'N - r'} micro-batches in flight`, () => {
      for (const N of [1, 2, 3, 4, 6]) {
        for (const M of [1, 2, 3, 4, 8, 13]) {
          const stages = pipelineSchedule(kind, N, M);
          expect(stages.length).toBe(N);
          stages.forEach((ops, r) => {
            for (const op of ['F', 'B'] as const) {
              expect(ops.filter((o) => o.op === op).map((o) => o.mb).sort((a, b) => a - b)).toEqual([...Array(M).keys()]);
            }
            for (let m = 0; m < M; m++) expect(ops.findIndex((o) => o.op === 'B' && o.mb === m)).toBeGreaterThan(ops.findIndex((o) => o.op === 'F' && o.mb === m));
            expect(inFlightOf(ops)).toBe(peakInFlight(kind, N, M, r));
            if (kind === '1f1b') expect(inFlightOf(ops)).toBeLessThanOrEqual(N - r);
          });
        }
      }
    });
  }

  it('1f1b follows Megatron: warm-up forwards, one forward one backward, cool-down backwards', () => {
    const show = (N: number, M: number) => pipelineSchedule('1f1b', N, M).map((ops) => ops.map((o) => `${o.op}${o.mb}`).join(' '));
    expect(show(3, 4)).toEqual([
      'F0 F1 F2 B0 F3 B1 B2 B3',
      'F0 F1 B0 F2 B1 F3 B2 B3',
      'F0 B0 F1 B1 F2 B2 F3 B3',
    ]);
    expect(show(4, 2)[0]).toBe('F0 F1 B0 B1');
  });

  it('the bubble is (N-1)/(M+N-1); bytes per step per rank', () => {
    expect(bubbleFraction(1, 4)).toBe(0);
    expect(bubbleFraction(4, 1)).toBe(0.75);
    expect(bubbleFraction(2, 8)).toBeCloseTo(1 / 9);
    const act = 8 * 16 * 32 * 4; // G x T x C floats per step and boundary, whatever M
    const wte = cfg.vocab_size * 32 * 4;
    expect(ppBytesPerStep(cfg, 2, 4)).toEqual([act + wte + 8, act + wte + 8]);
    expect(ppBytesPerStep(cfg, 4, 2)).toEqual([act + wte + 12, 2 * act + 12, 2 * act + 12, act + wte + 12]);
    expect(ppBytesPerStep(cfg, 1, 4)).toEqual([0]);
  });
});
