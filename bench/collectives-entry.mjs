// Entry of a collectives-benchmark worker_thread: registers tsx's TypeScript loader in this thread
// (a worker does not inherit it), then loads the worker (as src/parallel/node-rank-entry.mjs does).
import { register } from 'tsx/esm/api';

register();
await import('./collectives-worker.ts');
