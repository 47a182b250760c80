// The training loop around a Trainer: steps, periodic validation and samples, pause / resume / stop,
// throughput and ETA. The Web Worker (the page) and the CLI both drive training through this class,
// so what the page shows and what the CLI prints come from the same code.

import type { StepStats } from './trainer';
import type { RankStepStats } from '../parallel/protocol';
import { median } from '../util/stats';

/** What the loop drives: one Trainer, or the coordinator of N ranks (src/parallel/coordinator.ts). */
export interface Trainable {
  readonly step: number;
  trainStep(): Promise<StepStats & { perRank?: RankStepStats[]; hubBytes?: number; buddyBytes?: number }>;
  evalLoss(split: 'train' | 'val', iters: number): Promise<number>;
  sample(prompt: string, tokens: number, opts?: { temperature?: number; topK?: number; seed?: number }): Promise<string>;
}

export type RunState = 'idle' | 'running' | 'paused' | 'stopped' | 'done' | 'error';

export type TrainEvent =
  | { type: 'step'; stats: StepStats & { perRank?: RankStepStats[]; hubBytes?: number; buddyBytes?: number }; tokensPerSec: number; msPerStep: number; etaMs: number }
  | { type: 'eval'; step: number; train: number; val: number }
  | { type: 'sample'; step: number; text: string }
  | { type: 'state'; state: RunState; message?: string };

export interface SessionOptions {
  maxIters: number; // stop after this many optimizer steps in total
  evalInterval: number; // 0: never
  evalIters: number;
  sampleInterval: number; // 0: never
  sampleTokens: number;
  sampleOptions?: { temperature?: number; topK?: number; prompt?: string };
  warmupSteps?: number; // excluded from the throughput median
}

export class Session {
  state: RunState = 'idle';
  readonly stepMs: number[] = [];
  readonly losses: number[] = [];
  readonly gradNorms: number[] = []; // global L2 norm of the (averaged) gradient before clipping, per step
  readonly valLosses: [number, number][] = [];
  private wake: (() => void) | null = null;
  private lastStep = 0; // the step of the last stats

  constructor(
    readonly trainer: Trainable,
    private opts: SessionOptions,
    private emit: (e: TrainEvent) => void = () => {},
  ) {}

  private setState(state: RunState, message?: string) {
    this.state = state;
    this.emit({ type: 'state', state, message });
  }

  /** Throughput over recent steps (median ms per step, so one slow step does not swing it). */
  msPerStep(): number {
    const skip = Math.min(this.opts.warmupSteps ?? 1, Math.max(0, this.stepMs.length - 1));
    return median(this.stepMs.slice(-50), this.stepMs.length > 50 ? 0 : skip);
  }

  async evaluate(): Promise<{ train: number; val: number }> {
    const train = await this.trainer.evalLoss('train', this.opts.evalIters);
    const val = await this.trainer.evalLoss('val', this.opts.evalIters);
    this.valLosses.push([this.trainer.step, val]);
    this.emit({ type: 'eval', step: this.trainer.step, train, val });
    return { train, val };
  }

  async sample(): Promise<string> {
    const { prompt = '', ...rest } = this.opts.sampleOptions ?? {};
    const text = await this.trainer.sample(prompt, this.opts.sampleTokens, rest);
    this.emit({ type: 'sample', step: this.trainer.step, text });
    return text;
  }

  /** Runs until maxIters, stop() or an error. Resolves with the final state. */
  async run(): Promise<RunState> {
    if (this.state === 'running') return this.state;
    this.setState('running');
    try {
      while (this.trainer.step < this.opts.maxIters) {
        if (this.state === 'stopped') return this.state;
        if (this.state === 'paused') {
          await new Promise<void>((resolve) => (this.wake = resolve));
          continue;
        }
        const stats = await this.trainer.trainStep();
        this.forgetFrom(stats.step);
        this.stepMs.push(stats.ms);
        this.losses.push(stats.loss);
        this.gradNorms.push(stats.gradNorm);
        const ms = this.msPerStep();
        const tokensPerSec = (stats.tokens / ms) * 1000;
        this.emit({ type: 'step', stats, tokensPerSec, msPerStep: ms, etaMs: ms * (this.opts.maxIters - stats.step) });
        const last = stats.step === this.opts.maxIters;
        const every = (n: number) => n > 0 && (stats.step % n === 0 || last);
        if (every(this.opts.evalInterval)) await this.evaluate();
        if (every(this.opts.sampleInterval)) await this.sample();
        // Let pause/stop messages in between steps.
        await new Promise((r) => setTimeout(r, 0));
      }
      this.setState('done');
    } catch (e) {
      this.setState('error', (e as Error).message);
      throw e;
    }
    return this.state;
  }

  /**
   * A recovery from an older checkpoint trains some steps again (src/parallel/faults.ts): what was
   * recorded from `step` on is replaced by the replayed steps.
   */
  private forgetFrom(step: number): void {
    const drop = this.lastStep - step + 1;
    if (drop > 0) for (const a of [this.stepMs, this.losses, this.gradNorms]) a.splice(Math.max(0, a.length - drop));
    while ((this.valLosses.at(-1)?.[0] ?? 0) >= step) this.valLosses.pop();
    this.lastStep = step;
  }

  pause(): void {
    if (this.state === 'running') this.setState('paused');
  }

  resume(): void {
    if (this.state !== 'paused') return;
    this.setState('running');
    this.wake?.();
    this.wake = null;
  }

  stop(): void {
    if (this.state === 'running' || this.state === 'paused') {
      const wasPaused = this.state === 'paused';
      this.setState('stopped');
      if (wasPaused) {
        this.wake?.();
        this.wake = null;
      }
    }
  }
}
