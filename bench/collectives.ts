// Collectives benchmark: all-reduce bus bandwidth of each transport, N real worker_threads, against
// memcpy bandwidth measured in the same process; on registered buffers (alloc(): what DDP's buckets are)
// or ordinary Float32Arrays.
//
// busbw as nccl-tests defines it (doc/PERFORMANCE.md): algbw = S / t, busbw = algbw x 2(N-1)/N for
// all-reduce, so it is comparable across N and to the hardware's link bandwidth; here the "link" is
// memory, so the reference is memcpy: Float32Array.set of 64 MB, bytes copied per second.

import { Worker, MessageChannel } from 'node:worker_threads';
import type { PortLike, TransportKind } from '../src/parallel/collectives';
import { endpointTransfers, wire } from '../src/parallel/wiring';
import { median } from '../src/util/stats';
import { CommMemory } from '../src/parallel/reduce';
import { registeredFor, type BenchResult } from './collectives-worker';

const ENTRY = new URL('./collectives-entry.mjs', import.meta.url);
const MB = 2 ** 20;

/** Bytes copied per second by Float32Array.set (median of `iters` after warm-up), in GB/s (1e9). */
export function memcpyGbps(bytes = 64 * MB, iters = 15): number {
  const src = new Float32Array(bytes / 4).fill(1);
  const dst = new Float32Array(bytes / 4);
  const ms: number[] = [];
  for (let i = 0; i < iters + 3; i++) {
    const t0 = performance.now();
    dst.set(src);
    ms.push(performance.now() - t0);
  }
  return bytes / (median(ms, 3) / 1000) / 1e9;
}

export interface CollectiveRow {
  transport: TransportKind;
  registered: boolean; // buffers from alloc(), reduced where they lie (what DDP's buckets are), or ordinary
  workers: number;
  mbytes: number;
  ms: number; // slowest rank's median time of one all-reduce
  algbw_gbps: number;
  busbw_gbps: number;
  pct_of_memcpy: number;
  comm_share: number; // of the slowest rank's time, the part the collective spent on CPU work (copies, sums)
}

/** One transport at N ranks: all sizes, each rank in its own worker_thread. */
export async function runTransport(transport: TransportKind, world: number, sizesMb: number[], memcpy: number, registered: boolean, warmup = 3): Promise<CollectiveRow[]> {
  const sizes = sizesMb.map((m) => m * MB);
  const newChannel = () => new MessageChannel() as unknown as { port1: PortLike; port2: PortLike };
  const wiring = wire(transport, world, { capacity: Math.max(...sizes) / 4, registered: registered ? registeredFor(sizes) : 0, newChannel });
  const results: BenchResult[] = [];
  const workers: Worker[] = [];
  try {
    await Promise.all(
      wiring.endpoints.map(
        (endpoint, rank) =>
          new Promise<void>((resolve, reject) => {
            const w = new Worker(ENTRY, {
              workerData: { rank, world, endpoint, sizes, registered, warmup },
              transferList: endpointTransfers(endpoint) as never[],
            });
            workers.push(w);
            w.on('message', (m: BenchResult | 'done') => (m === 'done' ? resolve() : results.push(m)));
            w.on('error', reject);
            w.on('exit', (code) => reject(new Error(`collectives worker ${rank} exited with code ${code} before finishing`)));
          }),
      ),
    );
  } finally {
    for (const w of workers) void w.terminate();
    wiring.close();
  }
  return sizes.map((bytes) => {
    const ranks = results.filter((r) => r.bytes === bytes);
    const slowest = ranks.reduce((a, b) => (median(b.ms) > median(a.ms) ? b : a));
    const ms = median(slowest.ms);
    const algbw = bytes / (ms / 1000) / 1e9;
    const busbw = world > 1 ? (algbw * 2 * (world - 1)) / world : NaN;
    const total = slowest.ms.reduce((s, x) => s + x, 0);
    return {
      transport, registered, workers: world, mbytes: bytes / MB, ms, algbw_gbps: algbw, busbw_gbps: busbw,
      pct_of_memcpy: (100 * busbw) / memcpy, comm_share: slowest.commMs / total,
    };
  });
}

/** Single-thread GB/s (bytes of one 16 MB operand per second) of the loops a collective is made of. */
export function primitivesGbps(bytes = 16 * MB) {
  const n = bytes / 4;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n).fill(2);
  const mem = CommMemory.local(2 * n + 64);
  const [x, y] = [mem.alloc(n).fill(1), mem.alloc(n).fill(2)];
  const rate = (f: () => void) => {
    const ms: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      f();
      ms.push(performance.now() - t0);
    }
    return bytes / (median(ms, 2) / 1000) / 1e9;
  };
  return {
    set: rate(() => a.set(b)),
    slice: rate(() => void b.slice()),
    add: rate(() => {
      for (let i = 0; i < n; i++) a[i] += b[i];
    }),
    simdAdd: rate(() => mem.addScaled(x, x, y, 1)),
  };
}
