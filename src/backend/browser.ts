// Backend start-up in a browser (page or Worker): Vite serves the wasm binaries; `?url` imports make
// both `vite` (dev) and `vite build` find them.

import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { initBackend, type BackendInfo } from './backend';
import type { BackendName } from '../model/config';

export function initBrowserBackend(name: BackendName, onDeviceLost?: (message: string) => void): Promise<BackendInfo> {
  return initBackend(name, {
    wasmPaths: {
      'tfjs-backend-wasm.wasm': wasmPlain,
      'tfjs-backend-wasm-simd.wasm': wasmSimd,
      'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
    },
    onDeviceLost,
  });
}
