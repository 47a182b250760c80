// Shared test helpers: the llm.c fixtures, a small corpus, and random parameters.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { parseExpected } from '../src/verify';
import type { ParamTable } from '../src/model/params';

export const fixtureDir = fileURLToPath(new URL('./fixtures/llmc-tiny/', import.meta.url));
export const shakespeare = readFileSync(fileURLToPath(new URL('../public/data/tinyshakespeare.txt', import.meta.url)), 'utf8');

export function readBuffer(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

/** An llm.c fixture of test/fixtures (llmc-tiny unless named): model.bin, state.bin and its AdamW losses. */
export function loadFixture(name = 'llmc-tiny') {
  const dir = fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url));
  return {
    model: readBuffer(dir + 'model.bin'),
    state: readBuffer(dir + 'state.bin'),
    adamw: parseExpected(readFileSync(dir + 'expected.json', 'utf8')),
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest |a - b| over every named tensor pair. */
export async function mapMaxDiff(a: Map<string, tf.Tensor>, b: Map<string, tf.Tensor>): Promise<number> {
  let m = 0;
  for (const [k, t] of a) m = Math.max(m, maxAbsDiff(await t.data(), await b.get(k)!.data()));
  return m;
}

/** Per parameter tensor of a flat vector: max |a - b| over max |ref|; the worst tensor, named. */
export function worstRelative(a: Float32Array, ref: Float32Array, table: ParamTable): { name: string; rel: number } {
  let worst = { name: '', rel: 0 };
  for (const p of table.params) {
    let diff = 0;
    let scale = 0;
    for (let i = p.offset; i < p.offset + p.size; i++) {
      diff = Math.max(diff, Math.abs(a[i] - ref[i]));
      scale = Math.max(scale, Math.abs(ref[i]));
    }
    const rel = diff / Math.max(scale, 1e-12);
    if (!(rel <= worst.rel)) worst = { name: p.name, rel };
  }
  return worst;
}
