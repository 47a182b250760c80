// Model files on the page: which of the files a user chose or dropped make a model, read with the
// pure readers (src/model/formats.ts), and the files the saved checkpoint downloads as.
//   this trainer's checkpoint  *.ckpt, or any file that starts with "GPT2TFJS" (older downloads were *.bin)
//   llm.c                      *.bin (llm.c's model file)
//   Hugging Face               *.safetensors with its config.json (and char_vocab.json), chosen or dropped
//                              together, or their folder dropped
// No DOM at import time (the corpus panel's node tests import this through corpus.ts).

import { formatOf, isTrainerCheckpoint, readModel, writeModel, type ModelFormat, type ModelWeights } from '../model/formats';
import { CheckpointError } from '../model/llmc';

/** config.json and char_vocab.json, also as a browser renames a second download ("config (1).json"). */
const CONFIG_JSON = /^config(?: ?\(\d+\))?\.json$/i;
const CHAR_VOCAB_JSON = /^char_vocab(?: ?\(\d+\))?\.json$/i;

/** A name the page reads as (part of) a model, never as a training text. */
export function isModelName(name: string): boolean {
  return /\.(ckpt|bin|safetensors|json)$/i.test(name);
}

/** Whether a file starts as this trainer's checkpoints do, whatever its name. */
export async function startsAsCheckpoint(file: Blob): Promise<boolean> {
  return isTrainerCheckpoint(await file.slice(0, 8).arrayBuffer());
}

/** What a set of files held: the weights, which format, what they are called, and the files not used. */
export interface LoadedModel {
  weights: ModelWeights; // .checkpoint set: this trainer's checkpoint (bytes: the file as it is)
  format: ModelFormat;
  source: string; // "model.bin", "model.safetensors + config.json"
  bytes?: ArrayBuffer; // a checkpoint's own bytes, to store as they are
  ignored: string[]; // names of files that are no part of the model
}

const quoted = (name: string) => `“${name}”`;
const list = (files: File[]) => files.map((f) => quoted(f.name)).join(', ');

/**
 * Reads the model in `files` (one file, or a Hugging Face .safetensors with its JSON files). Every
 * problem is a CheckpointError of one line that begins with the file's name: “model.bin” cannot be used: …
 */
export async function readModelFiles(files: File[]): Promise<LoadedModel> {
  if (files.length === 0) throw new CheckpointError('no file was chosen');
  const safetensors = files.filter((f) => /\.safetensors$/i.test(f.name));
  const jsons = files.filter((f) => /\.json$/i.test(f.name));
  if (safetensors.length > 1) throw new CheckpointError(`${list(safetensors)} cannot be used together: one model at a time (one .safetensors with its config.json)`);
  if (safetensors.length === 1 || (jsons.length > 0 && jsons.length === files.length)) {
    const weightsFile = safetensors[0] as File | undefined;
    const configs = jsons.filter((f) => CONFIG_JSON.test(f.name));
    const vocabs = jsons.filter((f) => CHAR_VOCAB_JSON.test(f.name));
    if (configs.length > 1) throw new CheckpointError(`${list(configs)} cannot be used together: one config.json per model`);
    if (vocabs.length > 1) throw new CheckpointError(`${list(vocabs)} cannot be used together: one char_vocab.json per model`);
    const used = [weightsFile, configs[0], vocabs[0]].filter((f): f is File => f !== undefined);
    const source = used.map((f) => f.name).join(' + ') || jsons.map((f) => f.name).join(' + ');
    const hf = {
      'model.safetensors': weightsFile ? await weightsFile.arrayBuffer() : undefined,
      'config.json': configs[0] ? await configs[0].text() : undefined,
      'char_vocab.json': vocabs[0] ? await vocabs[0].text() : undefined,
    };
    let weights: ModelWeights;
    try {
      weights = readModel({ format: 'hf', hf }, `${quoted(source)} cannot be used`);
    } catch (e) {
      // The reader speaks of a folder; on the page the files are chosen or dropped together.
      if (e instanceof CheckpointError && !hf['config.json']) throw new CheckpointError(`${e.message} (choose or drop them together, or drop their folder)`);
      if (e instanceof CheckpointError && !hf['model.safetensors']) throw new CheckpointError(`${e.message}: choose or drop the .safetensors file together with its config.json`);
      throw e;
    }
    return { weights, format: 'hf', source, ignored: files.filter((f) => !used.includes(f)).map((f) => f.name) };
  }
  if (files.length > 1) {
    throw new CheckpointError(`${list(files)}: choose one model file (a checkpoint .ckpt, an llm.c .bin), or a .safetensors with its config.json`);
  }
  const [file] = files;
  const bytes = await file.arrayBuffer();
  // By its content first: a trainer checkpoint is one whatever its name (older downloads were *.bin).
  const format = isTrainerCheckpoint(bytes) ? 'checkpoint' : formatOf(file.name, 'file');
  const weights = readModel({ format: format === 'hf' || format === 'shards' ? 'checkpoint' : format, bytes }, `${quoted(file.name)} cannot be used`);
  return { weights, format: weights.checkpoint ? 'checkpoint' : format, source: file.name, bytes: weights.checkpoint ? bytes : undefined, ignored: [] };
}

/**
 * The files of a dropped DataTransfer, a dropped folder's files included (one level: a Hugging Face
 * model folder). The entries must be taken while the drop event runs; reading them may take longer.
 */
export function droppedFiles(dt: DataTransfer): Promise<File[]> {
  const files = [...dt.files];
  const entries = [...dt.items].map((item) => (item.kind === 'file' ? item.webkitGetAsEntry?.() ?? null : null));
  if (!entries.some((e) => e?.isDirectory)) return Promise.resolve(files);
  return (async () => {
    const out: File[] = [];
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (entry?.isDirectory) out.push(...(await folderFiles(entry as FileSystemDirectoryEntry)));
      else if (files[i]) out.push(files[i]);
    }
    return out;
  })();
}

async function folderFiles(dir: FileSystemDirectoryEntry): Promise<File[]> {
  const reader = dir.createReader();
  const entries: FileSystemEntry[] = [];
  for (;;) { // readEntries gives a folder's entries a batch at a time, then an empty batch
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) break;
    entries.push(...batch);
  }
  const files = entries.filter((e): e is FileSystemFileEntry => e.isFile);
  return Promise.all(files.map((e) => new Promise<File>((resolve, reject) => e.file(resolve, reject))));
}

/** What the Download buttons offer. */
export type DownloadFormat = 'checkpoint' | 'llmc' | 'hf';

/**
 * The files a saved checkpoint downloads as, by name: the checkpoint itself (`<base>.ckpt`), llm.c's
 * model file (`<base>.bin`), or Hugging Face's model.safetensors and config.json (and char_vocab.json
 * for a character vocabulary): the names from_pretrained looks for.
 */
export function exportFiles(checkpoint: ArrayBuffer, format: DownloadFormat, base: string): [string, ArrayBuffer | string][] {
  if (format === 'checkpoint') return [[`${base}.ckpt`, checkpoint]];
  const model = readModel({ format: 'checkpoint', bytes: checkpoint }, 'the saved checkpoint'); // decodeCheckpoint: every check
  return [...writeModel(model, format, base)].map(([name, data]) => [name || `${base}.bin`, data]);
}
