// The line under the setup that says, before a run starts, what it will hold and cost: parameters,
// memory per worker (the cost model's: weights, gradients, AdamW state and activations) and whether a
// CPU worker can hold it (FSDP, TP and PP hold parts: their per-worker figure is what one worker of the
// group needs), and the time a step should take on this machine, from the speed this page
// measured on its last run with the same backend (the cost model's FLOPs per token over that FLOP/s).

import { workerFit, type RunConfig } from '../model/config';
import type { ParamTable } from '../model/params';
import type { DistOptions } from '../parallel/coordinator';
import type { StepStats } from '../train/trainer';
import { UNCALIBRATED, flopsPerToken, predict } from '../parallel/costmodel';
import { gradientSync } from '../parallel/layout';
import { expectedAtRest } from './memory';
import { globalBatch } from './setup';
import { h } from './dom';
import * as fmt from './format';

const speedKey = (backend: string) => `gpt2-trainer:gflops:${backend}`;

/**
 * A step's speed, one worker's FLOP/s, kept for the next estimate (per backend, in this browser): every
 * 10th step (not a storage write per step), after the first ones, which compile kernels.
 */
export function recordSpeed(backend: string, cfg: RunConfig, stats: StepStats, workers: number): void {
  if (!(stats.ms > 0) || stats.step % 10 !== 0) return;
  const flops = (flopsPerToken(cfg) * stats.tokens) / workers / (stats.ms / 1000);
  try {
    localStorage.setItem(speedKey(backend), String(flops / 1e9));
  } catch {
    // storage not allowed: the estimate just has no time
  }
}

function savedGflops(backend: string): number | null {
  try {
    const v = Number(localStorage.getItem(speedKey(backend)));
    return v > 0 ? v : null;
  } catch {
    return null;
  }
}

export function renderEstimate(target: HTMLElement, cfg: RunConfig, dist: DistOptions | null, table: ParamTable, shapedFrom: string | null): void {
  const params = table.total;
  target.dataset.params = String(params);
  const d = dist ?? { strategy: 'single' as const, workers: 1, transport: 'ring' as const, bucketMb: 25 };
  const n = d.workers;
  const batch = globalBatch(cfg, n, d.strategy);
  const sync = gradientSync(d);
  const part = n === 1 ? '' : sync === 'shard' ? `a 1/${n} shard of ` : sync === 'tensor' ? `its 1/${n} slice of every block's ` : sync === 'pipeline' ? 'the largest stage\'s ' : '';
  const rest = expectedAtRest(table, d, cfg.backend).bytes;
  const memory = predict(cfg, d, UNCALIBRATED, table).memory;
  const peak = memory.total; // at rest + gathered units + activations (PP: of the micro-batches in flight)
  target.dataset.peakBytes = String(Math.round(peak));
  target.replaceChildren(
    h('strong', {}, `≈ ${fmt.compact(params)} parameters`),
    shapedFrom ? ` (the shape of ${shapedFrom})` : '',
    ` · ${fmt.bytes(rest)} for ${part}weights, gradients and AdamW state${n > 1 ? ` in each of ${n} workers` : ''}` +
      `, about ${fmt.bytes(peak)} at a step's peak · ${fmt.count(batch.tokens)} tokens per step`,
  );
  // The same judgement as the one that disables Start (memoryError in src/ui/setup.ts).
  const fit = workerFit(cfg, memory);
  target.dataset.needBytes = String(Math.round(fit.need));
  if (!fit.fits) {
    target.append(h('br'), h('span', { class: 'problem', 'data-fits': 'false' },
      `A ${fit.gpu ? 'GPU' : 'CPU'} worker can hold at most ${fmt.bytes(fit.limit)}${fit.gpu ? '' : ' (32-bit WebAssembly)'}: this needs ${fmt.bytes(fit.need)} (${fit.parts}). ` +
        `${fit.fix[0].toUpperCase()}${fit.fix.slice(1)}.`));
  }
  const backend = cfg.backend === 'auto' ? 'wasm' : cfg.backend;
  const gflops = savedGflops(backend);
  const stepFlops = flopsPerToken(cfg) * (batch.tokens / n);
  const gflop = `${(stepFlops / 1e9).toFixed(stepFlops < 1e10 ? 2 : 0)} GFLOP`;
  const ms = gflops ? (stepFlops / (gflops * 1e9)) * 1000 : 0;
  target.append(h('br'), gflops
    ? `A step should take about ${ms < 1000 ? `${Math.round(ms)} ms` : fmt.duration(ms)} of compute per worker on ${backend} (${gflop} at the ${gflops.toFixed(1)} GFLOP/s of your last ${backend} run here; communication and waiting come on top).`
    : `A step is ${gflop} of compute per worker; its time shows here after a first run on ${backend}.`);
  if (cfg.lr_decay_iters < cfg.max_iters) {
    target.append(h('br'), `The learning rate reaches min_lr at step ${fmt.count(cfg.lr_decay_iters)} (lr_decay_iters) and stays there.`);
  }
}
