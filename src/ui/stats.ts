// The progress panel: step / max_iters with a bar, loss, val loss, tokens/s, ms/step, ETA, lr and
// gradient norm (the last step's, before clipping). Updates are batched into one DOM write per animation
// frame. The numbers are also exposed as data attributes on #stats (data-step, data-first-loss,
// data-last-loss, data-val-loss, data-grad-norm) for tests and for anyone scripting the page.

import type { TrainEvent } from '../train/session';
import { byId } from './dom';
import * as fmt from './format';

type StepEvent = Extract<TrainEvent, { type: 'step' }>;

const TITLE = document.title; // progress goes into the tab title, for a run watched from another tab

export class StatsPanel {
  private readonly root = byId('stats');
  private readonly cells = {
    loss: byId('s-loss'), val: byId('s-val'), tps: byId('s-tps'), ms: byId('s-ms'),
    eta: byId('s-eta'), lr: byId('s-lr'), gn: byId('s-gn'), seen: byId('s-seen'),
  };
  private readonly stepLabel = byId('step-label');
  private readonly percent = byId('percent');
  private readonly bar = byId('bar-fill');
  private readonly track = byId('progress');
  private last: StepEvent | null = null;
  private firstLoss: number | null = null;
  private valLoss: number | null = null;
  private step = 0;
  private maxIters = 0;
  private frame = 0;

  /** A new run (or a resumed one, with the first loss of its history). */
  reset(maxIters: number, step = 0, firstLoss: number | null = null, valLoss: number | null = null): void {
    Object.assign(this, { maxIters, step, firstLoss, valLoss, last: null });
    this.schedule();
  }

  /** The planned length, shown before a run starts (and what a resume would train to). */
  setMaxIters(maxIters: number): void {
    this.maxIters = maxIters;
    this.schedule();
  }

  onStep(e: StepEvent): void {
    this.last = e;
    this.step = e.stats.step;
    this.firstLoss ??= e.stats.loss;
    this.schedule();
  }

  onVal(val: number): void {
    this.valLoss = val;
    this.schedule();
  }

  get currentStep(): number {
    return this.step;
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  private draw(): void {
    this.frame = 0;
    const e = this.last;
    const frac = this.maxIters ? Math.min(1, this.step / this.maxIters) : 0;
    this.stepLabel.textContent = `step ${fmt.count(this.step)} / ${fmt.count(this.maxIters)}`;
    this.percent.textContent = `${Math.floor(frac * 100)}%`;
    this.bar.style.width = `${(frac * 100).toFixed(2)}%`;
    this.track.setAttribute('aria-valuenow', String(Math.round(frac * 100)));
    this.cells.loss.textContent = fmt.loss(e?.stats.loss);
    this.cells.val.textContent = fmt.loss(this.valLoss);
    this.cells.tps.textContent = e ? fmt.count(e.tokensPerSec) : '–';
    this.cells.ms.textContent = e ? fmt.count(e.msPerStep) : '–';
    this.cells.eta.textContent = e ? (e.stats.step >= this.maxIters ? 'done' : fmt.duration(e.etaMs)) : '–';
    this.cells.lr.textContent = e ? fmt.small(e.stats.lr) : '–';
    this.cells.gn.textContent = e ? fmt.small(e.stats.gradNorm) : '–';
    this.cells.seen.textContent = e ? fmt.compact(e.stats.step * e.stats.tokens) : '–'; // every step has the same batch
    document.title = e ? `${Math.floor(frac * 100)}% · loss ${fmt.loss(e.stats.loss)} · GPT-2 Trainer` : TITLE;
    const d = this.root.dataset;
    d.step = String(this.step);
    d.firstLoss = this.firstLoss === null ? '' : String(this.firstLoss);
    d.lastLoss = e ? String(e.stats.loss) : '';
    d.valLoss = this.valLoss === null ? '' : String(this.valLoss);
    d.gradNorm = e ? String(e.stats.gradNorm) : '';
  }
}
