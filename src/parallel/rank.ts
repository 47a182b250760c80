// One rank: a GPT-2 replica, its optimizer, its slice of every batch and its links to the other ranks.
// The same class runs in a Web Worker (workers/rank.worker.ts), a Node worker_thread (the CLI,
// src/parallel/node-rank-worker.ts) and in-process in tests; only the way the backend starts differs.

import * as Comlink from 'comlink';
import * as tf from '@tensorflow/tfjs';
import type { BackendInfo } from '../backend/backend';
import type { BackendName } from '../model/config';
import { checkVocab } from '../model/config';
import { buildParamTable, initParams } from '../model/params';
import { makeDataset } from '../data/dataset';
import { makeTokenizer } from '../data/tokenizer';
import { Trainer, type ReadyCheck, type StepOptions, type StepStats } from '../train/trainer';
import { FSDPTrainer, shardOfUnit, shardsOf } from './fsdp';
import { TPTrainer } from './tp';
import { PPTrainer } from './pp';
import { checkpointHeader, decodeCheckpoint, encodeCheckpoint, type History } from '../train/checkpoint';
import type { InitInfo, OuterStateExport, PrepareOptions, RankAPI, RankInit, RankReady, RankStepStats, SampleRequest, ShardState } from './protocol';
import { HEARTBEAT_MS, type FaultKind } from './faults';
import type { Collectives, PortLike } from './collectives';
import { makeCollectives } from './wiring';
import { DDPSync, WaitClock } from './ddp';
import { OuterState, allReduceMeanCompressed } from './diloco';
import { assignBuckets, ddpRegisteredSizes, gradientSync, registeredFloats, type Bucket, type GradientSync } from './layout';
import { verifyLlmc, type AdamWExpectation, type VerifyResult } from '../verify';
import { Tracer, clock } from '../util/trace';
import { median } from '../util/stats';

/** A rank's model: a full replica (single, DDP, FSDP NO_SHARD), FSDP's shards, TP's slices or PP's stage. */
type Replica = Trainer | FSDPTrainer | TPTrainer | PPTrainer;

/** What the host of a rank does for it. kill: end this worker as a crash would (an injected fault). */
export interface RankHost {
  kill(message: string): void;
}

/** By default a crash is an uncaught error: a Web Worker's or worker_thread's `error` event. */
const crash: RankHost = {
  kill(message) {
    setTimeout(() => {
      throw new Error(message);
    });
  },
};

/** A step between its two phases (see RankAPI.prepareStep). */
interface InFlight {
  commit: () => void;
  abort: (e: Error) => void;
  done: Promise<RankStepStats>;
}

export class RankService implements RankAPI {
  private trainer: Replica | null = null;
  private coll: Collectives | null = null;
  private buckets: Bucket[] = [];
  private bucketBuffers: Float32Array[] = []; // DDP's, registered with the collectives, reused every step
  private probe: Float32Array | null = null; // DDP: registered, for timing all-reduces
  private sync: GradientSync = 'none'; // what this run does with gradients (layout.ts gradientSync)
  private failure: string | null = null;
  private readonly tracer = new Tracer();
  private inflight: InFlight | null = null;
  private beating: ReturnType<typeof setInterval> | null = null;
  private kept: { of: number; state: ShardState } | null = null; // FSDP: a neighbour's shards (its buddy copy)
  private outer: OuterState | null = null; // DiLoCo: the global model and the outer momentum (diloco.ts)

  constructor(private startBackend: (name: BackendName) => Promise<BackendInfo>, private host: RankHost = crash) {}

  private need(): Replica {
    if (!this.trainer) throw new Error('this rank has no model yet: init() first');
    return this.trainer;
  }

  async init(spec: RankInit): Promise<InitInfo> {
    this.dispose();
    this.startBeating(spec.beat);
    const backend = await this.startBackend(spec.config.backend);
    const ckpt = spec.checkpoint ? decodeCheckpoint(spec.checkpoint) : null;
    const tokenizer = await makeTokenizer(ckpt ? ckpt.header.tokenizer : spec.config.tokenizer === 'bpe' ? { kind: 'bpe' } : { kind: 'char', text: spec.text });
    const cfg = ckpt
      // the checkpoint's run; the caller says how long, where, and how the global batch is split now
      ? { ...ckpt.header.config, max_iters: spec.config.max_iters, backend: spec.config.backend, batch_size: spec.config.batch_size, grad_accum: spec.config.grad_accum }
      : checkVocab(spec.config, tokenizer.vocabSize, false);
    const data = makeDataset(spec.text, tokenizer, cfg.block_size);
    const table = buildParamTable(cfg);
    this.sync = gradientSync(spec);
    this.buckets = assignBuckets(table, spec.bucketMb * 2 ** 20);
    const sizes = this.sync === 'all-reduce' ? ddpRegisteredSizes(this.buckets, spec.probeMb) : [];
    const coll = makeCollectives(spec.rank, spec.world, spec.comm, { registered: registeredFloats(sizes) });
    coll.tracer = this.tracer;
    this.coll = coll;
    const buffers = sizes.map((n) => coll.alloc(n));
    this.probe = buffers.pop() ?? null;
    this.bucketBuffers = buffers;
    // Rank 0 initialises and broadcasts, so every rank starts from the same parameters. A sharded
    // model is broadcast one unit at a time, each rank keeping its slice: no rank but 0 ever holds
    // the whole model (PyTorch's sync_module_states does the same).
    let trainer: Replica;
    const init = ckpt ? ckpt.params : spec.rank === 0 ? initParams(table, cfg, cfg.seed) : null;
    if (this.sync === 'shard') {
      let shards: Map<number, Float32Array>;
      if (ckpt) shards = shardsOf(ckpt.params, table, spec.world, spec.rank);
      else {
        shards = new Map();
        for (const u of table.units) {
          const unit = init ? init.slice(u.offset, u.offset + u.size) : new Float32Array(u.size);
          await coll.broadcast(unit, 0);
          shards.set(u.index, shardOfUnit(unit, u, spec.world, spec.rank));
        }
      }
      trainer = new FSDPTrainer(cfg, data, shards, coll, spec.shard as 'full' | 'grad_op', spec.prefetch); // sharded: not 'none'
    } else {
      const full = init ?? new Float32Array(table.total);
      if (!ckpt) await coll.broadcast(full, 0);
      if (this.sync === 'tensor') trainer = new TPTrainer(cfg, data, full, coll);
      else if (this.sync === 'pipeline') trainer = new PPTrainer(cfg, data, full, coll, { microbatches: spec.microbatches, schedule: spec.schedule });
      else {
        trainer = new Trainer(cfg, data, full);
        trainer.rank = spec.rank;
        trainer.world = spec.world;
        trainer.tracer = this.tracer; // (the others trace through their collectives' tracer)
      }
    }
    if (ckpt) trainer.restore(ckpt);
    if (this.sync === 'outer') {
      if (!spec.diloco) throw new Error('a diloco rank needs its settings (RankInit.diloco)');
      if (!(trainer instanceof Trainer)) throw new Error('a diloco rank holds a full replica');
      // The global model is where every replica starts: rank 0's broadcast, or the checkpoint's
      // parameters (a checkpoint of a diloco run holds the global model of its last outer step).
      this.outer = new OuterState(spec.diloco, await trainer.exportParams(), trainer.step, spec.outerMomentum);
    }
    this.trainer = trainer;
    return {
      backend, numParams: table.total, vocabSize: tokenizer.vocabSize,
      trainTokens: data.train.length, valTokens: data.val.length, step: trainer.step,
    };
  }

  async timeCollective(op: 'all-reduce' | 'all-gather' | 'reduce-scatter', bytes: number, iters: number): Promise<number> {
    const coll = this.coll;
    if (!coll) throw new Error('this rank has no links yet: init() first');
    const n = Math.max(coll.world, Math.round(bytes / 4 / coll.world) * coll.world);
    // What DDP all-reduces: registered buffers (its probe, or a bucket's, free between steps).
    const registered = op === 'all-reduce' ? [this.probe, ...this.bucketBuffers].find((b) => b && b.length >= n) : undefined;
    // Filled once, outside the timing: the mean of these stays the same however often it is taken.
    const buf = (registered ? registered.subarray(0, n) : new Float32Array(n)).fill(coll.rank + 1);
    const run = () => {
      if (op === 'all-reduce') return coll.allReduceMean(buf);
      if (op === 'reduce-scatter') return coll.reduceScatterMean(buf);
      return coll.allGather(buf.subarray(0, n / coll.world), n);
    };
    await run();
    const times: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await run();
      times.push((performance.now() - t0) / 1000);
    }
    return median(times);
  }

  async timeHostCopy(bytes: number, iters: number): Promise<{ upload: number; readback: number }> {
    const host = new Float32Array(Math.max(1, Math.round(bytes / 4))).fill(1);
    const upload: number[] = [];
    const readback: number[] = [];
    for (let i = 0; i <= iters; i++) {
      let t0 = performance.now();
      const t = tf.tensor1d(host);
      const one = tf.add(t, 0); // forces the upload to happen (GPU backends upload lazily)
      await one.data();
      const up = (performance.now() - t0) / 1000;
      t0 = performance.now();
      await t.data();
      const down = (performance.now() - t0) / 1000;
      tf.dispose([t, one]);
      if (i > 0) {
        upload.push(up);
        readback.push(down);
      }
    }
    // The upload timing also read the result back: take that share out.
    return { upload: Math.max(0, median(upload) - median(readback)), readback: median(readback) };
  }

  setTracing(on: boolean): void {
    this.tracer.enabled = on;
    this.tracer.take();
  }

  /** Marks this rank unusable (a lost GPU device): the next step fails with the reason. */
  fail(message: string): void {
    this.failure = message;
  }

  /** A heartbeat on `port` every HEARTBEAT_MS, from this worker's event loop (faults.ts Watchdog). */
  private startBeating(port: PortLike | undefined): void {
    if (!port) return;
    this.beating = setInterval(() => port.postMessage(0), HEARTBEAT_MS);
    (this.beating as unknown as { unref?: () => void }).unref?.(); // Node: do not keep the process alive
  }

  private stopBeating(): void {
    if (this.beating !== null) clearInterval(this.beating);
    this.beating = null;
  }

  /** An injected fault, made where a real one would happen. */
  private async inject(kind: FaultKind, step: number): Promise<void> {
    const what = `injected fault: rank ${this.coll?.rank} ${kind} at step ${step}`;
    if (kind === 'kill') {
      this.stopBeating();
      this.host.kill(what);
      await new Promise(() => {}); // a dead worker answers nothing
    } else if (kind === 'hang') {
      this.stopBeating();
      await new Promise(() => {}); // no answer, no heartbeat
    } else if (kind === 'oom') {
      throw new RangeError(`${what}: Array buffer allocation failed`);
    }
  }

  async prepareStep(opts: PrepareOptions = {}): Promise<RankReady> {
    if (this.failure) throw new Error(this.failure);
    if (this.inflight) throw new Error('a step is already in flight: commit or abort it first');
    const trainer = this.need();
    if (opts.inject) await this.inject(opts.inject, trainer.step + 1);
    let ready!: (check: ReadyCheck) => void;
    const isReady = new Promise<ReadyCheck>((resolve) => (ready = resolve));
    let commit!: () => void;
    let abort!: (e: Error) => void;
    const gate = new Promise<void>((resolve, reject) => ((commit = resolve), (abort = reject)));
    gate.catch(() => {}); // an abort is seen through `done`
    const done = this.runStep({ grads: opts.grads, poison: opts.inject === 'nan', beforeUpdate: (check) => (ready(check), gate) });
    this.inflight = { commit, abort, done };
    done.catch(() => {}); // observed by commitStep / abortStep
    const check = await Promise.race([isReady, done.then(() => Promise.reject(new Error('the step ended before its update')))]);
    return { rank: this.coll!.rank, ...check };
  }

  async commitStep(): Promise<RankStepStats> {
    const f = this.inflight;
    if (!f) throw new Error('no step to commit: prepareStep first');
    f.commit();
    try {
      return await f.done;
    } finally {
      this.inflight = null;
    }
  }

  async abortStep(reason: string): Promise<void> {
    const e = new Error(`step aborted: ${reason}`);
    this.coll?.abort(e); // a collective waiting for a failed rank gives up
    const f = this.inflight;
    this.inflight = null;
    if (!f) return;
    f.abort(e);
    await f.done.catch(() => {}); // unwound: its tensors disposed, FSDP's gathered units freed
  }

  async exportShard(): Promise<ShardState> {
    const t = this.need();
    if (t instanceof Trainer) throw new Error('exportShard: this rank holds a full replica, not a part of the model');
    let s: ShardState;
    if (t instanceof FSDPTrainer) s = await t.shardState();
    else {
      const { params, m, v, t: adamT } = await t.localState();
      s = { header: checkpointHeader(t.cfg, t.data.tokenizer.spec(), t.step, adamT, t.table.total, {}), params, m, v };
    }
    return Comlink.transfer(s, [s.params.buffer, s.m.buffer, s.v.buffer] as ArrayBuffer[]);
  }

  keepBuddy(of: number, state: ShardState): void {
    this.kept = { of, state };
    if (this.trainer && !(this.trainer instanceof Trainer)) this.trainer.memory.buddy = state.params.byteLength + state.m.byteLength + state.v.byteLength;
  }

  buddy(): { of: number; state: ShardState } | null {
    return this.kept;
  }

  /** One step, its update behind opts.beforeUpdate, and this rank's view of it. */
  private async runStep(opts: StepOptions): Promise<RankStepStats> {
    const trainer = this.need();
    const coll = this.coll!;
    coll.step = trainer.step; // every message of this step's collectives says so
    const before = { ...coll.stats };
    // Between the two phases this rank waits for every other rank to be ready: waiting, and traced so.
    let gateMs = 0;
    const gated = opts.beforeUpdate;
    if (gated) {
      opts = {
        ...opts,
        beforeUpdate: async (check) => {
          const t0 = performance.now();
          const ts = clock();
          try {
            await gated(check);
          } finally {
            gateMs += performance.now() - t0;
            this.tracer.record('wait for every rank to be ready', 'wait', 'main', ts);
          }
        },
      };
    }
    let stats: StepStats;
    let waitMs: number;
    let buckets: number[] = [];
    if (!(trainer instanceof Trainer)) {
      const w0 = trainer.clock.waitMs;
      stats = await trainer.trainStep(opts);
      waitMs = trainer.clock.waitMs - w0;
    } else {
      const sync = this.sync === 'all-reduce' ? new DDPSync(this.buckets, coll, this.bucketBuffers) : undefined;
      stats = await trainer.trainStep(sync, opts);
      waitMs = sync?.clock.waitMs ?? 0;
      buckets = sync?.issued ?? [];
      if (sync) trainer.memory.comm_buffers = Math.max(trainer.memory.comm_buffers, sync.commBytesPeak);
      if (this.outer?.due(trainer.step, trainer.cfg.max_iters)) {
        // DiLoCo: after the inner update (phase 2), the outer step (its time is the step's too)
        const t0 = performance.now();
        waitMs += await this.outerStep(trainer, this.outer, coll);
        stats = { ...stats, ms: stats.ms + performance.now() - t0 };
      }
    }
    const commMs = coll.stats.commMs - before.commMs;
    waitMs += gateMs;
    return {
      ...stats,
      rank: coll.rank,
      computeMs: Math.max(0, stats.ms - commMs - waitMs),
      commMs,
      waitMs,
      bytesSent: coll.stats.bytesSent - before.bytesSent,
      buckets,
      // DiLoCo: the outer optimizer's state (global model, momentum) counts as optimizer state
      memory: { ...trainer.memory, ...(this.outer ? { optimizer: trainer.memory.optimizer + this.outer.bytes } : {}) },
      ...(this.tracer.enabled ? { trace: this.tracer.take() } : {}),
    };
  }

  /**
   * DiLoCo's outer step on this rank: the pseudo-gradient (global model - this replica) averaged over
   * the ranks, the Nesterov update of the global model, and the replica set to it, its own AdamW state
   * kept. Returns the ms spent waiting for the other ranks.
   */
  private async outerStep(trainer: Trainer, outer: OuterState, coll: Collectives): Promise<number> {
    const wait = new WaitClock(coll);
    const state = await trainer.toCheckpoint(); // this replica's parameters, and its AdamW state to keep
    const compress = outer.settings.outerCompress;
    const theta = await outer.sync(state.params, trainer.step, (delta) => {
      trainer.memory.comm_buffers = Math.max(trainer.memory.comm_buffers, delta.byteLength);
      return wait.wait(allReduceMeanCompressed(coll, delta, compress));
    });
    this.tracer.span('outer step: replica <- global model', 'compute', () => trainer.restore({ ...state, params: theta }));
    return wait.waitMs;
  }

  async outerState(): Promise<OuterStateExport> {
    const o = this.outer;
    if (!o) throw new Error('outerState: this rank does not run diloco');
    const s = { step: o.step, theta: o.theta.slice(), momentum: o.momentum.slice() };
    return Comlink.transfer(s, [s.theta.buffer, s.momentum.buffer] as ArrayBuffer[]);
  }

  evalLoss(split: 'train' | 'val', iters: number): Promise<number> {
    return this.need().evalLoss(split, iters);
  }

  sample(req: SampleRequest): Promise<string> {
    return this.need().sample(req.prompt, req.tokens, { temperature: req.temperature, topK: req.topK, seed: req.seed });
  }

  async exportCheckpoint(history: History): Promise<ArrayBuffer> {
    const t = this.need();
    // A rank holding a part hands it over (exportShard); the coordinator puts the checkpoint together.
    if (!(t instanceof Trainer)) throw new Error('exportCheckpoint: this rank holds a part of the model: export it with exportShard');
    const c = await t.toCheckpoint(history);
    // DiLoCo: the global model of the last outer step, at that step (a resume trains the steps since
    // again); the AdamW state is this replica's, now; the outer momentum is not in the file.
    const o = this.outer;
    const header = o ? { ...c.header, step: o.step, losses: c.header.losses?.slice(0, o.step), val_losses: c.header.val_losses?.filter(([s]) => s <= o.step) } : c.header;
    const buf = encodeCheckpoint(o ? { ...c, params: o.theta.slice(), header } : c);
    return Comlink.transfer(buf, [buf]);
  }

  async exportParams(): Promise<Float32Array> {
    return this.need().exportParams();
  }

  memory() {
    const m = tf.memory();
    return { numTensors: m.numTensors, numBytes: m.numBytes };
  }

  async verifyLlmc(backend: BackendName, model: ArrayBuffer, state: ArrayBuffer, adamw: AdamWExpectation | null): Promise<VerifyResult> {
    await this.startBackend(backend);
    return verifyLlmc(model, state, adamw);
  }

  dispose(): void {
    this.stopBeating();
    this.inflight?.abort(new Error('the rank was disposed'));
    this.inflight = null;
    this.kept = null;
    this.outer = null;
    this.trainer?.dispose();
    this.trainer = null;
    this.coll?.close();
    this.coll = null;
  }
}
