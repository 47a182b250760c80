// Entry of a Node worker_thread that runs a TypeScript module: registers tsx in this thread, then
// imports the module named by the worker's first argv entry (argv: [url]).
//
// Why not `new Worker('x.ts', { execArgv: ['--import', 'tsx'] })`: on Node 20 the worker's entry file
// is resolved before tsx's hooks apply to it, so it fails with "Unknown file extension .ts"
// (privatenumber/tsx#354). A plain .mjs entry that registers tsx and then imports the .ts file works on
// every Node version tsx supports.
import { register } from 'tsx/esm/api';

register();
const entry = process.argv[2];
if (!entry) throw new Error('ts-worker.mjs needs the module to run as its first argv entry');
await import(entry);
