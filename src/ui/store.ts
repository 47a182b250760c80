// The last checkpoint (and the user's own corpus, if any) in IndexedDB, so a reload, a crash or a closed
// tab loses at most the steps since the last save. One slot: every save replaces the previous one.
//
// Saves are atomic: a crash (or a full disk) at any moment of a save leaves the previous checkpoint
// whole and loadable. The checkpoint's bytes go under a new key first (`checkpoint:data:<id>`), then one
// write switches the pointer (`checkpoint:last:meta`: the summary the page shows, plus the key of the
// bytes) to it, then the old bytes are deleted. Loading reads through the pointer. A save cut short
// leaves at most unreferenced bytes behind, which the next save sweeps away. Checkpoints saved before
// this layout (bytes under `checkpoint:last`, a pointer without a key) load as they are: a pointer
// without a key points at `checkpoint:last`, and the first new save deletes it.
//
// The logic runs on any key-value store (`KV`): IndexedDB through idb-keyval on the page, a Map in the
// tests (test/store.test.ts), where writes can be made to fail midway.

import { del, get, keys, set } from 'idb-keyval';
import type { RunConfig } from '../model/config';
import type { CheckpointHeader } from '../train/checkpoint';
import { CheckpointError } from '../model/llmc';
import type { DistOptions } from '../parallel/coordinator';

const LEGACY_DATA = 'checkpoint:last'; // where the bytes lived before atomic saves
const META = 'checkpoint:last:meta'; // the pointer: the summary and the key of the bytes
const DATA_PREFIX = 'checkpoint:data:';
const CORPUS = 'corpus:last';

/** The few operations the checkpoint store needs from a key-value store (each one write or read). */
export interface KV {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

/** This browser's IndexedDB (idb-keyval's default database). */
export const idb: KV = {
  get: (key) => get(key),
  set: (key, value) => set(key, value),
  del: (key) => del(key),
  keys: async () => (await keys()).filter((k): k is string => typeof k === 'string'),
};

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

/** The pointer as stored: the summary, and where the bytes are (absent: a save of the old layout). */
interface Pointer extends CheckpointMeta {
  key?: string;
}

const dataKey = (p: Pointer) => p.key ?? LEGACY_DATA;
let saves = 0; // with the time, makes every save's key new even within one millisecond

/**
 * Saves a checkpoint without ever putting the previous one at risk: the bytes under a new key, then the
 * pointer switched to them in one write, then the old bytes deleted (and any left over by a save that
 * was cut short). If anything fails before the pointer is switched, the previous checkpoint is intact
 * and the error is thrown; a failure after it only leaves garbage that the next save sweeps.
 */
export function saveCheckpoint(buf: ArrayBuffer, meta: CheckpointMeta, kv: KV = idb): Promise<void> {
  // One save at a time (an autosave and a loaded file may overlap): a save's sweep must not delete the
  // bytes of another save that has not switched the pointer yet.
  const done = queue.then(() => save(buf, meta, kv));
  queue = done.catch(() => {});
  return done;
}

let queue: Promise<void> = Promise.resolve();

async function save(buf: ArrayBuffer, meta: CheckpointMeta, kv: KV): Promise<void> {
  const old = await kv.get<Pointer>(META);
  const key = `${DATA_PREFIX}${Date.now().toString(36)}-${(saves++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await kv.set(key, buf);
  } catch (e) {
    await kv.del(key).catch(() => {}); // a partial write, if the store kept any
    throw e;
  }
  try {
    await kv.set(META, { ...meta, key } satisfies Pointer); // the switch: one write
  } catch (e) {
    await kv.del(key).catch(() => {}); // the previous checkpoint is still the saved one
    throw e;
  }
  await sweep(kv, key, old ? dataKey(old) : null).catch(() => {}); // the new checkpoint is saved either way
}

/** Deletes every checkpoint's bytes but `keep`'s: the replaced one, and leftovers of interrupted saves. */
async function sweep(kv: KV, keep: string | null, old: string | null): Promise<void> {
  if (old && old !== keep) await kv.del(old);
  const stale = (await kv.keys()).filter((k) => k !== keep && (k.startsWith(DATA_PREFIX) || k === LEGACY_DATA));
  for (const k of stale) await kv.del(k);
}

export async function loadMeta(kv: KV = idb): Promise<CheckpointMeta | null> {
  const p = await kv.get<Pointer>(META);
  if (!p) return null;
  const { key: _key, ...meta } = p;
  return meta;
}

/** The checkpoint the pointer names (read again if a save switched it meanwhile). */
export async function loadCheckpoint(kv: KV = idb): Promise<ArrayBuffer | null> {
  for (let tries = 0; tries < 3; tries++) {
    const p = await kv.get<Pointer>(META);
    if (!p) return null;
    const buf = await kv.get<ArrayBuffer>(dataKey(p));
    if (buf) return buf;
    const now = await kv.get<Pointer>(META);
    if (!now || dataKey(now) === dataKey(p)) return null; // the pointer names bytes that are not there
  }
  return null;
}

/** Deletes the saved checkpoint: the pointer first, so no pointer is ever left naming missing bytes. */
export function forgetCheckpoint(kv: KV = idb): Promise<void> {
  const done = queue.then(async () => {
    await kv.del(META);
    await sweep(kv, null, null);
  });
  queue = done.catch(() => {});
  return done;
}

/** The user's own corpus; the default one is fetched again instead. */
export async function saveCorpus(corpus: { name: string; text: string } | null): Promise<void> {
  if (corpus) await set(CORPUS, corpus);
  else await del(CORPUS);
}

export async function loadCorpus(): Promise<{ name: string; text: string } | null> {
  return (await get<{ name: string; text: string }>(CORPUS)) ?? null;
}
