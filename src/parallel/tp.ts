// TP: tensor parallelism, after Megatron-LM (Shoeybi et al. 2019, "Megatron-LM: Training Multi-Billion
// Parameter Language Models Using Model Parallelism", section 3): each block's two matmul pairs are split
// among N ranks so that a block needs only two all-reduces forward and two backward. Vocabulary and the
// split of every parameter: ./tp-layout.ts.
//
//   data        - every rank sees the WHOLE global batch (one worker's view: rankMicroBatches(.., 0, 1),
//                 all K micro-batches of grad_accum); the ranks split the model, not the batch.
//   attention   - c_attn is column-parallel: rank r owns the q, k and v columns of its heads
//                 [r NH/N, (r+1) NH/N) (three column ranges of the (C, 3C) weight and of its bias), and
//                 runs attention on those heads only. c_proj is row-parallel: rank r owns rows
//                 [r C/N, (r+1) C/N) of the (C, C) weight, so its output is a partial sum: all-reduce SUM,
//                 then the replicated bias, dropout and the residual, once, on every rank alike.
//   MLP         - c_fc column-parallel (its columns [r 4C/N, ..) of weight and bias), GELU local, c_proj
//                 row-parallel + all-reduce sum + the replicated bias.
//   backward    - Megatron's f and g: g (the forward all-reduce after a row-parallel layer) is the
//                 identity in backward (d of the summed output is replicated); f (the identity before a
//                 column-parallel layer) is an all-reduce in backward: the gradient of ln_1's and ln_2's
//                 output is each rank's partial sum over its columns. So per block per micro-batch: 2
//                 all-reduces of (B*T, C) forward and 2 backward.
//   replicated  - the LayerNorms, the row-parallel layers' biases, wte (with the tied head), wpe and ln_f.
//                 Every rank computes them, and their gradients, from bitwise identical inputs (an
//                 all-reduce hands every rank the same sum), so their gradients agree without any
//                 reduction in this plain form, and AdamW keeps the copies identical. The embeddings and
//                 the tied head stay replicated (a vocabulary-parallel head is the next step, not taken).
//   dropout     - masks of replicated activations (embedding, attention and MLP outputs) are the same on
//                 every rank: every rank uses rank 0's seed (cfg.seed, not cfg.seed + rank). The
//                 attention-probability mask of a rank's heads is its slice of the (B, NH, T, T) mask one
//                 worker draws, so TP equals one worker with dropout too.
//   clipping    - the global norm's square is the sharded gradients' sums of squares over all ranks plus
//                 the replicated ones' once: one small all-reduce (one float per rank). The loss is the
//                 same on every rank (the head is replicated).
//   optimizer   - each rank's AdamW updates only its local parameters (host AdamW on wasm/cpu, tfjs AdamW
//                 on GPU backends, as Trainer), weight decay as in the full table.
//   eval/sample - collective: every rank's local vector is all-gathered and assembled into the full
//                 model, which a temporary Trainer evaluates on rank 0 (FSDP's pattern).
// The model's math is the model's own (src/model/gpt.ts: attnForward / mlpForward / mlpBackward /
// attnBackward / lnResidualBackward); this file only runs it on local slices and all-reduces in between.

import * as tf from '@tensorflow/tfjs';
import { HOST_OPTIMIZER_BACKENDS, type RunConfig } from '../model/config';
import { GPT, disposeCache, tidy, type AttnCache, type Batch, type Grads, type HeadRange, type MlpCache, type Params } from '../model/gpt';
import { buildParamTable, mixSeed, paramViews, type ParamTable } from '../model/params';
import type { Dataset } from '../data/dataset';
import { AdamW, clipScale, learningRate, sumOfSquares } from '../train/optim';
import { HostAdamW } from '../train/host-adamw';
import { Trainer, activationProbe, checkFinite, firstNonFinite, rankMicroBatches, tensorBytes, type MemoryReport, type StepOptions, type StepStats } from '../train/trainer';
import { flatten, type Checkpoint } from '../train/checkpoint';
import { TrainingError } from '../train/errors';
import type { Collectives } from './collectives';
import { WaitClock } from './ddp';
import { tpAssemble, tpHeads, tpLocalTable, tpSlice, type TPTable } from './tp-layout';
import { serializer } from '../util/serial';
import { clock, type Tracer } from '../util/trace';
import { unlessOutOfMemory } from '../util/wasm';

export class TPTrainer {
  readonly table: ParamTable; // the full model's
  readonly local: TPTable; // this rank's slices: the layout of its flat vectors (params, grads, m, v)
  readonly model: GPT;
  readonly heads: HeadRange;
  step = 0;
  /** This rank's parameters (local shapes), by the full table's names. */
  private params: Map<string, tf.Tensor>;
  /** AdamW on the host (wasm, cpu) or in tfjs kernels (GPU backends): exactly one is set. */
  private readonly host: HostAdamW | null;
  private readonly opt: AdamW | null;
  readonly memory: MemoryReport = { params: 0, grads: 0, optimizer: 0, buddy: 0, gathered_peak: 0, activations_peak: 0, comm_buffers: 0 };
  readonly clock: WaitClock;
  /** Compute spans go here (the rank sets it; by default the collectives' tracer, which records the all-reduces). */
  tracer: Tracer;
  private commBytes = 0;

  /**
   * full: the whole model's initial flat parameters (every rank gets them and keeps its slices).
   * opts.hostOptimizer: AdamW on the host (default: on the CPU backends, as Trainer) or in tfjs kernels.
   */
  constructor(readonly cfg: RunConfig, readonly data: Dataset, full: Float32Array, readonly coll: Collectives, opts: { hostOptimizer?: boolean } = {}) {
    this.table = buildParamTable(cfg);
    if (full.length !== this.table.total) {
      throw new TrainingError(`initial parameters have ${full.length} values, this model needs ${this.table.total}`);
    }
    this.heads = tpHeads(cfg, coll.world, coll.rank); // (throws the clear error when N does not divide the heads)
    this.local = tpLocalTable(this.table, coll.world, coll.rank);
    this.model = new GPT(cfg, this.table);
    this.clock = new WaitClock(coll);
    this.tracer = coll.tracer;
    const init = tpSlice(full, this.table, coll.world, coll.rank);
    this.params = this.tensorsOf(init);
    const adamw = { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weight_decay: cfg.weight_decay };
    this.host = (opts.hostOptimizer ?? HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend())) ? unlessOutOfMemory(() => new HostAdamW(this.local, adamw, init)) : null;
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

  private tensorsOf(flat: Float32Array): Map<string, tf.Tensor> {
    return new Map(this.local.params.map((p) => [p.name, tf.tensor(flat.slice(p.offset, p.offset + p.size), p.shape)]));
  }

  /** What this rank holds between steps (as Trainer's, of its local parameters). */
  private measureAtRest(gradBytes: number): void {
    this.memory.params = tensorBytes(this.params.values());
    if (this.host) {
      this.memory.grads = this.host.grads.byteLength;
      this.memory.optimizer = this.host.params.byteLength + this.host.m.byteLength + this.host.v.byteLength;
    } else {
      this.memory.grads = gradBytes;
      this.memory.optimizer = this.opt!.stateBytes();
    }
  }

  private readonly p: Params = (name) => {
    const t = this.params.get(name);
    if (!t) throw new Error(`TP: no parameter ${name}`);
    return t;
  };

  /** All-reduce SUM of a (B*T, C) partial sum; returns the sum as a new tensor (t is disposed). */
  private async allReduce(t: tf.Tensor2D): Promise<tf.Tensor2D> {
    const shape = t.shape;
    const buf = (await t.data()) as Float32Array;
    t.dispose(); // (on the cpu backend buf may be t's own storage: t must be gone before it changes)
    this.commBytes += buf.byteLength;
    this.memory.comm_buffers = Math.max(this.memory.comm_buffers, this.commBytes);
    try {
      await this.clock.wait(this.coll.allReduceSum(buf));
    } finally {
      this.commBytes -= buf.byteLength;
    }
    return tf.tensor2d(buf, shape);
  }

  // ---- one step -------------------------------------------------------------------------------------
  private readonly exclusive = serializer(); // steps and full-state gathers, one at a time

  trainStep(opts: StepOptions = {}): Promise<StepStats> {
    return this.exclusive(() => this.step_(opts));
  }

  private async step_(opts: StepOptions): Promise<StepStats> {
    const t0 = performance.now();
    const batches = rankMicroBatches(this.data, this.cfg, this.step, 0, 1); // the whole global batch
    const K = batches.length;
    const grads: Grads = new Map();
    const probe = activationProbe(this.memory);
    let lossSum = 0;
    try {
      for (let k = 0; k < K; k++) {
        const poison = opts.poison && k === K - 1; // an injected fault: every gradient of this rank NaN
        // rank 0's seed on every rank: replicated activations get the same masks everywhere
        const dropSeed = this.cfg.dropout > 0 ? mixSeed(this.cfg.seed, this.step, k) : undefined;
        const loss = await this.forwardBackward(batches[k], dropSeed, poison ? NaN : 1 / K, grads, () => probe(grads));
        lossSum += loss;
      }
      const loss = lossSum / K;

      // Global gradient norm: sharded gradients summed over ranks (one float per rank), replicated ones once.
      const ts = clock();
      let shardedSq: number;
      let replicatedSq: number;
      if (this.host) {
        await this.host.readGrads(grads);
        [shardedSq, replicatedSq] = this.sumsOfSquares(this.host.grads);
      } else {
        const of = (replicated: boolean) => sumOfSquares(this.local.params.filter((p) => (p.split.kind === 'replicated') === replicated).map((p) => grads.get(p.name)!));
        const [a, b] = [of(false), of(true)];
        [shardedSq, replicatedSq] = [(await a.data())[0], (await b.data())[0]];
        tf.dispose([a, b]);
      }
      this.tracer.record('gradient norm', 'compute', 'main', ts);
      const norms = new Float32Array(this.world);
      norms[this.rank] = shardedSq;
      await this.clock.wait(this.coll.allReduceSum(norms));
      const gradNorm = Math.sqrt(norms.reduce((s, x) => s + x, 0) + replicatedSq);

      const captured = opts.grads ? (this.host ? this.host.grads.slice() : await this.flatten(grads)) : undefined;
      if (opts.beforeUpdate) {
        const bad = Number.isFinite(gradNorm) ? null : this.host ? firstNonFinite(this.local, this.host.grads) : await this.firstNonFiniteTensor(grads);
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
      const tokens = batches.reduce((n, b) => n + b.B * b.T, 0); // the global batch, once (every rank saw all of it)
      return { step: this.step, loss, lr, gradNorm, ms: performance.now() - t0, tokens, ...(captured ? { grads: captured } : {}) };
    } finally {
      tf.dispose([...grads.values()]);
    }
  }

  /** Sums of squares (float64) of a local flat gradient: its sharded parameters' and its replicated ones'. */
  private sumsOfSquares(g: Float32Array): [number, number] {
    const sq = [0, 0];
    for (const p of this.local.params) {
      let s = 0;
      for (let i = p.offset; i < p.offset + p.size; i++) s += g[i] * g[i];
      sq[p.split.kind === 'replicated' ? 1 : 0] += s;
    }
    return [sq[0], sq[1]];
  }

  /**
   * One micro-batch forward and backward on this rank's slices, adding its gradients into acc; returns
   * the mean loss (the same on every rank). The all-reduces sit between the halves of every block.
   */
  private async forwardBackward(batch: Batch, dropSeed: number | undefined, lossScale: number, acc: Grads, probe: () => void): Promise<number> {
    const { B, T, x: xIds, y: yIds } = batch;
    const { model, p, heads, tracer: tr } = this;
    const L = this.cfg.n_layer;
    const add = (grads: Record<string, tf.Tensor>) => {
      for (const [name, g] of Object.entries(grads)) {
        const old = acc.get(name);
        if (!old) acc.set(name, g);
        else {
          acc.set(name, tf.add(old, g));
          tf.dispose([old, g]);
        }
      }
    };
    const caches: { attn: AttnCache; mlp: MlpCache }[] = [];
    const live: tf.Tensor[] = []; // tensors to free if the step fails between two awaits
    const idx = tf.tensor1d(xIds, 'int32');
    const targets = tf.tensor1d(yIds, 'int32');
    const embedMask = model.embedDropoutMask(B, T, dropSeed);
    try {
      let x = tr.span('forward root', 'compute', () => tidy(() => {
        const e = model.embedForward(p, idx, B, T);
        return embedMask ? (tf.mul(e, embedMask) as tf.Tensor2D) : e;
      }));
      live.push(x);
      for (let l = 0; l < L; l++) {
        const a = tr.span(`forward h.${l} attention`, 'compute', () => tidy(() => model.attnForward(p, l, x, B, T, dropSeed, heads)));
        caches.push({ attn: a.cache, mlp: {} as MlpCache });
        const attnSum = await this.allReduce(a.partial);
        const x1 = tr.span(`forward h.${l} attention out`, 'compute', () => tidy(() => model.residualForward(x, attnSum, p(`h.${l}.attn.c_proj.bias`), a.cache.projMask)));
        tf.dispose([attnSum, x]); // backward needs LayerNorm's xhat and rstd, not the block's input
        live.splice(0, live.length, x1);
        const m = tr.span(`forward h.${l} mlp`, 'compute', () => tidy(() => model.mlpForward(p, l, x1, B, T, dropSeed)));
        caches[l].mlp = m.cache;
        const mlpSum = await this.allReduce(m.partial);
        x = tr.span(`forward h.${l} mlp out`, 'compute', () => tidy(() => model.residualForward(x1, mlpSum, p(`h.${l}.mlp.c_proj.bias`), m.cache.mlpMask)));
        tf.dispose([mlpSum, x1]);
        live.splice(0, live.length, x);
      }
      const head = tr.span('head and loss', 'compute', () => {
        const out = model.headLossBackward(p, x, targets, lossScale);
        add(out.grads);
        return out;
      });
      x.dispose();
      let dx = head.dx;
      live.splice(0, live.length, dx, head.loss);
      for (let l = L - 1; l >= 0; l--) {
        probe(); // the forward's activations still alive
        const c = caches[l];
        const mb = tr.span(`backward h.${l} mlp`, 'compute', () => tidy(() => model.mlpBackward(p, l, dx, c.mlp)));
        add(mb.grads);
        const dln2 = await this.allReduce(mb.dln);
        const r2 = tr.span(`backward h.${l} mlp in`, 'compute', () => tidy(() => model.lnResidualBackward(p, l, 'ln_2', dx, dln2, c.mlp.ln2)));
        tf.dispose([dln2, dx]);
        disposeCache(c.mlp);
        add(r2.grads);
        dx = r2.dx;
        live[0] = dx;
        const ab = tr.span(`backward h.${l} attention`, 'compute', () => tidy(() => model.attnBackward(p, l, dx, c.attn, B, T)));
        add(ab.grads);
        const dln1 = await this.allReduce(ab.dln);
        const r1 = tr.span(`backward h.${l} attention in`, 'compute', () => tidy(() => model.lnResidualBackward(p, l, 'ln_1', dx, dln1, c.attn.ln1)));
        tf.dispose([dln1, dx]);
        disposeCache(c.attn);
        caches.pop();
        add(r1.grads);
        dx = r1.dx;
        live[0] = dx;
      }
      const t0 = clock();
      if (embedMask) {
        const masked = tf.mul(dx, embedMask) as tf.Tensor2D;
        dx.dispose();
        dx = masked;
        live[0] = dx;
      }
      const { dwte, dwpe } = await model.embedBackward(dx, xIds, B, T);
      add({ wte: dwte, wpe: dwpe });
      tr.record('backward root', 'compute', 'main', t0);
      return (await head.loss.data())[0];
    } finally {
      for (const c of caches) {
        disposeCache(c.attn);
        disposeCache(c.mlp);
      }
      tf.dispose([...live, idx, targets, ...(embedMask ? [embedMask] : [])]);
    }
  }

  private async firstNonFiniteTensor(grads: Grads): Promise<string | null> {
    for (const p of this.local.params) if ((await grads.get(p.name)!.data()).some((x) => !Number.isFinite(x))) return p.name;
    return null;
  }

  /** Gradient tensors in the local flat layout. */
  private async flatten(grads: Grads): Promise<Float32Array> {
    const flat = new Float32Array(this.local.total);
    for (const p of this.local.params) flat.set((await grads.get(p.name)!.data()) as Float32Array, p.offset);
    return flat;
  }

  /** This rank's parameters in its local flat layout. */
  private async localParams(): Promise<Float32Array> {
    if (this.host) return this.host.params.slice();
    const flat = new Float32Array(this.local.total);
    for (const p of this.local.params) flat.set((await this.params.get(p.name)!.data()) as Float32Array, p.offset);
    return flat;
  }

  // ---- the full model: every rank's slices gathered, for evaluation, samples, export ----------------
  /** Collective: every rank must call it. The full flat parameters (every rank gets them). */
  private async fullParams(): Promise<Float32Array> {
    const L = this.local.total; // the same on every rank (N divides the heads)
    const all = await this.coll.allGather(await this.localParams(), this.world * L);
    return tpAssemble(Array.from({ length: this.world }, (_, r) => all.subarray(r * L, (r + 1) * L)), this.table, this.world);
  }

  /** Runs fn on rank 0 with a temporary full model (the others only take part in the gather). */
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

  /** Collective. Rank 0 answers; the others return NaN. */
  evalLoss(split: 'train' | 'val', iters: number): Promise<number> {
    return this.withFullModel((t) => t.evalLoss(split, iters), NaN);
  }

  /** Collective. Rank 0 answers; the others return ''. */
  sample(prompt: string, tokens: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): Promise<string> {
    return this.withFullModel((t) => t.sample(prompt, tokens, opts), '');
  }

  /** Collective: the full flat parameters. */
  exportParams(): Promise<Float32Array> {
    return this.exclusive(() => this.fullParams());
  }

  /**
   * This rank's local vectors (parameters, AdamW m and v, in the layout of tpLocalTable(table, N, rank))
   * and AdamW's step count; the coordinator assembles every rank's with tpAssemble. Not a collective.
   */
  localState(): Promise<{ params: Float32Array; m: Float32Array; v: Float32Array; t: number }> {
    return this.exclusive(async () => {
      if (this.host) return { params: this.host.params.slice(), m: this.host.m.slice(), v: this.host.v.slice(), t: this.host.t };
      const st = await this.opt!.state();
      return { params: await this.localParams(), m: flatten(this.local, st.m), v: flatten(this.local, st.v), t: st.t };
    });
  }

  /** Continues from a full checkpoint: keeps this rank's slices of parameters, m and v, and the step. */
  restore(c: Checkpoint): void {
    if (c.params.length !== this.table.total) {
      throw new TrainingError(`checkpoint has ${c.params.length} parameters, this model ${this.table.total}: different model shape`);
    }
    const slice = (flat: Float32Array) => tpSlice(flat, this.table, this.world, this.rank);
    const params = slice(c.params);
    const resumed = c.header.adam_t > 0;
    for (const t of this.params.values()) t.dispose();
    if (this.host) {
      this.host.load(params, c.header.adam_t, resumed ? slice(c.m) : undefined, resumed ? slice(c.v) : undefined);
      this.params = this.host.tensors();
    } else {
      this.params = this.tensorsOf(params);
      const shapes = new Map(this.local.params.map((p) => [p.name, p.shape]));
      if (resumed) this.opt!.loadState({ t: c.header.adam_t, m: paramViews(this.local, slice(c.m)), v: paramViews(this.local, slice(c.v)) }, shapes);
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
