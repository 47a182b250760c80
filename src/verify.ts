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

export interface VerifyResult {
  backend: string;
  loss: number;
  loss_ref: number;
  logits_maxdiff: number;
  grads_maxdiff: number;
  grads: Record<string, number>; // parameter name -> max abs difference
  adamw_losses: number[] | null;
  adamw_ref: number[] | null;
  adamw_maxdiff: number | null;
  ok: boolean;
}

export const TOLERANCE = { logits: 1e-4, loss: 1e-4, grads: 1e-4, adamw: 1e-3 };

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return Number.isNaN(m) ? Infinity : m;
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
  const ref = readLlmcModel(modelBuf);
  const state = readLlmcState(stateBuf, ref);
  const model = new GPT(ref.config, ref.table);
  let params = new Map(ref.table.params.map((p) => [p.name, tf.tensor(ref.params.subarray(p.offset, p.offset + p.size), p.shape)]));
  const get = (n: string) => params.get(n)!;
  const batch = { B: state.B, T: state.T, x: state.x, y: state.y };
  try {
    const logits = model.logits(get, batch.x, batch.B, batch.T);
    const logitsMaxdiff = maxAbsDiff((await logits.data()) as Float32Array, state.logits);
    logits.dispose();

    const grads: Grads = new Map();
    const loss = await model.forwardBackward(get, batch, { training: false }, grads);
    const lossV = (await loss.data())[0];
    loss.dispose();
    const gradDiffs: Record<string, number> = {};
    for (const p of ref.table.params) {
      const g = grads.get(p.name)!;
      gradDiffs[p.name] = maxAbsDiff((await g.data()) as Float32Array, state.grads.subarray(p.offset, p.offset + p.size));
      g.dispose();
    }
    const gradsMaxdiff = Math.max(...Object.values(gradDiffs));

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
    const ok =
      logitsMaxdiff <= TOLERANCE.logits &&
      Math.abs(lossV - state.loss) <= TOLERANCE.loss &&
      gradsMaxdiff <= TOLERANCE.grads &&
      (adamwMaxdiff === null || adamwMaxdiff <= TOLERANCE.adamw);
    return {
      backend: tf.getBackend(),
      loss: lossV,
      loss_ref: state.loss,
      logits_maxdiff: logitsMaxdiff,
      grads_maxdiff: gradsMaxdiff,
      grads: gradDiffs,
      adamw_losses: adamwLosses,
      adamw_ref: adamw?.losses ?? null,
      adamw_maxdiff: adamwMaxdiff,
      ok,
    };
  } finally {
    for (const t of params.values()) t.dispose();
    model.dispose();
  }
}
