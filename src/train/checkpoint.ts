// A training checkpoint in one ArrayBuffer: what a reload, a download or a later session needs to
// continue exactly where a run stopped. Layout:
//   "GPT2TFJS" | u32 format version | u32 header bytes | header JSON (utf-8) | pad to 4 |
//   float32 params | float32 AdamW m | float32 AdamW v      (all three in the flat parameter layout)

import type { RunConfig } from '../model/config';
import { validateConfig } from '../model/config';
import { buildParamTable, type ParamTable } from '../model/params';
import { CheckpointError } from '../model/llmc';
import type { TokenizerSpec } from '../data/tokenizer';

const MAGIC = 'GPT2TFJS';
const VERSION = 1;

export interface CheckpointHeader {
  version: number;
  config: RunConfig;
  tokenizer: TokenizerSpec;
  step: number; // optimizer steps completed
  adam_t: number;
  num_params: number;
  losses?: number[]; // train loss per step so far, for the chart after a reload
  val_losses?: [number, number][];
}

export type History = { losses?: number[]; val_losses?: [number, number][] };

/**
 * The header of a checkpoint taken after `step` steps. The loss history may have been read a step
 * early or late relative to the weights (the page asks while training runs): keep what matches them.
 */
export function checkpointHeader(config: RunConfig, tokenizer: TokenizerSpec, step: number, adamT: number, numParams: number, history: History): CheckpointHeader {
  return {
    version: VERSION, config, tokenizer, step, adam_t: adamT, num_params: numParams,
    losses: history.losses?.slice(0, step),
    val_losses: history.val_losses?.filter(([s]) => s <= step),
  };
}

export interface Checkpoint {
  header: CheckpointHeader;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export function flatten(table: ParamTable, byName: Map<string, Float32Array>): Float32Array {
  const flat = new Float32Array(table.total);
  for (const p of table.params) {
    const a = byName.get(p.name);
    if (a) flat.set(a, p.offset);
  }
  return flat;
}

export function encodeCheckpoint(c: Checkpoint): ArrayBuffer {
  const json = new TextEncoder().encode(JSON.stringify(c.header));
  const headerEnd = 16 + json.length;
  const dataStart = Math.ceil(headerEnd / 4) * 4;
  const n = c.header.num_params;
  const buf = new ArrayBuffer(dataStart + 3 * n * 4);
  const bytes = new Uint8Array(buf);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  const dv = new DataView(buf);
  dv.setUint32(8, VERSION, true);
  dv.setUint32(12, json.length, true);
  bytes.set(json, 16);
  const floats = new Float32Array(buf, dataStart, 3 * n);
  floats.set(c.params, 0);
  floats.set(c.m, n);
  floats.set(c.v, 2 * n);
  return buf;
}

/** Parses and checks a checkpoint; every failure says what is wrong with the file. */
export function decodeCheckpoint(buf: ArrayBuffer): Checkpoint {
  if (buf.byteLength < 16 || new TextDecoder().decode(new Uint8Array(buf, 0, 8)) !== MAGIC) {
    throw new CheckpointError('not a checkpoint of this trainer (it should start with "GPT2TFJS"); for llm.c files use the llm.c import');
  }
  const dv = new DataView(buf);
  const version = dv.getUint32(8, true);
  if (version !== VERSION) throw new CheckpointError(`checkpoint format version ${version} is not supported (this build reads ${VERSION})`);
  const len = dv.getUint32(12, true);
  if (16 + len > buf.byteLength) throw new CheckpointError('checkpoint is truncated: its header runs past the end of the file');
  let header: CheckpointHeader;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(buf, 16, len)));
  } catch {
    throw new CheckpointError('checkpoint header is not valid JSON: the file is corrupt');
  }
  const table = checkHeader(header);
  const total = table.total;
  const dataStart = Math.ceil((16 + len) / 4) * 4;
  if (buf.byteLength !== dataStart + 3 * total * 4) {
    const held = (buf.byteLength - dataStart) / 12; // weights, m and v: 3 float32 per parameter
    const what = Number.isInteger(held) && held > 0 ? `, while its data holds ${held} (its header does not match its data)` : '';
    throw new CheckpointError(
      `checkpoint is ${buf.byteLength} bytes, expected ${dataStart + 3 * total * 4} for the ${total} parameters its header describes${what}: truncated or corrupt`,
    );
  }
  const floats = new Float32Array(buf, dataStart, 3 * total);
  const c = { header, params: floats.slice(0, total), m: floats.slice(total, 2 * total), v: floats.slice(2 * total) };
  checkState(c, table);
  return c;
}

/**
 * Every check of a checkpoint's header (config, tokenizer, step counts, history, parameter count),
 * before anything the size of the model is read or allocated; the model's parameter table.
 */
export function checkHeader(header: CheckpointHeader): ParamTable {
  if (typeof header !== 'object' || header === null || typeof header.config !== 'object' || header.config === null) {
    throw new CheckpointError('checkpoint header has no config: the file is corrupt');
  }
  try {
    validateConfig(header.config);
  } catch (e) {
    throw new CheckpointError(`checkpoint holds an invalid config: ${(e as Error).message}`);
  }
  checkTokenizer(header);
  for (const key of ['step', 'adam_t'] as const) {
    if (!Number.isSafeInteger(header[key]) || header[key] < 0) {
      throw new CheckpointError(`checkpoint header's ${key} is ${JSON.stringify(header[key])}, not a step count: the file is corrupt`);
    }
  }
  checkHistory(header);
  const table = buildParamTable(header.config);
  if (header.num_params !== table.total) {
    throw new CheckpointError(`checkpoint says ${header.num_params} parameters but its config implies ${table.total}: corrupt`);
  }
  return table;
}

/** The weights and AdamW's moments are finite (and v not negative): a broken state is refused, naming the tensor. */
export function checkState(c: Checkpoint, table: ParamTable): void {
  checkFinite(c.params, table, "checkpoint's weights hold", 'the saved model is broken');
  checkFinite(c.m, table, "checkpoint's AdamW first moment (m) holds", 'its optimizer state is broken');
  checkFinite(c.v, table, "checkpoint's AdamW second moment (v) holds", 'its optimizer state is broken', true);
}

/** The tokenizer must be the one the weights were trained with: its kind and size agree with the config. */
function checkTokenizer(header: CheckpointHeader): void {
  const t = header.tokenizer as { kind?: unknown; chars?: unknown } | undefined;
  const cfg = header.config;
  if (typeof t !== 'object' || t === null || (t.kind !== 'char' && t.kind !== 'bpe')) {
    throw new CheckpointError('checkpoint header has no tokenizer (char or bpe): the file is corrupt');
  }
  if (t.kind !== cfg.tokenizer) {
    throw new CheckpointError(`checkpoint's tokenizer is ${t.kind} but its config says ${cfg.tokenizer}: the header contradicts itself; the file is corrupt`);
  }
  let size: number;
  if (t.kind === 'bpe') size = 50257;
  else {
    if (typeof t.chars !== 'string' || t.chars.length === 0) throw new CheckpointError('checkpoint\'s char tokenizer has no characters: the file is corrupt');
    const chars = [...t.chars];
    if (new Set(chars).size !== chars.length) throw new CheckpointError('checkpoint\'s char tokenizer lists a character twice: the file is corrupt');
    size = chars.length;
  }
  if (size !== cfg.vocab_size) {
    throw new CheckpointError(
      `checkpoint's ${t.kind} tokenizer has ${size} tokens but its model's vocab_size is ${cfg.vocab_size}: ` +
        'the vocabulary does not match the weights; the file is corrupt',
    );
  }
}

/** The loss history (for the chart) is optional, but must be numbers when present. */
function checkHistory(header: CheckpointHeader): void {
  const { losses, val_losses: val } = header;
  const isNum = (x: unknown) => typeof x === 'number' || x === null; // JSON writes NaN as null
  if (losses !== undefined && !(Array.isArray(losses) && losses.every(isNum))) {
    throw new CheckpointError('checkpoint header\'s losses are not a list of numbers: the file is corrupt');
  }
  if (val !== undefined && !(Array.isArray(val) && val.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'number' && isNum(p[1])))) {
    throw new CheckpointError('checkpoint header\'s val_losses are not a list of [step, loss] pairs: the file is corrupt');
  }
}

/** Every number finite (v also not negative), else which tensor and parameter holds what. */
function checkFinite(a: Float32Array, table: ParamTable, what: string, consequence: string, nonNegative = false): void {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x - x === 0 && !(nonNegative && x < 0)) continue; // finite (NaN - NaN and Inf - Inf are NaN)
    const p = table.params.find((q) => i >= q.offset && i < q.offset + q.size);
    const where = p ? `${p.name}[${i - p.offset}]` : `element ${i}`;
    throw new CheckpointError(
      `${what} ${x} at ${where}: ${consequence}; load an earlier checkpoint or start a new run`,
    );
  }
}
