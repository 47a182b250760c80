// The relay's logic, over any link (a WebSocket in src/classroom/relay.ts, or a MessagePort when a tab or
// a test runs the relay in-process): runs, their ranks, and the collectives the relay computes for them.
// No Node imports: src/parallel/wiring.ts runs it in a tab too. The wire format and the rank's side are
// in src/parallel/transports/network.ts.
//
// A run (RelayRun) has a secret (in the link to share) and one token per rank, issued here: a client
// joins with {hello, secret, token, generation} and the token decides its rank (without a token, the
// lowest rank whose token nobody has used yet, and the welcome carries that token). The relay stamps the
// rank of the connection: a frame that says it comes from another rank drops its sender.
//
// Collectives: as the star's hub, the relay waits for the same collective from every rank of the run,
// computes it (sum, mean, reduce-scatter's chunks, all-gather, broadcast) and answers each; send/recv
// messages are forwarded at once to their destination. Every frame is checked before it is used
// (transports/network.ts parseHeader, then: the sender's rank, the next sequence number, a step that never
// goes back, sizes that fit the collective, finite floats, at most MAX_PENDING requests ahead, at most
// maxFramesPerSecond frames); the first failed check drops THAT client (an 'error' frame, then the link is
// closed), never the relay. When the ranks disagree (another collective, another size): with 3 or more
// ranks and a strict majority, the others are dropped; otherwise every rank's collective fails with the
// mismatch error of transports/base.ts (a bug in the program, not a peer to blame).
// A dropped rank, or one whose link closed, breaks the run's current generation: every other rank gets
// {dropped, rank, message} and fails its collectives with an error naming that rank; the coordinator's
// fault handling then rewires the run (a newer generation), and the relay forgets the older one.
//
// Backpressure: each client's outgoing messages wait in its queue and go out a chunk at a time while its
// socket's bufferedAmount is under HIGH_WATER; while a client's queue holds more than maxQueuedBytes, the
// relay stops reading from it (its own requests wait), and a sender whose messages go to such a client
// is paused too. So a slow reader slows its own link (and, in a synchronous run, the collective it is
// part of), while the relay's buffers stay bounded.

import { COLLECTIVE_KINDS, mismatch, sameTag, type CollectiveKind, type Tag } from '../parallel/transports/base';
import { chunkBounds } from '../parallel/collectives';
import {
  CHUNK_FLOATS, FrameType, HIGH_WATER, P2P_KIND, Reassembly, chunkCount, encodeFrame, parseControl, parseHeader,
  type Control, type Header,
} from '../parallel/transports/network';

/** The relay's side of one connection (a WebSocket or a MessagePort). */
export interface RelayConn {
  send(frame: Uint8Array | string): void;
  readonly bufferedAmount: number;
  close(code: number, reason: string): void;
  /** Stops / restarts reading from this connection (backpressure); absent on links that cannot. */
  pause?(): void;
  resume?(): void;
  readonly address?: string;
}

export interface RunLimits {
  maxFloats: number; // floats of one message (default 2^26: 256 MB)
  maxFramesPerSecond: number; // a client sending more is flooding (default 5000)
  maxQueuedBytes: number; // per client: above this, the relay stops reading from it (default 16 MB)
  finiteOnly: boolean; // reject NaN and Inf in payloads (default true)
}

export const DEFAULT_LIMITS: RunLimits = { maxFloats: 1 << 26, maxFramesPerSecond: 5000, maxQueuedBytes: 16 << 20, finiteOnly: true };
/** Complete requests a client may have waiting for the others (an honest rank has at most one). */
export const MAX_PENDING = 2;

/** What a later coordinator (the class view, membership) can read about a client. */
export interface ClientInfo {
  rank: number; // -1 before its hello
  generation: number;
  address: string;
  connectedAt: number; // Date.now()
  lastSeen: number; // its last frame or heartbeat
  bytesIn: number; // payload bytes received from it
  bytesOut: number; // payload bytes sent to it
  queuedBytes: number; // waiting in its queue and its socket
  paused: boolean;
}

export interface Drop { rank: number; address: string; reason: string; at: number }

interface Request { h: Header; data: Float32Array }
interface Outgoing { header: Omit<Header, 'chunk' | 'chunks'>; data: Float32Array | null; chunk: number }

const randomToken = (bytes = 16) => {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
};

/** Compares two strings in time that depends only on their lengths. */
function sameSecret(a: string, b: string): boolean {
  if (typeof a !== 'string' || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}

export class RelayClient {
  rank = -1;
  generation = -1;
  readonly connectedAt = Date.now();
  lastSeen = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  dropped: string | null = null;
  closed = false;
  // incoming
  incoming: Reassembly | null = null;
  pending: Request[] = [];
  seq = 0; // the last collective sequence number received
  step = 0; // the step of its last message: never goes back
  p2pSeq = new Map<number, number>();
  frames = 0;
  windowStart = Date.now();
  // outgoing
  out: Outgoing[] = [];
  outBytes = 0; // bytes in `out` not yet handed to the socket
  paused = false;
  pumpTimer: ReturnType<typeof setTimeout> | null = null;
  blockedOn: RelayClient | null = null; // paused because its messages go to this slow client

  constructor(readonly conn: RelayConn, readonly run: RelayRun) {}

  get queuedBytes(): number {
    return this.outBytes + (this.closed ? 0 : this.conn.bufferedAmount);
  }

  info(): ClientInfo {
    return {
      rank: this.rank, generation: this.generation, address: this.conn.address ?? 'in-process', connectedAt: this.connectedAt, lastSeen: this.lastSeen,
      bytesIn: this.bytesIn, bytesOut: this.bytesOut, queuedBytes: this.queuedBytes, paused: this.paused,
    };
  }

  /** A frame from this client: text (control) or binary (data). */
  receive(data: string | Uint8Array): void {
    if (this.closed) return;
    this.lastSeen = Date.now();
    if (this.lastSeen - this.windowStart >= 1000) {
      this.windowStart = this.lastSeen;
      this.frames = 0;
    }
    if (++this.frames > this.run.limits.maxFramesPerSecond) return this.run.drop(this, `flooding: more than ${this.run.limits.maxFramesPerSecond} frames in a second`);
    if (typeof data === 'string') {
      const c = parseControl(data);
      if (!c) return this.run.drop(this, 'a text frame that is not a control message');
      if (c.t === 'hello') return this.rank < 0 ? this.run.hello(this, c) : this.run.drop(this, 'a second hello');
      if (c.t === 'beat' && this.rank >= 0) return;
      return this.run.drop(this, `an unexpected ${c.t} message`);
    }
    if (this.rank < 0) return this.run.drop(this, 'data before the hello');
    const bad = this.run.frame(this, data);
    if (bad) this.run.drop(this, bad);
  }

  send(c: Control): void {
    if (!this.closed) this.conn.send(JSON.stringify(c));
  }

  /** Queues a message to this client; its frames go out as its socket drains. */
  post(header: Outgoing['header'], data: Float32Array | null): void {
    if (this.closed) return;
    this.out.push({ header, data, chunk: 0 });
    this.outBytes += 4 * header.length;
    this.bytesOut += 4 * header.length;
    this.pump();
  }

  pump(): void {
    if (this.pumpTimer || this.closed) return;
    while (this.out.length) {
      if (this.conn.bufferedAmount > HIGH_WATER) {
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = null;
          this.pump();
        }, 2);
        break;
      }
      const m = this.out[0];
      const chunks = chunkCount(m.header.length);
      const frame = encodeFrame({ ...m.header, chunk: m.chunk, chunks }, m.data);
      this.outBytes -= frame.byteLength - 32;
      this.conn.send(frame);
      if (++m.chunk === chunks) this.out.shift();
    }
    this.run.flow();
  }

  shut(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.out = [];
    this.outBytes = 0;
    this.pending = [];
    try {
      this.conn.close(code, reason.slice(0, 120));
    } catch {
      // already closed
    }
  }
}

export interface RunOptions { world: number; limits?: Partial<RunLimits>; secret?: string }

/** One run on the relay: its ranks and their collectives. */
export class RelayRun {
  readonly secret: string;
  readonly tokens: string[];
  readonly world: number;
  readonly limits: RunLimits;
  readonly stats = { bytesIn: 0, bytesOut: 0, ops: 0, busyMs: 0 };
  readonly drops: Drop[] = [];
  readonly clients = new Set<RelayClient>();
  generation = 0;
  private slots: (RelayClient | null)[];
  private used = new Set<number>(); // ranks whose token someone joined with
  private broken: string | null = null; // why the current generation's collectives fail
  private closed = false;

  constructor(opts: RunOptions, private onError: (message: string) => void = () => {}) {
    this.world = opts.world;
    this.secret = opts.secret ?? randomToken();
    this.tokens = Array.from({ length: opts.world }, () => randomToken());
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.slots = Array<RelayClient | null>(opts.world).fill(null);
  }

  /** A new connection: feed its frames to the returned client's receive(), and call left() when it closes. */
  attach(conn: RelayConn): RelayClient {
    const c = new RelayClient(conn, this);
    this.clients.add(c);
    return c;
  }

  /** Its link closed (or was closed). */
  left(c: RelayClient): void {
    const held = c.rank >= 0 && this.slots[c.rank] === c;
    c.shut(1000, 'closed');
    this.clients.delete(c);
    if (held) {
      this.slots[c.rank] = null;
      if (!c.dropped) this.breakRun(c.rank, `rank ${c.rank} left the run (its link to the relay closed)`);
    }
    this.flow();
  }

  /** Every connected client (the class view, a coordinator's membership). */
  list(): ClientInfo[] {
    return [...this.clients].map((c) => c.info());
  }

  /** Bytes the relay holds for its clients (queues and sockets): bounded by backpressure. */
  bufferedBytes(): number {
    let b = 0;
    for (const c of this.clients) b += c.queuedBytes + (c.incoming ? 4 * c.incoming.header.length : 0);
    return b;
  }

  /** Drops a client: tells it why, closes its link; the others of its generation fail their collectives. */
  drop(c: RelayClient, reason: string): void {
    if (c.closed) return;
    c.dropped = reason;
    const address = c.conn.address ?? 'in-process';
    this.drops.push({ rank: c.rank, address, reason, at: Date.now() });
    try {
      c.send({ t: 'error', message: reason });
    } catch {
      // its link is gone already
    }
    c.shut(4008, reason);
    this.clients.delete(c);
    if (c.rank >= 0 && this.slots[c.rank] === c) {
      this.slots[c.rank] = null;
      this.breakRun(c.rank, `rank ${c.rank} was dropped by the relay: ${reason}`);
    }
    this.flow();
  }

  private breakRun(rank: number, message: string): void {
    if (this.broken) return;
    this.broken = message;
    for (const o of this.slots) {
      if (!o) continue;
      o.pending = [];
      o.send({ t: 'dropped', rank, message });
    }
  }

  hello(c: RelayClient, h: Extract<Control, { t: 'hello' }>): void {
    if (this.closed) return this.drop(c, 'the run is over');
    if (!sameSecret(h.secret, this.secret)) return this.drop(c, 'wrong secret');
    let rank: number;
    if (h.token !== undefined) {
      rank = this.tokens.findIndex((t) => sameSecret(h.token!, t));
      if (rank < 0) return this.drop(c, 'unknown rank token');
    } else {
      rank = this.tokens.findIndex((_, r) => !this.used.has(r) && !this.slots[r]);
      if (rank < 0) return this.drop(c, `the run is full (${this.world} ranks)`);
    }
    const generation = h.generation ?? this.generation;
    if (!Number.isInteger(generation) || generation < this.generation) return this.drop(c, `generation ${generation} is older than the run's (${this.generation})`);
    if (generation > this.generation) this.newGeneration(generation);
    if (this.slots[rank]) return this.drop(c, `rank ${rank} is already connected`);
    c.rank = rank;
    c.generation = generation;
    this.slots[rank] = c;
    this.used.add(rank);
    c.send({ t: 'welcome', rank, world: this.world, token: this.tokens[rank], generation });
    if (this.broken) c.send({ t: 'dropped', rank: -1, message: this.broken });
  }

  /** A rewired run: the older generation's clients are let go, and its collectives forgotten. */
  private newGeneration(g: number): void {
    this.generation = g;
    this.broken = null;
    for (let r = 0; r < this.world; r++) {
      const old = this.slots[r];
      if (!old) continue;
      this.slots[r] = null;
      old.shut(4000, 'a newer generation of the run replaced this link');
      this.clients.delete(old);
    }
  }

  /** A binary frame from a joined client; a string says why it is rejected (and the client dropped). */
  frame(c: RelayClient, bytes: Uint8Array): string | null {
    const t0 = performance.now();
    try {
      const h = parseHeader(bytes, this.limits.maxFloats);
      if (typeof h === 'string') return h;
      if (h.from !== c.rank) return `rank ${c.rank} sent a frame as rank ${h.from}`;
      if (h.type === FrameType.REPLY) return 'a reply frame (only the relay sends those)';
      if (h.chunk === 0) {
        if (c.incoming) return 'a new message began before the last one ended';
        const bad = this.checkStart(c, h);
        if (bad) return bad;
        c.incoming = new Reassembly(h);
      } else if (!c.incoming) return `chunk ${h.chunk} of a message that never began`;
      if (this.limits.finiteOnly) {
        const n = (bytes.byteLength - 32) >> 2;
        const at = bytes.byteOffset + 32;
        const floats = at % 4 === 0 ? new Float32Array(bytes.buffer, at, n) : new Float32Array(bytes.buffer.slice(at, at + 4 * n));
        for (let i = 0; i < n; i++) if (!Number.isFinite(floats[i])) return `a non-finite value (${floats[i]}) at float ${h.chunk * CHUNK_FLOATS + i} of its message`;
      }
      const bad = c.incoming.add(h, bytes);
      if (bad) return bad;
      c.bytesIn += bytes.byteLength - 32;
      this.stats.bytesIn += bytes.byteLength - 32;
      if (!c.incoming.complete()) return null;
      const { header, data } = c.incoming;
      c.incoming = null;
      if (header.type === FrameType.P2P) {
        this.forward(c, header, data);
        return null;
      }
      if (this.broken) {
        c.send({ t: 'fail', message: `network transport: ${this.broken}` });
        return null;
      }
      if (c.pending.length >= MAX_PENDING) return `flooding: more than ${MAX_PENDING} collectives ahead of the others`;
      c.pending.push({ h: header, data });
      this.collective();
      return null;
    } finally {
      this.stats.busyMs += performance.now() - t0;
    }
  }

  /** The checks a message's first chunk passes before any of it is kept. */
  private checkStart(c: RelayClient, h: Header): string | null {
    const N = this.world;
    if (h.step < c.step) return `a message of step ${h.step} after one of step ${c.step}`;
    if (h.type === FrameType.P2P) {
      if (h.to >= N || h.to === c.rank) return `a message to rank ${h.to} (the ranks are 0 to ${N - 1}, and not itself)`;
      const want = (c.p2pSeq.get(h.to) ?? 0) + 1;
      if (h.seq !== want) return `message #${h.seq} to rank ${h.to} where #${want} was next`;
      if (h.total !== 0) return 'a send/recv message with a total';
      c.p2pSeq.set(h.to, want);
    } else {
      if (h.seq !== c.seq + 1) return `collective #${h.seq} where #${c.seq + 1} was next`;
      const kind = COLLECTIVE_KINDS[h.kind];
      if (kind === 'all-gather') {
        const [lo, hi] = chunkBounds(h.total, N, c.rank);
        if (h.length !== hi - lo || h.to !== 0) return `an all-gather chunk of ${h.length} floats where rank ${c.rank}'s chunk of ${h.total} is ${hi - lo}`;
      } else if (kind === 'broadcast') {
        if (h.to >= N) return `a broadcast from rank ${h.to} (the ranks are 0 to ${N - 1})`;
        if (h.length !== (h.to === c.rank ? h.total : 0)) return `a broadcast message of ${h.length} floats (${h.to === c.rank ? `the root sends all ${h.total}` : 'only the root sends data'})`;
      } else if (h.total !== 0 || h.to !== 0) return `a ${kind} with a total or a root`;
      c.seq = h.seq;
    }
    c.step = h.step;
    return null;
  }

  /** A send/recv message: at once to its destination (a slow destination pauses the sender). */
  private forward(c: RelayClient, h: Header, data: Float32Array): void {
    const dest = this.slots[h.to];
    if (!dest) return; // the run is broken: the destination's collectives and recvs fail anyway
    this.stats.bytesOut += data.byteLength;
    dest.post({ type: FrameType.P2P, kind: P2P_KIND, seq: h.seq, step: h.step, from: c.rank, to: h.to, length: h.length, total: 0 }, data);
    if (dest.queuedBytes > this.limits.maxQueuedBytes) c.blockedOn = dest;
    this.flow();
  }

  /** Pauses the clients whose queues (or whose destinations' queues) are full; resumes the others. */
  flow(): void {
    for (const c of this.clients) {
      if (c.blockedOn && (c.blockedOn.closed || c.blockedOn.queuedBytes <= this.limits.maxQueuedBytes)) c.blockedOn = null;
      const pause = !c.closed && (c.queuedBytes > this.limits.maxQueuedBytes || c.blockedOn !== null);
      if (pause === c.paused || !c.conn.pause) continue;
      c.paused = pause;
      if (pause) c.conn.pause();
      else c.conn.resume?.();
      if (pause) this.watchPaused();
    }
  }

  private watching: ReturnType<typeof setTimeout> | null = null;
  /** While some client is paused, look again soon (its destination's socket drains without telling us). */
  private watchPaused(): void {
    if (this.watching) return;
    this.watching = setTimeout(() => {
      this.watching = null;
      this.flow();
      if ([...this.clients].some((c) => c.paused)) this.watchPaused();
    }, 5);
  }

  /** When every rank has a request waiting: the collective, or the error every rank gets. */
  private collective(): void {
    const N = this.world;
    while (!this.broken && this.slots.every((c) => c && c.pending.length > 0)) {
      const t0 = performance.now();
      const clients = this.slots as RelayClient[];
      const reqs = clients.map((c) => c.pending.shift()!);
      // what the ranks agree on: the tag, and the sizes (all-gather's chunks and broadcast's root differ by
      // design, and were checked against total and root as they came in)
      const key = ({ h }: Request) => `${h.kind}/${h.seq}/${h.step}/${h.total === 0 ? h.length : 0}/${h.total}/${h.to}`;
      const counts = new Map<string, number>();
      for (const r of reqs) counts.set(key(r), (counts.get(key(r)) ?? 0) + 1);
      const [best, votes] = [...counts].sort((a, b) => b[1] - a[1])[0];
      if (votes < N) {
        const tag = (r: Request): Tag => ({ kind: COLLECTIVE_KINDS[r.h.kind], seq: r.h.seq, step: r.h.step });
        const odd = reqs.findIndex((r) => key(r) !== best);
        const ref = reqs.findIndex((r) => key(r) === best);
        if (N >= 3 && votes > N / 2) {
          // a strict majority agrees: the others are wrong (dropping them fails this collective for all)
          reqs.forEach((r, j) => {
            if (key(r) !== best) this.drop(clients[j], `it is in ${describe(r)} but the others are in ${describe(reqs[ref])}`);
          });
          return;
        }
        const message = sameTag(tag(reqs[ref]), tag(reqs[odd]))
          ? `network transport: rank ${ref} is in ${describe(reqs[ref])} but rank ${odd} is in ${describe(reqs[odd])}; every rank must issue the same collectives with the same sizes`
          : mismatch('network', { rank: ref, tag: tag(reqs[ref]) }, { rank: odd, tag: tag(reqs[odd]) }).message;
        this.onError(message);
        for (const c of clients) c.send({ t: 'fail', message });
        continue;
      }
      this.stats.ops += 1;
      const { h } = reqs[0];
      const op: CollectiveKind = COLLECTIVE_KINDS[h.kind];
      let replies: Float32Array[];
      if (op === 'all-reduce' || op === 'all-reduce-sum' || op === 'reduce-scatter') {
        const sum = reqs[0].data;
        for (let j = 1; j < N; j++) {
          const d = reqs[j].data;
          for (let i = 0; i < sum.length; i++) sum[i] += d[i];
        }
        if (op !== 'all-reduce-sum') for (let i = 0; i < sum.length; i++) sum[i] /= N;
        replies = op !== 'reduce-scatter' ? reqs.map(() => sum) : reqs.map((_, j) => sum.subarray(...chunkBounds(sum.length, N, j)));
      } else if (op === 'all-gather') {
        const full = new Float32Array(h.total);
        reqs.forEach((r, j) => full.set(r.data, chunkBounds(h.total, N, j)[0]));
        replies = reqs.map(() => full);
      } else {
        replies = reqs.map(() => reqs[h.to].data);
      }
      // the replies share one buffer: it is only read (a chunk at a time) as each client's socket drains
      replies.forEach((data, j) => {
        this.stats.bytesOut += data.byteLength;
        clients[j].post({ type: FrameType.REPLY, kind: h.kind, seq: h.seq, step: h.step, from: 0, to: h.to, length: data.length, total: h.total }, data);
      });
      this.stats.busyMs += performance.now() - t0;
    }
  }

  close(): void {
    this.closed = true;
    if (this.watching) clearTimeout(this.watching);
    for (const c of this.clients) c.shut(1001, 'the relay closed the run');
    this.clients.clear();
    this.slots.fill(null);
  }
}

const describe = ({ h }: Request) =>
  `${COLLECTIVE_KINDS[h.kind]} #${h.seq} of step ${h.step} with ${h.length} floats${h.total ? ` (total ${h.total})` : ''}${COLLECTIVE_KINDS[h.kind] === 'broadcast' ? ` from root ${h.to}` : ''}`;
