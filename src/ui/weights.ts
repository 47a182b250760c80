// The weights the next Start begins from: a model read from llm.c's .bin or Hugging Face's
// .safetensors + config.json (src/ui/model-files.ts), kept on the page (not stored: a reload forgets
// them) until the user forgets them or loads others. A run from them is a trainer checkpoint at step 0
// with a fresh optimizer (startFromWeights, src/model/formats.ts, as the CLI's train --init):
//   - the model's shape (n_layer, n_head, n_embd, block_size) and vocabulary are the file's: they are
//     put into the setup form when the weights are loaded, and a setup that differs blocks Start;
//   - the tokenizer is the file's (char_vocab.json, or GPT-2's BPE), GPT-2's BPE for a vocabulary of
//     50,257 tokens, else the training text's characters;
//   - everything else (optimizer, schedule, batch, steps, backend, workers) is the setup's at Start.
// The functions are pure (no DOM); WeightsNote is the box in the Setup card that says all of this.

import { PRESETS, PRESET_NAMES, type PresetName, type RunConfig } from '../model/config';
import { startFromWeights, type ModelFormat, type ModelWeights } from '../model/formats';
import { CheckpointError } from '../model/llmc';
import { buildParamTable } from '../model/params';
import { charTokenizer, type TokenizerSpec } from '../data/tokenizer';
import type { Corpus } from './corpus';
import { byId, h } from './dom';
import * as fmt from './format';
import { presetValues, toConfig, type Setup } from './setup';

/** The settings a model file decides. */
export const SHAPE_KEYS = ['n_layer', 'n_head', 'n_embd', 'block_size'] as const;

const GPT2_VOCAB = 50257;
const FORMAT_NAMES: Record<ModelFormat, string> = { llmc: 'llm.c', hf: 'Hugging Face', checkpoint: 'checkpoint', shards: 'sharded checkpoint' };

export interface StartWeights {
  weights: ModelWeights;
  format: ModelFormat;
  source: string; // "model.bin", "model.safetensors + config.json"
  tokenizerFrom: 'file' | 'bpe' | 'corpus';
  ignored: string[]; // files chosen with them that are no part of the model
  presetSwitched: { from: PresetName; to: PresetName } | null; // the setup's preset allowed no such block_size
}

/** The tokenizer a run from `sw` trains with, and how to say where it comes from. */
export function tokenizerFor(sw: Pick<StartWeights, 'weights' | 'tokenizerFrom'>, corpus: Corpus): { spec: TokenizerSpec; vocab: number } {
  if (sw.tokenizerFrom === 'file' && sw.weights.tokenizer) {
    const spec = sw.weights.tokenizer;
    return { spec, vocab: spec.kind === 'bpe' ? GPT2_VOCAB : [...spec.chars].length };
  }
  if (sw.tokenizerFrom === 'bpe') return { spec: { kind: 'bpe' }, vocab: GPT2_VOCAB };
  const t = charTokenizer(corpus.text);
  return { spec: t.spec(), vocab: t.vocabSize };
}

/**
 * The setup with the file's shape and tokenizer, and (with `switchPreset`) a preset whose position table
 * holds its block_size when the setup's does not.
 */
export function withShape(setup: Setup, w: ModelWeights, tokenizer: TokenizerSpec['kind'], switchPreset = true): { setup: Setup; presetSwitched: StartWeights['presetSwitched'] } {
  let { preset, values } = setup;
  let presetSwitched: StartWeights['presetSwitched'] = null;
  if (switchPreset && w.config.block_size > PRESETS[preset].block_size) {
    // As choosing a preset in the form does: its values, the backend kept.
    const fit = [...PRESET_NAMES].sort((a, b) => PRESETS[a].block_size - PRESETS[b].block_size).find((p) => PRESETS[p].block_size >= w.config.block_size);
    if (fit) {
      presetSwitched = { from: preset, to: fit };
      preset = fit;
      values = { ...presetValues(fit), backend: values.backend };
    }
  }
  values = { ...values, tokenizer };
  for (const k of SHAPE_KEYS) values[k] = String(w.config[k]);
  return { setup: { ...setup, preset, values }, presetSwitched };
}

/** A file's characters must cover the text (the workers encode it with them). */
function checkCovers(spec: TokenizerSpec, corpus: Corpus): void {
  if (spec.kind !== 'char') return;
  const have = new Set(spec.chars);
  for (const ch of corpus.text) {
    if (!have.has(ch)) {
      throw new CheckpointError(`the text “${corpus.name}” has the character ${JSON.stringify(ch)}, which is not in the model's vocabulary (${[...spec.chars].length} characters): train on the text the model was made for`);
    }
  }
}

/** startFromWeights, its tokenizer message naming the text the characters came from. */
function start(sw: StartWeights, config: RunConfig, corpus: Corpus): { config: RunConfig; checkpoint: ArrayBuffer } {
  const { spec, vocab } = tokenizerFor(sw, corpus);
  checkCovers(spec, corpus);
  return startFromWeights(config, sw.weights, spec, vocab, sw.tokenizerFrom === 'corpus' ? `“${corpus.name}”` : undefined);
}

/**
 * Checks weights against the setup and the text, as a Start would: the setup the form should show
 * (the file's shape), or a CheckpointError that begins with `what` (and nothing changes).
 */
export function prepareWeights(
  loaded: { weights: ModelWeights; format: ModelFormat; source: string; ignored: string[] },
  setup: Setup,
  corpus: Corpus | null,
  what: string,
): { weights: StartWeights; setup: Setup } {
  const w = loaded.weights;
  const tokenizerFrom = w.tokenizer ? 'file' : w.config.vocab_size === GPT2_VOCAB ? 'bpe' : 'corpus';
  try {
    if (!corpus) throw new CheckpointError('the training text has not loaded yet: wait for it, then load the weights again');
    const kind = tokenizerFrom === 'file' ? w.tokenizer!.kind : tokenizerFrom === 'bpe' ? 'bpe' : 'char';
    const shaped = withShape(setup, w, kind);
    const r = toConfig(shaped.setup);
    if (!r.config) throw new CheckpointError(`the setup cannot take its shape (n_layer ${w.config.n_layer}, n_head ${w.config.n_head}, n_embd ${w.config.n_embd}, block_size ${w.config.block_size}): ${r.error}`);
    const sw: StartWeights = { ...loaded, tokenizerFrom, presetSwitched: shaped.presetSwitched };
    start(sw, r.config, corpus); // the vocabulary, the text and the settings, as Start will check them
    return { weights: sw, setup: shaped.setup };
  } catch (e) {
    if (e instanceof CheckpointError) throw new CheckpointError(`${what}: ${e.message}`);
    throw e;
  }
}

/** Where the setup and the weights disagree (a shape field edited since), or null. */
export function shapeProblem(sw: StartWeights, config: RunConfig): string | null {
  const diff = SHAPE_KEYS.filter((k) => config[k] !== sw.weights.config[k]).map((k) => `${k} ${config[k]} (the weights have ${sw.weights.config[k]})`);
  const kind = tokenizerKind(sw);
  if (config.tokenizer !== kind) diff.push(`tokenizer ${config.tokenizer} (the weights need ${kind})`);
  return diff.length ? `the setup says ${diff.join(', ')}: press “Use the weights' shape”, or forget the weights to train a new model` : null;
}

/** The setup with the weights' shape and tokenizer, its preset kept (a preset chosen since, or a shape edited since). */
export function reshaped(setup: Setup, sw: StartWeights): Setup {
  return withShape(setup, sw.weights, tokenizerKind(sw), false).setup;
}

function tokenizerKind(sw: StartWeights): TokenizerSpec['kind'] {
  return sw.tokenizerFrom === 'file' ? sw.weights.tokenizer!.kind : sw.tokenizerFrom === 'bpe' ? 'bpe' : 'char';
}

/** The checkpoint (step 0, fresh optimizer) a Start from these weights trains from, with the setup's settings. */
export function startCheckpoint(sw: StartWeights, config: RunConfig, corpus: Corpus): { config: RunConfig; checkpoint: ArrayBuffer } {
  const problem = shapeProblem(sw, config);
  if (problem) throw new CheckpointError(problem);
  return start(sw, config, corpus);
}

/** The vocabulary the estimate counts with while the weights are loaded. */
export const vocabOf = (sw: StartWeights) => sw.weights.config.vocab_size;

// ---- the box in the Setup card ----------------------------------------------------------------------

export class WeightsNote {
  private readonly box = byId('weights');
  private readonly info = byId('weights-info');
  private readonly problem = byId('weights-problem');
  private readonly reshape = byId<HTMLButtonElement>('weights-reshape');
  private readonly forget = byId<HTMLButtonElement>('weights-forget');

  constructor(actions: { reshape(): void; forget(): void }) {
    this.reshape.addEventListener('click', () => actions.reshape());
    this.forget.addEventListener('click', () => actions.forget());
  }

  render(sw: StartWeights | null, problem: string | null, corpus: Corpus | null, busy: boolean): void {
    this.box.hidden = !sw;
    if (!sw) return;
    const c = sw.weights.config;
    const tokens = sw.tokenizerFrom === 'file'
      ? (sw.weights.tokenizer!.kind === 'bpe' ? "GPT-2's BPE" : `the file's ${fmt.count(c.vocab_size)} characters`)
      : sw.tokenizerFrom === 'bpe' ? "GPT-2's BPE (50,257 tokens)"
        : `the characters of ${corpus ? `“${corpus.name}”` : 'the training text'}`;
    const params = buildParamTable(c).total;
    this.info.replaceChildren(
      h('strong', {}, `Start begins from the weights of ${sw.source}`),
      ` (${FORMAT_NAMES[sw.format]}, ${fmt.compact(params)} parameters), with a fresh optimizer at step 0.`,
      h('br'),
      'From the file: ',
      h('code', {}, `n_layer ${c.n_layer} · n_head ${c.n_head} · n_embd ${c.n_embd} · block_size ${c.block_size} · vocab_size ${fmt.count(c.vocab_size)}`),
      `, tokens: ${tokens}. Everything else is the setup's. Kept on this page only: a reload forgets them.`,
      ...(sw.presetSwitched ? [h('br'), `Preset ${sw.presetSwitched.from} allows block_size up to ${PRESETS[sw.presetSwitched.from].block_size}: switched to ${sw.presetSwitched.to}, with its settings.`] : []),
      ...(sw.ignored.length ? [h('br'), h('span', { class: 'muted' }, `Not used: ${sw.ignored.join(', ')}.`)] : []),
    );
    Object.assign(this.box.dataset, { source: sw.source, format: sw.format, nLayer: String(c.n_layer), nHead: String(c.n_head), nEmbd: String(c.n_embd), blockSize: String(c.block_size), vocabSize: String(c.vocab_size) });
    this.problem.hidden = problem === null;
    this.problem.textContent = problem ? `${problem.charAt(0).toUpperCase()}${problem.slice(1)}.` : '';
    this.reshape.hidden = problem === null;
    this.reshape.disabled = busy;
    this.forget.disabled = busy;
  }
}
