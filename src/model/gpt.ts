// GPT-2, forward and backward written out block by block with tfjs ops (after llm.c's train_gpt2.c).
//
// Why not tf.grads over the whole model: a whole-model tape gives no control between blocks, and DDP
// (all-reduce a bucket while the rest of backward runs) and FSDP (gather a unit just before it is used,
// reduce-scatter its gradients just after) both need exactly that. So every layer has an explicit
// x_forward / x_backward pair, and hooks run between units. tfjs autodiff of the same forward is the
// test oracle (test/backward.test.ts), and llm.c's numbers are the reference (test/llmc.test.ts).
//
// Legend: B batch, T time, C channels, NH heads, hs = C/NH, V vocab, BT = B*T, Ch = B*NH.
// Linear weights are (in, out): y = x @ W + b. On tfjs-wasm only an untransposed 2-D matMul reaches
// XNNPACK speed, so every matmul here is written that way, with explicit transposes where needed.
//
// On the wasm backend the memory-bound parts run as fused kernels (src/model/kernels/fused.ts: LayerNorm
// and its backward with the residual's add, GELU with its bias, bias and residual adds, bias gradients,
// and causal attention straight from the q|k|v matrix, with no head split, transposed or merged): one pass
// each instead of several tfjs kernels. `fused(...)` says when; every other backend runs the tfjs ops below,
// which are also the fused kernels' reference (test/kernels.test.ts).

import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from './config';
import { mixSeed, type ParamTable } from './params';
import { clock, noTrace, type Tracer } from '../util/trace';
import * as fk from './kernels/fused';

const LN_EPS = 1e-5;
const GELU_S = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

export type Params = (name: string) => tf.Tensor; // supplies a (gathered) parameter when a layer needs it
export type Grads = Map<string, tf.Tensor>;

/** Called between units; FSDP gathers and frees here, DDP starts gradient all-reduces here. */
export interface UnitHooks {
  beforeForward?(unit: number): Promise<void> | void;
  afterForward?(unit: number): Promise<void> | void;
  beforeBackward?(unit: number): Promise<void> | void;
  /** The unit's gradients are complete (for the root unit: after the embedding backward, the last step). */
  afterBackward?(unit: number): Promise<void> | void;
  /**
   * Some parameters' gradients are final for this micro-batch, in backward order: ln_f after the head,
   * each block, then wte and wpe. grads holds the accumulated tensors (see forwardBackward's acc).
   * DDP starts a bucket's all-reduce from here.
   */
  gradsReady?(grads: Grads): Promise<void> | void;
  /** The micro-batch's loss is known (after the head, before the blocks' backward). Do not dispose it. */
  lossReady?(loss: tf.Scalar): void;
}

export interface Batch {
  B: number;
  T: number;
  x: Int32Array; // (B*T) token ids
  y: Int32Array; // (B*T) next-token targets
}

/** A tensor-parallel rank's heads: [h0, h0 + nh) of the model's NH (src/parallel/tp-layout.ts). */
export interface HeadRange { h0: number; nh: number }

export interface StepOptions {
  training: boolean; // enables dropout
  dropoutSeed?: number; // with the step and rank mixed in by the caller
  lossScale?: number; // multiplies the gradient (1 / grad_accum)
  trace?: Tracer; // records each unit's forward and backward as compute spans
}

// ---------------------------------------------------------------------------------------------------
// Batched attention matmuls for all Ch = B*NH (batch, head) pairs at once.
// On wasm a batched tf.matMul runs ~1-2 GFLOP/s; one depthwiseConv2d with the Ch pairs as channels
// computes the same products several times faster (queries as the input image, keys as the filter).

type BatchedMatMul = (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** (Ch, T, D) x (Ch, S, D) -> (Ch, T, S): a @ b^T per channel. */
function bmmNTConv(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [Ch, T, D] = a.shape;
  const S = b.shape[1];
  const input = a.transpose([1, 2, 0]).reshape([1, T, D, Ch]) as tf.Tensor4D; // image T x D, Ch channels
  const filter = b.transpose([2, 0, 1]).reshape([1, D, Ch, S]) as tf.Tensor4D; // 1 x D kernel, S per channel
  const out = tf.depthwiseConv2d(input, filter, 1, 'valid'); // (1, T, 1, Ch*S)
  return out.reshape([T, Ch, S]).transpose([1, 0, 2]) as tf.Tensor3D;
}

/** (Ch, T, S) x (Ch, S, D) -> (Ch, T, D): a @ b per channel. */
function bmmNNConv(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  const [Ch, T, S] = a.shape;
  const D = b.shape[2];
  const input = a.transpose([1, 2, 0]).reshape([1, T, S, Ch]) as tf.Tensor4D;
  const filter = b.transpose([1, 0, 2]).reshape([1, S, Ch, D]) as tf.Tensor4D;
  const out = tf.depthwiseConv2d(input, filter, 1, 'valid'); // (1, T, 1, Ch*D)
  return out.reshape([T, Ch, D]).transpose([1, 0, 2]) as tf.Tensor3D;
}

const bmmNTMatMul: BatchedMatMul = (a, b) => tf.matMul(a, b, false, true);
const bmmNNMatMul: BatchedMatMul = (a, b) => tf.matMul(a, b);

export type AttentionKernel = 'conv' | 'matmul';

/** wasm: the depthwise-conv form; GPU and cpu backends: batched matMul. */
export function defaultAttentionKernel(backend: string = tf.getBackend()): AttentionKernel {
  return backend === 'wasm' ? 'conv' : 'matmul';
}

// ---------------------------------------------------------------------------------------------------
// Layers: x_forward returns what x_backward needs; x_backward returns input and parameter gradients.

/** Whether the fused wasm kernels run for these widths (the wasm backend, kernels on, widths multiples of 4). */
const fused = (...widths: number[]) => fk.fusedFits(...widths) && fk.fusedActive();

/** A 2-D transpose (explicit: transposed matmuls are slow on wasm; there the fused kernel is the faster one). */
const tr = (x: tf.Tensor): tf.Tensor2D => (fused() ? fk.transpose2d(x as tf.Tensor2D) : (x.transpose() as tf.Tensor2D));

/** A 2-D matmul, typed. */
const mm = (a: tf.Tensor, b: tf.Tensor) => tf.matMul<tf.Tensor2D>(a as tf.Tensor2D, b as tf.Tensor2D);

/** Sums the rows of a (N, K) matrix as ones(1, N) @ x: on wasm ~9x faster than tf.sum(x, 0). */
function sumRows(x: tf.Tensor2D): tf.Tensor1D {
  if (fused(x.shape[1])) return fk.colSum(x);
  return mm(tf.ones([1, x.shape[0]]), x).reshape([x.shape[1]]) as tf.Tensor1D;
}

function linearForward(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): tf.Tensor2D {
  if (fused(w.shape[1]!)) return fk.biasAdd(mm(x, w), b);
  return tf.add(mm(x, w), b) as tf.Tensor2D;
}

/**
 * A weight's gradient x^T @ dy, x (N, in), dy (N, out). XNNPACK packs a matmul's right operand on every
 * call (~4 ns a float here): with the fused kernels, when out > in, (dy^T @ x)^T packs the smaller x
 * instead of dy, and its transposes cost less than the packing saved (qkv's and c_fc's: ~1.6 ms a layer).
 */
function weightGrad(x: tf.Tensor2D, dy: tf.Tensor2D): tf.Tensor2D {
  if (dy.shape[1] > x.shape[1] && fused()) return tr(mm(tr(dy), x));
  return mm(tr(x), dy);
}

/** dy (N, out), x (N, in), w (in, out) -> dx (N, in), dw (in, out), db (out). */
function linearBackward(dy: tf.Tensor2D, x: tf.Tensor2D, w: tf.Tensor) {
  return {
    dx: mm(dy, tr(w)),
    dw: weightGrad(x, dy),
    db: sumRows(dy),
  };
}

export interface LNCache { xhat: tf.Tensor2D; rstd: tf.Tensor2D }

function layerNormForward(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor): { out: tf.Tensor2D; cache: LNCache } {
  if (fused(x.shape[1])) {
    const { out, xhat, rstd } = fk.layerNorm(x, w, b, LN_EPS);
    return { out, cache: { xhat, rstd } };
  }
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  const rstd = tf.rsqrt(tf.add(variance, LN_EPS)) as tf.Tensor2D;
  const xhat = tf.mul(xc, rstd) as tf.Tensor2D;
  return { out: tf.add(tf.mul(xhat, w), b) as tf.Tensor2D, cache: { xhat, rstd } };
}

/** dx (+ dres, the residual's gradient, when given), dw, db. */
function layerNormBackward(dout: tf.Tensor2D, cache: LNCache, w: tf.Tensor, dres?: tf.Tensor2D) {
  const { xhat, rstd } = cache;
  if (fused(dout.shape[1])) return fk.layerNormBackward(dout, xhat, rstd, w, dres);
  const dnorm = tf.mul(dout, w);
  const dnormMean = tf.mean(dnorm, -1, true);
  const dnormXhatMean = tf.mean(tf.mul(dnorm, xhat), -1, true);
  const dxn = tf.mul(tf.sub(tf.sub(dnorm, dnormMean), tf.mul(xhat, dnormXhatMean)), rstd) as tf.Tensor2D;
  const dx = dres ? (tf.add(dres, dxn) as tf.Tensor2D) : dxn;
  return { dx, dw: sumRows(tf.mul(dout, xhat) as tf.Tensor2D), db: sumRows(dout) };
}

/** GELU, tanh approximation, with tanh(u) = 2 sigmoid(2u) - 1 (tf.tanh is slow on wasm): x * sigmoid(2u). */
function geluForward(x: tf.Tensor2D): { out: tf.Tensor2D; sig: tf.Tensor2D } {
  const x2 = tf.square(x);
  const u2 = tf.mul(x, tf.add(tf.mul(x2, 2 * GELU_S * GELU_A), 2 * GELU_S)); // 2u
  const sig = tf.sigmoid(u2) as tf.Tensor2D;
  return { out: tf.mul(x, sig) as tf.Tensor2D, sig };
}

function geluBackward(dout: tf.Tensor2D, x: tf.Tensor2D, sig: tf.Tensor2D): tf.Tensor2D {
  // d/dx [x s(2u)] = s + x s (1 - s) 2u', u' = S (1 + 3 A x^2)
  const du2 = tf.add(tf.mul(tf.square(x), 2 * GELU_S * 3 * GELU_A), 2 * GELU_S);
  const local = tf.add(sig, tf.mul(tf.mul(tf.mul(x, sig), tf.sub(1, sig)), du2));
  return tf.mul(dout, local) as tf.Tensor2D;
}

/** Inverted dropout mask (already scaled by 1/(1-p)), or null when off. */
function dropoutMask(shape: number[], p: number, seed: number | undefined): tf.Tensor | null {
  if (p <= 0 || seed === undefined) return null;
  return tf.tidy(() => tf.div(tf.cast(tf.greaterEqual(tf.randomUniform(shape, 0, 1, 'float32', seed), p), 'float32'), 1 - p));
}

const maybeMul = <R extends tf.Tensor>(x: R, mask: tf.Tensor | null): R => (mask ? (tf.mul(x, mask) as R) : x);

/** tf.tidy with the callback's own return type (tf.tidy keeps tensors nested in plain objects). */
export const tidy = <R>(fn: () => R): R => tf.tidy(fn as () => tf.TensorContainer) as R;

// ---------------------------------------------------------------------------------------------------
// The model: configuration, attention kernel, and the causal mask.

export class GPT {
  readonly hs: number;
  private mask: tf.Tensor2D | null = null;
  private bmmNT: BatchedMatMul;
  private bmmNN: BatchedMatMul;

  constructor(readonly cfg: ModelConfig, readonly table: ParamTable, attention: AttentionKernel = defaultAttentionKernel()) {
    this.hs = cfg.n_embd / cfg.n_head;
    [this.bmmNT, this.bmmNN] = attention === 'conv' ? [bmmNTConv, bmmNNConv] : [bmmNTMatMul, bmmNNMatMul];
  }

  /** Additive causal mask (T, T): 0 on and below the diagonal, -1e9 above. One (block_size)^2 mask is kept; shorter T slice it. */
  private causalMask(T: number): tf.Tensor2D {
    if (!this.mask) {
      const N = this.cfg.block_size;
      const data = new Float32Array(N * N);
      for (let t = 0; t < N; t++) for (let s = t + 1; s < N; s++) data[t * N + s] = -1e9;
      this.mask = tf.keep(tf.tensor2d(data, [N, N]));
    }
    return T === this.cfg.block_size ? this.mask : tf.slice(this.mask, [0, 0], [T, T]);
  }

  /**
   * (BT, nh*hs) -> (B*nh, T, hs). The head count comes from the width: all NH heads for one worker,
   * a tensor-parallel rank's own heads (src/parallel/tp.ts). 4-D transposes only: 5-D ones are ~50x slower on wasm.
   */
  private splitHeads(x: tf.Tensor, B: number, T: number): tf.Tensor3D {
    const nh = x.shape[1]! / this.hs;
    return x.reshape([B, T, nh, this.hs]).transpose([0, 2, 1, 3]).reshape([B * nh, T, this.hs]) as tf.Tensor3D;
  }

  /** (B*nh, T, hs) -> (BT, nh*hs) */
  private mergeHeads(x: tf.Tensor, B: number, T: number): tf.Tensor2D {
    const nh = x.shape[0]! / B;
    return x.reshape([B, nh, T, this.hs]).transpose([0, 2, 1, 3]).reshape([B * T, nh * this.hs]) as tf.Tensor2D;
  }

  dispose(): void {
    this.mask?.dispose();
    this.mask = null;
  }

  // ---- embedding: x0 = wte[idx] + wpe[t] -------------------------------------------------------
  embedForward(p: Params, idx: tf.Tensor1D, B: number, T: number): tf.Tensor2D {
    const C = this.cfg.n_embd;
    if (fused(C)) return fk.embed(p('wte') as tf.Tensor2D, p('wpe') as tf.Tensor2D, idx, T);
    const tok = tf.gather(p('wte'), idx) as tf.Tensor2D; // (BT, C)
    const pos = tf.slice(p('wpe'), [0, 0], [T, C]); // (T, C)
    return tf.add(tok.reshape([B, T, C]), pos).reshape([B * T, C]) as tf.Tensor2D;
  }

  /** dwte rows for the tokens in idx, and dwpe; padded to block_size rows. */
  async embedBackward(dx0: tf.Tensor2D, idx: Int32Array, B: number, T: number): Promise<{ dwte: tf.Tensor2D; dwpe: tf.Tensor2D }> {
    const { vocab_size: V, n_embd: C, block_size } = this.cfg;
    const dwpe = tf.tidy(() => tf.pad(tf.sum(dx0.reshape([B, T, C]), 0), [[0, block_size - T], [0, 0]]) as tf.Tensor2D);
    let dwte: tf.Tensor2D;
    if (tf.getKernel('UnsortedSegmentSum', tf.getBackend())) {
      dwte = tf.tidy(() => tf.unsortedSegmentSum(dx0, tf.tensor1d(idx, 'int32'), V) as tf.Tensor2D);
    } else {
      // wasm has no scatter-add kernel; its tensors live in CPU memory, so add the rows in JS.
      const d = await dx0.data();
      const out = new Float32Array(V * C);
      for (let i = 0; i < idx.length; i++) {
        const row = idx[i] * C;
        for (let c = 0; c < C; c++) out[row + c] += d[i * C + c];
      }
      dwte = tf.tensor2d(out, [V, C]);
    }
    return { dwte, dwpe };
  }

  // ---- transformer block -----------------------------------------------------------------------
  // A block is two halves, each LayerNorm -> column-parallel linear -> ... -> row-parallel linear, then
  // bias, dropout and the residual:
  //   x1  = x  + drop(attnForward(x).partial  + attn.c_proj.bias)
  //   out = x1 + drop(mlpForward(x1).partial + mlp.c_proj.bias)
  // Each half returns its row-parallel layer's output before the bias (`partial`), so tensor
  // parallelism (src/parallel/tp.ts) can all-reduce the ranks' partial sums in between. In backward,
  // attnBackward/mlpBackward stop at the gradient of the LayerNorm's output (a partial sum under tensor
  // parallelism: all-reduce it), and lnResidualBackward finishes the half. With all heads and all
  // columns, blockForward/blockBackward below compose them into the one-worker block.

  /** Attention half up to c_proj's matmul. heads: a tensor-parallel rank's [h0, h0 + nh) of NH (dropout masks). */
  attnForward(p: Params, l: number, x: tf.Tensor2D, B: number, T: number, dropSeed?: number, heads?: HeadRange) {
    const { n_embd: C, n_head: NH, dropout } = this.cfg;
    const hs = this.hs;
    const w = (n: string) => p(`h.${l}.${n}`);
    const seed = (site: number) => (dropSeed === undefined ? undefined : mixSeed(dropSeed, l, site));

    const ln1 = layerNormForward(x, w('ln_1.weight'), w('ln_1.bias'));
    const qkv = linearForward(ln1.out, w('attn.c_attn.weight'), w('attn.c_attn.bias')); // (BT, 3C) (3 x nh*hs per rank)
    const projMaskOf = () => dropoutMask([B * T, C], dropout, seed(1)); // of a replicated activation: the same on every rank
    if (fused(hs) && !(dropout > 0 && seed(0) !== undefined)) {
      // wasm: attention read straight from qkv, y written with its heads merged (no dropout on it here)
      const { y, att } = fk.causalAttention(qkv, B, T, hs);
      const projMask = projMaskOf();
      const partial = mm(y, w('attn.c_proj.weight'));
      const cache: AttnCacheOf = { ln1: ln1.cache, ln1out: ln1.out, qkv, q: null, k: null, v: null, att, attMask: null, attD: att, y, projMask };
      return { partial, cache };
    }
    const [q, k, v] = tf.split(qkv, 3, 1).map((t) => this.splitHeads(t, B, T)); // (Ch, T, hs) each
    const scores = tf.add(tf.mul(this.bmmNT(q, k), 1 / Math.sqrt(hs)), this.causalMask(T)); // (Ch, T, T)
    const att = tf.softmax(scores) as tf.Tensor3D;
    // Dropout on the attention probabilities: the mask one worker draws for all NH heads; a rank keeps its heads' rows.
    let attMask = dropoutMask([B * NH, T, T], dropout, seed(0));
    if (attMask && heads && heads.nh !== NH) {
      const full = attMask;
      attMask = tf.slice(full.reshape([B, NH, T * T]), [0, heads.h0, 0], [B, heads.nh, T * T]).reshape(att.shape);
      full.dispose();
    }
    const attD = maybeMul(att, attMask) as tf.Tensor3D;
    const yh = this.bmmNN(attD, v); // (Ch, T, hs)
    const y = this.mergeHeads(yh, B, T);
    const projMask = projMaskOf();
    const partial = mm(y, w('attn.c_proj.weight')); // (BT, C), before the bias
    const cache: AttnCacheOf = { ln1: ln1.cache, ln1out: ln1.out, qkv: null, q, k, v, att, attMask, attD, y, projMask };
    return { partial, cache };
  }

  /** MLP half up to c_proj's matmul. */
  mlpForward(p: Params, l: number, x1: tf.Tensor2D, B: number, T: number, dropSeed?: number) {
    const { n_embd: C, dropout } = this.cfg;
    const w = (n: string) => p(`h.${l}.${n}`);
    const ln2 = layerNormForward(x1, w('ln_2.weight'), w('ln_2.bias'));
    const width = w('mlp.c_fc.weight').shape[1]!; // 4C (4C/N per rank)
    let h: tf.Tensor2D, g: tf.Tensor2D, sig: tf.Tensor2D | null;
    if (fused(width)) {
      // wasm: the bias and GELU in one pass; backward recomputes the sigmoid from h
      ({ h, g } = fk.geluForward(mm(ln2.out, w('mlp.c_fc.weight')), w('mlp.c_fc.bias')));
      sig = null;
    } else {
      h = linearForward(ln2.out, w('mlp.c_fc.weight'), w('mlp.c_fc.bias')); // (BT, 4C)
      const gelu = geluForward(h);
      [g, sig] = [gelu.out, gelu.sig];
    }
    const mlpMask = dropoutMask([B * T, C], dropout, dropSeed === undefined ? undefined : mixSeed(dropSeed, l, 2));
    const partial = mm(g, w('mlp.c_proj.weight')); // (BT, C), before the bias
    const cache = { ln2: ln2.cache, ln2out: ln2.out, h, sig, g, mlpMask };
    return { partial, cache };
  }

  /** The end of a half: x + drop(partial + bias). */
  residualForward(x: tf.Tensor2D, partial: tf.Tensor2D, bias: tf.Tensor, mask: tf.Tensor | null): tf.Tensor2D {
    if (!mask && fused(x.shape[1])) return fk.residual(x, partial, bias);
    return tf.add(x, maybeMul(tf.add(partial, bias), mask)) as tf.Tensor2D;
  }

  blockForward(p: Params, l: number, x: tf.Tensor2D, B: number, T: number, dropSeed?: number) {
    const a = this.attnForward(p, l, x, B, T, dropSeed);
    const x1 = this.residualForward(x, a.partial, p(`h.${l}.attn.c_proj.bias`), a.cache.projMask);
    const m = this.mlpForward(p, l, x1, B, T, dropSeed);
    const out = this.residualForward(x1, m.partial, p(`h.${l}.mlp.c_proj.bias`), m.cache.mlpMask);
    const cache: BlockCache = { ...a.cache, ...m.cache };
    return { out, cache };
  }

  /**
   * MLP half backward, from d(out) to d(ln_2's output): c_proj's weight and bias, c_fc's, and dln
   * (a partial sum under tensor parallelism: each rank's c_fc columns contribute to every input).
   */
  mlpBackward(p: Params, l: number, dout: tf.Tensor2D, cache: MlpCache): { dln: tf.Tensor2D; grads: Record<string, tf.Tensor> } {
    const name = (n: string) => `h.${l}.${n}`;
    const w = (n: string) => p(name(n));
    const grads: Record<string, tf.Tensor> = {};
    // out = x1 + drop(gelu(ln2(x1) @ Wfc + bfc) @ Wproj + bproj)
    const dmo = maybeMul(dout, cache.mlpMask) as tf.Tensor2D;
    const fcproj = linearBackward(dmo, cache.g, w('mlp.c_proj.weight'));
    grads[name('mlp.c_proj.weight')] = fcproj.dw;
    grads[name('mlp.c_proj.bias')] = fcproj.db;
    if (!cache.sig) {
      // the fused GELU backward, with the bias gradient (column sums of dh) in the same pass
      const { dh, db } = fk.geluBackward(fcproj.dx, cache.h);
      grads[name('mlp.c_fc.weight')] = weightGrad(cache.ln2out, dh);
      grads[name('mlp.c_fc.bias')] = db;
      return { dln: mm(dh, tr(w('mlp.c_fc.weight'))), grads };
    }
    const dh = geluBackward(fcproj.dx, cache.h, cache.sig);
    const fc = linearBackward(dh, cache.ln2out, w('mlp.c_fc.weight'));
    grads[name('mlp.c_fc.weight')] = fc.dw;
    grads[name('mlp.c_fc.bias')] = fc.db;
    return { dln: fc.dx, grads };
  }

  /** Attention half backward, from d(x1) to d(ln_1's output) (a partial sum under tensor parallelism). */
  attnBackward(p: Params, l: number, dx1: tf.Tensor2D, cache: AttnCache, B: number, T: number): { dln: tf.Tensor2D; grads: Record<string, tf.Tensor> } {
    const hs = this.hs;
    const name = (n: string) => `h.${l}.${n}`;
    const w = (n: string) => p(name(n));
    const grads: Record<string, tf.Tensor> = {};
    // x1 = x + drop(attn(ln1(x)) @ Wproj + bproj)
    const dao = maybeMul(dx1, cache.projMask) as tf.Tensor2D;
    const proj = linearBackward(dao, cache.y, w('attn.c_proj.weight'));
    grads[name('attn.c_proj.weight')] = proj.dw;
    grads[name('attn.c_proj.bias')] = proj.db;
    let dqkv: tf.Tensor2D;
    if (cache.qkv) {
      dqkv = fk.causalAttentionBackward(cache.qkv, cache.att, proj.dx, B, T, hs); // (BT, 3C), straight into q|k|v's layout
    } else {
      dqkv = this.attentionBackwardOps(proj.dx, cache as AttnCacheOf & { q: tf.Tensor3D; k: tf.Tensor3D; v: tf.Tensor3D; attD: tf.Tensor3D }, B, T);
    }
    const attn = linearBackward(dqkv, cache.ln1out, w('attn.c_attn.weight'));
    grads[name('attn.c_attn.weight')] = attn.dw;
    grads[name('attn.c_attn.bias')] = attn.db;
    return { dln: attn.dx, grads };
  }

  /** Attention backward in tfjs ops: d(y) (BT, nh*hs) -> d(qkv) (BT, 3*nh*hs). */
  private attentionBackwardOps(dy: tf.Tensor2D, cache: { q: tf.Tensor3D; k: tf.Tensor3D; v: tf.Tensor3D; att: tf.Tensor3D; attD: tf.Tensor3D; attMask: tf.Tensor | null }, B: number, T: number): tf.Tensor2D {
    const hs = this.hs;
    const dyh = this.splitHeads(dy, B, T);
    const dattD = this.bmmNT(dyh, cache.v); // (Ch, T, T)
    const dv = this.bmmNN(cache.attD.transpose([0, 2, 1]) as tf.Tensor3D, dyh); // (Ch, T, hs)
    const datt = maybeMul(dattD, cache.attMask);
    // softmax backward, then the 1/sqrt(hs) scale
    const dscores = tf.mul(tf.mul(cache.att, tf.sub(datt, tf.sum(tf.mul(datt, cache.att), -1, true))), 1 / Math.sqrt(hs)) as tf.Tensor3D;
    const dq = this.bmmNN(dscores, cache.k);
    const dk = this.bmmNN(dscores.transpose([0, 2, 1]) as tf.Tensor3D, cache.q);
    return tf.concat([dq, dk, dv].map((t) => this.mergeHeads(t, B, T)), 1) as tf.Tensor2D; // (BT, 3C)
  }

  /**
   * A half's LayerNorm backward and its residual: given d(half's output) and d(LayerNorm's output)
   * (all-reduced under tensor parallelism), d(half's input) and the LayerNorm's gradients. ln: 'ln_1' or 'ln_2'.
   */
  lnResidualBackward(p: Params, l: number, ln: 'ln_1' | 'ln_2', dres: tf.Tensor2D, dln: tf.Tensor2D, cache: LNCache): { dx: tf.Tensor2D; grads: Record<string, tf.Tensor> } {
    const back = layerNormBackward(dln, cache, p(`h.${l}.${ln}.weight`), dres);
    return { dx: back.dx, grads: { [`h.${l}.${ln}.weight`]: back.dw, [`h.${l}.${ln}.bias`]: back.db } };
  }

  /** Returns dx and the block's gradients as a plain object (tf.tidy keeps tensors in objects, not in Maps). */
  blockBackward(p: Params, l: number, dout: tf.Tensor2D, cache: BlockCache, B: number, T: number): { dx: tf.Tensor2D; grads: Record<string, tf.Tensor> } {
    const mlp = this.mlpBackward(p, l, dout, cache);
    const ln2 = this.lnResidualBackward(p, l, 'ln_2', dout, mlp.dln, cache.ln2);
    const attn = this.attnBackward(p, l, ln2.dx, cache, B, T);
    const ln1 = this.lnResidualBackward(p, l, 'ln_1', ln2.dx, attn.dln, cache.ln1);
    return { dx: ln1.dx, grads: { ...mlp.grads, ...ln2.grads, ...attn.grads, ...ln1.grads } };
  }

  // ---- head: final LayerNorm, logits = ln_f(x) @ wte^T, mean cross-entropy ---------------------------
  headForward(p: Params, x: tf.Tensor2D) {
    const lnf = layerNormForward(x, p('ln_f.weight'), p('ln_f.bias'));
    const logits = mm(lnf.out, tr(p('wte'))); // (BT, V)
    return { logits, lnf };
  }

  /**
   * The head's forward and backward in one (tidied): the mean loss, dx into the last block, and the
   * gradients of ln_f and of wte's head share (lm_head is tied to wte).
   */
  headLossBackward(p: Params, x: tf.Tensor2D, targets: tf.Tensor1D, lossScale: number): { loss: tf.Scalar; dx: tf.Tensor2D; grads: Record<string, tf.Tensor> } {
    return tidy(() => {
      const { logits, lnf } = this.headForward(p, x);
      const { loss, dlogits } = this.crossEntropy(logits, targets, lossScale);
      const dlnf = mm(dlogits, p('wte')); // (BT, C)
      const dwte = mm(tr(dlogits), lnf.out); // (V, C)
      const back = layerNormBackward(dlnf, lnf.cache, p('ln_f.weight'));
      return { loss, dx: back.dx, grads: { 'ln_f.weight': back.dw, 'ln_f.bias': back.db, wte: dwte } };
    });
  }

  /** Mean cross-entropy of logits against targets, and dlogits = (softmax - onehot) * scale / BT. */
  crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D, lossScale: number) {
    const BT = logits.shape[0];
    // tf.oneHot(..., 'float32') returns zeros on wasm (tfjs 4.22): cast instead.
    const onehot = tf.cast(tf.oneHot(targets, this.cfg.vocab_size), 'float32');
    const logp = tf.logSoftmax(logits);
    const loss = tf.div(tf.neg(tf.sum(tf.mul(onehot, logp))), BT) as tf.Scalar;
    const dlogits = tf.mul(tf.sub(tf.exp(logp), onehot), lossScale / BT) as tf.Tensor2D;
    return { loss, dlogits };
  }

  // ---- one forward and backward pass -----------------------------------------------------------------
  /**
   * Runs forward and backward on one micro-batch and adds every gradient into acc (PyTorch's .grad
   * semantics: an empty map gets this batch's gradients; a full one accumulates). Returns the mean loss.
   * Hooks run between units: unit 0 is the root {wte, wpe, ln_f}, unit 1 + l is block l. Backward
   * visits the head (root), blocks L-1..0, then the embeddings (root again, which finishes it).
   */
  async forwardBackward(p: Params, batch: Batch, opts: StepOptions, acc: Grads, hooks: UnitHooks = {}): Promise<tf.Scalar> {
    const { B, T } = batch;
    const L = this.cfg.n_layer;
    const dropSeed = opts.training && this.cfg.dropout > 0 ? (opts.dropoutSeed ?? 0) : undefined;
    const idx = tf.tensor1d(batch.x, 'int32');
    const targets = tf.tensor1d(batch.y, 'int32');
    const caches: BlockCache[] = [];
    const add = (name: string, g: tf.Tensor) => {
      const old = acc.get(name);
      if (!old) return void acc.set(name, g);
      acc.set(name, tf.add(old, g));
      old.dispose();
      g.dispose();
    };
    const ready = (names: string[]) => hooks.gradsReady?.(new Map(names.map((n) => [n, acc.get(n)!])));
    const tr = opts.trace ?? noTrace;
    try {
      // Each stretch of work between two hooks is one compute span, so a worker's spans tile its step.
      await hooks.beforeForward?.(0);
      const embedMask = this.embedDropoutMask(B, T, dropSeed);
      let x = tr.span('forward root', 'compute', () => tf.tidy(() => maybeMul(this.embedForward(p, idx, B, T), embedMask) as tf.Tensor2D));
      for (let l = 0; l < L; l++) {
        await hooks.beforeForward?.(1 + l);
        x = tr.span(`forward h.${l}`, 'compute', () => {
          const { out, cache } = tidy(() => this.blockForward(p, l, x, B, T, dropSeed));
          caches.push(cache);
          x.dispose(); // backward needs LayerNorm's xhat and rstd, not the block's input
          return out;
        });
        await hooks.afterForward?.(1 + l);
      }
      const headOut = tr.span('head and loss', 'compute', () => {
        const out = this.headLossBackward(p, x, targets, opts.lossScale ?? 1);
        x.dispose();
        add('ln_f.weight', out.grads['ln_f.weight']);
        add('ln_f.bias', out.grads['ln_f.bias']);
        add('wte', out.grads.wte); // the head's share; the embedding's is added at the end
        hooks.lossReady?.(out.loss);
        return out;
      });
      await ready(['ln_f.bias', 'ln_f.weight']);
      let dx = headOut.dx;
      for (let l = L - 1; l >= 0; l--) {
        await hooks.beforeBackward?.(1 + l);
        const names = tr.span(`backward h.${l}`, 'compute', () => {
          const res = tidy(() => this.blockBackward(p, l, dx, caches[l], B, T));
          disposeCache(caches[l]);
          dx.dispose();
          dx = res.dx;
          for (const [name, g] of Object.entries(res.grads)) add(name, g);
          return Object.keys(res.grads);
        });
        await ready(names);
        await hooks.afterBackward?.(1 + l);
      }
      await hooks.beforeBackward?.(0);
      const t0 = clock();
      if (embedMask) {
        const masked = tf.mul(dx, embedMask) as tf.Tensor2D;
        dx.dispose();
        dx = masked;
      }
      embedMask?.dispose();
      const { dwte, dwpe } = await this.embedBackward(dx, batch.x, B, T);
      dx.dispose();
      add('wte', dwte);
      add('wpe', dwpe);
      tr.record('backward root', 'compute', 'main', t0);
      await ready(['wpe', 'wte']);
      await hooks.afterBackward?.(0);
      return headOut.loss;
    } catch (e) {
      for (const c of caches) disposeCache(c);
      throw e;
    } finally {
      idx.dispose();
      targets.dispose();
    }
  }

  /** The embedding's dropout mask (B*T, C), or null: the same on every rank for the same seed. */
  embedDropoutMask(B: number, T: number, dropSeed: number | undefined): tf.Tensor | null {
    return dropoutMask([B * T, this.cfg.n_embd], this.cfg.dropout, dropSeed === undefined ? undefined : mixSeed(dropSeed, 1 << 20));
  }

  /** Mean loss without gradients (validation). */
  loss(p: Params, batch: Batch): tf.Scalar {
    return tf.tidy(() => this.crossEntropy(this.logits(p, batch.x, batch.B, batch.T), tf.tensor1d(batch.y, 'int32'), 1).loss);
  }

  /**
   * The whole forward: (BT, V) logits, or (B, V) for the last position only (sampling). With dropSeed it
   * applies the same dropout masks as forwardBackward with that seed. Written with differentiable tfjs
   * ops only, so tf.grads of it is the oracle the explicit backward is tested against (on cpu; on wasm,
   * where tf.grads cannot run it anyway for want of gather's gradient, the forward uses the fused kernels).
   */
  logits(p: Params, x: Int32Array, B: number, T: number, opts: { lastOnly?: boolean; dropSeed?: number } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      let h = maybeMul(this.embedForward(p, tf.tensor1d(x, 'int32'), B, T), this.embedDropoutMask(B, T, opts.dropSeed));
      for (let l = 0; l < this.cfg.n_layer; l++) h = this.blockForward(p, l, h, B, T, opts.dropSeed).out;
      if (opts.lastOnly) h = tf.slice(h.reshape([B, T, -1]), [0, T - 1, 0], [B, 1, -1]).reshape([B, -1]) as tf.Tensor2D;
      return this.headForward(p, h).logits;
    });
  }
}

/**
 * What attention's backward needs. The fused wasm path keeps qkv and att (q, k, v null); the tfjs path
 * keeps the heads q, k, v (qkv null). attD is att after dropout (att itself without dropout).
 */
interface AttnCacheOf {
  ln1: LNCache;
  ln1out: tf.Tensor2D;
  qkv: tf.Tensor2D | null;
  q: tf.Tensor3D | null;
  k: tf.Tensor3D | null;
  v: tf.Tensor3D | null;
  att: tf.Tensor3D;
  attMask: tf.Tensor | null;
  attD: tf.Tensor3D;
  y: tf.Tensor2D;
  projMask: tf.Tensor | null;
}

export type AttnCache = ReturnType<GPT['attnForward']>['cache'];
export type MlpCache = ReturnType<GPT['mlpForward']>['cache'];
export type BlockCache = AttnCache & MlpCache;

/** Disposes a block's (or a half's) saved tensors. */
export function disposeCache(cache: Partial<BlockCache>): void {
  for (const v of Object.values(cache)) {
    if (v instanceof tf.Tensor) v.dispose();
    else if (v) for (const t of Object.values(v)) (t as tf.Tensor).dispose();
  }
}
