// The fused wasm kernels (src/model/kernels/fused.ts) against their tfjs references on the same backend,
// on random inputs of odd sizes: forward outputs, and backward against tf.grads of the reference.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { mulberry32 } from '../src/model/params';
import * as fk from '../src/model/kernels/fused';

const GELU_S = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

let seed = 1;
function rand(shape: number[], scale = 1, offset = 0): tf.Tensor {
  const r = mulberry32(seed++);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => offset + (r() * 2 - 1) * scale), shape);
}

/** max |a - b| / max(1, max |b|) */
async function relDiff(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  expect(a.shape).toEqual(b.shape);
  const [x, y] = [await a.data(), await b.data()];
  let d = 0;
  let m = 1;
  for (let i = 0; i < y.length; i++) {
    d = Math.max(d, Math.abs(x[i] - y[i]));
    m = Math.max(m, Math.abs(y[i]));
  }
  return d / m;
}

const TOL = 2e-5;

// tfjs references (as src/model/gpt.ts writes them for the other backends)
function refLayerNorm(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), -1, true), 1e-5));
  const xhat = tf.mul(xc, rstd);
  return { out: tf.add(tf.mul(xhat, w), b), xhat, rstd };
}
function refGelu(h: tf.Tensor) {
  const u2 = tf.mul(h, tf.add(tf.mul(tf.square(h), 2 * GELU_S * GELU_A), 2 * GELU_S));
  return tf.mul(h, tf.sigmoid(u2));
}
function refAttention(qkv: tf.Tensor, B: number, T: number, hs: number) {
  const C = qkv.shape[1]! / 3;
  const nh = C / hs;
  const heads = (t: tf.Tensor) => t.reshape([B, T, nh, hs]).transpose([0, 2, 1, 3]).reshape([B * nh, T, hs]);
  const [q, k, v] = tf.split(qkv, 3, 1).map(heads);
  const mask = tf.tensor2d(Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)), [T, T]);
  const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hs)), mask));
  const y = tf.matMul(att, v).reshape([B, nh, T, hs]).transpose([0, 2, 1, 3]).reshape([B * T, C]);
  return { y, att };
}

describe('fused wasm kernels', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  it('are active on wasm (plain SIMD on an engine without relaxed SIMD) and can be turned off', () => {
    expect(fk.fusedActive()).toBe(true);
    expect(typeof fk.fusedRelaxed()).toBe('boolean');
    fk.configureFused({ enabled: false });
    expect(fk.fusedActive()).toBe(false);
    fk.configureFused({ enabled: true });
    expect(fk.fusedFits(4, 128, 12)).toBe(true);
    expect(fk.fusedFits(4, 6)).toBe(false);
  });

  it.each([[1, 4], [7, 12], [13, 20], [64, 132]])('bias add, residual and column sums on %i x %i', async (N, K) => {
    const [x, p, b] = [rand([N, K]), rand([N, K]), rand([K])];
    expect(await relDiff(fk.biasAdd(x as tf.Tensor2D, b), tf.add(x, b))).toBe(0);
    expect(await relDiff(fk.residual(x as tf.Tensor2D, p as tf.Tensor2D, b), tf.add(x, tf.add(p, b)))).toBe(0);
    expect(await relDiff(fk.colSum(x as tf.Tensor2D), tf.sum(x, 0))).toBeLessThan(TOL);
    tf.disposeVariables();
  });

  it.each([[1, 4], [9, 12], [31, 36]])('GELU forward (with bias) and backward (with the bias gradient) on %i x %i', async (N, K) => {
    const [pre, bias, dg] = [rand([N, K], 4), rand([K], 0.5), rand([N, K])];
    const { h, g } = fk.geluForward(pre as tf.Tensor2D, bias);
    const refH = tf.add(pre, bias);
    expect(await relDiff(h, refH)).toBe(0);
    expect(await relDiff(g, refGelu(refH))).toBeLessThan(TOL);
    const { dh, db } = fk.geluBackward(dg as tf.Tensor2D, h);
    const [rdh, rdb] = tf.grads((p: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(refGelu(tf.add(p, b)), dg)))([pre, bias]);
    expect(await relDiff(dh, rdh)).toBeLessThan(TOL);
    expect(await relDiff(db, rdb)).toBeLessThan(TOL);
  });

  it.each([[1, 4], [7, 12], [33, 20], [65, 128]])('LayerNorm forward and backward (with and without the residual) on %i x %i', async (N, C) => {
    const [x, w, b, dout, dres] = [rand([N, C], 2, 0.3), rand([C], 0.5, 1), rand([C], 0.3), rand([N, C]), rand([N, C])];
    const ours = fk.layerNorm(x as tf.Tensor2D, w, b, 1e-5);
    const ref = refLayerNorm(x, w, b);
    expect(await relDiff(ours.out, ref.out)).toBeLessThan(TOL);
    expect(await relDiff(ours.xhat, ref.xhat)).toBeLessThan(TOL);
    expect(await relDiff(ours.rstd, ref.rstd)).toBeLessThan(TOL);
    const [rdx, rdw, rdb] = tf.grads((a: tf.Tensor, ww: tf.Tensor, bb: tf.Tensor) => tf.sum(tf.mul(refLayerNorm(a, ww, bb).out, dout)))([x, w, b]);
    const back = fk.layerNormBackward(dout as tf.Tensor2D, ours.xhat, ours.rstd, w);
    expect(await relDiff(back.dx, rdx)).toBeLessThan(TOL);
    expect(await relDiff(back.dw, rdw)).toBeLessThan(TOL);
    expect(await relDiff(back.db, rdb)).toBeLessThan(TOL);
    const withRes = fk.layerNormBackward(dout as tf.Tensor2D, ours.xhat, ours.rstd, w, dres as tf.Tensor2D);
    expect(await relDiff(withRes.dx, tf.add(dres, rdx))).toBeLessThan(TOL);
  });

  it.each([
    [1, 1, 1, 4], [2, 5, 3, 4], [3, 7, 2, 8], [1, 9, 1, 12], [2, 64, 4, 32], [1, 13, 3, 16],
  ])('causal attention forward and backward, B %i, T %i, %i heads of %i', async (B, T, nh, hs) => {
    const C = nh * hs;
    const [qkv, dy] = [rand([B * T, 3 * C], 1.5), rand([B * T, C])];
    const ours = fk.causalAttention(qkv as tf.Tensor2D, B, T, hs);
    const ref = refAttention(qkv, B, T, hs);
    expect(await relDiff(ours.att, ref.att)).toBeLessThan(TOL);
    expect(await relDiff(ours.y, ref.y)).toBeLessThan(TOL);
    const dqkv = fk.causalAttentionBackward(qkv as tf.Tensor2D, ours.att, dy as tf.Tensor2D, B, T, hs);
    const [rdqkv] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(refAttention(a, B, T, hs).y, dy)))([qkv]);
    expect(await relDiff(dqkv, rdqkv)).toBeLessThan(TOL);
  });

  it.each([[1, 1], [3, 5], [4, 8], [7, 65], [65, 128], [768, 132], [13, 4]])('transpose of %i x %i', async (R, C) => {
    const x = rand([R, C]) as tf.Tensor2D;
    expect(await relDiff(fk.transpose2d(x), tf.transpose(x))).toBe(0);
  });

  it.each([[1, 1, 4, 5, 3], [3, 7, 12, 11, 9], [12, 64, 128, 65, 64]])('embedding, B %i, T %i, C %i, V %i, block %i', async (B, T, C, V, block) => {
    const [wte, wpe] = [rand([V, C]) as tf.Tensor2D, rand([block, C]) as tf.Tensor2D];
    const r = mulberry32(seed++);
    const idx = tf.tensor1d(Int32Array.from({ length: B * T }, () => Math.floor(r() * V)), 'int32');
    const ref = tf.add(tf.gather(wte, idx).reshape([B, T, C]), tf.slice(wpe, [0, 0], [T, C])).reshape([B * T, C]);
    expect(await relDiff(fk.embed(wte, wpe, idx, T), ref)).toBe(0);
    expect(() => fk.embed(wte, wpe, tf.tensor1d([0, V], 'int32'), 1)).toThrow(/outside the vocabulary/);
  });

  it('leave no tensors and no backend memory behind', () => {
    const be = tf.backend() as unknown as { numDataIds(): number };
    const before = [tf.memory().numTensors, be.numDataIds()];
    tf.tidy(() => {
      const qkv = rand([2 * 5 * 1, 3 * 8]) as tf.Tensor2D;
      const { y, att } = fk.causalAttention(qkv, 2, 5, 4);
      fk.causalAttentionBackward(qkv, att, y, 2, 5, 4);
      const x = rand([3, 8]) as tf.Tensor2D;
      const ln = fk.layerNorm(x, rand([8]), rand([8]), 1e-5);
      fk.layerNormBackward(x, ln.xhat, ln.rstd, rand([8]), x);
      const gl = fk.geluForward(x, rand([8]));
      fk.geluBackward(x, gl.h);
      fk.colSum(x);
      fk.transpose2d(x);
      fk.embed(x, x, tf.tensor1d([0, 2, 1], 'int32'), 3);
    });
    expect([tf.memory().numTensors, be.numDataIds()]).toEqual(before);
  });
});
