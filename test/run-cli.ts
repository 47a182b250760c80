// The project's commands run as a user runs them (tsx FILE ARGS, from the repository root), for the tests
// of the CLI and the bench: the exit code and what was printed.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
const tsx = join(root, 'node_modules/.bin/tsx');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `tsx file ...args`: never rejects; a failure is its exit code (-1 when killed, e.g. at the timeout). */
export function runTsx(file: string, args: string[], timeout = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(tsx, [file, ...args], { cwd: root, timeout }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/** `npm run cli -- ...args`. */
export const cli = (...args: string[]): Promise<RunResult> => runTsx('src/cli/main.ts', args);
