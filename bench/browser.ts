// The browser part of `npm run bench`: the real runtime (coordinator, Web Workers, transports, cost
// model) in headless Chromium, driven through bench/browser-page/. Returns the figures the page shows:
// memcpy bandwidth, collectives' bus bandwidth, and one row per strategy with the cost model's
// prediction beside the measurement.

import { startHarness } from '../test/harness';
import type { BrowserBenchOptions, RunRow } from './browser-page/main';
import type { TransportKind } from '../src/parallel/collectives';
import type { Calibration } from '../src/parallel/costmodel';

export interface BrowserBenchResult {
  memcpy_gbps: number;
  collectives: { transport: TransportKind; workers: number; mbytes: number; busbw_gbps: number; seconds: number }[];
  runs: RunRow[];
  calibration: Calibration;
  tracing: { off_ms: number; on_ms: number; overhead_pct: number } | null; // DDP steps with trace recording off and on
  crossOriginIsolated: boolean;
}

export async function runBrowserBench(o: BrowserBenchOptions): Promise<BrowserBenchResult> {
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
    return result;
  } finally {
    await h.close();
  }
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
  console.log('| strategy | workers | tokens/s | ms/step | compute | comm | wait | MB/step/rank (predicted) | predicted ms | error | max loss diff vs single |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const x of r.runs) {
    const diff = single ? Math.max(...x.losses.map((l, i) => Math.abs(l - single.losses[i]))) : NaN;
    const err = (100 * (x.predicted_ms_per_step - x.ms_per_step)) / x.ms_per_step;
    console.log(
      `| ${x.strategy} | ${x.workers} | ${f(x.tokens_per_s, 0)} | ${f(x.ms_per_step)} | ${f(x.compute_ms)} | ${f(x.comm_ms)} | ${f(x.wait_ms)} | ` +
        `${f(x.bytes_per_rank / 2 ** 20, 2)} (${f(x.predicted_bytes_per_rank / 2 ** 20, 2)}) | ${f(x.predicted_ms_per_step)} | ${f(err, 0)}% | ${diff.toExponential(1)} |`,
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
