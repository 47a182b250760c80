// Entry of a rank's worker_thread: registers tsx's TypeScript loader in this thread (a worker does not
// inherit the parent's loader, and `execArgv: ['--import', 'tsx']` registers it too late for the entry
// module), then loads the rank.
import { register } from 'tsx/esm/api';

register();
await import('./node-rank-worker.ts');
