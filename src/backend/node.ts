// Backend start-up in Node (the CLI, its worker_threads, tests and benchmarks): the wasm binaries come
// from node_modules. Node has no navigator.gpu, so for "webgpu" the `webgpu` package (Dawn) provides
// one, on Chromium's SwiftShader Vulkan driver unless the environment names another: a software GPU
// that runs on the CPU, useful to check the WebGPU kernels, not for speed.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendError, initBackend, type BackendInfo } from './backend';
import type { BackendName } from '../model/config';

/** What Node can run (webgl needs a browser). */
export const NODE_BACKENDS = ['auto', 'wasm', 'cpu', 'webgpu'] as const satisfies readonly BackendName[];
export type NodeBackend = (typeof NODE_BACKENDS)[number];

const CHROMIUM_DIR = process.env.CHROMIUM_LIB_DIR ?? '/usr/lib/chromium';

/**
 * The environment Dawn and the Vulkan loader read (with getenv, natively). Call it in the main thread
 * before starting worker_threads that use WebGPU: a worker's process.env is its own copy, and setting
 * it there does not reach native code.
 */
export function prepareWebGPUEnv(): void {
  const icd = `${CHROMIUM_DIR}/vk_swiftshader_icd.json`;
  if (!process.env.VK_ICD_FILENAMES && existsSync(icd)) process.env.VK_ICD_FILENAMES = icd;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
}

/** Gives this Node process a navigator.gpu (Dawn via the `webgpu` package). */
async function installNodeWebGPU(): Promise<void> {
  prepareWebGPUEnv();
  // Dawn dlopens "libvulkan.so.1"; Chromium ships one next to SwiftShader, outside the library path.
  // Loading it first (kept loaded: RTLD_NODELETE) makes Dawn's dlopen find it by soname. process.dlopen
  // then says it is not a Node addon, which is expected; "cannot open" means there is no Vulkan at all,
  // and Dawn would only print a native warning, so stop here with a clear message instead.
  if (process.platform === 'linux') {
    const vulkan = `${CHROMIUM_DIR}/libvulkan.so.1`;
    const RTLD_NODELETE = 0x1000;
    let missing = false;
    for (const lib of existsSync(vulkan) ? [vulkan] : ['libvulkan.so.1']) {
      try {
        process.dlopen({ exports: {} } as NodeJS.Module, lib, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE);
      } catch (e) {
        missing = /cannot open shared object/.test((e as Error).message);
      }
    }
    if (missing) {
      throw new BackendError(
        `WebGPU in Node needs a Vulkan driver: found neither ${vulkan} (Chromium's, with SwiftShader) nor libvulkan.so.1 ` +
          'on the library path. Install chromium, set CHROMIUM_LIB_DIR to its library directory, or use --backend wasm',
      );
    }
  }
  let webgpu: typeof import('webgpu');
  try {
    webgpu = await import('webgpu');
  } catch (e) {
    throw new BackendError(`cannot load the \`webgpu\` package for WebGPU in Node (${(e as Error).message}); use --backend wasm`);
  }
  Object.assign(globalThis, webgpu.globals);
  Object.defineProperty(globalThis, 'navigator', {
    value: { ...(globalThis as { navigator?: object }).navigator, gpu: webgpu.create([]) },
    configurable: true,
    writable: true,
  });
}

/** Starts a backend in Node; a BackendError already reads as one line. */
export async function initNodeBackend(name: NodeBackend | BackendName): Promise<BackendInfo> {
  // Production mode silences tfjs's console notes (the cpu backend suggests tfjs-node on first use),
  // so stderr holds only this tool's progress and errors.
  tf.enableProdMode();
  if (name === 'webgpu' && !(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) await installNodeWebGPU();
  const require = createRequire(import.meta.url);
  const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/';
  const info = await initBackend(name, { wasmPaths: wasmDir });
  if (name !== 'auto') info.reason = 'chosen with --backend';
  else if (info.name === 'wasm') info.reason = 'auto in Node: wasm (SIMD), the fastest CPU backend; WebGPU only with --backend webgpu';
  return info;
}
