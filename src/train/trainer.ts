// One worker's training loop: parameters as tfjs tensors, AdamW, gradient accumulation, validation
// loss and sampling. The same class runs in a Web Worker (the page), in Node (the CLI) and in tests.

import * as tf from '@tensorflow/tfjs';
import { HOST_OPTIMIZER_BACKENDS, type RunConfig } from '../model/config';
import { GPT, type AttentionKernel, type Batch, type Grads, type UnitHooks } from '../model/gpt';
import { buildParamTable, initParams, mixSeed, mulberry32, paramViews, type ParamTable } from '../model/params';
import { batchOffsets, makeBatch, type Dataset } from '../data/dataset';
import { AdamW, clipFactor, clipScale, learningRate, sumOfSquares } from './optim';
import { HostAdamW } from './host-adamw';
import { checkpointHeader, flatten, type Checkpoint, type History } from './checkpoint';
import { serializer } from '../util/serial';
import { clock, noTrace, type Tracer } from '../util/trace';
import { unlessOutOfMemory } from '../util/wasm';
import { TrainingError } from './errors';

/**
 * How replicas agree on gradients (DDP: src/parallel/ddp.ts). hooks run during the last micro-batch's
 * backward; finish returns the synchronized gradients (and disposes the local ones it replaces).
 */
export interface GradSync {
  hooks: UnitHooks;
  /** This replica's mean loss for the step, once known (DDP sends it with the last gradient bucket). */
  setLocalLoss(loss: Promise<number>): void;
  /**
   * The synchronized gradients and the step's loss averaged over replicas. With `into` (the flat
   * layout, the host optimizer's), the gradients are written there instead and the map comes back empty.
   */
  finish(grads: Grads, into?: Float32Array): Promise<{ grads: Grads; loss: number }>;
}

/** Bytes per worker by kind: what the page draws as bars. "At rest" = between steps. */
export interface MemoryReport {
  params: number; // parameters at rest (a shard under FSDP, everything under DDP)
  grads: number; // gradient storage a step keeps (a shard under FSDP)
  optimizer: number; // AdamW m and v at rest
  buddy: number; // FSDP: a neighbour's shards (parameters, m, v) kept to rebuild them if it fails
  gathered_peak: number; // most unsharded (all-gathered) parameter bytes alive at once during a step (FSDP)
  activations_peak: number; // most activation bytes (saved for backward) alive at once
  comm_buffers: number; // most bytes of communication buffers alive at once
}

/** Bytes the tensors hold (their size times the bytes of their dtype). */
export function tensorBytes(tensors: Iterable<tf.Tensor>): number {
  let n = 0;
  for (const t of tensors) n += t.size * tf.util.bytesPerElement(t.dtype);
  return n;
}

/** tf.memory() bytes above a baseline, not counting gradient tensors: the activations saved for backward. */
export function activationProbe(report: MemoryReport, extraBytes: () => number = () => 0) {
  const base = tf.memory().numBytes;
  return (grads: Grads) => {
    let gradBytes = 0;
    for (const g of grads.values()) gradBytes += g.size * 4;
    report.activations_peak = Math.max(report.activations_peak, tf.memory().numBytes - base - gradBytes - extraBytes());
  };
}

export interface StepStats {
  step: number; // optimizer steps completed
  loss: number; // mean over the step's micro-batches
  lr: number;
  gradNorm: number; // before clipping
  ms: number; // wall time of the step
  tokens: number; // tokens processed in the step, by all replicas
  /**
   * With StepOptions.grads: the gradient the optimizer was given, before clipping (averaged over
   * replicas and micro-batches), in the flat layout; FSDP's shards of each unit (padded), unit by unit.
   */
  grads?: Float32Array;
  /** PP: this stage's run through the schedule: its length, and the time not spent waiting for a neighbour. */
  pipeline?: StageTime;
}

/** A pipeline stage's step (pp-layout.ts measuredBubble): from the step's start to its last operation, and of that, busy. */
export interface StageTime {
  spanMs: number;
  busyMs: number;
}

/** What a step should hand back beside its stats, and how it may be stopped before its update. */
export interface StepOptions {
  /** Hand back the gradient the optimizer is given (tests compare gradients, not only losses). */
  grads?: boolean;
  /** Poison this rank's gradients with NaN (fault injection: `--inject nan:R@STEP`, the page's "Break something"). */
  poison?: boolean;
  /**
   * Called once the step's loss and gradient norm are known, before anything is updated: the
   * coordinator's two-phase step (every rank ready, then every rank updates; src/parallel/rank.ts).
   * If it rejects, the step ends with nothing applied. With it, a non-finite loss or gradient is
   * reported here (the coordinator decides) instead of thrown.
   */
  beforeUpdate?: (ready: ReadyCheck) => Promise<void>;
}

/** A step about to update: its loss, gradient norm, and the first parameter whose gradient is not finite. */
export interface ReadyCheck {
  loss: number;
  gradNorm: number;
  nonFinite: string | null;
}

/** The first parameter (in table order) with a NaN or infinite value in a flat vector, or null. */
export function firstNonFinite(table: ParamTable, flat: Float32Array, offset = 0): string | null {
  for (const p of table.params) {
    const lo = Math.max(p.offset - offset, 0);
    const hi = Math.min(p.offset + p.size - offset, flat.length);
    for (let i = lo; i < hi; i++) if (!Number.isFinite(flat[i])) return p.name;
  }
  return null;
}

export { TrainingError };

/**
 * Rank r's micro-batches of step t. The global batch of step t is world x K x B windows fixed by
 * (seed, t); rank r takes the r-th contiguous slice and splits it into K micro-batches, so N ranks x
 * batch b see exactly the samples of one worker with batch N*b.
 */
export function rankMicroBatches(data: Dataset, cfg: RunConfig, step: number, rank: number, world: number): Batch[] {
  const { batch_size: B, grad_accum: K, block_size: T, seed } = cfg;
  const offsets = batchOffsets(seed, step, world * K * B, data.train.length, T);
  return Array.from({ length: K }, (_, k) => makeBatch(data.train, offsets, rank * K * B + k * B, B, T));
}

/** Throws (before any update) when a step's loss or gradient is not finite. */
export function checkFinite(loss: number, gradNorm: number, step: number, lr: number): void {
  if (Number.isFinite(loss) && Number.isFinite(gradNorm)) return;
  throw new TrainingError(
    `the loss became ${loss} (gradient norm ${gradNorm}) at step ${step + 1}; the update was skipped and the ` +
      `parameters are those of step ${step}. Lower lr (now ${lr}) or keep grad_clip on, then resume`,
  );
}

export class Trainer {
  readonly table: ParamTable;
  readonly model: GPT;
  params: Map<string, tf.Tensor>;
  /** AdamW: on the CPU backends (wasm, cpu) on the host, in one SIMD kernel (host-adamw.ts); on GPU
   *  backends in tfjs kernels, so the parameters stay on the device. Exactly one is set. */
  private readonly host: HostAdamW | null;
  private readonly opt: AdamW | null;
  step = 0;
  rank = 0; // this replica's index and the number of replicas (DDP); 0 and 1 for one worker
  world = 1;
  readonly memory: MemoryReport;
  tracer: Tracer = noTrace;

  /** opts.optimizer false: for evaluation and samples only (FSDP's temporary full model), no AdamW memory. */
  constructor(readonly cfg: RunConfig, readonly data: Dataset, init?: Float32Array, attention?: AttentionKernel, opts: { optimizer?: boolean } = {}) {
    this.table = buildParamTable(cfg);
    this.model = new GPT(cfg, this.table, attention);
    const flat = init ?? initParams(this.table, cfg, cfg.seed);
    if (flat.length !== this.table.total) {
      throw new TrainingError(`initial parameters have ${flat.length} values, this model needs ${this.table.total}`);
    }
    this.params = new Map(this.table.params.map((p) => [p.name, tf.tensor(flat.subarray(p.offset, p.offset + p.size), p.shape)]));
    const decay = new Set(this.table.params.filter((p) => p.decay).map((p) => p.name));
    const adamw = { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weight_decay: cfg.weight_decay };
    const train = opts.optimizer ?? true;
    // the tfjs AdamW instead when the host's memory cannot be had
    this.host = train && HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend()) ? unlessOutOfMemory(() => new HostAdamW(this.table, adamw, flat)) : null;
    this.opt = train && !this.host ? new AdamW(adamw, (n) => decay.has(n)) : null;
    this.memory = { params: 0, grads: 0, optimizer: 0, buddy: 0, gathered_peak: 0, activations_peak: 0, comm_buffers: 0 };
    this.measureAtRest(0);
  }

  /**
   * What this replica really holds between steps, by kind (src/ui/memory.ts has the formula to compare):
   * its parameter tensors; the gradients a step keeps (the host optimizer's flat array, or the tensors
   * the tfjs AdamW was given: gradBytes); AdamW's state (on the host: m, v and the master copy of the
   * weights it updates; else m and v tensors, made at the first step).
   */
  private measureAtRest(gradBytes: number): void {
    this.memory.params = tensorBytes(this.params.values());
    if (this.host) {
      this.memory.grads = this.host.grads.byteLength;
      this.memory.optimizer = this.host.params.byteLength + this.host.m.byteLength + this.host.v.byteLength;
    } else {
      this.memory.grads = gradBytes;
      this.memory.optimizer = this.opt?.stateBytes() ?? 0;
    }
  }

  private get p() {
    return (name: string) => this.params.get(name)!;
  }

  /** This rank's micro-batches of the current step (see rankMicroBatches). */
  microBatches(): Batch[] {
    return rankMicroBatches(this.data, this.cfg, this.step, this.rank, this.world);
  }

  /**
   * Steps and checkpoints run one at a time. Reading tensors is asynchronous, so without this a
   * checkpoint requested mid-step (the page asks while training runs) could mix the weights of two steps.
   */
  private readonly exclusive = serializer();

  /**
   * One optimizer step: forward and backward over the micro-batches (gradients accumulate locally;
   * with a GradSync only the last micro-batch communicates, as PyTorch's no_sync), then clipping and
   * AdamW. A non-finite loss or gradient stops before the update and leaves the parameters intact.
   */
  trainStep(sync?: GradSync, opts: StepOptions = {}): Promise<StepStats> {
    return this.exclusive(() => this.step_(sync, opts));
  }

  private async step_(sync: GradSync | undefined, opts: StepOptions): Promise<StepStats> {
    const t0 = performance.now();
    const batches = this.microBatches();
    const K = batches.length;
    let grads: Grads = new Map();
    let lossSum: tf.Scalar = tf.scalar(0);
    let sumSq: tf.Scalar | null = null;
    const probe = activationProbe(this.memory);
    try {
      for (let k = 0; k < K; k++) {
        const poison = opts.poison && k === K - 1; // an injected fault: every gradient of this rank NaN
        const fwd = { training: true, dropoutSeed: mixSeed(this.cfg.seed + this.rank, this.step, k), lossScale: poison ? NaN : 1 / K, trace: this.tracer };
        const syncHooks = k === K - 1 ? sync?.hooks : undefined; // inner micro-batches do not communicate (no_sync)
        const hooks: UnitHooks = {
          ...syncHooks,
          beforeBackward: (u) => {
            probe(grads); // all activations of the forward are alive when backward starts
            return syncHooks?.beforeBackward?.(u);
          },
          lossReady: (loss) => {
            if (!sync || k < K - 1) return;
            const mean = tf.tidy(() => tf.div(tf.add(lossSum, loss), K)); // (the sum is freed, the mean when read)
            sync.setLocalLoss(mean.data().then((d) => (mean.dispose(), d[0])));
          },
        };
        const loss = await this.model.forwardBackward(this.p, batches[k], fwd, grads, hooks);
        const prev = lossSum;
        lossSum = tf.add(prev, loss);
        tf.dispose([prev, loss]);
      }
      let syncedLoss: number | undefined;
      if (sync) ({ grads, loss: syncedLoss } = await sync.finish(grads, this.host?.grads));
      const ts = clock();
      let sumSqV: number;
      let lossV: number;
      if (this.host) {
        if (!sync) await this.host.readGrads(grads); // (a sync wrote them there)
        sumSqV = this.host.sumOfSquares();
        lossV = (await lossSum.data())[0];
      } else {
        // On a GPU, one readback for both: each is a round trip to the device (bench/gpu-counters.ts).
        sumSq = sumOfSquares(grads.values());
        const both = tf.stack([sumSq, lossSum]);
        const d = await both.data();
        both.dispose();
        [sumSqV, lossV] = [d[0], d[1]];
      }
      this.tracer.record('gradient norm', 'compute', 'main', ts);
      const captured = opts.grads ? (this.host ? this.host.grads.slice() : await this.flatten(grads)) : undefined;
      const loss = syncedLoss ?? lossV / K;
      const gradNorm = Math.sqrt(sumSqV);
      if (opts.beforeUpdate) {
        const bad = Number.isFinite(gradNorm) ? null : this.host ? firstNonFinite(this.table, this.host.grads) : await this.firstNonFiniteTensor(grads);
        await opts.beforeUpdate({ loss, gradNorm, nonFinite: bad });
      } else checkFinite(loss, gradNorm, this.step, this.cfg.lr);
      const lr = learningRate(this.step, this.cfg);
      const next = this.tracer.span('optimizer', 'compute', () => {
        if (this.host) {
          this.host.step(lr, clipScale(gradNorm, this.cfg.grad_clip));
          return this.host.tensors();
        }
        if (!this.opt) throw new Error('this Trainer was made for evaluation only (no optimizer)');
        const scale = clipFactor(sumSq!, this.cfg.grad_clip);
        const updated = this.opt.step(this.params, grads, lr, scale);
        scale.dispose();
        return updated;
      });
      for (const t of this.params.values()) t.dispose();
      this.params = next;
      this.measureAtRest(tensorBytes(grads.values()));
      this.step += 1;
      const tokens = this.world * batches.reduce((n, b) => n + b.B * b.T, 0);
      return { step: this.step, loss, lr, gradNorm, ms: performance.now() - t0, tokens, ...(captured ? { grads: captured } : {}) };
    } finally {
      tf.dispose([lossSum, ...(sumSq ? [sumSq] : []), ...grads.values()]);
    }
  }

  /** Mean loss over `iters` batches of a split; fixed batches (seeded by split) so estimates compare across steps. */
  async evalLoss(split: 'train' | 'val', iters = this.cfg.eval_iters): Promise<number> {
    const data = split === 'train' ? this.data.train : this.data.val;
    const { batch_size: B, block_size: T, seed } = this.cfg;
    let total = 0;
    for (let i = 0; i < iters; i++) {
      const offsets = batchOffsets(mixSeed(seed, split === 'train' ? 1 : 2), i, B, data.length, T);
      const loss = this.model.loss(this.p, makeBatch(data, offsets, 0, B, T));
      total += (await loss.data())[0];
      loss.dispose();
    }
    return total / iters;
  }

  /** Generates text after a prompt (temperature, top-k), cropping the context to block_size. */
  async sample(prompt: string, maxNewTokens: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): Promise<string> {
    const { temperature = 0.8, topK = 40, seed = 1 } = opts;
    const tok = this.data.tokenizer;
    const rand = mulberry32(mixSeed(seed, this.step));
    const ids = [...(prompt ? tok.encode(prompt) : [0])];
    const start = prompt ? ids.length : 1;
    for (let i = 0; i < maxNewTokens; i++) {
      const ctx = Int32Array.from(ids.slice(-this.cfg.block_size));
      const logits = this.model.logits(this.p, ctx, 1, ctx.length, { lastOnly: true });
      const row = (await logits.data()) as Float32Array;
      logits.dispose();
      ids.push(sampleLogits(row, temperature, topK, rand));
    }
    return tok.decode(ids.slice(start));
  }

  private async firstNonFiniteTensor(grads: Grads): Promise<string | null> {
    for (const p of this.table.params) if ((await grads.get(p.name)!.data()).some((x) => !Number.isFinite(x))) return p.name;
    return null;
  }

  /** Gradient tensors in the flat layout. */
  private async flatten(grads: Grads): Promise<Float32Array> {
    const flat = new Float32Array(this.table.total);
    for (const p of this.table.params) flat.set((await grads.get(p.name)!.data()) as Float32Array, p.offset);
    return flat;
  }

  /** All parameters in the flat layout (for checkpoints and export). */
  async exportParams(): Promise<Float32Array> {
    if (this.host) return this.host.params.slice();
    const flat = new Float32Array(this.table.total);
    for (const p of this.table.params) flat.set((await this.params.get(p.name)!.data()) as Float32Array, p.offset);
    return flat;
  }

  /** Parameters, AdamW state and step, for src/train/checkpoint.ts. */
  toCheckpoint(history: History = {}): Promise<Checkpoint> {
    return this.exclusive(async () => {
      const params = await this.exportParams();
      const st = this.host ? { t: this.host.t, m: this.host.m.slice(), v: this.host.v.slice() }
        : await this.opt!.state().then((s) => ({ t: s.t, m: flatten(this.table, s.m), v: flatten(this.table, s.v) }));
      return { header: checkpointHeader(this.cfg, this.data.tokenizer.spec(), this.step, st.t, this.table.total, history), params, m: st.m, v: st.v };
    });
  }

  /** Continues from a checkpoint of the same model shape. */
  restore(c: Checkpoint): void {
    if (c.params.length !== this.table.total) {
      throw new TrainingError(`checkpoint has ${c.params.length} parameters, this model ${this.table.total}: different model shape`);
    }
    for (const t of this.params.values()) t.dispose();
    const resumed = c.header.adam_t > 0;
    if (this.host) {
      this.host.load(c.params, c.header.adam_t, resumed ? c.m : undefined, resumed ? c.v : undefined);
      this.params = this.host.tensors();
    } else {
      this.params = new Map(this.table.params.map((p) => [p.name, tf.tensor(c.params.subarray(p.offset, p.offset + p.size), p.shape)]));
      const shapes = new Map(this.table.params.map((p) => [p.name, p.shape]));
      if (resumed) this.opt!.loadState({ t: c.header.adam_t, m: paramViews(this.table, c.m), v: paramViews(this.table, c.v) }, shapes);
    }
    this.step = c.header.step;
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
    this.opt?.dispose();
    this.model.dispose();
  }
}

/** Samples an index from logits / temperature restricted to the top k (temperature 0: argmax). */
export function sampleLogits(logits: Float32Array, temperature: number, topK: number, rand: () => number): number {
  let order = Array.from(logits.keys());
  if (temperature <= 0) return order.reduce((best, i) => (logits[i] > logits[best] ? i : best), 0);
  if (topK > 0 && topK < logits.length) order = order.sort((a, b) => logits[b] - logits[a]).slice(0, topK);
  const max = Math.max(...order.map((i) => logits[i]));
  const weights = order.map((i) => Math.exp((logits[i] - max) / temperature));
  let r = rand() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < order.length; j++) {
    r -= weights[j];
    if (r <= 0) return order[j];
  }
  return order[order.length - 1];
}
