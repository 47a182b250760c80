// The committed WebAssembly binaries (src/**/*-wasm.ts) are what their .wat sources compile to.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TARGETS, wasmSource } from '../scripts/build-wasm';

describe('generated WebAssembly', () => {
  it.each(TARGETS.map((t) => [t.out, t] as const))('%s is up to date with its .wat (else run `npm run build:wasm`)', async (out, t) => {
    expect(readFileSync(new URL(`../${out}`, import.meta.url), 'utf8')).toBe(await wasmSource(t));
  });
});
