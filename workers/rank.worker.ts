// A rank in a Web Worker: one GPT-2 replica (src/parallel/rank.ts), driven by the page's coordinator.

import * as Comlink from 'comlink';
import { initBrowserBackend } from '../src/backend/browser';
import { RankService } from '../src/parallel/rank';

const service: RankService = new RankService((name) =>
  initBrowserBackend(name, (message) => service.fail(`${message}. Training stopped; the last checkpoint is kept. Reload, or switch to the wasm backend`)),
);
Comlink.expose(service);
