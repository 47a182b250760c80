// Reading and writing a model's files for the CLI (convert, train --init / --resume / --save): the
// formats themselves are pure (src/model/formats.ts); this is where paths, folders and overwriting are.

import { existsSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatOf, type ModelFiles } from '../model/formats';
import { CliError, readBytes, UsageError } from './args';

/** A path's files as the readers want them (a folder's known files, or one file). */
export function loadModelFiles(path: string): ModelFiles {
  if (!existsSync(path)) throw new CliError(`${path} does not exist: check the path`);
  const isFolder = statSync(path).isDirectory();
  const format = formatOf(path, isFolder ? 'folder' : 'file');
  if (format === 'shards') {
    if (!existsSync(join(path, 'index.json'))) throw new CliError(`${path} has no index.json: not a sharded checkpoint`);
    const file = (name: string) => (existsSync(join(path, name)) ? readBytes(join(path, name)) : undefined);
    return { format, index: new TextDecoder().decode(readBytes(join(path, 'index.json'))), file };
  }
  if (format !== 'hf') return { format, bytes: readBytes(path) };
  const dir = isFolder ? path : dirname(path);
  const weights = isFolder ? join(dir, 'model.safetensors') : path;
  const text = (name: string) => (existsSync(join(dir, name)) ? new TextDecoder().decode(readBytes(join(dir, name))) : undefined);
  if (!existsSync(weights)) throw new CliError(`${dir} has no model.safetensors: not a Hugging Face model folder`);
  return { format, hf: { 'model.safetensors': readBytes(weights), 'config.json': text('config.json'), 'char_vocab.json': text('char_vocab.json') } };
}

/** The format an output path means (a new name without an extension is a folder). */
export const formatToWrite = (path: string) => formatOf(path, !existsSync(path) ? 'new' : statSync(path).isDirectory() ? 'folder' : 'file');

/**
 * Writes a model's files (writeModel's) at `path`; an existing file only with `force`. Each file is
 * written beside its place and then renamed onto it, so a crash mid-write leaves the old one whole.
 */
export function saveModelFiles(path: string, files: Map<string, ArrayBuffer | string>, force: boolean): string[] {
  const format = formatToWrite(path);
  const folder = format === 'hf' || format === 'shards'; // several files, by name
  const dir = folder && !path.endsWith('.safetensors') ? path : dirname(path);
  const target = (name: string) => (folder ? join(dir, name === 'model.safetensors' && path.endsWith('.safetensors') ? basename(path) : name) : path);
  const paths = [...files.keys()].map(target);
  const clash = paths.filter((p) => existsSync(p) && !statSync(p).isDirectory());
  if (clash.length && !force) throw new UsageError(`${clash.join(', ')} already exist${clash.length === 1 ? 's' : ''}: pass --force to overwrite, or choose another OUT`);
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of files) {
    const tmp = `${target(name)}.partial`;
    writeFileSync(tmp, typeof data === 'string' ? data : new Uint8Array(data));
    renameSync(tmp, target(name));
  }
  return paths;
}

