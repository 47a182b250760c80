// The Compare view: its pure parts in Node (settings in the URL hash, loss differences, timeline overlap,
// the what-if crossover), then end to end with a Vite dev server and headless Chromium: single and DDP
// on 2 workers (tiny, wasm, 6 steps) side by side, the losses coincide, the trace export has one process
// per worker whose main-lane spans tile each step, the results export, the cost model's calibration and
// its "what if"; with worker 1 killed at step 3 ("Break something during the run"): DDP recovers, its
// losses still coincide with single's, the timeline draws the recovery, the exports list it.
// Screenshot: test-results/compare.png.
// Run: npx vitest run --project node test/compare.test.ts

import { mkdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root, startHarness, type Harness } from './harness';
import { makeConfig } from '../src/model/config';
import type { TraceEvent } from '../src/util/trace';
import { COMPARE_HANG_FLOOR_MS, DEFAULT_COMPARE, configFor, distFor, faultsFor, fromHash, middleStep, planOf, splitProblem, toHash, type StrategyKey } from '../src/ui/compare/settings';
import { COINCIDE, dilocoRatio, lossAxes, lossVerdict, maxLossDiff, reference, resultRow, summarize, toCsv } from '../src/ui/compare/summary';
import { buildParamTable } from '../src/model/params';
import { assignBuckets } from '../src/parallel/layout';
import { median } from '../src/util/stats';
import type { RunRecord } from '../src/ui/compare/runner';
import { idleShares, kindOf, overlapFraction, recoveryLabel, stepWindows, tickStep, timeScale } from '../src/ui/compare/timeline';
import { advice, classroom, crossover, explain, whatIfRows, wifiTimeline, type Measured } from '../src/ui/compare/whatif';
import { predict, UNCALIBRATED } from '../src/parallel/costmodel';

describe('compare: pure parts', () => {
  it('round-trips its settings through the URL hash, and names what it cannot use', () => {
    const s = { strategies: ['single', 'fsdp-grad_op'] as const, workers: 3, transport: 'star' as const, steps: 12 };
    expect(toHash({ ...s, strategies: [...s.strategies] })).toBe('#compare?strategies=single,fsdp-grad_op&workers=3&transport=star&steps=12');
    expect(fromHash(toHash({ ...s, strategies: [...s.strategies] })).settings).toEqual({ ...s, strategies: [...s.strategies] });
    expect(fromHash('').present).toBe(false);
    expect(fromHash('#compare').settings).toEqual(DEFAULT_COMPARE);
    const bad = fromHash('#compare?strategies=ddp,zero3&workers=20&transport=pigeon&steps=2');
    expect(bad.settings).toEqual({ ...DEFAULT_COMPARE, strategies: ['ddp'] });
    expect(bad.problems.join('; ')).toMatch(/"zero3".*workers must be a whole number from 2 to 8, got "20".*steps.*transport must be ring, star or shared, got "pigeon"/);
  });

  it('breaks something: the fault in the link, on worker 1 of the strategies with 2 or more workers', () => {
    const s = { ...DEFAULT_COMPARE, steps: 20, fault: { kind: 'kill' as const, step: 10 } };
    expect(toHash(s)).toBe('#compare?strategies=single,ddp,fsdp-full&workers=2&transport=ring&steps=20&break=kill@10');
    expect(fromHash(toHash(s)).settings).toEqual(s);
    expect(fromHash(toHash(DEFAULT_COMPARE)).settings.fault).toBeUndefined();
    expect(middleStep(20)).toBe(10); // timed steps 4..17
    expect(middleStep(6)).toBe(3);
    expect(fromHash('#compare?steps=20&break=hang').settings.fault).toEqual({ kind: 'hang', step: 10 });
    const bad = fromHash('#compare?steps=6&break=melt@2');
    expect(bad.settings.fault).toBeUndefined();
    expect(bad.problems.join()).toContain('KIND one of kill, hang, nan, oom');
    expect(fromHash('#compare?steps=6&break=kill@7').problems.join()).toContain('from 2 to the number of steps (6)');
    expect(faultsFor(s.fault, 1)).toBeUndefined(); // single: no replica to recover from
    expect(faultsFor(s.fault, 2)).toEqual({ inject: [{ kind: 'kill', rank: 1, step: 10 }] });
    expect(faultsFor({ kind: 'hang', step: 3 }, 4)).toEqual({ inject: [{ kind: 'hang', rank: 1, step: 3 }], deadlines: { floorMs: COMPARE_HANG_FLOOR_MS } });
  });

  it('draws a recovery: the traced windows, a band drawn shortened when it dwarfs the steps, its label', () => {
    expect(stepWindows([9, 10, 11, 18, 19, 20])).toEqual([[0, 2], [3, 5]]);
    expect(stepWindows([2, 3, 4, 5, 6])).toEqual([[0, 4]]);
    // 0-100 ms of steps, a 2 s recovery from 40 to 2040, steps again until 2100: the band is drawn as 60% of
    // the other 100 ms, and the scale is linear outside it
    const sc = timeScale(0, 2100, [{ start: 40, end: 2040 }], 1600);
    expect(sc.shortened).toEqual([true]);
    expect(sc.span).toBeCloseTo(160, 9);
    expect(sc.x(40)).toBeCloseTo(400, 9);
    expect(sc.x(2040)).toBeCloseTo(1000, 9);
    expect(sc.x(2100)).toBeCloseTo(1600, 9);
    expect(sc.x(1040)).toBeCloseTo(700, 9);
    const short = timeScale(0, 100, [{ start: 40, end: 50 }], 100); // a short band: not shortened
    expect(short.shortened).toEqual([false]);
    expect(short.x(45)).toBeCloseTo(45, 9);
    const r = { step: 3, rank: 1, cause: 'crash' as const, message: '', detected_ms: 2.6, restored_from: "rank 0's replica", replayed_steps: 0, ms: 1234, started_at: 0, detected_at: 2.6, recovered_at: 1236.6 };
    expect(recoveryLabel(r)).toBe('recovery: worker 1 crash, noticed in 3 ms, recovered in 1.2 s');
  });

  it('gives single the global batch, and measures how far loss curves are apart', () => {
    expect(configFor('single', makeConfig('tiny'), 4).batch_size).toBe(16);
    expect(configFor('ddp', makeConfig('tiny'), 4).batch_size).toBe(4);
    expect(maxLossDiff([4, 3.5, 3], [4, 3.5 + 2e-6, 3 - 5e-6])).toEqual({ max: expect.closeTo(5e-6, 12), step: 3 });
    expect(maxLossDiff([4, NaN], [4, 3]).max).toBeNaN();
    expect(COINCIDE).toBe(1e-4);
    expect(median([3, 1, 2, 10])).toBe(2.5);
    expect(toCsv([{ a: 1, b: 'x,y' }, { a: 2, c: null }])).toBe('a,b,c\n1,"x,y",\n2,,\n');
  });

  it('summarizes the timed steps: the wait, and the part of it spent on a slower worker', () => {
    // 6 steps: 2 of warm-up, then ranks whose waits are (w, 1) with rank 1 slower each time
    const steps = [10, 10, 2, 4, 6, 8].map((w, i) => ({
      step: i + 1, loss: 4 - i / 10, ms: 100, tokens: 512, traced: false,
      ranks: [{ ms: 100, computeMs: 90 - w, commMs: 1, waitMs: w, stragglerMs: w - 1, bytesSent: 10 }, { ms: 100, computeMs: 89, commMs: 1, waitMs: 1, stragglerMs: 0, bytesSent: 10 }],
    }));
    const run = { key: 'ddp', label: 'DDP', dist: { workers: 2, transport: 'ring' }, cfg: { batch_size: 4, grad_accum: 1 }, steps, memory: [] } as unknown as RunRecord;
    const s = summarize(run, undefined);
    expect(s.timedSteps).toBe(4);
    expect(s.waitMs).toBe(median([1.5, 2.5, 3.5, 4.5])); // the mean over workers, the median over timed steps
    expect(s.stragglerMs).toBe(median([0.5, 1.5, 2.5, 3.5]));
    expect(resultRow(s)).toMatchObject({ wait_ms: 3, wait_for_slower_worker_ms: 2 });
  });

  it('counts communication hidden behind compute in a timeline', () => {
    const e = (lane: 'main' | 'comm', cat: TraceEvent['cat'], ts: number, dur: number): TraceEvent => ({ name: 'x', lane, cat, ts, dur });
    // compute 0-10 and 20-30; collectives 5-15 and 25-27: 5 + 2 of 12 ms hidden
    const o = overlapFraction([e('main', 'compute', 0, 10), e('main', 'wait', 10, 10), e('main', 'compute', 20, 10), e('comm', 'comm', 5, 10), e('comm', 'comm', 25, 2)]);
    expect(o.commMs).toBeCloseTo(12, 9);
    expect(o.hiddenMs).toBeCloseTo(7, 9);
    expect(tickStep(47)).toBe(10);
    expect(tickStep(0.9)).toBe(0.2);
  });

  it('what if: GPT-2 124M in 2.7 GB per worker (buddy copy and buffers counted) fits only with FSDP full, from some number of workers on', () => {
    const cfg = makeConfig('gpt2');
    const w = { model: 'gpt2' as const, workers: 8, linkScale: 1, budget: 2.7 * 2 ** 30, transport: 'ring' as const, bucketMb: 25 };
    const c = crossover(cfg, w);
    expect(c.ddpFits).toBe(false);
    expect(c.fsdpFrom).toBeGreaterThan(1);
    const rows = whatIfRows(cfg, w, null);
    expect(rows.map((r) => [r.key, r.fits])).toEqual([['single', false], ['ddp', false], ['fsdp-full', true], ['fsdp-grad_op', false], ['tp', false], ['pp-1f1b', false], ['pp-gpipe', false], ['diloco', false]]);
    // TP cannot split GPT-2's 12 heads 8 ways; PP has at most 12 stages and never fits 2.4 GB
    expect(rows.find((r) => r.key === 'tp')!.split).toBe('tensor parallelism splits the 12 heads among the workers: use 1, 2, 3, 4, 6 or 12 workers (not 8)');
    expect([c.tpFrom, c.ppFrom]).toEqual([null, null]);
  });

  it('model parallelism in the comparison: the same global batch, TP and PP (both schedules) as entries, their splits checked', () => {
    const tiny = makeConfig('tiny'); // batch 4, 4 heads, 2 blocks
    expect(['single', 'ddp', 'fsdp-full', 'tp', 'pp-1f1b', 'pp-gpipe'].map((k) => configFor(k as 'tp', tiny, 2).batch_size)).toEqual([8, 4, 4, 8, 8, 8]);
    expect(distFor('tp', { workers: 2, transport: 'ring' }, 25)).toEqual({ strategy: 'tp', workers: 2, transport: 'ring', bucketMb: 25 });
    expect(distFor('pp-gpipe', { workers: 2, transport: 'star', microbatches: 2 }, 25)).toEqual({ strategy: 'pp', workers: 2, transport: 'star', bucketMb: 25, microbatches: 2, schedule: 'gpipe' });
    expect(distFor('pp-1f1b', { workers: 2, transport: 'ring' }, 25)).toMatchObject({ microbatches: 4, schedule: '1f1b' });
    expect(planOf(distFor('pp-gpipe', { workers: 2, transport: 'ring', microbatches: 8 }, 25))).toMatchObject({ strategy: 'pp', microbatches: 8, schedule: 'gpipe' });
    // the link: PP's micro-batches ride along when a pipeline is compared
    const s = { strategies: ['single', 'ddp', 'tp', 'pp-1f1b', 'pp-gpipe'] as const, workers: 2, transport: 'ring' as const, steps: 6, microbatches: 2 };
    const hash = toHash({ ...s, strategies: [...s.strategies] });
    expect(hash).toBe('#compare?strategies=single,ddp,tp,pp-1f1b,pp-gpipe&workers=2&transport=ring&steps=6&microbatches=2');
    expect(fromHash(hash).settings).toEqual({ ...s, strategies: [...s.strategies] });
    expect(fromHash('#compare?strategies=pp-1f1b&microbatches=0').problems.join()).toContain('microbatches must be a whole number from 1 to 64, got "0"');
    // splits that do not work, named before anything starts
    expect(splitProblem(['single', 'tp'], tiny, { workers: 3, transport: 'ring' })).toBe('TP: tensor parallelism splits the 4 heads among the workers: use 1, 2 or 4 workers (not 3)');
    expect(splitProblem(['pp-1f1b'], tiny, { workers: 3, transport: 'ring' })).toMatch(/^PP 1F1B: .*n_layer 2/);
    expect(splitProblem(['pp-gpipe'], tiny, { workers: 2, transport: 'ring', microbatches: 3 })).toMatch(/^PP GPipe: 3 micro-batches do not divide the step's batch of 8 sequences/);
    expect(splitProblem(['single', 'ddp', 'fsdp-full', 'tp', 'pp-1f1b', 'pp-gpipe'], tiny, { workers: 2, transport: 'ring' })).toBeNull();
  });

  it('the timeline: PP\'s micro-batch spans are forwards and backwards, its waits the bubble, measured per stage', () => {
    const e = (name: string, lane: 'main' | 'comm', cat: TraceEvent['cat'], ts: number, dur: number): TraceEvent => ({ name, lane, cat, ts, dur });
    expect(kindOf(e('F3', 'main', 'compute', 0, 1)).id).toBe('forward');
    expect(kindOf(e('B0', 'main', 'compute', 0, 1)).id).toBe('backward');
    expect(kindOf(e('recv from rank 1', 'main', 'wait', 0, 1)).id).toBe('wait');
    expect(kindOf(e('send to rank 1', 'comm', 'comm', 0, 1)).id).toBe('send');
    expect(kindOf(e('backward h.1 mlp', 'main', 'compute', 0, 1)).id).toBe('backward'); // TP's block halves
    // stage 0 waits 2 + 3 ms (overlapping waits counted once) of its 20 ms; stage 1 none of its 10
    const stage0 = [e('F0', 'main', 'compute', 0, 5), e('recv', 'main', 'wait', 5, 2), e('recv', 'main', 'wait', 6, 1), e('B0', 'main', 'compute', 7, 5), e('recv', 'main', 'wait', 12, 3)];
    expect(idleShares([stage0, [e('F0', 'main', 'compute', 0, 10)]], [20, 10])).toEqual([0.25, 0]);
  });

  it('when is each the better choice: too big for one worker, split it (here only PP 1F1B fits); a slow link, PP moves least', () => {
    const cfg = makeConfig('baby'); // 10.7 M parameters, 6 blocks, 6 heads, batch 8 x 256
    const w = { model: 'baby' as const, workers: 2, linkScale: 1, budget: 0.4 * 2 ** 30, transport: 'ring' as const, bucketMb: 25 };
    const rows = whatIfRows(cfg, w, null);
    expect(rows.filter((r) => r.fits).map((r) => r.key)).toEqual(['pp-1f1b']); // GPipe holds all 4 micro-batches: it does not
    const pp = rows.find((r) => r.key === 'pp-1f1b')!.p;
    expect(pp).toEqual(predict(configFor('pp-1f1b', cfg, 2), planOf(distFor('pp-1f1b', { workers: 2, transport: 'ring' }, 25)), UNCALIBRATED));
    expect(pp.bubble).toBeCloseTo(1 / 5, 12);
    const a = advice(cfg, w, null);
    expect(a.replicaFits).toBe(false);
    expect(a.fits).toEqual(['pp-1f1b']);
    expect(a.memory).toMatch(/^The model is too big for one worker's .* as a replica \(DDP needs .*\): split it\. At 2 workers FSDP full .*, TP .*, PP 1F1B .* per worker; PP 1F1B fits\.$/);
    expect(a.leastTraffic).toBe('pp-1f1b');
    expect(a.traffic).toContain('PP 1F1B moves least');
    expect(a.time).toBeNull(); // no calibration
    // with a calibration and room for everything: DDP is fastest on this link, PP on one 100 times slower
    const m: Measured = { flops: 2e10, flopsFrom: 'a test', link: { transport: 'ring', workers: 2, samples: [], alpha: 2e-5, beta: 1e9 } };
    const roomy = advice(cfg, { ...w, budget: 4 * 2 ** 30 }, m);
    expect(roomy.replicaFits).toBe(true);
    expect(roomy.fastest).toBe('ddp');
    expect(roomy.slowLink).toEqual({ scale: 0.01, fastest: 'pp-1f1b' });
    expect(roomy.time).toMatch(/^Fastest that fits on this link: DDP .*; on a link 100 times slower: PP 1F1B/);
    // the formulas with the numbers plugged in, for TP and PP
    const tiny = makeConfig('tiny');
    const lines = (key: 'tp' | 'pp-1f1b') => explain({ key, label: key, cfg: configFor(key, tiny, 2), dist: distFor(key, { workers: 2, transport: 'ring' }, 25) }, m).lines.join('\n');
    expect(lines('tp')).toContain('comm = 4·L·K = 4·2·1 = 8 all-reduces of a (B, T, C) activation');
    expect(lines('pp-1f1b')).toContain('bubble = (n − 1)/(M + n − 1) = 1/5 = 20% of a step idle');
  });
});

describe('compare: DiLoCo beside per-step DDP', () => {
  it('is a Compare strategy: its H and compression in the link, its options and plan', () => {
    const s = { strategies: ['ddp', 'diloco'] as StrategyKey[], workers: 2, transport: 'ring' as const, steps: 8, innerSteps: 4, outerCompress: 'fp16' as const };
    expect(toHash(s)).toBe('#compare?strategies=ddp,diloco&workers=2&transport=ring&steps=8&inner_steps=4&outer_compress=fp16');
    expect(fromHash(toHash(s)).settings).toEqual(s);
    expect(fromHash('#compare?strategies=diloco&inner_steps=0&outer_compress=zip').problems).toEqual([
      'inner_steps must be a whole number from 1 to 1000, got "0"', 'outer_compress must be none, fp16, int8, got "zip"',
    ]);
    const d = distFor('diloco', s, 25);
    expect(d).toEqual({ strategy: 'diloco', workers: 2, transport: 'ring', bucketMb: 25, innerSteps: 4, outerCompress: 'fp16' });
    expect(distFor('diloco', { workers: 3, transport: 'star' }, 25)).toMatchObject({ innerSteps: 20, outerCompress: 'none' });
    expect(planOf(d)).toMatchObject({ strategy: 'diloco', innerSteps: 4, outerCompress: 'fp16' });
    expect(configFor('diloco', makeConfig('tiny'), 4).batch_size).toBe(4); // splits the global batch, as DDP
  });

  it('bytes per step averaged over its steps (it sends every H), against DDP\'s: measured beside the formula; its loss is other math', () => {
    const P = 1000;
    const mk = (key: 'ddp' | 'diloco', bytes: (i: number) => number, loss: (i: number) => number, ms: number) => ({
      key, label: key === 'ddp' ? 'DDP' : 'DiLoCo', dist: { strategy: key, workers: 2, transport: 'ring', innerSteps: 4, outerCompress: 'none' },
      cfg: { batch_size: 4, grad_accum: 1 }, memory: [],
      steps: Array.from({ length: 8 }, (_, i) => ({
        step: i + 1, loss: loss(i), ms, tokens: 256, traced: false, recovered: false,
        ranks: [0, 1].map(() => ({ ms, computeMs: ms - 5, commMs: 5, waitMs: 0, stragglerMs: 0, bytesSent: bytes(i) })),
      })),
    }) as unknown as RunRecord;
    const ddp = mk('ddp', () => 4 * P, (i) => 4 - i / 10, 100);
    const diloco = mk('diloco', (i) => ((i + 1) % 4 === 0 ? 4 * P : 0), (i) => 4 - i / 12, 60);
    const S = [summarize(ddp, ddp), summarize(diloco, ddp)];
    expect(S[1].bytesPerWorker).toBe(P); // 2 outer all-reduces of 4P over 8 steps
    const r = dilocoRatio(S, diloco)!;
    expect(r.ratio).toBeCloseTo(0.25, 12);
    expect(r.formula).toBeCloseTo(1 / 4, 12);
    expect(dilocoRatio(S, { ...diloco, dist: { ...diloco.dist, outerCompress: 'int8' } } as RunRecord)!.formula).toBeCloseTo(1 / 16, 12);
    // its losses differ from DDP's, as they should: not a broken verdict
    expect(S[1].lossDiff!.max).toBeGreaterThan(1e-4);
    expect(lossVerdict(S)).toBeNull();
    expect(reference([diloco, ddp])).toBe(ddp);
    expect(lossAxes(diloco)).toEqual({ tokens: [256, 512, 768, 1024, 1280, 1536, 1792, 2048], seconds: [0.06, 0.12, 0.18, 0.24, 0.3, 0.36, 0.42, 0.48].map((x) => expect.closeTo(x, 12)) });
  });

  it('its steps over classroom Wi-Fi: measured compute plus the cost model\'s communication, DiLoCo\'s all-reduce every H steps; the what-if\'s classroom verdict', () => {
    const cfg = { ...makeConfig('tiny'), vocab_size: 65 };
    const P = buildParamTable(cfg).total;
    const run = (key: 'ddp' | 'diloco') => ({
      key, label: key, dist: distFor(key, { workers: 2, transport: 'ring', innerSteps: 4 }, 25), cfg, memory: [],
      steps: Array.from({ length: 8 }, (_, i) => ({ step: i + 1, loss: 4, ms: 50, tokens: 256, traced: false, recovered: false, ranks: [0, 1].map(() => ({ ms: 50, computeMs: 40, commMs: 1, waitMs: 0, stragglerMs: 0, bytesSent: 0 })) })),
    }) as unknown as RunRecord;
    const W = 20e6;
    const a = 0.005;
    // DDP over Wi-Fi, 2 workers: 40 ms + each bucket's all-reduce 2(n-1)·alpha + 2(n-1)/n·S/(W/2) = 2·alpha per bucket + 2·(4P + 4)/W in all
    const buckets = assignBuckets(buildParamTable(cfg), 25 * 2 ** 20).length;
    const ddpStep = 40 + 1000 * (buckets * 2 * a + (2 * (4 * P + 4)) / W);
    const ddp = wifiTimeline(run('ddp'), null);
    expect(ddp[0]).toBeCloseTo(ddpStep / 1000, 9);
    expect(ddp[7]).toBeCloseTo((8 * ddpStep) / 1000, 9);
    // DiLoCo: 40 ms on its inner steps, and the outer all-reduce of 4P bytes on steps 4 and 8
    const outer = 1000 * (2 * a + (2 * 4 * P) / W);
    const dl = wifiTimeline(run('diloco'), null);
    expect(dl[2]).toBeCloseTo(0.12, 9);
    expect(dl[3]).toBeCloseTo((160 + outer) / 1000, 9);
    expect(dl[7]).toBeCloseTo((320 + 2 * outer) / 1000, 9);
    // the what-if's classroom: needs a calibration; DDP stops paying before DiLoCo on GPT-2-sized models
    const w = { model: 'setup' as const, workers: 8, linkScale: 1, budget: 4 * 2 ** 30, transport: 'ring' as const, bucketMb: 25, innerSteps: 20 };
    expect(classroom(cfg, w, null)).toBeNull();
    const m: Measured = { flops: 2e10, flopsFrom: 'a test', link: { transport: 'ring', workers: 2, samples: [], alpha: 2e-5, beta: 1e9 } };
    const room = classroom(makeConfig('shakespeare-cpu'), w, m)!;
    expect(room.at.workers).toBe(8);
    expect(room.at.ddpMs).toBeGreaterThan(room.at.dilocoMs);
    expect(room.at.ddpBytes / room.at.dilocoBytes).toBeCloseTo(20 * (4 * buildParamTable(makeConfig('shakespeare-cpu')).total + 4) / (4 * buildParamTable(makeConfig('shakespeare-cpu')).total), 6);
    expect(room.scenario.ddpStopsAt).not.toBeNull();
    expect(room.scenario.dilocoStopsAt === null || room.scenario.dilocoStopsAt > room.scenario.ddpStopsAt!).toBe(true);
    expect(room.models.find((x) => x.name === 'gpt2')).toMatchObject({ ddpPays: false });
    // the what-if table over classroom Wi-Fi: every strategy's link is 20 MB/s / N
    const rows = whatIfRows(makeConfig('shakespeare-cpu'), { ...w, wifi: true }, m);
    const dd = rows.find((r) => r.key === 'ddp')!.p;
    const dlr = rows.find((r) => r.key === 'diloco')!.p;
    expect(dd.bytes_per_rank / dlr.bytes_per_rank).toBeCloseTo(room.at.ddpBytes / room.at.dilocoBytes, 9);
    expect(dd.step_ms).toBeCloseTo(room.at.ddpMs, 6);
  });
});

// ---- the page -----------------------------------------------------------------------------------------

let h: Harness;

describe('the Compare view', () => {
  beforeAll(async () => {
    h = await startHarness('compare-test');
  });

  afterAll(async () => {
    await h?.close();
  });

  it('runs single and DDP side by side: same losses, a timeline, exports, predictions beside measurements', async () => {
    const context = await h.browser.newContext({ viewport: { width: 1440, height: 1000 }, acceptDownloads: true });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    // Worker 1 is killed while DDP trains step 3 (single, one worker, is not broken).
    await page.goto(`${h.base}/?preset=tiny&backend=wasm#compare?strategies=single,ddp&workers=2&transport=ring&steps=6&break=kill@3`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });

    // The link filled the compare form.
    expect(await page.isChecked('#compare-s-single')).toBe(true);
    expect(await page.isChecked('#compare-s-ddp')).toBe(true);
    expect(await page.isChecked('#compare-s-fsdp-full')).toBe(false);
    expect(await page.inputValue('#compare-workers')).toBe('2');
    expect(await page.inputValue('#compare-steps')).toBe('6');
    expect(await page.inputValue('#compare-break')).toBe('kill');
    expect(await page.inputValue('#compare-break-step')).toBe('3');
    expect(await page.textContent('#compare-setup')).toContain('global batch 8 sequences (256 tokens)');

    await expect.poll(() => page.isEnabled('#compare-run'), { timeout: 30_000 }).toBe(true);
    await page.click('#compare-run');
    await expect.poll(() => page.textContent('#compare-progress'), { timeout: 30_000 }).toMatch(/running (single|DDP) \d\/6/);
    await page.waitForSelector('#compare[data-state="done"]', { timeout: 100_000 });
    expect(await page.textContent('#compare-error')).toBe('');

    // Both rows, with their speed, traffic and memory.
    const rows = await page.locator('#compare-results tbody tr').evaluateAll((els) => els.map((el) => ({ ...(el as HTMLElement).dataset })));
    expect(rows.map((r) => r.strategy)).toEqual(['single', 'ddp']);
    for (const r of rows) {
      expect(Number(r.tokensPerS)).toBeGreaterThan(0);
      expect(Number(r.memory)).toBeGreaterThan(0);
    }
    expect(Number(rows[0].bytes)).toBe(0);
    expect(Number(rows[1].bytes)).toBeGreaterThan(0);
    // DDP recovered from the kill, and says so; single was not broken.
    expect(rows.map((r) => r.recoveries)).toEqual(['0', '1']);
    const ddpRow = page.locator('#compare-results tbody tr[data-strategy="ddp"] .cmp-recovered');
    expect(await ddpRow.textContent()).toContain('1 recovery');
    expect(await ddpRow.getAttribute('title')).toContain('Worker 1 crashed during step 3');
    expect(await page.textContent('#compare-results tbody tr[data-strategy="single"] .cmp-recovered')).toBe('not broken: one worker');

    // Same samples, same math: the losses coincide (the killed step was trained again, from the same state).
    const verdict = await page.textContent('#compare-verdict');
    expect(verdict).toMatch(/The loss curves coincide \(max difference (0|\de-\d+)\)/);
    expect(Number(rows[1].lossDiff)).toBeLessThan(1e-4);
    expect(await page.locator('#compare-loss-chart canvas').count()).toBe(1);

    // The timeline of the last run (DDP): two workers, compute blocks and all-reduces.
    expect(await page.getAttribute('#compare-timeline svg', 'aria-label')).toContain('DDP: 2 workers');
    expect(await page.locator('#compare-timeline g[data-kind="backward"]').count()).toBeGreaterThan(0);
    expect(await page.locator('#compare-timeline g[data-kind="all-reduce"]').count()).toBeGreaterThan(0);
    // ... with the recovery across both workers, between step 2 and step 3 trained again.
    const band = page.locator('#compare-timeline g.cmp-recovery');
    expect(await band.count()).toBe(1);
    const b = await band.evaluate((el) => ({ ...(el as HTMLElement).dataset }));
    expect(b).toMatchObject({ step: '3', rank: '1', cause: 'crash' });
    expect(Number(b.ms)).toBeGreaterThan(0);
    expect(await band.locator('text').textContent()).toMatch(/^recovery: worker 1 crash, noticed in [\d.]+ m?s, recovered in [\d.]+ m?s/);
    expect(await page.locator('#compare-timeline text.cmp-step-label[data-replayed="true"]').getAttribute('data-step')).toBe('3');
    const stepX = async (step: number) => Number(await page.locator(`#compare-timeline text.cmp-step-label[data-step="${step}"]`).getAttribute('x'));
    const bandX = Number(await band.locator('rect').first().getAttribute('x'));
    expect(bandX).toBeGreaterThan(await stepX(2));
    expect(bandX).toBeLessThan(await stepX(3));
    expect(await page.locator('.cmp-timeline-head .cmp-pill[aria-pressed="true"]').textContent()).toBe('last 5 steps · recovery');
    await page.hover('#compare-timeline g[data-kind="all-reduce"] >> nth=0');
    expect(await page.textContent('.cmp-readout')).toMatch(/worker \d · all-reduce · [\d.]+ ms · .* sent/);

    // The trace export: one process per worker; each worker's top-level main-lane spans tile its steps.
    const [traceDownload] = await Promise.all([page.waitForEvent('download'), page.click('#compare-trace')]);
    expect(traceDownload.suggestedFilename()).toMatch(/^trace-ddp-2w-ring-steps\d+-\d+\.json$/);
    const trace = JSON.parse(readFileSync((await traceDownload.path())!, 'utf8'));
    type X = { name: string; ph: string; pid: number; tid: number; ts: number; dur: number; args?: { name?: string } };
    const events: X[] = trace.traceEvents;
    expect(events.filter((e) => e.ph === 'M' && e.name === 'process_name').map((e) => [e.pid, e.args?.name])).toEqual([[0, 'worker 0'], [1, 'worker 1']]);
    const steps: { step: number; worker_ms: number[] }[] = trace.metadata.steps;
    expect(steps.map((s) => s.step)).toEqual([2, 3, 4, 5, 6]); // the last two, and those around the fault
    expect(trace.metadata.recoveries).toMatchObject([{ step: 3, worker: 1, cause: 'crash' }]);
    for (const pid of [0, 1]) {
      const main = events.filter((e) => e.ph === 'X' && e.pid === pid && e.tid === 0);
      const inside = (e: X, o: X) => o !== e && o.ts <= e.ts && e.ts + e.dur <= o.ts + o.dur;
      const top = main.filter((e) => !main.some((o) => inside(e, o)));
      const spans = top.reduce((t, e) => t + e.dur, 0) / 1000;
      const stepMs = steps.reduce((t, s) => t + s.worker_ms[pid], 0);
      expect(Math.abs(spans / stepMs - 1), `worker ${pid}: spans ${spans.toFixed(2)} ms, steps ${stepMs.toFixed(2)} ms`).toBeLessThan(0.1);
      expect(events.some((e) => e.pid === pid && e.tid === 1 && e.name === 'all-reduce')).toBe(true);
    }

    // The results as CSV.
    const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.click('#compare-csv')]);
    const csv = readFileSync((await csvDownload.path())!, 'utf8').trim().split('\n');
    expect(csv[0]).toContain('strategy,workers,transport');
    expect(csv.slice(1).map((l) => l.split(',')[0])).toEqual(['single', 'DDP']);
    const col = csv[0].split(',').indexOf('recoveries');
    expect(csv.slice(1).map((l) => l.split(',')[col])).toEqual(['0', '1']);

    // The run calibrated the cost model (single's compute, the ring's all-reduce): predictions beside measurements.
    await page.waitForSelector('#compare-calibration[data-calibrated="true"]');
    const pvm = await page.locator('#compare-predicted tbody tr').evaluateAll((els) => els.map((el) => ({ ...(el as HTMLElement).dataset })));
    expect(pvm.map((r) => r.strategy)).toEqual(['single', 'ddp']);
    for (const r of pvm) expect(Number(r.predictedMs)).toBeGreaterThan(0);
    console.log(`[compare] ${await page.textContent('#compare-calibration')}`);
    for (const r of pvm) console.log(`[compare] ${r.strategy}: predicted ${Number(r.predictedMs).toFixed(1)} ms/step, measured ${Number(r.measuredMs).toFixed(1)} ms/step`);
    const [jsonDownload] = await Promise.all([page.waitForEvent('download'), page.click('#compare-json')]);
    const json = JSON.parse(readFileSync((await jsonDownload.path())!, 'utf8'));
    expect(json.results.map((r: { strategy: string }) => r.strategy)).toEqual(['single', 'DDP']);
    expect(json.results[1].predicted_step_ms).toBeGreaterThan(0);
    expect(json.calibration.transport).toBe('ring');
    expect(json.setup.batch_size).toBe(4);
    expect(json.losses.DDP).toHaveLength(6);
    expect(json.settings.fault).toEqual({ kind: 'kill', step: 3 });
    expect(json.results[0].recoveries).toEqual([]);
    expect(json.results[1].recoveries).toMatchObject([{ step: 3, worker: 1, cause: 'crash', restored_from: "rank 0's replica", replayed_steps: 0 }]);
    expect(json.results[1].recoveries[0].recovery_ms).toBeGreaterThan(0);
    await page.click('.cmp-formulas summary');
    expect(await page.textContent('.cmp-explained')).toContain('compute = B·K·T × FLOPs/token');

    // What if: GPT-2 small with 2.7 GB per worker on 8 workers: only FSDP full fits (with its buddy copy and buffers counted).
    await page.selectOption('#whatif-model', 'gpt2');
    await page.fill('#whatif-budget', '2.7');
    await page.locator('#whatif-workers').fill('8');
    await expect.poll(() => page.textContent('#compare-crossover')).toContain('FSDP is the only option from');
    const fits = await page.locator('#compare-whatif tbody tr').evaluateAll((els) => els.map((el) => [(el as HTMLElement).dataset.strategy, (el as HTMLElement).dataset.fits]));
    expect(fits).toEqual([['single', 'false'], ['ddp', 'false'], ['fsdp-full', 'true'], ['fsdp-grad_op', 'false'], ['tp', 'false'], ['pp-1f1b', 'false'], ['pp-gpipe', 'false'], ['diloco', 'false']]);
    expect(await page.textContent('#compare-whatif tr[data-strategy="tp"] .cmp-badge')).toBe('cannot split'); // 12 heads, 8 workers

    // The settings are in the link.
    expect(page.url()).toContain('#compare?strategies=single,ddp&workers=2&transport=ring&steps=6&break=kill@3');

    mkdirSync(root + 'test-results', { recursive: true });
    await page.locator('#compare').screenshot({ path: root + 'test-results/compare.png' });
    await page.locator('#compare .cmp-run-card').screenshot({ path: root + 'test-results/compare-settings.png' });
    await page.locator('#compare-timeline').screenshot({ path: root + 'test-results/compare-timeline.png' });
    // Charts and the timeline follow the page's width (without a "ResizeObserver loop" error).
    const wide = await page.getAttribute('#compare-timeline svg', 'width');
    await page.setViewportSize({ width: 900, height: 1000 });
    await expect.poll(() => page.getAttribute('#compare-timeline svg', 'width')).not.toBe(wide);
    expect(await page.isVisible('#banner')).toBe(false);
    expect(errors).toEqual([]);
    await context.close();
  });
});
