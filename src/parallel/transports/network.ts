// The network transport: ranks talk only to a relay (src/classroom/), over WebSockets or, inside one
// tab or process, over MessagePorts speaking the same frames. The relay is the hub of the run: it does
// what the star's hub does (sum / mean / gather / broadcast) and forwards point-to-point messages, so per
// all-reduce each rank moves S up and S down, whatever N (the relay's own link carries N x S each way).
// This file is the rank's side and the wire format; the relay's side is src/classroom/hub.ts (the
// logic, any link) and src/classroom/relay.ts (the HTTP + WebSocket server).
//
// Wire format. Control messages are small JSON text frames (hello, welcome, beat, fail, dropped, error;
// at most CONTROL_MAX bytes, never numbers in bulk). Data are binary frames only: a HEADER_BYTES header,
// little-endian, then the Float32Array bytes of one chunk:
//   0 u16 magic 0x4e57   2 u8 type (REQUEST rank->relay, REPLY relay->rank, P2P both ways)
//   3 u8 kind (index in COLLECTIVE_KINDS; P2P_KIND for send/recv)
//   4 u32 seq   8 u32 step   12 u16 from (the sender; the relay checks it is the connection's rank)
//   14 u16 to (send/recv: the destination; broadcast: the root; else 0)
//   16 u32 length (floats of the whole message)   20 u32 total (all-gather's total, broadcast's length; else 0)
//   24 u32 chunk index   28 u32 chunk count (ceil(length / CHUNK_FLOATS), at least 1)
// A message is cut into chunks of at most CHUNK_FLOATS floats (1 MB), sent in order and never interleaved
// with another message on the same link; parseHeader() checks every field strictly, and nothing from a
// peer is ever evaluated as code.
//
// Backpressure: a sender hands the next chunk to its socket only while bufferedAmount is under
// HIGH_WATER (the relay does the same per client), so a slow link slows only itself. send() resolves
// once the message is queued on this rank (as the other transports: sends never block).
//
// Links: in a page, the browser's WebSocket; in Node, the `ws` package (loaded only there, by import());
// without a relay URL, a MessagePort to an in-process relay (wiring.ts), carrying the same frames.
//
// Joining: the first frame is {t:'hello', secret, token, generation}. The relay knows the run by its
// secret and the rank by the token it issued (a client cannot choose its rank); each wiring of the run
// (a recovery rewires it) is a new generation, and the relay forgets the older ones. Tags (kind,
// sequence, step) are checked as by the other transports (transports/base.ts): the relay answers a
// mismatch with an error naming both ranks; a rank dropped by the relay (a malformed, oversized,
// non-finite or flooding message) fails the collectives of every other rank with an error naming it.

import type { Collectives, PortLike } from '../collectives';
import { CommMemory } from '../reduce';
import { unlessOutOfMemory } from '../../util/wasm';
import { chunkBounds } from '../collectives';
import { Base, COLLECTIVE_KINDS, Inbox, describeTag, type CollectiveKind, type P2PMessage, type Tag } from './base';

export const MAGIC = 0x4e57;
export const HEADER_BYTES = 32;
export const CHUNK_FLOATS = 1 << 18; // 1 MB of floats per frame
export const MAX_FRAME_BYTES = HEADER_BYTES + 4 * CHUNK_FLOATS;
export const CONTROL_MAX = 4096; // bytes of a text frame
export const HIGH_WATER = 4 << 20; // bytes a sender lets its socket buffer before it waits
export const P2P_KIND = 255;
export const FrameType = { REQUEST: 1, REPLY: 2, P2P: 3 } as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export interface Header {
  type: FrameTypeCode;
  kind: number; // COLLECTIVE_KINDS index, or P2P_KIND
  seq: number;
  step: number;
  from: number;
  to: number;
  length: number;
  total: number;
  chunk: number;
  chunks: number;
}

export const chunkCount = (length: number) => Math.max(1, Math.ceil(length / CHUNK_FLOATS));
/** Floats in chunk i of a message of `length` floats. */
export const chunkFloats = (length: number, i: number) => Math.max(0, Math.min(CHUNK_FLOATS, length - i * CHUNK_FLOATS));

const u32 = (x: number) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
const u16 = (x: number) => Number.isInteger(x) && x >= 0 && x <= 0xffff;

/** One frame: the header, then chunk h.chunk of data (data is the whole message). */
export function encodeFrame(h: Header, data: Float32Array | null): Uint8Array {
  if (![h.seq, h.step, h.length, h.total, h.chunk, h.chunks].every(u32) || !u16(h.from) || !u16(h.to)) {
    throw new Error(`network transport: a header field is out of range (${JSON.stringify(h)})`);
  }
  const n = chunkFloats(h.length, h.chunk);
  const frame = new Uint8Array(HEADER_BYTES + 4 * n);
  const v = new DataView(frame.buffer);
  v.setUint16(0, MAGIC, true);
  v.setUint8(2, h.type);
  v.setUint8(3, h.kind);
  v.setUint32(4, h.seq, true);
  v.setUint32(8, h.step, true);
  v.setUint16(12, h.from, true);
  v.setUint16(14, h.to, true);
  v.setUint32(16, h.length, true);
  v.setUint32(20, h.total, true);
  v.setUint32(24, h.chunk, true);
  v.setUint32(28, h.chunks, true);
  if (n > 0 && data) {
    const lo = h.chunk * CHUNK_FLOATS;
    frame.set(new Uint8Array(data.buffer, data.byteOffset + 4 * lo, 4 * n), HEADER_BYTES);
  }
  return frame;
}

/**
 * The header of a binary frame, checked strictly (magic, type, kind, chunk numbering, the payload's exact
 * size), or a string saying what is wrong. maxFloats bounds a message's length.
 */
export function parseHeader(bytes: Uint8Array, maxFloats: number): Header | string {
  if (bytes.byteLength < HEADER_BYTES) return `a frame of ${bytes.byteLength} bytes is shorter than the ${HEADER_BYTES}-byte header`;
  if (bytes.byteLength > MAX_FRAME_BYTES) return `a frame of ${bytes.byteLength} bytes is over the ${MAX_FRAME_BYTES}-byte limit`;
  const v = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (v.getUint16(0, true) !== MAGIC) return 'a frame without the magic number (not this protocol)';
  const type = v.getUint8(2);
  if (type !== FrameType.REQUEST && type !== FrameType.REPLY && type !== FrameType.P2P) return `unknown frame type ${type}`;
  const kind = v.getUint8(3);
  if (type === FrameType.P2P ? kind !== P2P_KIND : kind >= COLLECTIVE_KINDS.length) return `frame kind ${kind} does not fit frame type ${type}`;
  const h: Header = {
    type, kind, seq: v.getUint32(4, true), step: v.getUint32(8, true), from: v.getUint16(12, true), to: v.getUint16(14, true),
    length: v.getUint32(16, true), total: v.getUint32(20, true), chunk: v.getUint32(24, true), chunks: v.getUint32(28, true),
  };
  if (h.length > maxFloats || h.total > maxFloats) return `a message of ${Math.max(h.length, h.total)} floats is over the limit of ${maxFloats}`;
  if (h.chunks !== chunkCount(h.length) || h.chunk >= h.chunks) return `chunk ${h.chunk} of ${h.chunks} does not fit a message of ${h.length} floats`;
  const payload = bytes.byteLength - HEADER_BYTES;
  if (payload !== 4 * chunkFloats(h.length, h.chunk)) return `chunk ${h.chunk} carries ${payload} bytes; a message of ${h.length} floats needs ${4 * chunkFloats(h.length, h.chunk)}`;
  return h;
}

/** The fields two chunks of one message share (all but the chunk index). */
export const sameMessage = (a: Header, b: Header) =>
  a.type === b.type && a.kind === b.kind && a.seq === b.seq && a.step === b.step && a.from === b.from && a.to === b.to && a.length === b.length && a.total === b.total && a.chunks === b.chunks;

/** Puts a message back together from its chunks, which must come in order; complete() says when done. */
export class Reassembly {
  readonly data: Float32Array;
  private next = 0;
  constructor(readonly header: Header) {
    this.data = new Float32Array(header.length);
  }
  /** Adds a chunk (h its header, bytes the whole frame); a string says what is wrong. */
  add(h: Header, bytes: Uint8Array): string | null {
    if (!sameMessage(h, this.header) || h.chunk !== this.next) return `chunk ${h.chunk} of another message arrived while chunk ${this.next} of ${this.header.chunks} was expected`;
    const n = chunkFloats(h.length, h.chunk);
    new Uint8Array(this.data.buffer, 4 * h.chunk * CHUNK_FLOATS, 4 * n).set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + 4 * n));
    this.next++;
    return null;
  }
  complete(): boolean {
    return this.next === this.header.chunks;
  }
}

/** What a rank needs to join the run through the relay. */
export interface NetworkEndpoint {
  kind: 'network';
  /** ws://host:port/ of the relay; or, inside one tab or process, `port`: a MessagePort to an in-process relay. */
  url?: string;
  port?: PortLike;
  secret: string; // the run's secret (the one in the link)
  token: string; // this rank's token, issued by the relay; the relay assigns the rank by it
  generation: number; // this wiring of the run (a recovery rewires: a newer generation)
}

/** A duplex link of text and binary frames: a WebSocket, or a MessagePort carrying the same frames. */
export interface FrameLink {
  send(frame: Uint8Array | string): void;
  readonly bufferedAmount: number;
  onframe: (data: ArrayBuffer | Uint8Array | string) => void;
  onclose: (why: string) => void;
  close(): void;
}

/** A MessagePort as a FrameLink (frames are transferred; a MessagePort buffers without bound, as the other transports). */
export function portLink(port: PortLike): FrameLink {
  const link: FrameLink = {
    send(frame) {
      if (typeof frame === 'string') port.postMessage(frame);
      else port.postMessage(frame, [frame.buffer as ArrayBuffer]);
    },
    bufferedAmount: 0,
    onframe: () => {},
    onclose: () => {},
    close: () => port.close?.(),
  };
  port.onmessage = (ev) => link.onframe(ev.data as ArrayBuffer | Uint8Array | string);
  return link;
}

/**
 * A WebSocket as a FrameLink, once open: the `ws` package's in Node (also where Node has a global
 * WebSocket: ws's bufferedAmount is what backpressure reads), the browser's globalThis.WebSocket elsewhere.
 */
export async function socketLink(url: string): Promise<FrameLink> {
  type WS = WebSocket;
  const inNode = typeof process !== 'undefined' && Boolean(process.versions?.node);
  const global = (globalThis as { WebSocket?: new (url: string) => WS }).WebSocket;
  const Ctor: new (url: string) => WS = !inNode && global ? global : ((await import('ws')).default as unknown as new (url: string) => WS);
  const ws = new Ctor(url);
  ws.binaryType = 'arraybuffer';
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`network transport: cannot connect to the relay at ${url}`));
  });
  const link: FrameLink = {
    send: (frame) => ws.send(frame as string | Uint8Array<ArrayBuffer>),
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    onframe: () => {},
    onclose: () => {},
    close: () => ws.close(1000, 'closed'),
  };
  ws.onmessage = (ev) => link.onframe(ev.data as ArrayBuffer | string);
  ws.onerror = () => {};
  ws.onclose = (ev) => link.onclose(`code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''}`);
  return link;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Control messages (JSON text frames). */
export type Control =
  | { t: 'hello'; secret: string; token?: string; generation?: number }
  | { t: 'welcome'; rank: number; world: number; token: string; generation: number }
  | { t: 'beat' }
  | { t: 'fail'; message: string } // the current collective failed on every rank (a mismatch)
  | { t: 'dropped'; rank: number; message: string } // a rank was dropped: the run's collectives fail
  | { t: 'error'; message: string }; // this connection is refused or dropped

/** A text frame as a Control message, or null (too long, not JSON, not an object with a known t). */
export function parseControl(text: string): Control | null {
  if (text.length > CONTROL_MAX) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const t = (v as { t?: unknown }).t;
  return t === 'hello' || t === 'welcome' || t === 'beat' || t === 'fail' || t === 'dropped' || t === 'error' ? (v as Control) : null;
}

/** A message on its way out: its frames go one at a time (chunk), each when the socket has room. */
interface Outgoing { header: Omit<Header, 'chunk' | 'chunks'>; data: Float32Array | null; chunk: number }

/** How often an idle rank tells the relay it is alive (its last heartbeat is in the relay's client list). */
export const BEAT_MS = 2_000;

export class NetworkCollectives extends Base implements Collectives {
  readonly kind = 'network';
  private link: FrameLink | null = null;
  private readonly ready: Promise<void>;
  private replies = new Inbox<Float32Array | { error: string }>();
  private incoming: Reassembly | null = null;
  private out: Outgoing[] = [];
  private pumping = false;
  private closed = false;
  private beat: ReturnType<typeof setInterval> | null = null;

  /** registered: floats of buffers alloc() hands out from one memory (frames are cut from them, and replies written into them, without staging). */
  constructor(rank: number, world: number, private readonly ep: NetworkEndpoint, registered = 0) {
    super(rank, world, unlessOutOfMemory(() => CommMemory.local(registered)) ?? CommMemory.local(0)); // the relay does the sums
    this.ready = this.connect();
    this.ready.catch((e: Error) => this.abort(e));
  }

  private async connect(): Promise<void> {
    const link = this.ep.port ? portLink(this.ep.port) : await socketLink(this.ep.url!);
    if (this.closed) return link.close();
    this.link = link;
    let welcomed: () => void = () => {};
    let refused: (e: Error) => void = () => {};
    const welcome = new Promise<void>((resolve, reject) => ((welcomed = resolve), (refused = reject)));
    link.onframe = (data) => {
      if (typeof data === 'string') {
        const c = parseControl(data);
        if (c?.t === 'welcome') {
          if (c.rank !== this.rank || c.world !== this.world) refused(this.error(`the relay assigned rank ${c.rank} of ${c.world}, not rank ${this.rank} of ${this.world}`));
          else welcomed();
        } else if (c?.t === 'fail') this.replies.deliver({ error: c.message });
        else if (c?.t === 'dropped') this.abort(new Error(`network transport: ${c.message}`));
        else if (c?.t === 'error') {
          refused(this.error(`the relay refused rank ${this.rank}: ${c.message}`));
          this.abort(this.error(`the relay dropped rank ${this.rank}: ${c.message}`));
        }
        return;
      }
      const fail = this.frame(data instanceof Uint8Array ? data : new Uint8Array(data));
      if (fail) this.abort(this.error(`rank ${this.rank} got a bad frame from the relay: ${fail}`));
    };
    link.onclose = (why) => {
      const e = this.error(`rank ${this.rank} lost its link to the relay (${why})`);
      refused(e);
      if (!this.closed) this.abort(e);
    };
    link.send(JSON.stringify({ t: 'hello', secret: this.ep.secret, token: this.ep.token, generation: this.ep.generation } satisfies Control));
    await welcome;
    this.beat = setInterval(() => this.link?.send(JSON.stringify({ t: 'beat' } satisfies Control)), BEAT_MS);
    (this.beat as { unref?: () => void }).unref?.();
  }

  private error(message: string): Error {
    return new Error(`network transport: ${message}`);
  }

  /** A binary frame from the relay: a reply to this rank's collective, or a message sent to it. */
  private frame(bytes: Uint8Array): string | null {
    const h = parseHeader(bytes, 0xffffffff);
    if (typeof h === 'string') return h;
    if (h.type === FrameType.REQUEST) return 'a request frame (only ranks send those)';
    if (h.chunk === 0) {
      if (this.incoming) return 'a new message began before the last one ended';
      this.incoming = new Reassembly(h);
    } else if (!this.incoming) return `chunk ${h.chunk} of a message that never began`;
    const bad = this.incoming.add(h, bytes);
    if (bad) return bad;
    if (!this.incoming.complete()) return null;
    const { header, data } = this.incoming;
    this.incoming = null;
    if (header.type === FrameType.P2P) {
      if (header.to !== this.rank || header.from >= this.world) return `a message for rank ${header.to} from rank ${header.from}`;
      this.arrived({ p2p: true, from: header.from, to: this.rank, seq: header.seq, step: header.step, data });
    } else {
      const kind = COLLECTIVE_KINDS[header.kind];
      const tag: Tag = { kind, seq: header.seq, step: header.step };
      if (kind !== this.tag.kind || header.seq !== this.tag.seq || header.step !== this.tag.step) {
        return `a reply to ${describeTag(tag)} while rank ${this.rank} is in ${describeTag(this.tag)}`;
      }
      this.replies.deliver(data);
    }
    return null;
  }

  /** Sends the queued messages, a chunk at a time, while the socket has room (backpressure). */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      await this.ready;
      while (this.out.length && !this.closed) {
        const link = this.link!;
        if (link.bufferedAmount > HIGH_WATER) {
          await sleep(1);
          continue;
        }
        const m = this.out[0];
        const chunks = chunkCount(m.header.length);
        link.send(encodeFrame({ ...m.header, chunk: m.chunk, chunks }, m.data));
        if (++m.chunk === chunks) this.out.shift();
      }
    } catch (e) {
      this.abort(e as Error);
    } finally {
      this.pumping = false;
    }
  }

  private post(m: Omit<Outgoing, 'chunk'>): void {
    this.stats.bytesSent += 4 * m.header.length;
    this.out.push({ ...m, chunk: 0 });
    void this.pump();
  }

  /** To the relay, which forwards it to msg.to. The buffer is taken over (detached when it is a whole one). */
  protected route(msg: P2PMessage): void {
    const d = msg.data;
    const data = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && !(typeof SharedArrayBuffer !== 'undefined' && d.buffer instanceof SharedArrayBuffer)
      ? new Float32Array(structuredClone(d.buffer as ArrayBuffer, { transfer: [d.buffer as ArrayBuffer] })) // zero-copy: the caller's is detached
      : d.slice();
    this.post({ header: { type: FrameType.P2P, kind: P2P_KIND, seq: msg.seq, step: msg.step, from: this.rank, to: msg.to, length: data.length, total: 0 }, data });
  }

  protected wake(reason: Error): void {
    this.replies.fail(reason);
  }

  /** Sends this rank's half of the running collective; resolves with the relay's answer. */
  private async request(kind: CollectiveKind, data: Float32Array | null, total = 0, to = 0): Promise<Float32Array> {
    const { seq, step } = this.tag;
    this.timed(() => this.post({ header: { type: FrameType.REQUEST, kind: COLLECTIVE_KINDS.indexOf(kind), seq, step, from: this.rank, to, length: data?.length ?? 0, total }, data }));
    const reply = await this.replies.next();
    if (!(reply instanceof Float32Array)) throw new Error(reply.error);
    return reply;
  }

  private expect(out: Float32Array, n: number): Float32Array {
    if (out.length !== n) throw this.error(`rank ${this.rank} expected ${n} floats from the relay for ${describeTag(this.tag)}, got ${out.length}`);
    return out;
  }

  allReduceMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce', async () => {
      const out = this.expect(await this.request('all-reduce', buf), buf.length);
      this.timed(() => buf.set(out));
      return buf;
    });
  }

  allReduceSum(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce-sum', async () => {
      const out = this.expect(await this.request('all-reduce-sum', buf), buf.length);
      this.timed(() => buf.set(out));
      return buf;
    });
  }

  reduceScatterMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('reduce-scatter', async () => {
      const [lo, hi] = chunkBounds(buf.length, this.world, this.rank);
      return this.expect(await this.request('reduce-scatter', buf), hi - lo);
    });
  }

  allGather(chunk: Float32Array, total: number): Promise<Float32Array> {
    return this.serial('all-gather', async () => this.expect(await this.request('all-gather', chunk, total), total));
  }

  broadcast(buf: Float32Array, root: number): Promise<Float32Array> {
    return this.serial('broadcast', async () => {
      const out = this.expect(await this.request('broadcast', this.rank === root ? buf : null, buf.length, root), buf.length);
      if (this.rank !== root) this.timed(() => buf.set(out));
      return buf;
    });
  }

  close(): void {
    this.closed = true;
    if (this.beat) clearInterval(this.beat);
    this.link?.close();
  }
}
