// `verify-llmc DIR`: this GPT-2 against llm.c's numbers for the same weights (see src/verify.ts).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../model/llmc';
import { parseExpected, TOLERANCE, verifyLlmc, type VerifyResult } from '../verify';
import { choiceFlag, CliError, parseFlags, readBytes, readText, requireDir, UsageError } from './args';
import { describeBackend } from '../backend/backend';
import { NODE_BACKENDS, initNodeBackend } from '../backend/node';

export const help = `Usage: npm run cli -- verify-llmc DIR [--backend auto|wasm|cpu|webgpu] [--json]

Loads an llm.c checkpoint and debug state from DIR and checks that this GPT-2 gives the same
logits, loss and gradients for the same weights and batch (and, if DIR/expected.json has an
"adamw" entry, the same losses over its AdamW steps).

  DIR                 holds model.bin (llm.c model, version 3), state.bin (llm.c debug state,
                      version 2) and optionally expected.json; e.g. test/fixtures/llmc-tiny
  --backend NAME      tfjs backend: auto (default: wasm in Node), wasm, cpu, or webgpu (Dawn
                      on SwiftShader, a software GPU: slow, but runs the WebGPU kernels)
  --json              print one JSON object instead of the table: backend, loss, loss_ref,
                      logits_maxdiff, grads_maxdiff, grads (name -> maxdiff), adamw_losses,
                      adamw_ref, adamw_maxdiff, tolerance, ok (a NaN difference is null)
  -h, --help          show this help

Tolerances (absolute): logits ${TOLERANCE.logits}, loss ${TOLERANCE.loss}, gradients ${TOLERANCE.grads}, AdamW losses ${TOLERANCE.adamw}.
Exit code: 0 when everything is within tolerance, 1 when not (or on a bad file), 2 on bad arguments.`;

const fmt = (x: number | null) => (x === null ? '-' : Number.isFinite(x) ? x.toExponential(2) : String(x));
const mark = (ok: boolean) => (ok ? 'ok' : 'FAIL');

function table(r: VerifyResult, backend: string): string {
  const rows: [string, number, number][] = [
    ['logits', r.logits_maxdiff, TOLERANCE.logits],
    ['loss', Math.abs(r.loss - r.loss_ref), TOLERANCE.loss],
    ...Object.entries(r.grads).map(([name, d]): [string, number, number] => [`grad ${name}`, d, TOLERANCE.grads]),
    ['grads (all)', r.grads_maxdiff, TOLERANCE.grads],
  ];
  if (r.adamw_maxdiff !== null) rows.push([`AdamW losses (${r.adamw_ref!.length} steps)`, r.adamw_maxdiff, TOLERANCE.adamw]);
  const w = Math.max(...rows.map(([n]) => n.length), 'tensor'.length);
  const lines = [
    `backend ${backend}`,
    `loss ${r.loss.toFixed(6)} (llm.c ${r.loss_ref.toFixed(6)})`,
    '',
    `${'tensor'.padEnd(w)}  ${'max |diff|'.padStart(10)}  ${'tolerance'.padStart(9)}`,
    ...rows.map(([n, d, tol]) => `${n.padEnd(w)}  ${fmt(d).padStart(10)}  ${fmt(tol).padStart(9)}  ${mark(d <= tol)}`),
    '',
    r.ok ? 'OK: matches llm.c within tolerance' : 'FAIL: differs from llm.c beyond tolerance',
  ];
  return lines.join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('verify-llmc', argv, {
    backend: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  }, true);
  if (values.help) {
    console.log(help);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? 'verify-llmc needs a directory, e.g. `npm run cli -- verify-llmc test/fixtures/llmc-tiny`'
        : `verify-llmc takes one directory, got ${positionals.length}: ${positionals.join(' ')}`,
    );
  }
  const backend = choiceFlag('backend', values.backend, NODE_BACKENDS) ?? 'auto';
  const dir = positionals[0];
  requireDir(dir);
  for (const f of ['model.bin', 'state.bin']) {
    if (!existsSync(join(dir, f))) throw new CliError(`${join(dir, f)} is missing: DIR must hold llm.c's model.bin and state.bin`);
  }
  const model = readBytes(join(dir, 'model.bin'));
  const state = readBytes(join(dir, 'state.bin'));
  const expectedPath = join(dir, 'expected.json');
  const adamw = existsSync(expectedPath) ? parseExpected(readText(expectedPath)) : null;

  const info = await initNodeBackend(backend);
  const a = info.adapter;
  let r: VerifyResult;
  try {
    r = await verifyLlmc(model, state, adamw);
  } catch (e) {
    // A truncated, corrupt or mismatched file: say which directory, not a stack trace.
    if (e instanceof CheckpointError) throw new CliError(`${dir}: ${e.message} (regenerate the files with llm.c's train_gpt2.py)`);
    throw e;
  }
  if (values.json) console.log(JSON.stringify({ ...r, tolerance: TOLERANCE, ...(a ? { adapter: a } : {}) }));
  else console.log(table(r, describeBackend(info)));
  return r.ok ? 0 : 1;
}
