// A Vite dev server and a headless Chromium (with WebGPU through SwiftShader) for the page tests and
// the browser benchmark. No file watching or HMR: edits in the repository must not reload a page
// mid-run; each user gets its own Vite cache directory so concurrent servers do not disturb each other.

import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';
import { chromium, type Browser } from 'playwright-core';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const chromiumArgs = [
  '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--no-first-run', '--disable-quic', '--enable-unsafe-webgpu',
];

export interface Harness {
  base: string; // the dev server's URL, without a trailing slash
  browser: Browser;
  close(): Promise<void>;
}

export async function startHarness(cacheName: string): Promise<Harness> {
  const server = await createServer({
    root,
    configFile: root + 'vite.config.ts',
    logLevel: 'error',
    clearScreen: false,
    server: { port: 0, strictPort: false, hmr: false, watch: null },
    cacheDir: `node_modules/.vite-${cacheName}`,
  });
  await server.listen();
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, args: chromiumArgs });
  return {
    base: server.resolvedUrls!.local[0].replace(/\/$/, ''),
    browser,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}
