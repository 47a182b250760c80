// Exports of the Compare view: the timeline as Chrome trace-event JSON (opens in ui.perfetto.dev and
// chrome://tracing), the results as CSV and JSON, as downloads or on the clipboard.

import { toChromeTrace } from '../../util/trace';
import type { RunRecord } from './runner';

/** The traced steps of a run as Chrome trace JSON: one process per worker, threads main and comm. */
export function traceJson(run: RunRecord): string {
  const t = run.trace;
  if (!t) throw new Error(`${run.label} has no trace`);
  return JSON.stringify(toChromeTrace(t.perWorker, {
    strategy: run.label,
    workers: run.dist.workers,
    transport: run.dist.transport,
    preset: run.cfg.preset,
    backend: run.info.backend.name,
    // Each traced step and each worker's own step time (ms): a worker's main-lane spans tile it.
    steps: t.steps.map((step, i) => ({ step, worker_ms: t.rankMs[i] })),
    // Each recovery (a worker failed): when its step's failed try started, the failure was noticed and
    // the run was ready to train the step again, in µs on the events' clock.
    recoveries: (run.recoveries ?? []).map((r) => ({
      step: r.step, worker: r.rank, cause: r.cause, detected_ms: r.detected_ms, recovery_ms: r.ms, restored_from: r.restored_from,
      started_us: Math.round(r.started_at * 1000), detected_us: Math.round(r.detected_at * 1000), recovered_us: Math.round(r.recovered_at * 1000),
    })),
  }));
}

export function traceFileName(run: RunRecord): string {
  return `trace-${run.key}-${run.dist.workers}w-${run.dist.transport}-steps${run.trace?.steps[0] ?? 0}-${run.trace?.steps.at(-1) ?? 0}.json`;
}

/** Saves text as a file through a temporary link. */
export function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Copies text; says on the button whether it worked, then restores its label. */
export async function copy(text: string, button: HTMLButtonElement): Promise<void> {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied ✓';
  } catch {
    button.textContent = 'Copy failed';
  }
  setTimeout(() => (button.textContent = label), 1500);
}
