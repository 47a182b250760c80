// Checks this GPT-2 against llm.c: same weights in, same logits, loss, gradients and AdamW losses out.
// Used by `npm run cli -- verify-llmc DIR` and by the tests on every backend that is claimed to work.

import * as tf from '@tensorflow/tfjs';
import { GPT, type Grads } from './model/gpt';
import { readLlmcModel, readLlmcState, CheckpointError } from './model/llmc';
import { AdamW } from './train/optim';

export interface AdamWExpectation {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  losses: number[];
}

/** Largest relative error allowed per kind of tensor (see relErr for how it is measured). */
export interface Tolerance {
  logits: number;
  loss: number;
  grads: number; // each gradient tensor on its own
  adamw: number; // the loss after each AdamW step
}

export type VerifyBackend = 'cpu' | 'wasm' | 'webgpu' | 'webgl';

// Relative tolerances per backend, ~5-9x above the worst error each one reached on both fixtures
// (test/fixtures/llmc-tiny and llmc-wide): cpu and wasm in Node, wasm, webgpu (SwiftShader) and webgl in
// a Chromium Worker; webgpu in Node (Dawn on SwiftShader) reached the same as in Chromium. Worst reached:
//   cpu     logits 1.8e-6  loss 1.1e-7  grads 3.8e-6  AdamW losses 2.6e-7
//   wasm    logits 1.2e-6  loss 1.1e-7  grads 3.3e-6  AdamW losses 3.4e-7
//   webgpu  logits 1.5e-6  loss 0       grads 5.1e-6  AdamW losses 2.3e-7
//   webgl   logits 1.4e-6  loss 1.1e-7  grads 6.5e-6  AdamW losses 3.0e-7
// (1.1e-7 is one float32 step of a loss near 4.) A 1% slip in the cubic term of GELU's derivative
// reaches 9e-4 on llmc-wide's gradients and 4e-5 on llmc-tiny's: both fail. GPUs other than SwiftShader
// were not measured. A backend not listed here has no measured level, so verifyLlmc refuses it.
export const TOLERANCES: Record<VerifyBackend, Tolerance> = {
  cpu: { logits: 1e-5, loss: 1e-6, grads: 2e-5, adamw: 2e-6 },
  wasm: { logits: 1e-5, loss: 1e-6, grads: 2e-5, adamw: 2e-6 },
  webgpu: { logits: 1e-5, loss: 1e-6, grads: 3e-5, adamw: 2e-6 },
  webgl: { logits: 1e-5, loss: 1e-6, grads: 3e-5, adamw: 2e-6 },
};

// The smallest scale a reference tensor is measured against: a tensor that is all ~0 (an unused
// parameter's gradient) would otherwise turn any rounding into a huge relative error. No tensor of the
// fixtures is that small (the smallest gradient tensor peaks at 4e-4), so here it never applies.
export const FLOOR = 1e-6;

export function toleranceFor(backend: string): Tolerance {
  const t = TOLERANCES[backend as VerifyBackend];
  if (!t) throw new Error(`no llm.c tolerance measured for the ${backend} backend (known: ${Object.keys(TOLERANCES).join(', ')})`);
  return t;
}

export interface VerifyResult {
  backend: string;
  loss: number;
  loss_ref: number;
  loss_rel: number;
  logits_maxdiff: number; // max |ours - llm.c|
  logits_rel: number; // the same, relative (relErr)
  grads_maxdiff: number; // the largest of grads
  grads_relmax: number; // the largest of grads_rel
  grads: Record<string, number>; // parameter name -> max abs difference
  grads_rel: Record<string, number>; // parameter name -> relative error
  adamw_losses: number[] | null;
  adamw_ref: number[] | null;
  adamw_maxdiff: number | null;
  adamw_rel: number | null;
  tolerance: Tolerance; // what ok was judged by (this backend's row of TOLERANCES)
  ok: boolean;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
}

/**
 * The error of a whole tensor relative to its reference's scale: max|ours - ref| / max(max|ref|, FLOOR).
 * One number per tensor, so a tensor's few near-zero entries do not dominate, as they would elementwise.
 */
function relErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  return maxAbsDiff(ours, ref) / Math.max(scale, FLOOR);
}

export function parseExpected(json: string): AdamWExpectation | null {
  let parsed: { adamw?: AdamWExpectation };
  try {
    parsed = JSON.parse(json);
  } catch (e) {
    throw new CheckpointError(`expected.json is not valid JSON: ${(e as Error).message}`);
  }
  const a = parsed.adamw;
  if (!a) return null;
  if (!Array.isArray(a.losses) || a.losses.some((x) => typeof x !== 'number')) {
    throw new CheckpointError('expected.json: adamw.losses must be a list of numbers');
  }
  return a;
}

export async function verifyLlmc(modelBuf: ArrayBuffer, stateBuf: ArrayBuffer, adamw: AdamWExpectation | null): Promise<VerifyResult> {
  const backend = tf.getBackend();
  const tol = toleranceFor(backend);
  const ref = readLlmcModel(modelBuf);
  const state = readLlmcState(stateBuf, ref);
  const model = new GPT(ref.config, ref.table);
  let params = new Map(ref.table.params.map((p) => [p.name, tf.tensor(ref.params.subarray(p.offset, p.offset + p.size), p.shape)]));
  const get = (n: string) => params.get(n)!;
  const batch = { B: state.B, T: state.T, x: state.x, y: state.y };
  try {
    const logits = model.logits(get, batch.x, batch.B, batch.T);
    const logitsV = (await logits.data()) as Float32Array;
    logits.dispose();
    const logitsMaxdiff = maxAbsDiff(logitsV, state.logits);
    const logitsRel = relErr(logitsV, state.logits);

    const grads: Grads = new Map();
    const loss = await model.forwardBackward(get, batch, { training: false }, grads);
    const lossV = (await loss.data())[0];
    loss.dispose();
    const lossRel = relErr([lossV], [state.loss]);
    const gradDiffs: Record<string, number> = {};
    const gradRels: Record<string, number> = {};
    for (const p of ref.table.params) {
      const g = grads.get(p.name)!;
      const ours = (await g.data()) as Float32Array;
      const theirs = state.grads.subarray(p.offset, p.offset + p.size);
      gradDiffs[p.name] = maxAbsDiff(ours, theirs);
      gradRels[p.name] = relErr(ours, theirs);
      g.dispose();
    }
    const gradsMaxdiff = Math.max(...Object.values(gradDiffs));
    const gradsRelmax = Math.max(...Object.values(gradRels));

    let adamwLosses: number[] | null = null;
    if (adamw) {
      adamwLosses = [];
      const opt = new AdamW({ beta1: adamw.beta1, beta2: adamw.beta2, eps: adamw.eps, weight_decay: adamw.weight_decay }, () => true);
      for (let k = 0; k < adamw.losses.length; k++) {
        const stepGrads: Grads = new Map();
        const stepLoss = await model.forwardBackward(get, batch, { training: false }, stepGrads);
        adamwLosses.push((await stepLoss.data())[0]);
        stepLoss.dispose();
        if (k < adamw.losses.length - 1) {
          const next = opt.step(params, stepGrads, adamw.lr);
          for (const t of params.values()) t.dispose();
          params = next;
        }
        for (const g of stepGrads.values()) g.dispose();
      }
      opt.dispose();
    }
    const adamwMaxdiff = adamw && adamwLosses ? maxAbsDiff(adamwLosses, adamw.losses) : null;
    // Each step's loss relative to that step's llm.c loss (a list of scalars, not one tensor).
    const adamwRel = adamw && adamwLosses ? Math.max(...adamwLosses.map((l, k) => relErr([l], [adamw.losses[k]]))) : null;
    // `x <= tol` is false for NaN, so a NaN anywhere fails.
    const ok =
      logitsRel <= tol.logits &&
      lossRel <= tol.loss &&
      Object.values(gradRels).every((e) => e <= tol.grads) &&
      (adamwRel === null || adamwRel <= tol.adamw);
    return {
      backend,
      loss: lossV,
      loss_ref: state.loss,
      loss_rel: lossRel,
      logits_maxdiff: logitsMaxdiff,
      logits_rel: logitsRel,
      grads_maxdiff: gradsMaxdiff,
      grads_relmax: gradsRelmax,
      grads: gradDiffs,
      grads_rel: gradRels,
      adamw_losses: adamwLosses,
      adamw_ref: adamw?.losses ?? null,
      adamw_maxdiff: adamwMaxdiff,
      adamw_rel: adamwRel,
      tolerance: tol,
      ok,
    };
  } finally {
    for (const t of params.values()) t.dispose();
    model.dispose();
  }
}
