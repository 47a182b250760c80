// Starting a tfjs backend from the command line. Node has no navigator.gpu, so for "webgpu" the `webgpu`
// package (Dawn) provides one, on Chromium's SwiftShader Vulkan driver unless the environment names
// another: a software GPU that runs on the CPU, useful to check the WebGPU kernels, not for speed.

import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node-backend';
import type { BackendInfo } from '../backend';
import type { BackendName } from '../model/config';
import { CliError } from './args';

/** What the CLI accepts (webgl needs a browser). */
export const CLI_BACKENDS = ['auto', 'wasm', 'cpu', 'webgpu'] as const satisfies readonly BackendName[];
export type CliBackend = (typeof CLI_BACKENDS)[number];

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
      throw new CliError(
        `WebGPU in Node needs a Vulkan driver: found neither ${vulkan} (Chromium's, with SwiftShader) nor libvulkan.so.1 ` +
          'on the library path. Install chromium, set CHROMIUM_LIB_DIR to its library directory, or use --backend wasm',
      );
    }
  }
  let webgpu: typeof import('webgpu');
  try {
    webgpu = await import('webgpu');
  } catch (e) {
    throw new CliError(`cannot load the \`webgpu\` package for WebGPU in Node (${(e as Error).message}); use --backend wasm`);
  }
  Object.assign(globalThis, webgpu.globals);
  Object.defineProperty(globalThis, 'navigator', {
    value: { ...(globalThis as { navigator?: object }).navigator, gpu: webgpu.create([]) },
    configurable: true,
    writable: true,
  });
}

/** Starts the backend; a BackendError from initBackend already reads as one line. */
export async function startBackend(name: CliBackend): Promise<BackendInfo> {
  // Production mode silences tfjs's console notes (the cpu backend suggests tfjs-node on first use),
  // so stderr holds only this tool's progress and errors.
  tf.enableProdMode();
  if (name === 'webgpu') await installNodeWebGPU();
  const info = await initNodeBackend(name);
  if (name !== 'auto') info.reason = 'chosen with --backend';
  else if (info.name === 'wasm') info.reason = 'auto in Node: wasm (SIMD), the fastest CPU backend; WebGPU only with --backend webgpu';
  return info;
}

/** "wasm (why)" or "webgpu on google swiftshader, a software fallback adapter (why)". */
export function describeBackend(info: BackendInfo): string {
  const a = info.adapter;
  const device = a ? ` on ${[a.vendor, a.architecture].filter(Boolean).join(' ') || 'an unnamed adapter'}${a.fallback ? ', a software fallback adapter' : ''}` : '';
  return `${info.name}${device} (${info.reason})`;
}
