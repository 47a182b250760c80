// The corpus as token ids, split 90/10 into train and val (nanoGPT's prepare.py), and the batches.
//
// The global batch of step t is a pure function of (seed, t): G random windows of T+1 tokens. Each
// micro-batch (and, with DDP, each rank) takes a contiguous slice of it, so a run with N workers x
// batch b and a single worker with batch N*b see the same samples (see ../../README.md, Invariants).

import { mixSeed, mulberry32 } from '../model/params';
import type { Batch } from '../model/gpt';
import type { Tokenizer } from './tokenizer';

export class DataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataError';
  }
}

export interface Dataset {
  tokenizer: Tokenizer;
  train: Int32Array;
  val: Int32Array;
}

/** Tokenizes text and splits it; blockSize is checked so that every split holds at least one window. */
export function makeDataset(text: string, tokenizer: Tokenizer, blockSize: number): Dataset {
  const ids = tokenizer.encode(text);
  const n = Math.floor(ids.length * 0.9);
  const train = ids.subarray(0, n);
  const val = ids.subarray(n);
  const shortest = Math.min(train.length, val.length);
  if (shortest < blockSize + 1) {
    throw new DataError(
      `the text has ${ids.length} tokens; the 10% validation split (${val.length}) needs more than block_size (${blockSize}) tokens. ` +
        `Use a longer text (at least ${Math.ceil((blockSize + 2) / 0.1)} tokens) or a smaller block_size`,
    );
  }
  return { tokenizer, train, val };
}

/** Start offsets of the G windows of step `step` (deterministic in seed and step). */
export function batchOffsets(seed: number, step: number, G: number, tokens: number, T: number): Int32Array {
  const rand = mulberry32(mixSeed(seed, step, 0x5eed));
  const span = tokens - T - 1; // last valid start is tokens - T - 1
  const out = new Int32Array(G);
  for (let i = 0; i < G; i++) out[i] = Math.floor(rand() * (span + 1));
  return out;
}

/** Rows [from, from + B) of a global batch: inputs x and next-token targets y. */
export function makeBatch(data: Int32Array, offsets: Int32Array, from: number, B: number, T: number): Batch {
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const o = offsets[from + b];
    x.set(data.subarray(o, o + T), b * T);
    y.set(data.subarray(o + 1, o + T + 1), b * T);
  }
  return { B, T, x, y };
}
