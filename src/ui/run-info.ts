// What a run's workers built, above the chart: the backend and why it was chosen, and chips for the
// model and data sizes.

import type { InitInfo } from '../parallel/protocol';
import { h } from './dom';
import * as fmt from './format';

export function renderRunInfo(target: HTMLElement, i: InitInfo | null): void {
  if (!i) {
    target.replaceChildren();
    return;
  }
  const chip = (label: string, value: string) => h('span', { class: 'chip' }, h('span', {}, label), h('strong', {}, value));
  const b = i.backend;
  const backend = h('p', { class: 'backend' }, h('strong', {}, `Backend: ${b.name}`), ` — ${b.reason}.`);
  if (b.adapter) {
    const a = b.adapter;
    backend.append(` GPU adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' · ') || 'unknown'}${a.fallback ? ' (software fallback)' : ''}.`);
  }
  target.replaceChildren(
    backend,
    h('div', { class: 'chips' },
      chip('parameters', fmt.compact(i.numParams)),
      chip('vocabulary', fmt.count(i.vocabSize)),
      chip('train tokens', fmt.count(i.trainTokens)),
      chip('val tokens', fmt.count(i.valTokens)),
    ),
  );
  target.dataset.backend = b.name;
  target.dataset.numParams = String(i.numParams);
}
