// The lesson panel of the Compare view, after a comparison: "What does each kind of parallelism split,
// and what does it pay for it?" One short paragraph per strategy run, with that run's own numbers
// (memory per worker, bytes sent per step, time waiting, PP's bubble), each number a link to the part of
// the view that shows it: the results row (#compare-row-KEY), the cost model's row (#compare-pred-KEY),
// the timeline (#compare-timeline, which then shows that run). Pure DOM building: view.ts puts it in
// place and handles the links that select a run (data-select).

import { h } from '../dom';
import * as fmt from '../format';
import { buildParamTable } from '../../model/params';
import { bubbleFraction, stageBlocks } from '../../parallel/pp-layout';
import type { RunRecord } from './runner';
import type { RunSummary } from './summary';

export const LESSON_TITLE = 'What does each kind of parallelism split, and what does it pay for it?';

const pct = (x: number) => `${Math.round(100 * x)}%`;
const ms = (x: number) => (!Number.isFinite(x) ? '–' : `${x < 10 ? x.toFixed(1) : fmt.count(x)} ms`);

/** A number that links to where the view shows it; `select` also shows that run in the timeline. */
function link(text: string, href: string, select?: string): HTMLAnchorElement {
  return h('a', { href, class: 'cmp-lesson-link', ...(select ? { 'data-select': select } : {}) }, text);
}

/** One run's paragraph: what its workers split, and what they pay for it. */
export function lessonParagraph(run: RunRecord, s: RunSummary, all: { run: RunRecord; s: RunSummary }[]): HTMLElement {
  const key = run.key;
  const N = run.dist.workers;
  const G = run.cfg.batch_size * run.cfg.grad_accum * (s.sameBatch ? 1 : N); // the global batch
  const row = `#compare-row-${key}`;
  const pred = `#compare-pred-${key}`;
  const mem = link(fmt.bytes(s.memoryTotal), row);
  const sent = link(fmt.bytes(Math.round(s.bytesPerWorker)), pred);
  const waited = link(`${ms(s.waitMs)} (${pct(s.idleShare)} of its step)`, '#compare-timeline', key);
  const ddp = all.find((x) => x.run.key === 'ddp');
  const vsDdpMem = ddp && key !== 'ddp' && ddp.s.memoryTotal > 0 ? ` (DDP's: ${fmt.bytes(ddp.s.memoryTotal)})` : '';
  const vsDdpBytes = ddp && key !== 'ddp' && ddp.s.bytesPerWorker > 0 ? ` (${(s.bytesPerWorker / ddp.s.bytesPerWorker).toFixed(1)}× DDP's)` : '';
  const label = h('strong', {}, run.label);
  const p = (...parts: (Node | string)[]) => h('p', { class: 'cmp-lesson-item', 'data-strategy': key }, label, ...parts);
  const { n_head: H, n_layer: L } = run.cfg;
  switch (run.dist.strategy) {
    case 'single':
      return p(' splits nothing: one worker holds the whole model with its gradients and AdamW state, ', mem, `, and trains all ${G} sequences of the step itself. `,
        'It pays nothing in traffic (0 B sent) and never waits for anyone, but nobody helps it either: ', link(`${fmt.count(s.tokensPerSec)} tokens/s`, row), '.');
    case 'ddp':
      return p(` splits the batch: each of ${N} workers trains ${G / N} of the ${G} sequences with a whole replica of the model, `, mem, ' per worker. ',
        'It pays in gradients: every one is all-reduced each step, ', sent, ' sent per worker, and each worker waited ', waited, ' for the others and for data in flight.');
    case 'fsdp': {
      const how = run.dist.shard === 'grad_op' ? 'gathers each unit once for forward and keeps it until its backward' : 'gathers each unit before its forward and again before its backward';
      return p(` splits the batch and the model's state: each of ${N} workers trains ${G / N} sequences and keeps only 1/${N} of every unit (weights, gradients, AdamW), `, mem, ` per worker${vsDdpMem}. `,
        `It pays in traffic: it ${how} and reduce-scatters the gradients, `, sent, ` per worker per step${vsDdpBytes}, and waited `, waited, '.');
    }
    case 'tp':
      return p(` splits every layer: each of ${N} workers holds ${H / N} of the ${H} heads and 1/${N} of every MLP, `, mem, ` per worker${vsDdpMem}, and all ${N} work on the same ${G} sequences. `,
        `It pays with activations: ${4 * L * run.cfg.grad_accum} all-reduces of a (B, T, C) activation per step (4 per block), `, sent,
        ` per worker${vsDdpBytes}: traffic that grows with the batch and the depth, not the number of parameters; each worker waited `, waited, '.');
    case 'pp': {
      const M = run.dist.microbatches ?? 4;
      const sizes = Array.from({ length: N }, (_, r) => stageBlocks(L, N, r)).map(([lo, hi]) => hi - lo);
      const blocks = sizes.every((b) => b === sizes[0]) ? `${sizes[0]} block${sizes[0] > 1 ? 's' : ''} each` : `${sizes.join(', ')} blocks`;
      const gpipe = run.dist.schedule === 'gpipe';
      const other = all.find((x) => x.run.dist.strategy === 'pp' && x.run.dist.schedule !== run.dist.schedule);
      const held = gpipe ? `all ${M} micro-batches' activations at once` : `the activations of at most ${Math.min(N, M)} micro-batches in flight`;
      const compare = other ? ` (${other.run.label}'s: ${fmt.bytes(other.s.memory.activations_peak)} of activations against ${fmt.bytes(s.memory.activations_peak)} here)` : '';
      const predicted = bubbleFraction(N, M);
      return p(` splits the model by depth: ${N} stages of ${blocks}, `, mem, ` for the worker that needs the most (it holds ${held})${compare}. `,
        'It sends the least of the model-parallel ways: only the activations crossing a stage boundary and their gradients, ', sent,
        ` per worker per step${vsDdpBytes}. It pays in time, the bubble: a stage idles while the pipe fills and drains, `,
        link(`${pct(s.idleShare)} of the schedule measured`, '#compare-timeline', key),
        ` against (N−1)/(M+N−1) = ${N - 1}/${M + N - 1} = ${pct(predicted)} predicted for ${M} micro-batches.`);
    }
  }
}

/** The panel's content for the finished runs (null before any). */
export function lesson(runs: RunRecord[], summaries: RunSummary[]): HTMLElement[] {
  if (!runs.length) return [h('p', { class: 'muted cmp-empty' }, 'After a comparison, one paragraph per strategy: what it split, and what it paid for it, in this run\'s numbers.')];
  const all = runs.map((run, i) => ({ run, s: summaries[i] }));
  const first = runs[0];
  const G = first.cfg.batch_size * first.cfg.grad_accum * (summaries[0].sameBatch ? 1 : first.dist.workers);
  const P = buildParamTable(first.cfg).total;
  const intro = h('p', { class: 'muted' },
    `The same model (${fmt.compact(P)} parameters), the same samples and the same global batch (${G} sequences per step) under each strategy. ` +
    'Data parallelism splits the batch, model parallelism splits the model; every split saves memory or time somewhere and pays for it in bytes sent or time spent waiting. ' +
    'Each number links to where the view shows it.');
  return [intro, ...all.map(({ run, s }) => lessonParagraph(run, s, all))];
}

