// A training text from a file's bytes: one check, shared by the CLI (--data FILE) and the page (a dropped
// .txt file), so both refuse the same files with the same words. A binary file must not train on U+FFFD
// replacement characters, nor a Latin-1 file on a mangled vocabulary: the bytes are decoded strictly as
// UTF-8, and a text that is mostly control characters is refused as binary.

import { DataError } from './dataset';

/** A text with more than this share of control characters (other than tab, newlines, form feed) is binary. */
export const MAX_CONTROL_SHARE = 0.1;

const UTF16_BOMS: [number, number][] = [[0xff, 0xfe], [0xfe, 0xff]];

/**
 * Decodes a training text. `name` names the file in messages as the caller shows it (a path, or a
 * quoted file name). DataError, saying what is wrong and what to do, for an empty, binary, UTF-16,
 * not-UTF-8 or whitespace-only file.
 */
export function decodeCorpus(bytes: Uint8Array, name: string): string {
  if (bytes.length === 0) throw new DataError(`${name} is empty: choose a text file with some writing in it`);
  if (bytes.length >= 2 && UTF16_BOMS.some(([a, b]) => bytes[0] === a && bytes[1] === b)) {
    throw new DataError(`${name} is UTF-16 text: save it as UTF-8 plain text (.txt) and try again`);
  }
  if (bytes.includes(0)) {
    throw new DataError(`${name} looks like a binary file (it contains NUL bytes), not plain text: choose a .txt file`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // a UTF-8 BOM is dropped
  } catch {
    throw new DataError(`${name} is not UTF-8 text (it may be Latin-1 or Windows-1252): save it as UTF-8 plain text (.txt) and try again`);
  }
  checkText(text, name);
  return text;
}

/** The checks that apply to a decoded text too (e.g. one kept from an earlier visit): not blank, not binary. */
export function checkText(text: string, name: string): void {
  if (text.length === 0) throw new DataError(`${name} is empty: choose a text file with some writing in it`);
  if (text.trim() === '') throw new DataError(`${name} holds only whitespace: choose a text file with some writing in it`);
  const share = controlShare(text);
  if (share > MAX_CONTROL_SHARE) {
    throw new DataError(
      `${name} looks like a binary file (${Math.round(100 * share)}% of its characters are control or replacement characters), ` +
        'not plain text: choose a .txt file',
    );
  }
}

/**
 * The share of a text's UTF-16 code units that no writing uses: C0 controls other than tab, line feed,
 * vertical tab, form feed and carriage return; DEL; C1 controls; U+FFFD (what an earlier lossy decode
 * left of bytes it could not read).
 */
export function controlShare(text: string): number {
  let bad = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && (c < 0x09 || c > 0x0d)) || (c >= 0x7f && c <= 0x9f) || c === 0xfffd) bad++;
  }
  return text.length ? bad / text.length : 0;
}
