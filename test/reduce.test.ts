// The collectives' arithmetic (src/parallel/reduce.ts): the wasm kernel agrees with the JavaScript one, and
// CommMemory stages any mix of operands in and out of its memory correctly.

import { describe, expect, it } from 'vitest';
import { CommMemory, PIECE, jsKernel, wasmKernel } from '../src/parallel/reduce';
import { mulberry32 } from '../src/model/params';

const random = (n: number, seed: number) => {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rand() * 2 - 1);
};

describe('reduce kernels', () => {
  it.each([false, true])('the SIMD kernel equals the JavaScript one bit for bit (shared memory: %s)', (shared) => {
    const memory = new WebAssembly.Memory({ initial: 4, maximum: 4, shared });
    const simd = wasmKernel(memory)!;
    expect(simd).not.toBeNull();
    const js = jsKernel(memory);
    const f = new Float32Array(memory.buffer);
    // lengths around the 16-float unrolled body, operands at offsets that are only 4-byte aligned
    for (const n of [0, 1, 3, 15, 16, 17, 64, 1000, 4099]) {
      for (const [d, a, b] of [[0, 20000, 40000], [4, 20012, 40008], [20000, 20000, 40000]]) {
        for (const s of [1, 0.5, 1 / 3]) {
          f.set(random(n, n + a), a / 4);
          f.set(random(n, n + b), b / 4);
          const before = f.slice();
          simd(d, a, b, n, s);
          const got = f.slice(d / 4, d / 4 + n);
          f.set(before);
          js(d, a, b, n, s);
          expect(got).toEqual(f.slice(d / 4, d / 4 + n));
          // nothing past the end was written
          expect(f[d / 4 + n]).toBe(before[d / 4 + n]);
        }
      }
    }
  });
});

describe('CommMemory', () => {
  const n = 2 * PIECE + 123; // more than one scratch piece
  const reference = (a: Float32Array, b: Float32Array, s: number) => Float32Array.from(a, (x, i) => Math.fround(Math.fround(x + b[i]) * Math.fround(s)));

  it.each([true, false])('addScaled on operands in and out of its memory, in place or not (SIMD: %s)', (simd) => {
    const a0 = random(n, 1);
    const b0 = random(n, 2);
    const expected = reference(a0, b0, 0.5);
    for (const where of ['aaa', 'aao', 'aoa', 'oaa', 'aoo', 'oao', 'ooa', 'ooo']) {
      const mem = CommMemory.local(3 * n + 64, simd ? undefined : null); // 'a': in it; 'o': outside
      expect(mem.simd).toBe(simd);
      const make = (flag: string, init: Float32Array) => {
        const x = flag === 'a' ? mem.alloc(n) : new Float32Array(n);
        x.set(init);
        return x;
      };
      const dst = make(where[0], new Float32Array(n));
      const a = make(where[1], a0);
      const b = make(where[2], b0);
      mem.addScaled(dst, a, b, 0.5);
      expect(dst).toEqual(expected);
      mem.addScaled(a, a, b, 0.5); // in place
      expect(a).toEqual(expected);
    }
  });

  it('mean over N sources, the output being the first of them', () => {
    const mem = CommMemory.local(0);
    for (const N of [1, 2, 3, 5]) {
      const xs = Array.from({ length: N }, (_, j) => random(1000, j));
      const expected = Float32Array.from(xs[0], (_, i) => xs.reduce((s, x) => s + x[i], 0) / N);
      const out = xs[0].slice();
      mem.mean(out, [out, ...xs.slice(1)]);
      for (let i = 0; i < out.length; i++) expect(Math.abs(out[i] - expected[i])).toBeLessThan(1e-6);
    }
  });

  it('alloc() is zeroed, aligned, inside the region, and ordinary once the region is full', () => {
    const mem = CommMemory.local(100);
    const a = mem.alloc(10);
    const b = mem.alloc(30);
    expect([mem.regionOffset(a), mem.regionOffset(b)]).toEqual([0, 64]);
    expect(b.every((x) => x === 0)).toBe(true);
    const c = mem.alloc(100); // does not fit
    expect(mem.holds(c)).toBe(false);
    expect(mem.regionOffset(c)).toBe(-1);
    expect(mem.regionOffset(b.subarray(5, 9))).toBe(64 + 20);
  });
});
