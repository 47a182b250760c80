// A GPT-2's weights in the formats of the ecosystem, chosen by a file's name (or a folder):
//   llmc        *.bin: llm.c's model checkpoint (llmc.ts)
//   hf          *.safetensors or a folder: Hugging Face's GPT-2 (hf.ts)
//   checkpoint  anything else: this trainer's own checkpoint (src/train/checkpoint.ts), the only one
//               that also holds the optimizer state, the step, the training settings and the loss history
//   shards      a folder *.shards: the same, as FSDP's workers wrote it, one file per worker
//               (src/parallel/shards.ts)
// Pure (bytes in, bytes out): the CLI reads and writes files, the page Blobs.

import { validateConfig, type ModelConfig, type RunConfig } from './config';
import { buildParamTable } from './params';
import { CheckpointError, readLlmcModel, writeLlmcModel } from './llmc';
import { readHf, writeHf, type HfFiles } from './hf';
import { checkpointHeader, decodeCheckpoint, encodeCheckpoint, type Checkpoint } from '../train/checkpoint';
import type { TokenizerSpec } from '../data/tokenizer';
import { readShards } from '../parallel/shards';

export type ModelFormat = 'llmc' | 'hf' | 'checkpoint' | 'shards';

/**
 * The format a path means: a folder (one that exists, or a new name without an extension) is Hugging
 * Face's, as is *.safetensors; *.bin is llm.c's; any other file (say *.ckpt) this trainer's checkpoint.
 */
export function formatOf(path: string, is: 'folder' | 'file' | 'new'): ModelFormat {
  const name = path.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? '';
  if (/\.shards$/i.test(name)) return 'shards';
  if (is === 'folder' || /\.safetensors$/i.test(name) || (is === 'new' && !name.includes('.'))) return 'hf';
  if (/\.bin$/i.test(name)) return 'llmc';
  return 'checkpoint';
}

/** What a format's reader is given. */
export type ModelFiles =
  | { format: 'llmc' | 'checkpoint'; bytes: ArrayBuffer }
  | { format: 'hf'; hf: Partial<HfFiles> }
  | { format: 'shards'; index: string; file: (name: string) => ArrayBuffer | undefined };

/** A model read from any format: its shape, its weights in this project's flat layout, and (if known) its tokenizer. */
export interface ModelWeights {
  config: ModelConfig;
  params: Float32Array;
  tokenizer?: TokenizerSpec;
  checkpoint?: Checkpoint; // when it was this trainer's checkpoint: everything else it holds
}

/** This trainer's checkpoints begin with "GPT2TFJS" (older downloads were named *.bin). */
export function isTrainerCheckpoint(bytes: ArrayBuffer): boolean {
  return bytes.byteLength >= 8 && new TextDecoder().decode(new Uint8Array(bytes, 0, 8)) === 'GPT2TFJS';
}

export function readModel(files: ModelFiles, what: string): ModelWeights {
  if (files.format === 'llmc' && isTrainerCheckpoint(files.bytes)) files = { ...files, format: 'checkpoint' };
  try {
    if (files.format === 'hf') return readHf(files.hf);
    if (files.format === 'shards') {
      const c = readShards(files.index, files.file); // with every check a checkpoint gets
      return { config: c.header.config, params: c.params, tokenizer: c.header.tokenizer, checkpoint: c };
    }
    if (files.format === 'llmc') {
      const m = readLlmcModel(files.bytes);
      return { config: m.config, params: m.params };
    }
    const c = decodeCheckpoint(files.bytes);
    return { config: c.header.config, params: c.params, tokenizer: c.header.tokenizer, checkpoint: c };
  } catch (e) {
    if (e instanceof CheckpointError) throw new CheckpointError(`${what}: ${e.message}`);
    throw e;
  }
}

/**
 * A checkpoint that starts a run from these weights with a fresh optimizer (step 0): the model's shape
 * is the weights', everything else `settings`' (a preset's, the flags', the form's). The tokenizer must
 * have the weights' vocabulary. CheckpointError says what does not fit.
 */
export function startFromWeights(
  settings: RunConfig,
  weights: ModelWeights,
  tokenizer: TokenizerSpec,
  vocabSize: number,
  tokenizerSource?: string, // where the tokenizer's vocabulary came from (a text), for the message
): { config: RunConfig; checkpoint: ArrayBuffer } {
  const { n_layer, n_head, n_embd, block_size, vocab_size } = weights.config;
  if (vocabSize !== vocab_size) {
    throw new CheckpointError(
      `the weights have a vocabulary of ${vocab_size} tokens, the ${tokenizer.kind} tokenizer${tokenizerSource ? ` of ${tokenizerSource}` : ''} has ${vocabSize}: ` +
        'train on the text (or with the tokenizer) the model was made for',
    );
  }
  const config: RunConfig = { ...settings, n_layer, n_head, n_embd, block_size, vocab_size, tokenizer: tokenizer.kind };
  try {
    validateConfig(config, block_size);
  } catch (e) {
    throw new CheckpointError((e as Error).message);
  }
  const total = buildParamTable(config).total;
  const zeros = new Float32Array(total);
  return { config, checkpoint: encodeCheckpoint({ header: checkpointHeader(config, tokenizer, 0, 0, total, {}), params: weights.params, m: zeros, v: zeros }) };
}

/** The files of `format` (by name: model.safetensors, config.json, ...; one unnamed '' for single-file formats). */
export function writeModel(m: ModelWeights, format: ModelFormat, what: string): Map<string, ArrayBuffer | string> {
  if (format === 'llmc') return new Map([['', writeLlmcModel(m.config, m.params)]]);
  if (format === 'hf') return new Map(Object.entries(writeHf(m.config, m.params, m.tokenizer)));
  if (format === 'shards') throw new CheckpointError(`${what}: a sharded checkpoint is written by an FSDP run's workers, one file each (train --strategy fsdp --save NAME.shards); convert to a .ckpt instead`);
  if (!m.checkpoint) {
    throw new CheckpointError(`${what}: a trainer checkpoint also holds the training settings, the tokenizer and the optimizer state, which llm.c's and Hugging Face's files do not: start a run from these weights with train --init instead`);
  }
  return new Map([['', encodeCheckpoint(m.checkpoint)]]);
}
