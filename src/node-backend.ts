// Backend start-up for Node (the CLI, tests and benchmarks): wasm binaries come from node_modules.

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { initBackend, type BackendInfo } from './backend';
import type { BackendName } from './model/config';

export async function initNodeBackend(name: BackendName): Promise<BackendInfo> {
  const require = createRequire(import.meta.url);
  const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/';
  return initBackend(name, { wasmPaths: wasmDir });
}
