// Wiring: the links the coordinator creates for N ranks and hands to each (inside the Worker's init
// message), and the factory a rank builds its Collectives with, for each transport.
// The network transport's endpoint is what a rank needs to join the run on a relay (its URL, the run's
// secret, the rank's token and the wiring's generation); without a relay, the relay's logic runs here,
// in-process, linked to the ranks by MessagePorts carrying the same frames (as the star's hub).

import { pages } from './reduce';
import { unlessOutOfMemory } from '../util/wasm';
import type { Collectives, PortLike, TransportKind } from './collectives';
import { mod } from './transports/base';
import { RingCollectives, type RingOptions } from './transports/ring';
import { StarCollectives, StarHub } from './transports/star';
import { MAX_MEMORY_BYTES, SharedCollectives, sharedLayout, type SharedEndpoint } from './transports/shared';
import { NetworkCollectives, type NetworkEndpoint } from './transports/network';
import { RelayRun } from '../classroom/hub';

/** A run on a relay that the ranks join: where, its secret, and one token per rank (the relay's createRun()). */
export interface RelayInfo { url: string; secret: string; tokens: string[] }

/** The relay's side, when it runs in-process: its byte counts (the coordinator's hubBytes). */
export interface Hub {
  readonly stats: { bytesIn: number; bytesOut: number; ops: number; busyMs: number };
  close(): void;
}

/** Each wiring of a network run is a newer generation (the relay forgets the older ones' links). */
let lastGeneration = 0;
const nextGeneration = () => (lastGeneration = Math.max(lastGeneration + 1, Date.now()));

/** What a rank needs to build its Collectives (sent to it inside a Worker message). */
export type CommEndpoint =
  | { kind: 'ring'; next: PortLike | null; prev: PortLike | null }
  | { kind: 'star'; hub: PortLike }
  | SharedEndpoint
  | NetworkEndpoint;

/**
 * A rank's Collectives. For the ring, opts.registered: floats of registered buffers (alloc()) this rank
 * wants; the shared transport's were fixed by wire().
 */
export function makeCollectives(rank: number, world: number, ep: CommEndpoint, opts: RingOptions = {}): Collectives {
  if (ep.kind === 'ring') return new RingCollectives(rank, world, ep.next, ep.prev, opts);
  if (ep.kind === 'star') return new StarCollectives(rank, world, ep.hub);
  if (ep.kind === 'network') return new NetworkCollectives(rank, world, ep, opts.registered ?? 0);
  return new SharedCollectives(rank, world, ep);
}

/** Transferables inside an endpoint (MessagePorts must be listed to be sent to a Worker). */
export function endpointTransfers(ep: CommEndpoint): Transferable[] {
  if (ep.kind === 'ring') return [ep.next, ep.prev].filter((p): p is PortLike => p !== null) as unknown as Transferable[];
  if (ep.kind === 'star') return [ep.hub as unknown as Transferable];
  if (ep.kind === 'network') return ep.port ? [ep.port as unknown as Transferable] : [];
  return (ep.peers ?? []).filter((p): p is PortLike => p !== null) as unknown as Transferable[];
}

export interface Wiring {
  endpoints: CommEndpoint[];
  hub: Hub | null; // the coordinator's side of a star, or of an in-process relay
  close(): void;
}

/**
 * Creates the links for N ranks: ring (N channels, rank r -> r+1, used both ways by send/recv), star (N
 * channels to a hub run by the caller), or shared (one shared memory: staging pieces of `capacity`
 * floats, and `registered` floats of registered buffers per rank, or none if that would not fit a
 * WebAssembly memory; and a channel per pair of ranks for send/recv), or network (opts.relay: the run
 * on a relay the ranks join, a new generation of it; without one, an in-process relay and N channels
 * to it, trusting its ranks with non-finite values as the other transports do). endpointTransfers()
 * lists every port.
 */
export function wire(
  kind: TransportKind,
  world: number,
  opts: { capacity?: number; registered?: number; newChannel?: () => { port1: PortLike; port2: PortLike }; onHubError?: (m: string) => void; relay?: RelayInfo } = {},
): Wiring {
  const channel = opts.newChannel ?? (() => new MessageChannel() as unknown as { port1: PortLike; port2: PortLike });
  if (kind === 'network') return wireNetwork(world, channel, opts);
  if (kind === 'ring') {
    if (world === 1) return { endpoints: [{ kind: 'ring', next: null, prev: null }], hub: null, close() {} };
    const links = Array.from({ length: world }, channel); // links[r]: r -> r+1
    return {
      endpoints: links.map((_, r) => ({ kind: 'ring', next: links[r].port1, prev: links[mod(r - 1, world)].port2 })),
      hub: null,
      close() {},
    };
  }
  if (kind === 'star') {
    const links = Array.from({ length: world }, channel);
    const hub = new StarHub(links.map((l) => l.port2), opts.onHubError);
    return { endpoints: links.map((l) => ({ kind: 'star', hub: l.port1 })), hub, close: () => hub.close() };
  }
  if (typeof SharedArrayBuffer === 'undefined') {
    throw new Error('the shared transport needs SharedArrayBuffer, which this page does not have (it is not cross-origin isolated)');
  }
  const capacity = opts.capacity ?? 1 << 20;
  const memoryFor = (registered: number): WebAssembly.Memory | null => {
    const bytes = sharedLayout(world, capacity, registered).bytes;
    return bytes > MAX_MEMORY_BYTES ? null : unlessOutOfMemory(() => new WebAssembly.Memory({ initial: pages(bytes), maximum: pages(bytes), shared: true }));
  };
  // Room for every rank's registered buffers if it can be had; else ordinary buffers, staged.
  let registered = opts.registered ?? 0;
  let memory = memoryFor(registered);
  if (!memory && registered > 0) memory = memoryFor((registered = 0));
  if (!memory) throw new Error(`the shared transport's memory (${world + 1} staging pieces of ${capacity} floats) cannot be allocated; use smaller buckets or another transport`);
  // send/recv: a channel per pair of ranks (the shared memory serves collectives of all ranks only)
  const peers: (PortLike | null)[][] = Array.from({ length: world }, () => Array<PortLike | null>(world).fill(null));
  for (let i = 0; i < world; i++) {
    for (let j = i + 1; j < world; j++) {
      const c = channel();
      peers[i][j] = c.port1;
      peers[j][i] = c.port2;
    }
  }
  return { endpoints: peers.map((p) => ({ kind: 'shared', memory, capacity, registered, peers: p })), hub: null, close() {} };
}

function wireNetwork(world: number, channel: () => { port1: PortLike; port2: PortLike }, opts: { onHubError?: (m: string) => void; relay?: RelayInfo }): Wiring {
  const generation = nextGeneration();
  const { relay } = opts;
  if (relay) {
    if (relay.tokens.length !== world) throw new Error(`the relay's run has ${relay.tokens.length} rank tokens, not ${world}`);
    return {
      endpoints: relay.tokens.map((token) => ({ kind: 'network', url: relay.url, secret: relay.secret, token, generation })),
      hub: null, // the relay is elsewhere: its own stats
      close() {},
    };
  }
  const run = new RelayRun({ world, limits: { finiteOnly: false } }, opts.onHubError);
  const links = Array.from({ length: world }, channel);
  for (const { port2 } of links) {
    const client = run.attach({
      send: (frame) => (typeof frame === 'string' ? port2.postMessage(frame) : port2.postMessage(frame, [frame.buffer as ArrayBuffer])),
      bufferedAmount: 0,
      close: () => port2.close?.(),
    });
    port2.onmessage = (ev) => client.receive(ev.data as string | Uint8Array);
  }
  return {
    endpoints: links.map(({ port1 }, r) => ({ kind: 'network', port: port1, secret: run.secret, token: run.tokens[r], generation })),
    hub: { stats: run.stats, close: () => run.close() },
    close: () => run.close(),
  };
}
