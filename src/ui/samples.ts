// Text the model wrote: the worker's sample at every eval, and the user's "Sample now" results.
// Newest first; only the last few are kept so the page stays light over a long run.
// SampleForm is the "Sample now" form above the list: prompt, temperature, top-k and length, checked
// before anything is sent to the model.

import { byId, h } from './dom';
import * as fmt from './format';
import type { Run } from './run';

const KEEP = 6;

export class SamplesPanel {
  constructor(private readonly list: HTMLElement, private readonly empty: HTMLElement) {}

  add(title: string, text: string, prompt = ''): void {
    const body = h('pre', { class: 'sample-text' });
    if (prompt) body.append(h('mark', { class: 'prompt' }, prompt));
    body.append(text);
    this.list.prepend(h('article', { class: 'sample' }, h('header', {}, title), body));
    while (this.list.children.length > KEEP) this.list.lastElementChild!.remove();
    this.empty.hidden = true;
  }

  clear(): void {
    this.list.replaceChildren();
    this.empty.hidden = false;
  }
}

/** What the form needs from the page. */
export interface SampleFormPage {
  run(): Pick<Run, 'sample'> | null; // the run whose model samples, once its workers are built
  step(): number; // the step the model is at, for the sample's title
  changed(): void; // redraw the page (it decides when the button is enabled)
}

export class SampleForm {
  private readonly form = byId<HTMLFormElement>('sample-form');
  private readonly button = byId<HTMLButtonElement>('sample-now');
  private readonly error = byId('sample-error');

  constructor(private readonly samples: SamplesPanel, private readonly page: SampleFormPage) {
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.sample();
    });
  }

  /** Whether “Sample now” can be pressed (a model is loaded and nothing is wrong with it). */
  setEnabled(enabled: boolean): void {
    this.button.disabled = !enabled;
  }

  clearError(): void {
    this.showError(null);
  }

  private async sample(): Promise<void> {
    const r = this.page.run();
    if (!r) return;
    const num = (id: string) => Number(byId<HTMLInputElement>(id).value.trim() || NaN);
    const prompt = byId<HTMLInputElement>('sample-prompt').value;
    const temperature = num('sample-temperature');
    const topK = num('sample-topk');
    const tokens = num('sample-length');
    const problem = !(temperature >= 0 && temperature <= 5) ? 'temperature must be a number from 0 (always the likeliest token) to 5'
      : !(Number.isInteger(topK) && topK >= 0) ? 'top-k must be a whole number (0 keeps every token)'
        : !(Number.isInteger(tokens) && tokens >= 1 && tokens <= 2000) ? 'length must be a whole number of tokens from 1 to 2000'
          : null;
    this.showError(problem);
    if (problem) return;
    this.button.disabled = true;
    this.button.textContent = 'Sampling…';
    try {
      const step = this.page.step();
      const text = await r.sample({ prompt, tokens, temperature, topK, seed: Math.floor(Math.random() * 2 ** 31) });
      if (this.page.run() === r) this.samples.add(`step ${fmt.count(step)} · your sample · temperature ${temperature} · top-k ${topK}`, text, prompt);
    } catch (e) {
      if (this.page.run() === r) this.showError(e instanceof Error ? e.message : String(e));
    } finally {
      this.button.textContent = 'Sample now';
      this.page.changed();
    }
  }

  private showError(message: string | null): void {
    this.error.textContent = message ?? '';
    this.error.hidden = message === null;
  }
}
