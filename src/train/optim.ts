// AdamW (decoupled weight decay, Loshchilov & Hutter), the learning-rate schedule, and global
// gradient-norm clipping: the optimizer side of nanoGPT's train.py, on tfjs tensors.

import * as tf from '@tensorflow/tfjs';
import { HOST_OPTIMIZER_BACKENDS, type TrainConfig } from '../model/config';

/** nanoGPT's get_lr: linear warmup, cosine decay to min_lr at lr_decay_iters, then flat. */
export function learningRate(it: number, c: Pick<TrainConfig, 'lr' | 'min_lr' | 'warmup_iters' | 'lr_decay_iters'>): number {
  if (it < c.warmup_iters) return (c.lr * (it + 1)) / (c.warmup_iters + 1);
  if (it > c.lr_decay_iters) return c.min_lr;
  const span = c.lr_decay_iters - c.warmup_iters;
  const ratio = span > 0 ? (it - c.warmup_iters) / span : 1;
  return c.min_lr + 0.5 * (1 + Math.cos(Math.PI * ratio)) * (c.lr - c.min_lr);
}

/** Sum of squares of every gradient, as a scalar tensor (tf.add pairwise: addN of 8+ is wrong on webgpu). */
export function sumOfSquares(grads: Iterable<tf.Tensor>): tf.Scalar {
  return tf.tidy(() => {
    let total: tf.Tensor = tf.scalar(0);
    for (const g of grads) total = tf.add(total, tf.sum(tf.square(g)));
    return total as tf.Scalar;
  });
}

/** The factor that brings the global norm down to maxNorm (torch's clip_grad_norm_), or 1. */
export function clipScale(norm: number, maxNorm: number): number {
  return maxNorm > 0 ? Math.min(1, maxNorm / (norm + 1e-6)) : 1;
}

/** clipScale as a scalar tensor, from the squared norm (for the tfjs AdamW, on the device). */
export function clipFactor(sumSq: tf.Scalar, maxNorm: number): tf.Scalar {
  return tf.tidy(() => (maxNorm > 0 ? tf.minimum(1, tf.div(maxNorm, tf.add(tf.sqrt(sumSq), 1e-6))) : tf.scalar(1)) as tf.Scalar);
}

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
}

/**
 * AdamW over named tensors: m and v are kept per name. decay(name) says whether weight decay applies
 * (nanoGPT: 2-D weights yes, biases, LayerNorm and nothing else no). Same update as torch.optim.AdamW
 * and llm.c: p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p).
 */
export class AdamW {
  private m = new Map<string, tf.Tensor>();
  private v = new Map<string, tf.Tensor>();
  t = 0; // completed steps

  /** decay(name): whether weight decay applies to the whole tensor, or a bool mask tensor (FSDP's flat shards). */
  constructor(private opts: AdamWOptions, private decay: (name: string) => boolean | tf.Tensor) {}

  /** Returns new parameter tensors (the caller disposes the old ones); gradScale multiplies every gradient. */
  step(params: Map<string, tf.Tensor>, grads: Map<string, tf.Tensor>, lr: number, gradScale?: tf.Scalar): Map<string, tf.Tensor> {
    this.t += 1;
    const { beta1: b1, beta2: b2, eps, weight_decay } = this.opts;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    const out = new Map<string, tf.Tensor>();
    for (const [name, p] of params) {
      const gRaw = grads.get(name);
      if (!gRaw) throw new Error(`AdamW: no gradient for ${name}`);
      const decay = this.decay(name);
      const wd = decay === false ? 0 : weight_decay;
      const [pNew, mNew, vNew] = tf.tidy(() => {
        const g = gradScale ? tf.mul(gRaw, gradScale) : gRaw;
        const m = tf.add(tf.mul(this.m.get(name) ?? tf.zerosLike(p), b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v.get(name) ?? tf.zerosLike(p), b2), tf.mul(tf.square(g), 1 - b2));
        const update = tf.div(tf.div(m, bc1), tf.add(tf.sqrt(tf.div(v, bc2)), eps));
        const decayed = decay === true ? p : tf.where(decay, p, tf.zerosLike(p)); // decay: a bool mask
        const step = wd > 0 ? tf.add(update, tf.mul(decayed, wd)) : update;
        return [tf.sub(p, tf.mul(step, lr)), m, v];
      });
      this.m.get(name)?.dispose();
      this.v.get(name)?.dispose();
      this.m.set(name, mNew);
      this.v.set(name, vNew);
      out.set(name, pNew);
    }
    return out;
  }

  /** Bytes of m and v alive now (they are made at the first step). */
  stateBytes(): number {
    let n = 0;
    for (const t of [...this.m.values(), ...this.v.values()]) n += t.size * tf.util.bytesPerElement(t.dtype);
    return n;
  }

  /** Optimizer state for a checkpoint: m and v per name, and the step count. */
  async state(): Promise<{ t: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }> {
    if (!HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend()) && this.m.size > 0) {
      // On a GPU (FSDP's buddy copy asks every step): m and v concatenated there and read back at once.
      const names = [...this.m.keys()];
      const all = tf.tidy(() => tf.concat([...names.map((n) => this.m.get(n)!), ...names.map((n) => this.v.get(n)!)].map((t) => tf.reshape(t, [-1]))));
      try {
        const d = (await all.data()) as Float32Array;
        const m = new Map<string, Float32Array>();
        const v = new Map<string, Float32Array>();
        let o = 0;
        for (const into of [m, v]) {
          for (const n of names) {
            const size = this.m.get(n)!.size;
            into.set(n, d.slice(o, o + size));
            o += size;
          }
        }
        return { t: this.t, m, v };
      } finally {
        all.dispose();
      }
    }
    const read = async (src: Map<string, tf.Tensor>) =>
      new Map(await Promise.all([...src].map(async ([k, t]) => [k, (await t.data()) as Float32Array] as const)));
    return { t: this.t, m: await read(this.m), v: await read(this.v) };
  }

  loadState(state: { t: number; m: Map<string, Float32Array>; v: Map<string, Float32Array> }, shapes: Map<string, number[]>): void {
    this.dispose();
    this.t = state.t;
    for (const [k, a] of state.m) this.m.set(k, tf.tensor(a, shapes.get(k)));
    for (const [k, a] of state.v) this.v.set(k, tf.tensor(a, shapes.get(k)));
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}
