// A rank in a Web Worker: one GPT-2 replica (src/dist/rank.ts), driven by the page's coordinator.

import * as Comlink from 'comlink';
import { initBrowserBackend } from '../src/browser-backend';
import { RankService } from '../src/dist/rank';

const service: RankService = new RankService((name) =>
  initBrowserBackend(name, (message) => service.fail(`${message}. Training stopped; the last checkpoint is kept. Reload, or switch to the wasm backend`)),
);
Comlink.expose(service);
