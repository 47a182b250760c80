// `npm run classroom [-- --port P --host H --ranks N]`: starts the classroom relay (relay.ts), which serves
// the built page (run `npm run build` first; this builds nothing) and relays a class run of N ranks
// over WebSockets, and prints the link to share. Students joining from the page, membership and the
// class view are later work: for now a run has a fixed number of ranks, assigned as they join.

import { networkInterfaces } from 'node:os';
import { Relay } from './relay';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** This machine's first non-internal IPv4 address (what students type), else localhost. */
function lanAddress(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

const host = flag('host', '0.0.0.0');
const port = Number(flag('port', '8080'));
const ranks = Number(flag('ranks', '8'));
/** A bad flag: one line and exit code 2, as the CLI (no stack trace). */
function usageError(message: string): never {
  console.error(`error: ${message} (usage: npm run classroom -- [--port 8080] [--host 0.0.0.0] [--ranks 8])`);
  process.exit(2);
}
if (!Number.isInteger(port) || port < 0 || port > 65535) usageError(`--port must be a whole number from 0 to 65535, got "${flag('port', '')}"`);
if (!Number.isInteger(ranks) || ranks < 1 || ranks > 1024) usageError(`--ranks must be a whole number from 1 to 1024, got "${flag('ranks', '')}"`);

const relay = await Relay.start({ host, port });
const run = relay.createRun({ world: ranks });
const shown = host === '0.0.0.0' || host === '::' ? `http://${lanAddress()}:${relay.port}` : relay.httpUrl;
if (!relay.dist) console.log('No built page in dist/: run `npm run build` first to serve it (the relay runs anyway).');
console.log(`Classroom relay on ${relay.httpUrl} (WebSockets at ${relay.wsUrl}), a run of ${ranks} ranks.`);
console.log(`Share this link: ${relay.joinLink(run, shown)}`);
console.log(`Status: ${shown}/status?join=${run.secret}`);
const stop = () => void relay.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
