// `npm run bench -- --results`: this machine's results file, bench/results/<cpu>-<cores>c-<yyyy-mm-dd>.json.
//
// The bench runs as child processes (the same node flags as this one, a fresh process per run, so no run
// inherits another's heap or backend), in two groups:
//   repeated  (--repeats, default 3) anchors, speed on wasm (with the per-op profile), collectives at
//             N = 2 (ring, shared) and scaling (single, 2 independent singles, DDP ring and shared): the
//             figures the README compares, each run measuring its own anchors;
//   once      anchors again, speed on the cpu backend (plain JS, ~5 s a step), browser (headless
//             Chromium) and fsdp: slow sections, run once (their figures are medians over steps, n = 1
//             run). The file's `anchors` are the repeated group's; the once run's are in `groups`.
// Every number that differs between the runs of a group becomes { median, min, max, n, values } (values:
// one per run, in order); numbers equal in every run stay plain. Never the best run.
//
// The file also holds the machine (CPU model and SIMD flags from /proc/cpuinfo, cores, memory), the
// versions (Node, Chromium, tfjs, Python, NumPy, BLAS), the date, the git commit, the command, the load
// average around each run and the wall time. `npm run bench -- --tables FILE [--readme]` prints the
// README's tables from it (bench/tables.ts).

import { spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from '../src/util/stats';
import { printTables } from './tables';

export interface RecordOptions {
  repeats: number;
  dir: string;
  name?: string;
  quick: boolean; // a short trial of the machinery: small sizes, few steps, no slow sections
  preset: string;
}

export interface Stat { median: number; min: number; max: number; n: number; values: number[] }

export const isStat = (x: unknown): x is Stat => !!x && typeof x === 'object' && 'median' in x && 'values' in x;

/**
 * Aggregates the same JSON shape over runs: numbers that differ, or are missing from some runs, become
 * a Stat (non-finite values ignored; n counts the runs that had it), equal ones stay plain; arrays index by index, objects key by key (the union of keys);
 * anything else is the first run's.
 */
export function aggregate(reps: unknown[]): unknown {
  const present = reps.filter((r) => r !== undefined);
  if (!present.length) return undefined;
  const first = present[0];
  if (typeof first === 'number') {
    const v = present.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    if (!v.length) return first;
    // plain only when every run has it and agrees (a figure missing from some runs keeps its n)
    if (v.length === reps.length && v.every((x) => x === v[0])) return v[0];
    return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length, values: v } satisfies Stat;
  }
  if (Array.isArray(first)) {
    const len = Math.max(...present.map((r) => (Array.isArray(r) ? r.length : 0)));
    return Array.from({ length: len }, (_, i) => aggregate(present.map((r) => (Array.isArray(r) ? r[i] : undefined))));
  }
  if (first && typeof first === 'object') {
    const keys = [...new Set(present.flatMap((r) => (r && typeof r === 'object' ? Object.keys(r) : [])))];
    return Object.fromEntries(keys.map((k) => [k, aggregate(present.map((r) => (r && typeof r === 'object' ? (r as Record<string, unknown>)[k] : undefined)))]));
  }
  return first;
}

type Json = Record<string, unknown>;
interface KernelRow { name: string; count: number; ms: number; share: number }

/** A run's per-op profiles keyed by kernel name (the order by time differs between runs). */
function profilesByName(rep: Json): Json {
  const results = rep.results as { profile?: { kernels: KernelRow[] | Record<string, unknown> } | null }[] | undefined;
  for (const r of results ?? []) if (r.profile && Array.isArray(r.profile.kernels)) r.profile.kernels = Object.fromEntries(r.profile.kernels.map((k) => [k.name, k]));
  return rep;
}
/** Back to a list, by median time, with each kernel's share of the median kernel time. */
function profilesToList(agg: Json): Json {
  const results = agg.results as { profile?: { kernels: unknown; kernel_ms: number | Stat } | null }[] | undefined;
  const med = (x: unknown) => (isStat(x) ? x.median : typeof x === 'number' ? x : 0);
  for (const r of results ?? []) {
    if (!r.profile || Array.isArray(r.profile.kernels)) continue;
    const list = Object.values(r.profile.kernels as Record<string, { ms: unknown }>).sort((a, b) => med(b.ms) - med(a.ms));
    r.profile.kernels = list;
  }
  return agg;
}

/** Two groups' aggregates: arrays concatenated (speed rows, runs), other keys kept from the first. */
function merge(a: Json, b: Json): Json {
  const out: Json = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (!(k in out)) out[k] = v;
    else if (Array.isArray(out[k]) && Array.isArray(v)) out[k] = [...(out[k] as unknown[]), ...v];
  }
  return out;
}

const tryRun = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 20_000 }).trim();
  } catch {
    return null;
  }
};

/** A hash of the trainer's sources (src/, bench/): a recording must not straddle an edit. */
function sourceHash(): string {
  const h = createHash('sha256');
  for (const d of ['src', 'bench']) {
    const root = fileURLToPath(new URL(`../${d}/`, import.meta.url));
    for (const f of (readdirSync(root, { recursive: true }) as string[]).filter((x) => /\.(ts|wat|mjs)$/.test(x)).sort()) {
      h.update(f).update(readFileSync(join(root, f)));
    }
  }
  return h.digest('hex').slice(0, 16);
}

export function machineInfo() {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const field = (k: string) => cpuinfo.match(new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm'))?.[1]?.trim() ?? null;
  const flags = (field('flags') ?? '').split(/\s+/);
  const simd = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'amx_tile'].filter((f) => flags.includes(f));
  const cpu = field('model name') ?? 'unknown-cpu';
  const req = createRequire(import.meta.url);
  const version = (pkg: string) => {
    try {
      return (req(`${pkg}/package.json`) as { version: string }).version;
    } catch {
      return null;
    }
  };
  const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  return {
    machine: {
      cpu, vendor: field('vendor_id'), cpu_family: field('cpu family'), cpu_model: field('model'), simd_flags: simd,
      cores: availableParallelism(), memory_gib: +(totalmem() / 2 ** 30).toFixed(1), kernel: tryRun('uname', ['-sr']),
    },
    versions: {
      node: process.version,
      chromium: tryRun(chromiumPath, ['--version']),
      tfjs: version('@tensorflow/tfjs'), tfjs_backend_wasm: version('@tensorflow/tfjs-backend-wasm'),
    },
  };
}

/** "Intel(R) Xeon(R) Processor" -> "intel-xeon-processor". */
export function cpuSlug(cpu: string): string {
  return cpu.toLowerCase().replace(/\((r|tm)\)/g, '').replace(/@.*$/, '').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'unknown-cpu';
}

export function recordPlan(o: RecordOptions) {
  const common = ['--preset', o.preset, '--transports', 'ring,shared', '--coll-workers', '2'];
  const quick = o.quick
    ? ['--gemm-sizes', '256,512', '--gemm-repeats', '3', '--matmul-sizes', '256,512', '--matmul-repeats', '2', '--steps', '4', '--warmup', '1',
      '--sizes', '1,4', '--scaling-steps', '3', '--scaling-warmup', '1']
    : [];
  const groups = [{ name: 'repeated', repeats: o.repeats, args: ['--only', 'anchors,speed,collectives,scaling', '--backends', 'wasm', ...common, ...quick] }];
  // the once group measures its own anchors too: the cpu row's shares are of anchors from its own run
  if (!o.quick) groups.push({ name: 'once', repeats: 1, args: ['--only', 'anchors,speed,browser,fsdp', '--backends', 'cpu', ...common] });
  return groups;
}

export async function recordResults(o: RecordOptions): Promise<string> {
  const t0 = performance.now();
  const started = new Date();
  const tmp = mkdtempSync(join(tmpdir(), 'bench-record-'));
  const runTs = fileURLToPath(new URL('./run.ts', import.meta.url));
  const info = machineInfo();
  const sources0 = sourceHash();
  const groups = [];
  let figures: Json = {};
  for (const g of recordPlan(o)) {
    const reps: Json[] = [];
    const runs = [];
    for (let i = 0; i < g.repeats; i++) {
      const json = join(tmp, `${g.name}-${i}.json`);
      const args = [...process.execArgv, runTs, ...g.args, '--json', json];
      console.log(`\n# ${g.name} ${i + 1}/${g.repeats}: node ${args.slice(process.execArgv.length).join(' ')}\n`);
      const load = loadavg()[0];
      const s0 = performance.now();
      const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      if (r.status !== 0) throw new Error(`bench run ${g.name} ${i + 1} failed (exit ${r.status ?? r.signal})`);
      runs.push({ wall_s: +((performance.now() - s0) / 1000).toFixed(1), load_average_before: load, load_average_after: loadavg()[0] });
      reps.push(profilesByName(JSON.parse(readFileSync(json, 'utf8')) as Json));
    }
    const agg = profilesToList(aggregate(reps) as Json);
    groups.push({ name: g.name, repeats: g.repeats, args: g.args, runs, ...(figures.anchors && agg.anchors ? { anchors: agg.anchors } : {}) });
    figures = merge(figures, agg);
  }
  const anchors = figures.anchors as Json | undefined;
  const gemm = anchors?.gemm as { python?: string; numpy?: string; blas?: string } | undefined;
  const date = started.toISOString().slice(0, 10);
  const name = o.name ?? `${cpuSlug(info.machine.cpu)}-${info.machine.cores}c-${date}${o.quick ? '-quick' : ''}`;
  const commit = tryRun('git', ['rev-parse', 'HEAD']);
  const dirty = tryRun('git', ['status', '--porcelain', '--untracked-files=no']);
  const sources1 = sourceHash();
  if (sources1 !== sources0) console.warn('\nWARNING: the sources (src/, bench/) changed while recording: the runs did not all measure the same code; record again');
  const speed = (figures.results as { backend: string; profile?: unknown }[] | undefined) ?? [];
  const result = {
    schema: 1,
    date,
    started_at: started.toISOString(),
    wall_s: +((performance.now() - t0) / 1000).toFixed(1),
    command: `npm run bench -- --results --repeats ${o.repeats}${o.quick ? ' --quick' : ''}${o.preset !== 'shakespeare-cpu' ? ` --preset ${o.preset}` : ''}`,
    git: { commit, dirty: dirty === null ? null : dirty.length > 0 },
    sources: { hash_before: sources0, hash_after: sources1, changed_during_recording: sources1 !== sources0 },
    ...info,
    versions: { ...info.versions, python: gemm?.python ?? null, numpy: gemm?.numpy ?? null, blas: gemm?.blas ?? null },
    note: 'Every number that differs between the runs of a group is { median, min, max, n, values } over those runs (values in run order); numbers equal in every run are plain. ' +
      'Within one run, step times are medians over steps after warm-up. Anchors were measured in each run, on the same machine, before its trainer figures.',
    groups,
    profile: speed.find((r) => r.backend === 'wasm')?.profile ?? null,
    figures,
  };
  mkdirSync(o.dir, { recursive: true });
  const file = join(o.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
  console.log(`\nwrote ${file} (${result.wall_s} s)\n`);
  printTables(file, { readme: false });
  return file;
}
