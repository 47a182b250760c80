// The last checkpoint (and the user's own corpus, if any) in IndexedDB, so a reload, a crash or a closed
// tab loses at most the steps since the last save. One slot: every save replaces the previous one.

import { del, delMany, get, set, setMany } from 'idb-keyval';
import type { RunConfig } from '../model/config';
import type { CheckpointHeader } from '../train/checkpoint';
import { CheckpointError } from '../model/llmc';
import type { DistOptions } from '../parallel/coordinator';

const CHECKPOINT = 'checkpoint:last';
const META = 'checkpoint:last:meta';
const CORPUS = 'corpus:last';

/** What the page shows about a saved checkpoint without reading the whole buffer. */
export interface CheckpointMeta {
  step: number;
  preset: RunConfig['preset'];
  config: RunConfig;
  savedAt: number; // ms since epoch
  bytes: number;
  source: string; // "autosave" or a file name
  corpus: string; // the corpus it was trained on
  dist?: DistOptions; // how it was trained (strategy, workers, transport, bucket size); none for a loaded file
}

/**
 * The header of a checkpoint (src/train/checkpoint.ts layout: "GPT2TFJS" | u32 version | u32 header
 * bytes | header JSON | ...), without copying the weights. decodeCheckpoint() checks the rest.
 */
export function readHeader(buf: ArrayBuffer): CheckpointHeader {
  if (buf.byteLength < 16 || new TextDecoder().decode(new Uint8Array(buf, 0, 8)) !== 'GPT2TFJS') {
    throw new CheckpointError('not a checkpoint of this trainer (it should start with "GPT2TFJS")');
  }
  const len = new DataView(buf).getUint32(12, true);
  if (16 + len > buf.byteLength) throw new CheckpointError('checkpoint is truncated: its header runs past the end of the file');
  try {
    return JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 16, len)));
  } catch {
    throw new CheckpointError('checkpoint header is not valid JSON: the file is corrupt');
  }
}

export function metaFor(buf: ArrayBuffer, source: string, corpus: string, dist?: DistOptions): CheckpointMeta {
  const h = readHeader(buf);
  return { step: h.step, preset: h.config.preset, config: h.config, savedAt: Date.now(), bytes: buf.byteLength, source, corpus, ...(dist ? { dist } : {}) };
}

/** Saves buffer and summary in one transaction, so a summary never points at a missing buffer. */
export async function saveCheckpoint(buf: ArrayBuffer, meta: CheckpointMeta): Promise<void> {
  await setMany([[CHECKPOINT, buf], [META, meta]]);
}

export async function loadMeta(): Promise<CheckpointMeta | null> {
  return (await get<CheckpointMeta>(META)) ?? null;
}

export async function loadCheckpoint(): Promise<ArrayBuffer | null> {
  return (await get<ArrayBuffer>(CHECKPOINT)) ?? null;
}

export async function forgetCheckpoint(): Promise<void> {
  await delMany([META, CHECKPOINT]);
}

/** The user's own corpus; the default one is fetched again instead. */
export async function saveCorpus(corpus: { name: string; text: string } | null): Promise<void> {
  if (corpus) await set(CORPUS, corpus);
  else await del(CORPUS);
}

export async function loadCorpus(): Promise<{ name: string; text: string } | null> {
  return (await get<{ name: string; text: string }>(CORPUS)) ?? null;
}
