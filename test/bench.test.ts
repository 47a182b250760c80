// `npm run bench` end to end on a small setting: it runs (the browser section in headless Chromium,
// the collectives on worker_threads) and writes bench.json in the documented schema.

import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { gemmAnchor } from '../bench/anchors';
import { aggregate, cpuSlug } from '../bench/record';

/** Every key anywhere in a JSON value. */
const keysOf = (x: unknown): string[] =>
  Array.isArray(x) ? x.flatMap(keysOf) : x && typeof x === 'object' ? Object.entries(x).flatMap(([k, v]) => [k, ...keysOf(v)]) : [];
/** No figure typed in from another run or machine (issue 12): no llm.c (or other) reference key. */
const expectNoReference = (b: unknown) => expect(keysOf(b).filter((k) => /llm_?c|reference/i.test(k))).toEqual([]);

describe('npm run bench', () => {
  it('writes bench.json with memcpy, collectives, runs (with predictions and memory by kind)', () => {
    const json = join(mkdtempSync(join(tmpdir(), 'bench-')), 'bench.json');
    execFileSync('node', [
      '--import', 'tsx', 'bench/run.ts', '--only', 'browser,collectives', '--preset', 'tiny', '--strategies', 'single,ddp,fsdp-full',
      '--workers', '2', '--browser-steps', '4', '--browser-warmup', '1', '--sizes', '1,2', '--coll-workers', '2', '--transports', 'ring,shared', '--json', json,
    ], { stdio: 'pipe', timeout: 240_000 });
    const b = JSON.parse(readFileSync(json, 'utf8'));
    expect(b.memcpy_gbps).toBeGreaterThan(0);
    // ring and shared with registered buffers (as DDP's buckets) and ordinary ones, at each size
    expect(b.collectives.map((c: { transport: string; registered: boolean; mbytes: number }) => `${c.transport} ${c.registered} ${c.mbytes}`))
      .toEqual(['ring true 1', 'ring true 2', 'ring false 1', 'ring false 2', 'shared true 1', 'shared true 2', 'shared false 1', 'shared false 2']);
    for (const c of b.collectives) {
      expect(c).toMatchObject({ transport: expect.any(String), workers: 2 });
      expect(c.busbw_gbps).toBeGreaterThan(0);
    }
    const br = b.browser;
    expect(br.memcpy_gbps).toBeGreaterThan(0);
    expect(br.collectives.map((c: { transport: string; mbytes: number }) => `${c.transport} ${c.mbytes}`)).toEqual(['ring 1', 'ring 2', 'shared 1', 'shared 2']);
    expect(br.runs.map((r: { strategy: string }) => r.strategy)).toEqual(['single', 'ddp', 'fsdp-full']);
    for (const r of br.runs) {
      for (const k of ['tokens_per_s', 'ms_per_step', 'compute_ms', 'comm_ms', 'wait_ms', 'bytes_per_rank', 'predicted_ms_per_step']) expect(typeof r[k], k).toBe('number');
      expect(r.tokens_per_s).toBeGreaterThan(0);
      expect(r.predicted_ms_per_step).toBeGreaterThan(0); // calibrated: FLOP/s from single, alpha and beta from the sizes
      expect(Object.keys(r.memory).sort()).toEqual(['activations_peak', 'buddy', 'comm_buffers', 'gathered_peak', 'grads', 'optimizer', 'params']);
      expect(r.bytes_per_rank).toBe(r.predicted_bytes_per_rank);
      expect(Math.max(...r.losses.map((l: number, i: number) => Math.abs(l - br.runs[0].losses[i])))).toBeLessThan(1e-4);
    }
    expect(br.tracing.on_ms).toBeGreaterThan(0);
    expectNoReference(b);
  }, 300_000);

  it('measures the anchors in the documented schema (tiny sizes), with no typed-in reference figure', () => {
    const json = join(mkdtempSync(join(tmpdir(), 'bench-')), 'bench.json');
    execFileSync('node', [
      '--import', 'tsx', 'bench/run.ts', '--only', 'anchors', '--gemm-sizes', '64,128', '--gemm-repeats', '2', '--matmul-sizes', '64,128', '--matmul-repeats', '2', '--json', json,
    ], { stdio: 'pipe', timeout: 120_000 });
    const b = JSON.parse(readFileSync(json, 'utf8'));
    const a = b.anchors;
    expect(Object.keys(a).sort()).toEqual(['cores', 'gemm', 'gemm_1t_gflops', 'gemm_2t_gflops', 'memcpy_gbps', 'tfjs_wasm_matmul', 'tfjs_wasm_matmul_gflops']);
    expect(a.cores).toBeGreaterThan(0);
    expect(a.memcpy_gbps).toBeGreaterThan(0);
    expect(a.tfjs_wasm_matmul.map((r: { n: number }) => r.n)).toEqual([64, 128]);
    for (const r of a.tfjs_wasm_matmul) expect(r).toEqual({ n: expect.any(Number), repeats: 2, ms: expect.any(Number), gflops: expect.any(Number) });
    expect(a.tfjs_wasm_matmul_gflops).toBe(Math.max(...a.tfjs_wasm_matmul.map((r: { gflops: number }) => r.gflops)));
    expect(typeof a.gemm.available).toBe('boolean');
    if (a.gemm.available) { // python3 with NumPy is on these machines; elsewhere the reason is said instead
      expect(a.gemm.runs.map((r: { threads: number; n: number }) => `${r.threads} ${r.n}`)).toEqual(['1 64', '1 128', '2 64', '2 128']);
      for (const r of a.gemm.runs) {
        expect(Object.keys(r).sort()).toEqual(['gflops', 'gflops_max', 'gflops_min', 'ms', 'n', 'repeats', 'threads']);
        expect(r.gflops_min).toBeLessThanOrEqual(r.gflops);
        expect(r.gflops).toBeLessThanOrEqual(r.gflops_max);
      }
      expect(a.gemm_1t_gflops).toBeGreaterThan(0);
      expect(a.gemm_2t_gflops).toBeGreaterThan(0);
      for (const k of ['python', 'numpy', 'blas']) expect(typeof a.gemm[k], k).toBe('string');
    } else {
      expect(a.gemm.reason).toMatch(/\S/);
      expect(a.gemm_1t_gflops).toBeNull();
    }
    expectNoReference(b);
  }, 150_000);

  it('says why, and goes on, when python3 or NumPy is missing', () => {
    const g = gemmAnchor([64], [1], 1, 'python3-that-does-not-exist');
    expect(g).toEqual({ available: false, reason: expect.stringMatching(/not found/), runs: [] });
  });

  it('keeps no typed-in reference figure in the bench sources', () => {
    const dir = new URL('../bench/', import.meta.url);
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
      expect(readFileSync(new URL(f, dir), 'utf8'), f).not.toMatch(/LLMC_|llmc_reference|vs_llmc/);
    }
  });

  it('records a results file: numbers that differ between runs as median and range, equal ones plain', () => {
    const runs = [
      { preset: 'x', workers: 2, ms: 10, rows: [{ a: 1 }, { a: 4 }], s: null },
      { preset: 'x', workers: 2, ms: 30, rows: [{ a: 3 }, { a: 4 }], s: null },
      { preset: 'x', workers: 2, ms: 20, rows: [{ a: 2 }, { a: 4 }], s: null },
    ];
    expect(aggregate(runs)).toEqual({
      preset: 'x', workers: 2, ms: { median: 20, min: 10, max: 30, n: 3, values: [10, 30, 20] },
      rows: [{ a: { median: 2, min: 1, max: 3, n: 3, values: [1, 3, 2] } }, { a: 4 }], s: null,
    });
    expect(cpuSlug('Intel(R) Xeon(R) Processor')).toBe('intel-xeon-processor');
    expect(cpuSlug('AMD EPYC 7B13 64-Core Processor')).toBe('amd-epyc-7b13-64-core-processor');
  });
});
