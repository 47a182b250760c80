// The training text: the default Tiny Shakespeare, or a .txt file the user drops in (model files dropped
// on the page go to the checkpoint panel: src/ui/model-files.ts says which are which).
// Every rejection says what is wrong with the file and what to do instead.
// Reading and checking a text comes first (no DOM); CorpusPanel, below, is the page's “Training text”
// panel: the file input, the drop zone and the user's own text kept in IndexedDB for the next visit.

import { DataError, makeDataset } from '../data/dataset';
import { checkText, decodeCorpus } from '../data/text';
import { charTokenizer } from '../data/tokenizer';
import { byId, h } from './dom';
import { messageOf } from './messages';
import * as fmt from './format';
import * as store from './store';
import { droppedFiles, isModelName, startsAsCheckpoint } from './model-files';

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

/**
 * Reads a user's file as UTF-8 text; rejects empty, binary, non-UTF-8, whitespace-only (decodeCorpus,
 * the check the CLI's --data shares), huge or too-short files.
 */
export async function readCorpusFile(file: File, blockSize: number): Promise<Corpus> {
  if (file.size > MAX_BYTES) {
    throw new CorpusError(`"${file.name}" is ${Math.round(file.size / 2 ** 20)} MB; the page accepts text files up to ${MAX_BYTES / 2 ** 20} MB`);
  }
  let text: string;
  try {
    text = decodeCorpus(new Uint8Array(await file.arrayBuffer()), `"${file.name}"`);
  } catch (e) {
    if (e instanceof DataError) throw new CorpusError(e.message);
    throw e;
  }
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

// ---- the panel -------------------------------------------------------------------------------------------

/** What the panel needs from the page. */
export interface CorpusPage {
  busy(): boolean; // a run is starting, running or paused: the text cannot change
  blockSize(): number | null; // the setup's block_size, null while the setup is invalid
  modelFiles(files: File[]): void; // model files dropped on the page (a checkpoint, llm.c's, Hugging Face's), not a text
  changed(): void; // redraw the page (the corpus changed)
}

export class CorpusPanel {
  private readonly info = byId('corpus-info');
  private readonly error = byId('corpus-error');
  private readonly file = byId<HTMLInputElement>('corpus-file');
  private readonly defaultButton = byId<HTMLButtonElement>('corpus-default');
  private readonly dropzone = byId('dropzone');
  private current: Corpus | null = null;

  constructor(private readonly page: CorpusPage) {
    this.file.addEventListener('change', () => {
      const f = this.file.files?.[0];
      this.file.value = '';
      if (f) void this.useFile(f);
    });
    this.defaultButton.addEventListener('click', () => void this.useDefault());
    // A file dropped anywhere on the page (not only on the drop zone) must not make the browser navigate
    // away from a run. Model files (a checkpoint, an llm.c .bin, a .safetensors with its JSON files, or
    // their folder) go to the checkpoint panel; one other file is a training text.
    window.addEventListener('dragover', (e) => {
      e.preventDefault();
      this.dropzone.classList.add('over');
    });
    window.addEventListener('dragleave', (e) => e.relatedTarget === null && this.dropzone.classList.remove('over'));
    window.addEventListener('drop', (e) => {
      e.preventDefault();
      this.dropzone.classList.remove('over');
      if (e.dataTransfer) void this.dropped(droppedFiles(e.dataTransfer));
    });
  }

  private async dropped(pending: Promise<File[]>): Promise<void> {
    let files: File[];
    try {
      files = await pending;
    } catch (e) {
      return this.showError(`The dropped files could not be read: ${messageOf(e)}`);
    }
    if (files.length === 0) return;
    // A checkpoint is one by its content, whatever its name (older downloads were *.bin).
    if (files.some((f) => isModelName(f.name)) || (files.length === 1 && (await startsAsCheckpoint(files[0]).catch(() => false)))) this.page.modelFiles(files);
    else if (files.length > 1) this.showError(`Drop one text file at a time (got ${files.length}), or a model's files.`);
    else void this.useFile(files[0]);
  }

  /** The training text, null until one is loaded. */
  get corpus(): Corpus | null {
    return this.current;
  }

  /** At start-up: the user's own text from an earlier visit, else Tiny Shakespeare. */
  async restore(): Promise<void> {
    const own = await store.loadCorpus().catch(() => null);
    if (own) {
      const c = describe(own.name, own.text, true, new TextEncoder().encode(own.text).length);
      try {
        checkText(c.text, `"${c.name}"`);
        checkLength(c, this.page.blockSize() ?? 1);
        this.set(c);
      } catch {
        await this.useDefault();
      }
    } else await this.useDefault();
  }

  private set(c: Corpus): void {
    this.current = c;
    this.showError(null);
    this.info.replaceChildren(
      h('strong', {}, c.name),
      ` · ${fmt.bytes(c.bytes)} · ${fmt.count(c.chars)} characters · ${fmt.count(c.vocab)} distinct`,
    );
    this.info.dataset.name = c.name;
    this.defaultButton.hidden = !c.custom;
    this.page.changed();
  }

  private async useFile(file: File): Promise<void> {
    if (this.page.busy()) return this.showError('Stop the run before changing the training text.');
    try {
      const c = await readCorpusFile(file, this.page.blockSize() ?? 64);
      this.set(c);
      await store.saveCorpus({ name: c.name, text: c.text }).catch(() => {});
    } catch (e) {
      this.showError(e instanceof CorpusError ? e.message : `“${file.name}” could not be read: ${messageOf(e)}`);
    }
  }

  private async useDefault(): Promise<void> {
    try {
      this.set(await fetchDefaultCorpus());
      await store.saveCorpus(null).catch(() => {});
    } catch (e) {
      this.info.textContent = 'No training text yet.';
      this.showError(messageOf(e));
    }
  }

  private showError(message: string | null): void {
    this.error.textContent = message ?? '';
    this.error.hidden = message === null;
  }
}

