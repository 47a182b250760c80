// One rank of the collectives benchmark (bench/collectives.ts), in its own worker_thread: builds the
// rank's Collectives from the endpoint in workerData (MessagePorts transferred, or the shared memory),
// then runs allReduceMean in a loop at each size and reports every iteration's time. Buffers are
// registered (alloc(), as DDP's buckets) or ordinary Float32Arrays.

import { parentPort, workerData } from 'node:worker_threads';
import { makeCollectives, type CommEndpoint } from '../src/parallel/wiring';
import { registeredFloats } from '../src/parallel/layout';

export interface BenchWorkerData {
  rank: number;
  world: number;
  endpoint: CommEndpoint;
  sizes: number[]; // bytes
  registered: boolean; // buffers from alloc() (registered; room for all sizes), or ordinary ones
  warmup: number; // untimed iterations per size; timed ones: itersFor(bytes)
}

export interface BenchResult {
  rank: number;
  bytes: number;
  ms: number[]; // one per timed iteration
  commMs: number; // the collectives' own CPU-time counter over the timed iterations
}

/** Floats of registered memory a rank needs to allocate one buffer of each size (bytes). */
export const registeredFor = (sizes: number[]) => registeredFloats(sizes.map((bytes) => bytes / 4));

/** Timed iterations per size: more for small sizes, at least 7. */
export function itersFor(bytes: number): number {
  return Math.max(7, Math.min(25, Math.round((512 * 2 ** 20) / bytes)));
}

if (parentPort) {
  const port = parentPort;
  const { rank, world, endpoint, sizes, registered, warmup } = workerData as BenchWorkerData;
  // Keeps this thread alive while the shared transport waits in Atomics.waitAsync (its promise alone does
  // not hold Node's event loop open: the worker would exit with code 13, "unsettled top-level await").
  port.on('message', () => {});
  const coll = makeCollectives(rank, world, endpoint, { registered: registered ? registeredFor(sizes) : 0 });
  for (const bytes of sizes) {
    const buf = (registered ? coll.alloc(bytes / 4) : new Float32Array(bytes / 4)).fill(rank + 1); // the mean stays constant
    for (let i = 0; i < warmup; i++) await coll.allReduceMean(buf);
    const ms: number[] = [];
    const c0 = coll.stats.commMs;
    for (let i = 0; i < itersFor(bytes); i++) {
      const t0 = performance.now();
      await coll.allReduceMean(buf);
      ms.push(performance.now() - t0);
    }
    const expected = (world + 1) / 2;
    if (Math.abs(buf[0] - expected) > 1e-4 || Math.abs(buf[buf.length - 1] - expected) > 1e-4) {
      throw new Error(`rank ${rank}: all-reduce gave ${buf[0]}, expected ${expected}`);
    }
    port.postMessage({ rank, bytes, ms, commMs: coll.stats.commMs - c0 } satisfies BenchResult);
  }
  port.postMessage('done');
}
