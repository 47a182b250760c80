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
    header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 16, len)));
  } catch {
    throw new CheckpointError('checkpoint header is not valid JSON: the file is corrupt');
  }
  try {
    validateConfig(header.config);
  } catch (e) {
    throw new CheckpointError(`checkpoint holds an invalid config: ${(e as Error).message}`);
  }
  const total = buildParamTable(header.config).total;
  if (header.num_params !== total) {
    throw new CheckpointError(`checkpoint says ${header.num_params} parameters but its config implies ${total}: corrupt`);
  }
  const dataStart = Math.ceil((16 + len) / 4) * 4;
  if (buf.byteLength !== dataStart + 3 * total * 4) {
    throw new CheckpointError(`checkpoint is ${buf.byteLength} bytes, expected ${dataStart + 3 * total * 4}: truncated or corrupt`);
  }
  const floats = new Float32Array(buf, dataStart, 3 * total);
  const params = floats.slice(0, total);
  for (let i = 0; i < params.length; i++) {
    if (!Number.isFinite(params[i])) throw new CheckpointError(`checkpoint parameter ${i} is ${params[i]}: the saved model is broken`);
  }
  return { header, params, m: floats.slice(total, 2 * total), v: floats.slice(2 * total) };
}
