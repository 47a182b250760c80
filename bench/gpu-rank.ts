// A rank of the GPU bench in its own worker_thread, with its own Dawn device: the RankService the CLI's
// workers run (src/parallel/rank.ts), started on WebGPU, plus one more call, gpuCounts(), that hands the
// bench this rank's WebGPU counts since the last call (bench/gpu-counters.ts). The coordinator never
// calls it; the bench does, through the same comlink proxy, after each step.

import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { RankService } from '../src/parallel/rank';
import { GpuCounters, type GpuCounts } from './gpu-counters';
import { startWebGPU } from './gpu-webgpu';

let counters: GpuCounters | null = null;

class CountingRank extends RankService {
  gpuCounts(): GpuCounts | null {
    return counters?.take() ?? null;
  }
}

if (!parentPort) throw new Error('bench/gpu-rank.ts runs inside a worker_thread');
const service = new CountingRank(async () => {
  const info = await startWebGPU(); // whatever the config says: this bench is about WebGPU
  counters = GpuCounters.install();
  return info;
});
Comlink.expose(service, nodeEndpoint(parentPort));
