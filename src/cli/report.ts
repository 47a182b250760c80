// What `train` reports when a run ends: the summary lines on stdout and, with --json, the run's record
// (the keys `train --help` lists). Pure: it formats what src/cli/train.ts measured.

import type { RunConfig } from '../model/config';
import type { BackendInfo } from '../backend/backend';
import type { DistOptions } from '../parallel/coordinator';
import type { RankStepStats } from '../parallel/protocol';
import { UNCALIBRATED, predict } from '../parallel/costmodel';
import type { Recovery } from '../parallel/faults';
import { median } from '../util/stats';
import { globalSequences } from '../parallel/layout';
import { bubbleFraction, measuredBubble } from '../parallel/pp-layout';
import { dilocoOuterBytes } from '../parallel/diloco';
import { dilocoSettings } from '../parallel/coordinator';
import { formatDuration } from './args';
import type { TrainOptions } from './train-options';

/** Everything a finished (or stopped) run measured. */
export interface RunResult {
  opts: TrainOptions;
  cfg: RunConfig; // as it ran (backend: the one the workers chose)
  backend: BackendInfo;
  dist: DistOptions; // as it ran (transport: after any fallback)
  numParams: number;
  data: { tokenizer: string; vocabSize: number; trainTokens: number; valTokens: number };
  steps: number; // optimizer steps completed
  interrupted: boolean;
  losses: number[];
  gradNorms: number[]; // global L2 norm of the averaged gradient before clipping, per step
  valLosses: [number, number][];
  stepMs: number[];
  rankSteps: RankStepStats[][]; // every step's per-rank stats
  recoveries: Recovery[];
  hubBytes: number[]; // star: bytes through the coordinator per step
  buddyBytes: number[]; // FSDP: bytes of buddy copies refreshed per step (through the coordinator)
  skip: number; // warm-up steps left out of the medians
  wallS: number;
  setupS: number;
  sample?: string;
}

const globalBatch = (r: RunResult) => globalSequences(r.dist, r.cfg);
const tokensPerStep = (r: RunResult) => globalBatch(r) * r.cfg.block_size;
const msPerStep = (r: RunResult) => median(r.stepMs, r.skip);
const finite = (x: number) => (Number.isFinite(x) ? x : null);

/**
 * Medians over steps (after the warm-up) of each rank's time split and traffic, the predicted bytes
 * beside the measured ones, and the rank's memory by kind as of the last step.
 */
export function perWorker(r: RunResult) {
  const { rankSteps: steps, skip } = r;
  const predicted = predict(r.cfg, r.dist, UNCALIBRATED);
  const world = steps[0]?.length ?? 0;
  return Array.from({ length: world }, (_, rank) => {
    const of = (f: (s: RankStepStats) => number) => finite(median(steps.map((ranks) => f(ranks[rank])), skip));
    const m = steps.at(-1)![rank].memory;
    return {
      rank, compute_ms: of((s) => s.computeMs), comm_ms: of((s) => s.commMs), wait_ms: of((s) => s.waitMs),
      straggler_ms: of((s) => s.stragglerMs ?? 0),
      bytes_sent: of((s) => s.bytesSent), bytes_per_rank_predicted: predicted.bytes_by_rank?.[rank] ?? predicted.bytes_per_rank,
      memory: {
        params: m.params, grads: m.grads, optimizer: m.optimizer, buddy: m.buddy,
        gathered_peak: m.gathered_peak, activations_peak: m.activations_peak, comm_buffers: m.comm_buffers,
      },
    };
  });
}

/**
 * Each rank's bytes sent per step: the mean over every step of the run (not the median after the
 * warm-up, which for diloco, silent but every H-th step, would be 0).
 */
export function bytesPerStep(r: RunResult): number[] {
  const world = r.rankSteps[0]?.length ?? 0;
  return Array.from({ length: world }, (_, rank) => r.rankSteps.reduce((n, ranks) => n + ranks[rank].bytesSent, 0) / r.rankSteps.length);
}

/** diloco's settings, and what its outer steps sent: the JSON's `diloco`. */
function dilocoRecord(r: RunResult) {
  const d = dilocoSettings(r.dist);
  const H = d.innerSteps;
  // the steps that ended with an outer step: every H-th and the run's last (as the ranks decide, diloco.ts)
  const outerSteps = r.rankSteps.filter((ranks) => ranks[0] && (ranks[0].step % H === 0 || ranks[0].step === r.cfg.max_iters));
  const sent = outerSteps.map((ranks) => ranks.reduce((n, x) => n + x.bytesSent, 0) / ranks.length);
  return {
    inner_steps: H, outer_lr: d.outerLr, outer_momentum: d.outerMomentum, outer_compress: d.outerCompress,
    outer_steps: outerSteps.length,
    bytes_per_outer_step: sent.length ? finite(median(sent)) : null, // per rank, the mean over ranks
    bytes_per_outer_step_predicted: dilocoOuterBytes(r.numParams, r.dist.workers, d.outerCompress), // 2(N-1)/N x P x bytes per value
  };
}

/** "fsdp full x2 ring", "pp 1f1b m4 x2 ring" and the like. */
export function describeStrategy(d: DistOptions): string {
  const variant = d.strategy === 'fsdp' ? ` ${d.shard}` : d.strategy === 'pp' ? ` ${d.schedule} m${d.microbatches}`
    : d.strategy === 'diloco' ? ` H${dilocoSettings(d).innerSteps}${(d.outerCompress ?? 'none') === 'none' ? '' : ` ${d.outerCompress}`}` : '';
  return `${d.strategy}${variant}${d.strategy === 'single' ? '' : ` x${d.workers} ${d.transport}`}`;
}

/**
 * PP: the share of the schedule a stage sits idle, as predicted ((N-1)/(M+N-1)) and as measured
 * (pp-layout.ts measuredBubble, averaged over stages; median over steps after the warm-up).
 */
function bubble(r: RunResult): { bubble_predicted: number; bubble_measured: number | null } {
  const perStep = r.rankSteps.map((ranks) => measuredBubble(ranks.map((x) => x.pipeline ?? { spanMs: 0, busyMs: 0 })).mean);
  return { bubble_predicted: bubbleFraction(r.dist.workers, r.dist.microbatches ?? 1), bubble_measured: finite(median(perStep, r.skip)) };
}

/** The lines printed on stdout at the end. */
export function summaryLines(r: RunResult): string[] {
  const ms = msPerStep(r);
  const lines = [
    `${r.interrupted ? 'stopped' : 'done'}: ${r.steps} steps, train loss ${r.losses.at(-1)?.toFixed(4) ?? '-'}, ` +
      `val loss ${r.valLosses.at(-1)?.[1].toFixed(4) ?? '-'}, ${ms.toFixed(1)} ms/step, ${Math.round((tokensPerStep(r) / ms) * 1000)} tok/s, ` +
      `${formatDuration(r.wallS * 1000)} (${describeStrategy(r.dist)}, backend ${r.backend.name})`,
  ];
  const workers = perWorker(r);
  if (r.dist.workers > 1 && workers.length) {
    lines.push(
      'per worker (median ms per step): ' +
        workers.map((w) => `rank ${w.rank} compute ${w.compute_ms?.toFixed(1)}, comm ${w.comm_ms?.toFixed(1)}, wait ${w.wait_ms?.toFixed(1)}`).join('; '),
    );
    const mb = (b: number) => (b / 2 ** 20).toFixed(2);
    const m = workers[0].memory;
    lines.push(
      `memory per worker (rank 0): ${mb(m.params + m.grads + m.optimizer + m.buddy)} MB at rest (params ${mb(m.params)}, grads ${mb(m.grads)}, ` +
        `optimizer ${mb(m.optimizer)}${m.buddy ? `, buddy copy ${mb(m.buddy)}` : ''})${r.dist.strategy === 'fsdp' ? `, gathered peak ${mb(m.gathered_peak)} MB` : ''}, activations peak ${mb(m.activations_peak)} MB; ` +
        `sent ${mb(workers[0].bytes_sent ?? 0)} MB/step (predicted ${mb(workers[0].bytes_per_rank_predicted)})`,
    );
  }
  if (r.dist.strategy === 'pp' && r.rankSteps.length) {
    const b = bubble(r);
    lines.push(`pipeline bubble: ${(100 * (b.bubble_measured ?? NaN)).toFixed(0)}% of the schedule idle, measured; ${(100 * b.bubble_predicted).toFixed(0)}% predicted ((N-1)/(M+N-1), ${r.dist.schedule}, M = ${r.dist.microbatches})`);
  }
  if (r.dist.strategy === 'diloco' && r.rankSteps.length) {
    const d = dilocoRecord(r);
    const mb = (b: number) => (b / 2 ** 20).toFixed(2);
    lines.push(`diloco: ${d.outer_steps} outer step${d.outer_steps === 1 ? '' : 's'} (H = ${d.inner_steps}, outer lr ${d.outer_lr}, momentum ${d.outer_momentum}, ${d.outer_compress === 'none' ? 'fp32' : d.outer_compress}), ` +
      `${mb(d.bytes_per_outer_step ?? 0)} MB sent per worker per outer step (2(N-1)/N x P x bytes: ${mb(d.bytes_per_outer_step_predicted)}), ${mb(bytesPerStep(r)[0] ?? 0)} MB per step on average`);
  }
  if (r.recoveries.length) {
    const lost = r.recoveries.reduce((n, x) => n + x.replayed_steps, 0);
    lines.push(`survived ${r.recoveries.length} fault${r.recoveries.length > 1 ? 's' : ''}, ${lost} step${lost === 1 ? '' : 's'} trained again: ` +
      r.recoveries.map((x) => `step ${x.step} rank ${x.rank} ${x.cause} (detected in ${Math.round(x.detected_ms)} ms, recovered in ${Math.round(x.ms)} ms from ${x.restored_from})`).join('; '));
  }
  if (r.sample !== undefined) lines.push('', `sample after step ${r.steps}:`, `${r.opts.prompt}${r.sample}`);
  return lines;
}

/** The --json record. */
export function jsonRecord(r: RunResult) {
  const ms = msPerStep(r);
  const fsdp = r.dist.strategy === 'fsdp';
  const hub = median(r.hubBytes, r.skip);
  return {
    backend: r.backend.name,
    backend_reason: r.backend.reason,
    config: r.cfg,
    num_params: r.numParams,
    data: { file: r.opts.data, tokenizer: r.data.tokenizer, vocab_size: r.data.vocabSize, train_tokens: r.data.trainTokens, val_tokens: r.data.valTokens },
    strategy: r.dist.strategy,
    transport: r.dist.transport,
    workers: r.dist.workers,
    bucket_mb: r.dist.bucketMb,
    shard: fsdp ? r.dist.shard : null,
    prefetch: fsdp ? r.dist.prefetch : null,
    ...(r.dist.strategy === 'pp' ? { microbatches: r.dist.microbatches, schedule: r.dist.schedule, ...bubble(r) } : {}),
    ...(r.dist.strategy === 'diloco' ? { diloco: dilocoRecord(r) } : {}),
    global_batch: globalBatch(r),
    steps: r.steps,
    completed: !r.interrupted && r.steps === r.cfg.max_iters,
    losses: r.losses,
    grad_norms: r.gradNorms,
    val_losses: r.valLosses,
    final_train_loss: r.losses.at(-1) ?? null,
    final_val_loss: r.valLosses.at(-1)?.[1] ?? null,
    tokens_per_step: tokensPerStep(r),
    ms_per_step: finite(ms),
    tokens_per_s: finite((tokensPerStep(r) / ms) * 1000),
    step_ms: r.stepMs,
    bytes_per_step: bytesPerStep(r), // per rank, the mean over all steps
    per_worker: perWorker(r).map((w, rank) => ({ ...w, bytes_per_step: bytesPerStep(r)[rank] ?? null })),
    recoveries: r.recoveries,
    ...(Number.isFinite(hub) ? { hub_bytes_per_step: hub } : {}), // star: through the coordinator, in + out
    ...(r.buddyBytes.length ? { buddy_bytes_per_step: median(r.buddyBytes) } : {}), // fsdp: the buddy copies, all ranks
    wall_time_s: r.wallS,
    setup_s: r.setupS,
    ...(r.sample !== undefined ? { sample: { prompt: r.opts.prompt, tokens: r.opts.sample, text: r.sample } } : {}),
  };
}
