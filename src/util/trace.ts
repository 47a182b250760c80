// Trace events: what each worker did and when, on a clock all workers share (performance.timeOrigin +
// performance.now(), milliseconds since the epoch), so one timeline can show every worker side by side.
//
// Two lanes per worker: "main" is the worker's thread, tiled by compute spans (each unit's forward and
// backward, the optimizer) and wait spans (blocked on other workers); "comm" shows each collective from
// the moment it starts moving data until it completes, with its bytes. Exported as Chrome trace-event
// JSON (torch.profiler's export_chrome_trace convention), which ui.perfetto.dev and chrome://tracing open.

export type TraceCategory = 'compute' | 'comm' | 'wait';
export type TraceLane = 'main' | 'comm';

export interface TraceEvent {
  name: string; // "forward h.3", "backward root", "all-reduce bucket 2", "wait", "optimizer"
  cat: TraceCategory;
  lane: TraceLane;
  ts: number; // start, ms on the shared clock
  dur: number; // ms
  bytes?: number; // data this worker sent in a collective
}

/** A shared clock: the same epoch in every Worker and worker_thread of this machine. */
export const clock = (): number => performance.timeOrigin + performance.now();

export class Tracer {
  enabled = false;
  private events: TraceEvent[] = [];

  /** Runs fn, recording it as a span when enabled (synchronous work only). */
  span<R>(name: string, cat: TraceCategory, fn: () => R): R {
    if (!this.enabled) return fn();
    const ts = clock();
    try {
      return fn();
    } finally {
      this.events.push({ name, cat, lane: 'main', ts, dur: clock() - ts });
    }
  }

  /** Records a span that started at ts and ends now. */
  record(name: string, cat: TraceCategory, lane: TraceLane, ts: number, bytes?: number): void {
    if (this.enabled) this.events.push({ name, cat, lane, ts, dur: clock() - ts, ...(bytes !== undefined ? { bytes } : {}) });
  }

  /** The events so far, handed over (and forgotten here). */
  take(): TraceEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }
}

/** A tracer that records nothing (the default everywhere). */
export const noTrace = new Tracer();

interface ChromeEvent {
  name: string;
  cat?: string;
  ph: 'X' | 'M';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  args?: Record<string, unknown>;
}

/**
 * Chrome trace-event JSON: one process per worker ("worker r"), threads "main" and "comm", complete
 * ("X") events in microseconds, bytes in args.
 */
export function toChromeTrace(perWorker: TraceEvent[][], meta: Record<string, unknown> = {}): { traceEvents: ChromeEvent[]; metadata: Record<string, unknown> } {
  const traceEvents: ChromeEvent[] = [];
  perWorker.forEach((events, rank) => {
    traceEvents.push({ name: 'process_name', ph: 'M', pid: rank, tid: 0, args: { name: `worker ${rank}` } });
    traceEvents.push({ name: 'thread_name', ph: 'M', pid: rank, tid: 0, args: { name: 'main' } });
    traceEvents.push({ name: 'thread_name', ph: 'M', pid: rank, tid: 1, args: { name: 'comm' } });
    for (const e of events) {
      traceEvents.push({
        name: e.name, cat: e.cat, ph: 'X', pid: rank, tid: e.lane === 'main' ? 0 : 1,
        ts: Math.round(e.ts * 1000), dur: Math.max(0, Math.round(e.dur * 1000)),
        ...(e.bytes !== undefined ? { args: { bytes: e.bytes } } : {}),
      });
    }
  });
  return { traceEvents, metadata: meta };
}
