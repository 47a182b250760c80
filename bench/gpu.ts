// The WebGPU bench (Node through Dawn): per preset and strategy, ms per step, tokens/s, achieved GFLOP/s
// (nanoGPT's FLOP count, costmodel.ts flopsPerToken) and that as a share of anchors measured in the same
// run (tfjs-webgpu's best 2-D matmul; torch's fp32 matmul with TF32 off, when python3 has torch), plus
// the WebGPU counts per step (bench/gpu-counters.ts): dispatches, synchronous and asynchronous readbacks,
// bytes read back and uploaded.
//
//   single  one trainer in this thread, on this thread's Dawn device
//   ddp     2 ranks (Coordinator, ring), each in its own worker_thread with its own Dawn device
//   fsdp    the same with FULL_SHARD (for the counts; the speed runs are single and ddp)
//
// The CLI is bench/gpu-main.ts (npm run bench:gpu, and the pack's run.sh); bench/run.ts's `gpu`
// section runs the counts on a small preset.

import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import * as tf from '@tensorflow/tfjs';
import { makeConfig, type RunConfig } from '../src/model/config';
import { bpeTokenizer, charTokenizer, type Tokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { Coordinator, DistError, rankHandle, type DistOptions, type RankHandle } from '../src/parallel/coordinator';
import { DEFAULT_BUCKET_MB } from '../src/parallel/layout';
import type { RankAPI } from '../src/parallel/protocol';
import { flopsPerToken } from '../src/parallel/costmodel';
import { median } from '../src/util/stats';
import { GpuCounters, medianCounts, type GpuCounts } from './gpu-counters';
import { prepareGpuEnv } from './gpu-webgpu';

export type GpuStrategy = 'single' | 'ddp' | 'fsdp';
export const GPU_STRATEGIES: readonly GpuStrategy[] = ['single', 'ddp', 'fsdp'];

/** Why each readback a step makes is there (printed with the counts, written into the JSON). */
export const READBACK_NOTES: Record<GpuStrategy, string> = {
  single:
    'one asynchronous readback per step: the loss and the squared gradient norm, packed into one 8-byte tensor ' +
    '(the norm decides whether the step is finite and is reported; clipping itself stays on the GPU). ' +
    'No synchronous readback.',
  ddp:
    'one asynchronous readback per gradient bucket (the bucket\'s gradients concatenated on the GPU, read as one ' +
    'buffer as soon as backward has produced them, while the remaining blocks\' backward runs), plus one 4-byte ' +
    'read of the local loss issued before backward (it travels with the last bucket to be averaged), and one 8-byte ' +
    'read after the all-reduce: the squared norm of the averaged gradients with the local loss sum (as single). The ' +
    'all-reduce itself runs on the CPU (MessagePorts between workers), so every bucket comes back to the GPU as ' +
    'uploads. No synchronous readback.',
  fsdp:
    'one asynchronous readback per unit of its gradients (concatenated on the GPU, read when the unit\'s backward ' +
    'is done) for the reduce-scatter; one of every unit\'s updated parameter shard after AdamW, concatenated ' +
    '(FSDP keeps the shards on the host: the all-gather\'s input); one 4-byte loss read per micro-batch; and, after ' +
    'the step, one of AdamW\'s m and v shards, concatenated, for the buddy copy a neighbour keeps (fault tolerance). ' +
    'All-gathered parameters, gradient shards and parameter shards are uploaded each step. No synchronous readback.',
};

export interface GpuRunResult {
  preset: string;
  strategy: GpuStrategy;
  workers: number;
  ranks_in: 'this thread' | 'worker_threads (one Dawn device each)';
  batch_per_worker: number;
  block_size: number;
  grad_accum: number;
  tokens_per_step: number; // all ranks
  flops_per_token: number;
  warmup: number;
  steps_measured: number;
  capped: boolean; // stopped by the time cap before all steps ran
  ms_per_step: number; // median after warm-up (wall time between step ends)
  ms_min: number;
  ms_max: number;
  tokens_per_s: number;
  gflops: number;
  losses: number[];
  /** per rank: the median per-step counts after warm-up (single: one entry) */
  counts: GpuCounts[];
  readback_note: string;
  init_s: number;
  error?: string;
}

/** The text a preset trains on here: all of it for a character vocabulary; for BPE a prefix (tokenizing is slow). */
export function benchTokenizer(cfg: RunConfig, text: string): Promise<{ tok: Tokenizer; text: string }> {
  if (cfg.tokenizer === 'bpe') return bpeTokenizer().then((tok) => ({ tok, text: text.slice(0, 300_000) }));
  return Promise.resolve({ tok: charTokenizer(text), text });
}

export function benchConfig(preset: string, text: string, batch?: number): RunConfig {
  const base = makeConfig(preset);
  const vocab = base.tokenizer === 'char' ? charTokenizer(text).vocabSize : base.vocab_size;
  return makeConfig(preset, { vocab_size: vocab, backend: 'webgpu', ...(batch ? { batch_size: batch } : {}) });
}

// ---- ranks in worker_threads, each with its own Dawn device ----------------------------------------
const BUNDLED = import.meta.url.endsWith('.mjs'); // the pack's single bundle starts its ranks from itself

export function spawnGpuWorker(): RankHandle {
  const worker = BUNDLED
    ? new Worker(fileURLToPath(import.meta.url), { workerData: { gpuRank: true } })
    : new Worker(new URL('./gpu-rank-entry.mjs', import.meta.url));
  const api = Comlink.wrap<RankAPI>(nodeEndpoint(worker));
  const failed = new Promise<never>((_, reject) => {
    worker.on('error', (e) => reject(new DistError(`a GPU bench worker crashed: ${e.message}`)));
    worker.on('exit', (code) => code !== 0 && reject(new DistError(`a GPU bench worker exited with code ${code}`)));
  });
  return rankHandle(api, () => void worker.terminate(), failed);
}

type CountingApi = { gpuCounts(): Promise<GpuCounts | null> };
const rankCounts = (h: RankHandle) => (h.api as unknown as CountingApi).gpuCounts();

export interface RunOptions {
  steps: number;
  warmup: number;
  capMs: number; // stop measuring after the step that passes this (warm-up included); at least one measured step
  log?: (line: string) => void;
  /** After every measured step: the run so far (for a results file that a timeout cannot empty). */
  onStep?: (partial: GpuRunResult) => void;
}

function summarize(
  cfg: RunConfig, strategy: GpuStrategy, workers: number, ms: number[], losses: number[], counts: GpuCounts[][], warmup: number, capped: boolean, initS: number,
): GpuRunResult {
  const measured = ms.slice(warmup);
  const tokens = cfg.batch_size * cfg.grad_accum * cfg.block_size * workers;
  const msPerStep = median(measured);
  const fpt = flopsPerToken(cfg);
  const tokensPerS = (tokens / msPerStep) * 1000;
  return {
    preset: cfg.preset, strategy, workers,
    ranks_in: strategy === 'single' ? 'this thread' : 'worker_threads (one Dawn device each)',
    batch_per_worker: cfg.batch_size, block_size: cfg.block_size, grad_accum: cfg.grad_accum,
    tokens_per_step: tokens, flops_per_token: fpt, warmup, steps_measured: measured.length, capped,
    ms_per_step: msPerStep, ms_min: Math.min(...measured), ms_max: Math.max(...measured),
    tokens_per_s: tokensPerS, gflops: (fpt * tokensPerS) / 1e9, losses,
    counts: counts.map((perStep) => medianCounts(perStep.slice(warmup))),
    readback_note: READBACK_NOTES[strategy], init_s: initS,
  };
}

/** One trainer in this thread (the backend must already be webgpu). */
export async function runSingle(cfg: RunConfig, text: string, o: RunOptions): Promise<GpuRunResult> {
  const t0 = performance.now();
  const { tok, text: used } = await benchTokenizer(cfg, text);
  const trainer = new Trainer(cfg, makeDataset(used, tok, cfg.block_size));
  const counters = GpuCounters.install();
  if (!counters) throw new Error(`the GPU counters need the webgpu backend, this thread runs ${tf.getBackend()}`);
  try {
    counters.take();
    const initS = (performance.now() - t0) / 1000;
    o.log?.(`${cfg.preset} single: ready in ${initS.toFixed(1)} s (${tok.kind} tokenizer, ${trainer.table.total.toLocaleString('en-US')} parameters)`);
    const ms: number[] = [];
    const losses: number[] = [];
    const counts: GpuCounts[] = [];
    const start = performance.now();
    let prev = start;
    let capped = false;
    for (let i = 0; i < o.warmup + o.steps; i++) {
      const s = await trainer.trainStep();
      const now = performance.now();
      ms.push(now - prev);
      prev = now;
      losses.push(s.loss);
      counts.push(counters.take());
      o.log?.(`${cfg.preset} single step ${i + 1}${i < o.warmup ? ' (warm-up)' : ''}: ${ms[i].toFixed(0)} ms, loss ${s.loss.toFixed(4)}`);
      if (i >= o.warmup) o.onStep?.(summarize(cfg, 'single', 1, ms, losses, [counts], o.warmup, true, initS));
      if (i >= o.warmup && now - start > o.capMs && i < o.warmup + o.steps - 1) {
        capped = true;
        break;
      }
    }
    return summarize(cfg, 'single', 1, ms, losses, [counts], o.warmup, capped, initS);
  } finally {
    trainer.dispose();
  }
}

/** DDP or FSDP over 2 (or `workers`) worker_threads, each its own Dawn device; per-rank counts. */
export async function runDistributed(cfg: RunConfig, text: string, strategy: 'ddp' | 'fsdp', workers: number, o: RunOptions): Promise<GpuRunResult> {
  prepareGpuEnv(); // the Vulkan driver's environment, before the workers start
  const t0 = performance.now();
  const { text: used } = await benchTokenizer(cfg, text);
  const dist: DistOptions = {
    strategy, workers, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB,
    ...(strategy === 'fsdp' ? { shard: 'full' as const, prefetch: true } : {}),
    // a software GPU is slow, and the first steps compile shaders: no rank is taken for dead
    faults: { deadlines: { factor: 50, floorMs: 600_000, firstMs: 900_000 }, recover: false },
  };
  const c = await Coordinator.create(cfg, used, dist, spawnGpuWorker);
  try {
    await Promise.all(c.ranks.map(rankCounts)); // drop what init counted
    const initS = (performance.now() - t0) / 1000;
    o.log?.(`${cfg.preset} ${strategy}: ${workers} ranks ready in ${initS.toFixed(1)} s (${c.info.numParams.toLocaleString('en-US')} parameters, ${c.infos.map((i) => i.backend.adapter?.architecture ?? i.backend.name).join(', ')})`);
    const ms: number[] = [];
    const losses: number[] = [];
    const counts: GpuCounts[][] = c.ranks.map(() => []);
    const start = performance.now();
    let prev = start;
    let capped = false;
    for (let i = 0; i < o.warmup + o.steps; i++) {
      const s = await c.trainStep();
      const now = performance.now();
      ms.push(now - prev);
      prev = now;
      losses.push(s.loss);
      const per = await Promise.all(c.ranks.map(rankCounts));
      per.forEach((p, r) => p && counts[r].push(p));
      o.log?.(`${cfg.preset} ${strategy} step ${i + 1}${i < o.warmup ? ' (warm-up)' : ''}: ${ms[i].toFixed(0)} ms, loss ${s.loss.toFixed(4)}`);
      if (i >= o.warmup) o.onStep?.(summarize(cfg, strategy, workers, ms, losses, counts, o.warmup, true, initS));
      if (i >= o.warmup && now - start > o.capMs && i < o.warmup + o.steps - 1) {
        capped = true;
        break;
      }
    }
    return summarize(cfg, strategy, workers, ms, losses, counts, o.warmup, capped, initS);
  } finally {
    c.dispose();
  }
}

// ---- anchors -------------------------------------------------------------------------------------
export interface MatmulAnchor {
  best_gflops: number;
  by_size: { n: number; ms: number; gflops: number; reps: number }[];
}

/**
 * tfjs-webgpu's best 2-D float32 matmul: n x n at growing n (up to maxN, while one takes < 0.5 s), each
 * timed as `reps` back-to-back matmuls ended by one 4-byte readback of a sum of the last (the queue runs
 * in order, so that waits for all of them), after a warm-up of the same shape. Best over sizes.
 */
export async function matmulAnchor(maxN = 4096, budgetMs = 30_000): Promise<MatmulAnchor> {
  const t0 = performance.now();
  const by: MatmulAnchor['by_size'] = [];
  const sync = async (t: tf.Tensor) => {
    const s = tf.sum(t);
    await s.data();
    s.dispose();
  };
  for (let n = 256; n <= maxN; n *= 2) {
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    try {
      // warm-up (shader compile) and a first estimate
      let c = tf.matMul(a, b);
      await sync(c);
      c.dispose();
      const e0 = performance.now();
      c = tf.matMul(a, b);
      await sync(c);
      c.dispose();
      const one = performance.now() - e0;
      const reps = Math.max(1, Math.min(50, Math.floor(300 / Math.max(one, 0.01))));
      const times: number[] = [];
      for (let r = 0; r < 3; r++) {
        const s0 = performance.now();
        const outs: tf.Tensor[] = [];
        for (let i = 0; i < reps; i++) {
          outs.push(tf.matMul(a, b));
          if (outs.length > 2) outs.shift()!.dispose();
        }
        await sync(outs[outs.length - 1]);
        tf.dispose(outs);
        times.push((performance.now() - s0) / reps);
      }
      const ms = Math.min(...times);
      by.push({ n, ms, gflops: (2 * n ** 3) / (ms / 1000) / 1e9, reps });
      if (one > 500 || performance.now() - t0 > budgetMs) break;
    } finally {
      tf.dispose([a, b]);
    }
  }
  return { best_gflops: Math.max(...by.map((x) => x.gflops)), by_size: by };
}
