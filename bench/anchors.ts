// The machine's own limits, measured in the same run as the trainer (`npm run bench -- --only anchors`,
// and first by default), so that every step figure can be read as a share of what this machine does:
//
//   gemm         float32 GEMM (C = A @ B, n x n) through NumPy's BLAS (OpenBLAS here) at 1 and 2 threads
//                (OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = MKL_NUM_THREADS = t, set per run: one python3
//                process per thread count, scripts/anchors.py), median of repeats, GFLOP/s = 2 n^3 / t.
//                If python3 or NumPy is missing, `available: false` and the reason; the bench goes on.
//   memcpy       bytes copied per second by Float32Array.set of 64 MB (bench/collectives.ts memcpyGbps).
//   tfjs matmul  the best 2-D tf.matMul GFLOP/s of tfjs's wasm backend (XNNPACK, SIMD, 1 thread in Node)
//                over a few square sizes, median of repeats each: the fastest kernel the trainer has.
//
// Schema (bench.json `anchors`, and each repeat in a results file):
//   { cores, gemm: { available, reason?, python?, numpy?, blas?, runs: [{ threads, n, repeats, ms, gflops,
//     gflops_min, gflops_max }] }, gemm_1t_gflops, gemm_2t_gflops (best size's median at that thread count,
//     null when unavailable), memcpy_gbps, tfjs_wasm_matmul_gflops (best size's median),
//     tfjs_wasm_matmul: [{ n, repeats, ms, gflops }] }

import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../src/backend/node';
import { median } from '../src/util/stats';
import { memcpyGbps } from './collectives';

export interface GemmRun {
  threads: number;
  n: number;
  repeats: number;
  ms: number; // median
  gflops: number; // 2 n^3 / median time
  gflops_min: number;
  gflops_max: number;
}

export interface GemmAnchor {
  available: boolean;
  reason?: string; // why not, when unavailable
  python?: string;
  numpy?: string;
  blas?: string;
  runs: GemmRun[];
}

export interface Anchors {
  cores: number;
  gemm: GemmAnchor;
  gemm_1t_gflops: number | null;
  gemm_2t_gflops: number | null;
  memcpy_gbps: number;
  tfjs_wasm_matmul_gflops: number;
  tfjs_wasm_matmul: { n: number; repeats: number; ms: number; gflops: number }[];
}

export interface AnchorOptions {
  gemmSizes?: number[];
  gemmThreads?: number[];
  gemmRepeats?: number;
  matmulSizes?: number[];
  matmulRepeats?: number;
  python?: string;
}

const SCRIPT = fileURLToPath(new URL('../scripts/anchors.py', import.meta.url));

/** float32 GEMM through NumPy, one python3 process per thread count. Never throws: unavailable instead. */
export function gemmAnchor(sizes: number[], threads: number[], repeats: number, python = process.env.PYTHON ?? 'python3'): GemmAnchor {
  const runs: GemmRun[] = [];
  let info: Pick<GemmAnchor, 'python' | 'numpy' | 'blas'> = {};
  for (const t of threads) {
    const env = { ...process.env, OPENBLAS_NUM_THREADS: String(t), OMP_NUM_THREADS: String(t), MKL_NUM_THREADS: String(t) };
    let stdout: string;
    try {
      stdout = execFileSync(python, [SCRIPT, '--sizes', sizes.join(','), '--repeats', String(repeats)], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
      let reason = err.code === 'ENOENT' ? `${python} was not found` : `${python} ${SCRIPT} failed: ${(err.stderr || err.message).trim().split('\n').at(-1)}`;
      try {
        const j = JSON.parse(err.stdout ?? '') as { error?: string };
        if (j.error) reason = j.error;
      } catch {
        // not JSON: keep the message
      }
      return { available: false, reason, runs: [] };
    }
    const j = JSON.parse(stdout) as { python: string; numpy: string; blas: string; sizes: Omit<GemmRun, 'threads'>[] };
    info = { python: j.python, numpy: j.numpy, blas: j.blas };
    for (const s of j.sizes) runs.push({ threads: t, n: s.n, repeats: s.repeats, ms: s.ms, gflops: s.gflops, gflops_min: s.gflops_min, gflops_max: s.gflops_max });
  }
  return { available: true, ...info, runs };
}

/** The best size's median GFLOP/s at `threads`, or null. */
export function gemmBest(g: GemmAnchor, threads: number): number | null {
  const r = g.runs.filter((x) => x.threads === threads);
  return g.available && r.length ? Math.max(...r.map((x) => x.gflops)) : null;
}

/** 2-D tf.matMul on the current backend: median of `repeats` after one warm-up call, per size. */
export async function tfjsMatmul(sizes: number[], repeats: number): Promise<{ n: number; repeats: number; ms: number; gflops: number }[]> {
  const rows = [];
  for (const n of sizes) {
    const a = tf.randomNormal([n, n]);
    const b = tf.randomNormal([n, n]);
    const times: number[] = [];
    for (let i = 0; i < repeats + 1; i++) {
      const t0 = performance.now();
      const c = tf.matMul(a, b);
      await c.data();
      times.push(performance.now() - t0);
      c.dispose();
    }
    tf.dispose([a, b]);
    const ms = median(times, 1);
    rows.push({ n, repeats, ms, gflops: (2 * n ** 3) / (ms / 1000) / 1e9 });
  }
  return rows;
}

/** All anchors. Switches tfjs to the wasm backend. */
export async function measureAnchors(o: AnchorOptions = {}): Promise<Anchors> {
  const { gemmSizes = [1024, 2048], gemmThreads = [1, 2], gemmRepeats = 7, matmulSizes = [512, 1024, 2048], matmulRepeats = 5 } = o;
  const gemm = gemmAnchor(gemmSizes, gemmThreads, gemmRepeats, o.python);
  const memcpy = memcpyGbps();
  await initNodeBackend('wasm');
  const mm = await tfjsMatmul(matmulSizes, matmulRepeats);
  return {
    cores: availableParallelism(),
    gemm,
    gemm_1t_gflops: gemmBest(gemm, 1),
    gemm_2t_gflops: gemmBest(gemm, 2),
    memcpy_gbps: memcpy,
    tfjs_wasm_matmul_gflops: Math.max(...mm.map((r) => r.gflops)),
    tfjs_wasm_matmul: mm,
  };
}

/** Markdown lines for the anchors (printed by the bench). */
export function anchorLines(a: Anchors): string[] {
  const f = (x: number | null, d = 1) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const lines = [`## anchors\n\nthis machine's own limits, measured in this run (${a.cores} cores)\n`];
  if (a.gemm.available) {
    lines.push(`float32 GEMM, NumPy ${a.gemm.numpy} (${a.gemm.blas}), python ${a.gemm.python}; GFLOP/s = 2n³ / median time (min-max over ${a.gemm.runs[0]?.repeats} calls)\n`);
    lines.push('| threads | n | ms | GFLOP/s | range |', '|---|---|---|---|---|');
    for (const r of a.gemm.runs) lines.push(`| ${r.threads} | ${r.n} | ${f(r.ms, 2)} | ${f(r.gflops)} | ${f(r.gflops_min)}-${f(r.gflops_max)} |`);
  } else {
    lines.push(`float32 GEMM through NumPy: not measured: ${a.gemm.reason}`);
  }
  lines.push('', `tfjs wasm 2-D tf.matMul (XNNPACK, 1 thread): ${a.tfjs_wasm_matmul.map((r) => `${r.n}²: ${f(r.gflops)}`).join(', ')} GFLOP/s; best ${f(a.tfjs_wasm_matmul_gflops)}`);
  lines.push(`memcpy (Float32Array.set of 64 MB): ${f(a.memcpy_gbps, 2)} GB/s`);
  lines.push(`anchors: GEMM 1 thread ${f(a.gemm_1t_gflops)} GFLOP/s, GEMM 2 threads ${f(a.gemm_2t_gflops)} GFLOP/s, tfjs-wasm matmul ${f(a.tfjs_wasm_matmul_gflops)} GFLOP/s, memcpy ${f(a.memcpy_gbps, 2)} GB/s`);
  return lines;
}
