// Config validation, the learning-rate schedule, tokenizers and batches.

import { describe, expect, it } from 'vitest';
import { CPU_WORKER_BYTES, ConfigError, GPU_WORKER_BYTES, PRESETS, checkVocab, checkWorkerMemory, makeConfig, sizeOf, workerFit } from '../src/model/config';
import { UNCALIBRATED, predict } from '../src/parallel/costmodel';
import { buildParamTable } from '../src/model/params';
import { learningRate } from '../src/train/optim';
import { bpeTokenizer, charTokenizer } from '../src/data/tokenizer';
import { batchOffsets, makeBatch, makeDataset } from '../src/data/dataset';

describe('config', () => {
  it('builds every preset, with GPT-2 small at 124M parameters', () => {
    for (const name of Object.keys(PRESETS)) expect(makeConfig(name).preset).toBe(name);
    const gpt2 = makeConfig('gpt2');
    expect(buildParamTable(gpt2).total).toBe(124_439_808); // HF GPT-2 small, lm_head tied
    expect(makeConfig('shakespeare-cpu')).toMatchObject({ n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, batch_size: 12 });
  });

  it('parses strings (URL, CLI) and rejects bad values with specific messages', () => {
    expect(makeConfig('tiny', { lr: '0.002', n_layer: '3' })).toMatchObject({ lr: 0.002, n_layer: 3 });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ n_head: 5 }, /n_embd \(64\) must be divisible by n_head \(5\)/],
      [{ block_size: 64 }, /block_size 64 is above what preset "tiny" allows \(32/],
      [{ lr: 'fast' }, /lr must be a number, got "fast"/],
      [{ n_layer: 1.5 }, /n_layer must be a whole number/],
      [{ batch_size: 0 }, /batch_size must be at least 1/],
      [{ dropout: 1 }, /dropout must be in \[0, 1\)/],
      [{ min_lr: 1 }, /min_lr must be between 0 and lr/],
      [{ backend: 'cuda' }, /backend must be one of auto, webgpu, wasm, webgl, cpu/],
      [{ learning_rate: 1 }, /unknown setting "learning_rate": known settings are/],
    ];
    for (const [o, msg] of bad) expect(() => makeConfig('tiny', o)).toThrow(msg);
    expect(() => makeConfig('huge')).toThrow(/unknown preset "huge": choose one of tiny, shakespeare-cpu, baby, gpt2/);
    expect(() => makeConfig('tiny', { n_head: 5 })).toThrow(ConfigError);
  });

  it('refuses a worker that would need more memory than it holds, with how much and what to change', () => {
    const single = { strategy: 'single', workers: 1, transport: 'ring', bucketMb: 25 } as const;
    const memory = (cfg: ReturnType<typeof makeConfig>, plan = single as Parameters<typeof predict>[1]) => predict(cfg, plan, UNCALIBRATED).memory;
    // Every preset fits as shipped, on every backend (GPT-2 small on wasm: ~2.7 GB in tfjs's heap; its
    // AdamW state lives in the optimizer's own memory).
    for (const name of Object.keys(PRESETS)) {
      for (const backend of ['auto', 'wasm', 'cpu', 'webgpu']) {
        const cfg = makeConfig(name, { backend });
        expect(workerFit(cfg, memory(cfg)).fits, `${name} on ${backend}`).toBe(true);
      }
    }
    const gpt2 = makeConfig('gpt2', { backend: 'wasm' });
    const fit = workerFit(gpt2, memory(gpt2));
    expect(fit.need / 2 ** 30).toBeGreaterThan(2.5);
    expect(fit.need).toBeLessThan(CPU_WORKER_BYTES);
    // Activations: a big batch, or many layers.
    const big = makeConfig('tiny', { batch_size: 100_000 });
    expect(() => checkWorkerMemory(big, memory(big))).toThrow(/^one worker would need about 35\.1 GB \(35\.1 GB of activations for batch_size 100000 x block_size 32, .*\); a CPU worker \(32-bit WebAssembly\) holds at most 4\.0 GB: lower batch_size \(grad_accum makes a large batch out of small micro-batches\), block_size or n_layer, or train on a GPU \(backend webgpu\)$/);
    const deep = makeConfig('shakespeare-cpu', { n_layer: 1000 });
    expect(() => checkWorkerMemory(deep, memory(deep))).toThrow(ConfigError);
    // Weights: GPT-2 XL's shape holds 1.56B parameters, 25 GB of state on one GPU worker; the message says to split it.
    const xl = makeConfig('gpt2', { n_layer: 48, n_head: 25, n_embd: 1600, backend: 'webgpu' });
    expect(() => checkWorkerMemory(xl, memory(xl))).toThrow(/holds at most 16\.0 GB: lower n_layer or n_embd, or split the model over more workers \(strategy fsdp, tp or pp\)$/);
    // GPT-2 large's shape (774M) on one GPU worker: ~12 GB of state and ~9 GB of activations do not fit;
    // FSDP over 8 workers divides the state (not the activations), and then it fits.
    const large = makeConfig('gpt2', { n_layer: 36, n_head: 20, n_embd: 1280, backend: 'webgpu' });
    const fsdp = { strategy: 'fsdp', workers: 8, transport: 'ring', bucketMb: 25, shard: 'full' } as const;
    expect(workerFit(large, memory(large)).fits).toBe(false);
    expect(workerFit(large, memory(large, fsdp)).fits).toBe(true);
    expect(GPU_WORKER_BYTES).toBeGreaterThan(CPU_WORKER_BYTES);
    expect([sizeOf(4 * 2 ** 30), sizeOf(512 * 2 ** 20), sizeOf(3.28e13)]).toEqual(['4.0 GB', '512 MB', '29.8 TB']);
  });

  it('takes V from the tokenizer, and refuses an explicit vocab_size that disagrees', () => {
    const cfg = makeConfig('tiny');
    expect(checkVocab(cfg, 40, false).vocab_size).toBe(40);
    expect(() => checkVocab({ ...cfg, vocab_size: 50257 }, 65, true)).toThrow(/vocab_size 50257 does not match the char tokenizer's vocabulary \(65\)/);
  });
});

describe('schedule rules (one home: makeConfig)', () => {
  it('unless set, min_lr is lr/10, lr_decay_iters is max_iters, warmup_iters the preset\'s at most the decay', () => {
    for (const name of Object.keys(PRESETS)) {
      const p = PRESETS[name as keyof typeof PRESETS];
      expect(makeConfig(name)).toMatchObject({ min_lr: p.min_lr, lr_decay_iters: p.lr_decay_iters, warmup_iters: p.warmup_iters }); // presets obey them
    }
    expect(makeConfig('tiny', { lr: 3e-3 })).toMatchObject({ lr: 3e-3, min_lr: 3e-4 });
    expect(makeConfig('tiny', { max_iters: 50 })).toMatchObject({ lr_decay_iters: 50, warmup_iters: 10 });
    expect(makeConfig('tiny', { max_iters: 8 })).toMatchObject({ lr_decay_iters: 8, warmup_iters: 8 }); // a short run still decays
    expect(makeConfig('shakespeare-cpu', { max_iters: 4000 })).toMatchObject({ lr_decay_iters: 4000, warmup_iters: 100 });
    expect(makeConfig('tiny', { lr: 3e-3, min_lr: 1e-5, max_iters: 50, lr_decay_iters: 40, warmup_iters: 0 })).toMatchObject({ min_lr: 1e-5, lr_decay_iters: 40, warmup_iters: 0 });
  });

  it('refuses a warm-up longer than the decay, and a decay longer than the run', () => {
    expect(() => makeConfig('tiny', { warmup_iters: 300 })).toThrow(/warmup_iters \(300\) must be at most lr_decay_iters \(200\)/);
    expect(() => makeConfig('tiny', { max_iters: 50, lr_decay_iters: 100 })).toThrow(/lr_decay_iters \(100\) must be at most max_iters \(50\).*Leave lr_decay_iters unset/);
  });
});

describe('learning-rate schedule (nanoGPT get_lr)', () => {
  const c = { lr: 1e-3, min_lr: 1e-4, warmup_iters: 100, lr_decay_iters: 2000 };
  it('warms up linearly, decays by cosine to min_lr, then stays there', () => {
    expect(learningRate(0, c)).toBeCloseTo(1e-3 / 101, 12);
    expect(learningRate(99, c)).toBeCloseTo(1e-3 * 100 / 101, 12);
    expect(learningRate(100, c)).toBeCloseTo(1e-3, 12);
    expect(learningRate(1050, c)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12); // halfway: cos = 0
    expect(learningRate(2000, c)).toBeCloseTo(1e-4, 12);
    expect(learningRate(5000, c)).toBe(1e-4);
  });
});

describe('tokenizers', () => {
  it('char: sorted vocabulary from the text, round trip, clear error on an unknown character', () => {
    const t = charTokenizer('hello world');
    expect(t.vocabSize).toBe(8);
    expect(t.decode(t.encode('world hello'))).toBe('world hello');
    expect(Array.from(t.encode(' dehlorw'))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(() => t.encode('xyz')).toThrow(/character "x" is not in this model's vocabulary/);
  });

  it('bpe: GPT-2 ids from the shipped vocabulary', async () => {
    const t = await bpeTokenizer();
    expect(t.vocabSize).toBe(50257);
    expect(Array.from(t.encode('Hello world'))).toEqual([15496, 995]); // GPT-2's ids
    expect(t.decode(t.encode('First Citizen:\nBefore we proceed'))).toBe('First Citizen:\nBefore we proceed');
  });
});

describe('batches', () => {
  const tok = charTokenizer('abcdefghij'.repeat(100));
  it('splits 90/10 and refuses a text too short for block_size', () => {
    const d = makeDataset('abcdefghij'.repeat(100), tok, 8);
    expect([d.train.length, d.val.length]).toEqual([900, 100]);
    expect(() => makeDataset('abcdefghij'.repeat(3), tok, 8)).toThrow(/validation split \(3\) needs more than block_size \(8\)/);
  });

  it('a global batch depends only on (seed, step), and slices of it are the rows of the whole', () => {
    const data = Int32Array.from({ length: 1000 }, (_, i) => i);
    const a = batchOffsets(1, 7, 8, data.length, 16);
    expect(batchOffsets(1, 7, 8, data.length, 16)).toEqual(a);
    expect(batchOffsets(1, 8, 8, data.length, 16)).not.toEqual(a);
    expect(Math.max(...a)).toBeLessThanOrEqual(1000 - 17);
    const whole = makeBatch(data, a, 0, 8, 16);
    const second = makeBatch(data, a, 4, 4, 16);
    expect(second.x).toEqual(whole.x.subarray(4 * 16));
    expect(Array.from(whole.y.subarray(0, 3))).toEqual(Array.from(whole.x.subarray(1, 4))); // y is x shifted by one
  });
});
