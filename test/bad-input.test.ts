// Bad input gets a clear message, starts nothing and overwrites nothing: one table over the CLI (run as
// a user runs it: exit code, one `error: ...` line, no stack trace, no training step, an existing --json
// file untouched), the page's settings and links (src/ui/setup.ts), training texts (the check the CLI's
// --data and the page's corpus reader share, src/data/text.ts) and checkpoint files (ours and llm.c's).
// Each case names the input and the words its message must have: what was wrong, and what to do.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeConfig, type RunConfig } from '../src/model/config';
import { buildParamTable } from '../src/model/params';
import { readLlmcModel } from '../src/model/llmc';
import { makeDataset } from '../src/data/dataset';
import { charTokenizer } from '../src/data/tokenizer';
import { decodeCheckpoint, encodeCheckpoint, checkpointHeader, type Checkpoint, type CheckpointHeader } from '../src/train/checkpoint';
import { parseTrainOptions } from '../src/cli/train-options';
import { DEFAULT_DIST, fromQuery, memoryError, toConfig, toDist } from '../src/ui/setup';
import { readCorpusFile } from '../src/ui/corpus';
import { root, runTsx } from './run-cli';

const tmp = mkdtempSync(join(tmpdir(), 'bad-input-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---- inputs ------------------------------------------------------------------------------------------

const file = (name: string, content: string | Uint8Array) => {
  const path = join(tmp, name);
  writeFileSync(path, content);
  return path;
};
const repeat = (s: string, n: number) => s.repeat(n);
// A PNG's first bytes (with NULs), then noise: what `--data photo.png` reads.
const binary = Uint8Array.from({ length: 4000 }, (_, i) => (i < 8 ? [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a][i] : (i * 7919) % 256));
// Latin-1 (é is 0xE9 alone): valid in Windows-1252, invalid UTF-8.
const latin1 = Uint8Array.from(repeat('caf\u00e9 au lait, ol\u00e9! ', 100), (c) => c.charCodeAt(0));
// Valid UTF-8 without NUL bytes, but mostly control characters (a binary format that avoids 0x00).
const controls = new TextEncoder().encode(repeat('\x01\x02\x03\x1b\x7f ab', 300));
// What a lossy decode of a binary file gave before: U+FFFD replacement characters.
const replaced = new TextEncoder().encode(repeat('\ufffd\ufffdx', 400));
const utf16 = Uint8Array.from([0xff, 0xfe, ...[...repeat('To be or not to be. ', 50)].flatMap((c) => [c.charCodeAt(0), 0])]);
const whitespace = ' \n\t\r\n   \n'.repeat(50);
const short = 'To be or not to be, that is the question.'; // 41 tokens: no split holds block_size 32 + 1

const data = {
  binary: file('photo.png', binary),
  latin1: file('latin1.txt', latin1),
  whitespace: file('blank.txt', whitespace),
  short: file('short.txt', short),
};

// ---- a small checkpoint, and ways to make it lie ----------------------------------------------------------

const ckCfg: RunConfig = makeConfig('tiny', { n_layer: 1, n_head: 2, n_embd: 16, block_size: 8, vocab_size: 5 });
const ckTable = buildParamTable(ckCfg);

/** A valid checkpoint of ckCfg, with the arrays and the header changed by `edit` before encoding. */
function checkpoint(edit: (c: Checkpoint) => void = () => {}): ArrayBuffer {
  const n = ckTable.total;
  const c: Checkpoint = {
    header: checkpointHeader(ckCfg, { kind: 'char', chars: 'abcde' }, 3, 3, n, { losses: [2, 1.9, 1.8] }),
    params: Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.02),
    m: new Float32Array(n).fill(1e-4),
    v: new Float32Array(n).fill(1e-6),
  };
  edit(c);
  return encodeCheckpoint(c);
}

/** The same data under another header: a header that lies about its data. */
function relabel(buf: ArrayBuffer, edit: (h: CheckpointHeader) => unknown): ArrayBuffer {
  const len = new DataView(buf).getUint32(12, true);
  const old = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 16, len)));
  const next = edit(old);
  const json = new TextEncoder().encode(JSON.stringify(next === undefined ? old : next));
  const dataStart = Math.ceil((16 + json.length) / 4) * 4;
  const body = new Uint8Array(buf, Math.ceil((16 + len) / 4) * 4);
  const out = new Uint8Array(dataStart + body.length);
  out.set(new Uint8Array(buf, 0, 16));
  new DataView(out.buffer).setUint32(12, json.length, true);
  out.set(json, 16);
  out.set(body, dataStart);
  return out.buffer;
}

const offsetOf = (name: string) => ckTable.byName.get(name)!.offset;

// ---- how each kind of case is judged ----------------------------------------------------------------------

/** Errors a user may see: anything else (a TypeError, a RangeError) is a crash. */
const EXPECTED = new Set(['UsageError', 'ConfigError', 'CliError', 'DistError', 'CheckpointError', 'DataError', 'TokenizerError', 'CorpusError']);

/**
 * The message the user gets: what `fn` throws (one of the expected errors), or the message it returns
 * (the page's pure checks return theirs: a link's problems, a form's error).
 */
async function messageOf(fn: () => unknown): Promise<string> {
  try {
    const r = await fn();
    if (typeof r === 'string') return r;
  } catch (e) {
    const err = e as Error;
    expect(EXPECTED.has(err.name), `${err.name}: ${err.message}\n${err.stack}`).toBe(true);
    return err.message;
  }
  throw new Error('expected an error, got none');
}

/** The problems a link reports (it never throws), one per line. */
function linkProblems(search: string): string {
  const { problems } = fromQuery(search, 4);
  expect(problems.length, search).toBeGreaterThan(0);
  return problems.join(' | ');
}

/** The error the page shows for a link whose setting makeConfig refuses (Start stays disabled). */
function linkConfigError(search: string): string {
  const { setup } = fromQuery(search, 4);
  const r = toConfig(setup);
  expect(r.config).toBeNull();
  return r.error!;
}

/** The error the page shows for a link whose config is valid but more than one worker can hold (Start stays disabled). */
function linkMemoryError(search: string): string {
  const { setup } = fromQuery(search, 4);
  const r = toConfig(setup);
  const d = toDist(setup.dist);
  expect(r.error).toBeNull();
  const error = memoryError(r.config!, d.dist!);
  expect(error).not.toBeNull();
  return error!;
}

function distError(values: Partial<typeof DEFAULT_DIST>): string {
  const r = toDist({ ...DEFAULT_DIST, ...values });
  expect(r.dist).toBeNull();
  return r.error!;
}

const corpus = (name: string, bytes: Uint8Array<ArrayBuffer> | string) => () => readCorpusFile(new File([bytes], name), 32);


type Case =
  | { input: string; cli: string[]; bench?: boolean; code: 0 | 1 | 2; message: RegExp }
  | { input: string; call: () => unknown; message: RegExp };

const cases: Case[] = [
  // ---- the CLI, run as a user runs it (every `train` here also gets an existing --json file) ----
  { input: 'train --data photo.png (binary)', cli: ['train', '--preset', 'tiny', '--data', data.binary], code: 1,
    message: /photo\.png looks like a binary file \(it contains NUL bytes\), not plain text: choose a \.txt file/ },
  { input: 'train --data latin1.txt (not UTF-8)', cli: ['train', '--preset', 'tiny', '--data', data.latin1], code: 1,
    message: /latin1\.txt is not UTF-8 text .*: save it as UTF-8 plain text/ },
  { input: 'train --data blank.txt (whitespace only)', cli: ['train', '--preset', 'tiny', '--data', data.whitespace], code: 1,
    message: /blank\.txt holds only whitespace: choose a text file with some writing in it/ },
  { input: 'train --data short.txt (block_size beyond the data)', cli: ['train', '--preset', 'tiny', '--data', data.short], code: 1,
    message: /short\.txt: the text has 41 tokens; the 10% validation split \(5\) needs more than block_size \(32\) tokens\. Use a longer text .* or a smaller block_size/ },
  { input: 'train --set n_layer=1000000000 (absurd size)', cli: ['train', '--preset', 'tiny', '--set', 'n_layer=1000000000'], code: 2,
    message: /the model would have 5\.00e\+13 parameters \(n_layer 1000000000, n_embd 64, .*\); this trainer takes at most 1\.60B \(GPT-2 XL's size\): lower n_layer or n_embd/ },
  { input: 'train --preset toString (not a preset, though every object has it)', cli: ['train', '--preset', 'toString'], code: 2,
    message: /unknown preset "toString": choose one of tiny, shakespeare-cpu, baby, gpt2/ },
  { input: 'cli --help', cli: ['--help'], code: 0, message: /^Usage: npm run cli -- <command>/ },
  { input: 'cli train --help', cli: ['train', '--help'], code: 0, message: /^Usage: npm run cli -- train \[options\]/ },
  { input: 'cli verify-llmc --help', cli: ['verify-llmc', '--help'], code: 0, message: /^Usage: npm run cli -- verify-llmc DIR/ },
  { input: 'bench --help', cli: ['--help'], bench: true, code: 0, message: /^Usage: npm run bench -- \[options\]/ },
  { input: 'bench --only nope', cli: ['--only', 'nope'], bench: true, code: 2,
    message: /--only: unknown "nope", choose from [a-z, ]*browser, speed, collectives, scaling, fsdp[a-z, ]* \(see `npm run bench -- --help`\)/ }, // (the list grows with the bench)

  // ---- the CLI's flags -> config (the same code the runs above go through, without a process) ----
  { input: '--lr NaN', call: () => parseTrainOptions(['--lr', 'NaN']), message: /--lr needs a number, got "NaN"/ },
  { input: '--set lr=NaN', call: () => parseTrainOptions(['--set', 'lr=NaN']), message: /lr must be a number, got "NaN"/ },
  { input: '--batch 0', call: () => parseTrainOptions(['--batch', '0']), message: /batch_size must be at least 1, got 0/ },
  { input: '--batch 1000000000 (absurd)', call: () => parseTrainOptions(['--preset', 'tiny', '--batch', '1000000000']),
    message: /one micro-batch would need a tensor of 8\.19e\+12 numbers, 29\.8 TB of float32 for that tensor alone \(MLP, batch_size x block_size x 4 n_embd = 1000000000 x 32 x 256\); at most 1\.07B \(4\.0 GB\) fit: lower batch_size \(grad_accum/ },
  { input: '--steps 1e300 (absurd)', call: () => parseTrainOptions(['--steps', '1e300']), message: /max_iters must be at most 9007199254740991, got 1e\+300/ },
  { input: '--seed 2^40 (aliases a 32-bit seed)', call: () => parseTrainOptions(['--seed', String(2 ** 40)]), message: /seed must be at most 4294967295 \(seeds are 32-bit\)/ },
  { input: '--set n_head=3 (n_embd % n_head)', call: () => parseTrainOptions(['--preset', 'tiny', '--set', 'n_head=3']),
    message: /n_embd \(64\) must be divisible by n_head \(3\): each head gets n_embd \/ n_head channels/ },
  { input: '--block-size 128 (beyond the preset)', call: () => parseTrainOptions(['--preset', 'tiny', '--block-size', '128']),
    message: /block_size 128 is above what preset "tiny" allows \(32, the size of its position table\)/ },
  { input: '--steps 200 --set warmup_iters=300 (warm-up longer than the decay)', call: () => parseTrainOptions(['--preset', 'tiny', '--steps', '200', '--set', 'warmup_iters=300']),
    message: /warmup_iters \(300\) must be at most lr_decay_iters \(200\)/ },
  { input: '--strategy ddp --workers 9', call: () => parseTrainOptions(['--strategy', 'ddp', '--workers', '9']),
    message: /workers must be a whole number from 1 to 8, got 9/ },
  { input: '--strategy fsdp --workers 2 --inject nan:5@1 (no rank 5)', call: () => parseTrainOptions(['--strategy', 'fsdp', '--workers', '2', '--inject', 'nan:5@1']),
    message: /rank 5 does not exist \(ranks are 0 to 1\)/ },
  { input: '--inner-steps 5 without diloco', call: () => parseTrainOptions(['--strategy', 'ddp', '--workers', '2', '--inner-steps', '5']),
    message: /--inner-steps 5 needs --strategy diloco/ },
  { input: '--outer-compress int8 with the default strategy', call: () => parseTrainOptions(['--outer-compress', 'int8']), message: /--outer-compress int8 needs --strategy diloco/ },
  { input: '--strategy diloco --inner-steps 0', call: () => parseTrainOptions(['--strategy', 'diloco', '--workers', '2', '--inner-steps', '0']), message: /--inner-steps must be at least 1, got 0/ },
  { input: '--strategy diloco --inner-steps 2.5', call: () => parseTrainOptions(['--strategy', 'diloco', '--workers', '2', '--inner-steps', '2.5']), message: /--inner-steps needs a whole number, got "2.5"/ },
  { input: '--strategy diloco --outer-lr 0', call: () => parseTrainOptions(['--strategy', 'diloco', '--workers', '2', '--outer-lr', '0']), message: /--outer-lr must be a positive number, got 0/ },
  { input: '--strategy diloco --outer-momentum 1', call: () => parseTrainOptions(['--strategy', 'diloco', '--workers', '2', '--outer-momentum', '1']), message: /--outer-momentum must be below 1, got 1/ },
  { input: '--strategy diloco --outer-compress bf16', call: () => parseTrainOptions(['--strategy', 'diloco', '--workers', '2', '--outer-compress', 'bf16']), message: /--outer-compress must be one of none, fp16, int8, got "bf16"/ },
  { input: '--strategy diloco --on-nan skip', call: () => parseTrainOptions(['--strategy', 'diloco', '--workers', '2', '--on-nan', 'skip']), message: /on-nan skip does not apply to diloco/ },

  // ---- the page: its settings and links ----
  { input: 'form: strategy single with 4 workers', call: () => distError({ strategy: 'single', workers: '4' }), message: /strategy single runs one worker; use ddp, fsdp, tp, pp or diloco for 4 workers/ },
  { input: 'form: fsdp with prefetch "maybe"', call: () => distError({ strategy: 'fsdp', workers: '2', prefetch: 'maybe' }), message: /prefetch must be on or off, got "maybe"/ },
  { input: 'link ?preset=gpt3', call: () => linkProblems('?preset=gpt3'), message: /preset "gpt3", which does not exist \(choose one of tiny, .*\)\. Showing the default setup instead/ },
  { input: 'link ?preset=tiny&learning_rate=1 (unknown setting)', call: () => linkProblems('?preset=tiny&learning_rate=1'), message: /unknown setting "learning_rate"; it was ignored/ },
  { input: 'link ?preset=tiny&vocab_size=9', call: () => linkProblems('?preset=tiny&vocab_size=9'), message: /sets vocab_size, which the tokenizer decides; it was ignored/ },
  { input: 'link ?workers=4 (strategy single)', call: () => linkProblems('?preset=tiny&workers=4'), message: /asks for 4 workers, but strategy single runs one worker; choose strategy ddp, fsdp, tp, pp or diloco/ },
  { input: 'link ?strategy=ddp&workers=99', call: () => linkProblems('?strategy=ddp&workers=99'), message: /workers could not be used \(workers must be a whole number from 1 to 8, got 99\); using 4 instead/ },
  { input: 'link ?strategy=ddp&transport=pigeon', call: () => linkProblems('?strategy=ddp&workers=2&transport=pigeon'), message: /transport could not be used \(transport must be ring, star, shared or network, got "pigeon"\); using ring instead/ },
  { input: 'link ?lr=NaN', call: () => linkConfigError('?preset=tiny&lr=NaN'), message: /lr must be a number, got "NaN"/ },
  { input: 'link ?n_layer=abc (tampered)', call: () => linkConfigError('?preset=tiny&n_layer=abc'), message: /n_layer must be a number, got "abc"/ },
  { input: 'link ?n_embd=1048576 (absurd)', call: () => linkConfigError('?preset=tiny&n_embd=1048576'), message: /the model would have 2\.64e\+13 parameters \(n_layer 2, n_embd 1048576, vocab_size 65, block_size 32\); this trainer takes at most 1\.60B/ },
  { input: 'link ?batch_size=1000000000 (absurd)', call: () => linkConfigError('?preset=tiny&batch_size=1000000000'),
    message: /one micro-batch would need a tensor of 8\.19e\+12 numbers, 29\.8 TB of float32 for that tensor alone .*lower batch_size/ },
  { input: 'link ?grad_accum=1000000000 (absurd)', call: () => linkConfigError('?preset=tiny&grad_accum=1000000000'),
    message: /one step would take 4\.00B sequences per worker \(batch_size x grad_accum = 4 x 1000000000\); at most 1\.05M \(1048576\) are taken: lower grad_accum or batch_size/ },
  { input: 'link ?batch_size=100000 (more than a worker holds)', call: () => linkMemoryError('?preset=tiny&batch_size=100000'),
    message: /^one worker would need about 35\.1 GB \(35\.1 GB of activations for batch_size 100000 x block_size 32, [\d.]+ MB of weights and gradients\); a CPU worker \(32-bit WebAssembly\) holds at most 4\.0 GB: lower batch_size \(grad_accum .*\), block_size or n_layer, or train on a GPU \(backend webgpu\)$/ },
  { input: 'link ?n_layer=1000 (more than a worker holds)', call: () => linkMemoryError('?n_layer=1000'),
    message: /^one worker would need about 9\.9 GB \(8\.4 GB of activations for batch_size 12 x block_size 64, 1\.5 GB of weights and gradients\); a CPU worker .* holds at most 4\.0 GB/ },
  { input: 'link ?preset=gpt2&backend=webgpu&batch_size=8 (more than a GPU worker is given)', call: () => linkMemoryError('?preset=gpt2&backend=webgpu&batch_size=8'),
    message: /^one worker would need about 1\d\.\d GB \(.* of activations for batch_size 8 x block_size 1024, .* of weights, gradients and AdamW state\); a GPU worker \(backend webgpu\) holds at most 16\.0 GB: lower batch_size/ },
  { input: 'link ?max_iters=10&lr_decay_iters=20 (decay longer than the run)', call: () => linkConfigError('?preset=tiny&max_iters=10&lr_decay_iters=20'),
    message: /lr_decay_iters \(20\) must be at most max_iters \(10\).*Leave lr_decay_iters unset/ },
  { input: 'link ?warmup_iters=50&max_iters=20 (warm-up longer than the decay)', call: () => linkConfigError('?preset=tiny&max_iters=20&warmup_iters=50'),
    message: /warmup_iters \(50\) must be at most lr_decay_iters \(20\)/ },

  // ---- the page's training text (the same check as the CLI's --data) ----
  { input: 'corpus photo.png (binary)', call: corpus('photo.png', binary), message: /"photo\.png" looks like a binary file \(it contains NUL bytes\)/ },
  { input: 'corpus latin1.txt (not UTF-8)', call: corpus('latin1.txt', latin1), message: /"latin1\.txt" is not UTF-8 text .*save it as UTF-8 plain text/ },
  { input: 'corpus utf16.txt (UTF-16 with a BOM)', call: corpus('utf16.txt', utf16), message: /"utf16\.txt" is UTF-16 text: save it as UTF-8 plain text/ },
  { input: 'corpus of control characters (binary, no NUL)', call: corpus('data.bin', controls), message: /looks like a binary file \(\d+% of its characters are control or replacement characters\), not plain text/ },
  { input: 'corpus of U+FFFD (an earlier lossy decode)', call: corpus('mangled.txt', replaced), message: /"mangled\.txt" looks like a binary file \(67% of its characters are control or replacement characters\)/ },
  { input: 'corpus empty.txt', call: corpus('empty.txt', ''), message: /"empty\.txt" is empty: choose a text file with some writing in it/ },
  { input: 'corpus blank.txt (whitespace only)', call: corpus('blank.txt', whitespace), message: /"blank\.txt" holds only whitespace/ },
  { input: 'corpus short.txt (shorter than one window per split)', call: corpus('short.txt', short), message: /"short\.txt" is too short: .*validation split \(5\) needs more than block_size \(32\)/ },
  { input: 'dataset of 300 tokens, block_size 64', call: () => makeDataset('abc'.repeat(100), charTokenizer('abc'), 64), message: /the 10% validation split \(30\) needs more than block_size \(64\) tokens\. Use a longer text \(at least 660 tokens\)/ },

  // ---- checkpoints: ours (the page loads them; a resumed run decodes them) and llm.c's ----
  { input: 'checkpoint with NaN weights', call: () => decodeCheckpoint(checkpoint((c) => void (c.params[offsetOf('wpe') + 3] = NaN))),
    message: /checkpoint's weights hold NaN at wpe\[3\]: the saved model is broken; load an earlier checkpoint or start a new run/ },
  { input: 'checkpoint with an infinite AdamW m', call: () => decodeCheckpoint(checkpoint((c) => void (c.m[offsetOf('h.0.attn.c_attn.weight')] = Infinity))),
    message: /checkpoint's AdamW first moment \(m\) holds Infinity at h\.0\.attn\.c_attn\.weight\[0\]: its optimizer state is broken/ },
  { input: 'checkpoint with NaN in AdamW v', call: () => decodeCheckpoint(checkpoint((c) => void (c.v[7] = NaN))),
    message: /checkpoint's AdamW second moment \(v\) holds NaN at wte\[7\]/ },
  { input: 'checkpoint with a negative AdamW v', call: () => decodeCheckpoint(checkpoint((c) => void (c.v[offsetOf('ln_f.bias') + 2] = -1))),
    message: /checkpoint's AdamW second moment \(v\) holds -1 at ln_f\.bias\[2\]/ },
  { input: 'checkpoint whose header says another parameter count', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void (h.num_params = 999))),
    message: new RegExp(`checkpoint says 999 parameters but its config implies ${ckTable.total}: corrupt`) },
  { input: 'checkpoint whose header says another size (n_layer 2) than its data', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => {
    h.config.n_layer = 2;
    h.num_params = buildParamTable(h.config).total;
  })), message: new RegExp(`parameters its header describes, while its data holds ${ckTable.total} \\(its header does not match its data\\): truncated or corrupt`) },
  { input: 'checkpoint whose header claims an absurd model', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void (h.config.n_layer = 1e9))),
    message: /checkpoint holds an invalid config: the model would have .* parameters/ },
  { input: 'checkpoint whose vocabulary does not match its tokenizer', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void (h.tokenizer = { kind: 'char', chars: 'abc' }))),
    message: /checkpoint's char tokenizer has 3 tokens but its model's vocab_size is 5: the vocabulary does not match the weights/ },
  { input: 'checkpoint with a bpe tokenizer and a char config', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void (h.tokenizer = { kind: 'bpe' }))),
    message: /checkpoint's tokenizer is bpe but its config says char/ },
  { input: 'checkpoint of an unknown preset', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void ((h.config as { preset: string }).preset = 'gpt5'))),
    message: /checkpoint holds an invalid config: unknown preset "gpt5"/ },
  { input: 'checkpoint whose header is JSON null', call: () => decodeCheckpoint(relabel(checkpoint(), () => null as unknown as CheckpointHeader)),
    message: /checkpoint header has no config: the file is corrupt/ },
  { input: 'checkpoint with step -1', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void (h.step = -1))),
    message: /checkpoint header's step is -1, not a step count: the file is corrupt/ },
  { input: 'checkpoint with a malformed loss history', call: () => decodeCheckpoint(relabel(checkpoint(), (h) => void ((h as { losses: unknown }).losses = 'low'))),
    message: /checkpoint header's losses are not a list of numbers/ },
  { input: 'llm.c model.bin whose header says 3 layers', call: () => {
    const buf = readFileSync(join(root, 'test/fixtures/llmc-tiny/model.bin'));
    const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    new DataView(bytes.buffer).setInt32(16, 3, true); // L
    return readLlmcModel(bytes.buffer);
  }, message: /model file is \d+ bytes but its header \(L 3, .*\) implies \d+: truncated or corrupt/ },
];

describe('bad input: a clear message, nothing started, nothing overwritten', () => {
  it('has at least 25 cases, each with its message', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
    expect(new Set(cases.map((c) => c.input)).size).toBe(cases.length);
  });

  it('the checkpoint the bad ones are made from is good', () => {
    const c = decodeCheckpoint(checkpoint());
    expect(c.header.step).toBe(3);
    expect(c.params).toHaveLength(ckTable.total);
  });

  // Concurrent: the CLI cases are child processes, mostly waiting on their own start-up.
  it.concurrent.each(cases.map((c) => [c.input, c] as const))('%s', async (_input, c) => {
    if ('call' in c) {
      const message = await messageOf(c.call);
      expect(message).toMatch(c.message);
      expect(message).not.toContain('\n'); // one line
      return;
    }
    const isTrain = !c.bench && c.cli[0] === 'train';
    const json = join(tmp, `${c.input.replace(/\W+/g, '-')}.json`);
    const before = '{"kept": "an earlier run"}\n';
    if (isTrain) writeFileSync(json, before);
    const r = await runTsx(c.bench ? 'bench/run.ts' : 'src/cli/main.ts', isTrain ? [...c.cli, '--json', json] : c.cli);
    expect(r.code, r.stderr).toBe(c.code);
    expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
    if (c.code === 0) {
      expect(r.stdout).toMatch(c.message);
      expect(r.stderr).toBe('');
      return;
    }
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: /);
    expect(lines[0]).toMatch(c.message);
    expect(r.stdout).toBe('');
    expect(r.stderr).not.toMatch(/step 1\/|M parameters \(\d+ layers|worker thread/); // no training started
    if (isTrain) expect(readFileSync(json, 'utf8')).toBe(before); // the existing --json is untouched
  });
});
