// The figures of each compared run (pure: no DOM): tokens per second and the step time split from the
// median of the timed steps, bytes and memory per worker, and how far each loss curve is from the
// reference's (single's when it ran). Also the results as CSV and JSON rows.

import type { MemoryReport } from '../../train/trainer';
import type { RunRecord, StepRecord } from './runner';
import { NOT_SAME_MATH, warmupSteps, type StrategyKey } from './settings';
import { median } from '../../util/stats';
import { memoryTotal } from '../memory';
import { splitsBatch } from '../../parallel/layout';
import { measuredBubble } from '../../parallel/pp-layout';

/** Loss curves closer than this coincide (float32 sums in another order differ by ~1e-6). */
export const COINCIDE = 1e-4;

export interface RunSummary {
  key: string;
  label: string;
  workers: number;
  transport: string;
  batchPerWorker: number; // sequences each worker trains on (TP, PP: the whole global batch, the same on every worker)
  sameBatch: boolean; // every worker works on the same batch (single, TP, PP) rather than its slice of it (DDP, FSDP)
  timedSteps: number;
  tokensPerSec: number;
  stepMs: number; // median coordinator step time
  computeMs: number; // median over timed steps of the mean over workers
  commMs: number;
  waitMs: number;
  stragglerMs: number; // of waitMs, waiting for a slower worker rather than for data
  idleShare: number; // median over timed steps of the mean over workers of waitMs / the worker's step (PP: the bubble, measuredBubble)
  bytesPerWorker: number; // sent per step, mean over workers (DiLoCo: over all its steps, as it sends once every H)
  memory: MemoryReport; // the worker that needs the most
  memoryTotal: number;
  losses: number[];
  lossDiff: { max: number; step: number } | null; // vs the reference; null for the reference itself
  recoveries: number; // times the run recovered from a failed worker (RunRecord.recoveries)
}


const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * A step's idle share, the mean over workers: PP's bubble as measured (the part of the schedule each
 * stage did not work, pp-layout.ts measuredBubble), else the share of each worker's step spent waiting.
 */
function idleOf(s: StepRecord): number {
  if (s.ranks.every((r) => r.pipeline)) return measuredBubble(s.ranks.map((r) => r.pipeline!)).mean;
  return mean(s.ranks.map((r) => (r.ms > 0 ? r.waitMs / r.ms : 0)));
}

/**
 * The steps that count for speed: after the warm-up, not trained again after a recovery, and not traced
 * (if any are left).
 */
export function timedSteps(steps: StepRecord[]): StepRecord[] {
  const all = steps.slice(warmupSteps(steps.length));
  const clean = all.filter((s) => !s.recovered);
  const after = clean.length ? clean : all;
  const untraced = after.filter((s) => !s.traced);
  return untraced.length ? untraced : after;
}

/** The largest |a[i] - b[i]| over the steps both have, and the (1-based) step where it is. */
export function maxLossDiff(a: number[], b: number[]): { max: number; step: number } {
  let max = 0;
  let step = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max || Number.isNaN(d)) {
      max = d;
      step = i + 1;
      if (Number.isNaN(d)) break;
    }
  }
  return { max, step };
}

/** The run every other run's losses are compared with: single if it ran, else the first that does the same math. */
export function reference(runs: RunRecord[]): RunRecord | undefined {
  return runs.find((r) => r.key === 'single') ?? runs.find((r) => !sameMathExempt(r.key)) ?? runs[0];
}

/** DiLoCo's losses are not one worker's with the global batch: compared against tokens and time, not expected to coincide. */
export function sameMathExempt(key: string): boolean {
  return (NOT_SAME_MATH as readonly string[]).includes(key as StrategyKey);
}

/**
 * Bytes sent per step, mean over workers: the last step's, or for DiLoCo (which sends only every H steps)
 * the mean over all its steps.
 */
export function bytesPerStep(run: RunRecord): number {
  const perStep = (s: StepRecord) => mean(s.ranks.map((r) => r.bytesSent));
  if (run.dist.strategy === 'diloco') return run.steps.length ? mean(run.steps.map(perStep)) : 0;
  const last = run.steps.at(-1);
  return last ? perStep(last) : 0;
}

export function summarize(run: RunRecord, ref: RunRecord | undefined): RunSummary {
  const timed = timedSteps(run.steps);
  const stepMs = median(timed.map((s) => s.ms));
  const tokens = run.steps[0]?.tokens ?? 0;
  const part = (k: 'computeMs' | 'commMs' | 'waitMs' | 'stragglerMs') => median(timed.map((s) => mean(s.ranks.map((r) => r[k]))));
  const memory = run.memory.reduce((a, b) => (memoryTotal(b) > memoryTotal(a) ? b : a), run.memory[0]);
  const losses = run.steps.map((s) => s.loss);
  return {
    key: run.key,
    label: run.label,
    workers: run.dist.workers,
    transport: run.dist.transport,
    batchPerWorker: run.cfg.batch_size * run.cfg.grad_accum,
    sameBatch: !splitsBatch(run.dist),
    timedSteps: timed.length,
    tokensPerSec: (tokens / stepMs) * 1000,
    stepMs,
    computeMs: part('computeMs'),
    commMs: part('commMs'),
    waitMs: part('waitMs'),
    stragglerMs: part('stragglerMs'),
    idleShare: timed.length ? median(timed.map(idleOf)) : 0,
    bytesPerWorker: bytesPerStep(run),
    memory,
    memoryTotal: memory ? memoryTotal(memory) : 0,
    losses,
    lossDiff: ref && ref !== run ? maxLossDiff(losses, ref.steps.map((s) => s.loss)) : null,
    recoveries: run.recoveries?.length ?? 0,
  };
}

/** The verdict on the loss curves: do they coincide, and if not, which run is furthest off and where. */
export function lossVerdict(summaries: RunSummary[]): { coincide: boolean; max: number; worst: RunSummary | null } | null {
  const compared = summaries.filter((s) => s.lossDiff && !sameMathExempt(s.key));
  if (!compared.length) return null;
  const size = (s: RunSummary) => (Number.isNaN(s.lossDiff!.max) ? Infinity : s.lossDiff!.max); // a NaN loss is the worst
  const worst = compared.reduce((a, b) => (size(b) > size(a) ? b : a));
  const max = worst.lossDiff!.max;
  return { coincide: max < COINCIDE, max, worst };
}

// ---- export rows -------------------------------------------------------------------------------------

export interface ResultRow {
  strategy: string;
  workers: number;
  transport: string;
  batch_per_worker: number;
  timed_steps: number;
  tokens_per_s: number;
  step_ms: number;
  compute_ms: number;
  comm_ms: number;
  wait_ms: number;
  wait_for_slower_worker_ms: number;
  idle_share: number; // of each worker's step spent waiting (PP: the bubble)
  bytes_per_step_per_worker: number;
  memory_per_worker_bytes: number;
  first_loss: number;
  last_loss: number;
  max_loss_diff: number | null;
  recoveries: number; // the JSON export lists them instead (view.ts)
  predicted_step_ms?: number;
  predicted_tokens_per_s?: number;
  predicted_bytes_per_step_per_worker?: number;
  predicted_memory_per_worker_bytes?: number;
  predicted_bubble?: number; // PP: (N-1)/(M+N-1)
}

export function resultRow(s: RunSummary, predicted?: { step_ms: number; tokens_per_s: number; bytes_per_rank: number; bytes_by_rank?: number[]; bubble?: number; memory: { total: number } }): ResultRow {
  return {
    strategy: s.label,
    workers: s.workers,
    transport: s.transport,
    batch_per_worker: s.batchPerWorker,
    timed_steps: s.timedSteps,
    tokens_per_s: round(s.tokensPerSec, 1),
    step_ms: round(s.stepMs, 2),
    compute_ms: round(s.computeMs, 2),
    comm_ms: round(s.commMs, 2),
    wait_ms: round(s.waitMs, 2),
    wait_for_slower_worker_ms: round(s.stragglerMs, 2),
    idle_share: round(s.idleShare, 4),
    bytes_per_step_per_worker: Math.round(s.bytesPerWorker),
    memory_per_worker_bytes: s.memoryTotal,
    first_loss: s.losses[0],
    last_loss: s.losses.at(-1)!,
    max_loss_diff: s.lossDiff?.max ?? null,
    recoveries: s.recoveries,
    ...(predicted
      ? {
        predicted_step_ms: round(predicted.step_ms, 2),
        predicted_tokens_per_s: round(predicted.tokens_per_s, 1),
        // PP's stages differ: their mean, as bytes_per_step_per_worker is measured
        predicted_bytes_per_step_per_worker: Math.round(predicted.bytes_by_rank ? predicted.bytes_by_rank.reduce((a, b) => a + b, 0) / predicted.bytes_by_rank.length : predicted.bytes_per_rank),
        predicted_memory_per_worker_bytes: Math.round(predicted.memory.total),
        ...(predicted.bubble !== undefined ? { predicted_bubble: round(predicted.bubble, 4) } : {}),
      }
      : {}),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** RFC 4180 CSV: a header of every key any row has, then one line per row. */
export function toCsv(rows: object[]): string {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [keys.join(','), ...rows.map((r) => keys.map((k) => cell((r as Record<string, unknown>)[k])).join(','))].join('\n') + '\n';
}

// ---- what the view states beside the figures -------------------------------------------------------------

/**
 * FSDP full's bytes against DDP's, measured, beside the formula: FULL_SHARD moves 3(N-1)/N x S per worker
 * (two all-gathers and a reduce-scatter of every block), DDP 2(N-1)/N x S (an all-reduce), 1.5x; a little
 * less here because the root unit is gathered once, not twice. null without both runs.
 */
export function bytesRatio(summaries: RunSummary[]): { ratio: number; formula: number; fsdp: RunSummary; ddp: RunSummary } | null {
  const ddp = summaries.find((s) => s.key === 'ddp');
  const fsdp = summaries.find((s) => s.key === 'fsdp-full') ?? summaries.find((s) => s.key === 'fsdp-noprefetch');
  if (!ddp || !fsdp || !(ddp.bytesPerWorker > 0)) return null;
  return { ratio: fsdp.bytesPerWorker / ddp.bytesPerWorker, formula: 1.5, fsdp, ddp };
}

/** FSDP full with and without backward prefetch, measured: the step, the wait, and what it saved. null without both runs. */
export function prefetchEffect(summaries: RunSummary[]): { on: RunSummary; off: RunSummary; savedMs: number; waitSavedMs: number } | null {
  const on = summaries.find((s) => s.key === 'fsdp-full');
  const off = summaries.find((s) => s.key === 'fsdp-noprefetch');
  if (!on || !off) return null;
  return { on, off, savedMs: off.stepMs - on.stepMs, waitSavedMs: off.waitMs - on.waitMs };
}

/**
 * DiLoCo's bytes per step against DDP's, measured, beside the formula: DDP all-reduces 4P bytes every
 * step, DiLoCo P values of 4, 2 or 1 bytes once every H steps: (bytes per value / 4) / H. null without both.
 */
export function dilocoRatio(summaries: RunSummary[], run: RunRecord | undefined): { ratio: number; formula: number; diloco: RunSummary; ddp: RunSummary; innerSteps: number; compress: string } | null {
  const ddp = summaries.find((s) => s.key === 'ddp');
  const diloco = summaries.find((s) => s.key === 'diloco');
  if (!ddp || !diloco || !run || !(ddp.bytesPerWorker > 0)) return null;
  const H = run.dist.innerSteps ?? 20;
  const compress = run.dist.outerCompress ?? 'none';
  const bpv = compress === 'fp16' ? 2 : compress === 'int8' ? 1 : 4;
  return { ratio: diloco.bytesPerWorker / ddp.bytesPerWorker, formula: bpv / 4 / H, diloco, ddp, innerSteps: H, compress };
}

/** The x values of the DDP-against-DiLoCo charts: tokens seen after each step, and measured wall time (s) after each step. */
export function lossAxes(run: RunRecord): { tokens: number[]; seconds: number[] } {
  let tokens = 0;
  let ms = 0;
  const out = { tokens: [] as number[], seconds: [] as number[] };
  for (const s of run.steps) {
    tokens += s.tokens;
    ms += s.ms;
    out.tokens.push(tokens);
    out.seconds.push(ms / 1000);
  }
  return out;
}
