// worker_threads for the CLI and the benchmarks: one tfjs engine per rank.
//
// This is src/dist/node-spawn.ts's spawnNodeWorker with a working entry: that one starts
// node-rank-worker.ts with execArgv ['--import', 'tsx'], which fails on Node 20 ("Unknown file
// extension .ts", privatenumber/tsx#354); here a small .mjs entry registers tsx first (ts-worker.mjs).

import { Worker, type WorkerOptions } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { RankAPI } from '../protocol';
import type { RankHandle } from '../dist/coordinator';
import { CliError } from './args';

const ENTRY = new URL('./ts-worker.mjs', import.meta.url);

/** A worker_thread running a TypeScript module (workerData, transferList etc. as for any Worker). */
export function tsWorker(module: URL, opts: Omit<WorkerOptions, 'argv' | 'execArgv'> = {}): Worker {
  // execArgv []: tsx is registered by the entry; inheriting `--import tsx` would register it twice.
  return new Worker(ENTRY, { ...opts, argv: [module.href], execArgv: [] });
}

/** One rank (src/dist/node-rank-worker.ts) in its own worker_thread, for Coordinator.create. */
export function spawnRankWorker(): RankHandle {
  const worker = tsWorker(new URL('../dist/node-rank-worker.ts', import.meta.url));
  const api = Comlink.wrap<RankAPI>(nodeEndpoint(worker));
  let terminated = false;
  const failed = new Promise<never>((_, reject) => {
    worker.on('error', (e) => reject(new CliError(`a training worker crashed: ${e.message}`)));
    worker.on('exit', (code) => {
      if (!terminated) reject(new CliError(`a training worker exited unexpectedly (code ${code})`));
    });
  });
  failed.catch(() => {});
  return {
    api,
    failed,
    terminate() {
      if (terminated) return;
      terminated = true;
      api[Comlink.releaseProxy]();
      void worker.terminate();
    },
  };
}
