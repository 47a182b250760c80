// Hugging Face's GPT-2 (transformers' GPT2LMHeadModel): a folder with model.safetensors and config.json
// that `GPT2LMHeadModel.from_pretrained(folder)` loads as it is.
// - Names: "transformer." + this project's names (wte and wpe get ".weight"): the parameter table was
//   named after Hugging Face's in the first place. Conv1D weights are (in, out), as they are here, so
//   nothing is transposed. lm_head is tied to wte: not written, and ignored when read. The attention
//   masks GPT-2 keeps as buffers (attn.bias, attn.masked_bias) are ignored. The hub's own files lack
//   the "transformer." prefix: both forms are read.
// - The tokenizer: GPT-2's BPE is Hugging Face's "gpt2" tokenizer as it is; a character vocabulary goes
//   in char_vocab.json ({"chars": "..."}: token i is the i-th character), which this trainer reads back.

import type { ModelConfig } from './config';
import { CheckpointError } from './llmc';
import { buildParamTable } from './params';
import { readSafetensors, writeSafetensors, type Tensor } from './safetensors';
import type { TokenizerSpec } from '../data/tokenizer';

/** Hugging Face's name of one of this project's parameters. */
const hfName = (ours: string) => `transformer.${ours === 'wte' || ours === 'wpe' ? `${ours}.weight` : ours}`;

/** The files of a Hugging Face GPT-2 folder, by name (contents: bytes or text). */
export interface HfFiles {
  'model.safetensors': ArrayBuffer;
  'config.json': string;
  'char_vocab.json'?: string;
}

export function writeHf(config: ModelConfig, params: Float32Array, tokenizer?: TokenizerSpec): HfFiles {
  const table = buildParamTable(config);
  if (params.length !== table.total) throw new CheckpointError(`${params.length} parameters do not make this model (${table.total})`);
  const tensors: [string, Tensor][] = table.params.map((p) => [hfName(p.name), { shape: p.shape, data: params.subarray(p.offset, p.offset + p.size) }]);
  const bpe = tokenizer?.kind === 'bpe';
  const hfConfig = {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: config.vocab_size,
    n_positions: config.block_size,
    n_ctx: config.block_size,
    n_embd: config.n_embd,
    n_layer: config.n_layer,
    n_head: config.n_head,
    n_inner: null,
    activation_function: 'gelu_new',
    layer_norm_epsilon: 1e-5,
    resid_pdrop: config.dropout,
    embd_pdrop: config.dropout,
    attn_pdrop: config.dropout,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    ...(bpe ? { bos_token_id: 50256, eos_token_id: 50256 } : {}),
  };
  return {
    'model.safetensors': writeSafetensors(tensors, { format: 'pt' }),
    'config.json': JSON.stringify(hfConfig, null, 2) + '\n',
    ...(tokenizer?.kind === 'char' ? { 'char_vocab.json': JSON.stringify({ chars: tokenizer.chars }) + '\n' } : {}),
  };
}

/** A Hugging Face GPT-2 (config.json and model.safetensors; char_vocab.json if the vocabulary is characters). */
export function readHf(files: Partial<HfFiles>): { config: ModelConfig; params: Float32Array; tokenizer?: TokenizerSpec } {
  if (files['config.json'] === undefined) {
    throw new CheckpointError('no config.json beside the weights: the number of heads cannot be read from the tensors. Put the model\'s config.json next to model.safetensors');
  }
  if (!files['model.safetensors']) throw new CheckpointError('no model.safetensors in the folder');
  const c = parseObject(files['config.json'], 'config.json');
  if (c.model_type !== undefined && c.model_type !== 'gpt2') throw new CheckpointError(`config.json says model_type "${c.model_type}": this trainer reads GPT-2 ("gpt2")`);
  const int = (key: string, fallback?: unknown) => {
    const v = c[key] ?? fallback;
    if (!Number.isInteger(v) || (v as number) < 1) throw new CheckpointError(`config.json: ${key} must be a positive whole number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const config: ModelConfig = {
    n_layer: int('n_layer'), n_head: int('n_head'), n_embd: int('n_embd'), block_size: int('n_positions', c.n_ctx), vocab_size: int('vocab_size'),
    dropout: typeof c.resid_pdrop === 'number' ? c.resid_pdrop : 0,
  };
  if (config.n_embd % config.n_head !== 0) throw new CheckpointError(`config.json: n_embd ${config.n_embd} is not divisible by n_head ${config.n_head}`);
  if (c.activation_function !== undefined && c.activation_function !== 'gelu_new') {
    throw new CheckpointError(`config.json: activation_function "${c.activation_function}"; this GPT-2 computes gelu_new (the tanh approximation)`);
  }
  const { tensors } = readSafetensors(files['model.safetensors'], 'model.safetensors');
  const table = buildParamTable(config);
  const params = new Float32Array(table.total);
  for (const p of table.params) {
    const t = tensors.get(hfName(p.name)) ?? tensors.get(hfName(p.name).slice('transformer.'.length));
    if (!t) throw new CheckpointError(`model.safetensors has no tensor ${hfName(p.name)}: not the GPT-2 that config.json describes`);
    if (t.shape.join() !== p.shape.join()) {
      throw new CheckpointError(`model.safetensors: ${hfName(p.name)} is ${JSON.stringify(t.shape)}, config.json's model needs ${JSON.stringify(p.shape)}`);
    }
    const bad = t.data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new CheckpointError(`model.safetensors: ${hfName(p.name)} holds ${t.data[bad]} at element ${bad}: the weights are broken`);
    params.set(t.data, p.offset);
  }
  let tokenizer: TokenizerSpec | undefined;
  if (files['char_vocab.json'] !== undefined) {
    const chars = parseObject(files['char_vocab.json'], 'char_vocab.json').chars;
    if (typeof chars !== 'string' || [...chars].length !== config.vocab_size) {
      throw new CheckpointError(`char_vocab.json must hold {"chars": "..."} with ${config.vocab_size} characters (vocab_size), got ${typeof chars === 'string' ? [...chars].length : typeof chars}`);
    }
    tokenizer = { kind: 'char', chars };
  } else if (config.vocab_size === 50257) tokenizer = { kind: 'bpe' };
  return { config, params, tokenizer };
}

/** A JSON file that must hold one object; anything else is the file's fault, said as such. */
function parseObject(text: string, name: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${name} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new CheckpointError(`${name} must hold a JSON object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  return v as Record<string, unknown>;
}
