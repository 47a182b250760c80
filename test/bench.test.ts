// `npm run bench` end to end on a small setting: it runs (the browser section in headless Chromium,
// the collectives on worker_threads) and writes bench.json in the documented schema.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

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
  }, 300_000);
});
