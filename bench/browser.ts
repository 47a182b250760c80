// The browser part of `npm run bench`: the real runtime (coordinator, Web Workers, transports, cost
// model) in headless Chromium, driven through bench/browser-page/. Returns the figures the page shows:
// memcpy bandwidth, collectives' bus bandwidth (and the alpha-beta fit with its own error), and one row
// per strategy with the cost model's prediction beside the measurement: each run is predicted from the
// probes right before and after it (N workers computing at once: what they really got then), so a
// machine busy with other work is measured, not assumed quiet. The load average (os.loadavg) before and
// after says how busy it was. `--load N` starts N busy-loop child processes for the whole section (a
// competing CPU load on purpose); browserRunEntries() gives the runs in the shape of bench.json's `runs`.

import { spawn, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { startHarness } from '../test/harness';
import type { BrowserBenchOptions, BrowserBenchResult } from './browser-page/main';
import type { ShardStrategy, Strategy } from '../src/parallel/layout';

/**
 * A competing CPU load: n child processes, each a busy loop (what other programs on a classroom laptop
 * are); stop() ends them.
 */
export function startBusyLoad(n: number): { stop(): void; processes: ChildProcess[] } {
  const processes = Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
  return { processes, stop: () => processes.forEach((p) => p.kill('SIGKILL')) };
}

export async function runBrowserBench(o: BrowserBenchOptions & { load?: number }): Promise<BrowserBenchResult> {
  const busy = o.load ? startBusyLoad(o.load) : null;
  const before = loadavg()[0];
  const h = await startHarness('bench');
  try {
    const page = await h.browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(h.base + '/bench/browser-page/index.html');
    await page.waitForFunction(() => 'bench' in window, undefined, { timeout: 60_000 });
    const result = await page.evaluate((opts) => (window as unknown as { bench(o: BrowserBenchOptions): Promise<BrowserBenchResult> }).bench(opts), o);
    if (errors.length) throw new Error(`the benchmark page reported errors: ${errors.join('; ')}`);
    return { ...result, load: { before, after: loadavg()[0], busy_processes: o.load ?? 0 } };
  } finally {
    busy?.stop();
    await h.close();
  }
}

/** The browser runs in the shape of bench.json's `runs` (bench/fsdp.ts RunEntry, section 'browser'). */
export function browserRunEntries(r: BrowserBenchResult, o: BrowserBenchOptions) {
  const strategyOf = (key: string): Strategy => (key === 'single' || key === 'ddp' || key === 'tp' ? key : key.startsWith('pp') ? 'pp' : 'fsdp');
  return r.runs.map((x) => ({
    section: 'browser' as const, preset: o.preset, strategy: strategyOf(x.strategy),
    variant: x.strategy, shard: x.shard as ShardStrategy | null, prefetch: x.prefetch, workers: x.workers, transport: x.transport, batch_per_worker: x.batch_per_worker,
    steps: o.steps - o.warmup, warmup: o.warmup, tokens_per_s: x.tokens_per_s, ms_per_step: x.ms_per_step,
    compute_ms: x.compute_ms, comm_ms: x.comm_ms, wait_ms: x.wait_ms, bytes_per_rank: x.bytes_per_rank,
    predicted_ms_per_step: x.predicted_ms_per_step, error: x.error, load_average: r.load ?? null, memory: x.memory,
  }));
}

export function printBrowserBench(r: BrowserBenchResult, o: BrowserBenchOptions): void {
  const f = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  console.log(`\n## browser (headless Chromium, real Web Workers, backend ${o.backend}, cross-origin isolated: ${r.crossOriginIsolated})\n`);
  console.log(`memcpy (Float32Array.set of 64 MB in the page): ${f(r.memcpy_gbps, 2)} GB/s\n`);
  console.log('all-reduce bus bandwidth (busbw = bytes x 2(N-1)/N / time; slowest rank, median), GB/s (% of memcpy)\n');
  console.log(`| transport | N | ${o.sizesMb.map((s) => `${s} MB`).join(' | ')} |`);
  console.log(`|---|---|${o.sizesMb.map(() => '---|').join('')}`);
  for (const t of o.transports) {
    for (const n of o.collWorkers) {
      const cells = o.sizesMb.map((mb) => {
        const c = r.collectives.find((x) => x.transport === t && x.workers === n && x.mbytes === mb)!;
        return `${f(c.busbw_gbps, 2)} (${f((100 * c.busbw_gbps) / r.memcpy_gbps, 0)}%)`;
      });
      console.log(`| ${t} | ${n} | ${cells.join(' | ')} |`);
    }
  }
  const single = r.runs.find((x) => x.strategy === 'single');
  console.log(`\nstrategies: preset ${o.preset}, the same global batch and samples, ${o.steps} steps (medians after ${o.warmup}); transport ${o.transport}`);
  const probe = r.calibration.concurrent;
  console.log(
    `cost model: FLOP/s ${f(r.calibration.flops / 1e9, 1)} G (from single's compute)` +
      (probe ? `, ${f(probe.flops / 1e9, 1)} G each with ${probe.workers} computing at once, the slowest ${f(probe.stragglerMs)} ms behind (probe)` : '') +
      `, alpha ${f(r.calibration.alpha[o.transport] * 1e6, 0)} us, beta ${f(r.calibration.beta[o.transport] / 1e9, 2)} GB/s (fitted)` +
      (r.calibration.hostCopy ? `, tensor upload ${f(r.calibration.hostCopy.upload / 1e9, 2)} GB/s, readback ${f(r.calibration.hostCopy.readback / 1e9, 2)} GB/s` : '') +
      '\n',
  );
  if (r.load) console.log(`load average (1 min): ${f(r.load.before, 2)} before, ${f(r.load.after, 2)} after${r.load.busy_processes ? `; ${r.load.busy_processes} busy-loop processes started for this section` : ''}\n`);
  for (const x of r.fits ?? []) console.log(`fit ${x.transport} N=${x.workers}: alpha ${f(x.alpha * 1e6, 0)} us, beta ${f(x.beta / 1e9, 2)} GB/s, RMS relative error ${f(100 * x.error, 1)}%${x.ordered ? '' : ' (a larger size ran faster than a smaller one: disturbed)'}`);
  console.log('\n| strategy | workers | tokens/s | ms/step | compute | comm | wait | MB/step/rank (predicted) | predicted ms (compute + comm + copies + wait + fixed) | error (measured vs predicted) | probe change | max loss diff vs single |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const x of r.runs) {
    const diff = single ? Math.max(...x.losses.map((l, i) => Math.abs(l - single.losses[i]))) : NaN;
    const p = x.predicted;
    console.log(
      `| ${x.strategy} | ${x.workers} | ${f(x.tokens_per_s, 0)} | ${f(x.ms_per_step)} | ${f(x.compute_ms)} | ${f(x.comm_ms)} | ${f(x.wait_ms)} | ` +
        `${f(x.bytes_per_rank / 2 ** 20, 2)} (${f(x.predicted_bytes_per_rank / 2 ** 20, 2)}) | ${f(x.predicted_ms_per_step)} (${f(p.compute_ms)} + ${f(p.comm_ms)} + ${f(p.copy_ms)} + ${f(p.wait_ms)} + ${f(p.fixed_ms)}) | ` +
        `${x.error >= 0 ? '+' : ''}${f(100 * x.error, 0)}% | ${f(100 * x.probe.change, 0)}% | ${diff.toExponential(1)} |`,
    );
  }
  if (r.tracing) {
    console.log(`\ntimeline recording: DDP steps ${f(r.tracing.off_ms)} ms with it off, ${f(r.tracing.on_ms)} ms on (medians, interleaved): overhead ${f(r.tracing.overhead_pct)}% (target < 2%)`);
  }
  console.log('\nmemory per worker (MB): params, grads, optimizer at rest; gathered, activations, comm buffers at the peak\n');
  console.log('| strategy | params | grads | optimizer | at rest | gathered | activations | comm |');
  console.log('|---|---|---|---|---|---|---|---|');
  const mb = (x: number) => f(x / 2 ** 20, 2);
  for (const x of r.runs) {
    const m = x.memory;
    console.log(`| ${x.strategy} | ${mb(m.params)} | ${mb(m.grads)} | ${mb(m.optimizer)} | ${mb(m.params + m.grads + m.optimizer)} | ${mb(m.gathered_peak)} | ${mb(m.activations_peak)} | ${mb(m.comm_buffers)} |`);
  }
}
