// `verify-llmc DIR`: this GPT-2 against llm.c's numbers for the same weights (see src/verify.ts).

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../model/llmc';
import { FLOOR, parseExpected, TOLERANCES, verifyLlmc, type VerifyResult } from '../verify';
import { choiceFlag, CliError, parseFlags, readBytes, readText, requireDir, UsageError } from './args';
import { describeBackend } from '../backend/backend';
import { NODE_BACKENDS, initNodeBackend } from '../backend/node';

const e = (x: number) => x.toExponential(); // 1e-5, not 0.00001

export const help = `Usage: npm run cli -- verify-llmc DIR [--backend auto|wasm|cpu|webgpu] [--json]

Loads an llm.c checkpoint and debug state from DIR and checks that this GPT-2 gives the same
logits, loss and gradients for the same weights and batch (and, if DIR/expected.json has an
"adamw" entry, the same losses over its AdamW steps).

  DIR                 holds model.bin (llm.c model, version 3), state.bin (llm.c debug state,
                      version 2) and optionally expected.json, or llm.c's own files as its
                      train_gpt2.py writes them (gpt2_124M.bin, gpt2_124M_debug_state.bin); e.g. test/fixtures/llmc-tiny
                      (small weights) or test/fixtures/llmc-wide (large weights, T < block_size)
  --backend NAME      tfjs backend: auto (default: wasm in Node), wasm, cpu, or webgpu (Dawn
                      on SwiftShader, a software GPU: slow, but runs the WebGPU kernels)
  --json              print one JSON object instead of the table: backend, loss, loss_ref, loss_rel,
                      logits_maxdiff, logits_rel, grads_maxdiff, grads_relmax, grads (name ->
                      maxdiff), grads_rel (name -> relative), adamw_losses, adamw_ref,
                      adamw_maxdiff, adamw_rel, tolerance, ok (a NaN difference is null)
  -h, --help          show this help

Each tensor passes when its relative error, max|ours - llm.c| / max(max|llm.c|, ${FLOOR.toExponential()}), is within
its backend's tolerance (measured levels, src/verify.ts):
${Object.entries(TOLERANCES)
  .map(([b, t]) => `  ${b.padEnd(8)} logits ${e(t.logits)}, loss ${e(t.loss)}, each gradient ${e(t.grads)}, AdamW losses ${e(t.adamw)}`)
  .join('\n')}
Exit code: 0 when everything is within tolerance, 1 when not (or on a bad file), 2 on bad arguments.`;

const fmt = (x: number | null) => (x === null ? '-' : Number.isFinite(x) ? x.toExponential(2) : String(x));
const mark = (ok: boolean) => (ok ? 'ok' : 'FAIL');

function table(r: VerifyResult, backend: string): string {
  const tol = r.tolerance;
  // name, max |diff|, relative error (what is judged), tolerance
  const rows: [string, number, number, number][] = [
    ['logits', r.logits_maxdiff, r.logits_rel, tol.logits],
    ['loss', Math.abs(r.loss - r.loss_ref), r.loss_rel, tol.loss],
    ...Object.entries(r.grads).map(([name, d]): [string, number, number, number] => [`grad ${name}`, d, r.grads_rel[name], tol.grads]),
    ['grads (all)', r.grads_maxdiff, r.grads_relmax, tol.grads],
  ];
  if (r.adamw_maxdiff !== null) rows.push([`AdamW losses (${r.adamw_ref!.length} steps)`, r.adamw_maxdiff, r.adamw_rel!, tol.adamw]);
  const w = Math.max(...rows.map(([n]) => n.length), 'tensor'.length);
  const lines = [
    `backend ${backend}`,
    `loss ${r.loss.toFixed(6)} (llm.c ${r.loss_ref.toFixed(6)})`,
    '',
    `${'tensor'.padEnd(w)}  ${'max |diff|'.padStart(10)}  ${'relative'.padStart(9)}  ${'tolerance'.padStart(9)}`,
    ...rows.map(([n, d, rel, t]) => `${n.padEnd(w)}  ${fmt(d).padStart(10)}  ${fmt(rel).padStart(9)}  ${fmt(t).padStart(9)}  ${mark(rel <= t)}`),
    '',
    r.ok ? 'OK: matches llm.c within tolerance' : 'FAIL: differs from llm.c beyond tolerance',
  ];
  return lines.join('\n');
}

/**
 * The model and debug state in DIR: model.bin and state.bin, or llm.c's own names (gpt2_124M.bin with
 * gpt2_124M_debug_state.bin, as train_gpt2.py writes them) without renaming.
 */
function llmcFiles(dir: string): { model: string; state: string } {
  if (existsSync(join(dir, 'model.bin')) && existsSync(join(dir, 'state.bin'))) return { model: join(dir, 'model.bin'), state: join(dir, 'state.bin') };
  const states = readdirSync(dir).filter((f) => f.endsWith('_debug_state.bin')).sort();
  for (const s of states) {
    const model = join(dir, s.replace(/_debug_state\.bin$/, '.bin'));
    if (existsSync(model)) return { model, state: join(dir, s) };
  }
  throw new CliError(`${dir} holds neither model.bin and state.bin nor llm.c's NAME.bin and NAME_debug_state.bin (e.g. gpt2_124M.bin and gpt2_124M_debug_state.bin)`);
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
  const { model: modelPath, state: statePath } = llmcFiles(dir);
  const model = readBytes(modelPath);
  const state = readBytes(statePath);
  const expectedPath = join(dir, 'expected.json');
  let adamw = null;
  if (existsSync(expectedPath)) {
    try {
      adamw = parseExpected(readText(expectedPath));
    } catch (e) {
      if (e instanceof CliError) throw e;
      // Not JSON, or not the shape expected: say which file, and that it is optional.
      const message = e instanceof CheckpointError ? e.message.replace(/^expected\.json:? ?/, '') : 'is not a JSON object (with an "adamw" entry)';
      throw new CliError(`${expectedPath}${message.startsWith('is ') ? ' ' : ': '}${message}; fix it or delete it (it is optional: without it the AdamW steps are not checked)`);
    }
  }

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
  if (values.json) console.log(JSON.stringify({ ...r, ...(a ? { adapter: a } : {}) }));
  else console.log(table(r, describeBackend(info)));
  return r.ok ? 0 : 1;
}
