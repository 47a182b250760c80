// Small helpers shared by the CLI commands: strict flag parsing with one-line messages, number checks,
// file reading with errors that say what to do.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { readFileSync, statSync } from 'node:fs';

/** A mistake on the command line: exit code 2, message says how to fix it. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure that is not a bug (a missing or bad file, a backend that will not start): exit code 1. */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs in strict mode, with its errors turned into UsageErrors that name the command's --help.
 * Every option is a string or boolean; values are checked by the caller.
 */
export function parseFlags<O extends Options>(command: string, argv: string[], options: O, allowPositionals: boolean) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals });
  } catch (e) {
    const err = e as Error & { code?: string };
    if (!err.code?.startsWith('ERR_PARSE_ARGS')) throw e;
    // node's messages are multi-sentence; keep the first sentence and add where to look.
    const first = err.message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '');
    throw new UsageError(`${first.replace(/\.$/, '')} (see \`npm run cli -- ${command} --help\`)`);
  }
}

/** Parses a flag's value as a number; `integer` requires a whole number; `min` is inclusive. */
export function numberFlag(flag: string, value: string | undefined, opts: { integer?: boolean; min?: number } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} needs a number, got "${value}"`);
  if (opts.integer && !Number.isInteger(n)) throw new UsageError(`--${flag} needs a whole number, got "${value}"`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`--${flag} must be at least ${opts.min}, got ${value}`);
  return n;
}

/** One of a fixed set of words. */
export function choiceFlag<T extends string>(flag: string, value: string | undefined, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${flag} must be one of ${choices.join(', ')}, got "${value}"`);
  }
  return value as T;
}

/** --set key=value pairs. */
export function keyValues(pairs: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set needs key=value (for example --set n_layer=2), got "${pair}"`);
    out[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
  }
  return out;
}

function describeFsError(path: string, e: unknown): CliError {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return new CliError(`${path} does not exist: check the path`);
  if (code === 'EACCES') return new CliError(`cannot read ${path}: permission denied`);
  if (code === 'EISDIR') return new CliError(`${path} is a directory, expected a file`);
  return new CliError(`cannot read ${path}: ${(e as Error).message}`);
}

export function requireDir(path: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    throw describeFsError(path, e);
  }
  if (!isDir) throw new CliError(`${path} is not a directory: pass the directory that holds model.bin and state.bin`);
}

export function readBytes(path: string): ArrayBuffer {
  try {
    const b = readFileSync(path);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  } catch (e) {
    throw describeFsError(path, e);
  }
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw describeFsError(path, e);
  }
}

/** Formats a duration in ms as 1h02m, 3m05s or 12.3s. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
