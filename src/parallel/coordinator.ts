// The coordinator: starts N ranks, wires their links, and drives them one step at a time.
// It never touches gradients or parameters (those move rank to rank), except in the "star" transport,
// where it is the hub on purpose. It looks like a Trainer to the training loop (src/train/session.ts).

import * as Comlink from 'comlink';
import type { RunConfig } from '../model/config';
import type { InitInfo, RankAPI, RankInit, RankStepStats, SampleRequest } from './protocol';
import type { StepOptions, StepStats } from '../train/trainer';
import type { History } from '../train/checkpoint';
import { TRANSPORTS, type TransportKind } from './collectives';
import { endpointTransfers, wire, type Wiring } from './wiring';
import { DEFAULT_BUCKET_MB, DEFAULT_PROBE_MB, MAX_WORKERS, SHARD_STRATEGIES, STRATEGIES, assignBuckets, ddpRegisteredSizes, gradientSync, registeredFloats, unshard, type ShardStrategy, type Strategy } from './layout';
import { buildParamTable } from '../model/params';

/** Calls into one rank, wherever it runs (a comlink proxy of a Worker, or the service itself). */
export interface RankHandle {
  api: Comlink.Remote<RankAPI>;
  terminate(): void;
  /** Rejects if the rank's worker dies (a crash, out of memory): calls to it would never answer. */
  failed?: Promise<never>;
}

/**
 * A handle on a rank behind a comlink proxy: terminating releases the proxy, then stops the rank
 * (`stop`). `failed` is observed by the coordinator's calls, so it never counts as unhandled.
 */
export function rankHandle(api: Comlink.Remote<RankAPI>, stop: () => void, failed?: Promise<never>): RankHandle {
  failed?.catch(() => {});
  return {
    api,
    ...(failed ? { failed } : {}),
    terminate() {
      api[Comlink.releaseProxy]();
      stop();
    },
  };
}

export interface DistOptions {
  strategy: Strategy;
  workers: number; // ranks; 1 for single
  transport: TransportKind;
  bucketMb: number; // DDP bucket cap
  shard?: ShardStrategy; // FSDP: full (default) | grad_op | none
  prefetch?: boolean; // FSDP backward prefetch (default on)
  probeMb?: number; // DDP: registered room for timing all-reduces of up to this size (default 4 MB)
}

export const DIST_DEFAULTS: DistOptions = { strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB, shard: 'full', prefetch: true };

export class DistError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistError';
  }
}

export interface DistStepStats extends StepStats {
  perRank: RankStepStats[];
  hubBytes?: number; // star: bytes through the coordinator this step (in + out)
}

export function checkDist(d: DistOptions): DistOptions {
  if (!STRATEGIES.includes(d.strategy)) throw new DistError(`strategy must be single, ddp or fsdp, got "${d.strategy}"`);
  if (d.shard !== undefined && !SHARD_STRATEGIES.includes(d.shard)) throw new DistError(`shard must be full, grad_op or none, got "${d.shard}"`);
  if (!Number.isInteger(d.workers) || d.workers < 1 || d.workers > MAX_WORKERS) {
    throw new DistError(`workers must be a whole number from 1 to ${MAX_WORKERS}, got ${d.workers}`);
  }
  if (d.strategy === 'single' && d.workers !== 1) throw new DistError(`strategy single runs one worker; use ddp or fsdp for ${d.workers} workers`);
  if (!TRANSPORTS.includes(d.transport)) throw new DistError(`transport must be ring, star or shared, got "${d.transport}"`);
  if (!(d.bucketMb > 0)) throw new DistError(`bucket size must be a positive number of MB, got ${d.bucketMb}`);
  return d;
}

export class Coordinator {
  step = 0;
  private constructor(
    readonly ranks: RankHandle[],
    readonly infos: InitInfo[], // one per rank (each reports its own backend)
    readonly dist: DistOptions,
    private wiring: Wiring,
    readonly notice: string | null, // e.g. why the shared transport fell back to ring
    private hubError: Promise<never>,
    private readonly config: RunConfig,
  ) {
    this.step = infos[0].step;
  }

  /** Rank 0's view of the model and data (the same on every rank). */
  get info(): InitInfo {
    return this.infos[0];
  }

  /** A call to the ranks that fails as soon as any worker dies or the hub sees a protocol error. */
  private guard<R>(p: Promise<R>): Promise<R> {
    return Promise.race([p, this.hubError, ...this.ranks.flatMap((h) => (h.failed ? [h.failed] : []))]);
  }

  /**
   * Starts the ranks and waits until every replica is built (rank 0's parameters broadcast to all).
   * A shared transport without SharedArrayBuffer falls back to ring, and says so in `notice`.
   */
  static async create(
    config: RunConfig,
    text: string,
    dist: DistOptions,
    spawn: (rank: number) => RankHandle,
    checkpoint?: ArrayBuffer,
  ): Promise<Coordinator> {
    checkDist(dist);
    let notice: string | null = null;
    let transport = dist.transport;
    if (transport === 'shared' && typeof SharedArrayBuffer === 'undefined') {
      notice = 'the shared transport needs SharedArrayBuffer (a cross-origin isolated page); using ring instead';
      transport = 'ring';
    }
    const N = dist.workers;
    const table = buildParamTable(config);
    const capacity = Math.max(1024, Math.ceil((Math.min(dist.bucketMb * 2 ** 20, table.total * 4)) / 4));
    // The shared transport's memory also holds each rank's bucket buffers (registered: reduced in place).
    const probeMb = dist.probeMb ?? DEFAULT_PROBE_MB;
    const registered = gradientSync(dist) === 'all-reduce' ? registeredFloats(ddpRegisteredSizes(assignBuckets(table, dist.bucketMb * 2 ** 20), probeMb)) : 0;
    let onHubError: (m: string) => void = () => {};
    const hubError = new Promise<never>((_, reject) => (onHubError = (m) => reject(new DistError(m))));
    hubError.catch(() => {}); // observed through guard()
    const wiring = wire(transport, N, { capacity, registered, onHubError });
    const ranks = Array.from({ length: N }, (_, r) => spawn(r));
    const failures = ranks.flatMap((h) => (h.failed ? [h.failed] : []));
    try {
      const infos = await Promise.race([
        Promise.all(
          ranks.map((h, r) => {
            const spec: RankInit = {
              config, text, rank: r, world: N, strategy: dist.strategy, bucketMb: dist.bucketMb, probeMb,
              shard: dist.shard ?? 'full', prefetch: dist.prefetch ?? true, comm: wiring.endpoints[r], checkpoint,
            };
            return h.api.init(Comlink.transfer(spec, endpointTransfers(spec.comm)));
          }),
        ),
        ...failures,
      ]);
      return new Coordinator(ranks, infos, { ...dist, transport }, wiring, notice, hubError, config);
    } catch (e) {
      for (const h of ranks) h.terminate();
      wiring.close();
      throw e;
    }
  }

  /**
   * One optimizer step on every rank; the loss is the mean over ranks (every rank reports it). With
   * opts.grads, `grads` is the full gradient the optimizers were given (FSDP's shards put together).
   */
  async trainStep(opts: StepOptions = {}): Promise<DistStepStats> {
    const t0 = performance.now();
    const hub0 = this.wiring.hub ? this.wiring.hub.stats.bytesIn + this.wiring.hub.stats.bytesOut : 0;
    const reports = await this.guard(Promise.all(this.ranks.map((h) => h.api.step(opts))));
    const leastWait = Math.min(...reports.map((r) => r.waitMs));
    const perRank = reports.map((r) => ({ ...r, stragglerMs: r.waitMs - leastWait }));
    this.step = perRank[0].step;
    const ms = performance.now() - t0;
    const hub = this.wiring.hub ? this.wiring.hub.stats.bytesIn + this.wiring.hub.stats.bytesOut - hub0 : undefined;
    const grads = opts.grads
      ? gradientSync(this.dist) === 'shard' ? unshard(reports.map((r) => r.grads!), buildParamTable({ ...this.config, vocab_size: this.info.vocabSize })) : reports[0].grads
      : undefined;
    return { ...perRank[0], ms, perRank, hubBytes: hub, grads };
  }

  /**
   * Calls rank 0, or, when the model is sharded (FSDP full / grad_op), every rank: gathering the full
   * parameters is a collective, and rank 0 answers with the result.
   */
  private onRank0<R>(call: (api: Comlink.Remote<RankAPI>) => Promise<R>): Promise<R> {
    if (gradientSync(this.dist) !== 'shard') return this.guard(call(this.ranks[0].api));
    return this.guard(Promise.all(this.ranks.map((h) => call(h.api)))).then((all) => all[0]);
  }

  /** Times a collective on every rank at once; returns the slowest rank's median seconds. */
  async timeCollective(op: 'all-reduce' | 'all-gather' | 'reduce-scatter', bytes: number, iters: number): Promise<number> {
    return Math.max(...(await this.guard(Promise.all(this.ranks.map((h) => h.api.timeCollective(op, bytes, iters))))));
  }

  /** Host <-> backend copy times of rank 0 (every rank has the same backend). */
  timeHostCopy(bytes: number, iters: number): Promise<{ upload: number; readback: number }> {
    return this.guard(this.ranks[0].api.timeHostCopy(bytes, iters));
  }

  /** Turns trace recording on or off on every rank (events then come with each step's perRank stats). */
  setTracing(on: boolean): Promise<void[]> {
    return this.guard(Promise.all(this.ranks.map((h) => h.api.setTracing(on))));
  }

  evalLoss(split: 'train' | 'val', iters: number): Promise<number> {
    return this.onRank0((api) => api.evalLoss(split, iters));
  }

  sample(prompt: string, tokens: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): Promise<string> {
    const req: SampleRequest = { prompt, tokens, temperature: opts.temperature ?? 0.8, topK: opts.topK ?? 40, seed: opts.seed };
    return this.onRank0((api) => api.sample(req));
  }

  /** The run's checkpoint: rank 0's replica, or the shards gathered into one full state (FSDP). */
  exportCheckpoint(history: History = {}): Promise<ArrayBuffer> {
    return this.onRank0((api) => api.exportCheckpoint(history));
  }

  /** The full parameters (the "full state dict"). */
  exportParams(): Promise<Float32Array> {
    return this.onRank0((api) => api.exportParams());
  }

  private disposed = false;

  /** Stops every rank and closes the links. Safe to call more than once. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const h of this.ranks) {
      void h.api.dispose().catch(() => {});
      h.terminate();
    }
    this.wiring.close();
  }
}
