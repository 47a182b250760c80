// `convert IN OUT`: a GPT-2 between the formats of the ecosystem (src/model/formats.ts):
// llm.c's .bin, Hugging Face's folder (model.safetensors + config.json) and this trainer's checkpoint.

import { readModel, writeModel } from '../model/formats';
import { parseFlags, UsageError } from './args';
import { formatToWrite, loadModelFiles, saveModelFiles } from './model-files';

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

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('convert', argv, { force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, true);
  if (values.help) {
    console.log(help);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError(`convert needs IN and OUT, got ${positionals.length} path${positionals.length === 1 ? '' : 's'} (see \`npm run cli -- convert --help\`)`);
  const [input, output] = positionals;
  const model = readModel(loadModelFiles(input), input); // every check before anything is written
  const files = writeModel(model, formatToWrite(output), output);
  const written = saveModelFiles(output, files, Boolean(values.force));
  const c = model.config;
  console.log(`${input} -> ${written.join(', ')}: GPT-2 with ${c.n_layer} layers, ${c.n_head} heads, n_embd ${c.n_embd}, block ${c.block_size}, vocabulary ${c.vocab_size}` +
    `${model.tokenizer ? ` (${model.tokenizer.kind} tokenizer)` : ''}`);
  return 0;
}
