// DiLoCo: local SGD for slow links, after Douillard et al. 2023 ("DiLoCo: Distributed Low-Communication
// Training of Language Models") and OpenDiLoCo. Vocabulary:
//   replica        - every rank holds the whole model and its OWN inner AdamW (m, v, t), never averaged.
//   inner step     - one AdamW step of a replica on its slice of the global batch (rankMicroBatches with
//                    rank/world, as DDP), with NO communication. The coordinator's "step" is an inner step,
//                    so losses per step, faults and checkpoints work as for the other strategies.
//   outer step     - every H-th inner step (and the run's last, so that a run ends on the global model):
//                    the ranks average their pseudo-gradients and take one Nesterov SGD step on the
//                    global model, after which every replica's parameters are the global model's.
//   global model   - theta_outer, the parameters of the last outer step; with the outer momentum v it
//                    lives on every rank, identical (every rank computes the same update from the same
//                    average).
//   pseudo-gradient- delta_r = theta_outer - theta_r: how far replica r moved in its H inner steps.
// The outer step (PyTorch SGD with nesterov=True, dampening 0):
//   avg = mean_r delta_r;  v <- mu v + avg;  theta_outer <- theta_outer - lr_outer (avg + mu v)
// With H = 1, lr_outer = 1 and mu = 0, theta_outer becomes the mean of the replicas after one local step.
// What moves: per outer step one all-reduce of P pseudo-gradient values; nothing between outer steps.
//   none  fp32, the collectives' own all-reduce: 2(N-1)/N x 4P bytes sent per rank on a ring.
//   fp16  IEEE half precision (round to nearest even, saturating at 65504), 2 bytes a value.
//   int8  253 levels in [-126, 126] per block of INT8_BLOCK values with one fp32 scale (max |x| / 126),
//         1 byte a value + 4 bytes per block. The byte code skips 0x7f and 0xff, so no 4-byte word of
//         a packed message is ever a NaN or an infinity: any transport (even one that checks float
//         payloads) carries it as it is.
// Compressed values travel as such, on a ring of point-to-point messages (send/recv to the neighbours):
// a reduce-scatter (N-1 hops; each hop's partial sum is decoded, this rank's own fp32 values added, and
// encoded again for the next hop), then the owner of each chunk encodes its mean once and an all-gather
// (N-1 hops) passes those bytes on unchanged. Every rank decodes the same bytes, so the average is
// identical, bit for bit, on every rank. Sent per rank: 2(N-1)/N x P x bytes per value (dilocoOuterBytes).
// Per step, on average, that / H; DDP sends 2(N-1)/N x 4P every step.

import { chunkBounds, type Collectives } from './collectives';

export type OuterCompress = 'none' | 'fp16' | 'int8';
export const OUTER_COMPRESSIONS: readonly OuterCompress[] = ['none', 'fp16', 'int8'];

export interface DiLoCoSettings {
  innerSteps: number; // H
  outerLr: number;
  outerMomentum: number;
  outerCompress: OuterCompress;
}

/** int8: values per fp32 scale. */
export const INT8_BLOCK = 256;
const INT8_LEVELS = 126; // q in [-126, 126]

/** Bytes a value of the pseudo-gradient takes on the wire (int8: with its share of the block's scale). */
export function bytesPerValue(kind: OuterCompress): number {
  return kind === 'none' ? 4 : kind === 'fp16' ? 2 : 1 + 4 / INT8_BLOCK;
}

/** What each rank sends per outer step, on a ring: 2(N-1)/N x P x bytes per value (0 for one worker). */
export function dilocoOuterBytes(P: number, N: number, kind: OuterCompress): number {
  return N > 1 ? (2 * (N - 1) / N) * P * bytesPerValue(kind) : 0;
}

/** The outer Nesterov step, in place (PyTorch SGD, nesterov=True): v <- mu v + d; theta <- theta - lr (d + mu v). */
export function outerNesterov(theta: Float32Array, v: Float32Array, avg: Float32Array, lr: number, mu: number): void {
  if (theta.length !== v.length || theta.length !== avg.length) throw new Error(`outer step: ${theta.length} parameters, ${v.length} momenta, ${avg.length} pseudo-gradients`);
  for (let i = 0; i < theta.length; i++) {
    const m = mu * v[i] + avg[i];
    v[i] = m;
    theta[i] -= lr * (avg[i] + mu * m);
  }
}

// ---- fp16 ------------------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE half bits, round to nearest even; saturates at +-65504 (NaN stays NaN). */
export function toHalf(x: number): number {
  f32[0] = x;
  const f = u32[0];
  const sign = (f >>> 16) & 0x8000;
  const e = (f >>> 23) & 0xff;
  let m = f & 0x7fffff;
  if (e === 0xff) return m ? sign | 0x7e00 : sign | 0x7bff;
  const he = e - 127 + 15;
  if (he >= 0x1f) return sign | 0x7bff;
  if (he <= 0) {
    if (he < -10) return sign; // below half the smallest subnormal
    m |= 0x800000;
    const shift = 14 - he;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (he << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  if (h >= 0x7c00) h = 0x7bff; // rounded up to infinity: saturate
  return sign | h;
}

let halfTable: Float32Array | null = null;
/** Half bits -> float32, by a table of all 65536 values. */
function halves(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    halfTable[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + m / 1024);
  }
  return halfTable;
}

export function fromHalf(h: number): number {
  return halves()[h & 0xffff];
}

// ---- packing: a chunk of n values as whole fp32 words, what send/recv carry --------------------------

/** Floats (4-byte words) of one packed chunk of n values. */
export function packedFloats(n: number, kind: Exclude<OuterCompress, 'none'>): number {
  return kind === 'fp16' ? Math.ceil(n / 2) : Math.ceil(n / INT8_BLOCK) + Math.ceil(n / 4);
}

const encodeByte = (q: number) => (q <= 0 ? q + 126 : q + 127); // [-126, 0] -> [0, 126], [1, 126] -> [128, 253]
const decodeByte = (b: number) => (b <= 126 ? b - 126 : b - 127);

/** Encodes x (fp16, or int8 with a scale per INT8_BLOCK values) into packedFloats(x.length) words. */
export function pack(x: Float32Array, kind: Exclude<OuterCompress, 'none'>): Float32Array {
  const n = x.length;
  const out = new Float32Array(packedFloats(n, kind));
  if (kind === 'fp16') {
    const h = new Uint16Array(out.buffer, 0, n);
    for (let i = 0; i < n; i++) h[i] = toHalf(x[i]);
    return out;
  }
  const blocks = Math.ceil(n / INT8_BLOCK);
  const q = new Uint8Array(out.buffer, 4 * blocks, n);
  for (let b = 0; b < blocks; b++) {
    const lo = b * INT8_BLOCK;
    const hi = Math.min(n, lo + INT8_BLOCK);
    let max = 0;
    for (let i = lo; i < hi; i++) max = Math.max(max, Math.abs(x[i]));
    if (!Number.isFinite(max)) throw new Error(`int8 compression: a pseudo-gradient value is not finite (block ${b})`);
    const scale = Math.fround(max / INT8_LEVELS);
    out[b] = scale;
    for (let i = lo; i < hi; i++) {
      const v = scale > 0 ? Math.round(x[i] / scale) : 0;
      q[i] = encodeByte(Math.max(-INT8_LEVELS, Math.min(INT8_LEVELS, v)));
    }
  }
  return out;
}

/** Decodes a packed chunk of n values into out (n floats). */
export function unpack(words: Float32Array, n: number, kind: Exclude<OuterCompress, 'none'>, out: Float32Array = new Float32Array(n)): Float32Array {
  if (words.length !== packedFloats(n, kind)) throw new Error(`a packed ${kind} chunk of ${n} values has ${packedFloats(n, kind)} words, got ${words.length}`);
  if (kind === 'fp16') {
    const h = new Uint16Array(words.buffer, words.byteOffset, n);
    const t = halves();
    for (let i = 0; i < n; i++) out[i] = t[h[i]];
    return out;
  }
  const blocks = Math.ceil(n / INT8_BLOCK);
  const q = new Uint8Array(words.buffer, words.byteOffset + 4 * blocks, n);
  for (let i = 0; i < n; i++) out[i] = decodeByte(q[i]) * words[Math.floor(i / INT8_BLOCK)];
  return out;
}

/** x through the wire format and back: what a value becomes when compressed. */
export function roundTrip(x: Float32Array, kind: OuterCompress): Float32Array {
  return kind === 'none' ? x.slice() : unpack(pack(x, kind), x.length, kind);
}

/**
 * In place: x becomes the mean over ranks, identical on every rank. 'none': the collectives' all-reduce
 * (fp32); fp16 / int8: a ring of compressed messages (see the header). Every rank must call it with
 * the same length and kind.
 */
export async function allReduceMeanCompressed(coll: Collectives, x: Float32Array, kind: OuterCompress): Promise<Float32Array> {
  const N = coll.world;
  if (kind === 'none') return coll.allReduceMean(x);
  if (N === 1) return x; // nothing moves, nothing is rounded
  const r = coll.rank;
  const P = x.length;
  const mod = (i: number) => ((i % N) + N) % N;
  const next = mod(r + 1);
  const prev = mod(r - 1);
  const bounds = (c: number) => chunkBounds(P, N, c);
  const len = (c: number) => bounds(c)[1] - bounds(c)[0];
  // Reduce-scatter: after N-1 hops this rank holds the sum of chunk r+1 over every rank.
  for (let s = 0; s < N - 1; s++) {
    const [slo, shi] = bounds(mod(r - s));
    await coll.send(pack(x.subarray(slo, shi), kind), next);
    const c = mod(r - s - 1);
    const [lo, hi] = bounds(c);
    const got = unpack(await coll.recv(prev, packedFloats(len(c), kind)), hi - lo, kind);
    for (let i = 0; i < got.length; i++) x[lo + i] += got[i];
  }
  const packed = new Array<Float32Array>(N);
  const own = mod(r + 1);
  const [olo, ohi] = bounds(own);
  const mean = x.subarray(olo, ohi);
  for (let i = 0; i < mean.length; i++) mean[i] /= N;
  packed[own] = pack(mean, kind); // encoded once, by its owner; every rank decodes these same bytes
  // All-gather: the owners' packed means go round unchanged.
  for (let s = 0; s < N - 1; s++) {
    await coll.send(packed[mod(r + 1 - s)].slice(), next); // (send may transfer its buffer)
    const c = mod(r - s);
    packed[c] = await coll.recv(prev, packedFloats(len(c), kind));
  }
  for (let c = 0; c < N; c++) {
    const [lo, hi] = bounds(c);
    unpack(packed[c], hi - lo, kind, x.subarray(lo, hi));
  }
  return x;
}

/**
 * Bytes rank r sends in one compressed outer all-reduce (fp16 / int8): the packed chunks of its
 * reduce-scatter and all-gather hops. About dilocoOuterBytes(P, N, kind) (chunks differ by a value or
 * two, and int8's last block per chunk is partial).
 */
export function compressedBytesSent(P: number, N: number, r: number, kind: Exclude<OuterCompress, 'none'>): number {
  if (N === 1) return 0;
  const mod = (i: number) => ((i % N) + N) % N;
  const words = (c: number) => {
    const [lo, hi] = chunkBounds(P, N, c);
    return packedFloats(hi - lo, kind);
  };
  let w = 0;
  for (let s = 0; s < N - 1; s++) w += words(mod(r - s)) + words(mod(r + 1 - s));
  return 4 * w;
}

/**
 * The outer optimizer a DiLoCo rank keeps: the global model (theta_outer), the outer momentum and the
 * step of the last outer step. Identical on every rank.
 */
export class OuterState {
  readonly momentum: Float32Array;
  constructor(readonly settings: DiLoCoSettings, readonly theta: Float32Array, public step: number, momentum?: Float32Array) {
    if (momentum && momentum.length !== theta.length) throw new Error(`outer momentum has ${momentum.length} values, the model ${theta.length}`);
    this.momentum = momentum ? momentum.slice() : new Float32Array(theta.length);
  }

  /** Whether inner step `step` (1-based, just trained) ends with an outer step: every H-th, and the run's last. */
  due(step: number, maxIters: number): boolean {
    return step % this.settings.innerSteps === 0 || step === maxIters;
  }

  /** Bytes this state holds: the global model and the momentum. */
  get bytes(): number {
    return this.theta.byteLength + this.momentum.byteLength;
  }

  /**
   * One outer step from this replica's parameters after its inner steps (`local`): the pseudo-gradient
   * is averaged over ranks (`average`, the collective), then the Nesterov update. Returns the new global
   * model (a copy, for the replica). The state changes only once the average has arrived, all at once:
   * a failure in the collective leaves the previous outer step's state intact.
   */
  async sync(local: Float32Array, step: number, average: (delta: Float32Array) => Promise<Float32Array>): Promise<Float32Array> {
    const delta = new Float32Array(this.theta.length);
    for (let i = 0; i < delta.length; i++) delta[i] = this.theta[i] - local[i];
    const avg = await average(delta);
    outerNesterov(this.theta, this.momentum, avg, this.settings.outerLr, this.settings.outerMomentum);
    this.step = step;
    return this.theta.slice();
  }
}
