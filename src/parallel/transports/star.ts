// The star transport: ranks talk only to the coordinator's hub, which sums and answers. Simple, and the
// coordinator's link carries N x S each way: the naive design a class should see lose.
//
// Point-to-point (send/recv, transports/base.ts) goes through the hub too: the sender posts the message
// on its link (its bytesSent counts it once) and the hub forwards it at once, transferred, to the
// destination's link (counted in the hub's bytesIn and bytesOut), outside the hub's collective loop.

import { chunkBounds, type Collectives, type PortLike } from '../collectives';
import { Base, Inbox, isP2P, mismatch, sameTag, type P2PMessage, type Tag } from './base';

/** A rank's half of a collective (tag.kind says which); the hub answers with data, or an error for all. */
interface StarRequest { tag: Tag; data: Float32Array; total?: number; root?: number }
type StarReply = Float32Array | { error: string };

export class StarCollectives extends Base implements Collectives {
  readonly kind = 'star';
  private inbox: Inbox<StarReply>;

  constructor(rank: number, world: number, private hub: PortLike) {
    super(rank, world, null); // the hub does the sums
    this.inbox = new Inbox<StarReply>();
    hub.onmessage = (ev) => (isP2P(ev.data) ? this.arrived(ev.data) : this.inbox.deliver(ev.data as StarReply));
  }

  /** To the hub, which forwards it to msg.to. */
  protected route(msg: P2PMessage): void {
    this.stats.bytesSent += msg.data.byteLength;
    this.hub.postMessage(msg, [msg.data.buffer]);
  }

  protected wake(reason: Error): void {
    this.inbox.fail(reason);
  }

  private async request(req: Omit<StarRequest, 'tag'>): Promise<Float32Array> {
    this.timed(() => {
      this.stats.bytesSent += req.data.byteLength;
      this.hub.postMessage({ ...req, tag: this.tag } satisfies StarRequest, [req.data.buffer]);
    });
    const reply = await this.inbox.next();
    if (!(reply instanceof Float32Array)) throw new Error(reply.error);
    return reply;
  }

  allReduceMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce', async () => {
      const out = await this.request({ data: buf.slice() });
      this.timed(() => buf.set(out));
      return buf;
    });
  }

  allReduceSum(buf: Float32Array): Promise<Float32Array> {
    return this.serial('all-reduce-sum', async () => {
      const out = await this.request({ data: buf.slice() });
      this.timed(() => buf.set(out));
      return buf;
    });
  }

  reduceScatterMean(buf: Float32Array): Promise<Float32Array> {
    return this.serial('reduce-scatter', () => this.request({ data: buf.slice() }));
  }

  allGather(chunk: Float32Array, total: number): Promise<Float32Array> {
    return this.serial('all-gather', () => this.request({ data: chunk.slice(), total }));
  }

  broadcast(buf: Float32Array, root: number): Promise<Float32Array> {
    return this.serial('broadcast', async () => {
      const out = await this.request({ data: this.rank === root ? buf.slice() : new Float32Array(0), root });
      if (this.rank !== root) this.timed(() => buf.set(out));
      return buf;
    });
  }

  close(): void {
    this.hub.close?.();
  }
}

/**
 * The coordinator's side of the star: waits for the same collective from every rank, computes it,
 * and answers each. A rank that issues a different collective than the others is a bug (ranks must
 * issue collectives in one order): the hub reports it instead of mixing data.
 */
export class StarHub {
  readonly stats = { bytesIn: 0, bytesOut: 0, ops: 0, busyMs: 0 };
  private inboxes: Inbox<StarRequest>[];
  private closed = false;

  constructor(private ports: PortLike[], private onError: (message: string) => void = () => {}) {
    this.inboxes = ports.map((p) => {
      const inbox = new Inbox<StarRequest>();
      p.onmessage = (ev) => (isP2P(ev.data) ? this.relay(ev.data) : inbox.deliver(ev.data as StarRequest));
      return inbox;
    });
    void this.loop();
  }

  /** A point-to-point message: forwarded at once to its destination's link, whatever collective is running. */
  private relay(msg: P2PMessage): void {
    const port = this.ports[msg.to];
    if (this.closed || !port) return;
    const t0 = performance.now();
    this.stats.bytesIn += msg.data.byteLength;
    this.stats.bytesOut += msg.data.byteLength;
    port.postMessage(msg, [msg.data.buffer]);
    this.stats.busyMs += performance.now() - t0;
  }

  private async loop(): Promise<void> {
    const N = this.ports.length;
    while (!this.closed) {
      const reqs = await Promise.all(this.inboxes.map((b) => b.next()));
      if (this.closed) return;
      const t0 = performance.now();
      this.stats.ops += 1;
      for (const r of reqs) this.stats.bytesIn += r.data.byteLength;
      const op = reqs[0].tag.kind;
      const other = reqs.findIndex((r) => !sameTag(r.tag, reqs[0].tag));
      if (other >= 0) {
        const message = mismatch('star', { rank: 0, tag: reqs[0].tag }, { rank: other, tag: reqs[other].tag }).message;
        this.onError(message);
        for (const p of this.ports) p.postMessage({ error: message } satisfies StarReply); // every rank's collective fails
        continue;
      }
      let replies: Float32Array[];
      if (op === 'all-reduce' || op === 'all-reduce-sum' || op === 'reduce-scatter') {
        const sum = reqs[0].data;
        for (let j = 1; j < N; j++) {
          const d = reqs[j].data;
          for (let i = 0; i < sum.length; i++) sum[i] += d[i];
        }
        if (op !== 'all-reduce-sum') for (let i = 0; i < sum.length; i++) sum[i] /= N;
        replies = op !== 'reduce-scatter'
          ? reqs.map((_, j) => (j === N - 1 ? sum : sum.slice()))
          : reqs.map((_, j) => sum.slice(...chunkBounds(sum.length, N, j)));
      } else if (op === 'all-gather') {
        const total = reqs[0].total!;
        const full = new Float32Array(total);
        reqs.forEach((r, j) => full.set(r.data, chunkBounds(total, N, j)[0]));
        replies = reqs.map((_, j) => (j === N - 1 ? full : full.slice()));
      } else {
        const src = reqs[reqs[0].root!].data;
        replies = reqs.map((_, j) => (j === N - 1 ? src : src.slice()));
      }
      replies.forEach((data, j) => {
        this.stats.bytesOut += data.byteLength;
        this.ports[j].postMessage(data, [data.buffer]);
      });
      this.stats.busyMs += performance.now() - t0;
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.ports) p.close?.();
  }
}
