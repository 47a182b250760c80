// Strategies whose workers hold parts of the model (FSDP's shards, TP's slices, PP's stages): whether a
// run's shape can be split that way, and how every rank's part becomes the whole again (checkpoints,
// gradients handed to tests). Pure: no tfjs, so the page's bundle can check settings before Start.

import type { ModelConfig, RunConfig } from '../model/config';
import type { ParamTable } from '../model/params';
import { gradientSync, unshard, type ShardStrategy, type Strategy } from './layout';
import { tpAssemble, tpCheck } from './tp-layout';
import { ppAssemble, ppCheck } from './pp-layout';

interface Split {
  strategy: Strategy;
  workers: number;
  shard?: ShardStrategy;
  microbatches?: number;
}

/**
 * Throws a clear error when the model cannot be split this way: TP needs the workers to divide the
 * heads; PP at most one worker per block, and micro-batches that divide the batch.
 */
export function checkSplit(cfg: Pick<RunConfig, 'n_head' | 'n_layer' | 'batch_size' | 'grad_accum'> & Partial<ModelConfig>, d: Split): void {
  if (d.strategy === 'tp') tpCheck(cfg, d.workers);
  if (d.strategy === 'pp') ppCheck(cfg, d.workers, d.microbatches ?? 4);
}

/** The whole flat vector (parameters, gradients, m or v) from every rank's part of it. */
export function assembleParts(d: Split, parts: Float32Array[], table: ParamTable): Float32Array {
  const sync = gradientSync(d);
  if (sync === 'shard') return unshard(parts, table);
  if (sync === 'tensor') return tpAssemble(parts, table, d.workers);
  if (sync === 'pipeline') return ppAssemble(parts, table, d.workers);
  return parts[0];
}
