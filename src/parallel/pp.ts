// PP: pipeline parallelism, after GPipe (Huang et al.) and PyTorch's torch.distributed.pipelining /
// Megatron-LM's non-interleaved 1F1B schedule. Vocabulary:
//   stage      - rank r holds a contiguous run of transformer blocks (n_layer split as evenly as possible,
//                earlier stages one more: pp-layout.ts stageBlocks). Stage 0 also owns wte and wpe (the
//                embedding); the last stage owns ln_f and its own copy of wte (the tied head). N <= n_layer
//                (ppCheck). With N = 1 one stage owns everything (it is one worker).
//   micro-batch - the step's global batch (world 1's view: rankMicroBatches(data, cfg, step, 0, 1), its
//                grad_accum batches concatenated) of G = batch_size x grad_accum rows is cut into M
//                micro-batches of B_micro = G / M rows (M divides G). Each micro-batch's loss is scaled by
//                1/M, so the summed gradients are one worker's with batch G. Only stage 0 reads tokens,
//                only the last stage targets; every stage knows B_micro and T.
//   point-to-point - a forward sends the (B_micro T, C) activation to the next stage; a backward sends
//                its gradient back (Collectives.send / recv; sends never block, so the schedule cannot
//                deadlock). Tensors are read with `await t.data()` (dataSync breaks webgpu in workers).
//   schedule   - gpipe: all M forwards, then all M backwards in reverse; 1f1b: min(N - r - 1, M) warm-up
//                forwards, then one forward / one backward, then the cool-down backwards
//                (pp-layout.ts pipelineSchedule). Both compute the same gradients; 1F1B holds the
//                activations of at most min(N - r, M) micro-batches on stage r instead of M.
//   bubble     - time a stage sits in recv waiting for its neighbour: (N - 1) / (M + N - 1) of the step in
//                theory (bubbleFraction); measured here as the waits (clock.waitMs, 'wait' spans).
// The last stage runs the head (ln_f, logits, loss and their backward) as part of each micro-batch's
// forward, as Megatron computes the loss in its forward step, and keeps dx for the backward.
// The tied wte: after the last micro-batch, stage 0 (the embedding's share) and the last stage (the
// head's share) send each other their wte gradient and each adds the other's: a + b is commutative in
// IEEE arithmetic, so both hold the same sum, and their AdamW updates stay identical (as Megatron's
// embedding group all-reduce). With N = 1 there is nothing to exchange.
// Gradient clipping and the loss: one allReduceSum of [sum of squares of this rank's own gradients (wte
// counted once: by stage 0), the loss (the last stage's; others 0)] gives every rank the global norm
// and the step's loss.
// The optimizer: each rank updates only what it owns, in its local flat layout (pp-layout.ts
// stageTable): HostAdamW on wasm/cpu, the tfjs AdamW on GPU backends; weight decay per parameter as in
// the full table.
// Dropout: micro-batch m of step t uses mixSeed(cfg.seed, t, m) on every stage (rank 0's seed, as one
// worker's grad_accum micro-batch k). Masks depend on the micro-batch's shape, so with dropout > 0 a
// pipeline draws other (equally valid) masks than one worker with the whole batch at once; with
// dropout 0 the two are the same computation (test/pp.test.ts).
// Memory: activations_peak counts the bytes of the tensors a stage holds for its backward (block caches,
// the head's dx, the embedding's dropout mask), deduplicated, after each forward: ranks that share one
// tfjs engine (the tests) cannot tell their tensors apart in tf.memory().

import * as tf from '@tensorflow/tfjs';
import type { RunConfig } from '../model/config';
import { disposeCache, tidy, type Batch, type BlockCache, type Grads } from '../model/gpt';
import { mixSeed } from '../model/params';
import type { Dataset } from '../data/dataset';
import { sumOfSquares } from '../train/optim';
import { rankMicroBatches, tensorBytes, type StepOptions, type StepStats } from '../train/trainer';
import { TrainingError } from '../train/errors';
import type { Collectives } from './collectives';
import { PartTrainer } from './part-trainer';
import { pipelineSchedule, ppAssemble, ppCheck, ppSlice, stageBlocks, stageTable, type PipelineSchedule } from './pp-layout';
import { clock } from '../util/trace';

export interface PPOptions {
  microbatches: number; // M
  schedule: PipelineSchedule;
  /** AdamW on the host (HostAdamW) or in tfjs kernels; by default host on wasm/cpu, tfjs on GPU backends. */
  optimizer?: 'host' | 'tfjs';
}

/** What a stage keeps of one micro-batch between its forward and its backward. */
interface Held {
  caches: BlockCache[]; // this stage's blocks, in order
  dx: tf.Tensor2D | null; // the last stage: the head's gradient into the last block
  mask: tf.Tensor | null; // stage 0: the embedding's dropout mask
  bytes: number;
}

/** Distinct tensors of the caches (attD is att itself without dropout), and their bytes. */
function heldBytes(h: Omit<Held, 'bytes'>): number {
  const seen = new Set<tf.Tensor>();
  for (const c of h.caches) {
    for (const v of Object.values(c)) {
      if (v instanceof tf.Tensor) seen.add(v);
      else if (v) for (const t of Object.values(v)) seen.add(t as tf.Tensor);
    }
  }
  if (h.dx) seen.add(h.dx);
  if (h.mask) seen.add(h.mask);
  return tensorBytes(seen);
}

export class PPTrainer extends PartTrainer {
  readonly blocks: [number, number]; // this stage's blocks [lo, hi)
  readonly microbatches: number;
  readonly schedule: PipelineSchedule;
  private commBytes = 0;

  /** full: the whole model's initial flat parameters (every rank gets them and keeps its stage's). */
  constructor(cfg: RunConfig, data: Dataset, full: Float32Array, coll: Collectives, opts: PPOptions) {
    ppCheck(cfg, coll.world, opts.microbatches);
    if (opts.schedule !== 'gpipe' && opts.schedule !== '1f1b') throw new TrainingError(`unknown pipeline schedule "${opts.schedule}" (use gpipe or 1f1b)`);
    const { world: N, rank: r } = coll;
    super(cfg, data, full, coll, { local: (table) => stageTable(table, N, r), slice: (flat, table) => ppSlice(flat, table, N, r) },
      opts.optimizer ? opts.optimizer === 'host' : undefined);
    this.microbatches = opts.microbatches;
    this.schedule = opts.schedule;
    this.blocks = stageBlocks(cfg.n_layer, N, r);
  }

  private get first() {
    return this.rank === 0;
  }
  private get last() {
    return this.rank === this.world - 1;
  }

  /** The step's M micro-batches: the global batch of G rows (world 1's view) cut into M equal parts. */
  microBatches(): Batch[] {
    const parts = rankMicroBatches(this.data, this.cfg, this.step, 0, 1);
    const T = this.cfg.block_size;
    const G = parts.reduce((n, b) => n + b.B, 0);
    const x = new Int32Array(G * T);
    const y = new Int32Array(G * T);
    let o = 0;
    for (const b of parts) {
      x.set(b.x, o);
      y.set(b.y, o);
      o += b.B * T;
    }
    const M = this.microbatches;
    const Bm = G / M;
    return Array.from({ length: M }, (_, m) => ({ B: Bm, T, x: x.subarray(m * Bm * T, (m + 1) * Bm * T), y: y.subarray(m * Bm * T, (m + 1) * Bm * T) }));
  }

  // ---- point-to-point, measured ---------------------------------------------------------------------
  private comm(delta: number): void {
    this.commBytes += delta;
    this.memory.comm_buffers = Math.max(this.memory.comm_buffers, this.commBytes);
  }

  /** recv, its time counted as waiting (the transport traces it as a 'wait' span: the bubble). */
  private async recv(from: number, n: number): Promise<Float32Array> {
    const t0 = performance.now();
    try {
      const buf = await this.coll.recv(from, n);
      this.comm(buf.byteLength);
      return buf;
    } finally {
      this.clock.waitMs += performance.now() - t0;
    }
  }

  /** Reads a tensor and sends its floats to rank `to` (a copy on the cpu backend, whose data() is the tensor's own array). */
  private async sendTensor(t: tf.Tensor, to: number): Promise<void> {
    let data = (await t.data()) as Float32Array;
    if (tf.getBackend() === 'cpu') data = data.slice();
    this.comm(data.byteLength);
    try {
      await this.coll.send(data, to);
    } finally {
      this.comm(-data.byteLength);
    }
  }

  /** A received activation (or gradient) as a tensor; the buffer is then released. */
  private upload(buf: Float32Array, rows: number): tf.Tensor2D {
    const t = tf.tensor2d(buf, [rows, this.cfg.n_embd]);
    this.comm(-buf.byteLength);
    return t;
  }

  // ---- one step -------------------------------------------------------------------------------------
  trainStep(opts: StepOptions = {}): Promise<StepStats> {
    return this.exclusive(() => this.step_(opts));
  }

  private async step_(opts: StepOptions): Promise<StepStats> {
    const t0 = performance.now();
    this.coll.step = this.step; // (the rank sets it too) every point-to-point message says which step
    const { block_size: T } = this.cfg;
    const M = this.microbatches;
    const batches = this.microBatches();
    const ops = pipelineSchedule(this.schedule, this.world, M)[this.rank];
    const acc: Grads = new Map();
    const held = new Map<number, Held>();
    const losses: tf.Scalar[] = [];
    let inFlight = 0; // bytes held for backward now
    const add = (name: string, g: tf.Tensor) => {
      const old = acc.get(name);
      if (!old) return void acc.set(name, g);
      acc.set(name, tf.add(old, g));
      old.dispose();
      g.dispose();
    };
    const [lo, hi] = this.blocks;
    const rows = batches[0].B;
    const n = rows * T * this.cfg.n_embd;
    const waited0 = this.clock.waitMs;
    try {
      for (const { op, mb } of ops) {
        const batch = batches[mb];
        const dropSeed = this.cfg.dropout > 0 ? mixSeed(this.cfg.seed, this.step, mb) : undefined;
        if (op === 'F') {
          // ---- forward of micro-batch mb: embed (stage 0) or receive, this stage's blocks, then head or send
          let x = this.first ? null : this.upload(await this.recv(this.rank - 1, n), rows * T);
          const ts = clock();
          const h: Omit<Held, 'bytes'> = { caches: [], dx: null, mask: null };
          if (!x) {
            h.mask = this.model.embedDropoutMask(rows, T, dropSeed);
            x = tidy(() => {
              const e = this.model.embedForward(this.p, tf.tensor1d(batch.x, 'int32'), rows, T);
              return h.mask ? (tf.mul(e, h.mask) as tf.Tensor2D) : e;
            });
          }
          for (let l = lo; l < hi; l++) {
            const input: tf.Tensor2D = x;
            const { out, cache } = tidy(() => this.model.blockForward(this.p, l, input, rows, T, dropSeed));
            h.caches.push(cache);
            input.dispose(); // backward needs the caches, not the block's input
            x = out;
          }
          if (this.last) {
            const targets = tf.tensor1d(batch.y, 'int32');
            const out = this.model.headLossBackward(this.p, x, targets, 1 / M);
            tf.dispose([x, targets]);
            for (const [name, g] of Object.entries(out.grads)) add(name, g);
            losses.push(out.loss);
            h.dx = out.dx;
            this.tracer.record(`F${mb}`, 'compute', 'main', ts);
          } else {
            const y = x;
            this.tracer.record(`F${mb}`, 'compute', 'main', ts);
            await this.sendTensor(y, this.rank + 1).finally(() => y.dispose());
          }
          const bytes = heldBytes(h);
          held.set(mb, { ...h, bytes });
          inFlight += bytes;
          this.memory.activations_peak = Math.max(this.memory.activations_peak, inFlight);
        } else {
          // ---- backward of micro-batch mb: the head's dx (last stage) or receive, blocks in reverse, then embed or send
          const h = held.get(mb)!;
          let dx = this.last ? h.dx! : this.upload(await this.recv(this.rank + 1, n), rows * T);
          h.dx = null;
          const ts = clock();
          for (let l = hi - 1; l >= lo; l--) {
            const dout: tf.Tensor2D = dx;
            const cache = h.caches[l - lo];
            const res = tidy(() => this.model.blockBackward(this.p, l, dout, cache, rows, T));
            disposeCache(cache);
            dout.dispose();
            dx = res.dx;
            for (const [name, g] of Object.entries(res.grads)) add(name, g);
          }
          h.caches = [];
          if (this.first) {
            if (h.mask) {
              const masked = tf.mul(dx, h.mask) as tf.Tensor2D;
              dx.dispose();
              dx = masked;
              h.mask.dispose();
              h.mask = null;
            }
            const { dwte, dwpe } = await this.model.embedBackward(dx, batch.x, rows, T);
            dx.dispose();
            add('wte', dwte);
            add('wpe', dwpe);
            this.tracer.record(`B${mb}`, 'compute', 'main', ts);
          } else {
            const g = dx;
            this.tracer.record(`B${mb}`, 'compute', 'main', ts);
            await this.sendTensor(g, this.rank - 1).finally(() => g.dispose());
          }
          held.delete(mb);
          inFlight -= h.bytes;
        }
      }
      const spanMs = performance.now() - t0; // the schedule, on this stage (measuredBubble)
      const pipeline = { spanMs, busyMs: spanMs - (this.clock.waitMs - waited0) };
      return { ...(await this.finish(acc, losses, opts, t0, M * rows * T)), pipeline };
    } finally {
      for (const h of held.values()) {
        for (const c of h.caches) disposeCache(c);
        tf.dispose([...(h.dx ? [h.dx] : []), ...(h.mask ? [h.mask] : [])]);
      }
      tf.dispose([...acc.values(), ...losses]);
    }
  }

  /** The wte exchange, the global norm and loss, the two-phase check, and AdamW on this stage. */
  private async finish(acc: Grads, losses: tf.Scalar[], opts: StepOptions, t0: number, tokens: number): Promise<StepStats> {
    const M = this.microbatches;
    const wteSpec = this.local.byName.get('wte');
    const exchange = this.world > 1 && wteSpec !== undefined;
    // this stage's gradients: on the host (HostAdamW's flat array) or as tensors (tfjs AdamW)
    if (this.host) await this.host.readGrads(acc);
    if (exchange) {
      const peer = this.first ? this.world - 1 : 0;
      const mine = this.host ? this.host.grads.subarray(wteSpec.offset, wteSpec.offset + wteSpec.size) : ((await acc.get('wte')!.data()) as Float32Array).slice();
      const copy = mine.slice();
      this.comm(copy.byteLength);
      await this.coll.send(copy, peer);
      this.comm(-copy.byteLength);
      const theirs = await this.recv(peer, wteSpec.size);
      const ts = clock();
      for (let i = 0; i < mine.length; i++) mine[i] += theirs[i]; // a + b = b + a: both stages get the same sum
      this.comm(-theirs.byteLength);
      if (!this.host) {
        acc.get('wte')!.dispose();
        acc.set('wte', tf.tensor(mine, wteSpec.shape));
      }
      this.tracer.record('add wte gradients', 'compute', 'main', ts);
    }
    if (opts.poison) { // an injected fault: every gradient of this rank NaN
      if (this.host) this.host.grads.fill(NaN);
      else {
        for (const [k, g] of acc) {
          acc.set(k, tf.mul(g, NaN));
          g.dispose();
        }
      }
    }

    // the global norm (wte counted once: by stage 0) and the loss (the last stage's), in one all-reduce
    const ts = clock();
    const counted = this.local.params.filter((p) => !(p.name === 'wte' && !this.first));
    let sumSq = 0;
    if (this.host) {
      const g = this.host.grads;
      for (const p of counted) for (let i = p.offset; i < p.offset + p.size; i++) sumSq += g[i] * g[i];
    } else {
      const s = sumOfSquares(counted.map((p) => acc.get(p.name)!));
      sumSq = (await s.data())[0];
      s.dispose();
    }
    let lossV = 0;
    if (this.last) {
      const total = tf.tidy(() => losses.reduce<tf.Tensor>((a, b) => tf.add(a, b), tf.scalar(0)));
      lossV = (await total.data())[0] / M;
      total.dispose();
    }
    this.tracer.record('gradient norm', 'compute', 'main', ts);
    let gradNorm = Math.sqrt(sumSq);
    let loss = lossV;
    if (this.world > 1) {
      const red = await this.clock.wait(this.coll.allReduceSum(Float32Array.of(sumSq, lossV)));
      gradNorm = Math.sqrt(red[0]);
      loss = red[1];
    }
    const { lr, grads: captured } = await this.update(acc, loss, gradNorm, opts);
    return { step: this.step, loss, lr, gradNorm, ms: performance.now() - t0, tokens, ...(captured ? { grads: captured } : {}) };
  }

  // ---- the whole model: every stage's parameters, for evaluation, samples, export -------------------
  /** Collective: every stage broadcasts its vector in turn; every rank gets the full flat parameters. */
  protected async fullParams(): Promise<Float32Array> {
    const mine = await this.localParams();
    const parts: Float32Array[] = [];
    for (let s = 0; s < this.world; s++) {
      const buf = s === this.rank ? mine : new Float32Array(stageTable(this.table, this.world, s).total);
      parts.push(this.world > 1 ? await this.clock.wait(this.coll.broadcast(buf, s)) : buf);
    }
    return ppAssemble(parts, this.table, this.world);
  }
}
