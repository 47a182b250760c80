// How the page speaks: an error's message, a sentence, and the banner at the top of the page.

import { byId } from './dom';

export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A message as a sentence: a capital first letter and a full stop. */
export function sentence(msg: string): string {
  return `${msg.charAt(0).toUpperCase()}${msg.slice(1)}${/[.!?]$/.test(msg) ? '' : '.'}`;
}

/** The banner under the top bar: an error (red) or a warning. */
export const banner = {
  show(title: string, message: string, kind: 'error' | 'warning' = 'error'): void {
    byId('banner-title').textContent = title;
    byId('banner-message').textContent = message;
    byId('banner').dataset.kind = kind;
    byId('banner').hidden = false;
  },
  hide(): void {
    byId('banner').hidden = true;
  },
};
