// The classroom relay (Node): one HTTP server that serves the built page (dist/, when built) and relays
// the ranks' messages over WebSockets (the `ws` package) at /relay. It is the hub of a class run: the
// collectives of the `network` transport (src/parallel/transports/network.ts) are computed here
// (src/classroom/hub.ts), and point-to-point messages forwarded. `npm run classroom` starts one
// (src/classroom/main.ts); `npm run cli -- train --transport network` starts one on 127.0.0.1.
//
// API (for the CLI, the tests, and later the coordinator of a class run, membership and the class view):
//   const relay = await Relay.start({ host, port, dist })   port 0: a free one
//   relay.httpUrl, relay.wsUrl                               http://host:port, ws://host:port/relay
//   const run = relay.createRun({ world, limits })          a RelayRun: run.secret, run.tokens[r]
//   relay.joinLink(run)                                      http://host:port/?join=SECRET (to share)
//   run.list()                                               connected clients: rank, generation, address,
//                                                            lastSeen (heartbeat), bytes in/out, queued bytes
//   run.drops, run.stats, run.bufferedBytes()                who was dropped and why; bytes; what is held
//   relay.closeRun(run), await relay.close()
//   GET /status?join=SECRET                                  the run's clients and drops, as JSON
// A rank joins with {t:'hello', secret, token, generation} as its first frame (the token decides its rank;
// without one, the relay assigns the lowest rank nobody has joined as, and its welcome carries the token).
// Security: a run is joined only with its secret; the relay stamps ranks; a connection that sends more
// than a frame's limit (1 MB + header), anything but a hello first, or no hello within HELLO_MS, is
// closed; inside a run, hub.ts's checks drop a misbehaving client, never the relay. Nothing a peer sends
// is evaluated as code: binary headers are parsed field by field, control messages are small JSON.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { CONTROL_MAX, MAX_FRAME_BYTES, parseControl } from '../parallel/transports/network';
import { RelayRun, type ClientInfo, type RelayClient, type RunOptions } from './hub';

export interface RelayOptions {
  host?: string; // default 127.0.0.1
  port?: number; // default 0: a free port
  /** The built page to serve (default ./dist when it exists; null: none). */
  dist?: string | null;
}

/** How long a connection may take to say hello. */
export const HELLO_MS = 10_000;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8', '.bin': 'application/octet-stream',
};

export class Relay {
  readonly runs = new Set<RelayRun>();

  private constructor(private readonly server: Server, private readonly wss: WebSocketServer, readonly host: string, readonly port: number, readonly dist: string | null) {}

  static async start(opts: RelayOptions = {}): Promise<Relay> {
    const host = opts.host ?? '127.0.0.1';
    const dist = opts.dist === undefined ? (existsSync('dist/index.html') ? resolve('dist') : null) : opts.dist;
    const server = createServer();
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES, perMessageDeflate: false });
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(opts.port ?? 0, host, () => ok());
    });
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : opts.port ?? 0;
    const relay = new Relay(server, wss, host, port, dist);
    server.on('request', (req, res) => relay.http(req, res));
    server.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/relay') return socket.destroy();
      wss.handleUpgrade(req, socket, head, (ws) => relay.connection(ws, req));
    });
    return relay;
  }

  get httpUrl(): string {
    return `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  get wsUrl(): string {
    return `${this.httpUrl.replace(/^http/, 'ws')}/relay`;
  }

  /** A new run with `world` ranks: its secret (for the link) and one token per rank. */
  createRun(opts: RunOptions, onError?: (message: string) => void): RelayRun {
    const run = new RelayRun(opts, onError);
    this.runs.add(run);
    return run;
  }

  closeRun(run: RelayRun): void {
    run.close();
    this.runs.delete(run);
  }

  /** The link to share: the page, told to join the run. */
  joinLink(run: RelayRun, host = this.httpUrl): string {
    return `${host}/?join=${run.secret}`;
  }

  private findRun(secret: unknown): RelayRun | null {
    if (typeof secret !== 'string') return null;
    for (const run of this.runs) if (secret.length === run.secret.length && timingSafe(secret, run.secret)) return run;
    return null;
  }

  /** Every client of every run. */
  clients(): ClientInfo[] {
    return [...this.runs].flatMap((r) => r.list());
  }

  /** Bytes the relay holds for its clients, over all runs. */
  bufferedBytes(): number {
    let b = 0;
    for (const r of this.runs) b += r.bufferedBytes();
    return b;
  }

  /** A WebSocket: its first frame must be a hello naming a run by its secret. */
  private connection(ws: WebSocket, req: IncomingMessage): void {
    ws.binaryType = 'nodebuffer';
    const address = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? '?'}`;
    let client: RelayClient | null = null;
    let run: RelayRun | null = null;
    const refuse = (message: string) => {
      try {
        ws.send(JSON.stringify({ t: 'error', message }));
      } catch {
        // gone already
      }
      ws.close(4008, message.slice(0, 120));
    };
    const timer = setTimeout(() => client || refuse('no hello'), HELLO_MS);
    timer.unref?.();
    ws.on('message', (raw: RawData, isBinary: boolean) => {
      const bytes = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (client) return client.receive(isBinary ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes.toString('utf8'));
      if (isBinary || bytes.byteLength > CONTROL_MAX) return refuse('the first message must be a hello');
      const text = bytes.toString('utf8');
      const c = parseControl(text);
      if (c?.t !== 'hello') return refuse('the first message must be a hello');
      run = this.findRun(c.secret);
      if (!run) return refuse('wrong secret');
      clearTimeout(timer);
      client = run.attach({
        send: (frame) => ws.send(frame),
        get bufferedAmount() {
          return ws.bufferedAmount;
        },
        close: (code, reason) => ws.close(code, reason),
        pause: () => ws.pause(),
        resume: () => ws.resume(),
        address,
      });
      client.receive(text);
    });
    ws.on('close', () => {
      clearTimeout(timer);
      if (client && run) run.left(client);
    });
    ws.on('error', () => {}); // a broken socket closes; the relay goes on
  }

  /** The built page (dist/), with the headers a cross-origin isolated page needs, and /status. */
  private http(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/status') {
      const run = this.findRun(url.searchParams.get('join'));
      if (!run) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      return void res.end(JSON.stringify({ world: run.world, generation: run.generation, clients: run.list(), drops: run.drops, stats: run.stats }));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405).end();
    if (!this.dist) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end('The page is not built: run `npm run build`, then `npm run classroom` again.\n');
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(url.pathname);
    } catch {
      return void res.writeHead(400).end();
    }
    let path = normalize(join(this.dist, decoded));
    if (path !== this.dist && !path.startsWith(this.dist + sep)) return void res.writeHead(403).end();
    if (!existsSync(path) || statSync(path).isDirectory()) path = join(this.dist, 'index.html');
    res.writeHead(200, {
      'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
    });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(path));
  }

  async close(): Promise<void> {
    for (const run of this.runs) run.close();
    this.runs.clear();
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((ok) => this.wss.close(() => ok()));
    this.server.closeAllConnections?.();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

function timingSafe(a: string, b: string): boolean {
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}
