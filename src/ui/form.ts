// The setup form: preset, backend and every hyperparameter as text fields (so a link's value is shown
// exactly as written, and makeConfig() explains whatever is wrong with it). Fields that differ from
// the preset are marked; fields a config error names are highlighted.

import { PRESET_NAMES, type PresetName } from '../model/config';
import { FIELDS, PRESET_NOTES, fieldsInMessage, overrides, presetValues, type FieldKey, type FieldSpec, type Setup } from './setup';
import { h } from './dom';

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

  constructor(root: HTMLElement, private readonly onChange: (setup: Setup) => void) {
    this.preset = h('select', { id: 'preset', name: 'preset' }, ...PRESET_NAMES.map((p) => h('option', { value: p }, p)));
    this.presetNote = h('p', { class: 'preset-note' });
    const top = h('div', { class: 'form-top' },
      h('label', { class: 'field' }, h('span', { class: 'field-name' }, 'preset'), this.preset),
      this.field(FIELDS.find((f) => f.key === 'backend')!),
    );
    this.errorText = h('span', { id: 'config-error-text' });
    const reset = h('button', { type: 'button', class: 'link-button' }, 'Reset to preset values');
    reset.addEventListener('click', () => this.set({ preset: this.setup.preset, values: { ...presetValues(this.setup.preset), backend: this.setup.values.backend } }, true));
    this.errorBox = h('div', { id: 'config-error', class: 'config-error', role: 'alert', hidden: true }, this.errorText, reset);

    const groups = GROUPS.map((g) =>
      h('fieldset', { class: 'group' }, h('legend', {}, g.title),
        h('div', { class: 'fields' }, ...FIELDS.filter((f) => f.group === g.id).map((f) => this.field(f)))),
    );
    const advanced = h('details', { class: 'group advanced' }, h('summary', {}, 'More settings'),
      h('div', { class: 'fields' }, ...FIELDS.filter((f) => f.group === 'advanced').map((f) => this.field(f))));
    this.fieldset = h('fieldset', { class: 'setup-fields' }, top, this.presetNote, this.errorBox, ...groups, advanced);
    const form = h('form', { id: 'setup-form', novalidate: true, autocomplete: 'off' }, this.fieldset);
    form.addEventListener('submit', (e) => e.preventDefault());
    form.addEventListener('input', (e) => {
      if (e.target === this.preset) return;
      this.markChanged();
      this.onChange(this.setup);
    });
    this.preset.addEventListener('change', () => {
      // A new preset brings all of its values; the backend is a property of the machine, so it stays.
      const preset = this.preset.value as PresetName;
      this.set({ preset, values: { ...presetValues(preset), backend: this.setup.values.backend } }, true);
    });
    root.replaceChildren(form);
  }

  private field(f: FieldSpec): HTMLElement {
    const input = f.options
      ? h('select', { name: f.key, id: `f-${f.key}` }, ...f.options.map((o) => h('option', { value: o }, o)))
      : h('input', { name: f.key, id: `f-${f.key}`, type: 'text', inputmode: 'decimal', spellcheck: 'false', autocomplete: 'off' });
    this.inputs.set(f.key, input);
    return h('label', { class: 'field', 'data-field': f.key, title: f.hint },
      h('span', { class: 'field-name' }, f.key), input, h('span', { class: 'field-hint' }, f.hint));
  }

  get setup(): Setup {
    const values = presetValues(this.preset.value as PresetName);
    for (const [k, input] of this.inputs) values[k] = input.value;
    return { preset: this.preset.value as PresetName, values };
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
    this.markChanged();
    if (notify) this.onChange(this.setup);
  }

  private markChanged(): void {
    const setup = this.setup;
    const changed = overrides(setup);
    for (const [k, input] of this.inputs) input.closest('.field')!.classList.toggle('changed', k in changed);
    this.presetNote.textContent = PRESET_NOTES[setup.preset];
  }

  /** Shows makeConfig's message (or hides it) and highlights the fields it names. */
  showError(message: string | null): void {
    this.errorBox.hidden = message === null;
    this.errorText.textContent = message ?? '';
    const bad = new Set(message ? fieldsInMessage(message) : []);
    for (const [k, input] of this.inputs) {
      input.closest('.field')!.classList.toggle('invalid', bad.has(k));
      input.setAttribute('aria-invalid', String(bad.has(k)));
    }
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
