// The cost model's side of the Compare view (pure: no DOM). Every number comes from
// src/parallel/costmodel.ts (predict, achievedFlops, flopsPerToken); this file only chooses what to ask it:
// the calibration from measurements, predictions for the runs that were measured, the "what if" table
// (more workers, a bigger model, a slower link, a memory budget), where FSDP becomes the only strategy
// that fits, when each strategy is the better choice (a model too big for one worker: FSDP, TP or PP; a
// slow link: PP moves least), and the formulas with this machine's numbers plugged in.

import { PRESETS, PRESET_NAMES, makeConfig, type PresetName, type RunConfig } from '../../model/config';
import { buildParamTable } from '../../model/params';
import {
  BYTES_PER_VALUE, PAYS_EFFICIENCY, UNCALIBRATED, WIFI_ALPHA_S, WIFI_BYTES_PER_S, achievedFlops, activationBytes, drift, flopsPerToken, perTransport, predict, wifiCalibration, wifiScenario, workerFlops,
  type Calibration, type OuterCompress, type Prediction, type Wifi, type WifiScenario,
} from '../../parallel/costmodel';
import type { TransportKind } from '../../parallel/collectives';
import { assignBuckets, gradientSync, shardLayout } from '../../parallel/layout';
import { bubbleFraction, stageBlocks } from '../../parallel/pp-layout';
import type { LinkCalibration, RunRecord } from './runner';
import { NOT_SAME_MATH, STRATEGY_LABELS, WHATIF_KEYS, configFor, distFor, planOf, splitProblem, type StrategyKey } from './settings';
import { timedSteps } from './summary';
import { median } from '../../util/stats';
import * as fmt from '../format';

/** What calibration measured on this machine. */
export interface Measured {
  flops: number; // training FLOP/s of one worker
  flopsFrom: string; // how it was measured, in words
  cores?: number; // CPU backends: the cores workers share (navigator.hardwareConcurrency); none on a GPU
  link: LinkCalibration;
}

/** FLOP/s from a one-worker run: the model's FLOPs of a step over its median compute time. */
export function flopsFromRun(run: RunRecord): { flops: number; computeMs: number } {
  const computeMs = median(timedSteps(run.steps).map((s) => s.ranks[0].computeMs));
  return { flops: achievedFlops(run.cfg, computeMs), computeMs };
}

/** The cost model's Calibration; linkScale < 1 is a slower link (beta times linkScale). */
export function toCalibration(m: Measured, linkScale = 1): Calibration {
  return {
    flops: m.flops, cores: m.cores, concurrent: m.link.concurrent, stepOverheadMs: m.link.stepOverheadMs, hostCopy: m.link.hostCopy,
    alpha: perTransport(m.link.alpha), beta: perTransport(m.link.beta * linkScale),
  };
}

/**
 * The calibration a measured run is predicted with: the link's, and what its own workers got, measured
 * by the probes right before and right after it (RunRecord.probe): the load of the moment, not of the
 * calibration's.
 */
export function runCalibration(run: Pick<RunRecord, 'probe'>, m: Measured): Calibration {
  const cal = toCalibration(m);
  const p = run.probe;
  if (!p) return cal;
  if (p.workers === 1) return { ...cal, flops: p.flops, stepOverheadMs: p.overheadMs };
  return { ...cal, concurrent: { workers: p.workers, flops: p.flops, stragglerMs: p.stragglerMs }, stepOverheadMs: p.overheadMs };
}

/** The prediction for a measured run, with the config and options it ran with. */
export function predictRun(run: RunRecord, m: Measured | null): Prediction {
  return predict(run.cfg, planOf(run.dist), m ? runCalibration(run, m) : UNCALIBRATED);
}

/**
 * A run far from its prediction: the gap (measured / predicted - 1) and why, when it is more than 20%:
 * the machine's load changed during the run (its probes before and after disagree), or since the
 * calibration. null when the prediction holds.
 */
export function runDrift(run: RunRecord, predictedMs: number, measuredMs: number): { error: number; drifted: boolean; loadChanged: boolean; note: string | null } {
  const d = drift(predictedMs, measuredMs);
  const change = run.probe?.change ?? 0;
  const loadChanged = Math.abs(change) > 0.2;
  const pc = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(0)}%`;
  const note = !d.drifted ? null
    : loadChanged ? `the computer's load changed during this run: its workers computed ${Math.abs(100 * change).toFixed(0)}% ${change > 0 ? 'slower' : 'faster'} after it than before (probes around the run); measured ${pc(d.error)} against the prediction`
      : `measured ${pc(d.error)} against the prediction: conditions changed (other programs took or left the cores?); press Calibrate, or run again`;
  return { ...d, loadChanged, note };
}

// ---- what if -------------------------------------------------------------------------------------------

export type WhatIfModel = 'setup' | PresetName;

export interface WhatIf {
  model: WhatIfModel;
  workers: number; // 1..64
  linkScale: number; // 1 = the measured link; 0.1 = ten times slower
  budget: number; // bytes of memory per worker
  transport: TransportKind;
  bucketMb: number;
  microbatches?: number; // PP's (DEFAULT_MICROBATCHES when absent)
  innerSteps?: number; // DiLoCo's H (DEFAULT_INNER_STEPS when absent)
  outerCompress?: OuterCompress; // DiLoCo's compression ('none' when absent)
  /** Classroom Wi-Fi: instead of the measured link, one medium of 20 MB/s shared by all the workers, each a laptop of its own. */
  wifi?: boolean;
}

export const WHATIF_MAX_WORKERS = 64;
/** The largest class the classroom Wi-Fi scenario looks at. */
export const CLASS_MAX = 32;

/** The config a what-if model stands for: the page's setup, or a preset as it comes. */
export function whatIfConfig(model: WhatIfModel, setup: RunConfig | null): RunConfig {
  if (model === 'setup' && setup) return setup;
  return makeConfig(model === 'setup' ? 'shakespeare-cpu' : model);
}

export function presetLabel(p: PresetName): string {
  const c = PRESETS[p];
  return `${p} (${fmt.compact(buildParamTable(c).total)})`;
}

export interface WhatIfRow {
  key: StrategyKey;
  label: string;
  workers: number;
  p: Prediction; // times are meaningful only with a calibration
  fits: boolean; // it can split the model this way, and its memory per worker is within the budget
  split: string | null; // why this many workers cannot split the model this way (TP: heads; PP: blocks, micro-batches)
}

type Setting = Pick<WhatIf, 'transport' | 'bucketMb' | 'microbatches' | 'innerSteps' | 'outerCompress'>;

function need(key: StrategyKey, cfg: RunConfig, n: number, w: Setting, cal: Calibration): Prediction {
  const d = distFor(key, { workers: n, transport: w.transport, microbatches: w.microbatches, innerSteps: w.innerSteps, outerCompress: w.outerCompress }, w.bucketMb);
  return predict(configFor(key, cfg, n), planOf(d), cal);
}

/** The classroom Wi-Fi of a what-if: 20 MB/s shared; the latency measured through the relay when the link is the network's, else a Wi-Fi's few ms. */
export function wifiOf(m: Measured | null): Wifi {
  return { total: WIFI_BYTES_PER_S, alpha: m?.link.transport === ('network' as TransportKind) ? m.link.alpha : WIFI_ALPHA_S };
}

/** The calibration of a what-if for n workers: the measured link (slowed by linkScale), or the classroom's Wi-Fi. */
function whatIfCalibration(w: WhatIf, m: Measured | null, n: number): Calibration {
  if (!m) return UNCALIBRATED;
  return w.wifi ? wifiCalibration(toCalibration(m), n, wifiOf(m)) : toCalibration(m, w.linkScale);
}

/** Why n workers cannot run key on this model (checkSplit's words), or null. */
function splitOf(key: StrategyKey, cfg: RunConfig, n: number, w: Setting): string | null {
  if (key === 'single') return null;
  const p = splitProblem([key], cfg, { workers: n, transport: w.transport, microbatches: w.microbatches });
  return p ? p.replace(/^[^:]+: /, '') : null;
}

/** Every strategy at the what-if's workers, model, link and budget (single, TP and PP train their global batch at once). */
export function whatIfRows(cfg: RunConfig, w: WhatIf, m: Measured | null): WhatIfRow[] {
  const cal = whatIfCalibration(w, m, w.workers);
  return WHATIF_KEYS.map((key) => {
    const p = need(key, cfg, w.workers, w, cal);
    const split = splitOf(key, cfg, w.workers, w);
    return { key, label: STRATEGY_LABELS[key], workers: key === 'single' ? 1 : w.workers, p, fits: !split && p.memory.total <= w.budget, split };
  });
}

/**
 * Memory per worker of each strategy for 1..max workers (the what-if chart); null where that many
 * workers cannot split the model that way (TP: not a divisor of n_head; PP: more stages than blocks).
 */
export function memoryCurves(cfg: RunConfig, w: Setting, max = WHATIF_MAX_WORKERS): { workers: number[]; bytes: Record<StrategyKey, (number | null)[]> } {
  const workers = Array.from({ length: max }, (_, i) => i + 1);
  const bytes = Object.fromEntries(WHATIF_KEYS.map((k) => [k, workers.map((n) => (splitOf(k, cfg, n, w) ? null : need(k, cfg, n, w, UNCALIBRATED).memory.total))])) as Record<StrategyKey, (number | null)[]>;
  return { workers, bytes };
}

export interface Crossover {
  ddpNeed: number; // per worker, the same for any number of workers
  ddpFits: boolean;
  fsdpFrom: number | null; // fewest workers at which FSDP full fits the budget
  gradOpFrom: number | null;
  tpFrom: number | null; // fewest workers (a divisor of n_head) at which TP fits
  ppFrom: number | null; // fewest stages at which PP 1F1B fits
  fsdpNeed: number; // FSDP full's need at the what-if's workers
  fsdpFloor: number; // FSDP full's need at the most workers (it never gets lower)
  activations: number; // per worker (not sharded)
}

/** Where FSDP becomes the only strategy that fits: DDP's need does not shrink with workers, FSDP's does. */
export function crossover(cfg: RunConfig, w: WhatIf, max = WHATIF_MAX_WORKERS): Crossover {
  const curves = memoryCurves(cfg, w, max);
  // from 2 workers on: with one, FSDP, TP and PP are not parallel at all
  const first = (k: StrategyKey) => {
    const i = curves.bytes[k].findIndex((b, j) => curves.workers[j] >= 2 && b !== null && b <= w.budget);
    return i < 0 ? null : curves.workers[i];
  };
  const ddpNeed = curves.bytes.ddp[Math.min(1, max - 1)]!;
  return {
    ddpNeed,
    ddpFits: ddpNeed <= w.budget,
    fsdpFrom: first('fsdp-full'),
    gradOpFrom: first('fsdp-grad_op'),
    tpFrom: first('tp'),
    ppFrom: first('pp-1f1b'),
    fsdpNeed: curves.bytes['fsdp-full'][w.workers - 1]!,
    fsdpFloor: curves.bytes['fsdp-full'][max - 1]!,
    activations: activationBytes(cfg, cfg.batch_size),
  };
}

// ---- the formulas, with the numbers plugged in -----------------------------------------------------------

export interface Explained {
  key: StrategyKey;
  label: string;
  lines: string[];
}

const ms = (x: number) => `${x.toPrecision(3)} ms`;
const mb = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(2)} MB` : `${(b / 2 ** 10).toFixed(1)} KB`);
const us = (s: number) => `${(s * 1e6).toFixed(1)} µs`;
const gbs = (b: number) => `${(b / 1e9).toFixed(2)} GB/s`;
const big = (n: number) => n.toLocaleString('en-US');

/** One strategy's prediction, term by term, as a teacher would write it on the board. */
export function explain(run: Pick<RunRecord, 'key' | 'label' | 'cfg' | 'dist'> & Partial<Pick<RunRecord, 'probe'>>, m: Measured): Explained {
  const { cfg, dist } = run;
  const cal = runCalibration(run, m);
  const p = predict(cfg, planOf(dist), cal);
  const table = buildParamTable(cfg);
  const P = table.total;
  const n = dist.workers;
  const a = cal.alpha[dist.transport];
  const b = cal.beta[dist.transport];
  const B = cfg.batch_size;
  const K = cfg.grad_accum;
  const T = cfg.block_size;
  const C = cfg.n_embd;
  const L = cfg.n_layer;
  const fpt = flopsPerToken(cfg);
  const sync = gradientSync(dist);
  const share = cal.cores ? Math.min(1, cal.cores / n) : 1; // predict's share of a core per CPU worker
  const probe = n > 1 && cal.concurrent?.workers === n ? cal.concurrent : null; // what predict uses when it fits
  const flops = probe
    ? `${(probe.flops / 1e9).toFixed(2)} GFLOP/s (each of ${n} workers computing at once, measured${run.probe ? ' right before and after this run' : ''})`
    : share < 1 ? `${(workerFlops(cal, n) / 1e9).toFixed(2)} GFLOP/s (${(cal.flops / 1e9).toFixed(2)} GFLOP/s of one worker, the ${cal.cores} cores shared by ${n} workers)` : `${(cal.flops / 1e9).toFixed(2)} GFLOP/s${run.probe ? ' (measured right before and after this run)' : ''}`;
  const perToken = `(FLOPs/token = 6N + 12·L·H·Q·T = 6·${big(P - T * C)} + 12·${L}·${cfg.n_head}·${C / cfg.n_head}·${T})`;
  const lines = [
    sync === 'tensor' && n > 1
      ? `compute = B·K·T × (1/${n} of the FLOPs of the split weights and of attention, all of the embeddings', the head's and the LayerNorms') ÷ FLOP/s = ${B}·${K}·${T} tokens on every worker ÷ ${flops} = ${ms(p.compute_ms)}   ${perToken}`
      : sync === 'pipeline' && n > 1
        ? `compute = the slowest stage's blocks (and the head, on the last stage) for all ${dist.microbatches ?? 4} micro-batches: B·K·T = ${B}·${K}·${T} tokens through ${stageList(L, n)} ÷ ${flops} = ${ms(p.compute_ms)}   ${perToken}`
        : `compute = B·K·T × FLOPs/token ÷ FLOP/s = ${B}·${K}·${T} × ${big(fpt)} ÷ ${flops} = ${ms(p.compute_ms)}   ${perToken}`,
  ];
  const star = dist.transport === 'star';
  const arTerm = star ? '2α + 2n·S/β' : '2(n−1)·α + 2(n−1)/n · S/β';
  const halfTerm = star ? '2α + n·(S + S/n)/β' : '(n−1)·α + (n−1)/n · S/β';
  const link = `n = ${n}, α = ${us(a)}, β = ${gbs(b)} (${dist.transport})`;
  if (n === 1) {
    lines.push('comm = 0: one worker has nobody to talk to');
  } else if (dist.strategy === 'diloco') {
    const H = p.outer?.inner_steps ?? 20;
    const c = dist.outerCompress ?? 'none';
    const bpv = BYTES_PER_VALUE[c];
    lines.push(`comm = every H = ${H} steps one all-reduce of the pseudo-gradients, S = ${bpv}·P = ${mb(bpv * P)} (${c === 'none' ? 'fp32' : c}), ${arTerm} = ${ms(p.outer?.comm_ms ?? 0)}, ÷ H per step; ${link} → ${ms(p.comm_ms)}; nothing between (each worker trains its own copy)`);
  } else if (sync === 'all-reduce') {
    const buckets = assignBuckets(table, dist.bucketMb * 2 ** 20);
    lines.push(`comm = ${buckets.length} bucket all-reduce${buckets.length > 1 ? 's' : ''} of the gradients, S = 4·P = ${mb(4 * P)} in all, each ${arTerm}; ${link} → ${ms(p.comm_ms)}`);
  } else if (sync === 'tensor') {
    lines.push(`comm = 4·L·K = 4·${L}·${K} = ${4 * L * K} all-reduces of a (B, T, C) activation (2 in forward, 2 in backward per block), S = 4·B·T·C = ${mb(4 * B * T * C)} each, ${arTerm}, and one of the gradient norm; ${link} → ${ms(p.comm_ms)}`);
  } else if (sync === 'pipeline') {
    const M = dist.microbatches ?? 4;
    lines.push(
      `comm = each boundary carries every micro-batch's activation forward and its gradient back: 2(M + n − 2) = ${2 * (M + n - 2)} messages on the critical path of S = 4·B·K·T·C/M = ${mb((4 * B * K * T * C) / M)} (α + S/β each), ` +
        `and the tied wte's gradient between the first and the last stage (${mb(4 * cfg.vocab_size * C)}); ${link} → ${ms(p.comm_ms)}`,
    );
    lines.push(`bubble = (n − 1)/(M + n − 1) = ${n - 1}/${M + n - 1} = ${pct(bubbleFraction(n, M))} of a step idle: compute × (n − 1)/M = ${ms(p.bubble_ms ?? 0)} (${dist.schedule ?? '1f1b'}; 1F1B and GPipe idle the same, 1F1B holds fewer micro-batches)`);
  } else {
    const [root, ...blocks] = table.units.map((u) => 4 * shardLayout(u, n).padded);
    const gathers = dist.shard === 'full' ? 2 : 1;
    lines.push(
      `comm = per micro-batch (K = ${K}): all-gather and reduce-scatter of the root (S = ${mb(root)}), ${gathers === 2 ? '2 all-gathers (forward, backward)' : '1 all-gather'} and 1 reduce-scatter of each of ${blocks.length} blocks (S = ${mb(blocks[0] ?? 0)} each), ` +
        `each ${halfTerm}, and 2 scalar all-reduces; ${link} → ${ms(p.comm_ms)}`,
    );
  }
  const wait = p.sync_points && p.wait_ms > 0 && !p.bubble_ms ? ` + waiting for the slowest worker at each of the ${p.sync_points} points the workers meet (${p.sync_points} × ${ms(p.wait_ms / p.sync_points)}, its lag measured with the ${n} workers computing at once: ${ms(p.wait_ms)})` : '';
  const fixed = p.fixed_ms > 0 ? ` + fixed costs (${ms(p.fixed_ms)}: the coordinator's round trips to the workers${p.memory.buddy ? ', and the buddy copies: each worker\'s part to its neighbour, two more round trips' : ''})` : '';
  const copies = p.copy_ms > 0 ? ` + copies between the backend and JavaScript (${ms(p.copy_ms)}: gradients read back, results uploaded)` : '';
  const bubble = p.bubble_ms ? ` + the bubble (${ms(p.bubble_ms)})` : '';
  const model = sync === 'tensor' || sync === 'pipeline';
  lines.push(`step = compute + comm${bubble}${copies}${wait}${fixed} = ${ms(p.step_ms)};  tokens/s = ${model ? 'B·K·T' : 'n·B·K·T'} ÷ step = ${model ? `${B * K * T}` : `${n}·${B * K * T}`} ÷ ${ms(p.step_ms)} = ${Math.round(p.tokens_per_s).toLocaleString('en-US')}` +
    (model && n > 1 ? ' (every worker works on the same batch)' : ''));
  lines.push(`bytes sent per worker per step = ${mb(p.bytes_per_rank)}${p.outer ? ` (${mb(p.outer.bytes)} once every ${p.outer.inner_steps} steps)` : ''}${p.bytes_by_rank ? ` (the busiest stage; by stage: ${p.bytes_by_rank.map(mb).join(', ')})` : ''}` +
    (n > 1 && !p.bytes_by_rank ? (star ? ' (S to the page per collective)' : ' (ring: 2(n−1)/n · S per all-reduce, (n−1)/n · S per all-gather or reduce-scatter)') : ''));
  const mem = p.memory;
  const state = mem.params + mem.grads + mem.optimizer;
  const outerState = dist.strategy === 'diloco' ? 2 * mem.params : 0; // DiLoCo: the global model and the outer momentum
  const perParam = (mem.optimizer - outerState > 2 * mem.params ? 20 : 16) + (outerState ? 8 : 0);
  const what = (perParam - (outerState ? 8 : 0) === 20 ? 'weights 4 + grads 4 + AdamW 8 + the host optimizer\'s master copy 4' : 'weights 4 + grads 4 + AdamW 8') +
    (outerState ? ' + DiLoCo\'s global model 4 and outer momentum 4' : '');
  lines.push(
    (sync === 'shard' && n > 1
      ? `memory = 16 bytes × P/n (weights 4 + grads 4 + AdamW 8, sharded; its AdamW runs on the shards, with no master copy) = 16 × ${big(Math.round(mem.params / 4))} (+ ${mb(mem.optimizer - 8 * (mem.params / 4))} of weight-decay masks) = ${mb(state)}, + gathered units at the peak ${mb(mem.gathered_peak)} (the root and ${dist.shard === 'grad_op' ? 'every block' : dist.prefetch === false ? 'one block' : 'two blocks: the next one arrives, prefetched, before this one is freed'})`
      : sync === 'tensor' && n > 1
        ? `memory = ${perParam} bytes (${what}) × the worker's ${big(Math.round(mem.params / 4))} parameters (1/${n} of every split weight, all of the replicated ones) = ${mb(state)}`
        : sync === 'pipeline' && n > 1
          ? `memory = ${perParam} bytes (${what}) × the largest stage's ${big(Math.round(mem.params / 4))} parameters = ${mb(state)}`
          : `memory = ${perParam} bytes × P (${what}) = ${perParam} × ${big(P)} = ${mb(state)}`) +
      (sync === 'pipeline' && n > 1
        ? `, + the activations of the micro-batches in flight (${dist.schedule === 'gpipe' ? 'GPipe: all M' : '1F1B: at most n − r on stage r'}) ${mb(mem.activations_peak)} → ${mb(mem.total)} per worker`
        : `, + activations 4·L·(19·B·T·C + 2·B·H·T²)${sync === 'tensor' && n > 1 ? ' (16 of the 19 widths and the attention maps split 1/n)' : ''} = ${mb(mem.activations_peak)}`) +
      (mem.buddy ? `, + the buddy copy of a neighbour's part (12 bytes per parameter of it: weights, m, v) ${mb(mem.buddy)}` : '') +
      (mem.comm_buffers ? `, + communication buffers ${mb(mem.comm_buffers)}` : '') + ` → ${mb(mem.total)} per worker`,
  );
  return { key: run.key, label: run.label, lines };
}

function stageList(L: number, n: number): string {
  const sizes = Array.from({ length: n }, (_, r) => {
    const [lo, hi] = stageBlocks(L, n, r);
    return hi - lo;
  });
  return sizes.every((x) => x === sizes[0]) ? `${sizes[0]} block${sizes[0] > 1 ? 's' : ''} per stage` : `stages of ${sizes.join(', ')} blocks`;
}

const pct = (x: number) => `${Math.round(100 * x)}%`;

// ---- when each is the better choice --------------------------------------------------------------------

/** In a few words, when a strategy is the one to choose (the what-if table's last column). */
export const BETTER_WHEN: Record<StrategyKey, string> = {
  single: 'the model and the batch fit one worker, and one is all there is',
  ddp: 'a whole replica fits every worker: the simplest, and its traffic does not grow with the batch',
  'fsdp-full': 'a replica does not fit: memory shrinks with every worker, at about 1.5× DDP\'s traffic',
  'fsdp-noprefetch': 'never: it is FSDP full with the all-gathers left exposed, to see what prefetch hides',
  'fsdp-grad_op': 'a replica does not fit but a gathered model nearly does: fewer gathers than FSDP full',
  tp: 'one layer or its activations are too big for a worker, on a very fast link: its traffic grows with the batch',
  'pp-1f1b': 'the model is too big and the link is slow: only activations between stages move; it pays the bubble',
  'pp-gpipe': 'as PP 1F1B, but simpler: it holds all M micro-batches\' activations, so it needs more memory',
  diloco: 'a replica fits but the link is slow (a class on Wi-Fi): 1/H of DDP\'s traffic, at some loss per token',
};

export interface Advice {
  fits: StrategyKey[]; // at the what-if's workers and budget
  replicaFits: boolean; // DDP's whole replica fits
  leastTraffic: StrategyKey | null; // of the strategies with 2 or more workers that can split the model
  fastest: StrategyKey | null; // of those that fit, at the what-if's link (calibrated only)
  slowLink: { scale: number; fastest: StrategyKey | null } | null; // the same on a link 100 times slower
  memory: string;
  traffic: string;
  time: string | null;
}

/**
 * When each strategy is the better choice, from predict()'s numbers at the what-if's model, workers,
 * link and budget: which fit (a model too big for one worker's memory: FSDP, TP or PP); which moves
 * least per step (on a slow link, usually PP: only the activations between stages); with a calibration,
 * which is fastest here and on a link 100 times slower.
 */
export function advice(cfg: RunConfig, w: WhatIf, m: Measured | null): Advice {
  const rows = whatIfRows(cfg, w, m);
  const row = (k: StrategyKey) => rows.find((r) => r.key === k)!;
  const b = fmt.bytes(w.budget);
  const label = (k: StrategyKey) => STRATEGY_LABELS[k];
  const fits = rows.filter((r) => r.fits).map((r) => r.key);
  const replicaFits = row('ddp').fits || (w.workers === 1 && row('single').fits);
  const splitters: StrategyKey[] = ['fsdp-full', 'tp', 'pp-1f1b'];
  const need = (k: StrategyKey) => (row(k).split ? `${label(k)} cannot use ${w.workers} workers (${row(k).split})` : `${label(k)} ${fmt.bytes(row(k).p.memory.total)}`);
  const memory = replicaFits
    ? `A whole replica fits: DDP needs ${fmt.bytes(row('ddp').p.memory.total)} per worker (≤ ${b}), so there is no need to split the model; DDP is the simple choice.`
    : `The model is too big for one worker's ${b} as a replica (DDP needs ${fmt.bytes(row('ddp').p.memory.total)}): split it. At ${w.workers} workers ${splitters.map(need).join(', ')} per worker; ` +
      (fits.length ? `${fits.map(label).join(', ')} fit${fits.length === 1 ? 's' : ''}.` : 'none fits: more workers, a smaller batch, or more memory.');
  // the exact strategies (DiLoCo, which moves least of all but does other math, is said apart)
  const parallel = rows.filter((r) => r.key !== 'single' && !r.split && w.workers > 1 && !NOT_SAME_MATH.includes(r.key));
  const dl = rows.find((r) => r.key === 'diloco');
  const byBytes = [...parallel].sort((x, y) => x.p.bytes_per_rank - y.p.bytes_per_rank);
  const leastTraffic = byBytes[0]?.key ?? null;
  const traffic = !byBytes.length
    ? 'With one worker nothing moves.'
    : `Sent per worker per step: ${byBytes.map((r) => `${r.label} ${fmt.bytes(Math.round(r.p.bytes_per_rank))}`).join(', ')}. ` +
      (leastTraffic?.startsWith('pp')
        ? `${label(leastTraffic)} moves least (only the activations at the boundaries between stages, and the tied embedding's gradient), so on a slow link it is the better choice, if its bubble (${pct(row(leastTraffic).p.bubble ?? 0)} of a step) is worth it.`
        : `${label(leastTraffic!)} moves least here.`) +
      (parallel.some((r) => r.key === 'tp') ? ` TP's traffic grows with the batch and the depth (4 all-reduces of activations per block): it belongs on a fast link.` : '') +
      (dl && !dl.split ? ` DiLoCo moves less still, ${fmt.bytes(Math.round(dl.p.bytes_per_rank))} (DDP's traffic once every H = ${dl.p.outer?.inner_steps ?? 20} steps), but its copies train apart between averages: a little more loss per token.` : '');
  let fastest: StrategyKey | null = null;
  let slowLink: Advice['slowLink'] = null;
  let time: string | null = null;
  if (m) {
    const best = (rs: WhatIfRow[]) => rs.filter((r) => r.fits && !NOT_SAME_MATH.includes(r.key)).reduce<WhatIfRow | null>((x, y) => (!x || y.p.step_ms < x.p.step_ms ? y : x), null);
    const here = best(rows);
    const scale = w.linkScale / 100;
    const slow = best(whatIfRows(cfg, { ...w, linkScale: scale }, m));
    fastest = here?.key ?? null;
    slowLink = { scale, fastest: slow?.key ?? null };
    time = !here ? 'Nothing that fits can be timed.'
      : `Fastest that fits on this link: ${here.label} (${here.p.step_ms.toFixed(1)} ms per step)` +
        (slow ? `; on a link 100 times slower: ${slow.label} (${slow.p.step_ms.toFixed(1)} ms).` : '.');
  }
  return { fits, replicaFits, leastTraffic, fastest, slowLink, memory, traffic, time };
}

// ---- classroom Wi-Fi: where per-step DDP stops paying and DiLoCo takes over ------------------------------

export interface Classroom {
  scenario: WifiScenario;
  at: { workers: number; ddpMs: number; dilocoMs: number; computeMs: number; ddpEfficiency: number; dilocoEfficiency: number; ddpBytes: number; dilocoBytes: number };
  /** At the what-if's workers, per preset: does per-step DDP still pay (efficiency >= 1/2) over the Wi-Fi, and DiLoCo? */
  models: { name: string; params: number; ddpPays: boolean; dilocoPays: boolean }[];
  wifi: Wifi;
  innerSteps: number;
}

/**
 * The classroom Wi-Fi scenario for the what-if's model, H and compression: per-step DDP and DiLoCo for
 * 1..CLASS_MAX laptops (each computing at this machine's one-worker FLOP/s), where each stops paying, and
 * at the what-if's number of workers which of the presets each still pays for. null without a calibration
 * (the crossover is a matter of compute time against link time).
 */
export function classroom(cfg: RunConfig, w: WhatIf, m: Measured | null): Classroom | null {
  if (!m) return null;
  const wifi = wifiOf(m);
  const cal = toCalibration(m);
  const opts = { innerSteps: w.innerSteps, outerCompress: w.outerCompress, bucketMb: w.bucketMb, wifi, max: CLASS_MAX };
  const scenario = wifiScenario(cfg, cal, opts);
  const n = Math.max(2, Math.min(CLASS_MAX, w.workers));
  const pt = scenario.points[n - 1];
  const models = PRESET_NAMES.map((name) => {
    const c = makeConfig(name);
    const s = wifiScenario(c, cal, { ...opts, max: n });
    const q = s.points[n - 1];
    return { name, params: buildParamTable(c).total, ddpPays: q.ddpEfficiency >= PAYS_EFFICIENCY, dilocoPays: q.dilocoEfficiency >= PAYS_EFFICIENCY };
  });
  return {
    scenario,
    at: {
      workers: n, ddpMs: pt.ddp.step_ms, dilocoMs: pt.diloco.step_ms, computeMs: pt.ddp.compute_ms, ddpEfficiency: pt.ddpEfficiency, dilocoEfficiency: pt.dilocoEfficiency,
      ddpBytes: pt.ddp.bytes_per_rank, dilocoBytes: pt.diloco.bytes_per_rank,
    },
    models,
    wifi,
    innerSteps: pt.diloco.outer?.inner_steps ?? 20,
  };
}

/**
 * What a measured run's steps would take over classroom Wi-Fi: its own measured compute per step (the
 * median of the timed steps) plus the cost model's communication for its workers on a 20 MB/s medium
 * shared by them; DiLoCo pays its outer all-reduce on every H-th step. Cumulative seconds after each step.
 */
export function wifiTimeline(run: RunRecord, m: Measured | null): number[] {
  const n = run.dist.workers;
  const computeMs = median(timedSteps(run.steps).map((s) => s.ranks.reduce((a, r) => a + r.computeMs, 0) / s.ranks.length));
  const cal = wifiCalibration({ ...UNCALIBRATED, flops: achievedFlops(run.cfg, computeMs), hostCopy: m?.link.hostCopy }, n, wifiOf(m));
  const p = predict(run.cfg, planOf(run.dist), cal);
  const o = p.outer;
  const base = o ? p.step_ms - (o.comm_ms + o.copy_ms) / o.inner_steps : p.step_ms;
  let t = 0;
  return run.steps.map((_, i) => {
    t += base + (o && (i + 1) % o.inner_steps === 0 ? o.comm_ms + o.copy_ms : 0);
    return t / 1000;
  });
}
