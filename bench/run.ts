// `npm run bench`: training speed per backend, one worker, measured side by side in one run.
//
// For each backend: ms per training step of `shakespeare-cpu` at batch 12 (median after warm-up),
// tokens/s, achieved GFLOP/s (FLOPs per token 6N + 12*L*H*Q*T, nanoGPT's estimate_mfu), and that as a
// share of the same backend's 1024x1024 matmul GFLOP/s measured in the same run. Then, for the first
// backend, where a step's time goes (tfjs kernel timings). Writes bench.json.
//
//   npm run bench -- [--backends wasm,cpu,webgpu] [--preset shakespeare-cpu] [--steps 12] [--json bench.json]

import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { startBackend, CLI_BACKENDS, type CliBackend } from '../src/cli/backend';
import { makeConfig, type RunConfig } from '../src/model/config';
import { buildParamTable } from '../src/model/params';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { median } from '../src/train/session';

const { values: opts } = parseArgs({
  options: {
    backends: { type: 'string', default: 'wasm,cpu' },
    preset: { type: 'string', default: 'shakespeare-cpu' },
    steps: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '2' },
    json: { type: 'string', default: 'bench.json' },
    profile: { type: 'boolean', default: true },
  },
});

/** nanoGPT's estimate_mfu: 6N + 12*L*H*Q*T per token, N without the position embeddings. */
export function flopsPerToken(cfg: RunConfig): number {
  const N = buildParamTable(cfg).total - cfg.block_size * cfg.n_embd;
  const { n_layer: L, n_head: H, block_size: T } = cfg;
  return 6 * N + 12 * L * H * (cfg.n_embd / H) * T;
}

async function matmulGflops(): Promise<number> {
  const n = 1024;
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const times: number[] = [];
  for (let i = 0; i < 8; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    times.push(performance.now() - t0);
    c.dispose();
  }
  tf.dispose([a, b]);
  return (2 * n ** 3) / (median(times, 2) / 1000) / 1e9;
}

async function trainSpeed(cfg: RunConfig, text: string, steps: number, warmup: number) {
  const tok = charTokenizer(text);
  const trainer = new Trainer({ ...cfg, vocab_size: tok.vocabSize }, makeDataset(text, tok, cfg.block_size));
  const ms: number[] = [];
  for (let i = 0; i < steps; i++) ms.push((await trainer.trainStep()).ms);
  let kernels: [string, number, number][] = [];
  if (opts.profile) {
    const prof = await tf.profile(async () => {
      await trainer.trainStep();
    });
    const by = new Map<string, [number, number]>();
    for (const k of prof.kernels) {
      const e = by.get(k.name) ?? [0, 0];
      e[0] += Number(k.kernelTimeMs) || 0;
      e[1] += 1;
      by.set(k.name, e);
    }
    kernels = [...by].map(([name, [t, n]]) => [name, t, n] as [string, number, number]).sort((a, b) => b[1] - a[1]);
  }
  trainer.dispose();
  return { msPerStep: median(ms, warmup), kernels };
}

const text = readFileSync(new URL('../public/data/tinyshakespeare.txt', import.meta.url), 'utf8');
const cfg = makeConfig(opts.preset, { vocab_size: 65 });
const tokensPerStep = cfg.batch_size * cfg.grad_accum * cfg.block_size;
const fpt = flopsPerToken(cfg);
const results = [];
console.log(`preset ${cfg.preset}: ${cfg.n_layer} layers, n_embd ${cfg.n_embd}, batch ${cfg.batch_size} x ${cfg.block_size}; ${(fpt / 1e6).toFixed(2)} MFLOP per token`);
console.log('| backend | ms/step | tokens/s | GFLOP/s | 1024² matmul GFLOP/s | % of matmul |');
console.log('|---|---|---|---|---|---|');
for (const name of opts.backends.split(',')) {
  if (!(CLI_BACKENDS as readonly string[]).includes(name)) throw new Error(`unknown backend ${name}: choose from ${CLI_BACKENDS.join(', ')}`);
  const info = await startBackend(name as CliBackend);
  const slow = info.name === 'cpu' || info.name === 'webgpu';
  const steps = slow ? Math.min(4, Number(opts.steps)) : Number(opts.steps);
  const mm = await matmulGflops();
  const { msPerStep, kernels } = await trainSpeed(cfg, text, steps, slow ? 1 : Number(opts.warmup));
  const tokensPerSec = (tokensPerStep / msPerStep) * 1000;
  const gflops = (fpt * tokensPerSec) / 1e9;
  results.push({ backend: info.name, ms_per_step: msPerStep, tokens_per_s: tokensPerSec, gflops, matmul_gflops: mm, pct_of_matmul: (100 * gflops) / mm, steps, kernels: kernels.slice(0, 15) });
  console.log(`| ${info.name} | ${msPerStep.toFixed(1)} | ${tokensPerSec.toFixed(0)} | ${gflops.toFixed(1)} | ${mm.toFixed(1)} | ${((100 * gflops) / mm).toFixed(0)}% |`);
}
const first = results[0];
if (first?.kernels.length) {
  const total = first.kernels.reduce((s, k) => s + k[1], 0);
  console.log(`\nwhere a ${first.backend} step's kernel time goes (${total.toFixed(0)} ms in kernels):`);
  for (const [name, t, n] of first.kernels.slice(0, 10)) console.log(`  ${name.padEnd(24)} ${t.toFixed(1).padStart(7)} ms  ${((100 * t) / total).toFixed(0).padStart(3)}%  x${n}`);
}
writeFileSync(opts.json, JSON.stringify({ preset: cfg.preset, flops_per_token: fpt, tokens_per_step: tokensPerStep, results }, null, 2));
console.log(`\nwrote ${opts.json}`);
