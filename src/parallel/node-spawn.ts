// Ranks in Node worker_threads, one per rank (each with its own tfjs engine), for the CLI and benchmarks.

import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import type { RankAPI } from './protocol';
import { DistError, rankHandle, type RankHandle } from './coordinator';

export function spawnNodeWorker(): RankHandle {
  const worker = new Worker(new URL('./node-rank-entry.mjs', import.meta.url));
  const api = Comlink.wrap<RankAPI>(nodeEndpoint(worker));
  const failed = new Promise<never>((_, reject) => {
    worker.on('error', (e) => reject(new DistError(`a training worker crashed: ${e.message}`)));
    worker.on('exit', (code) => code !== 0 && reject(new DistError(`a training worker exited with code ${code}`)));
  });
  return rankHandle(api, () => void worker.terminate(), failed);
}
