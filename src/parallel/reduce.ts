// Where the collectives do their arithmetic: one WebAssembly.Memory per rank (or one shared by all ranks,
// for the shared transport), holding
//   - registered buffers: what alloc() hands out, DDP's gradient buckets. The collectives reduce these
//     where they lie (NCCL calls this user buffer registration); anything else is staged through
//   - scratch: two pieces of PIECE floats, small enough to stay in a core's L2 cache.
// The sums themselves run in reduce.wat's SIMD kernel, several times faster than a JavaScript loop over
// Float32Arrays (~1 ns per element here); where WebAssembly SIMD is missing, a JavaScript kernel with the
// same contract takes its place.

import { REDUCE_WASM_BASE64, REDUCE_WASM_SHARED_BASE64 } from './reduce-wasm';
import { instantiate } from '../util/wasm';

/** Floats in one scratch piece (256 KB). */
export const PIECE = 1 << 16;
const ALIGN = 64; // bytes: registered buffers start on a cache line
const PAGE = 65536;

/** dst[i] = (a[i] + b[i]) * s for i < n; pointers are byte offsets into the memory. */
export type Kernel = (dst: number, a: number, b: number, n: number, s: number) => void;

export const pages = (bytes: number) => Math.ceil(bytes / PAGE);
export const alignUp = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

const isShared = (m: WebAssembly.Memory) => typeof SharedArrayBuffer !== 'undefined' && m.buffer instanceof SharedArrayBuffer;

/** The SIMD kernel over `memory`, or null where this engine lacks WebAssembly SIMD. */
export function wasmKernel(memory: WebAssembly.Memory): Kernel | null {
  const exports = instantiate(isShared(memory) ? REDUCE_WASM_SHARED_BASE64 : REDUCE_WASM_BASE64, memory);
  return exports ? (exports.add_scaled as Kernel) : null;
}

/**
 * The same contract in JavaScript, in float32 arithmetic as the kernel's (each sum and product rounded):
 * the fallback, and the reference the tests hold the kernel to, bit for bit.
 */
export function jsKernel(memory: WebAssembly.Memory): Kernel {
  return (dst, a, b, n, s) => {
    const f = new Float32Array(memory.buffer);
    const [d, x, y, s32] = [dst >>> 2, a >>> 2, b >>> 2, Math.fround(s)];
    for (let i = 0; i < n; i++) f[d + i] = Math.fround(f[x + i] + f[y + i]) * s32;
  };
}

export interface CommMemoryLayout {
  region: [number, number]; // bytes [lo, hi) for this rank's registered buffers
  scratch: number; // byte offset of this rank's two scratch pieces (2 x PIECE floats)
}

/** Bytes of a rank's own memory with `registered` floats of registered buffers. */
function localLayout(registered: number): CommMemoryLayout & { bytes: number } {
  const hi = alignUp(registered * 4);
  return { region: [0, hi], scratch: hi, bytes: hi + 2 * PIECE * 4 };
}

export class CommMemory {
  readonly kernel: Kernel;
  readonly simd: boolean;
  private top: number; // bump pointer of the registered region

  constructor(readonly memory: WebAssembly.Memory, readonly layout: CommMemoryLayout, kernel: Kernel | null = wasmKernel(memory)) {
    this.simd = kernel !== null;
    this.kernel = kernel ?? jsKernel(memory);
    this.top = layout.region[0];
    if (layout.scratch + 2 * PIECE * 4 > memory.buffer.byteLength || layout.region[1] > memory.buffer.byteLength) {
      throw new Error(`communication memory of ${memory.buffer.byteLength} bytes is smaller than its layout`);
    }
  }

  /** A rank's own (unshared) memory with room for `registered` floats of registered buffers. */
  static local(registered = 0, kernel?: Kernel | null): CommMemory {
    const l = localLayout(registered);
    const memory = new WebAssembly.Memory({ initial: pages(l.bytes), maximum: pages(l.bytes) });
    return new CommMemory(memory, l, kernel === undefined ? wasmKernel(memory) : kernel);
  }

  /**
   * A zeroed buffer of n floats: registered (in this memory, reduced in place) while the region has
   * room, an ordinary Float32Array after that. Every rank must allocate the same sizes in the same order.
   */
  alloc(n: number): Float32Array {
    const bytes = alignUp(n * 4);
    if (n === 0 || this.top + bytes > this.layout.region[1]) return new Float32Array(n);
    const buf = new Float32Array(this.memory.buffer, this.top, n);
    buf.fill(0);
    this.top += bytes;
    return buf;
  }

  /** Whether x lies in this memory (so the kernel reads it where it is). */
  holds(x: Float32Array): boolean {
    return x.buffer === this.memory.buffer;
  }

  /** Offset of a registered buffer within this rank's region (the same on every rank), or -1. */
  regionOffset(x: Float32Array): number {
    const [lo, hi] = this.layout.region;
    return this.holds(x) && x.byteOffset >= lo && x.byteOffset + x.byteLength <= hi ? x.byteOffset - lo : -1;
  }

  /** A view of n floats at a byte offset of this memory. */
  view(byteOffset: number, n: number): Float32Array {
    return new Float32Array(this.memory.buffer, byteOffset, n);
  }

  /** out = the element-wise mean of the sources, copied into each of `also`; out may be sources[0] or [1]. */
  mean(out: Float32Array, sources: Float32Array[], also: Float32Array[] = []): void {
    const N = sources.length;
    if (N === 1) {
      if (out !== sources[0]) out.set(sources[0]);
      for (const x of also) x.set(out);
      return;
    }
    for (let j = 1; j < N; j++) this.addScaled(out, j === 1 ? sources[0] : out, sources[j], j === N - 1 ? 1 / N : 1, j === N - 1 ? also : []);
  }

  /**
   * dst = (a + b) * s, element-wise, for Float32Arrays of one length anywhere; dst may be a or b. Operands
   * in this memory are used where they lie; others are copied through the scratch pieces. The result is
   * also copied into each of `also`, piece by piece while it is still in cache.
   */
  addScaled(dst: Float32Array, a: Float32Array, b: Float32Array, s: number, also: Float32Array[] = []): void {
    const n = dst.length;
    if ([a, b, ...also].some((x) => x.length !== n)) {
      throw new Error(`addScaled: lengths differ (${[dst, a, b, ...also].map((x) => x.length).join(', ')})`);
    }
    const s0 = this.layout.scratch;
    const s1 = s0 + PIECE * 4;
    for (let o = 0; o < n; o += PIECE) {
      const len = Math.min(PIECE, n - o);
      const place = (x: Float32Array, scratch: number) => {
        if (this.holds(x)) return x.byteOffset + o * 4;
        this.view(scratch, len).set(x.subarray(o, o + len));
        return scratch;
      };
      const pa = place(a, s0);
      const pb = b === a ? pa : place(b, s1);
      const pd = this.holds(dst) ? dst.byteOffset + o * 4 : s0;
      this.kernel(pd, pa, pb, len, s);
      const result = this.view(pd, len);
      if (!this.holds(dst)) dst.set(result, o);
      for (const x of also) x.set(result, o);
    }
  }
}
