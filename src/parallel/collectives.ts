// Collectives: what N workers use to agree on numbers. All-reduce, reduce-scatter, all-gather and
// broadcast, over three transports a class can compare:
//   ring   - each rank talks only to its neighbours over MessagePorts; a ring all-reduce is a
//            reduce-scatter then an all-gather, N-1 steps each, moving 2(N-1)/N x S per rank (as NCCL).
//            ArrayBuffers are transferred (zero-copy), never cloned.
//   star   - every rank sends its whole buffer to the coordinator, which sums and sends back: simple,
//            and the coordinator's link carries N x S each way (the naive design a class should see lose).
//   shared - one shared memory all ranks can read (needs cross-origin isolation in a browser): each
//            rank reduces its own chunk of every rank's buffer, between two barriers.
//   network - every rank talks only to a relay (src/classroom/) over WebSockets, in binary frames: the
//            relay sums as the star's hub does (S up and S down per rank), for ranks on other machines
//            (the classroom). Without a relay URL it runs in-process over MessagePorts, same frames.
// Every collective is issued in the same order on every rank; a rank runs them one at a time.
// allReduceSum is allReduceMean without the 1/N (tensor parallelism). send/recv (pipeline parallelism)
// are point-to-point between any two ranks, outside that order: see transports/base.ts for their tags and
// each transport's file for its route (ring: neighbours, relayed the shorter way round; star: via the
// hub; shared: a channel per pair of ranks; network: via the relay).
// The sums run in WebAssembly SIMD over each rank's communication memory (src/parallel/reduce.ts); buffers
// from alloc() live in that memory and are reduced where they lie (ring, shared), without staging copies.
//
// Vocabulary: S is a buffer's length in floats; the chunk (shard) of rank r is [lo, hi) of
// chunkBounds(S, N, r); "mean" ops divide the sum by N.
//
// This file is the interface and the chunking; each transport has its own file (transports/ring.ts,
// star.ts, shared.ts, network.ts, and transports/base.ts for what they share), and wiring.ts connects N ranks.

import type { Tracer } from '../util/trace';

/** A MessagePort, a Worker, or Node's worker_threads MessagePort: what the transports need of one. */
export interface PortLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((ev: MessageEvent) => void) | null;
  close?(): void;
}

export interface CommStats {
  bytesSent: number; // bytes this rank put on its links (or wrote to shared memory)
  commMs: number; // CPU time spent inside collective code (copies, sums, posting)
  ops: number;
}

export interface Collectives {
  readonly rank: number;
  readonly world: number;
  readonly kind: TransportKind;
  readonly stats: CommStats;
  tracer: Tracer;
  /**
   * The training step the next collectives belong to: with the kind and the sequence number on the
   * rank, every message says which collective it is part of, and a rank that receives a message of
   * another collective fails with an error naming both (transports/base.ts Tag).
   */
  step: number;
  /**
   * A zeroed buffer of n floats that this transport reduces where it lies (DDP's buckets), while its
   * registered room lasts; an ordinary Float32Array after that. Every rank must allocate the same sizes
   * in the same order.
   */
  alloc(n: number): Float32Array;
  /** In place: buf becomes the element-wise mean over ranks. */
  allReduceMean(buf: Float32Array): Promise<Float32Array>;
  /** In place: buf becomes the element-wise sum over ranks (tensor parallelism's partial products). */
  allReduceSum(buf: Float32Array): Promise<Float32Array>;
  /** Returns this rank's chunk of the element-wise mean (buf is used as scratch). */
  reduceScatterMean(buf: Float32Array): Promise<Float32Array>;
  /** Every rank's chunk, concatenated into a buffer of length total. */
  allGather(chunk: Float32Array, total: number): Promise<Float32Array>;
  /** In place: buf becomes root's buf. */
  broadcast(buf: Float32Array, root: number): Promise<Float32Array>;
  /**
   * Point-to-point (pipeline parallelism): hands buf to rank `to`. Resolves once handed over, without
   * waiting for the receiver, so a schedule whose receives match its sends never deadlocks. buf may be
   * transferred (zero-copy): the caller must not use it afterwards.
   */
  send(buf: Float32Array, to: number): Promise<void>;
  /** The next buffer that rank `from` sent to this rank; it must hold n floats (else an error naming both ranks, the sizes and the step). */
  recv(from: number, n: number): Promise<Float32Array>;
  /** Fails every collective in flight and every later one with `reason` (an aborted step). */
  abort(reason: Error): void;
  close(): void;
}

export type TransportKind = 'ring' | 'star' | 'shared' | 'network';
export const TRANSPORTS: readonly TransportKind[] = ['ring', 'star', 'shared', 'network'];

/** [lo, hi) of chunk i when S elements are split into N nearly equal contiguous chunks. */
export function chunkBounds(S: number, N: number, i: number): [number, number] {
  return [Math.floor((i * S) / N), Math.floor(((i + 1) * S) / N)];
}
