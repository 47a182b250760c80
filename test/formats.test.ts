// (Long on purpose: one case per format and per bad file, each a few lines.)
// Models in and out (src/model/safetensors.ts, hf.ts, llmc.ts, formats.ts and `convert`): every format
// gives back exactly what it was given; llm.c -> Hugging Face -> llm.c is the original file byte for
// byte; the exported files compute GPT-2's numbers in an independent NumPy forward
// (scripts/numpy_gpt2.py) that reads them by hand: llm.c's logits and loss for the fixtures' weights,
// and this trainer's loss for a model it trained; and every broken file is refused with its reason.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initNodeBackend } from '../src/backend/node';
import { makeConfig, type ModelConfig, type RunConfig } from '../src/model/config';
import { buildParamTable, mixSeed, mulberry32 } from '../src/model/params';
import { readSafetensors, writeSafetensors } from '../src/model/safetensors';
import { readHf, writeHf, type HfFiles } from '../src/model/hf';
import { CheckpointError, paddedVocab, readLlmcModel, readLlmcState, writeLlmcModel } from '../src/model/llmc';
import { formatOf, readModel, writeModel } from '../src/model/formats';
import { encodeCheckpoint } from '../src/train/checkpoint';
import { Trainer } from '../src/train/trainer';
import { charTokenizer } from '../src/data/tokenizer';
import { batchOffsets, makeBatch, makeDataset } from '../src/data/dataset';
import { loadFixture, maxAbsDiff, readBuffer, shakespeare } from './helpers';
import { cli, root, type RunResult } from './run-cli';

const script = join(root, 'scripts/numpy_gpt2.py');
const tmp = mkdtempSync(join(tmpdir(), 'formats-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------------
// Helpers

/** Random values in every parameter (so a misplaced or transposed tensor shows), with -0 and a subnormal. */
function randomParams(config: ModelConfig, seed = 1): Float32Array {
  const p = new Float32Array(buildParamTable(config).total);
  const rand = mulberry32(mixSeed(seed, 77));
  for (let i = 0; i < p.length; i++) p[i] = (rand() - 0.5) * 2;
  p[3] = -0;
  p[5] = 1e-42;
  return p;
}

/** The files of writeModel as HfFiles (what readHf takes). */
function asHf(files: Map<string, ArrayBuffer | string>): HfFiles {
  return Object.fromEntries(files) as unknown as HfFiles;
}

/** Writes a model's files into a new folder under tmp and returns its path. */
function writeFolder(name: string, files: Map<string, ArrayBuffer | string> | HfFiles): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, data] of files instanceof Map ? files : Object.entries(files)) {
    writeFileSync(join(dir, f), typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer));
  }
  return dir;
}

/** A safetensors file from a header object and the data bytes (header padded with spaces). */
function safetensors(header: Record<string, unknown>, data: Uint8Array): ArrayBuffer {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out.buffer;
}

const f32bytes = (values: number[]) => new Uint8Array(new Float32Array(values).buffer);
const u16bytes = (bits: number[]) => new Uint8Array(new Uint16Array(bits).buffer);

function bytesEqual(a: ArrayBuffer, b: ArrayBuffer): boolean {
  if (a.byteLength !== b.byteLength) return false;
  const [x, y] = [new Uint8Array(a), new Uint8Array(b)];
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

// The NumPy reference: skipped, saying why, only where python3 or NumPy is missing.
const probe = spawnSync('python3', ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
const numpyMissing = probe.error ? `python3 is not installed (${probe.error.message})` : probe.status !== 0 ? `NumPy is not installed for python3 (${probe.stderr.trim().split('\n').pop()})` : '';

interface NumpyResult {
  shape: [number, number, number];
  logits: number[];
  loss: number | null;
}

/** scripts/numpy_gpt2.py on a model path and B rows of T tokens (x) with targets (y). */
function numpyGpt2(model: string, x: Int32Array, y: Int32Array, B: number, T: number): NumpyResult {
  const rows = (a: Int32Array) => Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
  const tokens = join(tmp, `tokens-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(tokens, JSON.stringify({ x: rows(x), y: rows(y) }));
  const out = execFileSync('python3', [script, model, tokens], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(out) as NumpyResult;
}

/** The trainer the checkpoint and the NumPy cases share: a char model trained 3 steps on the wasm backend. */
const text = shakespeare.slice(0, 100_000);
const tok = charTokenizer(text);
let trainer: Trainer;
let trainerLosses: number[] = [];

beforeAll(async () => {
  await initNodeBackend('wasm');
  const cfg: RunConfig = {
    ...makeConfig('tiny', { n_layer: 2, n_embd: 32, n_head: 4, block_size: 16, batch_size: 4, lr: 1e-2, warmup_iters: 0, seed: 3 }),
    vocab_size: tok.vocabSize,
  };
  trainer = new Trainer(cfg, makeDataset(text, tok, cfg.block_size));
  for (let i = 0; i < 3; i++) trainerLosses.push((await trainer.trainStep()).loss);
});
afterAll(() => trainer?.dispose());

// ---------------------------------------------------------------------------------------------------

describe('round trips', () => {
  const config: ModelConfig = { n_layer: 2, n_head: 2, n_embd: 8, block_size: 6, vocab_size: 11, dropout: 0 };

  it('Hugging Face: writeHf -> readHf gives the same params and config', () => {
    const cfg = { ...config, dropout: 0.1 };
    const params = randomParams(cfg);
    const files = writeHf(cfg, params);
    expect(Object.keys(files).sort()).toEqual(['config.json', 'model.safetensors']);
    const back = readHf(files);
    expect(back.params).toEqual(params);
    expect(back.config).toEqual(cfg);
    expect(back.tokenizer).toBeUndefined();
    // the data starts 8-byte aligned; every tensor is F32 under Hugging Face's names; lm_head is tied, not written
    const buf = files['model.safetensors'];
    expect((8 + Number(new DataView(buf).getBigUint64(0, true))) % 8).toBe(0);
    const { tensors, metadata } = readSafetensors(buf);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.get('transformer.h.1.attn.c_attn.weight')!.shape).toEqual([8, 24]); // Conv1D (in, out)
    expect(tensors.get('transformer.wte.weight')!.shape).toEqual([11, 8]);
    expect(tensors.has('lm_head.weight')).toBe(false);
    expect(tensors.size).toBe(buildParamTable(cfg).params.length);
    const hf = JSON.parse(files['config.json']);
    expect(hf).toMatchObject({ model_type: 'gpt2', n_positions: 6, n_embd: 8, n_layer: 2, n_head: 2, vocab_size: 11, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5, tie_word_embeddings: true });
  });

  it("Hugging Face: reads the hub's names (no transformer. prefix) and ignores lm_head and the attention buffers", () => {
    const params = randomParams(config, 2);
    const { tensors } = readSafetensors(writeHf(config, params)['model.safetensors']);
    const hub: [string, { shape: number[]; data: Float32Array }][] = [...tensors].map(([n, t]) => [n.replace(/^transformer\./, ''), t]);
    hub.push(['lm_head.weight', tensors.get('transformer.wte.weight')!]);
    hub.push(['h.0.attn.bias', { shape: [1, 1, 6, 6], data: new Float32Array(36).fill(1) }]);
    const back = readHf({ 'model.safetensors': writeSafetensors(hub, {}), 'config.json': writeHf(config, params)['config.json'] });
    expect(back.params).toEqual(params);
  });

  it('Hugging Face: a char tokenizer survives the folder (char_vocab.json)', () => {
    const chars = 'abc d\nfg!é😀'; // 11 characters, one outside the BMP
    expect([...chars]).toHaveLength(config.vocab_size);
    const params = randomParams(config, 3);
    const files = writeHf(config, params, { kind: 'char', chars });
    expect(files['char_vocab.json']).toBeDefined();
    const back = readHf(files);
    expect(back.tokenizer).toEqual({ kind: 'char', chars });
    expect(back.params).toEqual(params);
  });

  it('llm.c: writeLlmcModel -> readLlmcModel gives the same params and config (vocabulary padded to 128)', () => {
    const params = randomParams(config, 4);
    const buf = writeLlmcModel(config, params);
    expect(Array.from(new Int32Array(buf, 0, 8))).toEqual([20240326, 3, 6, 11, 2, 2, 8, 128]);
    expect(new Int32Array(buf, 32, 248).every((v) => v === 0)).toBe(true);
    const back = readLlmcModel(buf);
    expect(back.params).toEqual(params);
    expect(back.config).toEqual(config);
    expect(back.paddedVocab).toBe(paddedVocab(11));
    // wte's padding rows are zero
    expect(new Float32Array(buf, 1024 + 11 * 8 * 4, (128 - 11) * 8).every((v) => v === 0)).toBe(true);
  });

  it('formatOf chooses by name', () => {
    expect(formatOf('a/model.bin', 'file')).toBe('llmc');
    expect(formatOf('a/model.safetensors', 'file')).toBe('hf');
    expect(formatOf('a/some.dir.name', 'folder')).toBe('hf');
    expect(formatOf('a/new-model/', 'new')).toBe('hf');
    expect(formatOf('a/run.ckpt', 'new')).toBe('checkpoint');
    expect(formatOf('a/run.ckpt', 'file')).toBe('checkpoint');
  });

  it("a trainer checkpoint goes through readModel/writeModel unchanged (even named *.bin), and to HF with its tokenizer", async () => {
    const ckpt = await trainer.toCheckpoint({ losses: trainerLosses });
    const bytes = encodeCheckpoint(ckpt);
    for (const format of ['checkpoint', 'llmc'] as const) {
      const m = readModel({ format, bytes }, 'run.ckpt');
      expect(m.checkpoint).toBeDefined();
      expect(m.params).toEqual(ckpt.params);
      expect(m.tokenizer).toEqual(tok.spec());
      const out = writeModel(m, 'checkpoint', 'out.ckpt');
      expect([...out.keys()]).toEqual(['']);
      expect(bytesEqual(out.get('') as ArrayBuffer, bytes)).toBe(true);
    }
    const hf = readHf(asHf(writeModel(readModel({ format: 'checkpoint', bytes }, 'run.ckpt'), 'hf', 'out')));
    expect(hf.params).toEqual(ckpt.params);
    expect(hf.tokenizer).toEqual(tok.spec());
    const { n_layer, n_head, n_embd, block_size, vocab_size, dropout } = ckpt.header.config;
    expect(hf.config).toEqual({ n_layer, n_head, n_embd, block_size, vocab_size, dropout });
  });

  it('llm.c or HF weights do not make a trainer checkpoint: it says to use train --init', () => {
    const m = readModel({ format: 'llmc', bytes: loadFixture().model }, 'model.bin');
    expect(() => writeModel(m, 'checkpoint', 'out.ckpt')).toThrow(/out\.ckpt: .*train --init/);
  });
});

describe.each(['llmc-tiny', 'llmc-wide'])('llm.c fixture %s', (name) => {
  const fx = loadFixture(name);

  it('-> HF files -> llm.c .bin is the original model.bin, byte for byte', () => {
    const m = readModel({ format: 'llmc', bytes: fx.model }, 'model.bin');
    const hf = writeModel(m, 'hf', 'out');
    expect([...hf.keys()].sort()).toEqual(['config.json', 'model.safetensors']);
    const back = readModel({ format: 'hf', hf: asHf(hf) }, 'out');
    expect(back.params).toEqual(m.params);
    expect(back.config).toEqual(m.config);
    const bin = writeModel(back, 'llmc', 'back.bin').get('')! as ArrayBuffer;
    expect(bin.byteLength).toBe(fx.model.byteLength);
    expect(bytesEqual(bin, fx.model)).toBe(true);
  });

  describe.skipIf(numpyMissing !== '')(`NumPy reference (scripts/numpy_gpt2.py)${numpyMissing ? ` skipped: ${numpyMissing}` : ''}`, () => {
    const model = readLlmcModel(fx.model);
    const state = readLlmcState(fx.state, model);
    const { B, T } = state;
    const V = model.config.vocab_size;

    const check = (r: NumpyResult, from: string) => {
      expect(r.shape).toEqual([B, T, V]);
      const dLogits = maxAbsDiff(r.logits, state.logits);
      const dLoss = Math.abs(r.loss! - state.loss);
      console.log(`${name} ${from}: numpy vs llm.c: logits max |diff| ${dLogits.toExponential(2)}, loss |diff| ${dLoss.toExponential(2)}`);
      expect(dLogits).toBeLessThan(1e-5);
      expect(dLoss).toBeLessThan(1e-5);
    };

    it("from the HF folder: llm.c's logits and loss within 1e-5", () => {
      const dir = writeFolder(`${name}-hf`, writeModel(readModel({ format: 'llmc', bytes: fx.model }, 'model.bin'), 'hf', 'out'));
      check(numpyGpt2(dir, state.x, state.y, B, T), 'HF folder');
    });

    it("from the llm.c .bin: llm.c's logits and loss within 1e-5", () => {
      check(numpyGpt2(join(root, `test/fixtures/${name}/model.bin`), state.x, state.y, B, T), 'model.bin');
    });
  });
});

describe.skipIf(numpyMissing !== '')(`a model this trainer trained, exported${numpyMissing ? ` (skipped: ${numpyMissing})` : ''}`, () => {
  it("NumPy's loss on its .bin and on its HF folder equals the trainer's loss on the same batch within 1e-5", async () => {
    expect(trainer.step).toBe(3);
    expect(trainerLosses.every(Number.isFinite)).toBe(true);
    const { batch_size: B, block_size: T, seed } = trainer.cfg;
    const data = trainer.data.val;
    const batch = makeBatch(data, batchOffsets(mixSeed(seed, 2), 0, B, data.length, T), 0, B, T); // as evalLoss does
    const lossT = trainer.model.loss((n) => trainer.params.get(n)!, batch);
    const ours = (await lossT.data())[0];
    lossT.dispose();
    expect(ours).toBeCloseTo(await trainer.evalLoss('val', 1), 6);

    const params = await trainer.exportParams();
    const bin = join(tmp, 'trained.bin');
    writeFileSync(bin, new Uint8Array(writeLlmcModel(trainer.cfg, params)));
    const dir = writeFolder('trained-hf', writeHf(trainer.cfg, params, tok.spec()));
    for (const [from, path] of [['.bin', bin], ['HF folder', dir]]) {
      const r = numpyGpt2(path, batch.x, batch.y, B, T);
      expect(r.shape).toEqual([B, T, tok.vocabSize]);
      const d = Math.abs(r.loss! - ours);
      console.log(`trained model ${from}: numpy loss ${r.loss} vs trainer ${ours}: |diff| ${d.toExponential(2)}`);
      expect(d).toBeLessThan(1e-5);
    }
  });
});

// ---------------------------------------------------------------------------------------------------

describe('bad files', () => {
  const config: ModelConfig = { n_layer: 1, n_head: 2, n_embd: 4, block_size: 3, vocab_size: 5, dropout: 0 };
  const good = () => writeHf(config, randomParams(config, 9));

  it('safetensors shorter than 8 bytes', () => {
    expect(() => readSafetensors(new ArrayBuffer(5))).toThrow(/5 bytes, shorter than the 8-byte header length/);
  });

  it('a header length beyond the file', () => {
    const buf = new Uint8Array(20);
    new DataView(buf.buffer).setBigUint64(0, 1000n, true);
    expect(() => readSafetensors(buf.buffer)).toThrow(/header says 1000 bytes of JSON, but the file has 12/);
    new DataView(buf.buffer).setBigUint64(0, 2n ** 63n, true); // beyond any number's precision
    expect(() => readSafetensors(buf.buffer)).toThrow(/header says .* bytes of JSON/);
  });

  it('a header that is not JSON, or not an object', () => {
    const text = (s: string) => {
      const json = new TextEncoder().encode(s);
      const out = new Uint8Array(8 + json.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
      out.set(json, 8);
      return out.buffer;
    };
    expect(() => readSafetensors(text('{"a": {"dtype": '))).toThrow(/header is not valid JSON/);
    expect(() => readSafetensors(text('[1, 2]'))).toThrow(/header is not a JSON object/);
  });

  it('a tensor whose offsets run past the data, or whose size does not match its shape', () => {
    expect(() => readSafetensors(safetensors({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32bytes([1, 2, 3]))))
      .toThrow(/tensor "w" \(F32 \[4\]\) claims bytes 0 to 16 of 12/);
    expect(() => readSafetensors(safetensors({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 12] } }, f32bytes([1, 2, 3]))))
      .toThrow(/tensor "w" .*the header lies about its offsets or size/);
    expect(() => readSafetensors(safetensors({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, f32bytes([1]))))
      .toThrow(/tensor "w" .*claims bytes -4 to 0/);
  });

  it('two tensors overlapping', () => {
    const header = {
      a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
      b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
    };
    expect(() => readSafetensors(safetensors(header, f32bytes([1, 2, 3, 4, 5, 6])))).toThrow(/tensors "a" and "b" overlap/);
  });

  it('dtype I64', () => {
    const header = { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } };
    expect(() => readSafetensors(safetensors(header, new Uint8Array(16)))).toThrow(/tensor "ids" is I64; this reads F32, F16 and BF16/);
  });

  it('F16 and BF16 are widened to float32 on load', () => {
    const header = {
      __metadata__: { format: 'pt' },
      h: { dtype: 'F16', shape: [2, 4], data_offsets: [0, 16] },
      b: { dtype: 'BF16', shape: [5], data_offsets: [16, 26] },
    };
    const data = new Uint8Array(26);
    // F16: 1, -2, 0.5, 65504 (largest), 2^-24 (smallest subnormal), 2^-14 (smallest normal), -0, 0.333251953125
    data.set(u16bytes([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x0400, 0x8000, 0x3555]), 0);
    // BF16: 1, -2.5, 3.140625, 65536, 2^-133 (subnormal)
    data.set(u16bytes([0x3f80, 0xc020, 0x4049, 0x4780, 0x0001]), 16);
    const { tensors, metadata } = readSafetensors(safetensors(header, data));
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.get('h')!.shape).toEqual([2, 4]);
    expect(Array.from(tensors.get('h')!.data)).toEqual([1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, -0, 0.333251953125]);
    expect(Array.from(tensors.get('b')!.data)).toEqual([1, -2.5, 3.140625, 65536, Math.fround(2 ** -133)]);
    expect(tensors.get('b')!.data).toBeInstanceOf(Float32Array);
  });

  it('shapes that do not match config.json', () => {
    const files = good();
    const c = JSON.parse(files['config.json']);
    expect(() => readHf({ ...files, 'config.json': JSON.stringify({ ...c, n_positions: 7, n_ctx: 7 }) }))
      .toThrow(/transformer\.wpe\.weight is \[3,4\], config\.json's model needs \[7,4\]/);
  });

  it('a missing tensor', () => {
    const files = good();
    const { tensors } = readSafetensors(files['model.safetensors']);
    tensors.delete('transformer.h.0.mlp.c_proj.bias');
    const st = writeSafetensors([...tensors], { format: 'pt' });
    expect(() => readModel({ format: 'hf', hf: { ...files, 'model.safetensors': st } }, 'my-model'))
      .toThrow(/^my-model: model\.safetensors has no tensor transformer\.h\.0\.mlp\.c_proj\.bias/);
  });

  it('NaN weights (Hugging Face and llm.c)', () => {
    const params = randomParams(config, 10);
    const table = buildParamTable(config);
    params[table.byName.get('h.0.attn.c_proj.weight')!.offset + 5] = NaN;
    expect(() => readHf(writeHf(config, params))).toThrow(/transformer\.h\.0\.attn\.c_proj\.weight holds NaN at element 5/);
    expect(() => readLlmcModel(writeLlmcModel(config, params))).toThrow(/h\.0\.attn\.c_proj\.weight holds NaN at element 5 .*the weights are broken/);
    params.fill(0);
    params[table.byName.get('ln_f.bias')!.offset] = -Infinity;
    expect(() => readLlmcModel(writeLlmcModel(config, params))).toThrow(/ln_f\.bias holds -Infinity at element 0/);
  });

  it('a folder without config.json, and a config.json that is not GPT-2', () => {
    const files = good();
    expect(() => readModel({ format: 'hf', hf: { 'model.safetensors': files['model.safetensors'] } }, 'some/dir'))
      .toThrow(/^some\/dir: no config\.json beside the weights/);
    expect(() => readHf({ ...files, 'config.json': '{"model_type": "llama"}' })).toThrow(/model_type "llama"/);
    expect(() => readHf({ ...files, 'config.json': '{nope' })).toThrow(/config\.json is not valid JSON/);
    expect(() => readHf({ ...files, 'config.json': 'null' })).toThrow(/config\.json must hold a JSON object, got null/);
    expect(() => readHf({ ...files, 'char_vocab.json': '{nope' })).toThrow(CheckpointError); // not a bare SyntaxError
    expect(() => readHf({ ...files, 'char_vocab.json': 'null' })).toThrow(/char_vocab\.json must hold a JSON object/);
    const c = JSON.parse(files['config.json']);
    expect(() => readHf({ ...files, 'config.json': JSON.stringify({ ...c, activation_function: 'relu' }) })).toThrow(/activation_function "relu"/);
    expect(() => readHf({ ...files, 'char_vocab.json': '{"chars": "ab"}' })).toThrow(/char_vocab\.json must hold .* 5 characters/);
  });

  it('an llm.c file with a wrong magic, version, or truncated data', () => {
    const buf = writeLlmcModel(config, randomParams(config, 11));
    const patched = (i: number, v: number) => {
      const b = buf.slice(0);
      new Int32Array(b, 0, 8)[i] = v;
      return b;
    };
    expect(() => readLlmcModel(patched(0, 20240327))).toThrow(CheckpointError);
    expect(() => readLlmcModel(patched(0, 20240327))).toThrow(/magic 20240327, expected 20240326/);
    expect(() => readLlmcModel(patched(1, 5))).toThrow(/version 5; this reader takes llm\.c version 3/);
    expect(() => readLlmcModel(buf.slice(0, buf.byteLength - 4))).toThrow(/model file is \d+ bytes but its header .* implies \d+: truncated/);
    expect(() => readLlmcModel(buf.slice(0, 100))).toThrow(/100 bytes, shorter than llm\.c's 1024-byte header/);
    expect(() => readModel({ format: 'llmc', bytes: patched(1, 5) }, 'x.bin')).toThrow(/^x\.bin: model file is version 5/);
  });
});

// ---------------------------------------------------------------------------------------------------

type Result = RunResult;

function expectOneLineError(r: Result, code: number, mentions: RegExp) {
  expect(r.code, r.stderr).toBe(code);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(mentions);
}

describe('convert (CLI)', () => {
  const bin = join(root, 'test/fixtures/llmc-tiny/model.bin');

  it('needs IN and OUT (exit 2)', async () => {
    expectOneLineError(await cli('convert', bin), 2, /convert needs IN and OUT, got 1 path/);
  });

  it('llm.c -> HF folder -> llm.c: the original file; an existing OUT is kept without --force (exit 2)', async () => {
    const dir = join(tmp, 'cli-hf');
    const r1 = await cli('convert', bin, dir);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.stdout).toMatch(/2 layers, 4 heads, n_embd 64, block 32, vocabulary 65/);
    expect(existsSync(join(dir, 'config.json'))).toBe(true);

    const out = join(tmp, 'cli-existing.bin');
    writeFileSync(out, 'keep me');
    expectOneLineError(await cli('convert', dir, out), 2, /already exists: pass --force/);
    expect(readFileSync(out, 'utf8')).toBe('keep me');

    const r2 = await cli('convert', dir, out, '--force');
    expect(r2.code, r2.stderr).toBe(0);
    expect(bytesEqual(readBuffer(out), readBuffer(bin))).toBe(true);
  });

  it('an llm.c model to a trainer checkpoint: exit 1, use train --init, nothing written', async () => {
    const out = join(tmp, 'cli-out.ckpt');
    expectOneLineError(await cli('convert', bin, out), 1, /train --init/);
    expect(existsSync(out)).toBe(false);
  });
});
