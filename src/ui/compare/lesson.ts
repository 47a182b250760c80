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
import { bytesRatio, prefetchEffect, type RunSummary } from './summary';
import { atRest } from '../memory';
import { makeConfig } from '../../model/config';
import { crossover, WHATIF_MAX_WORKERS } from './whatif';

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
      const how = run.dist.shard === 'grad_op' ? 'gathers each unit once for forward and keeps it until its backward'
        : `gathers each unit before its forward and again before its backward (${run.dist.prefetch === false ? 'without prefetch: each gather is waited for' : 'the next one prefetched under this one\'s backward'})`;
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
    case 'diloco': {
      const inner = run.dist.innerSteps ?? 20;
      return p(` splits the batch as DDP does, but each of ${N} workers trains its own whole copy, `, mem, `, for ${inner} steps before the copies average what they learned: `,
        sent, ` per worker per step on average${vsDdpBytes}, and `, waited, ' waiting.');
    }
  }
}

/** The five questions a class should answer after a comparison (data-question on each). */
export const LESSON_QUESTIONS = [
  { id: 'memory', q: 'Why does FSDP hold less memory than DDP?' },
  { id: 'bytes', q: 'Why does FSDP move more bytes?' },
  { id: 'prefetch', q: 'What does prefetch hide?' },
  { id: 'fits', q: 'When is FSDP the only option that fits?' },
  { id: 'time', q: 'Where does a step\'s time go?' },
] as const;

/** The five questions, each answered in two sentences with this comparison's numbers, linked to where the view shows them. */
export function lessonQuestions(summaries: RunSummary[]): HTMLElement {
  const by = (key: string) => summaries.find((s) => s.key === key);
  const ddp = by('ddp');
  const fsdp = by('fsdp-full') ?? by('fsdp-noprefetch') ?? by('fsdp-grad_op');
  const need = (what: string) => h('span', { class: 'muted' }, `Add ${what} to the comparison to answer it with measured numbers.`);
  const answers: Record<(typeof LESSON_QUESTIONS)[number]['id'], (Node | string)[]> = {
    memory: ddp && fsdp ? [
      `Each FSDP worker keeps only 1/${fsdp.workers} of the weights, gradients and AdamW state (and a neighbour's part, its buddy copy): `,
      link(`${fmt.bytes(atRest(fsdp.memory))} at rest`, `#compare-row-${fsdp.key}`), ' against DDP\'s ', link(fmt.bytes(atRest(ddp.memory)), '#compare-row-ddp'),
      `, ${(atRest(fsdp.memory) / Math.max(1, atRest(ddp.memory))).toFixed(2)}× measured on the same basis (what each really allocates). `,
      `What it does not shard, the activations and the blocks it gathers for a moment, keeps its total at ${fmt.bytes(fsdp.memoryTotal)} against ${fmt.bytes(ddp.memoryTotal)}.`,
    ] : [need('DDP and FSDP full')],
    bytes: (() => {
      const r = bytesRatio(summaries);
      return r ? [
        `To compute with a block it does not hold, FSDP full all-gathers it for forward and again for backward, and reduce-scatters its gradients: 3(N−1)/N × S per worker against DDP's one all-reduce, 2(N−1)/N × S, 1.5×. `,
        'Here it sent ', link(`${r.ratio.toFixed(2)}× DDP's bytes`, '#compare-bytes-ratio'), ` (${fmt.bytes(Math.round(r.fsdp.bytesPerWorker))} against ${fmt.bytes(Math.round(r.ddp.bytesPerWorker))} per worker per step), a little under 1.5 because the root unit is gathered once.`,
      ] : [need('DDP and FSDP full')];
    })(),
    prefetch: (() => {
      const p = prefetchEffect(summaries);
      return p ? [
        'Prefetch issues the all-gather a block\'s backward needs while the block after it is still computing, so the bytes travel under compute instead of the worker stopping to wait for them. ',
        'Here FSDP full took ', link(`${p.on.stepMs.toFixed(1)} ms per step with it and ${p.off.stepMs.toFixed(1)} ms without`, '#compare-prefetch', 'fsdp-full'),
        ` (waiting ${p.on.waitMs.toFixed(1)} against ${p.off.waitMs.toFixed(1)} ms); on a busy two-core computer the difference is small, since the other worker, not the link, is what a worker mostly waits for.`,
      ] : [need('FSDP full and "FSDP full, no prefetch"')];
    })(),
    fits: (() => {
      const cfg = makeConfig('gpt2');
      const budget = 2.7 * 2 ** 30;
      const c = crossover(cfg, { model: 'gpt2', workers: 8, linkScale: 1, budget, transport: 'ring', bucketMb: 25 }, WHATIF_MAX_WORKERS);
      return [
        `When a whole replica does not fit one worker: DDP needs the same ${fmt.bytes(c.ddpNeed)} per worker for GPT-2 124M however many workers there are, while FSDP's share shrinks with every worker. `,
        'With ', link(`${fmt.bytes(budget)} per worker`, '#compare-crossover'), `, FSDP full fits from ${c.fsdpFrom ?? 'no number of'} workers on and neither DDP nor TP does: try it in the what-if below.`,
      ];
    })(),
    time: (() => {
      const parallel = summaries.filter((s) => s.workers > 1);
      const worst = parallel.reduce<RunSummary | null>((a, b) => (!a || b.waitMs + b.commMs > a.waitMs + a.commMs ? b : a), null);
      if (!worst) return [need('a strategy with 2 or more workers')];
      const data = Math.max(0, worst.waitMs - worst.stragglerMs);
      return [
        `A worker's step is compute, communication on its own thread, and waiting: ${worst.label}'s `, link(`${worst.stepMs.toFixed(1)} ms`, `#compare-row-${worst.key}`),
        ` split into ${worst.computeMs.toFixed(1)} ms compute, ${worst.commMs.toFixed(1)} ms communication and ${worst.waitMs.toFixed(1)} ms waiting. `,
        'Of the waiting, ', link(`${worst.stragglerMs.toFixed(1)} ms was for a slower worker and ${data.toFixed(1)} ms for data in flight`, '#compare-timeline', worst.key),
        `: with ${worst.workers} workers sharing this computer's cores, the other worker, not the link, is what a worker mostly waits for.`,
      ];
    })(),
  };
  return h('div', { class: 'cmp-lesson-questions', id: 'compare-lesson-questions' },
    ...LESSON_QUESTIONS.map(({ id, q }) => h('div', { class: 'cmp-lesson-qa', 'data-question': id },
      h('p', { class: 'cmp-lesson-q' }, q), h('p', { class: 'cmp-lesson-a' }, ...answers[id]))));
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
  return [intro, lessonQuestions(summaries), h('h3', { class: 'cmp-h3' }, 'What each strategy split, and what it paid'), ...all.map(({ run, s }) => lessonParagraph(run, s, all))];
}

