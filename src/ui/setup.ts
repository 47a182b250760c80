// The run setup as the page edits it: a preset plus the raw text of every form field, the "dist" part
// (strategy, how many workers and how they talk, FSDP's sharding), and its round trip through the URL
// query string. Pure functions (no DOM), so they can be tested in Node.
//
// The query string holds the preset and only the fields that differ from it, e.g.
//   ?preset=tiny&backend=wasm&max_iters=60&strategy=ddp&workers=4&transport=star
//   ?preset=tiny&strategy=fsdp&workers=2&shard=grad_op&prefetch=off
//   ?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=1f1b
//   ?preset=tiny&strategy=diloco&workers=2&inner_steps=20&outer_compress=fp16
// so a teacher can share a link that reproduces a setup. makeConfig() (src/model/config.ts) is the only
// judge of a RunConfig, checkDist() (src/parallel/coordinator.ts) of the dist part; this file never
// second-guesses them. The dist settings are not RunConfig keys (makeConfig rejects unknown keys).

import { BACKENDS, ConfigError, DERIVED_KEYS, PRESETS, PRESET_NAMES, checkWorkerMemory, deriveSchedule, makeConfig, type DerivedKey, type PresetName, type RunConfig } from '../model/config';
import { buildParamTable, type ParamTable } from '../model/params';
import { OUTER_COMPRESS, UNCALIBRATED, predict, type OuterCompress } from '../parallel/costmodel';
import { DIST_DEFAULTS, DistError, checkDist, type DistOptions } from '../parallel/coordinator';
import { TRANSPORTS } from '../parallel/collectives';
import {
  MAX_WORKERS, PIPELINE_SCHEDULES, SHARD_STRATEGIES, STRATEGIES, STRATEGY_LINES, defaultWorkers, globalSequences, gradientSync,
  type ShardStrategy, type Strategy,
} from '../parallel/layout';
import { checkSplit } from '../parallel/parts';
import { bubbleFraction } from '../parallel/pp-layout';

export const DEFAULT_PRESET: PresetName = 'shakespeare-cpu';

export type FieldKey =
  | 'n_layer' | 'n_head' | 'n_embd' | 'block_size' | 'dropout'
  | 'batch_size' | 'grad_accum' | 'max_iters' | 'eval_interval' | 'seed'
  | 'lr' | 'min_lr' | 'warmup_iters' | 'weight_decay' | 'grad_clip'
  | 'lr_decay_iters' | 'eval_iters' | 'beta1' | 'beta2'
  | 'backend' | 'tokenizer';

export interface FieldSpec {
  key: FieldKey;
  hint: string; // a few words a student can read
  group: 'top' | 'model' | 'training' | 'optimizer' | 'advanced';
  options?: readonly string[]; // a choice instead of a number
}

export const FIELDS: readonly FieldSpec[] = [
  { key: 'n_layer', hint: 'transformer blocks', group: 'model' },
  { key: 'n_head', hint: 'attention heads', group: 'model' },
  { key: 'n_embd', hint: 'channels per token', group: 'model' },
  { key: 'block_size', hint: 'context length', group: 'model' },
  { key: 'dropout', hint: '0 to turn off', group: 'model' },
  { key: 'max_iters', hint: 'optimizer steps', group: 'training' },
  { key: 'batch_size', hint: 'sequences per step', group: 'training' },
  { key: 'grad_accum', hint: 'micro-batches per step', group: 'training' },
  { key: 'eval_interval', hint: 'steps between evals', group: 'training' },
  { key: 'seed', hint: 'same seed, same run', group: 'training' },
  { key: 'lr', hint: 'peak learning rate', group: 'optimizer' },
  { key: 'min_lr', hint: 'floor; lr/10 unless set', group: 'optimizer' },
  { key: 'warmup_iters', hint: 'linear warmup steps', group: 'optimizer' },
  { key: 'weight_decay', hint: 'AdamW decay', group: 'optimizer' },
  { key: 'grad_clip', hint: 'max gradient norm', group: 'optimizer' },
  { key: 'lr_decay_iters', hint: 'min_lr here; max_iters unless set', group: 'advanced' },
  { key: 'eval_iters', hint: 'batches per eval', group: 'advanced' },
  { key: 'beta1', hint: 'AdamW momentum', group: 'advanced' },
  { key: 'beta2', hint: 'AdamW second moment', group: 'advanced' },
  { key: 'tokenizer', hint: 'characters or GPT-2 BPE', group: 'advanced', options: ['char', 'bpe'] },
  { key: 'backend', hint: 'where it runs', group: 'top', options: BACKENDS },
];

const FIELD_KEYS = new Set<string>(FIELDS.map((f) => f.key));

export type FieldValues = Record<FieldKey, string>;

export interface Setup {
  preset: PresetName;
  values: FieldValues;
  dist: DistValues;
}

// ---- the dist part: strategy, workers, transport, bucket size, FSDP's shard and prefetch, PP's ---------
// micro-batches and schedule

export type DistKey = 'strategy' | 'workers' | 'transport' | 'bucket_mb' | 'shard' | 'prefetch' | 'microbatches' | 'schedule'
  | 'inner_steps' | 'outer_lr' | 'outer_momentum' | 'outer_compress';
export type DistValues = Record<DistKey, string>;

export const PREFETCH_OPTIONS = ['on', 'off'] as const;

export interface DistFieldSpec {
  key: DistKey;
  hint: string;
  options?: readonly string[];
}

export const DIST_FIELDS: readonly DistFieldSpec[] = [
  { key: 'strategy', hint: 'one worker, data or model parallel', options: STRATEGIES },
  { key: 'workers', hint: `Web Workers, 1 to ${MAX_WORKERS}` },
  { key: 'transport', hint: 'how workers exchange data', options: TRANSPORTS },
  { key: 'bucket_mb', hint: 'MB per all-reduce' },
  { key: 'shard', hint: 'what FSDP shards', options: SHARD_STRATEGIES }, // fsdp only
  { key: 'prefetch', hint: 'gather ahead in backward', options: PREFETCH_OPTIONS }, // fsdp only
  { key: 'microbatches', hint: 'pieces of each batch' }, // pp only
  { key: 'schedule', hint: 'forward, backward order', options: PIPELINE_SCHEDULES }, // pp only
  { key: 'inner_steps', hint: 'H: steps alone between averages' }, // diloco only
  { key: 'outer_lr', hint: 'outer Nesterov step size' }, // diloco only
  { key: 'outer_momentum', hint: 'outer Nesterov momentum' }, // diloco only
  { key: 'outer_compress', hint: 'pseudo-gradients on the wire', options: OUTER_COMPRESS }, // diloco only
];

const DIST_KEYS = new Set<string>(DIST_FIELDS.map((f) => f.key));

/** The settings that only mean something with strategy fsdp (the form shows them only then). */
export const FSDP_KEYS: readonly DistKey[] = ['shard', 'prefetch'];

/** The settings that only mean something with strategy pp (the form shows them only then). */
export const PP_KEYS: readonly DistKey[] = ['microbatches', 'schedule'];

/** The settings that only mean something with strategy diloco (the form shows them only then). */
export const DILOCO_KEYS: readonly DistKey[] = ['inner_steps', 'outer_lr', 'outer_momentum', 'outer_compress'];

/** Several workers: ddp, fsdp, tp, pp or diloco (single is one worker). */
export const isParallel = (strategy: string): boolean => strategy.trim() !== 'single';

/** FSDP with its parameters really sharded (full or grad_op): no all-reduce buckets, something to prefetch. */
export const isSharded = (d: Pick<DistValues, 'strategy' | 'shard'>): boolean =>
  gradientSync({ strategy: d.strategy.trim() as Strategy, shard: d.shard.trim() as ShardStrategy }) === 'shard';

/**
 * One line a student understands, per setting (and per choice where it has choices). The words before
 * the first ": " are the line's title (src/ui/form.ts shows them in bold).
 */
export const DIST_HELP = {
  strategy: {
    single: 'single: one worker trains on the whole batch.',
    ddp: 'ddp: every worker holds a full copy of the model, trains on its own slice of the batch, and all workers average their gradients before each update.',
    fsdp: 'fsdp: fully sharded data parallel: the model is cut into units (one per transformer block, plus the embeddings); each worker keeps only its shard, 1/N of every unit, and a unit is all-gathered (unsharded) just before it is used.',
    tp: `tp: ${STRATEGY_LINES.tp}, by two all-reduces in forward and two in backward per block (Megatron-LM).`,
    pp: `pp: ${STRATEGY_LINES.pp}; each activation goes to the next worker, its gradient comes back, and a stage waits while the pipe fills and drains (the bubble).`,
    diloco: `diloco: ${STRATEGY_LINES.diloco}: their pseudo-gradients (how far each moved) are averaged and an outer Nesterov step updates the shared model. 1/H of DDP's traffic, for slow links (a class on Wi-Fi).`,
  } as Record<string, string>,
  inner_steps: 'inner_steps: H, the AdamW steps each worker takes alone between two averages; the all-reduce, and its bytes, come once every H steps (DiLoCo: 20 to 500).',
  outer_lr: 'outer_lr: the outer step\'s learning rate on the averaged pseudo-gradient (DiLoCo: 0.7; 1 without momentum is plain averaging of the copies).',
  outer_momentum: 'outer_momentum: the outer step\'s Nesterov momentum (DiLoCo: 0.9; 0 for none).',
  outer_compress: {
    none: 'outer_compress none: pseudo-gradients travel as fp32, 4 bytes a value.',
    fp16: 'outer_compress fp16: pseudo-gradients travel as fp16, 2 bytes a value: half the traffic.',
    int8: 'outer_compress int8: pseudo-gradients travel as int8 with a scale, about 1 byte a value: a quarter of the traffic.',
  } as Record<string, string>,
  workers: 'workers: how many Web Workers train side by side, each on its own slice of the batch; more than this computer has cores only makes them take turns.',
  workersModel: {
    tp: 'workers: how many Web Workers share every layer, each holding whole heads: they must divide n_head. All of them work on the same batch; more than this computer has cores only makes them take turns.',
    pp: 'workers: how many pipeline stages, each a run of consecutive blocks (at most n_layer). All of them work on the same batch, one micro-batch after another; more than this computer has cores only makes them take turns.',
  } as Record<string, string>,
  transport: {
    ring: 'ring: each worker talks to its neighbours; an all-reduce moves 2(N-1)/N of the data per worker, an all-gather or a reduce-scatter (N-1)/N.',
    star: 'star: every worker sends everything to this page, which sums (or gathers) and sends back: the naive design.',
    shared: 'shared: one SharedArrayBuffer all workers read: needs a cross-origin isolated page.',
    network: 'network: through the classroom relay (npm run classroom): every browser sends its part to the relay and gets the sum back; the link is measured, and slow.',
  } as Record<string, string>,
  bucket_mb: 'bucket_mb: gradients are averaged in buckets of up to this many MB, each sent as soon as backward has made it, while backward goes on.',
  bucketUnused: 'bucket_mb: not used by a sharded model: FSDP reduce-scatters the gradients one unit at a time.',
  bucketModel: 'bucket_mb: not used by model parallelism: TP all-reduces activations inside every block, PP sends activations from stage to stage.',
  microbatches: 'microbatches: the step\'s batch is cut into this many micro-batches that follow each other through the stages; more of them, a smaller bubble: (N−1)/(M+N−1) of a step idle.',
  schedule: {
    '1f1b': 'schedule 1f1b: after a warm-up, each stage alternates one forward and one backward (PyTorch\'s Schedule1F1B): the same bubble as GPipe, but at most N micro-batches\' activations held at once.',
    gpipe: 'schedule gpipe: every stage runs all M forwards, then all M backwards (GPipe): simple, but it holds the activations of all M micro-batches.',
  } as Record<string, string>,
  shard: {
    full: 'shard full (FULL_SHARD): a unit is all-gathered just before its forward, freed, all-gathered again before its backward, freed; its gradients are reduce-scattered: least memory, most traffic.',
    grad_op: 'shard grad_op (SHARD_GRAD_OP, ZeRO-2): a unit all-gathered for forward stays unsharded until its backward: one all-gather fewer per unit, more memory at the peak.',
    none: 'shard none (NO_SHARD): nothing is sharded: every worker keeps everything and all-reduces the gradients, exactly DDP: the control to compare against.',
  } as Record<string, string>,
  prefetch: {
    on: 'prefetch on (BACKWARD_PRE): while one unit\'s backward computes, the all-gather of the unit backward needs next is already travelling.',
    off: 'prefetch off: a unit\'s all-gather starts only when its backward needs it, so the worker waits for it.',
  } as Record<string, string>,
};

/** The dist form values of options (e.g. those saved with a checkpoint, which may predate shard and prefetch). */
export function distValues(d: DistOptions): DistValues {
  return {
    strategy: d.strategy, workers: String(d.workers), transport: d.transport, bucket_mb: String(d.bucketMb),
    shard: d.shard ?? DIST_DEFAULTS.shard ?? 'full', prefetch: (d.prefetch ?? DIST_DEFAULTS.prefetch) === false ? 'off' : 'on',
    microbatches: String(d.microbatches ?? DIST_DEFAULTS.microbatches ?? 4), schedule: d.schedule ?? DIST_DEFAULTS.schedule ?? '1f1b',
    inner_steps: String(d.innerSteps ?? DIST_DEFAULTS.innerSteps ?? 20), outer_lr: String(d.outerLr ?? DIST_DEFAULTS.outerLr ?? 0.7),
    outer_momentum: String(d.outerMomentum ?? DIST_DEFAULTS.outerMomentum ?? 0.9), outer_compress: d.outerCompress ?? DIST_DEFAULTS.outerCompress ?? 'none',
  };
}

export const DEFAULT_DIST: DistValues = distValues(DIST_DEFAULTS);

/**
 * DiLoCo's settings as options, each checked here (whatever checkDist adds): H a whole number of at
 * least 1, the outer lr positive, the momentum in [0, 1), the compression one of none, fp16, int8.
 */
function dilocoOf(v: Pick<DistValues, 'inner_steps' | 'outer_lr' | 'outer_momentum' | 'outer_compress'>): Pick<DistOptions, 'innerSteps' | 'outerLr' | 'outerMomentum' | 'outerCompress'> {
  const raw = (k: 'inner_steps' | 'outer_lr' | 'outer_momentum') => (v[k].trim() === '' ? NaN : Number(v[k]));
  const innerSteps = raw('inner_steps');
  if (!(Number.isInteger(innerSteps) && innerSteps >= 1)) throw new DistError(`inner_steps must be a whole number of at least 1, got "${v.inner_steps}"`);
  const outerLr = raw('outer_lr');
  if (!(Number.isFinite(outerLr) && outerLr > 0)) throw new DistError(`outer_lr must be a positive number, got "${v.outer_lr}"`);
  const outerMomentum = raw('outer_momentum');
  if (!(Number.isFinite(outerMomentum) && outerMomentum >= 0 && outerMomentum < 1)) throw new DistError(`outer_momentum must be a number from 0 to below 1, got "${v.outer_momentum}"`);
  const c = v.outer_compress.trim();
  if (!(OUTER_COMPRESS as readonly string[]).includes(c)) throw new DistError(`outer_compress must be ${OUTER_COMPRESS.join(', ')}, got "${v.outer_compress}"`);
  return { innerSteps, outerLr, outerMomentum, outerCompress: c as OuterCompress };
}

/** prefetch as options: on or off (a link or a form value), else a message. */
function prefetchOf(raw: string): boolean {
  const v = raw.trim();
  if (!(PREFETCH_OPTIONS as readonly string[]).includes(v)) throw new DistError(`prefetch must be on or off, got "${raw}"`);
  return v === 'on';
}

/**
 * Validates the dist part with checkDist: options, or a message that names the setting. shard and
 * prefetch are part of the options only with strategy fsdp, microbatches and schedule only with pp
 * (elsewhere the form hides them). Whether the model can be split this way (TP's heads, PP's blocks
 * and micro-batches) depends on the config too: splitError.
 */
export function toDist(v: DistValues): { dist: DistOptions; error: null } | { dist: null; error: string } {
  const num = (key: DistKey, what: string): number => {
    const raw = v[key].trim();
    const n = Number(raw);
    if (raw === '' || !Number.isFinite(n)) throw new DistError(`${key} must be ${what}, got "${v[key]}"`);
    return n;
  };
  try {
    const strategy = v.strategy.trim() as DistOptions['strategy'];
    const options: DistOptions = {
      strategy,
      workers: num('workers', `a whole number from 1 to ${MAX_WORKERS}`),
      transport: v.transport.trim() as DistOptions['transport'],
      bucketMb: num('bucket_mb', 'a positive number of MB'),
    };
    if (strategy === 'fsdp') {
      options.shard = v.shard.trim() as DistOptions['shard'];
      options.prefetch = prefetchOf(v.prefetch);
    }
    if (strategy === 'pp') {
      options.microbatches = num('microbatches', 'a whole number of at least 1');
      options.schedule = v.schedule.trim() as DistOptions['schedule'];
    }
    if (strategy === 'diloco') Object.assign(options, dilocoOf(v));
    const dist = checkDist(options);
    return { dist, error: null };
  } catch (e) {
    if (e instanceof DistError) return { dist: null, error: distMessage(e.message) };
    throw e;
  }
}

/** checkDist's words for a setting, as the form names it. */
function distMessage(message: string): string {
  return message.replace(/^bucket size/, 'bucket_mb').replace(/^micro-batches/, 'microbatches');
}

/**
 * Why this model cannot be split the way the dist options say (parts.ts checkSplit: TP's workers must
 * divide n_head; PP needs at most one worker per block and micro-batches that divide batch_size x
 * grad_accum), or null. The page disables Start with this message, as with any other invalid setting.
 */
export function splitError(cfg: Pick<RunConfig, 'n_head' | 'n_layer' | 'batch_size' | 'grad_accum'>, d: DistOptions): string | null {
  try {
    checkSplit(cfg, d);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Why one worker of this setup could not hold what it needs (the cost model's memory per worker, under
 * the strategy: a replica, FSDP's shards, TP's slices or PP's largest stage; checkWorkerMemory in
 * src/model/config.ts has the limits), or null. `table` is the model as it will be built (the page
 * passes the one with the text's vocabulary). The page disables Start with this message.
 */
export function memoryError(cfg: RunConfig, d: DistOptions, table: ParamTable = buildParamTable(cfg)): string | null {
  try {
    const how = d.workers > 1 ? `of ${d.strategy}${d.strategy === 'fsdp' && d.shard && d.shard !== 'full' ? ` (shard ${d.shard})` : ''} over ${d.workers} workers` : '';
    checkWorkerMemory(cfg, predict(cfg, d, UNCALIBRATED, table).memory, how);
    return null;
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
}

/** The dist settings a dist error message talks about (to highlight them in the form). */
export function distFieldsInMessage(message: string): DistKey[] {
  return DIST_FIELDS.map((f) => f.key).filter((k) => message.includes(k) || (k === 'bucket_mb' && /bucket/.test(message))
    || (k === 'microbatches' && /micro-batches/.test(message)));
}

/**
 * Sequences and tokens per optimizer step over all workers: workers x batch_size x grad_accum when the
 * strategy splits the batch (ddp, fsdp); batch_size x grad_accum otherwise (single, and tp and pp, whose
 * workers all work on the same batch). Without a strategy: data parallel.
 */
export function globalBatch(cfg: Pick<RunConfig, 'batch_size' | 'grad_accum' | 'block_size'>, workers: number, strategy: Strategy = 'ddp'): { sequences: number; tokens: number } {
  const sequences = globalSequences({ strategy, workers }, cfg);
  return { sequences, tokens: sequences * cfg.block_size };
}

/** PP's bubble for N stages and M micro-batches as a share of the step: (N-1)/(M+N-1). */
export function bubbleShare(workers: number, microbatches: number): number {
  return bubbleFraction(workers, microbatches);
}

export const PRESET_NOTES: Record<PresetName, string> = {
  tiny: 'A toy model for quick demos: trains in seconds.',
  'shakespeare-cpu': "nanoGPT's laptop recipe for Shakespeare: a few minutes on a CPU.",
  baby: "nanoGPT's shakespeare_char model: slow without a GPU.",
  gpt2: 'GPT-2 small (124M parameters, BPE): needs a strong GPU and lots of memory.',
};

/** The form values of a preset (backend "auto"). */
export function presetValues(preset: PresetName): FieldValues {
  const cfg: RunConfig = { ...PRESETS[preset], backend: 'auto' };
  return Object.fromEntries(FIELDS.map((f) => [f.key, String(cfg[f.key])])) as FieldValues;
}

/**
 * The fields whose text means something other than the default: the preset's value, or for the
 * schedule settings that follow others (min_lr, lr_decay_iters, warmup_iters: deriveSchedule in
 * src/model/config.ts) the value they follow to. So a link holds only what the user chose, and the
 * page builds the config the CLI builds from the same flags.
 */
export function overrides(setup: Setup): Partial<FieldValues> {
  const base = presetValues(setup.preset);
  const out: Partial<FieldValues> = {};
  const differs = (f: FieldSpec, ref: string) => {
    const raw = setup.values[f.key].trim();
    return f.options ? raw !== ref : raw === '' || Number(raw) !== Number(ref);
  };
  for (const f of FIELDS) if (!isDerived(f.key) && differs(f, base[f.key])) out[f.key] = setup.values[f.key].trim();
  // In DERIVED_KEYS' order: warmup_iters follows lr_decay_iters, whether that was set or followed.
  for (const k of DERIVED_KEYS) {
    if (differs(FIELDS.find((f) => f.key === k)!, derivedValues(setup.preset, out)[k])) out[k] = setup.values[k].trim();
  }
  return out;
}

const isDerived = (key: FieldKey): boolean => (DERIVED_KEYS as readonly string[]).includes(key);

/**
 * What the schedule settings that follow others come to, given the other fields' overrides (the form
 * shows these until the user types another value; values that are not numbers count as the preset's).
 */
export function derivedValues(preset: PresetName, other: Partial<FieldValues>): Record<DerivedKey, string> {
  const p = PRESETS[preset];
  const given = (key: FieldKey) => other[key] !== undefined && other[key] !== '' && Number.isFinite(Number(other[key]));
  const num = (key: 'lr' | 'max_iters' | 'lr_decay_iters') => (given(key) ? Number(other[key]) : p[key]);
  const cfg = { lr: num('lr'), max_iters: num('max_iters'), min_lr: 0, lr_decay_iters: num('lr_decay_iters'), warmup_iters: 0 };
  deriveSchedule(cfg, (k) => k === 'lr_decay_iters' && given(k), p.warmup_iters);
  return { min_lr: String(cfg.min_lr), lr_decay_iters: String(cfg.lr_decay_iters), warmup_iters: String(cfg.warmup_iters) };
}

/** Validates a setup: a config, or makeConfig's error message. */
export function toConfig(setup: Setup): { config: RunConfig; error: null } | { config: null; error: string } {
  try {
    return { config: makeConfig(setup.preset, overrides(setup)), error: null };
  } catch (e) {
    if (e instanceof ConfigError) return { config: null, error: e.message };
    throw e;
  }
}

/** The form values that describe a config (e.g. a checkpoint's). */
export function configValues(cfg: RunConfig): FieldValues {
  return Object.fromEntries(FIELDS.map((f) => [f.key, String(cfg[f.key])])) as FieldValues;
}

/**
 * The query string for a setup: the preset, then every field that differs from it, then the dist
 * settings that differ from the defaults (every parallel strategy names its workers, so a link means the
 * same on a machine with another number of cores; shard and prefetch appear only with fsdp, when not
 * the default; microbatches and schedule with pp, always, so a pipeline's link says how it is fed).
 */
export function toQuery(setup: Setup): string {
  const q = new URLSearchParams({ preset: setup.preset });
  for (const [k, v] of Object.entries(overrides(setup))) q.set(k, v);
  const d = setup.dist;
  const strategy = d.strategy.trim();
  if (strategy !== DEFAULT_DIST.strategy) q.set('strategy', strategy);
  if (strategy !== DEFAULT_DIST.strategy || d.workers.trim() !== DEFAULT_DIST.workers) q.set('workers', d.workers.trim());
  if (d.transport.trim() !== DEFAULT_DIST.transport) q.set('transport', d.transport.trim());
  if (d.bucket_mb.trim() === '' || Number(d.bucket_mb) !== DIST_DEFAULTS.bucketMb) q.set('bucket_mb', d.bucket_mb.trim());
  if (strategy === 'fsdp') {
    for (const k of FSDP_KEYS) if (d[k].trim() !== DEFAULT_DIST[k]) q.set(k, d[k].trim());
  }
  if (strategy === 'pp') for (const k of PP_KEYS) q.set(k, d[k].trim());
  if (strategy === 'diloco') {
    // H always (a DiLoCo link says how often it talks), the rest when not the default
    for (const k of DILOCO_KEYS) {
      const v = d[k].trim();
      if (k === 'inner_steps' || (k === 'outer_compress' ? v !== DEFAULT_DIST[k] : v === '' || Number(v) !== Number(DEFAULT_DIST[k]))) q.set(k, v);
    }
  }
  return '?' + q.toString();
}

/**
 * The dist part of a link. Unlike RunConfig fields (kept for makeConfig to explain), a dist value
 * that checkDist rejects falls back to a working one, and `problems` says which and why.
 */
function distFromQuery(q: URLSearchParams, cores: number | undefined, problems: string[]): DistValues {
  const d = { ...DEFAULT_DIST };
  const check = (key: DistKey, options: Partial<DistOptions>, fallback: string): boolean => {
    try {
      // A value that is not a number at all is quoted as written (checkDist would say NaN).
      const notNumber = (k: 'workers' | 'bucketMb' | 'microbatches', what: string) => {
        if (k in options && Number.isNaN(options[k])) throw new DistError(`${key} must be ${what}, got "${q.get(key)}"`);
      };
      notNumber('workers', `a whole number from 1 to ${MAX_WORKERS}`);
      notNumber('bucketMb', 'a positive number of MB');
      notNumber('microbatches', 'a whole number of at least 1');
      if (key === 'prefetch') prefetchOf(q.get(key) ?? '');
      // Each value is checked on its own, against settings that suit it: a strategy against a worker
      // count it can run (single: 1; whether the link's own count suits it is said below), any other
      // value against ddp over 2 workers.
      const base: DistOptions = { ...DIST_DEFAULTS, strategy: 'ddp', workers: 2, ...options };
      if (key === 'strategy') base.workers = options.strategy === 'single' ? 1 : 2;
      checkDist(base);
      return true;
    } catch (e) {
      problems.push(`The link's ${key} could not be used (${distMessage((e as Error).message)}); using ${fallback} instead.`);
      return false;
    }
  };
  const strategy = q.get('strategy')?.trim();
  if (strategy !== undefined && check('strategy', { strategy: strategy as DistOptions['strategy'] }, DEFAULT_DIST.strategy)) d.strategy = strategy;
  const parallel = isParallel(d.strategy);
  const fallbackWorkers = parallel ? String(defaultWorkers(cores)) : '1';
  d.workers = fallbackWorkers;
  const workersRaw = q.get('workers')?.trim();
  if (workersRaw !== undefined) {
    const n = workersRaw === '' ? NaN : Number(workersRaw);
    if (check('workers', { workers: n }, fallbackWorkers)) {
      if (!parallel && n !== 1) problems.push(`The link asks for ${n} workers, but strategy single runs one worker; choose strategy ddp, fsdp, tp, pp or diloco to train with ${n}. Using 1 worker.`);
      else d.workers = String(n);
    }
  }
  const transport = q.get('transport')?.trim();
  if (transport !== undefined && check('transport', { transport: transport as DistOptions['transport'] }, DEFAULT_DIST.transport)) d.transport = transport;
  const bucketRaw = q.get('bucket_mb')?.trim();
  if (bucketRaw !== undefined && check('bucket_mb', { bucketMb: bucketRaw === '' ? NaN : Number(bucketRaw) }, DEFAULT_DIST.bucket_mb)) d.bucket_mb = bucketRaw;
  const shard = q.get('shard')?.trim();
  if (shard !== undefined && check('shard', { shard: shard as DistOptions['shard'] }, DEFAULT_DIST.shard)) d.shard = shard;
  const prefetch = q.get('prefetch')?.trim();
  if (prefetch !== undefined && check('prefetch', {}, DEFAULT_DIST.prefetch)) d.prefetch = prefetch;
  const mbRaw = q.get('microbatches')?.trim();
  if (mbRaw !== undefined && check('microbatches', { microbatches: mbRaw === '' ? NaN : Number(mbRaw) }, DEFAULT_DIST.microbatches)) d.microbatches = mbRaw;
  const schedule = q.get('schedule')?.trim();
  if (schedule !== undefined && check('schedule', { schedule: schedule as DistOptions['schedule'] }, DEFAULT_DIST.schedule)) d.schedule = schedule;
  for (const k of DILOCO_KEYS) {
    const raw = q.get(k)?.trim();
    if (raw === undefined) continue;
    try {
      dilocoOf({ ...DEFAULT_DIST, [k]: raw });
      d[k] = raw;
    } catch (e) {
      problems.push(`The link's ${k} could not be used (${(e as Error).message}); using ${DEFAULT_DIST[k]} instead.`);
    }
  }
  // shard and prefetch belong to fsdp, microbatches and schedule to pp, H and the outer step to diloco: with another strategy they
  // would be dropped from the link anyway.
  for (const [keys, owner] of [[FSDP_KEYS, 'fsdp'], [PP_KEYS, 'pp'], [DILOCO_KEYS, 'diloco']] as const) {
    const unused = keys.filter((k) => d.strategy !== owner && q.has(k) && d[k] !== DEFAULT_DIST[k]);
    if (unused.length) {
      problems.push(`The link sets ${unused.join(' and ')}, which only strategy ${owner} uses; ${unused.length === 1 ? 'it was' : 'they were'} ignored.`);
      for (const k of unused) d[k] = DEFAULT_DIST[k];
    }
  }
  return d;
}

/**
 * Reads a setup from a query string. Never throws: what cannot be used is listed in `problems`
 * (an unknown preset falls back to the default setup; unknown settings are dropped). Values that
 * are present but invalid stay in the form, where makeConfig() explains them.
 */
export function fromQuery(search: string, cores?: number): { setup: Setup; problems: string[] } {
  const q = new URLSearchParams(search);
  const problems: string[] = [];
  const presetRaw = q.get('preset');
  if (presetRaw !== null && !(PRESET_NAMES as string[]).includes(presetRaw)) {
    problems.push(`The link asks for preset "${presetRaw}", which does not exist (choose one of ${PRESET_NAMES.join(', ')}). Showing the default setup instead.`);
    return { setup: { preset: DEFAULT_PRESET, values: presetValues(DEFAULT_PRESET), dist: { ...DEFAULT_DIST } }, problems };
  }
  const preset = (presetRaw ?? DEFAULT_PRESET) as PresetName;
  const values = presetValues(preset);
  const dist = distFromQuery(q, cores, problems);
  for (const [key, raw] of q) {
    if (key === 'preset' || DIST_KEYS.has(key)) continue;
    if (FIELD_KEYS.has(key)) values[key as FieldKey] = raw;
    else if (key === 'vocab_size') problems.push('The link sets vocab_size, which the tokenizer decides; it was ignored.');
    else problems.push(`The link has an unknown setting "${key}"; it was ignored.`);
  }
  // The schedule settings the link leaves out follow the ones it sets (as in the CLI).
  const following = derivedValues(preset, Object.fromEntries(q));
  for (const k of DERIVED_KEYS) if (!q.has(k)) values[k] = following[k];
  return { setup: { preset, values, dist }, problems };
}

/** The field names a config error message talks about (to highlight them in the form). */
export function fieldsInMessage(message: string): FieldKey[] {
  return FIELDS.map((f) => f.key).filter((k) => new RegExp(`(^|[^a-z_])${k}([^a-z_]|$)`).test(message));
}
