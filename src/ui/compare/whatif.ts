// The cost model's side of the Compare view (pure: no DOM). Every number comes from
// src/parallel/costmodel.ts (predict, achievedFlops, flopsPerToken); this file only chooses what to ask it:
// the calibration from measurements, predictions for the runs that were measured, the "what if" table
// (more workers, a bigger model, a slower link, a memory budget), where FSDP becomes the only strategy
// that fits, and the formulas with this machine's numbers plugged in.

import { PRESETS, makeConfig, type PresetName, type RunConfig } from '../../model/config';
import { buildParamTable } from '../../model/params';
import { UNCALIBRATED, achievedFlops, activationBytes, flopsPerToken, predict, type Calibration, type Prediction } from '../../parallel/costmodel';
import type { TransportKind } from '../../parallel/collectives';
import { assignBuckets, gradientSync, shardLayout } from '../../parallel/layout';
import type { LinkCalibration, RunRecord } from './runner';
import { STRATEGY_KEYS, STRATEGY_LABELS, configFor, distFor, planOf, type StrategyKey } from './settings';
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
  const per = (v: number) => ({ ring: v, star: v, shared: v, [m.link.transport]: v }) as Record<TransportKind, number>;
  return { flops: m.flops, cores: m.cores, concurrent: m.link.concurrent, hostCopy: m.link.hostCopy, alpha: per(m.link.alpha), beta: per(m.link.beta * linkScale) };
}

/** The prediction for a measured run, with the config and options it ran with. */
export function predictRun(run: RunRecord, m: Measured | null): Prediction {
  return predict(run.cfg, planOf(run.dist), m ? toCalibration(m) : UNCALIBRATED);
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
}

export const WHATIF_MAX_WORKERS = 64;

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
  fits: boolean;
}

function need(key: StrategyKey, cfg: RunConfig, n: number, w: Pick<WhatIf, 'transport' | 'bucketMb'>, cal: Calibration): Prediction {
  const d = distFor(key, { workers: n, transport: w.transport }, w.bucketMb);
  return predict(configFor(key, cfg, n), planOf(d), cal);
}

/** Every strategy at the what-if's workers, model, link and budget (single trains their global batch). */
export function whatIfRows(cfg: RunConfig, w: WhatIf, m: Measured | null): WhatIfRow[] {
  const cal = m ? toCalibration(m, w.linkScale) : UNCALIBRATED;
  return STRATEGY_KEYS.map((key) => {
    const p = need(key, cfg, w.workers, w, cal);
    return { key, label: STRATEGY_LABELS[key], workers: key === 'single' ? 1 : w.workers, p, fits: p.memory.total <= w.budget };
  });
}

/** Memory per worker of each strategy for 1..max workers (the what-if chart). */
export function memoryCurves(cfg: RunConfig, w: Pick<WhatIf, 'transport' | 'bucketMb'>, max = WHATIF_MAX_WORKERS): { workers: number[]; bytes: Record<StrategyKey, number[]> } {
  const workers = Array.from({ length: max }, (_, i) => i + 1);
  const bytes = Object.fromEntries(STRATEGY_KEYS.map((k) => [k, workers.map((n) => need(k, cfg, n, w, UNCALIBRATED).memory.total)])) as Record<StrategyKey, number[]>;
  return { workers, bytes };
}

export interface Crossover {
  ddpNeed: number; // per worker, the same for any number of workers
  ddpFits: boolean;
  fsdpFrom: number | null; // fewest workers at which FSDP full fits the budget
  gradOpFrom: number | null;
  fsdpNeed: number; // FSDP full's need at the what-if's workers
  fsdpFloor: number; // FSDP full's need at the most workers (it never gets lower)
  activations: number; // per worker (not sharded)
}

/** Where FSDP becomes the only strategy that fits: DDP's need does not shrink with workers, FSDP's does. */
export function crossover(cfg: RunConfig, w: WhatIf, max = WHATIF_MAX_WORKERS): Crossover {
  const curves = memoryCurves(cfg, w, max);
  const first = (k: StrategyKey) => {
    const i = curves.bytes[k].findIndex((b) => b <= w.budget);
    return i < 0 ? null : curves.workers[i];
  };
  const ddpNeed = curves.bytes.ddp[Math.min(1, max - 1)];
  return {
    ddpNeed,
    ddpFits: ddpNeed <= w.budget,
    fsdpFrom: first('fsdp-full'),
    gradOpFrom: first('fsdp-grad_op'),
    fsdpNeed: curves.bytes['fsdp-full'][w.workers - 1],
    fsdpFloor: curves.bytes['fsdp-full'][max - 1],
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
export function explain(run: Pick<RunRecord, 'key' | 'label' | 'cfg' | 'dist'>, m: Measured): Explained {
  const { cfg, dist } = run;
  const cal = toCalibration(m);
  const p = predict(cfg, planOf(dist), cal);
  const table = buildParamTable(cfg);
  const P = table.total;
  const n = dist.workers;
  const a = cal.alpha[dist.transport];
  const b = cal.beta[dist.transport];
  const B = cfg.batch_size;
  const K = cfg.grad_accum;
  const T = cfg.block_size;
  const fpt = flopsPerToken(cfg);
  const share = cal.cores ? Math.min(1, cal.cores / n) : 1; // predict's share of a core per CPU worker
  const probe = n > 1 && cal.concurrent?.workers === n ? cal.concurrent : null; // what predict uses when it fits
  const flops = probe
    ? `${(probe.flops / 1e9).toFixed(2)} GFLOP/s (each of ${n} workers computing at once, measured)`
    : share < 1 ? `(${(m.flops / 1e9).toFixed(2)} GFLOP/s × ${cal.cores} cores / ${n} workers)` : `${(m.flops / 1e9).toFixed(2)} GFLOP/s`;
  const lines = [
    `compute = B·K·T × FLOPs/token ÷ FLOP/s = ${B}·${K}·${T} × ${big(fpt)} ÷ ${flops} = ${ms(p.compute_ms)}` +
      `   (FLOPs/token = 6N + 12·L·H·Q·T = 6·${big(P - T * cfg.n_embd)} + 12·${cfg.n_layer}·${cfg.n_head}·${cfg.n_embd / cfg.n_head}·${T})`,
  ];
  const star = dist.transport === 'star';
  const arTerm = star ? '2α + 2n·S/β' : '2(n−1)·α + 2(n−1)/n · S/β';
  const halfTerm = star ? '2α + n·(S + S/n)/β' : '(n−1)·α + (n−1)/n · S/β';
  const link = `n = ${n}, α = ${us(a)}, β = ${gbs(b)} (${dist.transport})`;
  if (n === 1) {
    lines.push('comm = 0: one worker has nobody to talk to');
  } else if (gradientSync(dist) === 'all-reduce') {
    const buckets = assignBuckets(table, dist.bucketMb * 2 ** 20);
    lines.push(`comm = ${buckets.length} bucket all-reduce${buckets.length > 1 ? 's' : ''} of the gradients, S = 4·P = ${mb(4 * P)} in all, each ${arTerm}; ${link} → ${ms(p.comm_ms)}`);
  } else {
    const [root, ...blocks] = table.units.map((u) => 4 * shardLayout(u, n).padded);
    const gathers = dist.shard === 'full' ? 2 : 1;
    lines.push(
      `comm = per micro-batch (K = ${K}): all-gather and reduce-scatter of the root (S = ${mb(root)}), ${gathers === 2 ? '2 all-gathers (forward, backward)' : '1 all-gather'} and 1 reduce-scatter of each of ${blocks.length} blocks (S = ${mb(blocks[0] ?? 0)} each), ` +
        `each ${halfTerm}, and 2 scalar all-reduces; ${link} → ${ms(p.comm_ms)}`,
    );
  }
  const wait = probe ? ` + waiting for the slowest worker (${ms(probe.stragglerMs)}, measured with the ${n} workers computing at once)` : '';
  const copies = p.copy_ms > 0 ? ` + copies between the backend and JavaScript (${ms(p.copy_ms)}: gradients read back, results uploaded)` : '';
  lines.push(`step = compute + comm${copies}${wait} = ${ms(p.step_ms)};  tokens/s = n·B·K·T ÷ step = ${n}·${B * K * T} ÷ ${ms(p.step_ms)} = ${Math.round(p.tokens_per_s).toLocaleString('en-US')}`);
  lines.push(`bytes sent per worker per step = ${mb(p.bytes_per_rank)}${n > 1 ? (star ? ' (S to the page per collective)' : ' (ring: 2(n−1)/n · S per all-reduce, (n−1)/n · S per all-gather or reduce-scatter)') : ''}`);
  const mem = p.memory;
  lines.push(
    (gradientSync(dist) === 'shard' && n > 1
      ? `memory = 16 bytes × P/n (weights 4 + grads 4 + AdamW 8, sharded) = 16 × ${big(Math.round(mem.params / 4))} = ${mb(mem.params + mem.grads + mem.optimizer)}, + gathered units at the peak ${mb(mem.gathered_peak)}`
      : mem.optimizer > 2 * mem.params // the CPU backends' AdamW also keeps a master copy of the weights
        ? `memory = 20 bytes × P (weights 4 + grads 4 + AdamW 8 + the host optimizer's master copy 4) = 20 × ${big(P)} = ${mb(mem.params + mem.grads + mem.optimizer)}`
        : `memory = 16 bytes × P (weights 4 + grads 4 + AdamW 8) = 16 × ${big(P)} = ${mb(mem.params + mem.grads + mem.optimizer)}`) +
      `, + activations 4·L·(19·B·T·C + 2·B·H·T²) = ${mb(mem.activations_peak)} → ${mb(mem.total)} per worker`,
  );
  return { key: run.key, label: run.label, lines };
}
