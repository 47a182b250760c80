// "Break something" and the recoveries, in the Workers panel: a teacher makes a worker fail on purpose
// (kill it, hang it, poison its gradients with NaN, run it out of memory) while it trains the next step,
// and the page lists every recovery the run made (src/parallel/faults.ts: the coordinator notices the
// failure, aborts the step on every worker, restores the step's start from a healthy replica or FSDP's
// shards and buddy copies, replaces the broken worker, and trains the step again).
//
// The menu is enabled only while a run of 2 or more workers is training (one worker has no replica to
// recover from); a disabled control says why in its title. After every step the page calls onStep(),
// which shows recoveries that are new since the last call: as a list (#recoveries, one li per recovery
// with data-step, data-rank, data-cause, data-detected-ms, data-ms, data-restored-from,
// data-replayed-steps) and a short
// notice under the run status (#recovery-notice, not the error banner).

import { FAULT_KINDS, type FailureCause, type FaultKind, type Recovery } from '../parallel/faults';
import { byId, h } from './dom';
import type { Run } from './run';

/** What the panel needs from the page. */
export interface FaultsPage {
  run(): Run | null; // the current run, once its workers are built
  running(): boolean; // training right now (not starting, paused or finished)
}

const ACTIONS: Record<FaultKind, { verb: string; help: string }> = {
  kill: { verb: 'killed', help: 'The worker dies, as if its tab crashed. The run notices at once.' },
  hang: { verb: 'hung', help: 'The worker stops answering and stops its heartbeat. The run notices when the step passes its deadline (10 times a usual step, at least 10 s).' },
  nan: { verb: 'poisoned with NaN gradients', help: 'The worker sends gradients that are not numbers. The run checks every gradient before the update, so nothing is applied; the worker is kept.' },
  oom: { verb: 'run out of memory', help: 'The worker fails to allocate memory. The run notices at once and replaces it.' },
};

const CAUSES: Record<FailureCause, string> = {
  crash: 'crashed', hang: 'hung', slow: 'was too slow', nan: 'sent gradients that are not numbers', oom: 'ran out of memory', error: 'failed with an error',
};

/** "40 ms", "1.2 s", "12 s". */
function seconds(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/** One recovery in one sentence a student can follow. */
export function describeRecovery(r: Recovery): string {
  const replaced = r.cause !== 'nan'; // the coordinator replaces every failed worker but one with bad gradients
  const what = `Worker ${r.rank} ${CAUSES[r.cause]} during step ${r.step}. The run noticed after ${seconds(r.detected_ms)}, aborted the step on every worker, ` +
    `${replaced ? `replaced worker ${r.rank} with a new one, ` : ''}`;
  if (r.replayed_steps > 0) {
    // The step's start was lost with the worker: the run went back to an older state and trains the steps since it again.
    return `${what}restored every worker from ${workers(r.restored_from)} in ${seconds(r.ms)} and trains the ${r.replayed_steps} step${r.replayed_steps === 1 ? '' : 's'} since then and step ${r.step} again.`;
  }
  return `${what}restored every worker to the start of the step from ${workers(r.restored_from)} in ${seconds(r.ms)} and trained step ${r.step} again: no step was lost.`;
}

/** The coordinator says "rank 0's replica"; the page calls ranks workers. */
function workers(text: string): string {
  return text.replace(/\brank (\d+)/g, 'worker $1');
}

export class FaultsPanel {
  private readonly menu = byId<HTMLDetailsElement>('break');
  private readonly rank = byId<HTMLSelectElement>('break-rank');
  private readonly status = byId('break-status');
  private readonly buttons = FAULT_KINDS.map((kind) => ({ kind, el: byId<HTMLButtonElement>(`break-${kind}`) }));
  private readonly box = byId('recoveries-box');
  private readonly list = byId<HTMLOListElement>('recoveries');
  private readonly notice = byId('recovery-notice');
  private shown = 0; // recoveries of the current run already listed
  private pending: { kind: FaultKind; rank: number; step: number } | null = null;

  constructor(private readonly page: FaultsPage) {
    for (const { kind, el } of this.buttons) {
      el.title = ACTIONS[kind].help;
      el.addEventListener('click', () => this.inject(kind));
    }
  }

  /** A new run: nothing broken, nothing listed. */
  reset(): void {
    this.shown = 0;
    this.pending = null;
    this.list.replaceChildren();
    this.box.hidden = true;
    this.notice.hidden = true;
    this.notice.textContent = '';
    this.status.textContent = '';
    this.render();
  }

  private inject(kind: FaultKind): void {
    const run = this.page.run();
    if (!run || !this.page.running() || run.world < 2) return;
    const rank = Number(this.rank.value);
    const step = run.inject(kind, rank);
    this.pending = { kind, rank, step };
    const when = kind === 'hang' ? ' The run notices at the step’s deadline (at least 10 s).' : '';
    this.status.textContent = `Worker ${rank} will be ${ACTIONS[kind].verb} while it trains step ${step}…${when}`;
    this.render();
  }

  /**
   * A step finished: list the recoveries that are new, say so under the run status, and return them
   * (the page marks their steps on the chart and their workers' cards).
   */
  onStep(step: number): Recovery[] {
    const all = this.page.run()?.recoveries ?? [];
    const fresh = all.slice(this.shown);
    this.shown = all.length;
    if (fresh.length) {
      this.list.append(...fresh.map((r) => this.item(r)));
      this.box.hidden = false;
      const last = fresh[fresh.length - 1];
      this.notice.textContent = `Recovered. ${describeRecovery(last)}`;
      this.notice.hidden = false;
    }
    if (this.pending && step >= this.pending.step) {
      const p = this.pending;
      const caught = fresh.some((r) => r.rank === p.rank && r.step === p.step);
      this.status.textContent = caught ? '' : `Step ${p.step} finished without a recovery.`;
      this.pending = null;
      this.render();
    }
    return fresh;
  }

  private item(r: Recovery): HTMLLIElement {
    const cell = (label: string, value: string) => h('span', { class: 'rec-cell' }, h('span', { class: 'rec-label' }, label), value);
    return h('li', {
      'data-step': r.step, 'data-rank': r.rank, 'data-cause': r.cause, 'data-detected-ms': Math.round(r.detected_ms), 'data-ms': Math.round(r.ms),
      'data-restored-from': r.restored_from, 'data-replayed-steps': r.replayed_steps, title: r.message,
    },
      cell('step', String(r.step)),
      cell('worker', String(r.rank)),
      cell('cause', CAUSES[r.cause]),
      cell('noticed after', seconds(r.detected_ms)),
      cell('recovered in', seconds(r.ms)),
      cell('restored from', workers(r.restored_from)),
    );
  }

  /** Enables the menu while a run of 2 or more workers trains; otherwise says why not. */
  render(): void {
    const run = this.page.run();
    const world = run?.world ?? 0;
    const reason = !run ? 'Start a run with 2 or more workers (ddp or fsdp) to break one of them.'
      : world < 2 ? 'This run has one worker: with no other copy of the model to recover from, breaking it would end the run. Use ddp or fsdp with 2 or more workers.'
        : !this.page.running() ? 'Only while the run is training.'
          : this.pending ? `Wait until step ${this.pending.step} is trained.`
            : null;
    if (this.rank.options.length !== world) {
      this.rank.replaceChildren(...Array.from({ length: world }, (_, r) => h('option', { value: r }, `worker ${r}`)));
      if (world) this.rank.value = String(world - 1);
    }
    this.rank.disabled = reason !== null;
    this.rank.title = reason ?? 'The worker to break';
    for (const { kind, el } of this.buttons) {
      el.disabled = reason !== null;
      el.title = reason ?? ACTIONS[kind].help;
    }
    this.menu.dataset.enabled = String(reason === null);
  }
}
