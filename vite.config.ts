import { defineConfig } from 'vite';

// Cross-origin isolation (COOP + COEP) gives the page and its workers SharedArrayBuffer.
const isolation = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

export default defineConfig({
  server: { headers: isolation, port: 5173 },
  preview: { headers: isolation, port: 4173 },
  worker: { format: 'es' },
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
  optimizeDeps: {
    // Pre-bundle the worker's dependencies up front too (Vite's scan starts at index.html and does not
    // follow new Worker(new URL(...))), so the dev server and vitest's browser mode never reload mid-run.
    entries: ['index.html', 'workers/*.worker.ts'],
    include: ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-webgpu', 'comlink', 'gpt-tokenizer/encoding/r50k_base', 'uplot', 'idb-keyval'],
  },
});
