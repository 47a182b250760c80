// FSDP: fully sharded data parallel, after PyTorch's FullyShardedDataParallel (FSDP1 FlatParameter,
// FSDP2's pre-padded shards). Vocabulary, as in PyTorch's notes:
//   unit       - a group of parameters sharded, gathered and freed together: the root unit
//                {wte, wpe, ln_f} and one unit per transformer block (src/model/params.ts).
//   sharded    - rank r holds only slice r of each unit's flat parameters (padded to a multiple of N),
//                and the same slices of the gradients and of AdamW's m and v. Nothing else keeps a full copy.
//   unsharded  - a unit's full parameters, materialised by an all-gather just before they are used.
//   all-gather - every rank contributes its shard; every rank gets the unit.
//   reduce-scatter - every rank contributes the unit's full gradient; rank r gets the mean of slice r.
// Sharding strategies:
//   full    (FULL_SHARD)    gather before forward, free after; gather again before backward; free after
//                           backward and reduce-scatter the gradients: ~3(N-1)/N x S moved per rank.
//   grad_op (SHARD_GRAD_OP, ZeRO-2) keep the gathered unit from forward until its backward: ~2(N-1)/N x S.
//   none    (NO_SHARD)      replicate and all-reduce, i.e. DDP (run by src/parallel/ddp.ts, the control).
// Backward prefetch (BACKWARD_PRE): before computing a unit's backward, issue the all-gather of the unit
// backward needs next, so it travels while this one computes; at most two gathered blocks are alive
// (limit_all_gathers). The root unit stays gathered from its forward through the embedding backward, as
// PyTorch keeps the root unsharded (lm_head is tied to wte and is used at both ends).

import * as tf from '@tensorflow/tfjs';
import { HOST_OPTIMIZER_BACKENDS, type RunConfig } from '../model/config';
import { GPT, type Grads, type Params, type UnitHooks } from '../model/gpt';
import { buildParamTable, mixSeed, type ParamTable, type UnitSpec } from '../model/params';
import type { Dataset } from '../data/dataset';
import { AdamW, clipScale, learningRate } from '../train/optim';
import { Trainer, activationProbe, checkFinite, firstNonFinite, rankMicroBatches, tensorBytes, type MemoryReport, type StepOptions, type StepStats } from '../train/trainer';
import { checkpointHeader, type Checkpoint, type CheckpointHeader } from '../train/checkpoint';
import type { Collectives } from './collectives';
import { WaitClock, yieldToEventLoop } from './ddp';
import { shardLayout, type ShardStrategy } from './layout';
import { serializer } from '../util/serial';
import { clock } from '../util/trace';


/** Rank r's slice of one unit's parameters (unit.size floats), zero-padded past the unit's end. */
export function shardOfUnit(unitData: Float32Array, unit: UnitSpec, world: number, rank: number): Float32Array {
  const { shard } = shardLayout(unit, world);
  const out = new Float32Array(shard);
  const lo = rank * shard;
  const hi = Math.min(unit.size, lo + shard);
  if (hi > lo) out.set(unitData.subarray(lo, hi));
  return out;
}

/** Rank r's slice of a unit of the full flat vector. */
function sliceShard(flat: Float32Array, unit: UnitSpec, world: number, rank: number): Float32Array {
  return shardOfUnit(flat.subarray(unit.offset, unit.offset + unit.size), unit, world, rank);
}

/** Rank r's slices of every unit of a full flat vector (a checkpoint's, say). */
export function shardsOf(flat: Float32Array, table: ParamTable, world: number, rank: number): Map<number, Float32Array> {
  return new Map(table.units.map((u) => [u.index, sliceShard(flat, u, world, rank)]));
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The unit's AdamW state key. */
const unitKey = (u: UnitSpec) => `unit:${u.name}`;

export class FSDPTrainer {
  readonly table: ParamTable;
  readonly model: GPT;
  step = 0;
  /**
   * unit -> this rank's parameter shard, on the host: the all-gather's input. The only copy at rest:
   * the optimizer uploads it for its update and reads the result back (a tensor kept as well would
   * hold every shard twice, which measuring the memory showed).
   */
  private shardData = new Map<number, Float32Array>();
  private masks = new Map<number, tf.Tensor1D | true | false>(); // weight-decay mask per unit shard
  private gathered = new Map<number, Map<string, tf.Tensor>>(); // unit -> unsharded parameters
  private inFlight = new Map<number, Promise<void>>(); // all-gathers issued, not yet materialised
  readonly opt: AdamW;
  private gatheredBytes = 0;
  readonly memory: MemoryReport = { params: 0, grads: 0, optimizer: 0, buddy: 0, gathered_peak: 0, activations_peak: 0, comm_buffers: 0 };
  private commBytes = 0;
  clock: WaitClock;

  constructor(
    readonly cfg: RunConfig,
    readonly data: Dataset,
    shards: Map<number, Float32Array>, // this rank's slice of each unit's parameters (shardOfUnit)
    readonly coll: Collectives,
    readonly strategy: Exclude<ShardStrategy, 'none'>,
    readonly prefetch: boolean,
  ) {
    this.table = buildParamTable(cfg);
    this.model = new GPT(cfg, this.table);
    this.clock = new WaitClock(coll);
    const { rank } = coll;
    for (const u of this.table.units) {
      const data = shards.get(u.index)!;
      this.shardData.set(u.index, data);
      // Weight decay applies to 2-D weights only: a bool mask (1 byte per element) over this rank's slice.
      const mask = new Uint8Array(data.length);
      for (const p of u.params) {
        if (!p.decay) continue;
        const lo = Math.max(p.offset - u.offset, rank * data.length) - rank * data.length;
        const hi = Math.min(p.offset - u.offset + p.size, (rank + 1) * data.length) - rank * data.length;
        if (hi > lo) mask.fill(1, lo, hi);
      }
      const all = mask.every((x) => x === 1);
      const none = mask.every((x) => x === 0);
      this.masks.set(u.index, all ? true : none ? false : tf.tensor1d(mask, 'bool'));
    }
    this.opt = new AdamW({ beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weight_decay: cfg.weight_decay }, (key) => this.masks.get(this.unitOf(key))!);
    this.measureAtRest(0);
  }

  /**
   * What this rank really holds between steps, by kind (src/ui/memory.ts has the formula to compare):
   * its host parameter shards; the gradient shards a step fills (gradBytes); AdamW's m and v tensors and
   * the weight-decay masks.
   */
  private measureAtRest(gradBytes: number): void {
    this.memory.params = [...this.shardData.values()].reduce((n, d) => n + d.byteLength, 0);
    this.memory.grads = gradBytes;
    this.memory.optimizer = this.opt.stateBytes() + tensorBytes([...this.masks.values()].filter((m): m is tf.Tensor1D => m instanceof tf.Tensor));
  }

  get rank() {
    return this.coll.rank;
  }
  get world() {
    return this.coll.world;
  }

  private unitOf(key: string): number {
    return this.table.units.find((u) => unitKey(u) === key)!.index;
  }

  /** A layer asks for a parameter: it must be unsharded now, or FSDP's schedule is wrong. */
  private readonly p: Params = (name) => {
    const unit = this.table.byName.get(name)!.unit;
    const t = this.gathered.get(unit)?.get(name);
    if (!t) throw new Error(`FSDP: ${name} was used while unit ${this.table.units[unit].name} is sharded (not all-gathered)`);
    return t;
  };

  // ---- all-gather and free ------------------------------------------------------------------------
  /** Issues the all-gather of a unit (if not gathered or in flight) without waiting for it. */
  private issueGather(unit: number): Promise<void> {
    if (this.gathered.has(unit)) return Promise.resolve();
    let p = this.inFlight.get(unit);
    if (!p) {
      const u = this.table.units[unit];
      const { padded } = shardLayout(u, this.world);
      this.commBytes += padded * 4;
      this.memory.comm_buffers = Math.max(this.memory.comm_buffers, this.commBytes);
      p = this.coll.allGather(this.shardData.get(unit)!, padded).then((flat) => {
        const params = this.coll.tracer.span(`unshard ${u.name}`, 'comm', () => {
          const m = new Map<string, tf.Tensor>();
          for (const spec of u.params) m.set(spec.name, tf.tensor(flat.subarray(spec.offset - u.offset, spec.offset - u.offset + spec.size), spec.shape));
          return m;
        });
        this.gathered.set(unit, params);
        this.inFlight.delete(unit);
        this.commBytes -= padded * 4;
        this.gatheredBytes += u.size * 4;
        this.memory.gathered_peak = Math.max(this.memory.gathered_peak, this.gatheredBytes);
      });
      p.catch(() => {}); // awaited where the unit is used; a prefetch of an aborted step may never be
      this.inFlight.set(unit, p);
    }
    return p;
  }

  private gather(unit: number): Promise<void> {
    return this.clock.wait(this.issueGather(unit));
  }

  /** Frees a unit's unsharded parameters (back to "sharded"). */
  private free(unit: number): void {
    const params = this.gathered.get(unit);
    if (!params) return;
    for (const t of params.values()) t.dispose();
    this.gathered.delete(unit);
    this.gatheredBytes -= this.table.units[unit].size * 4;
  }

  /** Bytes of unsharded parameters alive now (the tests check it is 0 between steps). */
  get gatheredNow(): number {
    return this.gatheredBytes;
  }

  // ---- one step -------------------------------------------------------------------------------------
  private readonly exclusive = serializer(); // steps and full-state gathers, one at a time

  trainStep(opts: StepOptions = {}): Promise<StepStats> {
    return this.exclusive(() => this.step_(opts));
  }

  private async step_(opts: StepOptions): Promise<StepStats> {
    const t0 = performance.now();
    const batches = rankMicroBatches(this.data, this.cfg, this.step, this.rank, this.world);
    const K = batches.length;
    const gradShards = new Map<number, Float32Array>(this.table.units.map((u) => [u.index, new Float32Array(shardLayout(u, this.world).shard)]));
    const scatters: Promise<void>[] = [];
    const activations = activationProbe(this.memory, () => this.gatheredBytes);
    let lossSum = 0;
    try {
      for (let k = 0; k < K; k++) {
        const acc: Grads = new Map();
        const probe = () => activations(acc);
        const hooks: UnitHooks = {
          beforeForward: (u) => this.gather(u),
          afterForward: (u) => {
            probe();
            if (this.strategy === 'full' && u !== 0) this.free(u);
          },
          beforeBackward: async (u) => {
            probe();
            await this.gather(u);
            // BACKWARD_PRE: the next unit backward needs starts travelling while this one computes.
            if (this.prefetch && u > 1) void this.issueGather(u - 1);
            await this.clock.wait(yieldToEventLoop());
          },
          afterBackward: async (u) => {
            scatters.push((await this.reduceScatter(u, acc, gradShards)).done); // issued now, awaited at the end
            this.free(u); // for the root unit this is after the embedding backward: the end of backward
          },
        };
        const loss = await this.model.forwardBackward(
          this.p, batches[k],
          // opts.poison: an injected fault, every gradient of this rank NaN
          { training: true, dropoutSeed: mixSeed(this.cfg.seed + this.rank, this.step, k), lossScale: opts.poison && k === K - 1 ? NaN : 1 / K, trace: this.coll.tracer },
          acc, hooks,
        );
        lossSum += (await loss.data())[0];
        loss.dispose();
      }
      await this.clock.wait(Promise.all(scatters));

      // Global gradient norm: each rank's share of the sum of squares, all-reduced (one scalar).
      const localSq = this.coll.tracer.span('gradient norm', 'compute', () => {
        let sq = 0;
        for (const g of gradShards.values()) for (let i = 0; i < g.length; i++) sq += g[i] * g[i];
        return sq;
      });
      const [sumSq, loss] = await this.clock.wait(
        Promise.all([this.coll.allReduceMean(Float32Array.of(localSq)), this.coll.allReduceMean(Float32Array.of(lossSum / K))]),
      );
      const gradNorm = Math.sqrt(sumSq[0] * this.world);
      const meanLoss = loss[0];
      // This rank's shards of every unit's mean gradient, unit by unit (the coordinator reassembles them).
      const captured = opts.grads ? concat(this.table.units.map((u) => gradShards.get(u.index)!)) : undefined;
      if (opts.beforeUpdate) await opts.beforeUpdate({ loss: meanLoss, gradNorm, nonFinite: Number.isFinite(gradNorm) ? null : this.firstNonFinite(gradShards) });
      else checkFinite(meanLoss, gradNorm, this.step, this.cfg.lr);
      const lr = learningRate(this.step, this.cfg);
      await this.applyAdamW(gradShards, lr, clipScale(gradNorm, this.cfg.grad_clip));
      this.measureAtRest([...gradShards.values()].reduce((n, g) => n + g.byteLength, 0));
      this.step += 1;
      const tokens = this.world * batches.reduce((n, b) => n + b.B * b.T, 0);
      return { step: this.step, loss: meanLoss, lr, gradNorm, ms: performance.now() - t0, tokens, ...(captured ? { grads: captured } : {}) };
    } finally {
      for (const u of [...this.gathered.keys()]) this.free(u); // an error mid-step must not leave units gathered
    }
  }

  /** The first parameter with a non-finite value in this rank's gradient shards, or null. */
  private firstNonFinite(gradShards: Map<number, Float32Array>): string | null {
    for (const u of this.table.units) {
      const { shard } = shardLayout(u, this.world);
      const bad = firstNonFinite(this.table, gradShards.get(u.index)!.subarray(0, Math.max(0, Math.min(shard, u.size - this.rank * shard))), u.offset + this.rank * shard);
      if (bad) return bad;
    }
    return null;
  }

  /** Packs a unit's gradients (padded), frees them, and issues the reduce-scatter that adds rank r's mean slice. */
  private async reduceScatter(unit: number, acc: Grads, into: Map<number, Float32Array>): Promise<{ done: Promise<void> }> {
    const u = this.table.units[unit];
    const ts = clock();
    const { padded } = shardLayout(u, this.world);
    const flat = new Float32Array(padded);
    if (!HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend())) {
      // On a GPU each readback is a round trip: the unit's gradients (contiguous, in order) concatenated there, read once.
      const one = tf.tidy(() => tf.concat(u.params.map((spec) => tf.reshape(acc.get(spec.name)!, [-1]))));
      for (const spec of u.params) {
        acc.get(spec.name)!.dispose();
        acc.delete(spec.name);
      }
      try {
        flat.set((await one.data()) as Float32Array, u.params[0].offset - u.offset);
      } finally {
        one.dispose();
      }
    } else {
      for (const spec of u.params) {
        const g = acc.get(spec.name)!;
        flat.set((await g.data()) as Float32Array, spec.offset - u.offset);
        g.dispose();
        acc.delete(spec.name);
      }
    }
    this.coll.tracer.record(`pack ${u.name} gradients`, 'comm', 'main', ts);
    this.commBytes += padded * 4;
    this.memory.comm_buffers = Math.max(this.memory.comm_buffers, this.commBytes);
    const done = this.coll.reduceScatterMean(flat).then((shard) => {
      this.commBytes -= padded * 4;
      const dst = into.get(unit)!;
      for (let i = 0; i < shard.length; i++) dst[i] += shard[i];
    });
    done.catch(() => {}); // awaited at the end of backward; an aborted step may never get there
    return { done };
  }

  private async applyAdamW(gradShards: Map<number, Float32Array>, lr: number, clip: number): Promise<void> {
    const ts = clock();
    const params = new Map(this.table.units.map((u) => [unitKey(u), tf.tensor1d(this.shardData.get(u.index)!) as tf.Tensor]));
    const grads = new Map(this.table.units.map((u) => [unitKey(u), tf.tensor1d(gradShards.get(u.index)!) as tf.Tensor]));
    const scale = tf.scalar(clip);
    const next = this.opt.step(params, grads, lr, scale);
    tf.dispose([scale, ...grads.values(), ...params.values()]);
    if (!HOST_OPTIMIZER_BACKENDS.includes(tf.getBackend())) {
      // On a GPU: every unit's new shard in one readback (each readback is a round trip to the device).
      const all = tf.concat(this.table.units.map((u) => next.get(unitKey(u))!));
      tf.dispose([...next.values()]);
      try {
        const d = (await all.data()) as Float32Array;
        let o = 0;
        for (const u of this.table.units) {
          const n = shardLayout(u, this.world).shard;
          this.shardData.set(u.index, d.slice(o, o + n)); // the next all-gather's input
          o += n;
        }
      } finally {
        all.dispose();
      }
    } else {
      for (const u of this.table.units) {
        const t = next.get(unitKey(u))!;
        this.shardData.set(u.index, (await t.data()) as Float32Array); // the next all-gather's input
        t.dispose();
      }
    }
    this.coll.tracer.record('optimizer', 'compute', 'main', ts);
  }

  // ---- the full state dict: every unit gathered, for evaluation, samples, checkpoints ---------------
  /** Collective: every rank must call it. Returns the full flat parameters. */
  async fullParams(): Promise<Float32Array> {
    return this.gatherFlat(this.shardData);
  }

  private async gatherFlat(shards: Map<number, Float32Array>): Promise<Float32Array> {
    const flat = new Float32Array(this.table.total);
    for (const u of this.table.units) {
      const full = await this.coll.allGather(shards.get(u.index)!, shardLayout(u, this.world).padded);
      flat.set(full.subarray(0, u.size), u.offset);
    }
    return flat;
  }

  /** Runs fn on rank 0 with a temporary full replica (others just take part in the gathers). */
  private async withFullModel<R>(fn: (t: Trainer) => Promise<R>, otherwise: R): Promise<R> {
    const full = await this.exclusive(() => this.fullParams());
    if (this.rank !== 0) return otherwise;
    const t = new Trainer(this.cfg, this.data, full, undefined, { optimizer: false });
    t.step = this.step;
    try {
      return await fn(t);
    } finally {
      t.dispose();
    }
  }

  evalLoss(split: 'train' | 'val', iters: number): Promise<number> {
    return this.withFullModel((t) => t.evalLoss(split, iters), NaN);
  }

  sample(prompt: string, tokens: number, opts: { temperature?: number; topK?: number; seed?: number } = {}): Promise<string> {
    return this.withFullModel((t) => t.sample(prompt, tokens, opts), '');
  }

  exportParams(): Promise<Float32Array> {
    return this.exclusive(() => this.fullParams());
  }

  /**
   * This rank's shards of the parameters and of AdamW's m and v, each unit's shard unit by unit (as
   * layout.ts unshard reads them), with the header a checkpoint of the whole model would have. Not a
   * collective: a buddy keeps it, and recovery rebuilds the model from every rank's (or its buddy's).
   */
  shardState(): Promise<{ header: CheckpointHeader; params: Float32Array; m: Float32Array; v: Float32Array }> {
    return this.exclusive(async () => {
      const st = await this.opt.state();
      const units = (get: (u: UnitSpec) => Float32Array | undefined) =>
        concat(this.table.units.map((u) => get(u) ?? new Float32Array(shardLayout(u, this.world).shard)));
      return {
        header: checkpointHeader(this.cfg, this.data.tokenizer.spec(), this.step, st.t, this.table.total, {}),
        params: units((u) => this.shardData.get(u.index)!.slice()),
        m: units((u) => st.m.get(unitKey(u))),
        v: units((u) => st.v.get(unitKey(u))),
      };
    });
  }

  /** Continues from a (full) checkpoint: keeps this rank's slices of parameters, m and v. */
  restore(c: Checkpoint): void {
    for (const u of this.table.units) {
      this.shardData.set(u.index, sliceShard(c.params, u, this.world, this.rank));
    }
    if (c.header.adam_t > 0) {
      const pick = (flat: Float32Array) => new Map(this.table.units.map((u) => [unitKey(u), sliceShard(flat, u, this.world, this.rank)]));
      const shapes = new Map(this.table.units.map((u) => [unitKey(u), [shardLayout(u, this.world).shard]]));
      this.opt.loadState({ t: c.header.adam_t, m: pick(c.m), v: pick(c.v) }, shapes);
    }
    this.step = c.header.step;
  }

  dispose(): void {
    for (const u of [...this.gathered.keys()]) this.free(u);
    for (const m of this.masks.values()) if (m instanceof tf.Tensor) m.dispose();
    this.shardData.clear();
    this.opt.dispose();
    this.model.dispose();
  }
}
