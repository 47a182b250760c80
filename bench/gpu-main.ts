// The WebGPU speed bench's command line: from source (`npm run bench:gpu -- OUTDIR ...`) or bundled into
// the GPU pack (scripts/gpu-pack.sh; gpu-pack/run.sh runs it with the pack's own Node).
//
//   OUTDIR [--presets shakespeare-cpu,baby,gpt2] [--strategies single,ddp] [--steps 10] [--warmup 3]
//          [--allow-software] [--cap-s 40] [--deadline-s 300] [--gpt2-batch 4] [--workers 2]
//          [--data FILE] [--torch auto|off] [--matmul-max 4096]
//
// Writes OUTDIR/gpu-bench.json, rewritten after every step of every run (a timeout still leaves
// results), and prints a compact table. Refuses to report figures from a software (fallback) adapter
// unless --allow-software. Exit codes: 0 done, 2 bad arguments, 3 software adapter refused, 4 no WebGPU.

import { isMainThread, workerData } from 'node:worker_threads';

if (!isMainThread && (workerData as { gpuRank?: boolean } | undefined)?.gpuRank) {
  await import('./gpu-rank'); // the bundle is also its own ranks' worker script
} else {
  await main();
}

async function main(): Promise<void> {
  const { existsSync, mkdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const { spawnSync } = await import('node:child_process');
  const { cpus, hostname } = await import('node:os');
  const { dirname, join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const { parseArgs } = await import('node:util');
  const { startWebGPU } = await import('./gpu-webgpu');
  const { GPU_STRATEGIES, benchConfig, matmulAnchor, runDistributed, runSingle } = await import('./gpu');
  type GpuRunResult = import('./gpu').GpuRunResult;
  const { PRESET_NAMES } = await import('../src/model/config');

  const t0 = performance.now();
  const usage = 'usage: gpu-bench --probe | gpu-bench OUTDIR [--presets shakespeare-cpu,baby,gpt2] [--strategies single,ddp] [--steps 10] [--warmup 3] ' +
    '[--allow-software] [--cap-s 40] [--deadline-s 300] [--gpt2-batch 4] [--workers 2] [--data FILE] [--torch auto|off] [--matmul-max 4096]';
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        presets: { type: 'string', default: 'shakespeare-cpu,baby,gpt2' },
        strategies: { type: 'string', default: 'single,ddp' },
        steps: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '3' },
        'allow-software': { type: 'boolean', default: false },
        probe: { type: 'boolean', default: false }, // print the adapter and stop (run.sh's first call)
        'cap-s': { type: 'string', default: '40' },
        'deadline-s': { type: 'string', default: '300' },
        'gpt2-batch': { type: 'string', default: '4' },
        workers: { type: 'string', default: '2' },
        data: { type: 'string' },
        torch: { type: 'string', default: 'auto' },
        'matmul-max': { type: 'string', default: '4096' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    console.error(`error: ${(e as Error).message.split('\n')[0]}\n${usage}`);
    process.exit(2);
  }
  const { values: o, positionals } = parsed;
  if (o.probe) {
    try {
      const info = await startWebGPU();
      const a = info.adapter!;
      console.log(`adapter: vendor "${a.vendor}", architecture "${a.architecture}", description "${a.description}", ${a.fallback ? 'SOFTWARE (fallback) adapter' : 'hardware adapter'}`);
      console.log(`limits: ${JSON.stringify(info.limits)}`);
      process.exit(a.fallback && !o['allow-software'] ? 3 : 0);
    } catch (e) {
      console.error(`error: no WebGPU: ${(e as Error).message}`);
      process.exit(4);
    }
  }
  if (o.help || positionals.length !== 1) {
    console.log(usage);
    process.exit(o.help ? 0 : 2);
  }
  const outDir = positionals[0];
  const presets = o.presets.split(',').filter(Boolean);
  const strategies = o.strategies.split(',').filter(Boolean);
  for (const p of presets) if (!PRESET_NAMES.includes(p as never)) { console.error(`error: unknown preset "${p}" (${PRESET_NAMES.join(', ')})`); process.exit(2); }
  for (const s of strategies) if (!GPU_STRATEGIES.includes(s as never)) { console.error(`error: unknown strategy "${s}" (${GPU_STRATEGIES.join(', ')})`); process.exit(2); }
  const steps = Number(o.steps);
  const warmup = Number(o.warmup);
  const capMs = Number(o['cap-s']) * 1000;
  const deadline = t0 + Number(o['deadline-s']) * 1000;
  const workers = Number(o.workers);
  if (!(steps >= 1 && warmup >= 0 && capMs > 0 && workers >= 2)) { console.error(`error: bad --steps/--warmup/--cap-s/--workers\n${usage}`); process.exit(2); }
  mkdirSync(outDir, { recursive: true });
  const here = dirname(fileURLToPath(import.meta.url));
  const dataFile = o.data ?? [join(here, 'data/tinyshakespeare.txt'), 'public/data/tinyshakespeare.txt', '/work/shared/data/tinyshakespeare.txt'].find((f) => existsSync(f));
  if (!dataFile || !existsSync(dataFile)) { console.error('error: no corpus: pass --data FILE (tinyshakespeare.txt)'); process.exit(2); }
  const text = readFileSync(dataFile, 'utf8');
  const log = (s: string) => console.log(`[gpu-bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}`);

  const out: Record<string, unknown> & { runs: GpuRunResult[] } = {
    bench: 'webgpu speed (Node, Dawn)', date: new Date().toISOString(),
    machine: { hostname: hostname(), cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
    args: { presets, strategies, steps, warmup, cap_s: capMs / 1000, deadline_s: Number(o['deadline-s']), gpt2_batch: Number(o['gpt2-batch']), workers, data: dataFile },
    runs: [],
  };
  const file = join(outDir, 'gpu-bench.json');
  const save = () => writeFileSync(file, JSON.stringify(out, null, 2));
  save();

  // ---- the torch anchor first (its own process, done before this one loads the GPU) ----------------
  if (o.torch !== 'off') {
    const script = [join(here, 'torch_anchor.py'), join(here, '../scripts/gpu-torch-anchor.py'), 'scripts/gpu-torch-anchor.py'].find((f) => existsSync(f));
    if (!script) out.torch = { available: false, reason: 'torch_anchor.py not found' };
    else {
      log('torch anchor: fp32 matmul, TF32 off (python3)');
      const r = spawnSync('python3', [script], { encoding: 'utf8', timeout: 120_000 });
      const line = (r.stdout ?? '').trim().split('\n').filter((l) => l.startsWith('{')).pop();
      try {
        out.torch = line ? JSON.parse(line) : { available: false, reason: (r.error?.message ?? r.stderr ?? '').slice(-300) || `exit ${r.status}` };
      } catch {
        out.torch = { available: false, reason: `unreadable output: ${line?.slice(0, 200)}` };
      }
    }
    log(`torch: ${JSON.stringify(out.torch)}`);
    save();
  }
  const torchTflops = (out.torch as { available?: boolean; best_tflops?: number } | undefined)?.available ? (out.torch as { best_tflops: number }).best_tflops : null;

  // ---- the adapter ---------------------------------------------------------------------------------
  let info;
  try {
    info = await startWebGPU();
  } catch (e) {
    out.error = `no WebGPU: ${(e as Error).message}`;
    save();
    console.error(`error: ${out.error}`);
    process.exit(4);
  }
  out.adapter = info.adapter;
  out.limits = info.limits;
  const a = info.adapter!;
  log(`adapter: vendor "${a.vendor}", architecture "${a.architecture}", description "${a.description}", ${a.fallback ? 'SOFTWARE (fallback) adapter' : 'hardware adapter'}`);
  if (a.fallback && !o['allow-software']) {
    out.error = 'refused: a software (fallback) adapter; its figures say nothing about a GPU (pass --allow-software to run anyway)';
    save();
    console.error(`error: ${out.error}`);
    process.exit(3);
  }
  out.software = a.fallback;
  save();

  // ---- tfjs-webgpu's best matmul -------------------------------------------------------------------
  log('tfjs-webgpu matmul anchor');
  const mm = await matmulAnchor(a.fallback ? Math.min(512, Number(o['matmul-max'])) : Number(o['matmul-max']), a.fallback ? 20_000 : 30_000);
  out.tfjs_matmul = mm;
  log(`tfjs-webgpu matmul: best ${mm.best_gflops.toFixed(1)} GFLOP/s (${mm.by_size.map((x) => `${x.n}: ${x.gflops.toFixed(1)}`).join(', ')})`);
  save();

  // ---- runs ------------------------------------------------------------------------------------------
  const withShares = (r: GpuRunResult) => ({
    ...r,
    pct_of_tfjs_matmul: (100 * r.gflops) / mm.best_gflops,
    pct_of_torch_fp32: torchTflops ? (100 * r.gflops) / (torchTflops * 1000) : null,
  });
  for (const preset of presets) {
    for (const strategy of strategies as ('single' | 'ddp' | 'fsdp')[]) {
      const left = deadline - performance.now();
      if (left < 15_000) {
        log(`skipped ${preset} ${strategy}: the deadline is near`);
        out.runs.push({ preset, strategy, error: 'skipped: deadline' } as unknown as GpuRunResult);
        save();
        continue;
      }
      const big = preset === 'gpt2';
      const cfg = benchConfig(preset, text, big ? Number(o['gpt2-batch']) : undefined);
      const ro = {
        steps: big ? Math.min(steps, 5) : steps,
        warmup: big ? Math.min(warmup, 2) : warmup,
        capMs: Math.min(big ? capMs * 1.5 : capMs, left - 10_000),
        log,
        // the run so far, saved after every measured step (marked capped until the run ends)
        onStep: (partial: GpuRunResult) => {
          out.in_progress = withShares(partial);
          save();
        },
      };
      log(`${preset} ${strategy}: batch ${cfg.batch_size} x ${cfg.block_size}${strategy === 'single' ? '' : ` per rank, ${workers} ranks`}, ${ro.warmup} + ${ro.steps} steps, cap ${(ro.capMs / 1000).toFixed(0)} s`);
      try {
        const r = strategy === 'single' ? await runSingle(cfg, text, ro) : await runDistributed(cfg, text, strategy, workers, ro);
        out.runs.push(withShares(r) as GpuRunResult);
      } catch (e) {
        log(`${preset} ${strategy} failed: ${(e as Error).message}`);
        out.runs.push({ preset, strategy, error: (e as Error).message } as unknown as GpuRunResult);
      }
      delete out.in_progress;
      save();
    }
  }
  out.total_s = (performance.now() - t0) / 1000;
  save();

  // ---- the table -------------------------------------------------------------------------------------
  const f = (x: number | null | undefined, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  console.log(`\nWebGPU (${a.vendor} ${a.architecture}${a.fallback ? ', SOFTWARE' : ''}); tfjs matmul best ${f(mm.best_gflops)} GFLOP/s; torch fp32 ${torchTflops ? `${f(torchTflops, 2)} TFLOP/s` : 'n/a'}`);
  console.log('| preset | strategy | batch x T | ms/step (min-max) | tokens/s | GFLOP/s | % tfjs mm | % torch | dispatches | sync reads | async reads | MB read | MB up |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of out.runs as (GpuRunResult & { pct_of_tfjs_matmul?: number; pct_of_torch_fp32?: number | null })[]) {
    if (r.error) {
      console.log(`| ${r.preset} | ${r.strategy} | error: ${r.error.slice(0, 100)} |`);
      continue;
    }
    const c = r.counts[0];
    console.log(`| ${r.preset} | ${r.strategy}${r.workers > 1 ? ` x${r.workers}` : ''} | ${r.batch_per_worker} x ${r.block_size} | ${f(r.ms_per_step)} (${f(r.ms_min)}-${f(r.ms_max)}) | ${f(r.tokens_per_s, 0)} | ${f(r.gflops)} | ${f(r.pct_of_tfjs_matmul)}% | ${r.pct_of_torch_fp32 == null ? '-' : `${f(r.pct_of_torch_fp32, 2)}%`} | ${c.dispatches} | ${c.sync_reads} | ${c.async_reads} | ${f(c.bytes_read / 2 ** 20, 2)} | ${f(c.bytes_uploaded / 2 ** 20, 2)} |`);
  }
  console.log(`(counts per step, rank 0; all ranks in ${file}; ${f(out.total_s as number, 0)} s in all)`);
  process.exit(0); // Dawn's instance would keep the process alive
}
