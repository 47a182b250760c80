// Choosing and starting a tfjs backend, in a page, a Worker or Node.
//
// "auto" picks WebGPU only on a real (hardware) adapter: a software fallback adapter such as SwiftShader
// emulates the GPU on the CPU and is ~70x slower than the wasm backend, so it is never chosen
// automatically. Otherwise wasm (XNNPACK, SIMD), then cpu. The result says which backend and why.

import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { BackendName } from '../model/config';
import { serializer } from '../util/serial';

export interface BackendInfo {
  name: Exclude<BackendName, 'auto'>;
  reason: string; // why this backend, in a sentence a student can read
  adapter?: { vendor: string; architecture: string; description: string; fallback: boolean };
  limits?: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

/** Where the wasm binaries are: a directory (Node) or one URL per file (a Vite build). */
export type WasmPaths = string | { 'tfjs-backend-wasm.wasm': string; 'tfjs-backend-wasm-simd.wasm': string; 'tfjs-backend-wasm-threaded-simd.wasm': string };

export class BackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackendError';
  }
}

interface AdapterLike {
  info?: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
}

function gpu(): { requestAdapter(o?: object): Promise<AdapterLike | null> } | undefined {
  return (globalThis as unknown as { navigator?: { gpu?: { requestAdapter(o?: object): Promise<AdapterLike | null> } } }).navigator?.gpu;
}

/** Describes the adapter WebGPU would use, or says why there is none. */
export async function probeWebGPU(): Promise<{ adapter: BackendInfo['adapter']; limits: BackendInfo['limits'] } | string> {
  const g = gpu();
  if (!g) return 'this browser has no WebGPU (navigator.gpu is missing)';
  let adapter: AdapterLike | null = null;
  try {
    adapter = await g.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return `WebGPU requestAdapter failed: ${(e as Error).message}`;
  }
  if (!adapter) return 'WebGPU found no adapter (no usable GPU, or WebGPU disabled)';
  const info = adapter.info ?? {};
  const architecture = info.architecture ?? '';
  const fallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter) || /swiftshader/i.test(architecture + (info.description ?? ''));
  return {
    adapter: { vendor: info.vendor ?? '', architecture, description: info.description ?? '', fallback },
    limits: { maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize },
  };
}

let wasmPathsSet = false;

/**
 * Starts the requested backend (or picks one for "auto") and returns what was chosen and why.
 * onDeviceLost is called if a WebGPU device is lost later (driver reset, GPU removed, tab in background).
 */
export function initBackend(
  requested: BackendName,
  opts: { wasmPaths?: WasmPaths; onDeviceLost?: (message: string) => void } = {},
): Promise<BackendInfo> {
  // One start-up at a time: ranks sharing a thread (tests) must not race in tf.setBackend.
  return startOneAtATime(() => start(requested, opts));
}

const startOneAtATime = serializer();

async function start(
  requested: BackendName,
  opts: { wasmPaths?: WasmPaths; onDeviceLost?: (message: string) => void },
): Promise<BackendInfo> {
  if (opts.wasmPaths && !wasmPathsSet) {
    // The threaded wasm binary breaks in a minified build (tfjs serialises a function with toString).
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    setWasmPaths(opts.wasmPaths as string);
    wasmPathsSet = true;
  }
  let name: BackendInfo['name'];
  let reason: string;
  let probe: Awaited<ReturnType<typeof probeWebGPU>> | undefined;
  if (requested === 'auto') {
    probe = await probeWebGPU();
    if (typeof probe !== 'string' && !probe.adapter!.fallback) {
      name = 'webgpu';
      reason = `a hardware GPU adapter (${probe.adapter!.vendor || 'unknown vendor'} ${probe.adapter!.architecture}) is available`;
    } else {
      name = 'wasm';
      reason = typeof probe === 'string'
        ? `${probe}; wasm (SIMD) is the fastest CPU backend`
        : `the only WebGPU adapter is a software fallback (${probe.adapter!.architecture || probe.adapter!.description || 'emulated'}), much slower than wasm on the CPU`;
    }
  } else {
    name = requested;
    reason = 'chosen in the settings';
  }
  if (name === 'webgpu') {
    probe ??= await probeWebGPU();
    if (typeof probe === 'string') throw new BackendError(`cannot use webgpu: ${probe}. Choose wasm or auto instead`);
    await import('@tensorflow/tfjs-backend-webgpu'); // registers itself only if navigator.gpu exists now
  }
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    throw new BackendError(`could not start the ${name} backend: ${(e as Error).message}. Try backend "auto" or "cpu"`);
  }
  if (!ok) {
    if (requested === 'auto' && name === 'wasm' && (await tf.setBackend('cpu'))) {
      return { name: 'cpu', reason: `${reason}, but wasm failed to start, so the plain-JS cpu backend (slow)` };
    }
    throw new BackendError(`the ${name} backend failed to start in this environment. Try backend "auto" or "cpu"`);
  }
  await tf.ready();
  const result: BackendInfo = { name, reason };
  if (name === 'webgpu' && typeof probe === 'object') {
    result.adapter = probe.adapter;
    result.limits = probe.limits;
    const device = (tf.backend() as unknown as { device?: { lost?: Promise<{ message: string; reason: string }> } }).device;
    device?.lost?.then((info) => opts.onDeviceLost?.(`the GPU device was lost (${info.reason || 'unknown'}: ${info.message})`));
  }
  return result;
}

/** "wasm (why)" or "webgpu on google swiftshader, a software fallback adapter (why)". */
export function describeBackend(info: BackendInfo): string {
  const a = info.adapter;
  const device = a ? ` on ${[a.vendor, a.architecture].filter(Boolean).join(' ') || 'an unnamed adapter'}${a.fallback ? ', a software fallback adapter' : ''}` : '';
  return `${info.name}${device} (${info.reason})`;
}
