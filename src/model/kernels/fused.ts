// The model's fused kernels on the tfjs wasm backend (fused.wat): custom tfjs kernels registered for the
// 'wasm' backend, whose kernelFunc runs our own WebAssembly SIMD module instantiated over the backend's
// own WebAssembly.Memory, so it reads and writes the tensors where they are (the backend's dataIdMap gives
// each tensor's byte offset in that heap) and outputs are ordinary wasm tensors (backend.makeOutput).
// Each replaces several tfjs kernels, each of them one more pass over memory. They go through
// tf.engine().runKernel, so tf.tidy, tf.memory and tf.profile see them as any other kernel; they have no
// gradients (the model's backward is explicit: src/model/gpt.ts), and other backends keep the tfjs ops.
//
// Relaxed-SIMD fused multiply-adds where the engine validates them (Chromium), the plain module otherwise
// (Node 20). test/kernels.test.ts holds every kernel to its tfjs reference.

import * as tf from '@tensorflow/tfjs';
import { FUSED_WASM_BASE64, FUSED_WASM_RELAXED_BASE64, FUSED_WASM_SHARED_BASE64, FUSED_WASM_SHARED_RELAXED_BASE64 } from './fused-wasm';
import { instantiate } from '../../util/wasm';

type Ptr = number;
interface FusedExports {
  bias_add(x: Ptr, bias: Ptr, out: Ptr, N: number, K: number): void;
  residual(x: Ptr, partial: Ptr, bias: Ptr, out: Ptr, N: number, K: number): void;
  colsum(x: Ptr, out: Ptr, N: number, K: number): void;
  gelu_fwd(pre: Ptr, bias: Ptr, h: Ptr, g: Ptr, N: number, K: number, c1: number, c3: number): void;
  gelu_bwd(dg: Ptr, h: Ptr, dh: Ptr, db: Ptr, N: number, K: number, c1: number, c3: number): void;
  ln_fwd(x: Ptr, w: Ptr, b: Ptr, out: Ptr, xhat: Ptr, rstd: Ptr, N: number, C: number, eps: number): void;
  ln_bwd(dout: Ptr, xhat: Ptr, rstd: Ptr, w: Ptr, dres: Ptr, dx: Ptr, dw: Ptr, db: Ptr, N: number, C: number): void;
  attn_fwd(qkv: Ptr, y: Ptr, att: Ptr, B: number, T: number, nh: number, hs: number, scale: number): void;
  attn_bwd(qkv: Ptr, att: Ptr, dy: Ptr, dqkv: Ptr, scratch: Ptr, B: number, T: number, nh: number, hs: number, scale: number): void;
  transpose(x: Ptr, out: Ptr, R: number, C: number): void;
  embed(wte: Ptr, wpe: Ptr, idx: Ptr, out: Ptr, BT: number, T: number, C: number): void;
}

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackend {
  wasm: { asm?: Record<string, unknown>; wasmMemory?: WebAssembly.Memory; HEAP32: Int32Array };
  dataIdMap: { get(id: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
  disposeData(id: object): boolean;
}

const settings = { enabled: true, relaxed: true };

/**
 * Turns the fused kernels on or off (off: the model runs its tfjs ops on wasm too), and allows or forbids
 * the relaxed-SIMD module. For side-by-side measurements and tests; on by default.
 */
export function configureFused(opts: { enabled?: boolean; relaxed?: boolean }): void {
  if (opts.enabled !== undefined) settings.enabled = opts.enabled;
  if (opts.relaxed !== undefined) settings.relaxed = opts.relaxed;
}

const instances = new WeakMap<object, Map<boolean, { exports: FusedExports; relaxed: boolean } | null>>();

/** The module over this backend's memory (relaxed where allowed and valid), or null (no SIMD, or no memory to share). */
function moduleFor(backend: WasmBackend): { exports: FusedExports; relaxed: boolean } | null {
  let byMode = instances.get(backend);
  if (!byMode) instances.set(backend, (byMode = new Map()));
  const want = settings.relaxed;
  if (!byMode.has(want)) {
    // the single-threaded binary exports its memory; the multi-threaded one imports a shared one (wasmMemory)
    const memory = Object.values(backend.wasm?.asm ?? {}).find((v): v is WebAssembly.Memory => v instanceof WebAssembly.Memory) ??
      (backend.wasm?.wasmMemory instanceof WebAssembly.Memory ? backend.wasm.wasmMemory : undefined);
    let found: { exports: FusedExports; relaxed: boolean } | null = null;
    if (memory) {
      const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
      const relaxed = want ? instantiate(shared ? FUSED_WASM_SHARED_RELAXED_BASE64 : FUSED_WASM_RELAXED_BASE64, memory) : null;
      const plain = relaxed ? null : instantiate(shared ? FUSED_WASM_SHARED_BASE64 : FUSED_WASM_BASE64, memory);
      const exports = (relaxed ?? plain) as unknown as FusedExports | null;
      if (exports) found = { exports, relaxed: relaxed !== null };
    }
    byMode.set(want, found);
  }
  return byMode.get(want)!;
}

/** Whether the fused kernels run now: the wasm backend is active, they are enabled, and the module loads. */
export function fusedActive(): boolean {
  return settings.enabled && tf.getBackend() === 'wasm' && moduleFor(tf.backend() as unknown as WasmBackend) !== null;
}

/** Whether the active module uses relaxed-SIMD fused multiply-adds (null where the kernels do not run). */
export function fusedRelaxed(): boolean | null {
  if (!fusedActive()) return null;
  return moduleFor(tf.backend() as unknown as WasmBackend)!.relaxed;
}

// ---- kernel registration ------------------------------------------------------------------------------

type Inputs = Record<string, tf.TensorInfo>;
type Attrs = Record<string, number>;
type Body = (k: FusedExports, ptr: (t: tf.TensorInfo) => Ptr, out: (shape: number[]) => tf.TensorInfo, inputs: Inputs, attrs: Attrs, backend: WasmBackend) => tf.TensorInfo | tf.TensorInfo[];

const KERNELS: Record<string, Body> = {};

function define(name: string, body: Body): string {
  KERNELS[name] = body;
  return name;
}

let registered = false;
function register(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, body] of Object.entries(KERNELS)) {
    if (tf.getKernel(kernelName, 'wasm')) continue;
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const be = backend as unknown as WasmBackend;
        const mod = moduleFor(be);
        if (!mod) throw new Error(`${kernelName}: the fused WebAssembly module is not available`);
        const ptr = (t: tf.TensorInfo) => {
          if (t.dtype !== 'float32' && !(t.dtype === 'int32' && kernelName === EMBED)) throw new Error(`${kernelName}: float32 tensors only, got ${t.dtype}`);
          return be.dataIdMap.get(t.dataId)!.memoryOffset;
        };
        return body(mod.exports, ptr, (shape) => be.makeOutput(shape, 'float32'), inputs as Inputs, (attrs ?? {}) as Attrs, be);
      },
    });
  }
}

function run<R extends tf.Tensor | tf.Tensor[]>(name: string, inputs: Record<string, tf.Tensor>, attrs: Attrs = {}): R {
  register();
  return tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs) as unknown as R;
}

const GELU_S = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

const BIAS_ADD = define('GptBiasAdd', (k, ptr, out, { x, bias }) => {
  const [N, K] = x.shape;
  const o = out([N, K]);
  k.bias_add(ptr(x), ptr(bias), ptr(o), N, K);
  return o;
});

const RESIDUAL = define('GptResidual', (k, ptr, out, { x, partial, bias }) => {
  const [N, K] = x.shape;
  const o = out([N, K]);
  k.residual(ptr(x), ptr(partial), ptr(bias), ptr(o), N, K);
  return o;
});

const COLSUM = define('GptColSum', (k, ptr, out, { x }) => {
  const [N, K] = x.shape;
  const o = out([K]);
  k.colsum(ptr(x), ptr(o), N, K);
  return o;
});

const GELU_FWD = define('GptGeluForward', (k, ptr, out, { pre, bias }) => {
  const [N, K] = pre.shape;
  const h = out([N, K]);
  const g = out([N, K]);
  k.gelu_fwd(ptr(pre), ptr(bias), ptr(h), ptr(g), N, K, 2 * GELU_S, 2 * GELU_S * GELU_A);
  return [h, g];
});

const GELU_BWD = define('GptGeluBackward', (k, ptr, out, { dg, h }) => {
  const [N, K] = h.shape;
  const dh = out([N, K]);
  const db = out([K]);
  k.gelu_bwd(ptr(dg), ptr(h), ptr(dh), ptr(db), N, K, 2 * GELU_S, 2 * GELU_S * GELU_A);
  return [dh, db];
});

const LN_FWD = define('GptLayerNorm', (k, ptr, out, { x, w, b }, { eps }) => {
  const [N, C] = x.shape;
  const o = out([N, C]);
  const xhat = out([N, C]);
  const rstd = out([N, 1]);
  k.ln_fwd(ptr(x), ptr(w), ptr(b), ptr(o), ptr(xhat), ptr(rstd), N, C, eps);
  return [o, xhat, rstd];
});

const LN_BWD = define('GptLayerNormBackward', (k, ptr, out, { dout, xhat, rstd, w, dres }) => {
  const [N, C] = dout.shape;
  const dx = out([N, C]);
  const dw = out([C]);
  const db = out([C]);
  k.ln_bwd(ptr(dout), ptr(xhat), ptr(rstd), ptr(w), dres ? ptr(dres) : 0, ptr(dx), ptr(dw), ptr(db), N, C);
  return [dx, dw, db];
});

const ATTN_FWD = define('GptCausalAttention', (k, ptr, out, { qkv }, { B, T, hs }) => {
  const C = qkv.shape[1] / 3;
  const nh = C / hs;
  const y = out([B * T, C]);
  const att = out([B * nh, T, T]);
  k.attn_fwd(ptr(qkv), ptr(y), ptr(att), B, T, nh, hs, 1 / Math.sqrt(hs));
  return [y, att];
});

const ATTN_BWD = define('GptCausalAttentionBackward', (k, ptr, out, { qkv, att, dy }, { B, T, hs }, backend) => {
  const C = qkv.shape[1] / 3;
  const dqkv = out([B * T, 3 * C]);
  const scratch = out([T]);
  try {
    k.attn_bwd(ptr(qkv), ptr(att), ptr(dy), ptr(dqkv), ptr(scratch), B, T, C / hs, hs, 1 / Math.sqrt(hs));
  } finally {
    backend.disposeData(scratch.dataId);
  }
  return dqkv;
});

const TRANSPOSE = define('GptTranspose', (k, ptr, out, { x }) => {
  const [R, C] = x.shape;
  const o = out([C, R]);
  k.transpose(ptr(x), ptr(o), R, C);
  return o;
});

const EMBED = define('GptEmbed', (k, ptr, out, { wte, wpe, idx }, { T }, backend) => {
  const [V, C] = wte.shape;
  const BT = idx.shape[0];
  const at = ptr(idx) >>> 2;
  const ids = backend.wasm.HEAP32.subarray(at, at + BT);
  for (const id of ids) if (!(id >= 0 && id < V)) throw new Error(`token id ${id} is outside the vocabulary [0, ${V})`);
  const o = out([BT, C]);
  k.embed(ptr(wte), ptr(wpe), ptr(idx), ptr(o), BT, T, C);
  return o;
});

// ---- the operations, as the model calls them ----------------------------------------------------------
// Widths (K, C, hs) must be multiples of 4 (fusedFits); every tensor float32 and contiguous (wasm's are).

/** Whether widths suit the kernels (multiples of four floats). */
export const fusedFits = (...widths: number[]) => widths.every((w) => w > 0 && w % 4 === 0);

/** x (N, K) + bias (K) */
export const biasAdd = (x: tf.Tensor2D, bias: tf.Tensor): tf.Tensor2D => run(BIAS_ADD, { x, bias });

/** x + (partial + bias): the residual of a half. */
export const residual = (x: tf.Tensor2D, partial: tf.Tensor2D, bias: tf.Tensor): tf.Tensor2D => run(RESIDUAL, { x, partial, bias });

/** Column sums of x (N, K): a bias gradient. */
export const colSum = (x: tf.Tensor2D): tf.Tensor1D => run(COLSUM, { x });

/** h = pre + bias, g = GELU(h) (tanh form). */
export function geluForward(pre: tf.Tensor2D, bias: tf.Tensor): { h: tf.Tensor2D; g: tf.Tensor2D } {
  const [h, g] = run<tf.Tensor2D[]>(GELU_FWD, { pre, bias });
  return { h, g };
}

/** dh = dg * GELU'(h), and db = column sums of dh. */
export function geluBackward(dg: tf.Tensor2D, h: tf.Tensor2D): { dh: tf.Tensor2D; db: tf.Tensor1D } {
  const [dh, db] = run<tf.Tensor[]>(GELU_BWD, { dg, h });
  return { dh: dh as tf.Tensor2D, db: db as tf.Tensor1D };
}

/** LayerNorm over the last axis: out, and what backward needs (xhat, rstd as (N, 1)). */
export function layerNorm(x: tf.Tensor2D, w: tf.Tensor, b: tf.Tensor, eps: number): { out: tf.Tensor2D; xhat: tf.Tensor2D; rstd: tf.Tensor2D } {
  const [out, xhat, rstd] = run<tf.Tensor2D[]>(LN_FWD, { x, w, b }, { eps });
  return { out, xhat, rstd };
}

/** LayerNorm backward: dx (+ dres when given: the residual's gradient), dw, db. */
export function layerNormBackward(dout: tf.Tensor2D, xhat: tf.Tensor2D, rstd: tf.Tensor2D, w: tf.Tensor, dres?: tf.Tensor2D): { dx: tf.Tensor2D; dw: tf.Tensor1D; db: tf.Tensor1D } {
  const [dx, dw, db] = run<tf.Tensor[]>(LN_BWD, dres ? { dout, xhat, rstd, w, dres } : { dout, xhat, rstd, w });
  return { dx: dx as tf.Tensor2D, dw: dw as tf.Tensor1D, db: db as tf.Tensor1D };
}

/**
 * Causal self-attention from the fused q|k|v matrix (B*T, 3*nh*hs): y (B*T, nh*hs), heads merged, and
 * the attention probabilities (B*nh, T, T), zero above the diagonal. Scale 1/sqrt(hs).
 */
export function causalAttention(qkv: tf.Tensor2D, B: number, T: number, hs: number): { y: tf.Tensor2D; att: tf.Tensor3D } {
  const [y, att] = run<tf.Tensor[]>(ATTN_FWD, { qkv }, { B, T, hs });
  return { y: y as tf.Tensor2D, att: att as tf.Tensor3D };
}

/** Backward of causalAttention: dy (B*T, nh*hs) -> dqkv (B*T, 3*nh*hs). */
export const causalAttentionBackward = (qkv: tf.Tensor2D, att: tf.Tensor3D, dy: tf.Tensor2D, B: number, T: number, hs: number): tf.Tensor2D =>
  run(ATTN_BWD, { qkv, att, dy }, { B, T, hs });

/** x (R, C) transposed, any R and C (four by four, then the rest). */
export const transpose2d = (x: tf.Tensor2D): tf.Tensor2D => run(TRANSPOSE, { x });

/** The embedding: wte[idx] + wpe[t] for the B*T token ids idx (int32), rows of C floats. */
export const embed = (wte: tf.Tensor2D, wpe: tf.Tensor2D, idx: tf.Tensor1D, T: number): tf.Tensor2D => run(EMBED, { wte, wpe, idx }, { T });
