// Trace events from real worker_threads: each worker's main lane tiles its step (compute + wait spans
// add up to the step time), collectives appear on the comm lane with their bytes, and the Chrome
// trace export has one process per worker.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeConfig } from '../src/model/config';
import { Coordinator, type DistStepStats } from '../src/parallel/coordinator';
import { spawnNodeWorker } from '../src/parallel/node-spawn';
import { toChromeTrace, type TraceEvent } from '../src/util/trace';
import { shakespeare } from './helpers';

const cfg = makeConfig('tiny', { backend: 'wasm', vocab_size: 65, batch_size: 4 });

describe.each(['ddp', 'fsdp'] as const)('trace events, %s', (strategy) => {
  let c: Coordinator;
  const steps: DistStepStats[] = [];

  beforeAll(async () => {
    c = await Coordinator.create(cfg, shakespeare.slice(0, 100_000), { strategy, workers: 2, transport: 'ring', bucketMb: 0.05, shard: 'full' }, spawnNodeWorker);
    await c.trainStep(); // warm-up, untraced
    await c.setTracing(true);
    for (let i = 0; i < 3; i++) steps.push(await c.trainStep());
    await c.setTracing(false);
    steps.push(await c.trainStep());
  }, 120_000);
  afterAll(() => c?.dispose());

  // The best of 3 traced steps: on a machine busy with other tests, a thread descheduled between two
  // spans shows as a gap in one step, but spans that miss real work would miss it in every step.
  it("tile each worker's step: main-lane spans sum to the step time within 10% (best of 3 steps)", () => {
    for (let rank = 0; rank < 2; rank++) {
      const ratios = steps.slice(0, 3).map((s) => {
        const r = s.perRank[rank];
        const main = r.trace!.filter((e) => e.lane === 'main');
        // Work done inside a wait (a gathered unit unpacked as it arrives) nests in it: count top-level spans.
        const inside = (e: TraceEvent, o: TraceEvent) => o !== e && o.ts <= e.ts && e.ts + e.dur <= o.ts + o.dur;
        const top = main.filter((e) => !main.some((o) => inside(e, o)));
        const names = main.map((e) => e.name);
        for (const n of ['forward root', 'forward h.0', 'forward h.1', 'head and loss', 'backward h.1', 'backward h.0', 'backward root', 'optimizer']) expect(names).toContain(n);
        return top.reduce((t, e) => t + e.dur, 0) / r.ms;
      });
      const best = Math.min(...ratios.map((x) => Math.abs(x - 1)));
      expect(best, `rank ${rank}: spans / step = ${ratios.map((x) => x.toFixed(3)).join(', ')}`).toBeLessThan(0.1);
    }
  });

  it('put every collective on the comm lane with the bytes it sent', () => {
    const comm = steps[0].perRank[0].trace!.filter((e) => e.lane === 'comm');
    expect(comm.map((e) => e.name)).toEqual(expect.arrayContaining(strategy === 'ddp' ? ['all-reduce'] : ['all-gather', 'reduce-scatter', 'all-reduce']));
    const bytes = comm.reduce((t, e) => t + (e.bytes ?? 0), 0);
    expect(bytes).toBe(steps[0].perRank[0].bytesSent);
  });

  it('stop when tracing is off', () => {
    expect(steps[3].perRank[0].trace).toBeUndefined();
  });

  it('export as Chrome trace JSON: one process per worker, complete events in microseconds', () => {
    const json = JSON.parse(JSON.stringify(toChromeTrace(steps[0].perRank.map((r) => r.trace!))));
    const procs = json.traceEvents.filter((e: { ph: string; name: string }) => e.ph === 'M' && e.name === 'process_name');
    expect(procs.map((e: { pid: number; args: { name: string } }) => [e.pid, e.args.name])).toEqual([[0, 'worker 0'], [1, 'worker 1']]);
    const x = json.traceEvents.filter((e: { ph: string }) => e.ph === 'X');
    expect(x.length).toBe(steps[0].perRank.reduce((n, r) => n + r.trace!.length, 0));
    expect(x.every((e: { ts: number; dur: number }) => Number.isInteger(e.ts) && e.dur >= 0)).toBe(true);
  });
});
