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
import type { RunConfig } from '../model/config';
import { disposeCache, tidy, type AttnCache, type Batch, type Grads, type HeadRange, type MlpCache } from '../model/gpt';
import { mixSeed } from '../model/params';
import type { Dataset } from '../data/dataset';
import { sumOfSquares } from '../train/optim';
import { activationProbe, rankMicroBatches, type StepOptions, type StepStats } from '../train/trainer';
import type { Collectives } from './collectives';
import { PartTrainer } from './part-trainer';
import { tpAssemble, tpCheck, tpHeads, tpLocalTable, tpSlice, type TPTable } from './tp-layout';
import { clock } from '../util/trace';

export class TPTrainer extends PartTrainer {
  declare readonly local: TPTable; // this rank's slices
  readonly heads: HeadRange;
  private commBytes = 0;

  /**
   * full: the whole model's initial flat parameters (every rank gets them and keeps its slices).
   * opts.hostOptimizer: AdamW on the host (default: on the CPU backends, as Trainer) or in tfjs kernels.
   */
  constructor(cfg: RunConfig, data: Dataset, full: Float32Array, coll: Collectives, opts: { hostOptimizer?: boolean } = {}) {
    tpCheck(cfg, coll.world); // the clear error when N does not divide the heads
    const { world: N, rank: r } = coll;
    super(cfg, data, full, coll, { local: (table) => tpLocalTable(table, N, r), slice: (flat, table) => tpSlice(flat, table, N, r) }, opts.hostOptimizer);
    this.heads = tpHeads(cfg, N, r);
  }

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

      const { lr, grads: captured } = await this.update(grads, loss, gradNorm, opts);
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

  // ---- the full model: every rank's slices gathered, for evaluation, samples, export ----------------
  /** Collective: every rank must call it. The full flat parameters (every rank gets them). */
  protected async fullParams(): Promise<Float32Array> {
    const L = this.local.total; // the same on every rank (N divides the heads)
    const all = await this.coll.allGather(await this.localParams(), this.world * L);
    return tpAssemble(Array.from({ length: this.world }, (_, r) => all.subarray(r * L, (r + 1) * L)), this.table, this.world);
  }
}
