// A rank in a Web Worker (the page and the browser tests).

import * as Comlink from 'comlink';
import type { RankAPI } from './protocol';
import { DistError, rankHandle, type RankHandle } from './coordinator';

export function spawnWebWorker(rank: number): RankHandle {
  const worker = new Worker(new URL('../../workers/rank.worker.ts', import.meta.url), { type: 'module', name: `rank ${rank}` });
  const api = Comlink.wrap<RankAPI>(worker);
  const failed = new Promise<never>((_, reject) => {
    worker.addEventListener('error', (e) => {
      e.preventDefault(); // reported through `failed`, not as an uncaught page error
      reject(new DistError(`training worker ${rank} crashed: ${e.message || 'unknown error (out of memory?)'}`));
    });
  });
  return rankHandle(api, () => worker.terminate(), failed);
}
