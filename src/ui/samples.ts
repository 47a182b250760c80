// Text the model wrote: the worker's sample at every eval, and the user's "Sample now" results.
// Newest first; only the last few are kept so the page stays light over a long run.

import { h } from './dom';

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
