// Two small DOM helpers, so the UI modules read as plain DOM code without a framework.

/** The element with this id; throws if index.html lacks it (a wiring bug, found on first load). */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no element #${id}`);
  return el as T;
}

type Props = Record<string, string | boolean | number | undefined>;

/** h('label', { class: 'field' }, 'text', child): attributes (true = present) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...children);
  return el;
}
