// `convert IN OUT`: a GPT-2 between the formats of the ecosystem (src/model/formats.ts):
// llm.c's .bin, Hugging Face's folder (model.safetensors + config.json) and this trainer's checkpoint.

import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { formatOf, readModel, writeModel, type ModelFiles } from '../model/formats';
import { CliError, parseFlags, readBytes, UsageError } from './args';

export const help = `Usage: npm run cli -- convert IN OUT [--force]

Converts a GPT-2 between formats, chosen by the name:
  *.bin               llm.c's model checkpoint (version 3, fp32; the vocabulary padded to a
                      multiple of 128), which llm.c's trainers start from
  *.safetensors, DIR  Hugging Face's GPT-2: model.safetensors and config.json (and char_vocab.json for
                      a character vocabulary) in one folder, which transformers'
                      GPT2LMHeadModel.from_pretrained(DIR) loads; for *.safetensors, config.json is
                      read from (and written to) the same folder
  anything else       this trainer's checkpoint (as the page downloads it): weights, AdamW state,
                      step, config and tokenizer. Only a checkpoint converts to a checkpoint; to
                      start training from llm.c's or Hugging Face's weights use train --init FILE

  --force             overwrite OUT if it exists (by default nothing is overwritten)
  -h, --help          show this help

llm.c -> Hugging Face -> llm.c gives back the original file byte for byte.
Examples:
  npm run cli -- convert test/fixtures/llmc-tiny/model.bin /tmp/tiny-hf
  npm run cli -- convert /tmp/tiny-hf /tmp/tiny.bin
  npm run cli -- convert gpt2-shakespeare-cpu-step2000.ckpt /tmp/my-gpt2-hf`;

/** A path's files as the readers want them (a folder's known files, or one file). */
function load(path: string): ModelFiles {
  if (!existsSync(path)) throw new CliError(`${path} does not exist: check the path`);
  const format = formatOf(path, statSync(path).isDirectory() ? 'folder' : 'file');
  if (format !== 'hf') return { format, bytes: readBytes(path) };
  const dir = statSync(path).isDirectory() ? path : dirname(path);
  const weights = statSync(path).isDirectory() ? join(dir, 'model.safetensors') : path;
  const text = (name: string) => (existsSync(join(dir, name)) ? new TextDecoder().decode(readBytes(join(dir, name))) : undefined);
  if (!existsSync(weights)) throw new CliError(`${dir} has no model.safetensors: not a Hugging Face model folder`);
  return { format, hf: { 'model.safetensors': readBytes(weights), 'config.json': text('config.json'), 'char_vocab.json': text('char_vocab.json') } };
}

/** The format OUT means (a new name without an extension is a folder). */
const kindOf = (path: string) => formatOf(path, !existsSync(path) ? 'new' : statSync(path).isDirectory() ? 'folder' : 'file');

function save(path: string, files: Map<string, ArrayBuffer | string>, force: boolean): string[] {
  const format = kindOf(path);
  const dir = format === 'hf' ? (path.endsWith('.safetensors') ? dirname(path) : path) : dirname(path);
  const target = (name: string) => (format === 'hf' ? join(dir, name === 'model.safetensors' && path.endsWith('.safetensors') ? basename(path) : name) : path);
  const paths = [...files.keys()].map(target);
  const clash = paths.filter((p) => existsSync(p) && !statSync(p).isDirectory());
  if (clash.length && !force) throw new UsageError(`${clash.join(', ')} already exist${clash.length === 1 ? 's' : ''}: pass --force to overwrite, or choose another OUT`);
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of files) writeFileSync(target(name), typeof data === 'string' ? data : new Uint8Array(data));
  return paths;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('convert', argv, { force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) {
    console.log(help);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`convert needs IN and OUT, got ${positionals.length} path${positionals.length === 1 ? '' : 's'} (see \`npm run cli -- convert --help\`)`);
  const [input, output] = positionals;
  const model = readModel(load(input), input); // every check before anything is written
  const files = writeModel(model, kindOf(output), output);
  const written = save(output, files, Boolean(values.force));
  const c = model.config;
  console.log(`${input} -> ${written.join(', ')}: GPT-2 with ${c.n_layer} layers, ${c.n_head} heads, n_embd ${c.n_embd}, block ${c.block_size}, vocabulary ${c.vocab_size}` +
    `${model.tokenizer ? ` (${model.tokenizer.kind} tokenizer)` : ''}`);
  return 0;
}
