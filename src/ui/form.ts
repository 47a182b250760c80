// The setup form: preset, backend and every hyperparameter as text fields (so a link's value is shown
// exactly as written, and makeConfig() explains whatever is wrong with it). Fields that differ from
// the preset are marked; fields a config error names are highlighted. A "Parallel training" group holds
// the dist settings (strategy, workers, transport, bucket_mb, with strategy fsdp shard and prefetch, with
// strategy pp microbatches and schedule, with strategy diloco inner_steps, outer_lr, outer_momentum and
// outer_compress), with a line of help for each and the global batch they add up to: workers x batch x
// accum when the workers split the batch (ddp, fsdp, diloco), batch x accum when they all work on the
// same one (tp, pp).

import { DERIVED_KEYS, PRESET_NAMES, type DerivedKey, type PresetName } from '../model/config';
import {
  DEFAULT_DIST, DILOCO_KEYS, DIST_FIELDS, DIST_HELP, FIELDS, FSDP_KEYS, PP_KEYS, PRESET_NOTES, bubbleShare, distFieldsInMessage, fieldsInMessage, isParallel, isSharded,
  derivedValues, overrides, presetValues, type DistKey, type DistValues, type FieldKey, type FieldSpec, type Setup,
} from './setup';
import { defaultWorkers, splitsBatch, type Strategy } from '../parallel/layout';
import { stageBlocks } from '../parallel/pp-layout';
import { h } from './dom';
import * as fmt from './format';

/** What the dist settings add up to, for the help under them (null while the setup is invalid). */
export interface GlobalBatch {
  strategy: Strategy;
  workers: number;
  batchSize: number;
  gradAccum: number;
  sequences: number;
  tokens: number;
}

/** The model's shape, for the help lines of tp (heads per worker) and pp (blocks per stage). */
export interface ModelShape {
  n_head: number;
  n_layer: number;
}

const GROUPS: { id: FieldSpec['group']; title: string }[] = [
  { id: 'model', title: 'Model' },
  { id: 'training', title: 'Training' },
  { id: 'optimizer', title: 'Optimizer' },
];

export class SetupForm {
  private readonly preset: HTMLSelectElement;
  private readonly presetNote: HTMLElement;
  private readonly inputs = new Map<FieldKey, HTMLInputElement | HTMLSelectElement>();
  private readonly fieldset: HTMLFieldSetElement;
  private readonly errorBox: HTMLElement;
  private readonly errorText: HTMLElement;
  private readonly distInputs = new Map<DistKey, HTMLInputElement | HTMLSelectElement>();
  private readonly distError: HTMLElement;
  private readonly distHelp: HTMLElement;

  /** `cores`: navigator.hardwareConcurrency, for the default number of DDP workers. */
  constructor(root: HTMLElement, private readonly onChange: (setup: Setup) => void, private readonly cores?: number) {
    this.preset = h('select', { id: 'preset', name: 'preset' }, ...PRESET_NAMES.map((p) => h('option', { value: p }, p)));
    this.presetNote = h('p', { class: 'preset-note' });
    const top = h('div', { class: 'form-top' },
      h('label', { class: 'field' }, h('span', { class: 'field-name' }, 'preset'), this.preset),
      labelledInput(FIELDS.find((f) => f.key === 'backend')!, this.inputs),
    );
    this.errorText = h('span', { id: 'config-error-text' });
    const reset = h('button', { type: 'button', class: 'link-button' }, 'Reset to preset values');
    reset.addEventListener('click', () => this.set({ ...this.setup, values: { ...presetValues(this.setup.preset), backend: this.setup.values.backend } }, true));
    this.errorBox = h('div', { id: 'config-error', class: 'config-error', role: 'alert', hidden: true }, this.errorText, reset);

    this.distError = h('p', { id: 'dist-error', class: 'config-error', role: 'alert', hidden: true });
    this.distHelp = h('ul', { id: 'dist-help', class: 'dist-help' });
    const dist = h('fieldset', { class: 'group dist-group' }, h('legend', {}, 'Parallel training'),
      h('div', { class: 'fields' }, ...DIST_FIELDS.map((f) => labelledInput(f, this.distInputs))), this.distError, this.distHelp);

    const groups = GROUPS.map((g) =>
      h('fieldset', { class: 'group' }, h('legend', {}, g.title),
        h('div', { class: 'fields' }, ...FIELDS.filter((f) => f.group === g.id).map((f) => labelledInput(f, this.inputs)))),
    );
    const advanced = h('details', { class: 'group advanced' }, h('summary', {}, 'More settings'),
      h('div', { class: 'fields' }, ...FIELDS.filter((f) => f.group === 'advanced').map((f) => labelledInput(f, this.inputs))));
    this.fieldset = h('fieldset', { class: 'setup-fields' }, top, this.presetNote, this.errorBox, dist, ...groups, advanced);
    const form = h('form', { id: 'setup-form', novalidate: true, autocomplete: 'off' }, this.fieldset);
    form.addEventListener('submit', (e) => e.preventDefault());
    form.addEventListener('input', (e) => {
      if (e.target === this.preset) return;
      if (e.target === this.distInputs.get('strategy')) this.strategyChanged();
      else this.syncDist();
      this.follow();
      this.markChanged();
      this.onChange(this.setup);
    });
    this.preset.addEventListener('change', () => {
      // A new preset brings all of its values; the backend is a property of the machine, so it stays.
      const preset = this.preset.value as PresetName;
      this.set({ preset, values: { ...presetValues(preset), backend: this.setup.values.backend }, dist: this.setup.dist }, true);
    });
    root.replaceChildren(form);
  }

  /** single runs one worker; switching to ddp or fsdp offers one worker per core. */
  private strategyChanged(): void {
    const workers = this.distInputs.get('workers')!;
    if (!isParallel(this.distInputs.get('strategy')!.value)) workers.value = '1';
    else if (workers.value.trim() === '1' || workers.value.trim() === '') workers.value = String(defaultWorkers(this.cores));
    this.syncDist();
  }

  /**
   * With one worker, workers, transport and bucket size have nothing to do: shown, but not editable.
   * shard and prefetch appear only with fsdp, microbatches and schedule only with pp; a sharded model
   * has no buckets, nor has model parallelism (tp, pp); NO_SHARD has nothing to prefetch.
   */
  private syncDist(): void {
    const d = this.setup.dist;
    const single = !isParallel(d.strategy);
    const fsdp = d.strategy === 'fsdp';
    const model = d.strategy === 'tp' || d.strategy === 'pp';
    for (const k of ['workers', 'transport', 'bucket_mb'] as const) this.distInputs.get(k)!.disabled = single;
    if (isSharded(d) || model) this.distInputs.get('bucket_mb')!.disabled = true;
    for (const k of FSDP_KEYS) (this.distInputs.get(k)!.closest('.field') as HTMLElement).hidden = !fsdp;
    for (const k of PP_KEYS) (this.distInputs.get(k)!.closest('.field') as HTMLElement).hidden = d.strategy !== 'pp';
    for (const k of DILOCO_KEYS) (this.distInputs.get(k)!.closest('.field') as HTMLElement).hidden = d.strategy !== 'diloco';
    this.distInputs.get('prefetch')!.disabled = !isSharded(d);
  }

  get setup(): Setup {
    const values = presetValues(this.preset.value as PresetName);
    for (const [k, input] of this.inputs) values[k] = input.value;
    const dist = { ...DEFAULT_DIST };
    for (const [k, input] of this.distInputs) dist[k] = input.value;
    return { preset: this.preset.value as PresetName, values, dist };
  }

  /** Fills the form; `notify` runs onChange as if the user had typed it. */
  set(setup: Setup, notify = false): void {
    this.preset.value = setup.preset;
    for (const [k, input] of this.inputs) {
      const v = setup.values[k];
      if (input instanceof HTMLSelectElement && ![...input.options].some((o) => o.value === v)) {
        input.append(h('option', { value: v }, v)); // an invalid choice from a link stays visible, and makeConfig names it
      }
      input.value = v;
    }
    for (const [k, input] of this.distInputs) {
      const v = setup.dist[k];
      if (input instanceof HTMLSelectElement && ![...input.options].some((o) => o.value === v)) input.append(h('option', { value: v }, v));
      input.value = v;
    }
    this.syncDist();
    this.following = derivedValues(setup.preset, overrides(this.setup));
    this.markChanged();
    if (notify) this.onChange(this.setup);
  }

  /** What min_lr, lr_decay_iters and warmup_iters follow to now (src/model/config.ts deriveSchedule). */
  private following: Record<DerivedKey, string> | null = null;

  /** A schedule field still showing what it followed to (the user has not typed in it) follows lr and max_iters on. */
  private follow(): void {
    const setup = this.setup;
    const next = derivedValues(setup.preset, overrides(setup));
    for (const k of DERIVED_KEYS) {
      const input = this.inputs.get(k)!;
      if (this.following && input.value.trim() !== '' && Number(input.value) === Number(this.following[k])) input.value = next[k];
    }
    this.following = next;
  }

  private markChanged(): void {
    const setup = this.setup;
    const changed = overrides(setup);
    for (const [k, input] of this.inputs) input.closest('.field')!.classList.toggle('changed', k in changed);
    const d = setup.dist;
    const usual: DistValues = { ...DEFAULT_DIST, workers: isParallel(d.strategy) ? String(defaultWorkers(this.cores)) : '1' };
    for (const [k, input] of this.distInputs) {
      const same = k === 'bucket_mb' ? d[k].trim() !== '' && Number(d[k]) === Number(usual[k]) : d[k].trim() === usual[k];
      input.closest('.field')!.classList.toggle('changed', !same);
    }
    this.presetNote.textContent = PRESET_NOTES[setup.preset];
  }

  /** checkDist's message (or none), with the settings it names highlighted. */
  showDistError(message: string | null): void {
    this.distError.hidden = message === null;
    this.distError.textContent = message ?? '';
    markInvalid(this.distInputs, new Set(message ? distFieldsInMessage(message) : []));
  }

  /**
   * One line of help per dist setting (for the chosen strategy and transport), and the global batch;
   * `shape` (the model's heads and blocks, when the config is valid) puts tp's and pp's numbers in.
   */
  showDistHelp(global: GlobalBatch | null, shape?: ModelShape | null): void {
    const d = this.setup.dist;
    const line = (key: string, text: string | undefined) => {
      if (!text) return null;
      const [name, ...rest] = text.split(': ');
      return h('li', { 'data-help': key }, h('strong', {}, `${name}:`), ` ${rest.join(': ')}`);
    };
    const fsdp = d.strategy === 'fsdp';
    const pp = d.strategy === 'pp';
    const model = d.strategy === 'tp' || pp;
    const N = Number(d.workers);
    const M = Number(d.microbatches);
    const split = model && shape && Number.isInteger(N) && N >= 1 ? splitNumbers(d.strategy, N, shape) : '';
    const bubble = pp && Number.isInteger(N) && N >= 1 && Number.isInteger(M) && M >= 1
      ? ` Here (N−1)/(M+N−1) = ${N - 1}/${M + N - 1} = ${Math.round(100 * bubbleShare(N, M))}% of every step.` : '';
    const items = [
      line('strategy', DIST_HELP.strategy[d.strategy]),
      ...(isParallel(d.strategy)
        ? [
          line('workers', `${(model ? DIST_HELP.workersModel[d.strategy] : DIST_HELP.workers)}${split}${this.cores ? ` This computer reports ${this.cores} cores.` : ''}`),
          ...(fsdp ? [line('shard', DIST_HELP.shard[d.shard]), isSharded(d) ? line('prefetch', DIST_HELP.prefetch[d.prefetch]) : null] : []),
          ...(pp ? [line('microbatches', `${DIST_HELP.microbatches}${bubble}`), line('schedule', DIST_HELP.schedule[d.schedule])] : []),
          ...(d.strategy === 'diloco'
            ? [line('inner_steps', DIST_HELP.inner_steps), line('outer_lr', DIST_HELP.outer_lr), line('outer_momentum', DIST_HELP.outer_momentum), line('outer_compress', DIST_HELP.outer_compress[d.outer_compress])]
            : []),
          line('transport', DIST_HELP.transport[d.transport]),
          line('bucket_mb', model ? DIST_HELP.bucketModel : isSharded(d) ? DIST_HELP.bucketUnused : DIST_HELP.bucket_mb),
        ]
        : [h('li', { class: 'muted' }, 'Choose strategy ddp, fsdp, tp, pp or diloco to train with several workers; workers, transport and bucket_mb apply to them.')]),
    ].filter((x): x is HTMLLIElement => x !== null);
    if (global) {
      const sum = global.strategy === 'single' || splitsBatch(global)
        ? [` = ${global.workers} worker${global.workers === 1 ? '' : 's'} × ${global.batchSize} batch_size × ${global.gradAccum} grad_accum = `]
        : [` = ${global.batchSize} batch_size × ${global.gradAccum} grad_accum = `];
      const same = global.strategy !== 'single' && !splitsBatch(global) ? ` (every worker works on the same batch: ${global.workers} workers, one batch)` : '';
      items.push(h('li', { id: 'global-batch', class: 'global-batch', 'data-sequences': global.sequences, 'data-strategy': global.strategy },
        h('strong', {}, 'Global batch'), ...sum,
        h('strong', {}, `${fmt.count(global.sequences)} sequences`), ` (${fmt.count(global.tokens)} tokens) per step${same}`));
    }
    this.distHelp.replaceChildren(...items);
  }

  /** Shows makeConfig's message (or hides it) and highlights the fields it names. */
  showError(message: string | null): void {
    this.errorBox.hidden = message === null;
    this.errorText.textContent = message ?? '';
    const bad = new Set(message ? fieldsInMessage(message) : []);
    markInvalid(this.inputs, bad);
    // If the culprit is hidden under "More settings", open it.
    if ([...bad].some((k) => FIELDS.find((f) => f.key === k)?.group === 'advanced')) {
      (this.fieldset.querySelector('details.advanced') as HTMLDetailsElement).open = true;
    }
  }

  /** Settings are read-only while a run is going (they would not affect it). */
  setLocked(locked: boolean): void {
    this.fieldset.disabled = locked;
  }
}

/** tp: the heads each worker holds; pp: the blocks of each stage (a sentence, or '' when the split does not work). */
function splitNumbers(strategy: string, N: number, shape: ModelShape): string {
  if (strategy === 'tp') {
    return shape.n_head % N === 0 ? ` Here each of ${N} workers holds ${shape.n_head / N} of the ${shape.n_head} heads of every block, and 1/${N} of its MLP.` : '';
  }
  if (N > shape.n_layer) return '';
  const stages = Array.from({ length: N }, (_, r) => {
    const [lo, hi] = stageBlocks(shape.n_layer, N, r);
    return hi - lo === 1 ? `block ${lo}` : `blocks ${lo}–${hi - 1}`;
  });
  return ` Here the ${shape.n_layer} blocks make ${N} stages: ${stages.map((s, r) => `worker ${r} ${s}`).join(', ')}.`;
}

/** A setting's input (a select when it has options), kept in `inputs`, inside its label with a hint. */
function labelledInput<K extends string>(f: { key: K; hint: string; options?: readonly string[] }, inputs: Map<K, HTMLInputElement | HTMLSelectElement>): HTMLElement {
  const input = f.options
    ? h('select', { name: f.key, id: `f-${f.key}` }, ...f.options.map((o) => h('option', { value: o }, o)))
    : h('input', { name: f.key, id: `f-${f.key}`, type: 'text', inputmode: 'decimal', spellcheck: 'false', autocomplete: 'off' });
  inputs.set(f.key, input);
  return h('label', { class: 'field', 'data-field': f.key, title: f.hint },
    h('span', { class: 'field-name' }, f.key), input, h('span', { class: 'field-hint' }, f.hint));
}

/** Marks the settings in `bad` invalid (their field and aria-invalid), and the others valid. */
function markInvalid<K>(inputs: Map<K, HTMLInputElement | HTMLSelectElement>, bad: Set<K>): void {
  for (const [k, input] of inputs) {
    input.closest('.field')!.classList.toggle('invalid', bad.has(k));
    input.setAttribute('aria-invalid', String(bad.has(k)));
  }
}
