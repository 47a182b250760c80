// FSDP's sharded checkpoint on storage (a folder NAME.shards): every worker's own shards in its own
// file, written as each arrives, never put together:
//   index.json        {"format": "gpt2-tfjs-shards", "world": N, "header": the whole checkpoint's header}
//   rank-R-of-N.bin   rank R's shards (each unit's slice, unit by unit: layout.ts shardLayout) of the
//                     parameters, then of AdamW's m, then of v, float32
// Loading re-shards: the shards become one whole checkpoint, which any number of workers, and single or
// DDP, then slice as they need (src/parallel/rank.ts).

import { CheckpointError } from '../model/llmc';
import { checkHeader, checkpointHeader, checkState, type Checkpoint, type CheckpointHeader, type History } from '../train/checkpoint';
import { shardLayout, unshard } from './layout';
import type { ParamTable } from '../model/params';
import type { ShardState } from './protocol';

const FORMAT = 'gpt2-tfjs-shards';
const rankFile = (r: number, world: number) => `rank-${r}-of-${world}.bin`;

/** The header of the whole checkpoint every rank's shards make, with the run's loss history. */
const headerOf = (states: ShardState[], history: History): CheckpointHeader => {
  const h = states[0].header;
  return checkpointHeader(h.config, h.tokenizer, h.step, h.adam_t, h.num_params, history);
};

/** The whole checkpoint of every rank's shards, put together unit by unit (layout.ts unshard). */
export function assembleShards(
  states: Omit<ShardState, 'header'>[], header: CheckpointHeader, table: ParamTable,
  whole1: (parts: Float32Array[], table: ParamTable) => Float32Array = unshard,
): Checkpoint {
  const whole = (k: 'params' | 'm' | 'v') => whole1(states.map((s) => s[k]), table);
  return { header, params: whole('params'), m: whole('m'), v: whole('v') };
}

/**
 * The whole checkpoint from every rank's ShardState (the coordinator's export and recovery); `whole`
 * puts one vector together from every rank's part (FSDP's shards by default; TP's and PP's: parts.ts).
 */
export function checkpointOfShards(states: ShardState[], table: ParamTable, history: History = {}, whole = unshard): Checkpoint {
  return assembleShards(states, headerOf(states, history), table, whole);
}

/** The files of a sharded checkpoint (index.json and one per rank), from every rank's ShardState. */
export function writeShards(states: ShardState[], history: History = {}): Map<string, ArrayBuffer | string> {
  const world = states.length;
  const header = headerOf(states, history);
  const files = new Map<string, ArrayBuffer | string>([['index.json', JSON.stringify({ format: FORMAT, world, header }) + '\n']]);
  states.forEach((s, r) => {
    const out = new Float32Array(3 * s.params.length);
    out.set(s.params, 0);
    out.set(s.m, s.params.length);
    out.set(s.v, 2 * s.params.length);
    files.set(rankFile(r, world), out.buffer);
  });
  return files;
}

/** The whole checkpoint of a sharded one (index.json's text, and `file(name)` for each rank's bytes). */
export function readShards(index: string, file: (name: string) => ArrayBuffer | undefined): Checkpoint {
  let parsed: { format?: string; world?: number; header?: CheckpointHeader };
  try {
    parsed = JSON.parse(index);
  } catch (e) {
    throw new CheckpointError(`index.json is not valid JSON: ${(e as Error).message}`);
  }
  const { world, header } = parsed ?? {};
  if (parsed?.format !== FORMAT || !Number.isInteger(world) || world! < 1 || !header) {
    throw new CheckpointError(`index.json is not a sharded checkpoint of this trainer (format "${FORMAT}", world, header)`);
  }
  const table = checkHeader(header); // before anything the size of the model is read
  const floats = table.units.reduce((n, u) => n + shardLayout(u, world!).shard, 0);
  const parts = Array.from({ length: world! }, (_, r) => {
    const bytes = file(rankFile(r, world!));
    if (!bytes) throw new CheckpointError(`${rankFile(r, world!)} is missing: a sharded checkpoint needs all ${world} ranks' files`);
    if (bytes.byteLength !== 3 * floats * 4) throw new CheckpointError(`${rankFile(r, world!)} is ${bytes.byteLength} bytes; a shard of this model is ${3 * floats * 4}: truncated or from another model`);
    return new Float32Array(bytes);
  });
  const part = (p: Float32Array, k: number) => p.subarray(k * floats, (k + 1) * floats);
  const c = assembleShards(parts.map((p) => ({ params: part(p, 0), m: part(p, 1), v: part(p, 2) })), header, table);
  checkState(c, table);
  return c;
}
