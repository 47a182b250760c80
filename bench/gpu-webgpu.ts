// WebGPU in Node for the GPU bench, in a way that also works from the bundled pack (scripts/gpu-pack.sh):
// no node_modules to resolve files in (src/backend/node.ts finds the wasm binaries with require.resolve,
// which a bundle cannot), and Dawn loaded from `dist/linux-x64/dawn.node` next to the bundle (the
// `webgpu` package finds it relative to its own file, which in a bundle is the bundle).
//
// Vulkan: in the pack, run.sh puts the pack's libvulkan.so.1 on LD_LIBRARY_PATH and names the driver in
// VK_ICD_FILENAMES / VK_DRIVER_FILES. Here (no GPU), Chromium's SwiftShader is the default driver.

import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { BackendError, initBackend, type BackendInfo } from '../src/backend/backend';

const CHROMIUM_DIR = process.env.CHROMIUM_LIB_DIR ?? '/usr/lib/chromium';

/** Call in the main thread before starting worker_threads: native code reads the process's environment. */
export function prepareGpuEnv(): void {
  const icd = `${CHROMIUM_DIR}/vk_swiftshader_icd.json`;
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(icd)) process.env.VK_ICD_FILENAMES = icd;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
}

async function installDawn(): Promise<void> {
  prepareGpuEnv();
  if (process.platform === 'linux') {
    // Dawn dlopens "libvulkan.so.1". With LD_LIBRARY_PATH (the pack) it finds it; else load Chromium's
    // first, by path, kept loaded, so Dawn's dlopen finds it by soname.
    const chromium = `${CHROMIUM_DIR}/libvulkan.so.1`;
    const candidates = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean).map((d) => `${d}/libvulkan.so.1`), chromium].filter((p) => existsSync(p));
    const RTLD_NODELETE = 0x1000;
    let loaded = false;
    for (const lib of candidates.length ? candidates.slice(0, 1) : ['libvulkan.so.1']) {
      try {
        process.dlopen({ exports: {} } as NodeJS.Module, lib, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_GLOBAL | RTLD_NODELETE);
        loaded = true;
      } catch (e) {
        loaded = !/cannot open shared object/.test((e as Error).message); // "not a Node addon" means it loaded
      }
    }
    if (!loaded) throw new BackendError('WebGPU in Node needs the Vulkan loader (libvulkan.so.1): none on LD_LIBRARY_PATH, none at ' + chromium);
  }
  const webgpu = await import('webgpu');
  Object.assign(globalThis, webgpu.globals);
  const flags = (process.env.DAWN_FLAGS ?? '').split(',').filter(Boolean); // e.g. enable-dawn-features=...
  Object.defineProperty(globalThis, 'navigator', {
    value: { ...(globalThis as { navigator?: object }).navigator, gpu: webgpu.create(flags) },
    configurable: true,
    writable: true,
  });
}

/** Starts tfjs on WebGPU (Dawn) in this thread; the result names the adapter and whether it is software. */
export async function startWebGPU(): Promise<BackendInfo> {
  tf.enableProdMode();
  if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) await installDawn();
  return initBackend('webgpu');
}
