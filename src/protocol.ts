// The messages between the page (coordinator) and a training worker: types only.
// The worker exposes TrainerWorkerAPI through comlink; events come back through a callback proxy.

import type { BackendInfo } from './backend';
import type { RunConfig } from './model/config';
import type { TrainEvent } from './train/session';
import type { VerifyResult, AdamWExpectation } from './verify';

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

export interface TrainerWorkerAPI {
  /** Builds tokenizer, dataset and model. `checkpoint` (from exportCheckpoint) resumes a run. */
  init(config: RunConfig, text: string, onEvent: (e: TrainEvent) => void, checkpoint?: ArrayBuffer): Promise<InitInfo>;
  /** Trains until config.max_iters, stop() or an error; resolves with the final state. */
  run(): Promise<string>;
  pause(): void;
  resume(): void;
  stop(): void;
  sample(req: SampleRequest): Promise<string>;
  /** Model, optimizer state, step and tokenizer in one buffer (src/train/checkpoint.ts). */
  exportCheckpoint(): Promise<ArrayBuffer>;
  /** The llm.c check (src/verify.ts) on this worker's backend. */
  verifyLlmc(config: { backend: RunConfig['backend'] }, model: ArrayBuffer, state: ArrayBuffer, adamw: AdamWExpectation | null): Promise<VerifyResult>;
  /** Live tensor count and bytes (tf.memory()), for the memory display and leak tests. */
  memory(): { numTensors: number; numBytes: number };
  /** Stops training and releases the page's event callback; the page terminates the worker next. */
  dispose(): void;
}
