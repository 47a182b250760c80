// The GPU pack's bench: it bundles into one file that runs without node_modules, and a WebGPU training
// step (SwiftShader here) makes no synchronous readback and exactly one asynchronous one (the loss and
// the gradient norm together), as bench/gpu-counters.ts counts them. The pack itself (Node, Dawn, the
// Vulkan loader, run.sh) is checked by hand: see scripts/gpu-pack.sh.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shakespeare } from './helpers';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const dir = mkdtempSync(join(tmpdir(), 'gpu-pack-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the GPU bench', () => {
  it('bundles into one .mjs that starts outside the repository', () => {
    const out = join(dir, 'bench.mjs');
    execFileSync('node_modules/.bin/esbuild', [
      'bench/gpu-main.ts', '--bundle', '--platform=node', '--format=esm', '--target=node20', '--log-level=error',
      "--banner:js=import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);", `--outfile=${out}`,
    ]);
    const r = spawnSync(process.execPath, [out, '--help'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/usage: gpu-bench/);
    const bad = spawnSync(process.execPath, [out, dir, '--presets', 'nope'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown preset "nope"/);
  });

  it.skipIf(!existsSync(SWIFTSHADER))('a WebGPU step: no synchronous readback, one asynchronous one of 8 bytes', async () => {
    const { startWebGPU } = await import('../bench/gpu-webgpu');
    const { benchConfig, runSingle } = await import('../bench/gpu');
    await startWebGPU();
    const cfg = { ...benchConfig('tiny', shakespeare.slice(0, 50_000)), n_layer: 1, n_embd: 32, block_size: 16, batch_size: 2 };
    const r = await runSingle(cfg, shakespeare.slice(0, 50_000), { steps: 2, warmup: 1, capMs: Infinity });
    expect(r.losses.every(Number.isFinite)).toBe(true);
    const c = r.counts[0];
    expect(c.sync_reads).toBe(0);
    expect(c.async_reads).toBe(1);
    expect(c.bytes_read).toBe(8);
    expect(c.dispatches).toBeGreaterThan(100);
    expect(c.uploads).toBeGreaterThan(0); // the batch, at least
  });
});
