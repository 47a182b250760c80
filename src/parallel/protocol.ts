// The messages between the coordinator (on the page, or the CLI) and its ranks: types only.
// Each rank exposes RankAPI through comlink (workers/rank.worker.ts, src/parallel/rank.ts).

import type { BackendInfo } from '../backend/backend';
import type { RunConfig } from '../model/config';
import type { MemoryReport, ReadyCheck, StepStats } from '../train/trainer';
import type { FaultKind } from './faults';
import type { PortLike } from './collectives';
import type { CheckpointHeader, History } from '../train/checkpoint';
import type { CommEndpoint } from './wiring';
import type { PipelineSchedule, ShardStrategy, Strategy } from './layout';
import type { TraceEvent } from '../util/trace';
import type { DiLoCoSettings } from './diloco';
import type { VerifyResult, AdamWExpectation } from '../verify';

export interface InitInfo {
  backend: BackendInfo;
  numParams: number;
  vocabSize: number;
  trainTokens: number;
  valTokens: number;
  step: number; // > 0 when resumed from a checkpoint
}

export interface SampleRequest {
  prompt: string;
  tokens: number;
  temperature: number;
  topK: number;
  seed?: number;
}

// ---- the distributed runtime: one rank per worker, driven step by step by the coordinator --------

/** Everything a rank needs to build its replica and its links (src/parallel/rank.ts). */
export interface RankInit {
  config: RunConfig;
  text: string;
  rank: number;
  world: number;
  strategy: Strategy;
  bucketMb: number; // DDP bucket cap
  probeMb: number; // DDP: registered room for timing all-reduces (timeCollective)
  shard: ShardStrategy; // FSDP: full | grad_op | none (none = DDP's all-reduce)
  prefetch: boolean; // FSDP backward prefetch
  microbatches: number; // PP: micro-batches per step
  schedule: PipelineSchedule; // PP: gpipe | 1f1b
  /** DiLoCo: H, the outer step's lr and momentum, and how the pseudo-gradients travel (src/parallel/diloco.ts). */
  diloco?: DiLoCoSettings;
  /**
   * DiLoCo, with a checkpoint (a recovery): the outer momentum to go on with; the checkpoint's
   * parameters are the global model of its step, the last outer step. Without it the momentum starts at 0.
   */
  outerMomentum?: Float32Array;
  comm: CommEndpoint;
  /** Where the rank posts a heartbeat every HEARTBEAT_MS (src/parallel/faults.ts): a slow rank from a dead one. */
  beat?: PortLike;
  checkpoint?: ArrayBuffer; // every rank restores the same replica and optimizer state
}

/** Phase 1 of a step, done: the update could be applied (loss and gradient norm known; see ReadyCheck). */
export interface RankReady extends ReadyCheck {
  rank: number;
}

/** What phase 1 of a step may be asked for: StepOptions' gradients, and a fault to inject. */
export interface PrepareOptions {
  grads?: boolean;
  inject?: FaultKind;
}

/**
 * One rank's part of the model and optimizer state, in its own layout: FSDP's shards (each unit's
 * shard, unit by unit), TP's slices, PP's stage. For checkpoints and FSDP's recovery.
 */
export interface ShardState {
  header: CheckpointHeader; // of the whole model, as a checkpoint would have it
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

/** DiLoCo's outer optimizer as a rank holds it (RankAPI.outerState). */
export interface OuterStateExport {
  step: number; // the last outer step
  theta: Float32Array; // the global model
  momentum: Float32Array;
}

/** One rank's view of one step; times are this rank's wall time split three ways. */
export interface RankStepStats extends StepStats {
  rank: number;
  computeMs: number; // forward, backward, optimizer (ms - commMs - waitMs)
  commMs: number; // CPU time inside collectives: copies, sums, posting messages
  waitMs: number; // blocked, waiting for other ranks' data
  /**
   * Of waitMs, the part spent waiting for a slower rank rather than for data in flight: waitMs less the
   * smallest waitMs of any rank that step (the rank that waited least waited only for data). Set by the
   * coordinator, which sees every rank.
   */
  stragglerMs?: number;
  bytesSent: number; // this step
  buckets: number[]; // DDP: bucket indices in the order their all-reduce was issued
  memory: MemoryReport; // bytes by kind
  trace?: TraceEvent[]; // this step's events, when tracing is on
}

export interface RankAPI {
  init(spec: RankInit): Promise<InitInfo>;
  /**
   * A step in two phases, so that no rank applies a partial update: prepareStep runs forward, backward
   * and the gradient sync and answers when the update could be applied; commitStep applies it (the
   * coordinator commits only when every rank is ready) and returns the step's stats; abortStep ends it
   * with nothing applied (and fails this rank's collectives: its links are not used again).
   */
  prepareStep(opts?: PrepareOptions): Promise<RankReady>;
  commitStep(): Promise<RankStepStats>;
  abortStep(reason: string): Promise<void>;
  /** FSDP, TP, PP: this rank's part (for a checkpoint, or a buddy to keep); FSDP: a neighbour's to keep or hand back. */
  exportShard(): Promise<ShardState>;
  keepBuddy(of: number, state: ShardState): void;
  buddy(): { of: number; state: ShardState } | null;
  /**
   * Times a collective on this rank's links (every rank must call it with the same arguments): the
   * median seconds of `iters` runs after one warm-up. For calibration and benchmarks.
   */
  timeCollective(op: 'all-reduce' | 'all-gather' | 'reduce-scatter', bytes: number, iters: number): Promise<number>;
  /**
   * Times moving `bytes` between JavaScript and the backend (tensor upload, and readback with
   * await data()): what a GPU backend pays to hand gradients to the collectives and take results back.
   * Median seconds of `iters` runs after a warm-up.
   */
  timeHostCopy(bytes: number, iters: number): Promise<{ upload: number; readback: number }>;
  /** Records trace events (returned with each step) or stops recording. */
  setTracing(on: boolean): void;
  evalLoss(split: 'train' | 'val', iters: number): Promise<number>;
  sample(req: SampleRequest): Promise<string>;
  /** A replica's checkpoint (a sharded rank hands over exportShard instead). */
  exportCheckpoint(history: History): Promise<ArrayBuffer>;
  exportParams(): Promise<Float32Array>;
  /** DiLoCo: the global model, the outer momentum and the step of the last outer step (identical on every rank). */
  outerState(): Promise<OuterStateExport>;
  memory(): { numTensors: number; numBytes: number };
  /** The llm.c check (src/verify.ts) on this worker's backend. */
  verifyLlmc(backend: RunConfig['backend'], model: ArrayBuffer, state: ArrayBuffer, adamw: AdamWExpectation | null): Promise<VerifyResult>;
  dispose(): void;
}
