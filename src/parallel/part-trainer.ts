// What the model-parallel trainers share (TP: tp.ts, PP: pp.ts): a rank that holds a part of the model
// (its slices of every block, or its stage's blocks) in its own flat layout, the `local` table, with
// AdamW over that part alone. How a step runs is each strategy's own; around it, this class keeps the
// parameters and the optimizer, applies an update once the step's loss and gradient norm are known
// (the coordinator's two-phase step), and gathers the whole model for evaluation, samples and export.
// FSDP (fsdp.ts) keeps shards of flat units instead, and gathers them unit by unit.

import * as tf from '@tensorflow/tfjs';
import { HOST_OPTIMIZER_BACKENDS, type RunConfig } from '../model/config';
import { GPT, type Grads, type Params } from '../model/gpt';
import { buildParamTable, paramViews, type ParamTable } from '../model/params';
import type { Dataset } from '../data/dataset';
import { AdamW, clipScale, learningRate } from '../train/optim';
import { HostAdamW } from '../train/host-adamw';
import { Trainer, checkFinite, firstNonFinite, tensorBytes, type MemoryReport, type StepOptions, type StepStats } from '../train/trainer';
import { flatten, type Checkpoint } from '../train/checkpoint';
import { TrainingError } from '../train/errors';
import type { Collectives } from './collectives';
import { WaitClock } from './ddp';
import { serializer } from '../util/serial';
import type { Tracer } from '../util/trace';
import { unlessOutOfMemory } from '../util/wasm';

/** How a strategy cuts the whole model: this rank's layout, and its part of any whole flat vector. */
export interface Part {
  local(table: ParamTable): ParamTable;
  slice(flat: Float32Array, table: ParamTable): Float32Array;
}

export abstract class PartTrainer {
  readonly table: ParamTable; // the whole model's
  readonly local: ParamTable; // this rank's part: the layout of its flat vectors (parameters, gradients, m, v)
  readonly model: GPT;
  step = 0;
  /** This rank's parameters (local shapes), by the whole table's names. */
  params: Map<string, tf.Tensor>;
  /** AdamW on the host (wasm, cpu: one SIMD kernel over the flat part) or in tfjs kernels (GPU backends): exactly one is set. */
  protected readonly host: HostAdamW | null;
  protected readonly opt: AdamW | null;
  readonly memory: MemoryReport = { params: 0, grads: 0, optimizer: 0, buddy: 0, gathered_peak: 0, activations_peak: 0, comm_buffers: 0 };
  readonly clock: WaitClock;
  private ownTracer: Tracer | null = null;
  /** Steps and gathers of the whole model, one at a time (a checkpoint asked for mid-step waits). */
  protected readonly exclusive = serializer();

  /**
   * full: the whole model's initial flat parameters (every rank gets them and keeps its part).
   * hostOptimizer: AdamW on the host (default: on the CPU backends, as Trainer) or in tfjs kernels.
   */
  constructor(readonly cfg: RunConfig, readonly data: Dataset, full: Float32Array, readonly coll: Collectives, private readonly part: Part, hostOptimizer?: boolean) {
    this.table = buildParamTable(cfg);
    if (full.length !== this.table.total) throw new TrainingError(`initial parameters have ${full.length} values, this model needs ${this.table.total}`);
    this.local = part.local(this.table);
    this.model = new GPT(cfg, this.table);
    this.clock = new WaitClock(coll);
    const init = this.slice(full);
    this.params = this.tensorsOf(init);
    const adamw = { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weight_decay: cfg.weight_decay };
    this.host = (hostOptimizer ?? HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend())) ? unlessOutOfMemory(() => new HostAdamW(this.local, adamw, init)) : null;
    const decay = new Set(this.local.params.filter((p) => p.decay).map((p) => p.name));
    this.opt = this.host ? null : new AdamW(adamw, (n) => decay.has(n));
    this.measureAtRest(0);
  }

  get rank() {
    return this.coll.rank;
  }
  get world() {
    return this.coll.world;
  }

  /** Compute spans go here: the collectives' tracer (which records the communication), unless set. */
  get tracer(): Tracer {
    return this.ownTracer ?? this.coll.tracer;
  }
  set tracer(t: Tracer) {
    this.ownTracer = t;
  }

  /** One optimizer step of the strategy (every rank calls it together). */
  abstract trainStep(opts?: StepOptions): Promise<StepStats>;

  /** Collective: the whole model's flat parameters from every rank's part, on every rank. */
  protected abstract fullParams(): Promise<Float32Array>;

  /** This rank's part of a whole flat vector (parameters, m or v). */
  protected slice(flat: Float32Array): Float32Array {
    return this.part.slice(flat, this.table);
  }

  private tensorsOf(flat: Float32Array): Map<string, tf.Tensor> {
    return new Map(this.local.params.map((p) => [p.name, tf.tensor(flat.subarray(p.offset, p.offset + p.size), p.shape)]));
  }

  /** What this rank holds between steps (as Trainer's, of its part). */
  protected measureAtRest(gradBytes: number): void {
    this.memory.params = tensorBytes(this.params.values());
    if (this.host) {
      this.memory.grads = this.host.grads.byteLength;
      this.memory.optimizer = this.host.params.byteLength + this.host.m.byteLength + this.host.v.byteLength;
    } else {
      this.memory.grads = gradBytes;
      this.memory.optimizer = this.opt!.stateBytes();
    }
  }

  protected readonly p: Params = (name) => {
    const t = this.params.get(name);
    if (!t) throw new Error(`rank ${this.rank} used ${name}, which is not in its part of the model`);
    return t;
  };

  /** The gradient as handed to the optimizer (local layout), for StepOptions.grads. */
  protected async capture(grads: Grads): Promise<Float32Array> {
    return this.host ? this.host.grads.slice() : flatten(this.local, await readAll(grads));
  }

  /**
   * The end of a step, once its loss and global gradient norm are known: the two-phase check (with
   * opts.beforeUpdate the coordinator decides; without it a non-finite step throws), clipping and AdamW
   * on this rank's part. grads: the tensors (tfjs AdamW), or the host optimizer's flat array already holds them.
   */
  protected async update(grads: Grads, loss: number, gradNorm: number, opts: StepOptions): Promise<{ lr: number; grads?: Float32Array }> {
    const captured = opts.grads ? await this.capture(grads) : undefined;
    if (opts.beforeUpdate) {
      const bad = Number.isFinite(gradNorm) ? null : this.host ? firstNonFinite(this.local, this.host.grads) : await firstNonFiniteTensor(this.local, grads);
      await opts.beforeUpdate({ loss, gradNorm, nonFinite: bad });
    } else checkFinite(loss, gradNorm, this.step, this.cfg.lr);
    const lr = learningRate(this.step, this.cfg);
    const clip = clipScale(gradNorm, this.cfg.grad_clip);
    const next = this.tracer.span('optimizer', 'compute', () => {
      if (this.host) {
        this.host.step(lr, clip);
        return this.host.tensors();
      }
      const scale = tf.scalar(clip);
      const updated = this.opt!.step(this.params, grads, lr, scale);
      scale.dispose();
      return updated;
    });
    for (const t of this.params.values()) t.dispose();
    this.params = next;
    this.measureAtRest(tensorBytes(grads.values()));
    this.step += 1;
    return { lr, ...(captured ? { grads: captured } : {}) };
  }

  /** This rank's parameters in its local flat layout. */
  protected async localParams(): Promise<Float32Array> {
    if (this.host) return this.host.params.slice();
    return flatten(this.local, await readAll(this.params));
  }

  /** Collective: runs fn on rank 0 with a temporary whole model (the others only take part in the gather). */
  private async withFullModel<R>(fn: (t: Trainer) => Promise<R>, otherwise: R): Promise<R> {
    const full = await this.exclusive(() => this.fullParams());
    if (this.rank !== 0) return otherwise;
    const t = new Trainer(this.cfg, this.data, full, undefined, { optimizer: false });
    t.step = this.step;
    try {
      return await fn(t);
    } finally {
      t.dispose();
    }
  }

  /** Collective; rank 0 answers (the others NaN). */
  evalLoss(split: 'train' | 'val', iters: number): Promise<number> {
    return this.withFullModel((t) => t.evalLoss(split, iters), NaN);
  }

  /** Collective; rank 0 answers (the others ''). */
  sample(prompt: string, tokens: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): Promise<string> {
    return this.withFullModel((t) => t.sample(prompt, tokens, opts), '');
  }

  /** Collective: the whole model's flat parameters. */
  exportParams(): Promise<Float32Array> {
    return this.exclusive(() => this.fullParams());
  }

  /**
   * This rank's parameters and AdamW's m and v in its local layout, and AdamW's step count. Not a
   * collective: the coordinator puts every rank's together (parts.ts assembleParts).
   */
  localState(): Promise<{ params: Float32Array; m: Float32Array; v: Float32Array; t: number }> {
    return this.exclusive(async () => {
      if (this.host) return { params: this.host.params.slice(), m: this.host.m.slice(), v: this.host.v.slice(), t: this.host.t };
      const st = await this.opt!.state();
      return { params: await this.localParams(), m: flatten(this.local, st.m), v: flatten(this.local, st.v), t: st.t };
    });
  }

  /** Continues from a whole checkpoint: keeps this rank's part of the parameters, m and v, and the step. */
  restore(c: Checkpoint): void {
    if (c.params.length !== this.table.total) {
      throw new TrainingError(`checkpoint has ${c.params.length} parameters, this model ${this.table.total}: different model shape`);
    }
    const params = this.slice(c.params);
    const resumed = c.header.adam_t > 0;
    for (const t of this.params.values()) t.dispose();
    if (this.host) {
      this.host.load(params, c.header.adam_t, resumed ? this.slice(c.m) : undefined, resumed ? this.slice(c.v) : undefined);
      this.params = this.host.tensors();
    } else {
      this.params = this.tensorsOf(params);
      const shapes = new Map(this.local.params.map((p) => [p.name, p.shape]));
      if (resumed) this.opt!.loadState({ t: c.header.adam_t, m: paramViews(this.local, this.slice(c.m)), v: paramViews(this.local, this.slice(c.v)) }, shapes);
    }
    this.step = c.header.step;
    this.measureAtRest(0);
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.params.clear();
    this.opt?.dispose();
    this.model.dispose();
  }
}

async function readAll(tensors: Map<string, tf.Tensor>): Promise<Map<string, Float32Array>> {
  return new Map(await Promise.all([...tensors].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
}

async function firstNonFiniteTensor(table: ParamTable, grads: Grads): Promise<string | null> {
  for (const p of table.params) if ((await grads.get(p.name)!.data()).some((x) => !Number.isFinite(x))) return p.name;
  return null;
}
