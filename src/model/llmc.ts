// llm.c's file formats (karpathy/llm.c, train_gpt2.c): the model checkpoint (magic 20240326, version 3)
// and the debug state (magic 20240327, version 2). Reading them lets an llm.c user continue training in
// the browser, and lets the tests compare this GPT-2 against llm.c's numbers for the same weights.
//
// llm.c stores each weight (out, in) and groups tensors by kind across layers (all ln1w, then all qkvw, ...);
// this project stores (in, out) and groups by unit. The table below is the whole mapping.

import type { ModelConfig } from './config';
import { buildParamTable, type ParamTable } from './params';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

const MODEL_MAGIC = 20240326;
const STATE_MAGIC = 20240327;
const HEADER_INTS = 256;

interface LlmcTensor {
  kind: string; // llm.c's name
  perLayer: boolean;
  shape: (C: number, Vp: number, maxT: number) => number[]; // llm.c's shape of one layer's slice
  ours: (l: number) => string;
  transpose: boolean; // llm.c (out, in) -> ours (in, out)
}

const LLMC_TENSORS: LlmcTensor[] = [
  { kind: 'wte', perLayer: false, shape: (C, Vp) => [Vp, C], ours: () => 'wte', transpose: false },
  { kind: 'wpe', perLayer: false, shape: (C, _Vp, T) => [T, C], ours: () => 'wpe', transpose: false },
  { kind: 'ln1w', perLayer: true, shape: (C) => [C], ours: (l) => `h.${l}.ln_1.weight`, transpose: false },
  { kind: 'ln1b', perLayer: true, shape: (C) => [C], ours: (l) => `h.${l}.ln_1.bias`, transpose: false },
  { kind: 'qkvw', perLayer: true, shape: (C) => [3 * C, C], ours: (l) => `h.${l}.attn.c_attn.weight`, transpose: true },
  { kind: 'qkvb', perLayer: true, shape: (C) => [3 * C], ours: (l) => `h.${l}.attn.c_attn.bias`, transpose: false },
  { kind: 'attprojw', perLayer: true, shape: (C) => [C, C], ours: (l) => `h.${l}.attn.c_proj.weight`, transpose: true },
  { kind: 'attprojb', perLayer: true, shape: (C) => [C], ours: (l) => `h.${l}.attn.c_proj.bias`, transpose: false },
  { kind: 'ln2w', perLayer: true, shape: (C) => [C], ours: (l) => `h.${l}.ln_2.weight`, transpose: false },
  { kind: 'ln2b', perLayer: true, shape: (C) => [C], ours: (l) => `h.${l}.ln_2.bias`, transpose: false },
  { kind: 'fcw', perLayer: true, shape: (C) => [4 * C, C], ours: (l) => `h.${l}.mlp.c_fc.weight`, transpose: true },
  { kind: 'fcb', perLayer: true, shape: (C) => [4 * C], ours: (l) => `h.${l}.mlp.c_fc.bias`, transpose: false },
  { kind: 'fcprojw', perLayer: true, shape: (C) => [C, 4 * C], ours: (l) => `h.${l}.mlp.c_proj.weight`, transpose: true },
  { kind: 'fcprojb', perLayer: true, shape: (C) => [C], ours: (l) => `h.${l}.mlp.c_proj.bias`, transpose: false },
  { kind: 'lnfw', perLayer: false, shape: (C) => [C], ours: () => 'ln_f.weight', transpose: false },
  { kind: 'lnfb', perLayer: false, shape: (C) => [C], ours: () => 'ln_f.bias', transpose: false },
];

function llmcParamCount(L: number, C: number, Vp: number, maxT: number): number {
  let n = 0;
  for (const t of LLMC_TENSORS) n += (t.perLayer ? L : 1) * t.shape(C, Vp, maxT).reduce((a, b) => a * b, 1);
  return n;
}

/**
 * Copies llm.c's parameter-ordered floats (padded vocab Vp) into our flat layout (vocab V).
 * Used for the weights and, in the same order, for llm.c's gradients.
 */
function llmcToOurs(src: Float32Array, table: ParamTable, L: number, C: number, Vp: number, maxT: number): Float32Array {
  const out = new Float32Array(table.total);
  for (const { spec, llmc, rows, cols, transpose } of llmcTensors(table, L, C, Vp, maxT)) {
    const slice = src.subarray(llmc, llmc + rows * cols);
    const dst = out.subarray(spec.offset, spec.offset + spec.size);
    if (transpose) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = slice[r * cols + c]; // llm.c (out, in) -> ours (in, out)
    else dst.set(slice.subarray(0, spec.size)); // wte: keeps the first V of Vp rows
  }
  return out;
}

/** Every tensor of llm.c's file in its order: our parameter, its float offset in llm.c's data, llm.c's (rows, cols). */
function* llmcTensors(table: ParamTable, L: number, C: number, Vp: number, maxT: number) {
  let llmc = 0;
  for (const t of LLMC_TENSORS) {
    const shape = t.shape(C, Vp, maxT);
    const [rows, cols] = shape.length === 2 ? shape : [1, shape[0]];
    for (let l = 0; l < (t.perLayer ? L : 1); l++) {
      yield { spec: table.byName.get(t.ours(l))!, llmc, rows, cols, transpose: t.transpose };
      llmc += rows * cols;
    }
  }
}

export interface LlmcModel {
  config: ModelConfig; // vocab_size is the real V (llm.c pads to Vp)
  paddedVocab: number;
  table: ParamTable;
  params: Float32Array; // our flat layout
}

function header(buf: ArrayBuffer, what: string): Int32Array {
  if (buf.byteLength < HEADER_INTS * 4) {
    throw new CheckpointError(`${what} is ${buf.byteLength} bytes, shorter than llm.c's 1024-byte header: not an llm.c file`);
  }
  return new Int32Array(buf, 0, HEADER_INTS);
}

/** Parses llm.c's model checkpoint (gpt2_124M.bin and friends). */
export function readLlmcModel(buf: ArrayBuffer): LlmcModel {
  const h = header(buf, 'model file');
  if (h[0] !== MODEL_MAGIC) {
    throw new CheckpointError(`model file has magic ${h[0]}, expected ${MODEL_MAGIC}: not an llm.c GPT-2 checkpoint`);
  }
  if (h[1] !== 3) {
    throw new CheckpointError(`model file is version ${h[1]}; this reader takes llm.c version 3 (fp32). Re-export with llm.c's train_gpt2.py`);
  }
  const [maxT, V, L, NH, C, Vp] = [h[2], h[3], h[4], h[5], h[6], h[7]];
  if (!(maxT > 0 && V > 0 && L > 0 && NH > 0 && C > 0 && Vp >= V && C % NH === 0)) {
    throw new CheckpointError(`model file header is inconsistent (maxT ${maxT}, V ${V}, L ${L}, NH ${NH}, C ${C}, Vp ${Vp})`);
  }
  const count = llmcParamCount(L, C, Vp, maxT);
  const expected = HEADER_INTS * 4 + count * 4;
  if (buf.byteLength !== expected) {
    throw new CheckpointError(
      `model file is ${buf.byteLength} bytes but its header (L ${L}, C ${C}, Vp ${Vp}, maxT ${maxT}) implies ${expected}: truncated or corrupt`,
    );
  }
  const config: ModelConfig = { n_layer: L, n_head: NH, n_embd: C, block_size: maxT, vocab_size: V, dropout: 0 };
  const table = buildParamTable(config);
  const params = llmcToOurs(new Float32Array(buf, HEADER_INTS * 4, count), table, L, C, Vp, maxT);
  for (const p of table.params) { // as readHf: broken weights are refused here, not found as a NaN loss later
    const bad = params.subarray(p.offset, p.offset + p.size).findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointError(`model file: ${p.name} holds ${params[p.offset + bad]} at element ${bad} (of our (in, out) layout): the weights are broken`);
  }
  return { config, paddedVocab: Vp, table, params };
}

/** llm.c pads the vocabulary to a multiple of 128 (zero rows of wte) for its kernels. */
export const paddedVocab = (V: number) => Math.ceil(V / 128) * 128;

/**
 * Our flat layout as llm.c's model checkpoint (version 3, fp32): the header, then every tensor in
 * llm.c's order and (out, in) layout, wte padded with zero rows to paddedVocab(V). A file read with
 * readLlmcModel and written back is the same file, byte for byte (llm.c writes zero padding and a
 * zero header past its eight fields too).
 */
export function writeLlmcModel(config: ModelConfig, params: Float32Array): ArrayBuffer {
  const { n_layer: L, n_head: NH, n_embd: C, block_size: maxT, vocab_size: V } = config;
  const Vp = paddedVocab(V);
  const table = buildParamTable(config);
  if (params.length !== table.total) throw new CheckpointError(`${params.length} parameters do not make the model ${JSON.stringify(config)} (${table.total})`);
  const count = llmcParamCount(L, C, Vp, maxT);
  const out = new ArrayBuffer(HEADER_INTS * 4 + count * 4);
  new Int32Array(out, 0, 8).set([MODEL_MAGIC, 3, maxT, V, L, NH, C, Vp]);
  const dst = new Float32Array(out, HEADER_INTS * 4, count);
  for (const { spec, llmc, rows, cols, transpose } of llmcTensors(table, L, C, Vp, maxT)) {
    const src = params.subarray(spec.offset, spec.offset + spec.size);
    const slice = dst.subarray(llmc, llmc + rows * cols);
    if (transpose) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) slice[r * cols + c] = src[c * rows + r]; // ours (in, out) -> llm.c (out, in)
    else slice.set(src); // wte: rows V..Vp stay zero
  }
  return out;
}

export interface LlmcState {
  B: number;
  T: number;
  x: Int32Array;
  y: Int32Array;
  logits: Float32Array; // (B*T, V)
  loss: number;
  grads: Float32Array; // our flat layout
}

/** Parses llm.c's debug state (gpt2_124M_debug_state.bin) for the model it belongs to. */
export function readLlmcState(buf: ArrayBuffer, model: LlmcModel): LlmcState {
  const h = header(buf, 'state file');
  if (h[0] !== STATE_MAGIC) throw new CheckpointError(`state file has magic ${h[0]}, expected ${STATE_MAGIC}`);
  if (h[1] !== 2) throw new CheckpointError(`state file is version ${h[1]}; this reader takes version 2`);
  const [B, T] = [h[2], h[3]];
  const { n_layer: L, n_embd: C, block_size: maxT, vocab_size: V } = model.config;
  if (!(B > 0 && T > 0 && T <= maxT)) throw new CheckpointError(`state file has B ${B}, T ${T}; T must be 1..${maxT}`);
  const count = llmcParamCount(L, C, model.paddedVocab, maxT);
  const ints = B * T;
  const expected = HEADER_INTS * 4 + 2 * ints * 4 + ints * V * 4 + 4 + count * 4;
  if (buf.byteLength !== expected) {
    throw new CheckpointError(`state file is ${buf.byteLength} bytes, expected ${expected} for this model: wrong model or corrupt`);
  }
  let off = HEADER_INTS * 4;
  const x = new Int32Array(buf.slice(off, off + ints * 4)); off += ints * 4;
  const y = new Int32Array(buf.slice(off, off + ints * 4)); off += ints * 4;
  const logits = new Float32Array(buf.slice(off, off + ints * V * 4)); off += ints * V * 4;
  const loss = new Float32Array(buf.slice(off, off + 4))[0]; off += 4;
  const grads = llmcToOurs(new Float32Array(buf.slice(off)), model.table, L, C, model.paddedVocab, maxT);
  return { B, T, x, y, logits, loss, grads };
}
