// Pure layout decisions of the distributed strategies, shared by the workers, the coordinator, the cost
// model, the CLI and the page (no tfjs here, so the page's own bundle stays small): what a strategy
// does with gradients, how many workers by default, DDP's gradient buckets and FSDP's shards.

import type { ParamSpec, ParamTable, UnitSpec } from '../model/params';
import { alignUp } from './reduce';

export type Strategy = 'single' | 'ddp' | 'fsdp' | 'tp' | 'pp' | 'diloco';
export const STRATEGIES: readonly Strategy[] = ['single', 'ddp', 'fsdp', 'tp', 'pp', 'diloco'];
export type ShardStrategy = 'full' | 'grad_op' | 'none';
export const SHARD_STRATEGIES: readonly ShardStrategy[] = ['full', 'grad_op', 'none'];
export type PipelineSchedule = 'gpipe' | '1f1b';
export const PIPELINE_SCHEDULES: readonly PipelineSchedule[] = ['gpipe', '1f1b'];

/** One line per strategy: what it splits, for help texts and the page. */
export const STRATEGY_LINES: Record<Strategy, string> = {
  single: 'one worker trains the whole batch',
  ddp: 'data parallel: every worker holds the whole model and its slice of the batch; gradients are averaged',
  fsdp: 'fully sharded data parallel: as ddp, but each worker stores 1/N of the model and gathers layers as it needs them',
  tp: 'tensor parallel: every layer split across the workers (whole heads, MLP columns); activations are summed inside each block',
  pp: 'pipeline parallel: each worker holds a stage of consecutive blocks; micro-batches flow stage to stage',
  diloco: 'local SGD (DiLoCo): every worker trains its own copy for H steps, then the copies average what they learned',
};

/**
 * What a run's workers hold and exchange, the one rule every part asks (ranks, coordinator, cost model,
 * CLI, page):
 *   'none'       one worker (single): nothing to agree on.
 *   'all-reduce' every worker holds a full replica and averages gradients in buckets: DDP, and FSDP's
 *                NO_SHARD, which is DDP by definition.
 *   'shard'      FSDP FULL_SHARD or SHARD_GRAD_OP: every worker holds 1/N of each unit (parameters,
 *                gradients, AdamW state), all-gathers units to use them and reduce-scatters gradients.
 *   'tensor'     TP (Megatron-LM): every worker holds a slice of each block (its heads, its MLP columns)
 *                and sees the whole batch; partial activations are all-reduced inside each block.
 *   'pipeline'   PP: every worker holds a stage of consecutive blocks and sees the whole batch, in
 *                micro-batches; activations go to the next stage, their gradients come back.
 *   'outer'      DiLoCo (diloco.ts): every worker holds a full replica and its own AdamW, trains its slice
 *                of the batch with no communication, and every H steps the replicas average their
 *                pseudo-gradients for an outer Nesterov step on the global model. Gradients never move.
 * With one worker, 'all-reduce' and 'shard' run the same code over a world of one and move no bytes.
 */
export type GradientSync = 'none' | 'all-reduce' | 'shard' | 'tensor' | 'pipeline' | 'outer';

export function gradientSync(d: { strategy: Strategy; shard?: ShardStrategy }): GradientSync {
  if (d.strategy === 'single') return 'none';
  if (d.strategy === 'tp') return 'tensor';
  if (d.strategy === 'pp') return 'pipeline';
  if (d.strategy === 'diloco') return 'outer';
  if (d.strategy === 'fsdp' && (d.shard ?? 'full') !== 'none') return 'shard';
  return 'all-reduce';
}

/**
 * Every worker holds the whole model (single, DDP, FSDP NO_SHARD, DiLoCo: replicas that differ between
 * outer steps); else each holds a part, and gathering it is collective.
 */
export function holdsReplica(d: { strategy: Strategy; shard?: ShardStrategy }): boolean {
  const sync = gradientSync(d);
  return sync === 'none' || sync === 'all-reduce' || sync === 'outer';
}

/**
 * Data parallel (DDP, FSDP): each worker trains its own slice of the global batch, so the global batch is
 * workers x batch x accum. Model parallel (TP, PP) and single: every worker works on the same batch x accum.
 */
export function splitsBatch(d: { strategy: Strategy }): boolean {
  return d.strategy === 'ddp' || d.strategy === 'fsdp' || d.strategy === 'diloco';
}

/** Sequences in one step's global batch. */
export function globalSequences(d: { strategy: Strategy; workers: number }, cfg: { batch_size: number; grad_accum: number }): number {
  return (splitsBatch(d) ? d.workers : 1) * cfg.batch_size * cfg.grad_accum;
}

/** At most this many workers (Web Workers or worker_threads) in one run. */
export const MAX_WORKERS = 8;

/** DDP's and FSDP's default number of workers: one per core, at least 2 (one would not be parallel), at most MAX_WORKERS. */
export function defaultWorkers(cores: number | undefined): number {
  return Math.min(MAX_WORKERS, Math.max(2, Math.floor(cores ?? 2) || 2));
}

export const DEFAULT_BUCKET_MB = 25;
export const FIRST_BUCKET_MB = 1;

export interface Bucket {
  index: number;
  params: ParamSpec[]; // in the order gradients become ready
  size: number; // floats
}

/**
 * Parameters in the order backward makes their gradients: ln_f, blocks L-1..0 (each block's parameters
 * reversed), then wpe and wte (the tied wte appears once; its gradient is complete only at the end).
 */
export function backwardOrder(table: ParamTable): ParamSpec[] {
  const blocks = table.units.slice(1).reverse().flatMap((u) => [...u.params].reverse());
  const by = (n: string) => table.byName.get(n)!;
  return [by('ln_f.bias'), by('ln_f.weight'), ...blocks, by('wpe'), by('wte')];
}

/** Packs parameters in backward order into buckets of at most capBytes (the first at most firstBytes). */
export function assignBuckets(table: ParamTable, capBytes = DEFAULT_BUCKET_MB * 2 ** 20, firstBytes = FIRST_BUCKET_MB * 2 ** 20): Bucket[] {
  if (!(capBytes > 0)) throw new Error(`bucket size must be positive, got ${capBytes} bytes`);
  const buckets: Bucket[] = [];
  let current: ParamSpec[] = [];
  let bytes = 0;
  const flush = () => {
    if (current.length) buckets.push({ index: buckets.length, params: current, size: bytes / 4 });
    current = [];
    bytes = 0;
  };
  for (const p of backwardOrder(table)) {
    const cap = buckets.length === 0 ? Math.min(firstBytes, capBytes) : capBytes;
    if (current.length && bytes + p.size * 4 > cap) flush();
    current.push(p);
    bytes += p.size * 4;
  }
  flush();
  return buckets;
}

/** Floats of each bucket's buffer: its gradients, and the step's loss riding in the last one. */
export function bucketBufferSizes(buckets: Bucket[]): number[] {
  return buckets.map((b) => b.size + (b.index === buckets.length - 1 ? 1 : 0));
}

/** Registered room a DDP rank keeps for timing all-reduces (the cost model's calibration), by default. */
export const DEFAULT_PROBE_MB = 4;

/** What a DDP rank registers with its collectives: its bucket buffers, then a probe buffer for timing. */
export function ddpRegisteredSizes(buckets: Bucket[], probeMb = DEFAULT_PROBE_MB): number[] {
  return [...bucketBufferSizes(buckets), Math.ceil((probeMb * 2 ** 20) / 4)];
}

/** Floats of registered memory that buffers of these sizes take (alloc() aligns each one). */
export function registeredFloats(sizes: number[]): number {
  return sizes.reduce((n, s) => n + alignUp(s * 4) / 4, 0);
}

/** A unit's flat length padded to a multiple of N, and the length of one shard. */
export function shardLayout(unit: UnitSpec, world: number): { padded: number; shard: number } {
  const shard = Math.ceil(unit.size / world);
  return { padded: shard * world, shard };
}

/**
 * The full flat vector from every rank's shards: perRank[r] holds rank r's shard of each unit, unit by
 * unit (padded to shardLayout's length), as FSDP reports its gradients.
 */
export function unshard(perRank: Float32Array[], table: ParamTable): Float32Array {
  const world = perRank.length;
  const floats = table.units.reduce((n, u) => n + shardLayout(u, world).shard, 0);
  const bad = perRank.findIndex((v) => v.length !== floats);
  if (bad >= 0) throw new Error(`rank ${bad} sent ${perRank[bad].length} floats of shards, this model's are ${floats}`);
  const flat = new Float32Array(table.total);
  const at = new Array<number>(world).fill(0); // read position in each rank's vector
  for (const u of table.units) {
    const { shard } = shardLayout(u, world);
    for (let r = 0; r < world; r++) {
      const lo = r * shard;
      const hi = Math.min(u.size, lo + shard);
      if (hi > lo) flat.set(perRank[r].subarray(at[r], at[r] + hi - lo), u.offset + lo);
      at[r] += shard;
    }
  }
  return flat;
}
