// The command-line tool, run as a child process the way a user runs it (tsx src/cli/main.ts ...).

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, root, type RunResult } from './run-cli';

const fixture = join(root, 'test/fixtures/llmc-tiny');
const tmp = mkdtempSync(join(tmpdir(), 'cli-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** One entry of the --json file's per_worker. */
interface PerWorker {
  rank: number;
  compute_ms: number;
  comm_ms: number;
  wait_ms: number;
  straggler_ms: number;
  bytes_sent: number;
  bytes_per_rank_predicted: number;
  memory: Record<string, number>;
}

type Result = RunResult;

/** A failure the tool expects: one line "error: ...", no stack trace, the given exit code. */
function expectOneLineError(r: Result, code: number, mentions?: RegExp) {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(r.stderr).not.toContain('    at ');
  if (mentions) expect(lines[0]).toMatch(mentions);
}

describe('verify-llmc', () => {
  it('matches llm.c on the fixture (--json, cpu)', async () => {
    const r = await cli('verify-llmc', fixture, '--json', '--backend', 'cpu');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout); // exactly one JSON object on stdout
    expect(out.backend).toBe('cpu');
    expect(out.ok).toBe(true);
    expect(out.grads_maxdiff).toBeLessThan(1e-4);
    expect(out.logits_maxdiff).toBeLessThan(1e-4);
    expect(Math.abs(out.loss - out.loss_ref)).toBeLessThan(1e-4);
    expect(Object.keys(out.grads)).toContain('wte');
    expect(out.adamw_losses).toHaveLength(10);
    expect(out.adamw_maxdiff).toBeLessThan(1e-3);
  });

  it('fails with a one-line reason on a truncated model.bin', async () => {
    const dir = join(tmp, 'truncated');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.bin'), readFileSync(join(fixture, 'model.bin')).subarray(0, 100_000));
    copyFileSync(join(fixture, 'state.bin'), join(dir, 'state.bin'));
    const r = await cli('verify-llmc', dir, '--json', '--backend', 'cpu');
    expectOneLineError(r, 1, /truncated/);
    expect(r.stdout).toBe('');
  });
});

describe('train', () => {
  const run = async (name: string, seed: number) => {
    const file = join(tmp, `${name}.json`);
    const r = await cli('train', '--preset', 'tiny', '--steps', '6', '--seed', String(seed), '--eval-iters', '2', '--json', file);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(readFileSync(file, 'utf8'));
  };

  it('is reproducible: same seed, same losses; another seed, other losses', async () => {
    const a = await run('a', 5);
    const b = await run('b', 5);
    const c = await run('c', 6);
    expect(a.losses).toHaveLength(6);
    expect(a.losses.every((x: unknown) => typeof x === 'number' && Number.isFinite(x))).toBe(true);
    expect(b.losses).toEqual(a.losses);
    expect(c.losses).not.toEqual(a.losses);

    expect(a.config).toMatchObject({ preset: 'tiny', max_iters: 6, lr_decay_iters: 6, seed: 5 });
    expect(a.backend).toBe('wasm');
    expect(a.val_losses).toEqual([[6, a.final_val_loss]]);
    expect(a.ms_per_step).toBeGreaterThan(0);
    expect(a.tokens_per_s).toBeCloseTo((a.config.batch_size * a.config.block_size * 1000) / a.ms_per_step, 6);
    expect(a.wall_time_s).toBeGreaterThan(0);
    expect(a).toMatchObject({ strategy: 'single', workers: 1, global_batch: a.config.batch_size });
    expect(a.per_worker).toHaveLength(1);
  });

  // Real worker_threads (one tfjs engine each), through the coordinator, as a user runs it. The three
  // runs start together once and are shared by the ddp and fsdp tests.
  const train = async (name: string, ...args: string[]) => {
    const file = join(tmp, `${name}.json`);
    const r = await cli('train', '--preset', 'tiny', '--steps', '3', '--eval-iters', '1', '--json', file, ...args);
    expect(r.code, r.stderr).toBe(0);
    return { out: JSON.parse(readFileSync(file, 'utf8')), stderr: r.stderr };
  };
  let parallelRuns: ReturnType<typeof startParallelRuns> | undefined;
  const startParallelRuns = () => Promise.all([
    train('ddp', '--strategy', 'ddp', '--workers', '2', '--transport', 'ring', '--batch', '2'),
    train('fsdp', '--strategy', 'fsdp', '--shard', 'full', '--workers', '2', '--batch', '2'),
    train('single4', '--batch', '4'),
  ]);
  const parallel = () => (parallelRuns ??= startParallelRuns());
  const MEMORY_KEYS = ['params', 'grads', 'optimizer', 'buddy', 'gathered_peak', 'activations_peak', 'comm_buffers'];

  it('ddp: 2 workers x batch 2 trains like single x batch 4, and reports each worker', async () => {
    const [ddp, , single] = await parallel();
    expect(ddp.stderr).toMatch(/global batch 4 = 2 workers x batch 2 x accum 1/);
    expect(ddp.out).toMatchObject({ strategy: 'ddp', transport: 'ring', workers: 2, global_batch: 4, tokens_per_step: 4 * 32 });
    expect(ddp.out.config.batch_size).toBe(2); // per worker, as in PyTorch
    expect(ddp.out.per_worker).toHaveLength(2);
    ddp.out.per_worker.forEach((w: PerWorker, r: number) => {
      expect(w.rank).toBe(r);
      expect(w.compute_ms).toBeGreaterThan(0);
      expect(w.comm_ms).toBeGreaterThanOrEqual(0);
      expect(w.wait_ms).toBeGreaterThanOrEqual(0);
      expect(w.straggler_ms).toBeGreaterThanOrEqual(0);
      expect(w.straggler_ms).toBeLessThanOrEqual(w.wait_ms); // part of the wait, step by step, so in the medians too
      expect(w.bytes_sent).toBeGreaterThan(0);
      expect(Math.abs(w.bytes_sent - w.bytes_per_rank_predicted)).toBeLessThan(64); // chunk rounding
      expect(Object.keys(w.memory).sort()).toEqual([...MEMORY_KEYS].sort());
      // a full replica: fp32 weights and gradients, AdamW m and v and, on this CPU backend, its master copy
      expect(w.memory.params).toBe(4 * ddp.out.num_params);
      expect(w.memory.optimizer).toBe(3 * w.memory.params);
      expect(w.memory.gathered_peak).toBe(0);
    });
    expect(single.out).toMatchObject({ strategy: 'single', workers: 1, global_batch: 4 });
    expect(single.out.per_worker[0].bytes_sent).toBe(0);
    expect(ddp.out.losses).toHaveLength(3);
    ddp.out.losses.forEach((loss: number, i: number) => expect(Math.abs(loss - single.out.losses[i]), `step ${i + 1}`).toBeLessThan(1e-5));
    // the global gradient norm before clipping, per step: of the averaged gradient, so equal to single's
    expect(ddp.out.grad_norms).toHaveLength(3);
    ddp.out.grad_norms.forEach((g: number, i: number) => expect(Math.abs(g - single.out.grad_norms[i]) / single.out.grad_norms[i], `step ${i + 1}`).toBeLessThan(1e-5));
  });

  it('fsdp full: 2 workers keep half the model each, report memory, and train like single x batch 4', async () => {
    const [ddp, fsdp, single] = await parallel();
    expect(fsdp.stderr).toMatch(/fsdp full on 2 worker threads \(ring transport, prefetch on\)/);
    expect(fsdp.out).toMatchObject({ strategy: 'fsdp', shard: 'full', prefetch: true, workers: 2, global_batch: 4 });
    expect(fsdp.out.per_worker).toHaveLength(2);
    for (const w of fsdp.out.per_worker as PerWorker[]) {
      expect(Object.keys(w.memory).sort()).toEqual([...MEMORY_KEYS].sort());
      for (const k of MEMORY_KEYS) expect(w.memory[k], k).toBeGreaterThan(0);
      const ratio = w.memory.params / ddp.out.per_worker[0].memory.params;
      expect(ratio).toBeGreaterThanOrEqual(0.5);
      expect(ratio).toBeLessThan(0.51); // half, plus padding to a multiple of 2
      expect(w.memory.gathered_peak).toBeGreaterThan(0);
      expect(Math.abs(w.bytes_sent - w.bytes_per_rank_predicted)).toBeLessThan(64);
    }
    // each worker keeps the next one's shards of weights, m and v, refreshed every step through the coordinator
    for (const w of fsdp.out.per_worker as PerWorker[]) expect(w.memory.buddy).toBe(3 * w.memory.params);
    expect(fsdp.out.buddy_bytes_per_step).toBe((fsdp.out.per_worker as PerWorker[]).reduce((n, w) => n + w.memory.buddy, 0));
    expect(fsdp.out.losses).toHaveLength(3);
    fsdp.out.losses.forEach((loss: number, i: number) => expect(Math.abs(loss - single.out.losses[i]), `step ${i + 1}`).toBeLessThan(1e-5));
    fsdp.out.grad_norms.forEach((g: number, i: number) => expect(Math.abs(g - single.out.grad_norms[i]) / single.out.grad_norms[i], `step ${i + 1}`).toBeLessThan(1e-5));
  });
});

describe('train --strategy diloco', () => {
  it('runs 2 workers with H = 2: sends only at outer steps (steps 2 and 3, the last), and reports it', async () => {
    const file = join(tmp, 'diloco.json');
    const r = await cli('train', '--preset', 'tiny', '--steps', '3', '--eval-iters', '1', '--json', file,
      '--strategy', 'diloco', '--workers', '2', '--batch', '2', '--inner-steps', '2', '--outer-compress', 'fp16');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(file, 'utf8'));
    expect(out).toMatchObject({ strategy: 'diloco', workers: 2, global_batch: 4 });
    expect(out.diloco).toMatchObject({ inner_steps: 2, outer_lr: 0.7, outer_momentum: 0.9, outer_compress: 'fp16', outer_steps: 2 });
    const P = out.num_params;
    // fp16 on a ring of 2: each rank sends half the model twice (reduce-scatter, all-gather), 2 bytes a value
    expect(Math.abs(out.diloco.bytes_per_outer_step - 2 * P) / (2 * P)).toBeLessThan(0.001);
    expect(out.diloco.bytes_per_outer_step_predicted).toBe(2 * P);
    expect(out.bytes_per_step).toHaveLength(2);
    for (const b of out.bytes_per_step) expect(Math.abs(b - (2 * 2 * P) / 3) / P).toBeLessThan(0.01); // 2 outer steps in 3
    expect(out.per_worker[0].bytes_per_step).toBe(out.bytes_per_step[0]);
    expect(out.losses).toHaveLength(3);
    expect(r.stdout).toMatch(/diloco: 2 outer steps \(H = 2, outer lr 0.7, momentum 0.9, fp16\)/);
  });
});

describe('bad arguments and files', () => {
  const empty = join(tmp, 'empty.txt');
  writeFileSync(empty, '');

  const cases: [string, string[], number, RegExp][] = [
    ['unknown flag', ['train', '--bogus'], 2, /--bogus/],
    ['missing value', ['train', '--steps'], 2, /--steps/],
    ['non-numeric value', ['train', '--steps', 'ten'], 2, /--steps needs a number/],
    ['unknown preset', ['train', '--preset', 'huge'], 2, /unknown preset "huge".*tiny/],
    ['n_head not dividing n_embd', ['train', '--preset', 'tiny', '--set', 'n_head=5'], 2, /divisible/],
    ['unknown setting', ['train', '--set', 'layers=3'], 2, /unknown setting "layers"/],
    ['unknown backend', ['train', '--backend', 'tpu'], 2, /--backend must be one of/],
    ['no workers', ['train', '--strategy', 'ddp', '--workers', '0'], 2, /workers must be a whole number from 1 to 8, got 0/],
    ['unknown transport', ['train', '--strategy', 'ddp', '--transport', 'pigeon'], 2, /transport must be ring, star, shared or network, got "pigeon"/],
    ['single with 2 workers', ['train', '--strategy', 'single', '--workers', '2'], 2, /strategy single runs one worker/],
    ['--workers without --strategy', ['train', '--workers', '2'], 2, /--workers 2 needs --strategy ddp/],
    ['--shard without --strategy fsdp', ['train', '--shard', 'full'], 2, /--shard full needs --strategy fsdp/],
    ['--shard with ddp', ['train', '--strategy', 'ddp', '--shard', 'grad_op'], 2, /--shard grad_op needs --strategy fsdp/],
    ['unknown shard', ['train', '--strategy', 'fsdp', '--shard', 'bogus'], 2, /--shard must be one of full, grad_op, none, got "bogus"/],
    ['--no-prefetch without fsdp', ['train', '--no-prefetch'], 2, /--no-prefetch needs --strategy fsdp/],
    ['--inner-steps without diloco', ['train', '--strategy', 'ddp', '--inner-steps', '5'], 2, /--inner-steps 5 needs --strategy diloco/],
    ['unknown outer compression', ['train', '--strategy', 'diloco', '--outer-compress', 'bf16'], 2, /--outer-compress must be one of none, fp16, int8, got "bf16"/],
    ['zero bucket size', ['train', '--strategy', 'ddp', '--bucket-mb', '0'], 2, /bucket size must be a positive number/],
    ['missing data file', ['train', '--preset', 'tiny', '--data', join(tmp, 'nope.txt')], 1, /does not exist/],
    ['empty data file', ['train', '--preset', 'tiny', '--data', empty], 1, /is empty/],
    ['missing DIR argument', ['verify-llmc'], 2, /needs a directory/],
    ['nonexistent DIR', ['verify-llmc', join(tmp, 'no-such-dir')], 1, /does not exist/],
    ['unknown command', ['fly'], 2, /unknown command "fly"/],
  ];

  it.each(cases)('%s', async (_name, args, code, mentions) => {
    expectOneLineError(await cli(...args), code, mentions);
  });

  it('has --help for the tool and each command', async () => {
    for (const args of [['--help'], ['train', '--help'], ['verify-llmc', '-h']]) {
      const r = await cli(...args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: npm run cli -- /);
      expect(r.stderr).toBe('');
    }
    const train = (await cli('train', '--help')).stdout;
    for (const flag of [/--strategy NAME .*fsdp/s, /--shard NAME/, /--no-prefetch/, /--strategy NAME .*diloco/s, /--inner-steps H/, /--outer-lr X/, /--outer-momentum M/, /--outer-compress C/]) expect(train).toMatch(flag);
  });
});
