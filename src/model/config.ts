// One run configuration: the model's shape, the optimizer and schedule, the data.
// Presets follow nanoGPT's configs; every field can be overridden, and every override is checked
// (unknown keys are errors, as in nanoGPT's configurator), so a bad link or flag fails with a message
// that says what was wrong and what to do instead of training something unintended.

export type TokenizerKind = 'char' | 'bpe';
export type BackendName = 'auto' | 'webgpu' | 'wasm' | 'webgl' | 'cpu';

/** Backends whose replicated training runs AdamW on the host (src/train/host-adamw.ts). */
export const HOST_OPTIMIZER_BACKENDS: readonly string[] = ['wasm', 'cpu'];
export const BACKENDS: readonly BackendName[] = ['auto', 'webgpu', 'wasm', 'webgl', 'cpu'];

export interface ModelConfig {
  n_layer: number; // transformer blocks (L)
  n_head: number; // attention heads (NH)
  n_embd: number; // channels (C); C % NH == 0
  block_size: number; // context length (T max), the size of wpe
  vocab_size: number; // V, set by the tokenizer
  dropout: number; // on embeddings, attention probabilities, attention and MLP outputs
}

export interface TrainConfig {
  batch_size: number; // sequences per micro-batch (B)
  grad_accum: number; // micro-batches per optimizer step
  max_iters: number; // optimizer steps
  lr: number; // peak learning rate
  min_lr: number; // cosine decay floor
  warmup_iters: number; // linear warmup steps
  lr_decay_iters: number; // step at which the cosine reaches min_lr
  beta1: number;
  beta2: number;
  weight_decay: number; // decoupled (AdamW), on 2-D weights only
  grad_clip: number; // global L2 norm; 0 disables
  seed: number; // init, batches and dropout
  eval_interval: number; // steps between validation-loss estimates; 0 disables
  eval_iters: number; // batches averaged per validation estimate
}

export interface RunConfig extends ModelConfig, TrainConfig {
  preset: PresetName;
  tokenizer: TokenizerKind;
  backend: BackendName;
}

export type PresetName = 'tiny' | 'shakespeare-cpu' | 'baby' | 'gpt2';

const TRAIN_DEFAULTS: TrainConfig = {
  batch_size: 12,
  grad_accum: 1,
  max_iters: 2000,
  lr: 1e-3,
  min_lr: 1e-4,
  warmup_iters: 100,
  lr_decay_iters: 2000,
  beta1: 0.9,
  beta2: 0.99,
  weight_decay: 0.1,
  grad_clip: 1.0,
  seed: 1337,
  eval_interval: 250,
  eval_iters: 20,
};

/** Presets. block_size is also the largest context a preset allows (its position table). */
export const PRESETS: Record<PresetName, Omit<RunConfig, 'backend'>> = {
  // For tests and quick demos: the llm.c fixture's shape.
  tiny: {
    ...TRAIN_DEFAULTS,
    preset: 'tiny', tokenizer: 'char',
    n_layer: 2, n_head: 4, n_embd: 64, block_size: 32, vocab_size: 65, dropout: 0,
    batch_size: 4, max_iters: 200, lr_decay_iters: 200, warmup_iters: 10, eval_interval: 50, eval_iters: 5,
  },
  // nanoGPT's README "I only have a macbook" recipe for shakespeare_char.
  'shakespeare-cpu': {
    ...TRAIN_DEFAULTS,
    preset: 'shakespeare-cpu', tokenizer: 'char',
    n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, vocab_size: 65, dropout: 0,
    batch_size: 12, max_iters: 2000, lr_decay_iters: 2000, eval_interval: 250, eval_iters: 20,
  },
  // nanoGPT's config/train_shakespeare_char.py (batch 64 there; 8 keeps a CPU step to seconds).
  baby: {
    ...TRAIN_DEFAULTS,
    preset: 'baby', tokenizer: 'char',
    n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, vocab_size: 65, dropout: 0.2,
    batch_size: 8, max_iters: 5000, lr_decay_iters: 5000, eval_interval: 250, eval_iters: 10,
  },
  // GPT-2 small (124M), BPE vocabulary. lr and schedule as nanoGPT's train_gpt2.py.
  gpt2: {
    ...TRAIN_DEFAULTS,
    preset: 'gpt2', tokenizer: 'bpe',
    n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50257, dropout: 0,
    batch_size: 1, lr: 6e-4, min_lr: 6e-5, beta2: 0.95, warmup_iters: 100, max_iters: 1000,
    lr_decay_iters: 1000, eval_interval: 100, eval_iters: 2,
  },
};

export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** A config error names the field, what was wrong, and what would be accepted. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const INTEGER_FIELDS = [
  'n_layer', 'n_head', 'n_embd', 'block_size', 'vocab_size', 'batch_size', 'grad_accum', 'max_iters',
  'warmup_iters', 'lr_decay_iters', 'seed', 'eval_interval', 'eval_iters',
] as const;
const NUMBER_FIELDS = ['dropout', 'lr', 'min_lr', 'beta1', 'beta2', 'weight_decay', 'grad_clip'] as const;

/**
 * Builds a config from a preset and overrides (strings, as from a URL or command line, are parsed).
 * Throws ConfigError with a specific message for anything it would not train.
 */
export function makeConfig(
  preset: string = 'shakespeare-cpu',
  overrides: Record<string, unknown> = {},
): RunConfig {
  if (!Object.hasOwn(PRESETS, preset)) { // not `in`: "toString" is in every object
    throw new ConfigError(`unknown preset "${preset}": choose one of ${PRESET_NAMES.join(', ')}`);
  }
  const base = PRESETS[preset as PresetName];
  const cfg: RunConfig = { ...base, backend: 'auto' };
  const known = new Set(Object.keys(cfg));
  for (const [key, raw] of Object.entries(overrides)) {
    if (raw === undefined) continue;
    if (key === 'preset') continue;
    if (!known.has(key)) {
      throw new ConfigError(`unknown setting "${key}": known settings are ${[...known].sort().join(', ')}`);
    }
    (cfg as unknown as Record<string, unknown>)[key] = parseValue(key, raw);
  }
  deriveSchedule(cfg, (key) => overrides[key] !== undefined, base.warmup_iters);
  validateConfig(cfg, base.block_size);
  return cfg;
}

/** The schedule settings that follow others unless they are set (the page shows them as following). */
export const DERIVED_KEYS = ['min_lr', 'lr_decay_iters', 'warmup_iters'] as const;
export type DerivedKey = (typeof DERIVED_KEYS)[number];

/**
 * The schedule rules, one home for the page, the CLI and everything else, as nanoGPT's configs keep
 * them: unless set, min_lr is lr/10, lr_decay_iters is max_iters (the cosine ends with the run), and
 * warmup_iters is the preset's, at most lr_decay_iters (a short run still decays). Every preset obeys
 * them, so a preset's own values come out unchanged. Fills `cfg` in place.
 */
export function deriveSchedule(
  cfg: Pick<TrainConfig, 'lr' | 'max_iters' | DerivedKey>,
  given: (key: DerivedKey) => boolean,
  presetWarmup: number,
): void {
  if (!given('min_lr')) cfg.min_lr = Number((cfg.lr / 10).toPrecision(12)); // 6e-4 / 10 is 5.9999...e-5 in floats
  if (!given('lr_decay_iters')) cfg.lr_decay_iters = cfg.max_iters;
  if (!given('warmup_iters')) cfg.warmup_iters = Math.min(presetWarmup, cfg.lr_decay_iters);
}

function parseValue(key: string, raw: unknown): unknown {
  if ((INTEGER_FIELDS as readonly string[]).includes(key) || (NUMBER_FIELDS as readonly string[]).includes(key)) {
    const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (String(raw).trim() === '' || !Number.isFinite(n)) {
      throw new ConfigError(`${key} must be a number, got "${String(raw)}"`);
    }
    return n;
  }
  return String(raw);
}

/** The largest model this trainer takes, in parameters: GPT-2 XL (1.56B), the largest GPT-2. */
export const MAX_PARAMS = 1.6e9;
/** The most numbers one tensor of a micro-batch may hold (logits, attention, MLP): 2^30, 4 GiB of float32. */
export const MAX_TENSOR = 2 ** 30;
/** The most sequences one worker's step may take (batch_size x grad_accum): the step's sample offsets are
 *  one array, and a million sequences already make a step of hours on a CPU. */
export const MAX_STEP_SEQUENCES = 2 ** 20;
/** Seeds are 32-bit (src/model/params.ts mixes them as u32): a larger one would silently alias a smaller. */
export const MAX_SEED = 2 ** 32 - 1;

/** Parameters of a GPT-2 of this shape (wte, wpe, final LayerNorm, and 12C^2 + 13C per block: as buildParamTable). */
export function paramCount(cfg: Pick<ModelConfig, 'n_layer' | 'n_embd' | 'vocab_size' | 'block_size'>): number {
  const C = cfg.n_embd;
  return cfg.vocab_size * C + cfg.block_size * C + 2 * C + cfg.n_layer * (12 * C * C + 13 * C);
}

const big = (n: number) =>
  n >= 1e12 ? n.toExponential(2) : n >= 1e9 ? `${(n / 1e9).toPrecision(3)}B` : n >= 1e6 ? `${(n / 1e6).toPrecision(3)}M` : String(n);

/** Bytes as the page writes them (src/ui/format.ts: binary units), e.g. "35.1 GB", "4.0 GB", "512 MB". */
export function sizeOf(bytes: number): string {
  const units = ['MB', 'GB', 'TB', 'PB'];
  let v = bytes / 2 ** 20;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return v >= 1e4 ? `${v.toExponential(2)} ${units[i]}` : `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * Sizes no machine here trains: a model above MAX_PARAMS, or a micro-batch with a tensor above
 * MAX_TENSOR numbers. Caught here, with what to lower, rather than as a hang or an out-of-memory
 * crash in a worker. Also run once the tokenizer has set vocab_size (checkVocab).
 */
export function checkSizes(cfg: Pick<RunConfig, 'n_layer' | 'n_head' | 'n_embd' | 'vocab_size' | 'block_size' | 'batch_size'> & Partial<Pick<RunConfig, 'grad_accum'>>): void {
  const params = paramCount(cfg);
  if (params > MAX_PARAMS) {
    throw new ConfigError(
      `the model would have ${big(params)} parameters (n_layer ${cfg.n_layer}, n_embd ${cfg.n_embd}, vocab_size ${cfg.vocab_size}, ` +
        `block_size ${cfg.block_size}); this trainer takes at most ${big(MAX_PARAMS)} (GPT-2 XL's size): lower n_layer or n_embd`,
    );
  }
  const { batch_size: B, block_size: T, n_head: NH, n_embd: C, vocab_size: V } = cfg;
  const tensors: [string, number][] = [
    [`logits, batch_size x block_size x vocab_size = ${B} x ${T} x ${V}`, B * T * V],
    [`attention, batch_size x n_head x block_size^2 = ${B} x ${NH} x ${T}^2`, B * NH * T * T],
    [`MLP, batch_size x block_size x 4 n_embd = ${B} x ${T} x ${4 * C}`, B * T * 4 * C],
  ];
  const [what, n] = tensors.reduce((a, b) => (b[1] > a[1] ? b : a));
  if (n > MAX_TENSOR) {
    throw new ConfigError(
      `one micro-batch would need a tensor of ${big(n)} numbers, ${sizeOf(4 * n)} of float32 for that tensor alone (${what}); ` +
        `at most ${big(MAX_TENSOR)} (${sizeOf(4 * MAX_TENSOR)}) fit: ` +
        'lower batch_size (grad_accum makes a large batch out of small micro-batches) or block_size',
    );
  }
  const sequences = B * (cfg.grad_accum ?? 1);
  if (sequences > MAX_STEP_SEQUENCES) {
    throw new ConfigError(
      `one step would take ${big(sequences)} sequences per worker (batch_size x grad_accum = ${B} x ${cfg.grad_accum}); ` +
        `at most ${big(MAX_STEP_SEQUENCES)} (${MAX_STEP_SEQUENCES}) are taken: lower grad_accum or batch_size`,
    );
  }
}

// ---- memory per worker ---------------------------------------------------------------------------------
// A config can pass checkSizes and still need more memory than a browser gives one worker (batch_size
// 100,000 on tiny: ~35 GB of activations; n_layer 1000: ~11 GB): it would grow the tab until an
// allocation fails mid-step ("Invalid typed array length", "out of memory"). checkWorkerMemory refuses it
// before Start, with the cost model's figure (predict() in src/parallel/costmodel.ts, which knows how
// each strategy divides the model; src/ui/setup.ts memoryError calls both).

/**
 * What one CPU worker can hold: tfjs's WebAssembly memory is 32-bit (4 GiB at most), and so is the host
 * AdamW's own (src/train/host-adamw.ts: master weights, m, v and the gradients read in); the plain-JS
 * cpu backend is held to the same.
 */
export const CPU_WORKER_BYTES = 4 * 2 ** 30;
/** What this trainer asks of one GPU worker (webgpu, webgl) at most: few GPUs give a browser tab more. */
export const GPU_WORKER_BYTES = 16 * 2 ** 30;

/** The cost model's memory of one worker (costmodel.ts Prediction['memory']), in bytes. */
export interface WorkerMemory {
  params: number;
  grads: number;
  optimizer: number;
  gathered_peak: number;
  activations_peak: number;
  total: number;
}

/** Whether one worker can hold what it needs, and if not, what to change. */
export interface WorkerFit {
  fits: boolean;
  need: number; // bytes in the worker's fullest memory (see workerFit)
  limit: number; // what that memory holds at most
  gpu: boolean;
  parts: string; // what the need is made of, in words with sizes
  fix: string; // what to change, lower case, no final stop
}

/**
 * One worker's memory against what it can hold. On a CPU backend (and "auto", which picks WebAssembly
 * where there is no GPU) a worker has two 32-bit memories, each at most CPU_WORKER_BYTES: tfjs's heap
 * (weights, gradients, gathered units, activations) and the host AdamW's (its state and the gradients it
 * reads in); `need` is the fuller one. On a GPU, everything, at most GPU_WORKER_BYTES.
 */
export function workerFit(cfg: Pick<RunConfig, 'backend' | 'batch_size' | 'block_size'>, m: WorkerMemory): WorkerFit {
  const gpu = cfg.backend === 'webgpu' || cfg.backend === 'webgl';
  const limit = gpu ? GPU_WORKER_BYTES : CPU_WORKER_BYTES;
  const acts = `${sizeOf(m.activations_peak)} of activations for batch_size ${cfg.batch_size} x block_size ${cfg.block_size}`;
  const tfjs = gpu ? m.total : m.total - m.optimizer;
  const host = !gpu && HOST_OPTIMIZER_BACKENDS.includes(cfg.backend) ? m.optimizer + m.grads : 0;
  const need = Math.max(tfjs, host);
  const parts = gpu
    ? `${acts}, ${sizeOf(m.params + m.grads + m.optimizer + m.gathered_peak)} of weights, gradients and AdamW state`
    : host > tfjs
      ? `${sizeOf(host)} of AdamW state and gradients in the optimizer's memory`
      : `${acts}, ${sizeOf(m.params + m.grads + m.gathered_peak)} of weights and gradients`;
  const activations = m.activations_peak > m.params + m.grads + m.optimizer + m.gathered_peak;
  const fix = (activations
    ? 'lower batch_size (grad_accum makes a large batch out of small micro-batches), block_size or n_layer'
    : 'lower n_layer or n_embd, or split the model over more workers (strategy fsdp, tp or pp)') +
    (gpu ? '' : ', or train on a GPU (backend webgpu)');
  return { fits: !(need > limit), need, limit, gpu, parts, fix };
}

/**
 * Throws ConfigError when one worker would need more memory than it can hold (workerFit), saying how
 * much, what takes it, and what to change. `how` names the strategy (e.g. "of fsdp over 2 workers").
 */
export function checkWorkerMemory(cfg: Pick<RunConfig, 'backend' | 'batch_size' | 'block_size'>, m: WorkerMemory, how = ''): void {
  const f = workerFit(cfg, m);
  if (f.fits) return;
  const where = f.gpu ? `a GPU worker (backend ${cfg.backend})` : 'a CPU worker (32-bit WebAssembly)';
  throw new ConfigError(`one worker${how ? ` ${how}` : ''} would need about ${sizeOf(f.need)} (${f.parts}); ${where} holds at most ${sizeOf(f.limit)}: ${f.fix}`);
}

/** Checks every field; maxBlockSize is the preset's position-table size. */
export function validateConfig(cfg: RunConfig, maxBlockSize?: number): void {
  if (typeof cfg.preset !== 'string' || !Object.hasOwn(PRESETS, cfg.preset)) {
    throw new ConfigError(`unknown preset "${String(cfg.preset)}": choose one of ${PRESET_NAMES.join(', ')}`);
  }
  maxBlockSize ??= PRESETS[cfg.preset].block_size;
  for (const key of INTEGER_FIELDS) {
    const v = cfg[key];
    if (!Number.isInteger(v)) throw new ConfigError(`${key} must be a whole number, got ${v}`);
    if (!Number.isSafeInteger(v)) throw new ConfigError(`${key} must be at most ${Number.MAX_SAFE_INTEGER}, got ${v}`);
  }
  if (cfg.seed > MAX_SEED) throw new ConfigError(`seed must be at most ${MAX_SEED} (seeds are 32-bit), got ${cfg.seed}`);
  const positive = ['n_layer', 'n_head', 'n_embd', 'block_size', 'vocab_size', 'batch_size', 'grad_accum', 'max_iters', 'eval_iters'] as const;
  for (const key of positive) {
    if (cfg[key] < 1) throw new ConfigError(`${key} must be at least 1, got ${cfg[key]}`);
  }
  for (const key of ['warmup_iters', 'lr_decay_iters', 'eval_interval', 'seed'] as const) {
    if (cfg[key] < 0) throw new ConfigError(`${key} must not be negative, got ${cfg[key]}`);
  }
  if (cfg.n_embd % cfg.n_head !== 0) {
    throw new ConfigError(
      `n_embd (${cfg.n_embd}) must be divisible by n_head (${cfg.n_head}): each head gets n_embd / n_head channels`,
    );
  }
  if (cfg.block_size > maxBlockSize) {
    throw new ConfigError(
      `block_size ${cfg.block_size} is above what preset "${cfg.preset}" allows (${maxBlockSize}, the size of its position table)`,
    );
  }
  checkSizes(cfg);
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) throw new ConfigError(`dropout must be in [0, 1), got ${cfg.dropout}`);
  if (!(cfg.lr > 0)) throw new ConfigError(`lr must be positive, got ${cfg.lr}`);
  if (!(cfg.min_lr >= 0 && cfg.min_lr <= cfg.lr)) {
    throw new ConfigError(`min_lr must be between 0 and lr (${cfg.lr}), got ${cfg.min_lr}`);
  }
  if (cfg.warmup_iters > cfg.lr_decay_iters) {
    throw new ConfigError(`warmup_iters (${cfg.warmup_iters}) must be at most lr_decay_iters (${cfg.lr_decay_iters}): the warm-up ends before the cosine decay does`);
  }
  if (cfg.lr_decay_iters > cfg.max_iters) {
    throw new ConfigError(
      `lr_decay_iters (${cfg.lr_decay_iters}) must be at most max_iters (${cfg.max_iters}): the learning rate would never reach min_lr. ` +
        'Leave lr_decay_iters unset to end the decay with the run',
    );
  }
  for (const key of ['beta1', 'beta2'] as const) {
    if (!(cfg[key] >= 0 && cfg[key] < 1)) throw new ConfigError(`${key} must be in [0, 1), got ${cfg[key]}`);
  }
  if (!(cfg.weight_decay >= 0)) throw new ConfigError(`weight_decay must not be negative, got ${cfg.weight_decay}`);
  if (!(cfg.grad_clip >= 0)) throw new ConfigError(`grad_clip must not be negative (0 disables clipping), got ${cfg.grad_clip}`);
  if (cfg.tokenizer !== 'char' && cfg.tokenizer !== 'bpe') {
    throw new ConfigError(`tokenizer must be "char" or "bpe", got "${cfg.tokenizer}"`);
  }
  if (!BACKENDS.includes(cfg.backend)) {
    throw new ConfigError(`backend must be one of ${BACKENDS.join(', ')}, got "${cfg.backend}"`);
  }
}

/** The tokenizer decides V: a config whose vocab_size disagrees is an error, not a silent resize. */
export function checkVocab(cfg: RunConfig, tokenizerVocab: number, explicitlySet: boolean): RunConfig {
  if (explicitlySet && cfg.vocab_size !== tokenizerVocab) {
    throw new ConfigError(
      `vocab_size ${cfg.vocab_size} does not match the ${cfg.tokenizer} tokenizer's vocabulary (${tokenizerVocab}): ` +
        `leave vocab_size unset, or pick the tokenizer that has ${cfg.vocab_size} tokens`,
    );
  }
  const out = { ...cfg, vocab_size: tokenizerVocab };
  checkSizes(out); // a character vocabulary can be far larger than the preset's
  return out;
}
