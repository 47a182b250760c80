// `train`: headless training through the same Session the page uses, with a progress line on stderr
// and, with --json, the run's numbers in a file. Every run goes through the distributed runtime
// (src/parallel): a Coordinator drives N ranks, each in its own worker_thread with its own tfjs engine;
// `single` is one rank, so single and ddp timings measure the same machinery.
// run() = prepare (flags, text, tokenizer: every input error before a worker starts) -> train -> report
// (src/cli/report.ts); the flags and help are in src/cli/train-options.ts.

import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { checkVocab, type RunConfig } from '../model/config';
import { readModel, startFromWeights, writeModel } from '../model/formats';
import { decodeCheckpoint, encodeCheckpoint } from '../train/checkpoint';
import { writeShards } from '../parallel/shards';
import { bpeTokenizer, charTokenizer, makeTokenizer, type Tokenizer } from '../data/tokenizer';
import { makeDataset, type Dataset } from '../data/dataset';
import { decodeCorpus } from '../data/text';
import { Session, type TrainEvent } from '../train/session';
import { Coordinator } from '../parallel/coordinator';
import { globalSequences, gradientSync, splitsBatch } from '../parallel/layout';
import { spawnNodeWorker } from '../parallel/node-spawn';
import { Relay } from '../classroom/relay';
import type { RelayRun } from '../classroom/hub';
import type { RankStepStats } from '../parallel/protocol';
import { describeBackend } from '../backend/backend';
import { prepareWebGPUEnv } from '../backend/node';
import { CliError, formatDuration, readBytes, UsageError } from './args';
import { help, parseTrainOptions, WARMUP_STEPS, type TrainOptions } from './train-options';
import { describeStrategy, jsonRecord, summaryLines, type RunResult } from './report';
import { formatToWrite, loadModelFiles, saveModelFiles } from './model-files';

export { help };

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

/** What training needs, read and checked: the config with the tokenizer's vocabulary, the text, the data. */
interface Prepared {
  opts: TrainOptions;
  cfg: RunConfig;
  text: string;
  tokenizer: Tokenizer;
  dataset: Dataset;
  checkpoint?: ArrayBuffer; // --init's weights or --resume's run, for every rank to start from
}

/**
 * --resume: the checkpoint's run (settings, tokenizer, state), trained to --steps in all; --init: the
 * file's weights and shape with the flags' training settings and a fresh optimizer. Else nothing.
 */
async function startingPoint(opts: TrainOptions, text: string): Promise<{ cfg: RunConfig; tokenizer: Tokenizer; checkpoint?: ArrayBuffer } | null> {
  const path = opts.resume ?? opts.init;
  if (!path) return null;
  const weights = readModel(loadModelFiles(path), path);
  if (opts.resume) {
    const c = weights.checkpoint;
    if (!c) throw new CliError(`--resume ${path}: not a checkpoint of this trainer (llm.c's and Hugging Face's files hold no optimizer state or step): start from its weights with --init`);
    const given = (k: 'eval_interval' | 'eval_iters' | 'batch_size' | 'grad_accum') => (opts.given.includes(k) ? { [k]: opts.cfg[k] } : {});
    const cfg: RunConfig = {
      ...c.header.config, max_iters: opts.steps ?? c.header.config.max_iters, backend: opts.backend,
      ...given('eval_interval'), ...given('eval_iters'), ...given('batch_size'), ...given('grad_accum'),
    };
    if (cfg.max_iters <= c.header.step) throw new UsageError(`--resume ${path}: the run is at step ${c.header.step} already; --steps is the run's total, give more than ${c.header.step}`);
    return { cfg, tokenizer: await makeTokenizer(c.header.tokenizer), checkpoint: encodeCheckpoint(c) };
  }
  // --init: the shape is the file's; everything else the preset's and the flags'; the tokenizer the file's, or the data's.
  const tokenizer = weights.tokenizer ? await makeTokenizer(weights.tokenizer) : opts.cfg.tokenizer === 'bpe' ? await bpeTokenizer() : charTokenizer(text);
  try {
    const { config, checkpoint } = startFromWeights(opts.cfg, weights, tokenizer.spec(), tokenizer.vocabSize, weights.tokenizer || opts.cfg.tokenizer === 'bpe' ? undefined : opts.data);
    return { cfg: config, tokenizer, checkpoint };
  } catch (e) {
    throw new CliError(`--init ${path}: ${(e as Error).message}`);
  }
}

/** Reads and checks every input (the --json directory, the text, the prompt) before any worker starts. */
async function prepare(opts: TrainOptions): Promise<Prepared> {
  // --json is written only at the end of a run (done or interrupted): check now that it can be, so a
  // finished run is not lost to a bad path; an existing file is replaced only then.
  if (opts.json) {
    const dir = dirname(resolve(opts.json));
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new CliError(`cannot write --json ${opts.json}: directory ${dir} does not exist`);
    }
    if (existsSync(opts.json) && statSync(opts.json).isDirectory()) {
      throw new CliError(`cannot write --json ${opts.json}: it is a directory; name a file, e.g. ${join(opts.json, 'run.json')}`);
    }
    try {
      accessSync(existsSync(opts.json) ? opts.json : dir, constants.W_OK);
    } catch {
      throw new CliError(`cannot write --json ${opts.json}: permission denied; choose another path`);
    }
  }
  // The same check as the page's: strict UTF-8, not binary, not empty or blank (DataError, exit 1).
  const text = decodeCorpus(new Uint8Array(readBytes(opts.data)), opts.data);
  const start = await startingPoint(opts, text);
  const tokenizer = start?.tokenizer ?? (opts.cfg.tokenizer === 'bpe' ? await bpeTokenizer() : charTokenizer(text));
  const cfg = start?.cfg ?? checkVocab(opts.cfg, tokenizer.vocabSize, opts.explicitVocab);
  if (opts.prompt) {
    try {
      tokenizer.encode(opts.prompt);
    } catch (e) {
      throw new UsageError(`--prompt: ${(e as Error).message}`);
    }
  }
  try {
    return { opts, cfg, text, tokenizer, dataset: makeDataset(text, tokenizer, cfg.block_size), checkpoint: start?.checkpoint };
  } catch (e) {
    throw new CliError(`${opts.data}: ${(e as Error).message}`);
  }
}

/** Starts the workers, trains until max_iters or Ctrl-C, evaluates and samples, and says what happened. */
async function train(p: Prepared, t0: number): Promise<RunResult> {
  const { opts, dataset, tokenizer } = p;
  const cfg = { ...p.cfg };
  const { dist } = opts;
  const progress = new Progress(cfg.max_iters, Boolean(process.stderr.isTTY));
  const rankSteps: RankStepStats[][] = [];
  const hubBytes: number[] = [];
  const buddyBytes: number[] = [];
  let coordinator: Coordinator | null = null;
  let relay: Relay | null = null; // --transport network: the loopback relay, and the run on it
  let relayRun: RelayRun | null = null;
  let relayBytes = 0;
  let session: Session | null = null;
  let interrupted = false;
  let announced = 0; // recoveries already printed
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
    // --transport network: a relay on loopback (a free port); the ranks talk only through it.
    if (dist.transport === 'network' && !dist.relay) {
      relay = await Relay.start({ host: '127.0.0.1', port: 0, dist: null });
      relayRun = relay.createRun({ world: dist.workers });
      relayBytes = 0;
    }
    const ranDist = relayRun ? { ...dist, relay: { url: relay!.wsUrl, secret: relayRun.secret, tokens: relayRun.tokens } } : dist;
    coordinator = await Coordinator.create(cfg, p.text, ranDist, spawnNodeWorker, p.checkpoint);
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
      // A recovery happened inside the step: say what failed and how the run went on.
      for (const x of coordinator!.recoveries.slice(announced)) {
        progress.message(`step ${x.step}: ${x.message}; recovered in ${Math.round(x.ms)} ms from ${x.restored_from}, replaying the step`);
      }
      announced = coordinator!.recoveries.length;
      if (e.type === 'step' && e.stats.perRank) rankSteps.push(e.stats.perRank);
      if (e.type === 'step' && e.stats.hubBytes !== undefined) hubBytes.push(e.stats.hubBytes);
      if (e.type === 'step' && relayRun) {
        // network: the bytes through the relay this step (in + out), as the star's hub reports its own
        const total = relayRun.stats.bytesIn + relayRun.stats.bytesOut;
        hubBytes.push(total - relayBytes);
        relayBytes = total;
      }
      if (e.type === 'step' && e.stats.buddyBytes !== undefined) buddyBytes.push(e.stats.buddyBytes);
      progress.event(e);
      if (e.type === 'step' && opts.saveEvery && e.stats.step % opts.saveEvery === 0) saving = saving.then(save);
    });
    session = s;

    const ran = coordinator.dist; // the transport after any fallback
    const globalBatch = globalSequences(dist, cfg);
    const sync = gradientSync(dist);
    const details = [`${ran.transport} transport`, ...(sync === 'all-reduce' ? [`${dist.bucketMb} MB buckets`] : []), ...(sync === 'shard' ? [`prefetch ${dist.prefetch ? 'on' : 'off'}`] : [])];
    progress.message(
      `${cfg.preset}: ${(coordinator.info.numParams / 1e6).toFixed(2)}M parameters (${cfg.n_layer} layers, ${cfg.n_head} heads, ` +
        `n_embd ${cfg.n_embd}, block ${cfg.block_size}), ${tokenizer.kind} tokenizer (${tokenizer.vocabSize} tokens), ` +
        `${dataset.train.length} train / ${dataset.val.length} val tokens`,
    );
    progress.message(
      `${dist.strategy === 'single' ? 'single: one worker thread' : `${describeStrategy(dist).replace(/ x\d+ \w+$/, '')} on ${dist.workers} worker thread${dist.workers > 1 ? 's' : ''} (${details.join(', ')})`}; ` +
        `backend ${describeBackend(info)}`,
    );
    if (coordinator.notice) progress.message(`note: ${coordinator.notice}`);
    progress.message(
      `${cfg.max_iters} steps of global batch ${globalBatch} = ${splitsBatch(dist) ? `${dist.workers} worker${dist.workers > 1 ? 's' : ''} x ` : ''}batch ${cfg.batch_size} ` +
        `x accum ${cfg.grad_accum} (${globalBatch * cfg.block_size} tokens of ${cfg.block_size}), seed ${cfg.seed}, ` +
        `lr ${cfg.lr} (warm-up ${cfg.warmup_iters} steps, cosine to ${cfg.min_lr} at step ${cfg.lr_decay_iters})`,
    );

    const tTrain = performance.now();
    // --save: the run as a checkpoint from the ranks, written in the format the name says.
    const earlier = p.checkpoint && opts.resume ? decodeCheckpoint(p.checkpoint).header : null; // a resumed run's history
    let saving = Promise.resolve();
    let savedAt = -1;
    const save = async () => {
      const history = { losses: [...(earlier?.losses ?? []), ...s.losses], val_losses: [...(earlier?.val_losses ?? []), ...s.valLosses] };
      // (the step comes from what was exported: training goes on while a --save-every save runs)
      const named = (step: number) => opts.save!.replaceAll('{step}', String(step));
      let files: Map<string, ArrayBuffer | string>;
      let step: number;
      if (formatToWrite(named(0)) === 'shards') {
        const states = await coordinator!.exportShards();
        step = states[0].header.step;
        files = writeShards(states, history); // each worker's file as it is
      } else {
        const c = decodeCheckpoint(await coordinator!.exportCheckpoint(history));
        step = c.header.step;
        files = writeModel({ config: c.header.config, params: c.params, tokenizer: c.header.tokenizer, checkpoint: c }, formatToWrite(named(step)), named(step));
      }
      const path = named(step);
      const written = saveModelFiles(path, files, true);
      savedAt = step;
      progress.message(`saved step ${step} to ${written.length > 2 ? `${dirname(written[0])}/ (${written.length} files)` : written.join(', ')}`);
    };
    await s.run();
    // A final validation estimate, unless the loop just made one.
    const last = s.valLosses.at(-1);
    if (coordinator.step > 0 && (!last || last[0] !== coordinator.step)) await s.evaluate();
    const sample = opts.sample > 0 && coordinator.step > 0 ? await s.sample() : undefined;
    await saving;
    if (opts.save && coordinator.step > 0 && savedAt !== coordinator.step) await save();
    const wallS = (performance.now() - tTrain) / 1000;
    progress.end();
    return {
      opts, cfg, backend: info, dist: ran, numParams: coordinator.info.numParams,
      data: { tokenizer: tokenizer.kind, vocabSize: tokenizer.vocabSize, trainTokens: dataset.train.length, valTokens: dataset.val.length },
      steps: coordinator.step, interrupted, losses: s.losses, gradNorms: s.gradNorms, valLosses: s.valLosses, stepMs: s.stepMs,
      rankSteps, recoveries: coordinator.recoveries, hubBytes, buddyBytes, skip: Math.min(WARMUP_STEPS, Math.max(0, s.stepMs.length - 1)),
      wallS, setupS: (tTrain - t0) / 1000, sample,
    };
  } finally {
    progress.end();
    process.off('SIGINT', onSigint);
    coordinator?.dispose(); // terminates every worker thread, also after an error
    await relay?.close();
  }
}

/** Prints the summary and writes the --json record. */
function report(r: RunResult): void {
  console.log(summaryLines(r).join('\n'));
  const file = r.opts.json;
  if (!file) return;
  try {
    writeFileSync(file, JSON.stringify(jsonRecord(r), null, 1) + '\n');
  } catch (e) {
    throw new CliError(`cannot write ${file}: ${(e as Error).message}`);
  }
  process.stderr.write(`wrote ${file}\n`);
}

export async function run(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const opts = parseTrainOptions(argv);
  if (!opts) {
    console.log(help);
    return 0;
  }
  const result = await train(await prepare(opts), t0);
  report(result);
  return result.interrupted ? 130 : 0;
}
