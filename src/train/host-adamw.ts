// AdamW for the CPU backends (wasm, cpu), on flat float32 arrays in WebAssembly SIMD (adamw.wat), as
// llm.c's optimizer and DeepSpeed's CPU Adam are. The tfjs AdamW (optim.ts) runs ~15 small kernels per
// parameter tensor; each allocates JavaScript objects, and with a worker on every core the garbage
// collector's work lands on the training threads (2 workers on 2 cores here: optimizer 7 ms alone, 16-23
// ms in DDP). This one is one kernel call per step, and the same arithmetic bit for bit.
//
// It keeps the master copy of the parameters: each step reads the gradients in, updates parameters, m
// and v in place, and the model's parameter tensors are made anew from the master copy. (GPU backends
// keep the tfjs AdamW: their parameters should not leave the device every step.)

import * as tf from '@tensorflow/tfjs';
import type { Grads } from '../model/gpt';
import type { ParamTable } from '../model/params';
import type { AdamWOptions } from './optim';
import { ADAMW_WASM_BASE64 } from './adamw-wasm';
import { instantiate } from '../util/wasm';

type AdamWKernel = (p: number, g: number, m: number, v: number, n: number, gscale: number, b1: number, omb1: number,
  b2: number, omb2: number, bc1: number, bc2: number, eps: number, wd: number, lr: number) => void;
type SumSqKernel = (x: number, n: number) => number;

/** The kernels' contract in JavaScript (float32 arithmetic in the same order): the fallback where WebAssembly
 *  SIMD is missing, and the reference the tests hold the kernels to. */
export function jsKernels(memory: WebAssembly.Memory): { adamw: AdamWKernel; sumsq: SumSqKernel } {
  const f = () => new Float32Array(memory.buffer);
  const r = Math.fround;
  return {
    adamw(p, g, m, v, n, ...scalars) {
      const x = f();
      const [P, G, M, V] = [p, g, m, v].map((o) => o >>> 2);
      const [gscale, b1, omb1, b2, omb2, bc1, bc2, eps, wd, lr] = scalars.map(r); // float32 parameters, as the kernel's
      for (let i = 0; i < n; i++) {
        const gi = r(x[G + i] * gscale);
        const mi = r(r(x[M + i] * b1) + r(gi * omb1));
        const vi = r(r(x[V + i] * b2) + r(r(gi * gi) * omb2));
        const pi = x[P + i];
        const update = r(r(mi / bc1) / r(r(Math.sqrt(r(vi / bc2))) + eps));
        x[M + i] = mi;
        x[V + i] = vi;
        x[P + i] = r(pi - r(r(update + r(pi * wd)) * lr));
      }
    },
    sumsq(xp, n) {
      const x = f();
      let s = 0;
      for (let i = 0; i < n; i++) s += x[(xp >>> 2) + i] * x[(xp >>> 2) + i];
      return s;
    },
  };
}

const ALIGN = 16; // bytes: each array starts on a SIMD vector

export class HostAdamW {
  t = 0; // completed steps
  readonly params: Float32Array; // the master copy, in the table's flat layout
  readonly grads: Float32Array; // this step's gradients (readGrads)
  readonly m: Float32Array;
  readonly v: Float32Array;
  private readonly kernels: { adamw: AdamWKernel; sumsq: SumSqKernel };
  readonly simd: boolean;

  constructor(private table: ParamTable, private opts: AdamWOptions, init: Float32Array, useSimd = true) {
    const n = table.total;
    const stride = Math.ceil((n * 4) / ALIGN) * ALIGN;
    const memory = new WebAssembly.Memory({ initial: Math.ceil((4 * stride) / 65536) });
    const at = (i: number) => new Float32Array(memory.buffer, i * stride, n);
    [this.params, this.grads, this.m, this.v] = [0, 1, 2, 3].map(at);
    this.params.set(init);
    for (const p of table.params) {
      const last = this.runs.at(-1);
      if (last && last.decay === p.decay && last.offset + last.size === p.offset) last.size += p.size;
      else this.runs.push({ offset: p.offset, size: p.size, decay: p.decay });
    }
    const exports = useSimd ? instantiate(ADAMW_WASM_BASE64, memory) : null;
    this.simd = exports !== null;
    this.kernels = exports ? { adamw: exports.adamw as AdamWKernel, sumsq: exports.sumsq as SumSqKernel } : jsKernels(memory);
  }

  /** Copies the step's gradients (tensors by name) into `grads`. */
  async readGrads(grads: Grads): Promise<void> {
    await Promise.all(this.table.params.map(async (p) => {
      const g = grads.get(p.name);
      if (!g) throw new Error(`AdamW: no gradient for ${p.name}`);
      this.grads.set((await g.data()) as Float32Array, p.offset);
    }));
  }

  /** Sum of the squared gradients (float64): the global gradient norm's square. */
  sumOfSquares(): number {
    return this.kernels.sumsq(this.grads.byteOffset, this.grads.length);
  }

  /**
   * One AdamW step on the master copy, every gradient multiplied by gradScale (the clip factor): one
   * kernel call per run of parameters with the same weight decay (nanoGPT's: 2-D weights only).
   */
  step(lr: number, gradScale: number): void {
    this.t += 1;
    const { beta1: b1, beta2: b2, eps, weight_decay } = this.opts;
    const at = (x: Float32Array, offset: number) => x.byteOffset + offset * 4;
    for (const { offset, size, decay } of this.runs) {
      this.kernels.adamw(at(this.params, offset), at(this.grads, offset), at(this.m, offset), at(this.v, offset), size,
        gradScale, b1, 1 - b1, b2, 1 - b2, 1 - b1 ** this.t, 1 - b2 ** this.t, eps, decay ? weight_decay : 0, lr);
    }
  }

  /** Consecutive parameters with the same weight decay, merged. */
  private readonly runs: { offset: number; size: number; decay: boolean }[] = [];

  /** The model's parameter tensors, made from the master copy (the caller disposes the old ones). */
  tensors(): Map<string, tf.Tensor> {
    // The cpu backend keeps the array it is given, so it gets a copy; wasm copies into its own heap.
    const copy = tf.getBackend() === 'cpu';
    return new Map(this.table.params.map((p) => {
      const view = this.params.subarray(p.offset, p.offset + p.size);
      return [p.name, tf.tensor(copy ? view.slice() : view, p.shape)];
    }));
  }

  /** Restores parameters and (after t > 0 steps) m and v, all in the flat layout. */
  load(params: Float32Array, t: number, m?: Float32Array, v?: Float32Array): void {
    this.params.set(params);
    this.t = t;
    this.m.fill(0);
    this.v.fill(0);
    if (m) this.m.set(m);
    if (v) this.v.set(v);
  }
}
