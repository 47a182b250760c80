// The page's handle on one training worker (workers/trainer.worker.ts, API in src/protocol.ts).
//
// One worker per run, on purpose: starting a new run disposes the old client, and terminate() frees
// every tensor, the wasm heap and the GPU device at once, whatever state the old run was in. Calls to
// a worker that crashed or was disposed reject (instead of hanging), so the page never waits forever.

import * as Comlink from 'comlink';
import type { RunConfig } from '../model/config';
import type { InitInfo, SampleRequest, TrainerWorkerAPI } from '../protocol';
import type { RunState, TrainEvent } from '../train/session';

export class WorkerGone extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerGone';
  }
}

export class TrainerClient {
  private readonly worker: Worker;
  private readonly api: Comlink.Remote<TrainerWorkerAPI>;
  private readonly gone: Promise<never>;
  private markGone!: (e: Error) => void;
  private listener: ((e: TrainEvent) => void) | null;
  private disposed = false;
  private closing: Promise<void> | null = null;

  /** onEvent gets the worker's training events; onCrash a message if the worker itself fails. */
  constructor(onEvent: (e: TrainEvent) => void, onCrash: (message: string) => void) {
    this.listener = onEvent;
    this.gone = new Promise<never>((_, reject) => (this.markGone = reject));
    this.gone.catch(() => {}); // observed through call()
    this.worker = new Worker(new URL('../../workers/trainer.worker.ts', import.meta.url), { type: 'module', name: 'trainer' });
    this.worker.onerror = (e) => {
      e.preventDefault();
      const message = `the training worker crashed: ${e.message || 'it failed to load or ran out of memory'}`;
      this.markGone(new WorkerGone(message));
      if (this.listener) onCrash(message);
    };
    this.worker.onmessageerror = () => this.listener && onCrash('a message from the training worker could not be read');
    this.api = Comlink.wrap<TrainerWorkerAPI>(this.worker);
  }

  private call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.disposed) return Promise.reject(new WorkerGone('the training worker was closed'));
    return Promise.race([fn(), this.gone]);
  }

  init(config: RunConfig, text: string, checkpoint?: ArrayBuffer): Promise<InitInfo> {
    const onEvent = Comlink.proxy((e: TrainEvent) => this.listener?.(e));
    const ckpt = checkpoint ? Comlink.transfer(checkpoint, [checkpoint]) : undefined;
    return this.call(() => this.api.init(config, text, onEvent, ckpt));
  }

  run(): Promise<RunState> {
    return this.call(() => this.api.run()) as Promise<RunState>;
  }

  pause(): Promise<void> {
    return this.call(() => this.api.pause());
  }

  resume(): Promise<void> {
    return this.call(() => this.api.resume());
  }

  stop(): Promise<void> {
    return this.call(() => this.api.stop());
  }

  sample(req: SampleRequest): Promise<string> {
    return this.call(() => this.api.sample(req));
  }

  exportCheckpoint(): Promise<ArrayBuffer> {
    return this.call(() => this.api.exportCheckpoint());
  }

  /** Stops the run, closes the event channel and terminates the worker. Safe to call more than once. */
  dispose(): Promise<void> {
    return (this.closing ??= this.close());
  }

  private async close(): Promise<void> {
    this.listener = null;
    // A worker busy in a long step answers late: give it a moment to release the callback, then go.
    await Promise.race([this.call(() => this.api.dispose()).catch(() => {}), new Promise((r) => setTimeout(r, 500))]);
    this.disposed = true;
    this.api[Comlink.releaseProxy]();
    this.worker.terminate();
    this.markGone(new WorkerGone('the training worker was closed'));
  }
}
