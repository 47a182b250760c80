// The coordinator: starts N ranks, wires their links, and drives them one step at a time, in two
// phases (every rank ready, then every rank updates), recovering when a rank fails (faults.ts).
// It never touches gradients or parameters (those move rank to rank), except in the "star" transport,
// where it is the hub on purpose, and when it rebuilds the run after a failure. It looks like a Trainer
// to the training loop (src/train/session.ts).

import * as Comlink from 'comlink';
import type { RunConfig } from '../model/config';
import type { InitInfo, RankAPI, RankInit, RankStepStats, SampleRequest, ShardState } from './protocol';
import type { History } from '../train/checkpoint';
import { TRANSPORTS, type TransportKind } from './collectives';
import { endpointTransfers, wire, type RelayInfo, type Wiring } from './wiring';
import { DEFAULT_BUCKET_MB, DEFAULT_PROBE_MB, MAX_WORKERS, PIPELINE_SCHEDULES, SHARD_STRATEGIES, STRATEGIES, assignBuckets, ddpRegisteredSizes, gradientSync, holdsReplica, registeredFloats, type PipelineSchedule, type ShardStrategy, type Strategy } from './layout';
import { assembleParts, checkSplit } from './parts';
import { buildParamTable, type ParamTable } from '../model/params';
import { decodeCheckpoint, encodeCheckpoint } from '../train/checkpoint';
import { checkpointOfShards } from './shards';
import { OUTER_COMPRESSIONS, type DiLoCoSettings } from './diloco';
import type { StepOptions, StepStats } from '../train/trainer';
import { TrainingError } from '../train/errors';
import { DEFAULT_DEADLINES, RankFailure, Watchdog, outOfMemoryAdvice, type Deadlines, type FaultKind, type Injection, type Recovery } from './faults';

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

/** Recovery settings (faults.ts): deadlines, faults to inject, and whether to recover at all. */
export interface FaultOptions {
  deadlines?: Partial<Deadlines>;
  inject?: Injection[];
  recover?: boolean; // default true: false lets the first failure end the run
  /**
   * A NaN or Inf gradient is first taken for a passing fault (the step is replayed); if the replay is not
   * finite either, 'stop' (default) ends the run with the step and the tensor named, 'skip' drops the
   * step's update and goes on (as a gradient scaler skips an overflowing step).
   */
  onNaN?: 'stop' | 'skip';
  /**
   * FSDP: keep each rank's shards also on the next rank (default true). Without them a rank's death
   * loses its shards: recovery goes back to lastCheckpoint, or fails.
   */
  buddies?: boolean;
  /** Where the state is lost (no healthy replica, no fresh buddy copy): the last checkpoint to go back to. */
  lastCheckpoint?: () => Promise<ArrayBuffer | null>;
}

/** Tries at one step: the first, and a replay after each recovery. */
const MAX_ATTEMPTS = 4;
/** How long a surviving rank may take to abort its step. */
const ABORT_MS = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface DistOptions {
  strategy: Strategy;
  workers: number; // ranks; 1 for single
  transport: TransportKind;
  bucketMb: number; // DDP bucket cap
  shard?: ShardStrategy; // FSDP: full (default) | grad_op | none
  prefetch?: boolean; // FSDP backward prefetch (default on)
  probeMb?: number; // DDP: registered room for timing all-reduces of up to this size (default 4 MB)
  microbatches?: number; // PP: micro-batches per step (default 4)
  schedule?: PipelineSchedule; // PP: gpipe | 1f1b (default)
  innerSteps?: number; // DiLoCo: local AdamW steps between two outer steps, H (default 20)
  outerLr?: number; // DiLoCo: the outer Nesterov step's learning rate (default 0.7)
  outerMomentum?: number; // DiLoCo: its momentum (default 0.9)
  outerCompress?: 'none' | 'fp16' | 'int8'; // DiLoCo: how the pseudo-gradients travel (default none: fp32)
  faults?: FaultOptions;
  relay?: RelayInfo; // network: the run on a relay the ranks join (src/classroom/relay.ts createRun); without one, an in-process relay
}

export const DIST_DEFAULTS: DistOptions = {
  strategy: 'single', workers: 1, transport: 'ring', bucketMb: DEFAULT_BUCKET_MB, shard: 'full', prefetch: true, microbatches: 4, schedule: '1f1b',
  innerSteps: 20, outerLr: 0.7, outerMomentum: 0.9, outerCompress: 'none',
};

export class DistError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DistError';
  }
}

export interface DistStepStats extends StepStats {
  perRank: RankStepStats[];
  hubBytes?: number; // star: bytes through the coordinator this step (in + out)
  buddyBytes?: number; // FSDP: bytes of the buddy copies refreshed after this step (through the coordinator)
}

export function checkDist(d: DistOptions): DistOptions {
  if (!STRATEGIES.includes(d.strategy)) throw new DistError(`strategy must be ${STRATEGIES.slice(0, -1).join(', ')} or ${STRATEGIES.at(-1)}, got "${d.strategy}"`);
  if (d.shard !== undefined && !SHARD_STRATEGIES.includes(d.shard)) throw new DistError(`shard must be full, grad_op or none, got "${d.shard}"`);
  if (!Number.isInteger(d.workers) || d.workers < 1 || d.workers > MAX_WORKERS) {
    throw new DistError(`workers must be a whole number from 1 to ${MAX_WORKERS}, got ${d.workers}`);
  }
  if (d.strategy === 'single' && d.workers !== 1) throw new DistError(`strategy single runs one worker; use ddp, fsdp, tp, pp or diloco for ${d.workers} workers`);
  if (d.schedule !== undefined && !PIPELINE_SCHEDULES.includes(d.schedule)) throw new DistError(`schedule must be gpipe or 1f1b, got "${d.schedule}"`);
  if (d.microbatches !== undefined && !(Number.isInteger(d.microbatches) && d.microbatches >= 1)) throw new DistError(`micro-batches must be a whole number of at least 1, got ${d.microbatches}`);
  if (!TRANSPORTS.includes(d.transport)) throw new DistError(`transport must be ${TRANSPORTS.slice(0, -1).join(', ')} or ${TRANSPORTS.at(-1)}, got "${d.transport}"`);
  if (!(d.bucketMb > 0)) throw new DistError(`bucket size must be a positive number of MB, got ${d.bucketMb}`);
  if (d.innerSteps !== undefined && !(Number.isInteger(d.innerSteps) && d.innerSteps >= 1)) throw new DistError(`inner steps (DiLoCo's H) must be a whole number of at least 1, got ${d.innerSteps}`);
  if (d.outerLr !== undefined && !(Number.isFinite(d.outerLr) && d.outerLr > 0)) throw new DistError(`the outer learning rate must be a positive number, got ${d.outerLr}`);
  if (d.outerMomentum !== undefined && !(d.outerMomentum >= 0 && d.outerMomentum < 1)) throw new DistError(`the outer momentum must be at least 0 and below 1, got ${d.outerMomentum}`);
  if (d.outerCompress !== undefined && !OUTER_COMPRESSIONS.includes(d.outerCompress)) throw new DistError(`outer compression must be none, fp16 or int8, got "${d.outerCompress}"`);
  if (d.strategy === 'diloco' && d.faults?.onNaN === 'skip') throw new DistError('on-nan skip does not apply to diloco (a recovery goes back to the last outer step); use stop');
  return d;
}

/** DiLoCo's settings as the ranks get them (DIST_DEFAULTS where unset). */
export function dilocoSettings(d: DistOptions): DiLoCoSettings {
  return {
    innerSteps: d.innerSteps ?? DIST_DEFAULTS.innerSteps!, outerLr: d.outerLr ?? DIST_DEFAULTS.outerLr!,
    outerMomentum: d.outerMomentum ?? DIST_DEFAULTS.outerMomentum!, outerCompress: d.outerCompress ?? DIST_DEFAULTS.outerCompress!,
  };
}

export class Coordinator {
  step = 0;
  /** Every recovery so far (faults.ts Recovery): what failed, how it was noticed and how the run went on. */
  readonly recoveries: Recovery[] = [];
  private wiring: Wiring | null = null;
  private hubError: Promise<never> = new Promise(() => {});
  private watchdog: Watchdog;
  private tracing = false;
  private pending: Injection[]; // faults still to inject
  private outerMomentum: Float32Array | null = null; // DiLoCo: the outer momentum a recovery hands to the next link()

  private constructor(
    readonly ranks: RankHandle[],
    public infos: InitInfo[], // one per rank (each reports its own backend)
    readonly dist: DistOptions,
    readonly notice: string | null, // e.g. why the shared transport fell back to ring
    private readonly config: RunConfig,
    private readonly text: string,
    private readonly spawn: (rank: number) => RankHandle,
  ) {
    this.watchdog = new Watchdog(dist.workers, { ...DEFAULT_DEADLINES, ...dist.faults?.deadlines });
    this.pending = [...(dist.faults?.inject ?? [])];
  }

  /** Rank 0's view of the model and data (the same on every rank). */
  get info(): InitInfo {
    return this.infos[0];
  }

  /** A call to the ranks that fails as soon as any worker dies or the hub sees a protocol error. */
  private guard<R>(p: Promise<R>): Promise<R> {
    return Promise.race([p, this.hubError, ...this.ranks.flatMap((h) => (h.failed ? [h.failed] : []))]);
  }

  /** Rank r's call, failing with a RankFailure for r (its exception, its worker's death) or the hub's error. */
  private call<R>(r: number, p: Promise<R>): Promise<R> {
    const died = this.ranks[r].failed?.catch((e: Error) => Promise.reject(new RankFailure(r, 'crash', `rank ${r}'s worker died: ${e.message}`)));
    return Promise.race([p.catch((e) => Promise.reject(RankFailure.of(r, e))), this.hubError, ...(died ? [died] : [])]);
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
    checkSplit(config, dist); // TP: workers divide the heads; PP: at most one worker per block, micro-batches divide the batch
    let notice: string | null = null;
    let transport = dist.transport;
    if (transport === 'shared' && typeof SharedArrayBuffer === 'undefined') {
      notice = 'the shared transport needs SharedArrayBuffer (a cross-origin isolated page); using ring instead';
      transport = 'ring';
    }
    const ranks = Array.from({ length: dist.workers }, (_, r) => spawn(r));
    const c = new Coordinator(ranks, [], { ...dist, transport }, notice, config, text, spawn);
    try {
      await c.link(checkpoint);
      return c;
    } catch (e) {
      c.dispose();
      throw e;
    }
  }

  /**
   * Wires the ranks (new links, new heartbeat ports) and builds every rank's model: from rank 0's
   * initial parameters, or from a checkpoint (a resumed run, or a recovery).
   */
  private async link(checkpoint?: ArrayBuffer): Promise<void> {
    const { config, dist } = this;
    const N = dist.workers;
    const table = buildParamTable(config);
    const capacity = Math.max(1024, Math.ceil((Math.min(dist.bucketMb * 2 ** 20, table.total * 4)) / 4));
    // The shared transport's memory also holds each rank's bucket buffers (registered: reduced in place).
    const probeMb = dist.probeMb ?? DEFAULT_PROBE_MB;
    const registered = gradientSync(dist) === 'all-reduce' ? registeredFloats(ddpRegisteredSizes(assignBuckets(table, dist.bucketMb * 2 ** 20), probeMb)) : 0;
    let onHubError: (m: string) => void = () => {};
    this.hubError = new Promise<never>((_, reject) => (onHubError = (m) => reject(new DistError(m))));
    this.hubError.catch(() => {}); // observed through guard() and call()
    this.wiring?.close();
    this.wiring = wire(dist.transport, N, { capacity, registered, onHubError, relay: dist.relay });
    const wiring = this.wiring;
    this.infos = await this.guard(Promise.all(this.ranks.map((h, r) => {
      const beat = new MessageChannel();
      this.watchdog.listen(r, beat.port1);
      const spec: RankInit = {
        config, text: this.text, rank: r, world: N, strategy: dist.strategy, bucketMb: dist.bucketMb, probeMb,
        shard: dist.shard ?? 'full', prefetch: dist.prefetch ?? true, microbatches: dist.microbatches ?? DIST_DEFAULTS.microbatches!,
        schedule: dist.schedule ?? DIST_DEFAULTS.schedule!, comm: wiring.endpoints[r], beat: beat.port2, checkpoint,
        ...(dist.strategy === 'diloco' ? { diloco: dilocoSettings(dist), ...(checkpoint && this.outerMomentum ? { outerMomentum: this.outerMomentum } : {}) } : {}),
      };
      return h.api.init(Comlink.transfer(spec, [...endpointTransfers(spec.comm), beat.port2 as unknown as Transferable]));
    })));
    this.step = this.infos[0].step;
    this.outerMomentum = null;
    if (this.tracing) await this.setTracing(true);
    if (this.keepsBuddies()) await this.refreshBuddies(); // from the start: a rank may fail in step 1
  }

  /**
   * One optimizer step on every rank; the loss is the mean over ranks (every rank reports it). With
   * opts.grads, `grads` is the full gradient the optimizers were given (FSDP's shards put together).
   * When a rank fails, the step is aborted everywhere, the run recovers (recover()) and the step is
   * trained again, up to MAX_ATTEMPTS times; `recoveries` says what happened.
   */
  async trainStep(opts: StepOptions = {}): Promise<DistStepStats> {
    let previous: RankFailure | null = null; // this step's last failure
    for (let attempt = 1; ; attempt++) {
      const t0 = performance.now();
      try {
        const stats = await this.attempt(opts);
        this.watchdog.timed(stats.ms);
        return stats;
      } catch (e) {
        if (!(e instanceof RankFailure) || this.dist.faults?.recover === false) throw e;
        // The same fault again when the step is replayed is no passing fault: the run itself is at fault.
        const again: boolean = (previous as RankFailure | null)?.cause === e.cause && (e.cause === 'nan' || e.cause === 'oom');
        if (again && e.cause === 'oom') throw new DistError(outOfMemoryAdvice(e.rank, this.step + 1, this.config, this.dist));
        const skip: boolean = again && e.cause === 'nan' && this.dist.faults?.onNaN === 'skip';
        if (again && !skip) {
          throw new TrainingError(
            `step ${this.step + 1}: ${e.message} again when the step was replayed: the training diverged (this is not a passing fault). ` +
              `The parameters are those of step ${this.step}. Lower lr (now ${this.config.lr}) or keep grad_clip on, then resume`,
          );
        }
        if (attempt >= MAX_ATTEMPTS) throw new DistError(`step ${this.step + 1} failed ${attempt} times; the last time: ${e.message}`);
        await this.recover(e, performance.now() - t0, skip);
        previous = skip ? null : e;
      }
    }
  }

  /** One try at a step: phase 1 on every rank (within the deadline), then, if every rank is ready and its gradients finite, phase 2. */
  private async attempt(opts: StepOptions): Promise<DistStepStats> {
    const t0 = performance.now();
    const hub = this.wiring?.hub;
    const hub0 = hub ? hub.stats.bytesIn + hub.stats.bytesOut : 0;
    const faults = this.due(this.step + 1);
    const ready = await this.watchdog.race(this.ranks.map((h, r) => this.call(r, h.api.prepareStep({ grads: opts.grads, inject: faults.get(r) }))));
    const bad = ready.find((c) => !Number.isFinite(c.loss) || !Number.isFinite(c.gradNorm));
    if (bad) {
      // (averaged over the ranks, one rank's NaN is every rank's: `rank` is the first to report it)
      const what = bad.nonFinite ? `the ${this.dist.workers > 1 ? 'averaged ' : ''}gradient of ${bad.nonFinite} is not finite` : 'the loss is not finite';
      throw new RankFailure(bad.rank, 'nan', `${what} (loss ${bad.loss}, gradient norm ${bad.gradNorm}); nothing was applied`);
    }
    const reports = await this.watchdog.race(this.ranks.map((h, r) => this.call(r, h.api.commitStep())));
    const buddyBytes = this.keepsBuddies() ? await this.refreshBuddies() : undefined;
    const leastWait = Math.min(...reports.map((r) => r.waitMs));
    const perRank = reports.map((r) => ({ ...r, stragglerMs: r.waitMs - leastWait }));
    this.step = perRank[0].step;
    const ms = performance.now() - t0;
    const hubBytes = hub ? hub.stats.bytesIn + hub.stats.bytesOut - hub0 : undefined;
    const grads = opts.grads
      ? holdsReplica(this.dist) ? reports[0].grads : assembleParts(this.dist, reports.map((r) => r.grads!), this.table())
      : undefined;
    // DiLoCo: the replicas differ between outer steps; the step's loss (and gradient norm) is their mean,
    // taken here from the ranks' reports: no communication between the ranks for it.
    const mean = (f: (r: RankStepStats) => number) => perRank.reduce((a, r) => a + f(r), 0) / perRank.length;
    const own = this.dist.strategy === 'diloco' ? { loss: mean((r) => r.loss), gradNorm: mean((r) => r.gradNorm) } : {};
    return { ...perRank[0], ...own, ms, perRank, hubBytes, buddyBytes, grads };
  }

  /** FSDP, TP and PP with more than one worker keep buddy copies (each rank holds a part no other has), unless faults.buddies is false. */
  private keepsBuddies(): boolean {
    return !holdsReplica(this.dist) && this.dist.workers > 1 && this.dist.faults?.buddies !== false;
  }

  private table(): ParamTable {
    return buildParamTable({ ...this.config, vocab_size: this.info.vocabSize });
  }

  /** Injects a fault (the page's "Break something"): on `rank` while it trains `step` (default: the next one). */
  inject(kind: FaultKind, rank: number, step = this.step + 1): void {
    if (!(rank >= 0 && rank < this.ranks.length)) throw new DistError(`no rank ${rank}: this run has ranks 0 to ${this.ranks.length - 1}`);
    this.pending.push({ kind, rank, step });
  }

  /**
   * The faults to inject while training `step` (or overdue: asked for while a step was in flight), at
   * most one per rank (a second one fires on the replay).
   */
  private due(step: number): Map<number, FaultKind> {
    const now = new Map<number, FaultKind>();
    this.pending = this.pending.filter((i) => {
      if (i.step > step || now.has(i.rank)) return true;
      now.set(i.rank, i.kind);
      return false;
    });
    return now;
  }

  /**
   * FSDP, TP, PP: every rank's part (parameters, m, v) also kept by the next rank, after every step, so
   * that a rank's death loses nothing: 12 bytes per parameter of the part more memory per rank (about
   * 12/N per parameter), and as many bytes through the coordinator per step.
   */
  private async refreshBuddies(): Promise<number> {
    const N = this.dist.workers;
    const sizes = await this.guard(Promise.all(this.ranks.map(async (h, r) => {
      const state = await h.api.exportShard();
      const bytes = state.params.byteLength + state.m.byteLength + state.v.byteLength;
      await this.ranks[(r + 1) % N].api.keepBuddy(r, Comlink.transfer(state, [state.params.buffer, state.m.buffer, state.v.buffer] as ArrayBuffer[]));
      return bytes;
    })));
    return sizes.reduce((a, b) => a + b, 0);
  }

  /**
   * After a failure: abort the step on every rank (nothing was applied anywhere: ranks update only
   * when all are ready), take the state at the step's start (a healthy replica's, or FSDP's shards with
   * the failed rank's buddy copy), replace the failed worker, rebuild every rank from that state.
   */
  private async recover(f: RankFailure, detectedMs: number, skip = false): Promise<void> {
    const t0 = performance.now();
    const step = this.step + 1;
    const replace = f.cause !== 'nan'; // a worker that crashed, hung or threw is replaced by a fresh one
    const alive = this.ranks.map((_, r) => !(replace && r === f.rank));
    await Promise.all(this.ranks.map(async (h, r) => {
      if (!alive[r]) return;
      const answered = await Promise.race([
        h.api.abortStep(f.message).then(() => true, () => false),
        ...(h.failed ? [h.failed.catch(() => false)] : []), // its worker is dead too
        sleep(ABORT_MS).then(() => false),
      ]);
      alive[r] = answered; // a rank that cannot even abort is failed too
    }));
    const restored = await this.stateToRestore(alive, f.rank);
    let { checkpoint, from } = restored;
    if (skip) {
      // faults.onNaN 'skip': like a gradient scaler, the step's update is dropped and the run moves on.
      const c = decodeCheckpoint(checkpoint);
      checkpoint = encodeCheckpoint({ ...c, header: { ...c.header, step: c.header.step + 1 } });
      from += ', the step skipped (no update)';
    }
    for (let r = 0; r < this.ranks.length; r++) {
      if (alive[r]) continue;
      this.ranks[r].terminate();
      this.ranks[r] = this.spawn(r);
    }
    await this.link(checkpoint);
    this.recoveries.push({
      step, rank: f.rank, cause: f.cause, message: f.message, detected_ms: detectedMs,
      restored_from: from, replayed_steps: restored.replayed, ms: performance.now() - t0,
    });
  }

  /**
   * The state to restart from: the step's start, from the ranks still alive; or, when that is lost (no
   * healthy replica, no fresh buddy copy), the last checkpoint (faults.lastCheckpoint), with the number
   * of steps trained since then, which will be trained again.
   */
  private async stateToRestore(alive: boolean[], failed: number): Promise<{ checkpoint: ArrayBuffer; from: string; replayed: number }> {
    try {
      if (this.dist.strategy === 'diloco') return await this.lastOuterStep(alive, failed);
      return { ...(await this.stateAtStepStart(alive, failed)), replayed: 0 };
    } catch (e) {
      const last = e instanceof DistError ? await this.dist.faults?.lastCheckpoint?.() : null;
      if (!last) throw e;
      const k = decodeCheckpoint(last).header.step;
      return { checkpoint: last, from: `the last checkpoint (step ${k}), since ${(e as Error).message.replace(/; resume from the last checkpoint$/, '')}`, replayed: this.step - k };
    }
  }

  /**
   * DiLoCo: the replicas are not copies of each other between outer steps, so a lost one cannot be
   * rebuilt from another. The run goes back to the last outer step: the global model and the outer
   * momentum (identical on every rank) from a rank still alive, and every rank replays the inner steps
   * since then (the same batches). Each rank's own AdamW state is not kept: every rank goes on with
   * that rank's (m, v, t as of now), so the replayed steps are close to, not bit for bit, the lost ones.
   */
  private async lastOuterStep(alive: boolean[], failed: number): Promise<{ checkpoint: ArrayBuffer; from: string; replayed: number }> {
    const r = alive.indexOf(true);
    if (r < 0) throw new DistError(`no rank is left to recover the global model from (${failed === 0 && this.ranks.length === 1 ? 'the only worker failed' : 'every worker failed'}); resume from the last checkpoint`);
    const outer = await this.ranks[r].api.outerState();
    const checkpoint = await this.ranks[r].api.exportCheckpoint({}); // the global model at outer.step
    this.outerMomentum = outer.momentum;
    return {
      checkpoint,
      from: `the global model of the last outer step (step ${outer.step}) and its momentum, from rank ${r}; every rank with rank ${r}'s AdamW state`,
      // (a rank may have finished the outer step of the failed step itself: then nothing is replayed)
      replayed: Math.max(0, this.step - outer.step),
    };
  }

  /** The run's state at the start of the failed step, from the ranks that are still alive. */
  private async stateAtStepStart(alive: boolean[], failed: number): Promise<{ checkpoint: ArrayBuffer; from: string }> {
    const N = this.ranks.length;
    if (holdsReplica(this.dist)) {
      const r = alive.indexOf(true);
      if (r < 0) throw new DistError(`no healthy replica is left to recover from (${failed === 0 && N === 1 ? 'the only worker failed' : 'every worker failed'}); resume from the last checkpoint`);
      return { checkpoint: await this.ranks[r].api.exportCheckpoint({}), from: `rank ${r}'s replica` };
    }
    // FSDP, TP, PP: every alive rank's own part; a lost rank's from the rank that keeps its buddy copy.
    const states: ShardState[] = [];
    const sources: string[] = [];
    for (let r = 0; r < N; r++) {
      if (alive[r]) {
        states.push(await this.ranks[r].api.exportShard());
        continue;
      }
      const keeper = (r + 1) % N;
      const kept = alive[keeper] ? await this.ranks[keeper].api.buddy() : null;
      if (!kept || kept.of !== r || kept.state.header.step !== this.step) {
        throw new DistError(`rank ${r}'s ${this.dist.strategy === 'fsdp' ? 'shards are' : 'part of the model is'} lost and no fresh buddy copy of it is left (rank ${keeper} ${alive[keeper] ? 'holds none of this step' : 'failed too'}); resume from the last checkpoint`);
      }
      states.push(kept.state);
      sources.push(`rank ${keeper}'s buddy copy of rank ${r}`);
    }
    // A rank that failed while the others updated (phase 2) leaves shards of two steps: no whole state.
    const steps = [...new Set(states.map((s) => s.header.step))];
    if (steps.length > 1) throw new DistError(`the ranks' shards are of different steps (${steps.join(' and ')}): a rank failed while the others updated; resume from the last checkpoint`);
    const checkpoint = this.assemble(states);
    const own = `every rank's ${this.dist.strategy === 'fsdp' ? 'shards' : 'part'}`;
    return { checkpoint, from: sources.length ? `${own} and ${sources.join(', ')}` : own };
  }

  /**
   * Calls rank 0, or, when each rank holds only a part of the model (FSDP full / grad_op, TP, PP),
   * every rank: gathering the full parameters is a collective, and rank 0 answers with the result.
   */
  private onRank0<R>(call: (api: Comlink.Remote<RankAPI>) => Promise<R>): Promise<R> {
    if (holdsReplica(this.dist)) return this.guard(call(this.ranks[0].api));
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
  async setTracing(on: boolean): Promise<void> {
    this.tracing = on;
    await this.guard(Promise.all(this.ranks.map((h) => h.api.setTracing(on))));
  }

  evalLoss(split: 'train' | 'val', iters: number): Promise<number> {
    return this.onRank0((api) => api.evalLoss(split, iters));
  }

  sample(prompt: string, tokens: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): Promise<string> {
    const req: SampleRequest = { prompt, tokens, temperature: opts.temperature ?? 0.8, topK: opts.topK ?? 40, seed: opts.seed };
    return this.onRank0((api) => api.sample(req));
  }

  /**
   * The run's checkpoint: rank 0's replica; or, under FSDP, TP and PP, every worker's own part, handed
   * over in parallel (no worker gathers anything: none holds more than its part) and put together here.
   * A checkpoint is always whole, so it loads into any number of workers and any strategy.
   */
  async exportCheckpoint(history: History = {}): Promise<ArrayBuffer> {
    if (holdsReplica(this.dist)) return this.guard(this.ranks[0].api.exportCheckpoint(history));
    return this.assemble(await this.guard(Promise.all(this.ranks.map((h) => h.api.exportShard()))), history);
  }

  /** FSDP: every worker's own shards, exported in parallel (src/parallel/shards.ts writes them as they are). */
  exportShards(): Promise<ShardState[]> {
    if (gradientSync(this.dist) !== 'shard') throw new DistError(`a sharded checkpoint comes from FSDP's shards; this ${this.dist.strategy} run holds replicas: save a .ckpt`);
    return this.guard(Promise.all(this.ranks.map((h) => h.api.exportShard())));
  }

  /** A whole checkpoint from every rank's part (parts.ts assembleParts: FSDP's shards, TP's slices, PP's stages). */
  private assemble(states: ShardState[], history: History = {}): ArrayBuffer {
    return encodeCheckpoint(checkpointOfShards(states, this.table(), history, (parts, table) => assembleParts(this.dist, parts, table)));
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
    this.wiring?.close();
  }
}
