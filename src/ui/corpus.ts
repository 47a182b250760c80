// The training text: the default Tiny Shakespeare, or a .txt file the user drops in.
// Every rejection says what is wrong with the file and what to do instead.

import { makeDataset } from '../data/dataset';
import { charTokenizer } from '../data/tokenizer';

export const DEFAULT_CORPUS_URL = '/data/tinyshakespeare.txt';
export const DEFAULT_CORPUS_NAME = 'tinyshakespeare.txt';
const MAX_BYTES = 200 * 2 ** 20;

export interface Corpus {
  name: string;
  text: string;
  custom: boolean; // a user's file (kept in IndexedDB so a resumed run finds it again)
  bytes: number;
  chars: number; // characters = tokens for the char tokenizer
  vocab: number; // distinct characters
}

export class CorpusError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorpusError';
  }
}

export function describe(name: string, text: string, custom: boolean, bytes: number): Corpus {
  let chars = 0;
  const distinct = new Set<string>();
  for (const ch of text) {
    chars++;
    distinct.add(ch);
  }
  return { name, text, custom, bytes, chars, vocab: distinct.size };
}

export async function fetchDefaultCorpus(): Promise<Corpus> {
  let res: Response;
  try {
    res = await fetch(DEFAULT_CORPUS_URL);
  } catch (e) {
    throw new CorpusError(`could not download the default text (${(e as Error).message}); choose a .txt file instead`);
  }
  if (!res.ok) throw new CorpusError(`could not download the default text (HTTP ${res.status}); choose a .txt file instead`);
  const text = await res.text();
  return describe(DEFAULT_CORPUS_NAME, text, false, new TextEncoder().encode(text).length);
}

/** Reads a user's file as UTF-8 text; rejects empty, binary, non-UTF-8, huge or too-short files. */
export async function readCorpusFile(file: File, blockSize: number): Promise<Corpus> {
  if (file.size === 0) throw new CorpusError(`"${file.name}" is empty: choose a text file with some writing in it`);
  if (file.size > MAX_BYTES) {
    throw new CorpusError(`"${file.name}" is ${Math.round(file.size / 2 ** 20)} MB; the page accepts text files up to ${MAX_BYTES / 2 ** 20} MB`);
  }
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.includes(0)) {
    throw new CorpusError(`"${file.name}" looks like a binary file (it contains NUL bytes), not plain text: choose a .txt file`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CorpusError(`"${file.name}" is not UTF-8 text: save it as UTF-8 plain text (.txt) and try again`);
  }
  if (text.trim() === '') throw new CorpusError(`"${file.name}" holds only whitespace: choose a text file with some writing in it`);
  const corpus = describe(file.name, text, true, file.size);
  checkLength(corpus, blockSize);
  return corpus;
}

/** The dataset's own length check (DataError), with the char tokenizer the page trains with. */
export function checkLength(corpus: Corpus, blockSize: number): void {
  try {
    makeDataset(corpus.text, charTokenizer(corpus.text), blockSize);
  } catch (e) {
    throw new CorpusError(`"${corpus.name}" is too short: ${(e as Error).message}`);
  }
}
