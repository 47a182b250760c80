// One training run on the page: a Coordinator whose ranks are Web Workers (src/parallel/browser-spawn.ts),
// and the training loop (Session) on this thread around it. The loop only awaits the ranks, so the page
// stays responsive; all the math is in the workers.
//
// One set of workers per run, on purpose: a new run disposes the old one, and terminating its workers
// frees every tensor, the wasm heap and the GPU device at once, whatever state the old run was in.
// Calls into a worker that crashed reject (the coordinator races every call against the workers'
// error events), so the page never waits forever on a dead worker.

import type { RunConfig } from '../model/config';
import type { InitInfo, SampleRequest } from '../parallel/protocol';
import { Coordinator, type DistOptions } from '../parallel/coordinator';
import type { FaultKind, Recovery } from '../parallel/faults';
import { spawnWebWorker } from '../parallel/browser-spawn';
import { Session, type RunState, type TrainEvent, type Trainable } from '../train/session';

export interface RankMemory {
  numTensors: number;
  numBytes: number;
}

const MEMORY_TIMEOUT_MS = 5000;

export class Run {
  private inflight: Promise<unknown> | null = null; // the step the loop is waiting for, if any
  private disposed = false;

  private constructor(
    readonly coordinator: Coordinator,
    readonly session: Session,
  ) {}

  /**
   * Starts `dist.workers` ranks and waits until every replica is built. With a checkpoint every rank
   * restores it (the loss history goes to the loop, so the chart and later checkpoints keep it).
   */
  static async start(
    config: RunConfig,
    text: string,
    dist: DistOptions,
    emit: (e: TrainEvent) => void,
    checkpoint?: { buffer: ArrayBuffer; losses?: number[]; valLosses?: [number, number][] },
  ): Promise<Run> {
    const coordinator = await Coordinator.create(config, text, dist, spawnWebWorker, checkpoint?.buffer);
    let run: Run | null = null;
    // Checkpoints must not be exported mid-step with the history of the step before; the loop steps
    // through this wrapper, which remembers the step in flight.
    const trainable: Trainable = {
      get step() {
        return coordinator.step;
      },
      trainStep: () => {
        const p = coordinator.trainStep();
        const tracked = p.finally(() => {
          if (run && run.inflight === tracked) run.inflight = null;
        });
        if (run) run.inflight = tracked;
        return tracked;
      },
      evalLoss: (split, iters) => coordinator.evalLoss(split, iters),
      sample: (prompt, tokens, opts) => coordinator.sample(prompt, tokens, opts),
    };
    // max_iters and the eval schedule come from the config the ranks built (a checkpoint's, if resumed).
    const session = new Session(
      trainable,
      {
        maxIters: config.max_iters, evalInterval: config.eval_interval, evalIters: config.eval_iters,
        sampleInterval: config.eval_interval, sampleTokens: 200, sampleOptions: { temperature: 0.8, topK: 40, prompt: '' },
      },
      emit,
    );
    if (checkpoint?.losses) session.losses.push(...checkpoint.losses);
    if (checkpoint?.valLosses) session.valLosses.push(...checkpoint.valLosses);
    run = new Run(coordinator, session);
    return run;
  }

  get info(): InitInfo {
    return this.coordinator.info;
  }

  /** What every rank built, by rank (each reports the backend it started). */
  get infos(): InitInfo[] {
    return this.coordinator.infos;
  }

  /** The options the ranks run with (shared may have become ring: see `notice`). */
  get dist(): DistOptions {
    return this.coordinator.dist;
  }

  get notice(): string | null {
    return this.coordinator.notice;
  }

  get world(): number {
    return this.coordinator.ranks.length;
  }

  /**
   * Breaks a worker on purpose (the page's “Break something”): `kind` on `rank` while it trains the next
   * step. The coordinator notices, aborts the step on every worker, recovers and trains the step again.
   * Returns the step the fault is for.
   */
  inject(kind: FaultKind, rank: number): number {
    // The coordinator takes a step's faults when the step starts: while one is in flight, the next
    // step is the one after it (a fault for the step in flight would never be injected).
    const step = this.coordinator.step + (this.inflight ? 2 : 1);
    this.coordinator.inject(kind, rank, step);
    return step;
  }

  /** Every recovery so far (what failed, how soon it was noticed, how the run went on). */
  get recoveries(): readonly Recovery[] {
    return this.coordinator.recoveries;
  }

  /** Trains until max_iters, stop() or an error; resolves with the final state. */
  run(): Promise<RunState> {
    return this.session.run();
  }

  pause(): void {
    this.session.pause();
  }

  resume(): void {
    this.session.resume();
  }

  stop(): void {
    this.session.stop();
  }

  sample(req: SampleRequest): Promise<string> {
    return this.coordinator.sample(req.prompt, req.tokens, { temperature: req.temperature, topK: req.topK, seed: req.seed });
  }

  /**
   * Rank 0's model and optimizer with the loss history so far. Waits for a step in flight (a pause
   * while a step runs), so the history always matches the checkpoint's step.
   */
  async exportCheckpoint(): Promise<ArrayBuffer> {
    while (this.inflight) await this.inflight.catch(() => {});
    return this.coordinator.exportCheckpoint({ losses: this.session.losses, val_losses: this.session.valLosses });
  }

  /** tf.memory() of every rank; null for a rank that does not answer (crashed, or busy for long). */
  memory(): Promise<(RankMemory | null)[]> {
    return Promise.all(
      this.coordinator.ranks.map((h) =>
        Promise.race([
          h.api.memory() as Promise<RankMemory>,
          ...(h.failed ? [h.failed] : []),
          new Promise<null>((resolve) => setTimeout(() => resolve(null), MEMORY_TIMEOUT_MS)),
        ]).catch(() => null),
      ),
    );
  }

  /** Stops the loop and terminates every worker. Safe to call more than once. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.session.stop();
    this.coordinator.dispose();
  }
}
