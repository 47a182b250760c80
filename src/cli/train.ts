// `train`: headless training through the same Session the page uses, with a progress line on stderr
// and, with --json, the run's numbers in a file. Every run goes through the distributed runtime
// (src/dist): a Coordinator drives N ranks, each in its own worker_thread with its own tfjs engine;
// `single` is one rank, so single and ddp timings measure the same machinery.

import { existsSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { checkVocab, makeConfig, PRESETS, PRESET_NAMES, type RunConfig } from '../model/config';
import { bpeTokenizer, charTokenizer, type Tokenizer } from '../data/tokenizer';
import { makeDataset } from '../data/dataset';
import { Session, type TrainEvent } from '../train/session';
import { median } from '../util/stats';
import { checkDist, Coordinator, DIST_DEFAULTS, DistError, MAX_WORKERS, type DistOptions } from '../parallel/coordinator';
import { SHARD_STRATEGIES } from '../parallel/layout';
import { predict, type Calibration } from '../parallel/costmodel';
import type { RankStepStats, Strategy } from '../parallel/protocol';
import type { TransportKind } from '../parallel/collectives';
import { choiceFlag, CliError, formatDuration, keyValues, numberFlag, parseFlags, readText, UsageError } from './args';
import { describeBackend } from '../backend/backend';
import { NODE_BACKENDS, prepareWebGPUEnv, type NodeBackend } from '../backend/node';
import { spawnNodeWorker } from '../parallel/node-spawn';

const DEFAULT_DATA = 'public/data/tinyshakespeare.txt';
const WARMUP_STEPS = 2; // excluded from ms_per_step: kernel compilation and first allocations
/** The cost model's bytes do not depend on the calibration: any numbers will do for bytes_per_rank_predicted. */
const BYTES_ONLY: Calibration = { flops: 1, alpha: { ring: 0, star: 0, shared: 0 }, beta: { ring: 1, star: 1, shared: 1 } };
/** ddp's and fsdp's default number of workers: one per core, at most MAX_WORKERS. */
export const defaultWorkers = () => Math.min(availableParallelism(), MAX_WORKERS);

/** Flags that are shorthands for config keys. */
const FLAG_KEYS = {
  steps: 'max_iters',
  batch: 'batch_size',
  lr: 'lr',
  seed: 'seed',
  accum: 'grad_accum',
  'eval-interval': 'eval_interval',
  'eval-iters': 'eval_iters',
  'block-size': 'block_size',
  dropout: 'dropout',
} as const;
const INTEGER_FLAGS = new Set(['steps', 'batch', 'seed', 'accum', 'eval-interval', 'eval-iters', 'block-size']);

const presetLines = PRESET_NAMES.map((name) => {
  const p = PRESETS[name];
  return `  ${name.padEnd(16)} ${p.n_layer} layers, ${p.n_head} heads, n_embd ${p.n_embd}, block ${p.block_size}, ` +
    `${p.tokenizer} tokens, batch ${p.batch_size}, ${p.max_iters} steps, lr ${p.lr}`;
}).join('\n');

function wrap(text: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}

const SETTING_KEYS = Object.keys(makeConfig('tiny')).filter((k) => k !== 'preset' && k !== 'backend').sort();

export const help = `Usage: npm run cli -- train [options]

Trains a GPT-2 on a text file in Node, with the same training loop as the page.
Progress goes to stderr; the summary (and sample) to stdout.

  --preset NAME       model and training preset (default shakespeare-cpu):
${presetLines.replace(/^/gm, '  ')}
  --backend NAME      auto (default: wasm in Node), wasm, cpu, or webgpu (software GPU in Node: slow)
  --data FILE         training text (default ${DEFAULT_DATA}); split 90% train / 10% val.
                      The tokenizer is the preset's: characters of this text (char) or GPT-2 BPE
  --steps K           optimizer steps (max_iters). If K is below the preset's lr_decay_iters,
                      lr_decay_iters becomes K so the cosine schedule ends with the run
                      (nanoGPT keeps lr_decay_iters ~= max_iters); --set lr_decay_iters=N overrides.
                      warmup_iters stays the preset's
  --batch B           sequences per micro-batch on each worker (batch_size), as in PyTorch DDP:
                      the global batch of a step is workers x batch x accum sequences
  --accum K           micro-batches per step on each worker (grad_accum); DDP communicates only
                      after the last one
  --lr X              peak learning rate; min_lr becomes X/10 (as in the presets) unless set
  --seed S            seed of the initial weights, batches and dropout (same seed and settings:
                      same losses)
  --block-size T      context length (at most the preset's)
  --dropout P         dropout probability
  --eval-interval N   steps between validation estimates (0: only the final one)
  --eval-iters N      batches per validation estimate
  --set KEY=VALUE     any other setting, repeatable (e.g. --set warmup_iters=10). Settings:
${wrap(SETTING_KEYS.join(', '), 72).replace(/^/gm, '                      ')}
  --strategy NAME     single (default: one worker), ddp (data parallel: every worker holds the
                      whole model, trains on its slice of the batch, gradients are averaged) or
                      fsdp (fully sharded: as ddp, but each worker stores only 1/N of the model)
  --shard NAME        fsdp: full (default; least memory), grad_op (less traffic) or none (= ddp)
  --no-prefetch       fsdp: don't fetch the next block's weights while this block's backward runs
  --workers N         ddp, fsdp: worker threads, 1 to ${MAX_WORKERS} (default: one per core, here ${defaultWorkers()}); each
                      runs its own tfjs engine. single always runs 1
  --transport NAME    how workers exchange gradients (and, for fsdp, weights): ring (default;
                      neighbour to neighbour, as NCCL), star (through the coordinator), shared (one
                      SharedArrayBuffer)
  --bucket-mb X       ddp (and fsdp --shard none) gradient bucket cap in MB (default ${DIST_DEFAULTS.bucketMb}, as PyTorch;
                      the first is 1 MB): a bucket's all-reduce starts as soon as backward has produced it
  --sample N          after training, generate N tokens and print them
  --prompt TEXT       start the sample with TEXT (default: the first token of the vocabulary)
  --json FILE         write the run to FILE as JSON: config, losses (per step), val_losses
                      ([step, loss]), final_val_loss, ms_per_step and tokens_per_s (median after
                      the first ${WARMUP_STEPS} steps), step_ms, backend, wall_time_s, sample; strategy,
                      transport, workers, global_batch (fsdp: shard, prefetch), and per_worker:
                      for each rank, medians per step (after the warm-up) of compute_ms, comm_ms
                      (CPU time in collectives), wait_ms (blocked on other workers; straggler_ms of
                      it waiting for a slower worker rather than for data) and bytes_sent,
                      bytes_per_rank_predicted (the cost model's bytes sent per step), and memory
                      in bytes from the last step: params, grads, optimizer (what the worker keeps
                      between steps), gathered_peak (fsdp: most fetched full weights at once),
                      activations_peak, comm_buffers
  -h, --help          show this help

A validation loss is always estimated after the last step. Exit code: 0 done, 1 failure,
2 bad arguments, 130 interrupted. Ctrl-C stops after the current step and still writes the JSON
file.

Examples:
  npm run cli -- train --preset tiny --steps 50 --sample 200 --json /tmp/run.json
  npm run cli -- train --strategy ddp --workers 2 --transport ring --batch 6 --steps 100
  npm run cli -- train --strategy fsdp --shard full --workers 2 --batch 6 --steps 100`;

/** The progress display: one rewritten line on a terminal, otherwise a line every ~10% of the run. */
class Progress {
  private pending = false; // a \r line is on screen without a newline
  private readonly every: number;

  constructor(private total: number, private tty: boolean) {
    this.every = Math.max(1, Math.ceil(total / 10));
  }

  private line(text: string, keep: boolean) {
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${text}${keep ? '\n' : ''}`);
      this.pending = !keep;
    } else {
      process.stderr.write(`${text}\n`);
    }
  }

  event(e: TrainEvent) {
    if (e.type === 'step') {
      const { step, loss } = e.stats;
      if (!this.tty && !(step === 1 || step % this.every === 0 || step === this.total)) return;
      const width = String(this.total).length;
      const ranks = e.stats.perRank ?? [];
      // DDP: the share of this step the slowest rank spent communicating or waiting for the others.
      const exposed = ranks.length > 1 ? `  comm+wait ${Math.round(Math.max(...ranks.map((r) => (100 * (r.commMs + r.waitMs)) / r.ms)))}%` : '';
      this.line(
        `step ${String(step).padStart(width)}/${this.total}  loss ${loss.toFixed(4)}  ` +
          `${Math.round(e.tokensPerSec)} tok/s  ${e.msPerStep.toFixed(0)} ms/step${exposed}  ETA ${formatDuration(e.etaMs)}`,
        false,
      );
    } else if (e.type === 'eval') {
      this.line(`step ${e.step}: train loss ${e.train.toFixed(4)}, val loss ${e.val.toFixed(4)}`, true);
    }
  }

  message(text: string) {
    this.line(text, true);
  }

  end() {
    if (this.pending) process.stderr.write('\n');
    this.pending = false;
  }
}

interface TrainOptions {
  cfg: RunConfig;
  explicitVocab: boolean;
  dist: DistOptions;
  backend: NodeBackend;
  data: string;
  json?: string;
  sample: number;
  prompt: string;
}

/** Flags -> a checked config (ConfigError or UsageError on anything wrong). */
function parseOptions(argv: string[]): TrainOptions | null {
  const { values } = parseFlags('train', argv, {
    preset: { type: 'string' },
    backend: { type: 'string' },
    data: { type: 'string' },
    json: { type: 'string' },
    steps: { type: 'string' },
    batch: { type: 'string' },
    accum: { type: 'string' },
    lr: { type: 'string' },
    seed: { type: 'string' },
    'block-size': { type: 'string' },
    dropout: { type: 'string' },
    'eval-interval': { type: 'string' },
    'eval-iters': { type: 'string' },
    strategy: { type: 'string' },
    workers: { type: 'string' },
    transport: { type: 'string' },
    'bucket-mb': { type: 'string' },
    shard: { type: 'string' },
    'no-prefetch': { type: 'boolean' },
    set: { type: 'string', multiple: true },
    sample: { type: 'string' },
    prompt: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  }, false);
  if (values.help) return null;

  const overrides: Record<string, string | number> = keyValues(values.set);
  for (const key of Object.keys(overrides)) {
    if (key === 'preset' || key === 'backend') throw new UsageError(`set ${key} with --${key}, not --set`);
    if (!SETTING_KEYS.includes(key)) throw new UsageError(`unknown setting "${key}" in --set: known settings are ${SETTING_KEYS.join(', ')}`);
  }
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const n = numberFlag(flag, (values as Record<string, string | undefined>)[flag], { integer: INTEGER_FLAGS.has(flag) });
    if (n === undefined) continue;
    if (key in overrides) throw new UsageError(`${key} is given twice (--${flag} and --set ${key}=...): keep one`);
    overrides[key] = n;
  }
  // Like the presets (and nanoGPT), min_lr follows lr at a tenth unless given.
  if (overrides.lr !== undefined && !('min_lr' in overrides)) overrides.min_lr = Number(overrides.lr) / 10;
  const preset = values.preset ?? 'shakespeare-cpu';
  let cfg = makeConfig(preset, overrides);
  // The schedule follows a shortened run unless lr_decay_iters was given.
  if (!('lr_decay_iters' in overrides) && cfg.max_iters < cfg.lr_decay_iters) {
    cfg = makeConfig(preset, { ...overrides, lr_decay_iters: cfg.max_iters });
  }
  const backend = choiceFlag('backend', values.backend, NODE_BACKENDS) ?? 'auto';
  cfg.backend = backend;
  const sample = numberFlag('sample', values.sample, { integer: true, min: 0 }) ?? 0;
  if (values.prompt !== undefined && sample === 0) throw new UsageError('--prompt needs --sample N (how many tokens to generate)');
  return {
    cfg,
    explicitVocab: 'vocab_size' in overrides,
    dist: parseDist(values),
    backend,
    data: values.data ?? DEFAULT_DATA,
    json: values.json,
    sample,
    prompt: values.prompt ?? '',
  };
}

/** --strategy, --workers, --transport, --bucket-mb, --shard, --no-prefetch -> checked DistOptions (checkDist's messages, exit 2). */
function parseDist(values: {
  strategy?: string; workers?: string; transport?: string; 'bucket-mb'?: string; shard?: string; 'no-prefetch'?: boolean;
}): DistOptions {
  const strategy = (values.strategy ?? DIST_DEFAULTS.strategy) as Strategy;
  const shard = choiceFlag('shard', values.shard, SHARD_STRATEGIES);
  // FSDP's own flags mean nothing to single or ddp: say so rather than ignore them.
  if (strategy === 'single' || strategy === 'ddp') {
    const flag = shard !== undefined ? `--shard ${shard}` : values['no-prefetch'] ? '--no-prefetch' : null;
    if (flag) throw new UsageError(`${flag} needs --strategy fsdp (it only applies to fully sharded training; see \`npm run cli -- train --help\`)`);
  }
  const workers = numberFlag('workers', values.workers) ?? (strategy === 'single' ? 1 : defaultWorkers());
  const dist: DistOptions = {
    ...DIST_DEFAULTS,
    strategy,
    workers,
    transport: (values.transport ?? DIST_DEFAULTS.transport) as TransportKind,
    bucketMb: numberFlag('bucket-mb', values['bucket-mb']) ?? DIST_DEFAULTS.bucketMb,
    shard: shard ?? DIST_DEFAULTS.shard,
    prefetch: !values['no-prefetch'],
  };
  try {
    return checkDist(dist);
  } catch (e) {
    if (!(e instanceof DistError)) throw e;
    // --workers N alone: the default strategy is single, so say which flag is missing.
    const message = values.strategy === undefined && /strategy single/.test(e.message)
      ? `--workers ${workers} needs --strategy ddp or fsdp (the default, single, runs one worker)`
      : e.message;
    throw new UsageError(`${message} (see \`npm run cli -- train --help\`)`);
  }
}

/**
 * Medians over steps (after the warm-up) of each rank's time split and traffic, the predicted bytes
 * beside the measured ones, and the rank's memory by kind as of the last step.
 */
function perWorker(steps: RankStepStats[][], skip: number, bytesPredicted: number) {
  const world = steps[0]?.length ?? 0;
  return Array.from({ length: world }, (_, r) => {
    const of = (f: (s: RankStepStats) => number) => {
      const m = median(steps.map((ranks) => f(ranks[r])), skip);
      return Number.isFinite(m) ? m : null;
    };
    const m = steps.at(-1)![r].memory;
    return {
      rank: r, compute_ms: of((s) => s.computeMs), comm_ms: of((s) => s.commMs), wait_ms: of((s) => s.waitMs),
      straggler_ms: of((s) => s.stragglerMs ?? 0),
      bytes_sent: of((s) => s.bytesSent), bytes_per_rank_predicted: bytesPredicted,
      memory: {
        params: m.params, grads: m.grads, optimizer: m.optimizer,
        gathered_peak: m.gathered_peak, activations_peak: m.activations_peak, comm_buffers: m.comm_buffers,
      },
    };
  });
}

async function loadTokenizer(cfg: RunConfig, text: string): Promise<Tokenizer> {
  return cfg.tokenizer === 'bpe' ? bpeTokenizer() : charTokenizer(text);
}

export async function run(argv: string[]): Promise<number> {
  const opts = parseOptions(argv);
  if (!opts) {
    console.log(help);
    return 0;
  }
  const t0 = performance.now();
  if (opts.json) {
    const dir = dirname(resolve(opts.json));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new CliError(`cannot write --json ${opts.json}: directory ${dir} does not exist`);
    }
  }
  const text = readText(opts.data);
  if (text.length === 0) throw new CliError(`${opts.data} is empty: pass a text file to train on with --data FILE`);

  const tokenizer = await loadTokenizer(opts.cfg, text);
  const cfg = checkVocab(opts.cfg, tokenizer.vocabSize, opts.explicitVocab);
  if (opts.prompt) {
    try {
      tokenizer.encode(opts.prompt);
    } catch (e) {
      throw new UsageError(`--prompt: ${(e as Error).message}`);
    }
  }
  let dataset;
  try {
    dataset = makeDataset(text, tokenizer, cfg.block_size);
  } catch (e) {
    throw new CliError(`${opts.data}: ${(e as Error).message}`);
  }

  const { dist } = opts;
  const progress = new Progress(cfg.max_iters, Boolean(process.stderr.isTTY));
  const globalBatch = dist.workers * cfg.batch_size * cfg.grad_accum;
  const tokensPerStep = globalBatch * cfg.block_size;
  const rankSteps: RankStepStats[][] = []; // every step's per-rank stats
  const hubBytes: number[] = [];
  let coordinator: Coordinator | null = null;
  let session: Session | null = null;
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) {
      // Second Ctrl-C: do not wait for the step; stop the workers and leave.
      progress.end();
      coordinator?.dispose();
      process.exit(130);
    }
    interrupted = true;
    if (!session) process.exit(130); // still starting the workers: nothing to keep
    progress.message('stopping after this step (Ctrl-C again to quit now)');
    session.stop();
  };
  process.on('SIGINT', onSigint);
  try {
    // Workers start the backend themselves (cfg.backend: what --backend asked for).
    if (opts.backend === 'webgpu') prepareWebGPUEnv();
    coordinator = await Coordinator.create(cfg, text, dist, spawnNodeWorker);
    const info = coordinator.info.backend;
    cfg.backend = info.name; // what actually ran, so the JSON's config reproduces the run
    const s = new Session(coordinator, {
      maxIters: cfg.max_iters,
      evalInterval: cfg.eval_interval,
      evalIters: cfg.eval_iters,
      sampleInterval: 0,
      sampleTokens: opts.sample,
      sampleOptions: { prompt: opts.prompt },
      warmupSteps: WARMUP_STEPS,
    }, (e) => {
      if (e.type === 'step' && e.stats.perRank) rankSteps.push(e.stats.perRank);
      if (e.type === 'step' && e.stats.hubBytes !== undefined) hubBytes.push(e.stats.hubBytes);
      progress.event(e);
    });
    session = s;

    progress.message(
      `${cfg.preset}: ${(coordinator.info.numParams / 1e6).toFixed(2)}M parameters (${cfg.n_layer} layers, ${cfg.n_head} heads, ` +
        `n_embd ${cfg.n_embd}, block ${cfg.block_size}), ${tokenizer.kind} tokenizer (${tokenizer.vocabSize} tokens), ` +
        `${dataset.train.length} train / ${dataset.val.length} val tokens`,
    );
    const { transport } = coordinator.dist;
    const fsdp = dist.strategy === 'fsdp';
    const buckets = dist.strategy === 'ddp' || (fsdp && dist.shard === 'none');
    const how = dist.strategy === 'single'
      ? 'single: one worker thread'
      : `${dist.strategy}${fsdp ? ` ${dist.shard}` : ''} on ${dist.workers} worker thread${dist.workers > 1 ? 's' : ''} (${transport} transport` +
        `${buckets ? `, ${dist.bucketMb} MB buckets` : ''}${fsdp && dist.shard !== 'none' ? `, prefetch ${dist.prefetch ? 'on' : 'off'}` : ''})`;
    progress.message(`${how}; backend ${describeBackend(info)}`);
    if (coordinator.notice) progress.message(`note: ${coordinator.notice}`);
    progress.message(
      `${cfg.max_iters} steps of global batch ${globalBatch} = ${dist.workers} worker${dist.workers > 1 ? 's' : ''} x batch ${cfg.batch_size} ` +
        `x accum ${cfg.grad_accum} (${tokensPerStep} tokens of ${cfg.block_size}), seed ${cfg.seed}`,
    );

    const tTrain = performance.now();
    await s.run();
    // A final validation estimate, unless the loop just made one.
    const last = s.valLosses.at(-1);
    if (coordinator.step > 0 && (!last || last[0] !== coordinator.step)) await s.evaluate();
    const sample = opts.sample > 0 && coordinator.step > 0 ? await s.sample() : undefined;
    const wall = (performance.now() - tTrain) / 1000;
    progress.end();

    const skip = Math.min(WARMUP_STEPS, Math.max(0, s.stepMs.length - 1));
    const msPerStep = median(s.stepMs, skip);
    const tokensPerSec = (tokensPerStep / msPerStep) * 1000;
    const finalVal = s.valLosses.at(-1)?.[1] ?? null;
    const plan = { strategy: dist.strategy, workers: dist.workers, transport, bucketMb: dist.bucketMb, shard: dist.shard };
    const workers = perWorker(rankSteps, skip, predict(cfg, plan, BYTES_ONLY).bytes_per_rank);

    const summary = [
      `${interrupted ? 'stopped' : 'done'}: ${coordinator.step} steps, train loss ${s.losses.at(-1)?.toFixed(4) ?? '-'}, ` +
        `val loss ${finalVal?.toFixed(4) ?? '-'}, ${msPerStep.toFixed(1)} ms/step, ${Math.round(tokensPerSec)} tok/s, ` +
        `${formatDuration(wall * 1000)} (${dist.strategy}${fsdp ? ` ${dist.shard}` : ''}${dist.strategy === 'single' ? '' : ` x${dist.workers} ${transport}`}, backend ${info.name})`,
    ];
    if (dist.workers > 1 && workers.length) {
      summary.push(
        'per worker (median ms per step): ' +
          workers.map((w) => `rank ${w.rank} compute ${w.compute_ms?.toFixed(1)}, comm ${w.comm_ms?.toFixed(1)}, wait ${w.wait_ms?.toFixed(1)}`).join('; '),
      );
      const mb = (b: number) => (b / 2 ** 20).toFixed(2);
      const m = workers[0].memory;
      summary.push(
        `memory per worker (rank 0): ${mb(m.params + m.grads + m.optimizer)} MB at rest (params ${mb(m.params)}, grads ${mb(m.grads)}, ` +
          `optimizer ${mb(m.optimizer)})${fsdp ? `, gathered peak ${mb(m.gathered_peak)} MB` : ''}, activations peak ${mb(m.activations_peak)} MB; ` +
          `sent ${mb(workers[0].bytes_sent ?? 0)} MB/step (predicted ${mb(workers[0].bytes_per_rank_predicted)})`,
      );
    }
    if (sample !== undefined) summary.push('', `sample after step ${coordinator.step}:`, `${opts.prompt}${sample}`);
    console.log(summary.join('\n'));

    if (opts.json) {
      const hub = median(hubBytes, skip);
      const out = {
        backend: info.name,
        backend_reason: info.reason,
        config: cfg,
        num_params: coordinator.info.numParams,
        data: { file: opts.data, tokenizer: tokenizer.kind, vocab_size: tokenizer.vocabSize, train_tokens: dataset.train.length, val_tokens: dataset.val.length },
        strategy: dist.strategy,
        transport,
        workers: dist.workers,
        bucket_mb: dist.bucketMb,
        shard: fsdp ? dist.shard : null,
        prefetch: fsdp ? dist.prefetch : null,
        global_batch: globalBatch,
        steps: coordinator.step,
        completed: !interrupted && coordinator.step === cfg.max_iters,
        losses: s.losses,
        val_losses: s.valLosses,
        final_train_loss: s.losses.at(-1) ?? null,
        final_val_loss: finalVal,
        tokens_per_step: tokensPerStep,
        ms_per_step: Number.isFinite(msPerStep) ? msPerStep : null,
        tokens_per_s: Number.isFinite(tokensPerSec) ? tokensPerSec : null,
        step_ms: s.stepMs,
        per_worker: workers,
        ...(Number.isFinite(hub) ? { hub_bytes_per_step: hub } : {}), // star: through the coordinator, in + out
        wall_time_s: wall,
        setup_s: (tTrain - t0) / 1000,
        ...(sample !== undefined ? { sample: { prompt: opts.prompt, tokens: opts.sample, text: sample } } : {}),
      };
      try {
        writeFileSync(opts.json, JSON.stringify(out, null, 1) + '\n');
      } catch (e) {
        throw new CliError(`cannot write ${opts.json}: ${(e as Error).message}`);
      }
      progress.message(`wrote ${opts.json}`);
    }
  } finally {
    progress.end();
    process.off('SIGINT', onSigint);
    coordinator?.dispose(); // terminates every worker thread, also after an error
  }
  return interrupted ? 130 : 0;
}
