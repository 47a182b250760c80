// Entry of a GPU-bench rank's worker_thread when run from source (npm run bench:gpu): registers tsx's
// TypeScript loader in this thread, then loads the rank. The bundled pack starts its ranks from the
// bundle itself instead (bench/gpu-main.ts).
import { register } from 'tsx/esm/api';

register();
await import('./gpu-rank.ts');
