// `train`'s command line: the help text, and the flags turned into a checked config and distributed
// options (ConfigError or UsageError on anything wrong, before anything starts).

import { availableParallelism } from 'node:os';
import { makeConfig, PRESETS, PRESET_NAMES, type RunConfig } from '../model/config';
import { checkDist, DIST_DEFAULTS, DistError, type DistOptions } from '../parallel/coordinator';
import { MAX_WORKERS, PIPELINE_SCHEDULES, SHARD_STRATEGIES, defaultWorkers, type Strategy } from '../parallel/layout';
import { checkSplit } from '../parallel/parts';
import type { TransportKind } from '../parallel/collectives';
import { NODE_BACKENDS, type NodeBackend } from '../backend/node';
import { parseInjection } from '../parallel/faults';
import { OUTER_COMPRESSIONS } from '../parallel/diloco';
import { choiceFlag, keyValues, numberFlag, parseFlags, UsageError } from './args';

export const DEFAULT_DATA = 'public/data/tinyshakespeare.txt';
export const WARMUP_STEPS = 2; // excluded from ms_per_step: kernel compilation and first allocations

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
  --steps K           optimizer steps (max_iters). Unless set, lr_decay_iters is K (the cosine
                      schedule ends with the run, as nanoGPT keeps it) and warmup_iters is the
                      preset's, at most lr_decay_iters; --set lr_decay_iters=N and
                      --set warmup_iters=N override (warmup <= decay <= steps). The page follows
                      the same rules
  --batch B           sequences per micro-batch on each worker (batch_size), as in PyTorch DDP:
                      the global batch of a step is workers x batch x accum sequences (ddp, fsdp);
                      tp and pp work on one batch together: their global batch is batch x accum
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
                      whole model, trains on its slice of the batch, gradients are averaged),
                      fsdp (fully sharded: as ddp, but each worker stores only 1/N of the model),
                      tp (tensor parallel: each block split across the workers, whole heads and
                      MLP columns each; every worker sees the whole batch; workers must divide
                      n_head), pp (pipeline parallel: each worker holds a stage of consecutive
                      blocks; the batch flows through them in micro-batches) or diloco (local SGD
                      for slow links: every worker trains its own copy on its slice of the batch,
                      with its own AdamW, for H steps without talking; then the copies average how
                      far they moved and an outer Nesterov step updates the shared model)
  --shard NAME        fsdp: full (default; least memory), grad_op (less traffic) or none (= ddp)
  --no-prefetch       fsdp: don't fetch the next block's weights while this block's backward runs
  --microbatches M    pp: micro-batches per step (default ${DIST_DEFAULTS.microbatches}); M must divide batch x accum.
                      The idle share of a step, the bubble, is (workers-1)/(M+workers-1)
  --schedule NAME     pp: 1f1b (default; one forward, one backward: at most workers micro-batches'
                      activations held) or gpipe (all forwards, then all backwards: M held)
  --inner-steps H     diloco: AdamW steps each worker takes alone between two outer steps (default
                      ${DIST_DEFAULTS.innerSteps}); the run's last step is always an outer step
  --outer-lr X        diloco: the outer Nesterov step's learning rate (default ${DIST_DEFAULTS.outerLr}, as DiLoCo)
  --outer-momentum M  diloco: its momentum, 0 <= M < 1 (default ${DIST_DEFAULTS.outerMomentum})
  --outer-compress C  diloco: how the averaged pseudo-gradients travel: none (fp32, default), fp16 or
                      int8 (a scale per 256 values): 4, 2 or about 1 byte per parameter per outer step
  --workers N         ddp, fsdp, tp, pp, diloco: worker threads, 1 to ${MAX_WORKERS} (default: one per core, at least 2, here ${defaultWorkers(availableParallelism())}); each
                      runs its own tfjs engine. single always runs 1
  --transport NAME    how workers exchange gradients (and, for fsdp, weights): ring (default;
                      neighbour to neighbour, as NCCL), star (through the coordinator), shared (one
                      SharedArrayBuffer)
  --bucket-mb X       ddp (and fsdp --shard none) gradient bucket cap in MB (default ${DIST_DEFAULTS.bucketMb}, as PyTorch;
                      the first is 1 MB): a bucket's all-reduce starts as soon as backward has produced it
  --inject KIND:R@S   inject a fault into worker R while it trains step S (repeatable), to watch
                      the run detect it, recover and go on with no step lost: kill-worker (the
                      worker dies), hang-worker (it stops answering), nan (its gradients turn NaN),
                      oom (it runs out of memory). E.g. --inject kill-worker:1@5 --inject nan:0@9
  --no-buddies        fsdp, tp, pp: do not keep each worker's part also on the next one (less memory and
                      traffic; a worker's death then ends the run)
  --on-nan stop|skip  a NaN or infinite gradient is first replayed (a passing fault); if the replay
                      is not finite either: stop (default: the run ends, naming the step and the
                      tensor) or skip (drop that step's update and go on, as a gradient scaler does)
  --init FILE         start from these weights (an llm.c .bin, a Hugging Face folder or .safetensors,
                      or a checkpoint) with a fresh optimizer: the model's shape is the file's, the
                      training settings the preset's and the flags'; the tokenizer is the file's
                      (char_vocab.json, GPT-2's BPE) or the data's characters, and must match its
                      vocabulary
  --resume FILE       continue a checkpoint of this trainer exactly (weights, AdamW state, step,
                      settings, tokenizer): --steps is the run's total, so a run saved at step 6 and
                      resumed with --steps 12 trains steps 7 to 12 (the JSON's losses hold those).
                      Any strategy and number of workers: give --batch (and --accum) so that
                      workers x batch x accum is the run's global batch. FILE may be a .shards folder
  --save FILE         save the model at the end, in the format its name says (see convert --help:
                      *.bin llm.c, *.safetensors or a folder Hugging Face, else a checkpoint that
                      --resume continues); written beside and renamed, so a crash keeps the old file;
                      {step} in the name becomes the step (run-{step}.ckpt keeps every save);
                      NAME.shards (fsdp): each worker's shards in its own file, never put together
  --save-every K      also save every K steps
  --sample N          after training, generate N tokens and print them
  --prompt TEXT       start the sample with TEXT (default: the first token of the vocabulary)
  --json FILE         write the run to FILE as JSON: config, losses (per step), grad_norms (per
                      step, before clipping), val_losses ([step, loss]), final_val_loss, ms_per_step and tokens_per_s (median after
                      the first ${WARMUP_STEPS} steps), step_ms, backend, wall_time_s, sample; strategy,
                      transport, workers, global_batch (fsdp: shard, prefetch; pp: microbatches,
                      schedule, bubble_predicted and bubble_measured; diloco: diloco {inner_steps,
                      outer_lr, outer_momentum, outer_compress, outer_steps, bytes_per_outer_step}),
                      bytes_per_step (each rank's bytes sent per step, the mean over all steps:
                      diloco sends only every H-th), and per_worker:
                      for each rank, medians per step (after the warm-up) of compute_ms, comm_ms
                      (CPU time in collectives), wait_ms (blocked on other workers; straggler_ms of
                      it waiting for a slower worker rather than for data) and bytes_sent,
                      bytes_per_rank_predicted (the cost model's bytes sent per step), and memory
                      in bytes from the last step: params, grads, optimizer, buddy (what the worker
                      keeps between steps; buddy: fsdp's, tp's and pp's copy of the next worker's part),
                      gathered_peak (fsdp: most fetched full weights at once), activations_peak,
                      comm_buffers; recoveries: every fault survived ({step, rank, cause, message,
                      detected_ms, restored_from, replayed_steps, ms})
  -h, --help          show this help

A validation loss is always estimated after the last step. Exit code: 0 done, 1 failure,
2 bad arguments, 130 interrupted. Ctrl-C stops after the current step and still writes the JSON
file.

Examples:
  npm run cli -- train --preset tiny --steps 50 --sample 200 --json /tmp/run.json
  npm run cli -- train --strategy ddp --workers 2 --transport ring --batch 6 --steps 100
  npm run cli -- train --strategy fsdp --shard full --workers 2 --batch 6 --steps 100
  npm run cli -- train --strategy tp --workers 2 --batch 12 --steps 100
  npm run cli -- train --strategy pp --workers 2 --microbatches 4 --schedule 1f1b --batch 12 --steps 100
  npm run cli -- train --strategy diloco --workers 2 --inner-steps 20 --outer-compress fp16 --batch 6 --steps 100`;

export interface TrainOptions {
  cfg: RunConfig;
  explicitVocab: boolean;
  dist: DistOptions;
  backend: NodeBackend;
  data: string;
  json?: string;
  sample: number;
  prompt: string;
  init?: string; // start from these weights (any format), with a fresh optimizer
  resume?: string; // continue this trainer checkpoint exactly (its settings; --steps is the run's total)
  steps?: number; // --steps, when given
  given: string[]; // the config keys the flags set
  save?: string; // save the model at the end (and every saveEvery steps), in the format its name says
  saveEvery?: number;
}

/**
 * What --resume lets the flags change: not the math of a step. batch_size and grad_accum split the
 * global batch over another number of workers (keep workers x batch x accum to continue exactly).
 */
const RESUME_KEYS = ['max_iters', 'eval_interval', 'eval_iters', 'batch_size', 'grad_accum'];

/** Flags -> a checked config (ConfigError or UsageError on anything wrong). */
export function parseTrainOptions(argv: string[]): TrainOptions | null {
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
    microbatches: { type: 'string' },
    schedule: { type: 'string' },
    'inner-steps': { type: 'string' },
    'outer-lr': { type: 'string' },
    'outer-momentum': { type: 'string' },
    'outer-compress': { type: 'string' },
    inject: { type: 'string', multiple: true },
    'on-nan': { type: 'string' },
    'no-buddies': { type: 'boolean' },
    set: { type: 'string', multiple: true },
    sample: { type: 'string' },
    prompt: { type: 'string' },
    init: { type: 'string' },
    resume: { type: 'string' },
    save: { type: 'string' },
    'save-every': { type: 'string' },
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
  // The schedule rules (min_lr, lr_decay_iters and warmup_iters follow lr and --steps unless set) are
  // makeConfig's, the page's too.
  const cfg = makeConfig(values.preset ?? 'shakespeare-cpu', overrides);
  const backend = choiceFlag('backend', values.backend, NODE_BACKENDS) ?? 'auto';
  cfg.backend = backend;
  const sample = numberFlag('sample', values.sample, { integer: true, min: 0 }) ?? 0;
  if (values.prompt !== undefined && sample === 0) throw new UsageError('--prompt needs --sample N (how many tokens to generate)');
  if (values.init && values.resume) throw new UsageError('--init (start from weights) and --resume (continue a run) exclude each other: keep one');
  if (values.resume) {
    // A resumed run is the checkpoint's run: only how long it trains, and how it is evaluated, may change.
    const changed = [...(values.preset ? ['--preset'] : []), ...Object.keys(overrides).filter((k) => !RESUME_KEYS.includes(k))];
    if (changed.length) throw new UsageError(`--resume continues the checkpoint's run with its own settings: drop ${changed.join(', ')} (only --steps, the total, the evaluation flags, and --batch and --accum to split the same global batch over other workers may change)`);
  }
  const saveEvery = numberFlag('save-every', values['save-every'], { integer: true, min: 1 });
  if (saveEvery !== undefined && !values.save) throw new UsageError('--save-every K needs --save FILE (where to save)');
  const dist = parseDist(values);
  try {
    checkSplit(cfg, dist);
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see \`npm run cli -- train --help\`)`);
  }
  return {
    cfg,
    explicitVocab: 'vocab_size' in overrides,
    dist,
    backend,
    data: values.data ?? DEFAULT_DATA,
    json: values.json,
    sample,
    prompt: values.prompt ?? '',
    init: values.init,
    resume: values.resume,
    steps: 'max_iters' in overrides ? Number(overrides.max_iters) : undefined,
    given: Object.keys(overrides),
    save: values.save,
    saveEvery,
  };
}

/** --strategy, --workers, --transport, --bucket-mb, --shard, --no-prefetch, --microbatches, --schedule, --inner-steps, --outer-lr, --outer-momentum, --outer-compress -> checked DistOptions (checkDist's messages, exit 2). */
function parseDist(values: {
  strategy?: string; workers?: string; transport?: string; 'bucket-mb'?: string; shard?: string; 'no-prefetch'?: boolean; inject?: string[]; 'on-nan'?: string; 'no-buddies'?: boolean;
  microbatches?: string; schedule?: string; 'inner-steps'?: string; 'outer-lr'?: string; 'outer-momentum'?: string; 'outer-compress'?: string;
}): DistOptions {
  const strategy = (values.strategy ?? DIST_DEFAULTS.strategy) as Strategy;
  const shard = choiceFlag('shard', values.shard, SHARD_STRATEGIES);
  const schedule = choiceFlag('schedule', values.schedule, PIPELINE_SCHEDULES);
  const microbatches = numberFlag('microbatches', values.microbatches, { integer: true, min: 1 });
  // A strategy's own flags mean nothing to the others: say so rather than ignore them.
  if (strategy !== 'fsdp') {
    const flag = shard !== undefined ? `--shard ${shard}` : values['no-prefetch'] ? '--no-prefetch' : null;
    if (flag) throw new UsageError(`${flag} needs --strategy fsdp (it only applies to fully sharded training; see \`npm run cli -- train --help\`)`);
  }
  if (strategy !== 'pp') {
    const flag = microbatches !== undefined ? `--microbatches ${microbatches}` : schedule !== undefined ? `--schedule ${schedule}` : null;
    if (flag) throw new UsageError(`${flag} needs --strategy pp (it only applies to pipeline parallel training; see \`npm run cli -- train --help\`)`);
  }
  const innerSteps = numberFlag('inner-steps', values['inner-steps'], { integer: true, min: 1 });
  const outerLr = numberFlag('outer-lr', values['outer-lr']);
  if (outerLr !== undefined && !(outerLr > 0)) throw new UsageError(`--outer-lr must be a positive number, got ${values['outer-lr']}`);
  const outerMomentum = numberFlag('outer-momentum', values['outer-momentum'], { min: 0 });
  if (outerMomentum !== undefined && !(outerMomentum < 1)) throw new UsageError(`--outer-momentum must be below 1, got ${values['outer-momentum']}`);
  const outerCompress = choiceFlag('outer-compress', values['outer-compress'], OUTER_COMPRESSIONS);
  if (strategy !== 'diloco') {
    const given = [['inner-steps', innerSteps], ['outer-lr', outerLr], ['outer-momentum', outerMomentum], ['outer-compress', outerCompress]].find(([, v]) => v !== undefined);
    if (given) throw new UsageError(`--${given[0]} ${given[1]} needs --strategy diloco (it only applies to local SGD / DiLoCo; see \`npm run cli -- train --help\`)`);
  }
  const workers = numberFlag('workers', values.workers) ?? (strategy === 'single' ? 1 : defaultWorkers(availableParallelism()));
  const dist: DistOptions = {
    ...DIST_DEFAULTS,
    strategy,
    workers,
    transport: (values.transport ?? DIST_DEFAULTS.transport) as TransportKind,
    bucketMb: numberFlag('bucket-mb', values['bucket-mb']) ?? DIST_DEFAULTS.bucketMb,
    shard: shard ?? DIST_DEFAULTS.shard,
    prefetch: !values['no-prefetch'],
    microbatches: microbatches ?? DIST_DEFAULTS.microbatches,
    schedule: schedule ?? DIST_DEFAULTS.schedule,
    innerSteps: innerSteps ?? DIST_DEFAULTS.innerSteps,
    outerLr: outerLr ?? DIST_DEFAULTS.outerLr,
    outerMomentum: outerMomentum ?? DIST_DEFAULTS.outerMomentum,
    outerCompress: outerCompress ?? DIST_DEFAULTS.outerCompress,
  };
  try {
    dist.faults = {
      inject: (values.inject ?? []).map((t) => parseInjection(t, workers)),
      onNaN: choiceFlag('on-nan', values['on-nan'], ['stop', 'skip'] as const) ?? 'stop',
      buddies: !values['no-buddies'],
    };
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see \`npm run cli -- train --help\`)`);
  }
  try {
    return checkDist(dist);
  } catch (e) {
    if (!(e instanceof DistError)) throw e;
    // --workers N alone: the default strategy is single, so say which flag is missing.
    const message = values.strategy === undefined && /strategy single/.test(e.message)
      ? `--workers ${workers} needs --strategy ddp, fsdp, tp, pp or diloco (the default, single, runs one worker)`
      : e.message;
    throw new UsageError(`${message} (see \`npm run cli -- train --help\`)`);
  }
}
