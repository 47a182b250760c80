// The command-line tool: `npm run cli -- <command> [options]`. Dispatches to one module per command and
// turns every expected failure into one line on stderr ("error: ...") and an exit code.

import * as train from './train';
import * as verify from './verify';
import * as convert from './convert';
import { UsageError } from './args';

const COMMANDS: Record<string, { run(argv: string[]): Promise<number>; help: string }> = {
  train,
  'verify-llmc': verify,
  convert,
};

const help = `Usage: npm run cli -- <command> [options]

Commands:
  train               train a GPT-2 on a text file (headless; same loop as the page)
  verify-llmc DIR     check this GPT-2 against llm.c's logits, loss, gradients and AdamW steps
  convert IN OUT      a GPT-2 between llm.c's .bin, Hugging Face's folder and this trainer's checkpoint

Run \`npm run cli -- <command> --help\` for a command's options.
Exit codes: 0 success, 1 failure, 2 bad arguments.`;

/** Errors the tool expects (bad input, bad files, a backend that will not start), by class name. */
const USAGE_ERRORS = new Set(['UsageError', 'ConfigError']);
const EXPECTED_ERRORS = new Set(['CliError', 'DistError', 'CheckpointError', 'DataError', 'TokenizerError', 'BackendError', 'TrainingError']);

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    if (command === 'help' && rest[0] && COMMANDS[rest[0]]) console.log(COMMANDS[rest[0]].help);
    else console.log(help);
    return 0;
  }
  const cmd = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!cmd) {
    throw new UsageError(
      command.startsWith('-')
        ? `expected a command before ${command}: one of ${Object.keys(COMMANDS).join(', ')} (see \`npm run cli -- --help\`)`
        : `unknown command "${command}": use one of ${Object.keys(COMMANDS).join(', ')} (see \`npm run cli -- --help\`)`,
    );
  }
  return cmd.run(rest);
}

let code: number;
try {
  code = await main(process.argv.slice(2));
} catch (e) {
  const err = e instanceof Error ? e : new Error(String(e));
  if (USAGE_ERRORS.has(err.name)) {
    console.error(`error: ${oneLine(err.message)}`);
    code = 2;
  } else if (EXPECTED_ERRORS.has(err.name)) {
    console.error(`error: ${oneLine(err.message)}`);
    code = 1;
  } else {
    // A bug or an environment problem nobody anticipated: still one line, with the stack on request.
    console.error(`error: ${err.name}: ${oneLine(err.message)} (this looks like a bug; rerun with CLI_DEBUG=1 for details)`);
    if (process.env.CLI_DEBUG) console.error(err.stack);
    code = 1;
  }
}
// Exit explicitly: a WebGPU device or wasm worker could otherwise keep the process alive.
process.exit(code);
