// `npm run bench`: how fast this trainer runs, measured side by side in one run, against this machine's
// own limits measured in the same run. Sections:
//
//   anchors      (first) the machine's limits (bench/anchors.ts): float32 GEMM through NumPy/OpenBLAS at 1
//                and 2 threads, memcpy, tfjs-wasm's best 2-D matmul. The speed and scaling sections report
//                their achieved GFLOP/s as a share of each (only anchors measured in this run count: no
//                reference figure is typed in anywhere).
//   browser      the page's own runtime in headless Chromium with real Web Workers (bench/browser.ts):
//                memcpy and the collectives' bus bandwidth, then single, DDP and FSDP on the same global
//                batch: tokens/s, compute / comm / wait, bytes per rank, memory by kind, losses, and
//                the cost model's predicted step time beside the measured one (the page's figures).
//   speed        per backend, one worker in this thread: ms per training step of `shakespeare-cpu` at
//                batch 12 (median after warm-up), tokens/s, achieved GFLOP/s (FLOPs per token
//                6N + 12*L*H*Q*T, nanoGPT's estimate_mfu) and that as a share of the same backend's
//                1024x1024 matmul GFLOP/s, of GEMM on 1 thread and of tfjs-wasm's best matmul (anchors);
//                then, for the first fast backend (wasm), where a step's time goes per kernel (tf.profile of one step).
//   collectives  all-reduce bus bandwidth (nccl-tests' busbw) of ring, star and shared at 1-64 MB with
//                N = 2, 4 real worker_threads, on registered buffers (as DDP's buckets) and ordinary
//                ones, against memcpy bandwidth measured in the same run.
//   scaling      tokens/s of DDP on 2 wasm worker_threads against 1 at the same per-worker batch, per
//                transport, through Coordinator + spawnNodeWorker; each rank's compute / comm / wait,
//                the wait split into communication and waiting for the slowest rank.
//   fsdp         FSDP on real worker_threads (bench/fsdp.ts): memory per worker at rest and at the peak
//                for baby at N = 4 against DDP; tokens/s against DDP at N = 2 with and without prefetch;
//                bytes per step per rank against the analytic figures; the cost model's predicted step
//                time against the measured one.
//   gpu          (only with --only gpu) WebGPU counts per training step for single, DDP and FSDP on 2
//                worker_threads (each its own Dawn device): kernel dispatches, synchronous and asynchronous
//                readbacks, bytes read back and uploaded (bench/gpu-counters.ts), with what each readback
//                is for. On this machine WebGPU is SwiftShader (a CPU emulation): counts, not speed. The
//                speed bench for a real GPU is bench/gpu-main.ts (npm run bench:gpu, npm run gpu-pack).
//
// Writes everything to bench.json: each section's results, and `runs`, one entry per distributed run
// (scaling and fsdp) in one shape. A run of some sections (--only) keeps the other sections' results
// already in the file.
//
// `npm run bench -- --results` records this machine's results file instead (bench/record.ts): the bench
// repeated, each figure as a median with its range, in bench/results/<cpu>-<cores>c-<date>.json;
// `npm run bench -- --tables FILE [--readme]` prints (or writes into README.md) the README's tables
// from such a file (bench/tables.ts).
//
//   npm run bench -- [--only anchors,browser,speed,collectives,scaling,fsdp] [--preset shakespeare-cpu] [--json bench.json]
//     anchors:      [--gemm-sizes 1024,2048] [--gemm-threads 1,2] [--gemm-repeats 7] [--matmul-sizes 512,1024,2048]
//     browser:      [--backend wasm] [--strategies single,ddp,fsdp-full,fsdp-grad_op] [--workers 2]
//                   [--transport ring] [--browser-steps 12] [--browser-warmup 3]
//     speed:        [--backends wasm,cpu,webgpu] [--steps 12]
//     collectives:  [--sizes 1,4,16,64] [--coll-workers 2,4] [--transports ring,star,shared] (browser too)
//     scaling/fsdp: [--scaling-steps 15] [--scaling-warmup 3] [--fsdp-steps 12] [--fsdp-warmup 3]
//                   [--fsdp-baby-steps 4] [--fsdp-baby-warmup 1]
//     gpu:          [--gpu-preset tiny] [--gpu-strategies single,ddp,fsdp] [--gpu-steps 2] [--gpu-warmup 1]

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend, NODE_BACKENDS, type NodeBackend } from '../src/backend/node';
import { makeConfig, type RunConfig } from '../src/model/config';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { median } from '../src/util/stats';
import { TRANSPORTS, type TransportKind } from '../src/parallel/collectives';
import { memcpyGbps, primitivesGbps, runTransport, type CollectiveRow } from './collectives';
import { runScaling, type ScalingRow } from './scaling';
import { anchorLines, measureAnchors, tfjsMatmul, type Anchors } from './anchors';
import { runFsdp, type RunEntry } from './fsdp';
import { flopsPerToken, predict, type Calibration } from '../src/parallel/costmodel';
import { DEFAULT_BUCKET_MB } from '../src/parallel/layout';
import { browserRunEntries, runBrowserBench, printBrowserBench } from './browser';
import type { BackendName } from '../src/model/config';

const SECTIONS = ['anchors', 'browser', 'speed', 'collectives', 'scaling', 'fsdp', 'gpu'] as const;
const DEFAULT_SECTIONS = SECTIONS.filter((s) => s !== 'gpu'); // gpu: only when asked (SwiftShader is slow)

const USAGE = `Usage: npm run bench -- [options]

Measures this trainer side by side and writes bench.json. Sections (all but gpu by default):
  anchors      this machine's limits in this run: NumPy/OpenBLAS float32 GEMM at 1 and 2 threads, memcpy,
               tfjs-wasm's best 2-D matmul (the speed and scaling sections report shares of them)
  browser      the page's runtime in headless Chromium with real Web Workers: single, DDP, FSDP
  speed        ms per training step per backend, one worker in this thread
  collectives  all-reduce bus bandwidth of ring, star and shared on worker_threads
  scaling      DDP on 2 wasm worker_threads against 1
  fsdp         FSDP memory, throughput, bytes and the cost model on worker_threads
  gpu          WebGPU counts per step (dispatches, sync/async readbacks, bytes) for single, DDP, FSDP

  --only LIST          sections to run, comma-separated (${SECTIONS.join(',')}); the file keeps the others'
  --preset NAME        model preset (default shakespeare-cpu)
  --json FILE          where to write the results (default bench.json)
  --results            record this machine's results file instead: bench/record.ts (--repeats 3,
                       --results-dir bench/results, --results-name NAME, --quick for a short trial)
  --tables FILE        print the README's tables from a results file (--readme: write them into README.md)
  anchors:     --gemm-sizes 1024,2048  --gemm-threads 1,2  --gemm-repeats 7  --matmul-sizes 512,1024,2048
  browser:     --backend wasm  --strategies single,ddp,fsdp-full,fsdp-grad_op  --workers 2
               --transport ring  --browser-steps 12  --browser-warmup 3
  speed:       --backends wasm,cpu[,webgpu]  --steps 12  --warmup 2
  collectives: --sizes 1,4,16,64 (MB)  --coll-workers 2,4  --transports ${TRANSPORTS.join(',')} (browser too)
  scaling:     --scaling-steps 15  --scaling-warmup 3
  fsdp:        --fsdp-steps 12  --fsdp-warmup 3  --fsdp-baby-steps 4  --fsdp-baby-warmup 1
  gpu:         --gpu-preset tiny  --gpu-strategies single,ddp,fsdp  --gpu-steps 2  --gpu-warmup 1
  -h, --help           show this help

Example: npm run bench -- --only speed,collectives --preset tiny --json /tmp/bench.json`;

/** A bad flag: one line and exit code 2, as the CLI (no stack trace). */
function usageError(message: string): never {
  console.error(`error: ${message} (see \`npm run bench -- --help\`)`);
  process.exit(2);
}

function parseFlags() {
  try {
    return parseArgs({
      options: {
        only: { type: 'string', default: DEFAULT_SECTIONS.join(',') },
        backends: { type: 'string', default: 'wasm,cpu' },
        preset: { type: 'string', default: 'shakespeare-cpu' },
        steps: { type: 'string', default: '12' },
        warmup: { type: 'string', default: '2' },
        json: { type: 'string', default: 'bench.json' },
        profile: { type: 'boolean', default: true },
        sizes: { type: 'string', default: '1,4,16,64' },
        'coll-workers': { type: 'string', default: '2,4' },
        transports: { type: 'string', default: TRANSPORTS.join(',') },
        'scaling-steps': { type: 'string', default: '15' },
        'scaling-warmup': { type: 'string', default: '3' },
        'fsdp-steps': { type: 'string', default: '12' },
        'fsdp-warmup': { type: 'string', default: '3' },
        'fsdp-baby-steps': { type: 'string', default: '4' },
        'fsdp-baby-warmup': { type: 'string', default: '1' },
        'gpu-preset': { type: 'string', default: 'tiny' },
        'gpu-strategies': { type: 'string', default: 'single,ddp,fsdp' },
        'gpu-steps': { type: 'string', default: '2' },
        'gpu-warmup': { type: 'string', default: '1' },
        // the browser section (the page's runtime in headless Chromium)
        backend: { type: 'string', default: 'wasm' },
        strategies: { type: 'string', default: 'single,ddp,fsdp-full,fsdp-grad_op' },
        workers: { type: 'string', default: '2' },
        transport: { type: 'string', default: 'ring' },
        'browser-steps': { type: 'string', default: '12' },
        'browser-warmup': { type: 'string', default: '3' },
        'gemm-sizes': { type: 'string', default: '1024,2048' },
        'gemm-threads': { type: 'string', default: '1,2' },
        'gemm-repeats': { type: 'string', default: '7' },
        'matmul-sizes': { type: 'string', default: '512,1024,2048' },
        'matmul-repeats': { type: 'string', default: '5' },
        // record a results file / print the README's tables from one
        results: { type: 'boolean', default: false },
        repeats: { type: 'string', default: '3' },
        'results-dir': { type: 'string', default: 'bench/results' },
        'results-name': { type: 'string' },
        quick: { type: 'boolean', default: false },
        tables: { type: 'string' },
        readme: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (!err.code?.startsWith('ERR_PARSE_ARGS')) throw e;
    usageError(err.message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '').replace(/\.$/, ''));
  }
}

const opts = parseFlags();
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}
if (opts.tables) {
  const { printTables } = await import('./tables');
  printTables(opts.tables, { readme: opts.readme });
  process.exit(0);
}
if (opts.results) {
  const { recordResults } = await import('./record');
  const repeats = Number(opts.repeats);
  if (!(Number.isInteger(repeats) && repeats >= 1)) usageError(`--repeats needs a positive integer, got "${opts.repeats}"`);
  await recordResults({ repeats, dir: opts['results-dir'], name: opts['results-name'], quick: opts.quick, preset: opts.preset });
  process.exit(0);
}

function list<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of items) if (!(allowed as readonly string[]).includes(s)) usageError(`--${flag}: unknown "${s}", choose from ${allowed.join(', ')}`);
  return items as T[];
}
const numbers = (flag: string, value: string) =>
  value.split(',').map((s) => {
    const n = Number(s);
    if (!(n > 0)) usageError(`--${flag} needs positive numbers, got "${s}"`);
    return n;
  });

const sections = new Set(list('only', opts.only, SECTIONS));
const transports = list('transports', opts.transports, TRANSPORTS);

/** This backend's 1024x1024 2-D matmul, GFLOP/s (median of `repeats`). */
async function matmulGflops(repeats = 8): Promise<number> {
  return (await tfjsMatmul([1024], repeats))[0].gflops;
}

/** One kernel of a profiled step: calls, total ms, share of the step's kernel time. */
export interface KernelRow { name: string; count: number; ms: number; share: number }

async function trainSpeed(cfg: RunConfig, text: string, steps: number, warmup: number, profile: boolean) {
  const tok = charTokenizer(text);
  const trainer = new Trainer({ ...cfg, vocab_size: tok.vocabSize }, makeDataset(text, tok, cfg.block_size));
  const ms: number[] = [];
  for (let i = 0; i < steps; i++) ms.push((await trainer.trainStep()).ms);
  let prof: { step_ms: number; kernel_ms: number; kernel_calls: number; kernels: KernelRow[] } | null = null;
  if (profile) {
    // one more step under tf.profile: each kernel timed on its own (wasm runs them synchronously)
    const t0 = performance.now();
    const p = await tf.profile(async () => {
      await trainer.trainStep();
    });
    const stepMs = performance.now() - t0;
    const by = new Map<string, [number, number]>();
    for (const k of p.kernels) {
      const e = by.get(k.name) ?? [0, 0];
      e[0] += Number(k.kernelTimeMs) || 0;
      e[1] += 1;
      by.set(k.name, e);
    }
    const total = [...by.values()].reduce((t, [x]) => t + x, 0);
    const kernels = [...by].map(([name, [t, n]]) => ({ name, count: n, ms: t, share: t / total })).sort((x, y) => y.ms - x.ms);
    prof = { step_ms: stepMs, kernel_ms: total, kernel_calls: p.kernels.length, kernels };
  }
  trainer.dispose();
  return { msPerStep: median(ms, warmup), stepMs: ms.slice(warmup), profile: prof };
}

const text = readFileSync(new URL('../public/data/tinyshakespeare.txt', import.meta.url), 'utf8');
const cfg = makeConfig(opts.preset, { vocab_size: 65 });
const tokensPerStep = cfg.batch_size * cfg.grad_accum * cfg.block_size;
const fpt = flopsPerToken(cfg);
const out: Record<string, unknown> = { preset: cfg.preset, flops_per_token: fpt, tokens_per_step: tokensPerStep };
const runs: RunEntry[] = []; // every distributed run of this invocation, in one shape
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const pct = (x: number) => `${x.toFixed(0)}%`;
const pctOr = (x: number | null) => (x === null ? '-' : pct(x));
const thousands = (x: number) => Math.round(x).toLocaleString('en-US');
/** 100 * x / anchor, or null without the anchor (not measured in this run). */
const share = (x: number, anchor: number | null | undefined) => (anchor ? (100 * x) / anchor : null);
const TARGET_GFLOPS = 20; // issue 12: one wasm worker at >= 20 GFLOP/s on shakespeare-cpu (batch 12 x 64)

// ---- anchors: this machine's own limits, in this run -----------------------------------------------
let anchors: Anchors | null = null;
if (sections.has('anchors')) {
  anchors = await measureAnchors({
    gemmSizes: numbers('gemm-sizes', opts['gemm-sizes']), gemmThreads: numbers('gemm-threads', opts['gemm-threads']),
    gemmRepeats: Number(opts['gemm-repeats']), matmulSizes: numbers('matmul-sizes', opts['matmul-sizes']), matmulRepeats: Number(opts['matmul-repeats']),
  });
  console.log(anchorLines(anchors).join('\n'));
  if (!anchors.gemm.available) console.log(`(going on without the GEMM anchor: ${anchors.gemm.reason})`);
  console.log('');
  out.anchors = anchors;
}

// ---- speed: one worker per backend, in this thread ------------------------------------------------
if (sections.has('speed')) {
  const results = [];
  console.log(`## speed\n\npreset ${cfg.preset}: ${cfg.n_layer} layers, n_embd ${cfg.n_embd}, batch ${cfg.batch_size} x ${cfg.block_size}; ${(fpt / 1e6).toFixed(2)} MFLOP per token (nanoGPT's count)` +
    `${anchors ? '' : '; no anchors in this run (--only anchors,speed gives the shares of GEMM and of tfjs-wasm\'s matmul)'}\n`);
  console.log('| backend | ms/step | tokens/s | GFLOP/s | % of GEMM, 1 thread | % of tfjs-wasm best matmul | this backend\'s 1024² matmul GFLOP/s | % of it |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const name of opts.backends.split(',')) {
    if (!(NODE_BACKENDS as readonly string[]).includes(name)) usageError(`--backends: unknown backend "${name}", choose from ${NODE_BACKENDS.join(', ')}`);
    const info = await initNodeBackend(name as NodeBackend);
    const slow = info.name === 'cpu' || info.name === 'webgpu';
    const steps = slow ? Math.min(4, Number(opts.steps)) : Number(opts.steps);
    const warmup = slow ? 1 : Number(opts.warmup);
    const mm = await matmulGflops(slow ? 3 : 8); // plain JS: ~2 s a call
    const { msPerStep, stepMs, profile } = await trainSpeed(cfg, text, steps, warmup, opts.profile && !slow && !results.some((r) => r.profile)); // profile the first fast backend
    const tokensPerSec = (tokensPerStep / msPerStep) * 1000;
    const gflops = (fpt * tokensPerSec) / 1e9;
    const row = {
      backend: info.name, ms_per_step: msPerStep, ms_min: Math.min(...stepMs), ms_max: Math.max(...stepMs), tokens_per_s: tokensPerSec, gflops,
      matmul_gflops: mm, pct_of_matmul: (100 * gflops) / mm,
      pct_of_gemm_1t: share(gflops, anchors?.gemm_1t_gflops), pct_of_tfjs_wasm_matmul: share(gflops, anchors?.tfjs_wasm_matmul_gflops),
      steps, warmup, profile,
    };
    results.push(row);
    console.log(`| ${info.name} | ${msPerStep.toFixed(1)} | ${tokensPerSec.toFixed(0)} | ${gflops.toFixed(1)} | ${pctOr(row.pct_of_gemm_1t)} | ${pctOr(row.pct_of_tfjs_wasm_matmul)} | ${mm.toFixed(1)} | ${pct(row.pct_of_matmul)} |`);
  }
  const first = results.find((r) => r.profile);
  if (first?.profile) {
    const p = first.profile;
    console.log(`\nwhere a ${first.backend} step's time goes (tf.profile of one step: ${f1(p.step_ms)} ms with the profiler on, ${f1(p.kernel_ms)} ms in ${p.kernel_calls} kernel calls):\n`);
    console.log('| kernel | calls | ms | share of kernel time |');
    console.log('|---|---|---|---|');
    for (const k of p.kernels.slice(0, 12)) console.log(`| ${k.name} | ${k.count} | ${f1(k.ms)} | ${pct(100 * k.share)} |`);
  }
  const wasm = results.find((r) => r.backend === 'wasm');
  if (wasm && cfg.preset === 'shakespeare-cpu') {
    console.log(`\ntarget (issue 12): one wasm worker >= ${TARGET_GFLOPS} GFLOP/s on shakespeare-cpu: measured ${f1(wasm.gflops)} (${wasm.gflops >= TARGET_GFLOPS ? 'met' : 'missed'})`);
  }
  out.results = results;
}

// ---- collectives: all-reduce busbw per transport, N worker_threads ---------------------------------
if (sections.has('collectives')) {
  const sizes = numbers('sizes', opts.sizes);
  const worlds = numbers('coll-workers', opts['coll-workers']);
  const memcpy = memcpyGbps();
  const prims = primitivesGbps();
  const rows: CollectiveRow[] = [];
  // registered: buffers from alloc(), what DDP's buckets are; ordinary: any Float32Array, staged (star's
  // ranks have no memory of their own: the hub sums)
  const kinds = transports.flatMap((t) => (t === 'star' ? [[t, false]] : [[t, true], [t, false]]) as [TransportKind, boolean][]);
  for (const [t, reg] of kinds) for (const n of worlds) rows.push(...(await runTransport(t, n, sizes, memcpy, reg)));
  console.log(`\n## collectives\n\nall-reduce bus bandwidth (nccl-tests: busbw = bytes x 2(N-1)/N / time; slowest rank's median), GB/s and % of memcpy`);
  console.log(`memcpy (Float32Array.set of 64 MB, this run): ${f2(memcpy)} GB/s\n`);
  const label = (t: TransportKind, reg: boolean) => (t === 'star' ? t : `${t}, ${reg ? 'registered' : 'ordinary'} buffers`);
  console.log(`| transport | N | ${sizes.map((s) => `${s} MB`).join(' | ')} |`);
  console.log(`|---|---|${sizes.map(() => '---').join('|')}|`);
  for (const [t, reg] of kinds) {
    for (const n of worlds) {
      const cells = sizes.map((s) => rows.find((r) => r.transport === t && r.registered === reg && r.workers === n && r.mbytes === s)!);
      console.log(`| ${label(t, reg)} | ${n} | ${cells.map((r) => `${f2(r.busbw_gbps)} (${pct(r.pct_of_memcpy)})`).join(' | ')} |`);
    }
  }
  const mid = sizes.includes(16) ? 16 : sizes[Math.floor(sizes.length / 2)];
  const at = (t: TransportKind, reg: boolean, n: number) => rows.find((r) => r.transport === t && r.registered === reg && r.workers === n && r.mbytes === mid);
  console.log(`\nshare of the all-reduce time spent on CPU inside collective code (copies, sums, posting) at ${mid} MB: ` +
    kinds.flatMap(([t, reg]) => worlds.map((n) => at(t, reg, n)).filter((r): r is CollectiveRow => !!r).map((r) => `${label(t, reg)} N=${r.workers} ${pct(100 * r.comm_share)}`)).join(', '));
  console.log(`primitives on 16 MB in one thread: set ${f2(prims.set)} GB/s, slice (allocate + copy) ${f2(prims.slice)} GB/s, ` +
    `a[i] += b[i] in JavaScript ${f2(prims.add)} GB/s, the same in WebAssembly SIMD ${f2(prims.simdAdd)} GB/s (bytes of one operand per second)`);
  for (const [t, target] of [['ring', 50], ['shared', 80]] as const) {
    const r = at(t, true, 2);
    if (!r) continue;
    const ok = r.pct_of_memcpy >= target;
    console.log(`target ${t}, N = 2, ${mid} MB (registered buffers, as DDP's buckets): >= ${target}% of memcpy; measured ${pct(r.pct_of_memcpy)} (${f2(r.busbw_gbps)} GB/s): ` +
      (ok ? 'met' : `missed by ${(target - r.pct_of_memcpy).toFixed(0)} points (${f1((target / 100) * memcpy / r.busbw_gbps)}x short)`));
  }
  out.memcpy_gbps = memcpy;
  out.js_primitives_gbps = prims;
  out.collectives = rows;
}

// ---- scaling: DDP on 2 worker_threads vs 1, per transport ------------------------------------------
if (sections.has('scaling')) {
  const steps = Number(opts['scaling-steps']);
  const warmup = Number(opts['scaling-warmup']);
  const scfg: RunConfig = { ...cfg, backend: 'wasm' };
  console.log(`\n## scaling\n\nDDP, ${scfg.preset} on wasm, batch ${scfg.batch_size} x ${scfg.block_size} per worker, one worker_thread per rank ` +
    `(Coordinator + spawnNodeWorker); medians of ${steps} steps after ${warmup} warm-up steps; node flags: ${process.execArgv.filter((f) => f.startsWith('--') && f !== '--import').join(' ') || 'none'}` +
    ` (npm run bench passes --single-threaded-gc: with a worker on every core, V8's GC helper threads would take turns on the workers' cores)\n`);
  console.log('| run | workers | global batch | ms/step | tokens/s | speedup | GFLOP/s per worker | % of GEMM, 2 threads (all workers) | % of tfjs-wasm best matmul (per worker) | comm + wait | of which communication | of which waiting for the slowest |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  const name = (r: ScalingRow) => (r.run === 'ddp' ? `ddp ${r.transport}` : r.run === 'single' ? 'single' : `${r.workers} independent singles (no comm)`);
  const rows = await runScaling(scfg, text, {
    transports, steps, warmup,
    onRow: (r) =>
      console.log(`| ${name(r)} | ${r.workers} | ${r.global_batch} | ${f1(r.ms_per_step)} | ${thousands(r.tokens_per_s)} | ${r.speedup === null ? '-' : `${f2(r.speedup)}x`} | ` +
        `${f1(r.gflops_per_worker)} | ${pctOr(r.pct_of_gemm_2t)} | ${pctOr(r.pct_of_tfjs_wasm_matmul_per_worker)} | ` +
        `${r.run === 'ddp' ? `${f1(r.exposed_pct)}% | ${f1(r.exposed_comm_pct)}%` : '- | -'} | ${r.run === 'single' ? '-' : `${f1(r.straggler_pct)}%`} |`),
    anchors: anchors ? { gemm1t: anchors.gemm_1t_gflops, gemm2t: anchors.gemm_2t_gflops, tfjsMatmul: anchors.tfjs_wasm_matmul_gflops } : undefined,
  });
  console.log('\n| run | rank | compute ms | comm ms | wait ms | MB sent/step | comm+wait share | communication | waiting for the slowest |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    for (const k of r.per_rank) {
      console.log(`| ${name(r)} | ${k.rank} | ${f1(k.compute_ms)} | ${f1(k.comm_ms)} | ${f1(k.wait_ms)} | ${f2(k.bytes_sent / 2 ** 20)} | ${f1(k.exposed_pct)}% | ` +
        `${f1(k.exposed_comm_pct)}% | ${f1(k.straggler_pct)}% |`);
    }
  }
  console.log('\ncommunication: the collectives\' CPU time plus the wait even the last rank to finish backward had (per step: comm + wait - straggler); ' +
    'waiting for the slowest: the rest of the wait (the coordinator\'s stragglerMs: wait - the step\'s smallest wait). For independent workers, what the same lockstep would cost them ' +
    '((slowest step - own step) / slowest step). Each the worst rank\'s median share of its step.');
  console.log(`\nGFLOP/s: nanoGPT's FLOPs per token x tokens/s; the shares are of this run's anchors (${anchors ? 'measured above' : 'none in this run: --only anchors,scaling gives them'}): ` +
    'all workers together against GEMM on 2 threads, one worker against tfjs-wasm\'s best matmul (one thread).');
  const ceiling = rows.find((x) => x.run === 'independent');
  if (ceiling) {
    console.log(`${ceiling.workers} single workers stepping at once, with no communication at all, reach ${f2(ceiling.speedup!)}x: ` +
      `the ceiling that compute contention alone leaves for DDP (${ceiling.per_rank.map((k) => f1(k.compute_ms)).join(' / ')} ms of compute per step ` +
      `on each worker, against ${f1(rows[0].per_rank[0].compute_ms)} ms alone).`);
  }
  for (const r of rows.filter((x) => x.run === 'ddp')) {
    const s = r.speedup!;
    console.log(`targets, ddp ${r.transport}: speedup ${f2(s)}x (>= 1.8x: ${s >= 1.8 ? 'met' : `missed by ${f2(1.8 - s)}x`}` +
      `${ceiling ? `; ${pct((100 * s) / ceiling.speedup!)} of the no-communication ceiling` : ''}), ` +
      `exposed communication ${f1(r.exposed_comm_pct)}% (< 5%: ${r.exposed_comm_pct < 5 ? 'met' : `missed by ${f1(r.exposed_comm_pct - 5)} points`}), ` +
      `plus ${f1(r.straggler_pct)}% waiting for the slowest worker; ${f1(r.gflops_per_worker)} GFLOP/s per worker ` +
      `(issue 12: >= ${TARGET_GFLOPS}: ${r.gflops_per_worker >= TARGET_GFLOPS ? 'met' : 'missed'})`);
  }
  out.scaling = rows;
  for (const r of rows.filter((x) => x.run !== 'independent')) {
    const mean = (f: (k: ScalingRow['per_rank'][number]) => number) => r.per_rank.reduce((s, k) => s + f(k), 0) / r.per_rank.length;
    runs.push({
      section: 'scaling', preset: scfg.preset, strategy: r.strategy, shard: null, prefetch: null, workers: r.workers, transport: r.transport,
      batch_per_worker: r.batch_per_worker, steps: r.steps, warmup, tokens_per_s: r.tokens_per_s, ms_per_step: r.ms_per_step,
      compute_ms: mean((k) => k.compute_ms), comm_ms: mean((k) => k.comm_ms), wait_ms: mean((k) => k.wait_ms),
      bytes_per_rank: Math.max(...r.per_rank.map((k) => k.bytes_sent)), predicted_ms_per_step: null, memory: r.memory,
    });
  }
}

// ---- browser: the page's runtime in headless Chromium with real Web Workers (bench/browser.ts) ------
if (sections.has('browser')) {
  const b = {
    preset: opts.preset, backend: opts.backend as BackendName, strategies: opts.strategies.split(','),
    workers: Number(opts.workers), transport: opts.transport as TransportKind, steps: Number(opts['browser-steps']),
    warmup: Number(opts['browser-warmup']), sizesMb: numbers('sizes', opts.sizes), collWorkers: numbers('coll-workers', opts['coll-workers']),
    transports,
  };
  const r = await runBrowserBench(b);
  printBrowserBench(r, b);
  out.browser = r;
  runs.push(...browserRunEntries(r, b)); // with predicted_ms_per_step, like the others
}

// ---- fsdp: memory, throughput, bytes and the cost model, real worker_threads -----------------------
let calibration: (Calibration & { preset: string }) | null = null;
if (sections.has('fsdp')) {
  const f = await runFsdp(text, {
    steps: Number(opts['fsdp-steps']), warmup: Number(opts['fsdp-warmup']),
    babySteps: Number(opts['fsdp-baby-steps']), babyWarmup: Number(opts['fsdp-baby-warmup']),
    memoryWorkers: 4, calibrationKb: [64, 512, 2048], // the sizes a shakespeare-cpu step moves (units ~0.8 MB, buckets 1-2 MB)
  });
  const c = f.calibration;
  calibration = { flops: c.flops, cores: availableParallelism(), concurrent: c.concurrent, hostCopy: c.hostCopy, alpha: { ring: c.alpha, star: NaN, shared: NaN, network: NaN }, beta: { ring: c.beta, star: NaN, shared: NaN, network: NaN }, preset: c.preset };
  out.fsdp = { memory: f.memory, throughput: f.throughput, bytes: f.bytes, costmodel: f.costmodel, calibration: f.calibration, load_average: f.load_average };
  runs.push(...f.runs);
}
// The scaling runs get the fsdp section's calibration (ring, same preset): this run's, or the file's.
if (!calibration && !sections.has('fsdp') && existsSync(opts.json)) {
  try {
    const c = (JSON.parse(readFileSync(opts.json, 'utf8')) as { fsdp?: { calibration?: { alpha: number; beta: number; flops: number; concurrent?: Calibration['concurrent']; hostCopy?: Calibration['hostCopy']; preset: string } } }).fsdp?.calibration;
    if (c) calibration = { flops: c.flops, cores: availableParallelism(), concurrent: c.concurrent, hostCopy: c.hostCopy, alpha: { ring: c.alpha, star: NaN, shared: NaN, network: NaN }, beta: { ring: c.beta, star: NaN, shared: NaN, network: NaN }, preset: c.preset };
  } catch {
    // no usable file: no prediction
  }
}
if (calibration) {
  for (const r of runs) {
    if (r.section !== 'scaling' || r.preset !== calibration.preset || (r.workers > 1 && r.transport !== 'ring')) continue;
    const rcfg = makeConfig(r.preset, { vocab_size: 65, batch_size: r.batch_per_worker });
    r.predicted_ms_per_step = predict(rcfg, { strategy: r.strategy, workers: r.workers, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB }, calibration).step_ms;
  }
}

// ---- gpu: WebGPU counts per step, single in this thread, DDP and FSDP on worker_threads ------------
if (sections.has('gpu')) {
  const { startWebGPU } = await import('./gpu-webgpu');
  const { GPU_STRATEGIES, READBACK_NOTES, benchConfig, runDistributed, runSingle } = await import('./gpu');
  const strategies = list('gpu-strategies', opts['gpu-strategies'], GPU_STRATEGIES);
  const info = await startWebGPU();
  const a = info.adapter!;
  const gcfg = benchConfig(opts['gpu-preset'], text);
  const ro = { steps: Number(opts['gpu-steps']), warmup: Number(opts['gpu-warmup']), capMs: Infinity, log: (l: string) => process.stderr.write(`  [gpu] ${l}\n`) };
  console.log(`\n## gpu\n\nWebGPU counts per training step, ${gcfg.preset} (batch ${gcfg.batch_size} x ${gcfg.block_size} per worker), on ${a.vendor} ${a.architecture}${a.fallback ? ' (a software adapter: counts, not speed)' : ''}; median over ${ro.steps} steps after ${ro.warmup} warm-up\n`);
  console.log('| strategy | rank | dispatches | submits | sync reads | async reads | bytes read | uploads | bytes uploaded | uniform bytes | ms/step |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  const gpuRuns = [];
  for (const s of strategies) {
    const r = s === 'single' ? await runSingle(gcfg, text, ro) : await runDistributed(gcfg, text, s, 2, ro);
    gpuRuns.push(r);
    r.counts.forEach((c, rank) =>
      console.log(`| ${s} | ${rank} | ${c.dispatches} | ${c.submits} | ${c.sync_reads} | ${c.async_reads} | ${thousands(c.bytes_read)} | ${c.uploads} | ${thousands(c.bytes_uploaded)} | ${thousands(c.uniform_bytes)} | ${r.ms_per_step.toFixed(0)} |`));
  }
  console.log('');
  for (const s of strategies) console.log(`${s}: ${READBACK_NOTES[s]}`);
  out.gpu = { adapter: a, preset: gcfg.preset, runs: gpuRuns };
}

// A run of some sections keeps what the file holds for the others (and their entries of `runs`).
if (sections.size < SECTIONS.length && existsSync(opts.json)) {
  try {
    const before = JSON.parse(readFileSync(opts.json, 'utf8')) as Record<string, unknown>;
    const kept = ((before.runs ?? []) as RunEntry[]).filter((r) => !sections.has(r.section));
    for (const [k, v] of Object.entries(before)) if (!(k in out) && k !== 'runs') out[k] = v;
    runs.unshift(...kept);
  } catch {
    // not JSON (or not ours): overwrite it
  }
}
out.runs = runs;

writeFileSync(opts.json, JSON.stringify(out, null, 2));
console.log(`\nwrote ${opts.json}`);
