// Starting from weights and continuing runs, the way a user does it (the CLI as a child process):
// train --init from llm.c's .bin and from Hugging Face's folder of the same weights trains the same,
// from the loss those weights give in-process; --save with {step} and --resume continue a run exactly.

import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig } from '../src/model/config';
import { readLlmcModel } from '../src/model/llmc';
import { charTokenizer } from '../src/data/tokenizer';
import { makeDataset } from '../src/data/dataset';
import { Trainer } from '../src/train/trainer';
import { readBuffer, shakespeare } from './helpers';
import { root, runTsx } from './run-cli';

const bin = join(root, 'test/fixtures/llmc-tiny/model.bin');
const tmp = mkdtempSync(join(tmpdir(), 'model-io-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (...args: string[]) => runTsx('src/cli/main.ts', args, 120_000);

async function train(name: string, ...args: string[]) {
  const json = join(tmp, `${name}.json`);
  const r = await cli('train', ...(args.includes('--resume') ? [] : ['--preset', 'tiny']), '--eval-iters', '1', '--json', json, ...args);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(readFileSync(json, 'utf8'));
}

beforeAll(async () => {
  await initNodeBackend('wasm');
});

describe('train --init: start from the weights of another tool', () => {
  it('from llm.c\'s .bin and from its Hugging Face conversion: the same run, from the loss the weights give', async () => {
    const hf = join(tmp, 'tiny-hf');
    expect((await cli('convert', bin, hf)).code).toBe(0);
    const [fromBin, fromHf] = await Promise.all([train('init-bin', '--init', bin, '--steps', '3'), train('init-hf', '--init', hf, '--steps', '3')]);
    expect(fromHf.losses).toEqual(fromBin.losses);
    expect(fromBin.config).toMatchObject({ n_layer: 2, n_head: 4, n_embd: 64, block_size: 32, vocab_size: 65 }); // the file's shape
    // The first loss is the loss of the file's weights on the run's first batch, computed here.
    const m = readLlmcModel(readBuffer(bin));
    const cfg = { ...makeConfig('tiny', { max_iters: 3, backend: 'wasm' }), ...m.config, dropout: 0 };
    const t = new Trainer(cfg, makeDataset(shakespeare, charTokenizer(shakespeare), cfg.block_size), m.params);
    const first = (await t.trainStep()).loss;
    t.dispose();
    expect(Math.abs(fromBin.losses[0] - first)).toBeLessThan(1e-6);
  });

  it('says why when the weights do not fit the data or the file is not a checkpoint', async () => {
    const tiny = join(tmp, 'other.txt');
    writeFileSync(tiny, 'abc '.repeat(2000));
    const r = await cli('train', '--preset', 'tiny', '--init', bin, '--data', tiny, '--steps', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: --init .*model\.bin: the weights have a vocabulary of 65 tokens, the char tokenizer of .*other\.txt has 4/);
    const resume = await cli('train', '--resume', bin, '--steps', '2');
    expect(resume.code).toBe(1);
    expect(resume.stderr).toMatch(/error: --resume .*: not a checkpoint of this trainer.*--init/);
  });
});

describe('FSDP\'s sharded checkpoint: each worker\'s shards in its own file, re-sharded on load', () => {
  it('saved by 2 FSDP workers at step 3, continues exactly on 2, and within float rounding on 4, on one and on DDP', async () => {
    const full = await train('fsdp-full', '--steps', '6', '--strategy', 'fsdp', '--workers', '2', '--save', join(tmp, 'f-{step}.shards'), '--save-every', '3');
    const dir = join(tmp, 'f-3.shards');
    expect(readdirSync(dir).sort()).toEqual(['index.json', 'rank-0-of-2.bin', 'rank-1-of-2.bin']);
    const resume = (name: string, ...args: string[]) => train(name, '--resume', dir, '--steps', '6', ...args);
    const same = await resume('fsdp-2', '--strategy', 'fsdp', '--workers', '2');
    expect(same.losses).toEqual(full.losses.slice(3));
    // the same global batch of 8, split over other workers and strategies
    for (const r of await Promise.all([resume('fsdp-4', '--strategy', 'fsdp', '--workers', '4', '--batch', '2'), resume('one', '--batch', '8'), resume('ddp-2', '--strategy', 'ddp', '--workers', '2', '--batch', '4')])) {
      expect(r.global_batch).toBe(8);
      r.losses.forEach((l: number, i: number) => expect(Math.abs(l - full.losses[3 + i])).toBeLessThan(1e-5));
    }
    expect((await cli('convert', dir, join(tmp, 'f-3.ckpt'))).code).toBe(0); // and as one whole checkpoint
  });
});

describe('verify-llmc takes llm.c\'s own file names', () => {
  it('gpt2_124M.bin and gpt2_124M_debug_state.bin, as train_gpt2.py writes them, without renaming', async () => {
    const dir = join(tmp, 'llmc-names');
    mkdirSync(dir);
    copyFileSync(bin, join(dir, 'gpt2_124M.bin'));
    copyFileSync(join(root, 'test/fixtures/llmc-tiny/state.bin'), join(dir, 'gpt2_124M_debug_state.bin'));
    const r = await cli('verify-llmc', dir, '--backend', 'wasm');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/OK: matches llm.c within tolerance/);
  });
});

describe('--save and --resume continue a run exactly', () => {
  it('saved at step 6 of 12 and resumed to 12: steps 7 to 12 are those of the run without a stop', async () => {
    const full = await train('full', '--steps', '12', '--save', join(tmp, 'run-{step}.ckpt'), '--save-every', '6');
    const resumed = await train('resumed', '--resume', join(tmp, 'run-6.ckpt'), '--steps', '12');
    expect(resumed.losses).toHaveLength(6);
    expect(resumed.losses).toEqual(full.losses.slice(6));
    expect(resumed.final_val_loss).toBe(full.final_val_loss);
    // the end of the run was saved too, and continues nothing further: it is at its total
    const again = await cli('train', '--resume', join(tmp, 'run-12.ckpt'), '--steps', '12');
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/the run is at step 12 already; --steps is the run's total, give more than 12/);
    const changed = await cli('train', '--resume', join(tmp, 'run-6.ckpt'), '--lr', '0.01');
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/--resume continues the checkpoint's run with its own settings: drop lr/);
  });
});
