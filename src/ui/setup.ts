// The run setup as the page edits it: a preset plus the raw text of every form field, and its round trip
// through the URL query string. Pure functions (no DOM), so they can be tested in Node.
//
// The query string holds the preset and only the fields that differ from it, e.g.
//   ?preset=tiny&backend=wasm&max_iters=60
// so a teacher can share a link that reproduces a setup. makeConfig() (src/model/config.ts) is the only
// judge of what is valid; this file never second-guesses it.

import { BACKENDS, ConfigError, PRESETS, PRESET_NAMES, makeConfig, type PresetName, type RunConfig } from '../model/config';

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
  { key: 'min_lr', hint: 'learning rate floor', group: 'optimizer' },
  { key: 'warmup_iters', hint: 'linear warmup steps', group: 'optimizer' },
  { key: 'weight_decay', hint: 'AdamW decay', group: 'optimizer' },
  { key: 'grad_clip', hint: 'max gradient norm', group: 'optimizer' },
  { key: 'lr_decay_iters', hint: 'cosine reaches min_lr', group: 'advanced' },
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

/** The fields whose text means something other than the preset's value. */
export function overrides(setup: Setup): Partial<FieldValues> {
  const base = presetValues(setup.preset);
  const out: Partial<FieldValues> = {};
  for (const f of FIELDS) {
    const raw = setup.values[f.key].trim();
    const same = f.options ? raw === base[f.key] : raw !== '' && Number(raw) === Number(base[f.key]);
    if (!same) out[f.key] = raw;
  }
  return out;
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

/** The query string for a setup: the preset, then every field that differs from it. */
export function toQuery(setup: Setup): string {
  const q = new URLSearchParams({ preset: setup.preset });
  for (const [k, v] of Object.entries(overrides(setup))) q.set(k, v);
  return '?' + q.toString();
}

/**
 * Reads a setup from a query string. Never throws: what cannot be used is listed in `problems`
 * (an unknown preset falls back to the default setup; unknown settings are dropped). Values that
 * are present but invalid stay in the form, where makeConfig() explains them.
 */
export function fromQuery(search: string): { setup: Setup; problems: string[] } {
  const q = new URLSearchParams(search);
  const problems: string[] = [];
  const presetRaw = q.get('preset');
  if (presetRaw !== null && !(PRESET_NAMES as string[]).includes(presetRaw)) {
    problems.push(`The link asks for preset "${presetRaw}", which does not exist (choose one of ${PRESET_NAMES.join(', ')}). Showing the default setup instead.`);
    return { setup: { preset: DEFAULT_PRESET, values: presetValues(DEFAULT_PRESET) }, problems };
  }
  const preset = (presetRaw ?? DEFAULT_PRESET) as PresetName;
  const values = presetValues(preset);
  for (const [key, raw] of q) {
    if (key === 'preset') continue;
    if (FIELD_KEYS.has(key)) values[key as FieldKey] = raw;
    else if (key === 'vocab_size') problems.push('The link sets vocab_size, which the tokenizer decides; it was ignored.');
    else problems.push(`The link has an unknown setting "${key}"; it was ignored.`);
  }
  return { setup: { preset, values }, problems };
}

/** The field names a config error message talks about (to highlight them in the form). */
export function fieldsInMessage(message: string): FieldKey[] {
  return FIELDS.map((f) => f.key).filter((k) => new RegExp(`(^|[^a-z_])${k}([^a-z_]|$)`).test(message));
}
