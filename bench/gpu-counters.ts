// Counts what a training step asks of the WebGPU backend (tfjs-backend-webgpu 4.22), from outside: the
// backend instance's own methods are wrapped, node_modules is not touched.
//
//   dispatches      compute dispatches (recordAndSubmit: one dispatchWorkgroups each), by program
//   submits         queue submissions (submitQueue: tfjs batches 15 dispatches per submit, and every
//                   readback or buffer copy submits too)
//   sync_reads      GPU-to-CPU readbacks through readSync (tensor.dataSync/arraySync/bufferSync): each
//                   one stalls the thread until the GPU has finished everything queued. In Node it even
//                   throws (tfjs reads synchronously through an OffscreenCanvas, which Node has not).
//   async_reads     readbacks through read (tensor.data()/array()): a copy to a staging buffer and mapAsync
//   bytes_read      bytes of both kinds of readback
//   uploads         CPU-to-GPU uploads of tensor data (uploadToGPU of a tensor whose values are on the CPU:
//                   tf.tensor(...) of a batch, of gathered FSDP parameters, scalars made from numbers)
//   bytes_uploaded  their bytes
//   uniform_writes  queue.writeBuffer calls (tfjs writes each dispatch's shape uniforms that way), and
//   uniform_bytes   their bytes, apart from the tensor uploads
//
// Only readbacks that reach the GPU are counted: tfjs caches a tensor's values on the CPU once read, and
// small tensors whose values are still on the CPU run on the CPU (WEBGPU_CPU_FORWARD) without a readback.

import * as tf from '@tensorflow/tfjs';

export interface GpuCounts {
  dispatches: number;
  submits: number;
  sync_reads: number;
  async_reads: number;
  bytes_read: number;
  uploads: number;
  bytes_uploaded: number;
  uniform_writes: number;
  uniform_bytes: number;
  /** dispatches by tfjs program (its class name), most first */
  programs: Record<string, number>;
  /** where each synchronous readback came from (first stack frames outside tfjs), with a count */
  sync_sites: Record<string, number>;
  /** the same for the asynchronous readbacks */
  async_sites: Record<string, number>;
}

export const ZERO_COUNTS = (): GpuCounts => ({
  dispatches: 0, submits: 0, sync_reads: 0, async_reads: 0, bytes_read: 0, uploads: 0, bytes_uploaded: 0,
  uniform_writes: 0, uniform_bytes: 0, programs: {}, sync_sites: {}, async_sites: {},
});

interface TensorDataLike {
  values: unknown;
  resource: { size?: number } | null;
  dtype: string;
  shape: number[];
}

interface WebGPUBackendLike {
  tensorMap: { get(id: object): TensorDataLike | undefined };
  queue: { writeBuffer(buffer: unknown, offset: number, data: ArrayBuffer | ArrayBufferView, dataOffset?: number, size?: number): void };
  recordAndSubmit(program: object, ...rest: unknown[]): void;
  submitQueue(): void;
  readSync(dataId: object): unknown;
  read(dataId: object): Promise<unknown>;
  uploadToGPU(dataId: object): void;
}

const INSTALLED = Symbol.for('gpt2-bench.gpuCounters');

/** Where a synchronous readback was asked for: the first frames outside tfjs and this file. */
function callSite(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  const frames = stack.split('\n').slice(1).map((l) => l.trim());
  const ours = frames.filter((l) => !/node_modules|gpu-counters|node:internal|^at new Promise|<anonymous>|Engine\.|Tensor\.|backend_webgpu|src\/engine\.ts|src\/tensor\.ts/.test(l));
  return ours.slice(0, 3).map((l) => l.replace(/^at /, '').replace(/\(?(file:\/\/)?[^ ]*\/(src|bench)\//, '$2/').replace(/\)$/, '')).join(' <- ') || 'unknown';
}

export class GpuCounters {
  private total = ZERO_COUNTS();
  private last = ZERO_COUNTS();

  private constructor(readonly backend: WebGPUBackendLike) {}

  /**
   * Wraps the methods of the current (webgpu) backend instance; returns null on another backend. Installing
   * twice on one instance returns the first counters.
   */
  static install(backend: unknown = tf.backend()): GpuCounters | null {
    const b = backend as WebGPUBackendLike & { [INSTALLED]?: GpuCounters };
    if (!b || typeof b.recordAndSubmit !== 'function' || typeof b.uploadToGPU !== 'function' || !b.tensorMap) return null;
    if (b[INSTALLED]) return b[INSTALLED]!;
    const c = new GpuCounters(b);
    const t = c.total;
    const onGpu = (id: object) => {
      const d = b.tensorMap.get(id);
      return d && d.values == null && d.resource != null ? d : null;
    };
    const bytesOf = (d: TensorDataLike) => d.resource?.size ?? tf.util.sizeFromShape(d.shape) * 4;

    const recordAndSubmit = b.recordAndSubmit;
    b.recordAndSubmit = function (program, ...rest) {
      t.dispatches += 1;
      const name = (program as { constructor?: { name?: string } }).constructor?.name ?? 'unknown';
      t.programs[name] = (t.programs[name] ?? 0) + 1;
      return recordAndSubmit.call(this, program, ...rest);
    };
    const submitQueue = b.submitQueue;
    b.submitQueue = function () {
      t.submits += 1;
      return submitQueue.call(this);
    };
    const readSync = b.readSync;
    b.readSync = function (dataId) {
      const d = onGpu(dataId);
      if (d) {
        t.sync_reads += 1;
        t.bytes_read += bytesOf(d);
        const site = callSite();
        t.sync_sites[site] = (t.sync_sites[site] ?? 0) + 1;
      }
      return readSync.call(this, dataId);
    };
    const read = b.read;
    b.read = function (dataId) {
      const d = onGpu(dataId);
      if (d) {
        t.async_reads += 1;
        t.bytes_read += bytesOf(d);
        const site = callSite();
        t.async_sites[site] = (t.async_sites[site] ?? 0) + 1;
      }
      return read.call(this, dataId);
    };
    const uploadToGPU = b.uploadToGPU;
    b.uploadToGPU = function (dataId) {
      const d = b.tensorMap.get(dataId);
      if (d && d.resource == null && d.values != null) {
        t.uploads += 1;
        t.bytes_uploaded += tf.util.sizeFromShape(d.shape) * (d.dtype === 'float16' ? 2 : 4);
      }
      return uploadToGPU.call(this, dataId);
    };
    // The queue is a Dawn object: wrap its writeBuffer on the instance (tfjs keeps one queue per backend).
    const queue = b.queue;
    const writeBuffer = queue.writeBuffer;
    const wrapped = function (this: unknown, buffer: unknown, offset: number, data: ArrayBuffer | ArrayBufferView, dataOffset?: number, size?: number) {
      t.uniform_writes += 1;
      const elem = ArrayBuffer.isView(data) ? (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1 : 1;
      t.uniform_bytes += size !== undefined ? size * elem : data.byteLength - (dataOffset ?? 0) * elem;
      return writeBuffer.call(this, buffer, offset, data, dataOffset, size);
    };
    try {
      Object.defineProperty(queue, 'writeBuffer', { value: wrapped, configurable: true, writable: true });
    } catch {
      // a non-extensible native object: uniform writes go uncounted (the counts say -1)
      t.uniform_writes = -1;
    }
    b[INSTALLED] = c;
    return c;
  }

  /** Counts since the last take() (or since install). */
  take(): GpuCounts {
    const now = this.total;
    const prev = this.last;
    const d = ZERO_COUNTS();
    for (const k of Object.keys(d) as (keyof GpuCounts)[]) {
      if (k === 'programs' || k === 'sync_sites' || k === 'async_sites') {
        const out: Record<string, number> = {};
        for (const [name, n] of Object.entries(now[k])) {
          const diff = n - (prev[k][name] ?? 0);
          if (diff) out[name] = diff;
        }
        d[k] = Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]));
      } else if (now.uniform_writes < 0 && (k === 'uniform_writes' || k === 'uniform_bytes')) {
        d[k] = -1;
      } else (d[k] as number) = (now[k] as number) - (prev[k] as number);
    }
    this.last = structuredClone(now);
    return d;
  }
}

/** The median of each numeric count over steps, and the programs and sync sites of the last step. */
export function medianCounts(steps: GpuCounts[]): GpuCounts {
  const out = ZERO_COUNTS();
  if (!steps.length) return out;
  for (const k of Object.keys(out) as (keyof GpuCounts)[]) {
    if (k === 'programs' || k === 'sync_sites' || k === 'async_sites') continue;
    const xs = steps.map((s) => s[k] as number).sort((a, b) => a - b);
    (out[k] as number) = xs[Math.floor((xs.length - 1) / 2)];
  }
  const lastStep = steps[steps.length - 1];
  out.programs = lastStep.programs;
  out.sync_sites = sumSites(steps.map((s) => s.sync_sites)); // over all measured steps
  out.async_sites = lastStep.async_sites; // of the last step
  return out;
}

function sumSites(all: Record<string, number>[]): Record<string, number> {
  const sites: Record<string, number> = {};
  for (const s of all) for (const [k, n] of Object.entries(s)) sites[k] = (sites[k] ?? 0) + n;
  return sites;
}
