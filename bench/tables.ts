// `npm run bench -- --tables bench/results/FILE.json [--readme]`: the README's performance tables, printed
// from one results file (bench/record.ts), so the README cannot drift from what was measured. With
// --readme they replace what lies between the two `bench-tables` markers in README.md's "Performance".
// Each cell is the median over the runs of that file, with its range (min-max) where the runs differed.

import { readFileSync, writeFileSync } from 'node:fs';
import { basename, relative } from 'node:path';

type Num = number | { median: number; min: number; max: number; n: number; values: number[] } | null | undefined;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;

export const BEGIN = '<!-- bench-tables:begin';
export const END = '<!-- bench-tables:end -->';

const med = (x: Num): number => (x === null || x === undefined ? NaN : typeof x === 'number' ? x : x.median);
const fix = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const sep = (x: number, d: number) => (Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : '-');
/** "12.3 (11.9-12.8)", or "12.3" where every run agreed (or one run). */
function cell(x: Num, d = 1, unit = '', big = false): string {
  const f = (v: number) => (big ? sep(v, d) : fix(v, d)) + unit;
  if (x === null || x === undefined) return '-';
  if (typeof x === 'number') return f(x);
  return `${f(x.median)} (${big ? sep(x.min, d) : fix(x.min, d)}-${f(x.max)})`;
}
const pctCell = (x: Num) => cell(x, 0, '%');

export function tables(file: string): string {
  const r = JSON.parse(readFileSync(file, 'utf8')) as Any;
  const f = r.figures as Any;
  const L: string[] = [];
  const m = r.machine;
  const v = r.versions;
  const rep = r.groups?.find((g: Any) => g.name === 'repeated');
  const loads = (r.groups ?? []).flatMap((g: Any) => g.runs.map((x: Any) => x.load_average_before));
  L.push(`Results file: [\`${basename(file)}\`](${relative(process.cwd(), file)}), recorded ${r.date} with \`${r.command}\` (${fix(r.wall_s / 60, 1)} min): ` +
    `${m.cpu} (${m.vendor}, family ${m.cpu_family} model ${m.cpu_model}; ${m.simd_flags.join(', ')}), ${m.cores} cores, ${m.memory_gib} GiB; ` +
    `Node ${v.node}, ${v.chromium ?? 'no Chromium found'}, tfjs ${v.tfjs}, Python ${v.python ?? '-'}, NumPy ${v.numpy ?? '-'} (${v.blas ?? '-'}). ` +
    `Each figure: the median over ${rep ? `${rep.repeats} runs` : 'the runs'} (min-max) where runs differed; the slow sections (the cpu backend, browser, fsdp) ran once. ` +
    `1-minute load average before each run: ${loads.map((x: number) => fix(x, 2)).join(', ')}.`);
  if (r.sources?.changed_during_recording) L.push('', '**Warning: the sources changed while this file was recorded: its runs did not all measure the same code.**');
  L.push('');

  // anchors
  const a = f.anchors;
  if (a) {
    L.push(`**This machine's limits** (\`--only anchors\`, measured in each run before the trainer):`, '');
    L.push('| anchor | median (range) |', '|---|---|');
    if (a.gemm?.available) {
      for (const g of a.gemm.runs) L.push(`| float32 GEMM ${g.n}x${g.n}, NumPy/OpenBLAS, ${g.threads} thread${g.threads > 1 ? 's' : ''} | ${cell(g.gflops)} GFLOP/s |`);
    } else L.push(`| float32 GEMM, NumPy | not measured: ${a.gemm?.reason ?? 'unknown'} |`);
    for (const t of a.tfjs_wasm_matmul ?? []) L.push(`| tfjs-wasm 2-D tf.matMul ${t.n}x${t.n} (XNNPACK, 1 thread) | ${cell(t.gflops)} GFLOP/s |`);
    L.push(`| memcpy (Float32Array.set, 64 MB) | ${cell(a.memcpy_gbps, 2)} GB/s |`);
    L.push('', `The anchors below are each run's best size: GEMM 1 thread ${cell(a.gemm_1t_gflops)}, GEMM 2 threads ${cell(a.gemm_2t_gflops)}, tfjs-wasm matmul ${cell(a.tfjs_wasm_matmul_gflops)} GFLOP/s.`, '');
  }

  // speed
  const speed = (f.results ?? []) as Any[];
  if (speed.length) {
    L.push(`**One worker** (\`--only anchors,speed\`): \`${f.preset}\`, ${f.tokens_per_step} tokens per step, ${fix(med(f.flops_per_token) / 1e6, 2)} MFLOP per token (nanoGPT's count):`, '');
    L.push('| backend | ms/step | tokens/s | GFLOP/s | % of GEMM, 1 thread | % of tfjs-wasm best matmul |', '|---|---|---|---|---|---|');
    for (const s of speed) {
      L.push(`| ${s.backend} | ${cell(s.ms_per_step)} | ${cell(s.tokens_per_s, 0, '', true)} | ${cell(s.gflops)} | ${pctCell(s.pct_of_gemm_1t)} | ${pctCell(s.pct_of_tfjs_wasm_matmul)} |`);
    }
    L.push('');
  }
  const prof = r.profile;
  if (prof) {
    L.push(`**Where a step goes** (wasm, \`tf.profile\` of one step after the timed ones: ${cell(prof.step_ms)} ms with the profiler on, ${cell(prof.kernel_ms)} ms in ${cell(prof.kernel_calls, 0)} kernel calls; top 12 kernels by median time):`, '');
    L.push('| kernel | calls | ms | share of kernel time |', '|---|---|---|---|');
    for (const k of prof.kernels.slice(0, 12)) L.push(`| ${k.name} | ${cell(k.count, 0)} | ${cell(k.ms)} | ${cell(typeof k.share === 'number' ? 100 * k.share : k.share && { ...k.share, median: 100 * k.share.median, min: 100 * k.share.min, max: 100 * k.share.max }, 1, '%')} |`);
    L.push('');
  }

  // scaling
  const sc = (f.scaling ?? []) as Any[];
  if (sc.length) {
    const name = (x: Any) => (x.run === 'ddp' ? `DDP ${x.transport}` : x.run === 'single' ? 'single' : `${x.workers} independent singles, no communication`);
    L.push(`**DDP scaling** (\`--only scaling\`, worker_threads, wasm, batch ${sc[0].batch_per_worker} per worker):`, '');
    L.push('| run | ms/step | tokens/s | speedup | GFLOP/s per worker | % of GEMM, 2 threads (all workers) | % of tfjs-wasm matmul (per worker) | comm + wait | of which communication | waiting for the slowest |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const x of sc) {
      L.push(`| ${name(x)} | ${cell(x.ms_per_step)} | ${cell(x.tokens_per_s, 0, '', true)} | ${x.speedup === null ? '1.00x' : cell(x.speedup, 2, 'x')} | ${cell(x.gflops_per_worker)} | ${pctCell(x.pct_of_gemm_2t)} | ` +
        `${pctCell(x.pct_of_tfjs_wasm_matmul_per_worker)} | ${x.run === 'ddp' ? cell(x.exposed_pct, 1, '%') : '-'} | ${x.run === 'ddp' ? cell(x.exposed_comm_pct, 1, '%') : '-'} | ${x.run === 'single' ? '-' : cell(x.straggler_pct, 1, '%')} |`);
    }
    L.push('');
  }

  // collectives
  const co = (f.collectives ?? []) as Any[];
  if (co.length) {
    const sizes = [...new Set(co.map((c) => c.mbytes))] as number[];
    const kinds = [...new Set(co.map((c) => `${c.transport}|${c.registered}|${c.workers}`))] as string[];
    L.push(`**Collectives** (\`--only collectives\`, worker_threads): all-reduce bus bandwidth, GB/s (% of memcpy in the same run, ${cell(f.memcpy_gbps, 2)} GB/s):`, '');
    L.push(`| transport | N | ${sizes.map((s) => `${s} MB`).join(' | ')} |`, `|---|---|${sizes.map(() => '---|').join('')}`);
    for (const k of kinds) {
      const [t, reg, n] = k.split('|');
      const cells = sizes.map((s) => {
        const c = co.find((x) => `${x.transport}|${x.registered}|${x.workers}` === k && x.mbytes === s);
        return c ? `${cell(c.busbw_gbps, 2)}, ${pctCell(c.pct_of_memcpy)}` : '-';
      });
      L.push(`| ${t === 'star' ? t : `${t}, ${reg === 'true' ? 'registered' : 'ordinary'}`} | ${n} | ${cells.join(' | ')} |`);
    }
    L.push('');
  }

  // browser
  const br = f.browser;
  if (br?.runs?.length) {
    L.push(`**Strategies in the browser** (\`--only browser\`, headless Chromium, real Web Workers, wasm, ring, the same global batch for every strategy; one run):`, '');
    L.push('| strategy | workers | tokens/s | ms/step | compute | comm | wait | MB sent/step/worker | predicted ms | error |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const x of br.runs) {
      const err = (100 * (med(x.predicted_ms_per_step) - med(x.ms_per_step))) / med(x.ms_per_step);
      L.push(`| ${x.strategy} | ${x.workers} | ${cell(x.tokens_per_s, 0, '', true)} | ${cell(x.ms_per_step)} | ${cell(x.compute_ms)} | ${cell(x.comm_ms)} | ${cell(x.wait_ms)} | ${fix(med(x.bytes_per_rank) / 2 ** 20, 2)} | ${cell(x.predicted_ms_per_step)} | ${fix(err, 0).replace(/^-0$/, '0')}% |`);
    }
    L.push('');
  }

  // fsdp
  const fs = f.fsdp;
  if (fs?.memory?.length) {
    const mb = (x: Num) => fix(med(x) / 2 ** 20, 1);
    L.push(`**FSDP memory** (\`--only fsdp\`, \`${fs.memory[0].preset}\`, N = ${fs.memory[0].workers} worker_threads; MB per worker; one run):`, '');
    L.push('| run | params | grads | optimizer | at rest | vs DDP | gathered peak | activations peak | peak | vs DDP |', '|---|---|---|---|---|---|---|---|---|---|');
    for (const x of fs.memory) {
      L.push(`| ${x.run} | ${mb(x.params)} | ${mb(x.grads)} | ${mb(x.optimizer)} | ${mb(x.at_rest)} | ${fix(med(x.at_rest_vs_ddp), 2)}x | ${mb(x.gathered_peak)} | ${mb(x.activations_peak)} | ${mb(x.peak)} | ${fix(med(x.peak_vs_ddp), 2)}x |`);
    }
    L.push('');
  }
  if (fs?.throughput?.length) {
    L.push('**FSDP throughput against DDP** (`--only fsdp`, 2 worker_threads, ring; one run):', '');
    L.push('| preset | run | batch per worker | ms/step | tokens/s | vs DDP |', '|---|---|---|---|---|---|');
    for (const x of fs.throughput) L.push(`| ${x.preset} | ${x.run} | ${x.batch_per_worker} | ${cell(x.ms_per_step)} | ${cell(x.tokens_per_s, 0, '', true)} | ${cell(x.vs_ddp, 2, 'x')} |`);
    L.push('');
  }
  return L.join('\n').trimEnd();
}

/** Prints the tables, or (readme) writes them between the markers in README.md. */
export function printTables(file: string, o: { readme: boolean }): void {
  const t = tables(file);
  if (!o.readme) {
    console.log(t);
    return;
  }
  const readme = readFileSync('README.md', 'utf8');
  const i = readme.indexOf(BEGIN);
  const j = readme.indexOf(END);
  if (i < 0 || j < i) throw new Error(`README.md has no "${BEGIN} ... -->" and "${END}" markers`);
  const begin = `${BEGIN} generated by \`npm run bench -- --tables ${relative(process.cwd(), file)} --readme\`: edit the results file's tables there, not here -->`;
  writeFileSync('README.md', readme.slice(0, i) + begin + '\n' + t + '\n' + readme.slice(j));
  console.log(`README.md: tables from ${file}`);
}
