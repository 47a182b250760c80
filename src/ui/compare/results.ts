// The results of a comparison as DOM: the loss verdict, the table (tokens/s, the step time split as a
// stacked bar, bytes per worker, memory per worker by kind, the losses), and its legends. Numbers are
// also data attributes of each row (data-tokens-per-s, data-step-ms, data-bytes, data-memory,
// data-loss-diff, data-first-loss, data-recoveries) for tests; each row's id is compare-row-KEY (the
// lesson panel links to it). A run that recovered from a failed worker says so under
// its name ("1 recovery", the recoveries in its title).

import { h } from '../dom';
import * as fmt from '../format';
import { STRATEGY_SWATCH } from './charts';
import type { RunRecord } from './runner';
import { FAULT_LABELS, MODEL_PARALLEL, type CompareFault, type StrategyKey } from './settings';
import { describeRecovery } from '../faults-panel';
import { COINCIDE, lossVerdict, reference, sameMathExempt, type RunSummary } from './summary';
import { MEMORY_KINDS } from '../memory';

/** The Workers panel's colours for each kind (style.css --mem-*), so both views agree. */
const memColor = (k: (typeof MEMORY_KINDS)[number]) => `var(--mem-${k.data})`;

/** The verdict on the loss curves, into `el` (hidden until two runs can be compared). */
export function renderVerdict(el: HTMLElement, summaries: RunSummary[], ref: RunRecord | undefined): void {
  const v = lossVerdict(summaries);
  el.hidden = !v;
  if (!v || !ref) return;
  el.dataset.coincide = String(v.coincide);
  el.dataset.maxDiff = String(v.max);
  const diff = v.max === 0 ? '0' : v.max.toExponential(0);
  if (v.coincide) {
    el.replaceChildren(h('strong', {}, `✓ The loss curves coincide (max difference ${diff})`),
      `: every strategy saw the same samples and did the same math as ${ref.label}; only the order of float sums differs.`);
  } else {
    const dropout = ref.cfg.dropout > 0 ? ` This setup has dropout ${ref.cfg.dropout}: each worker draws its own dropout masks, so the runs do differ; set dropout to 0 to compare the math exactly.` : ' Same samples and the same math should agree within float rounding: this is a bug worth reporting.';
    el.replaceChildren(h('strong', {}, `⚠ The loss curves do not coincide: ${v.worst!.label} differs from ${ref.label} by ${Number.isNaN(v.max) ? 'NaN' : v.max.toPrecision(2)} at step ${v.worst!.lossDiff!.step}`),
      ` (more than ${COINCIDE}).${dropout}`);
  }
}

/** The results table: one row per run; clicking a row selects it (for the timeline). */
export function resultsTable(runs: RunRecord[], S: RunSummary[], selected: StrategyKey | null, empty: string, onSelect: (key: StrategyKey) => void, fault?: CompareFault): HTMLElement {
  if (!S.length) return h('p', { class: 'muted cmp-empty' }, empty);
  const maxMs = Math.max(...S.map((s) => s.computeMs + s.commMs + s.waitMs));
  const maxMem = Math.max(...S.map((s) => s.memoryTotal));
  const ref = S.find((s) => s.key === 'single');
  const head = h('thead', {}, h('tr', {}, ...[
    'strategy', 'tokens / s', 'step time: compute · communication (CPU) · waiting', 'sent / step / worker', 'memory / worker', 'loss: first → last', `max |Δ loss| vs ${reference(runs)?.label}`,
  ].map((t, i) => h('th', { class: i === 2 || i === 4 ? 'wide' : '' }, t))));
  const rows = S.map((s, i) => {
    const run = runs[i];
    // waiting, split: for data still in flight, and for a slower worker (RankStepStats.stragglerMs)
    const inFlight = Math.max(0, s.waitMs - s.stragglerMs);
    const split = [
      h('span', { class: 'seg compute', style: `flex-grow:${s.computeMs}` }),
      h('span', { class: 'seg comm', style: `flex-grow:${s.commMs}` }),
      h('span', { class: 'seg wait-data', style: `flex-grow:${inFlight}` }),
      h('span', { class: 'seg wait', style: `flex-grow:${s.stragglerMs}` }),
    ];
    const timeBar = h('div', { class: 'cmp-bar-cell' },
      h('div', { class: 'split-track', role: 'img', 'aria-label': `compute ${s.computeMs.toFixed(1)} ms, communication ${s.commMs.toFixed(1)} ms, waiting ${s.waitMs.toFixed(1)} ms` },
        h('div', { class: 'split-fill', style: `width:${((100 * (s.computeMs + s.commMs + s.waitMs)) / maxMs).toFixed(1)}%` }, ...split)),
      h('span', { class: 'cmp-bar-value', title: `median of ${s.timedSteps} steps; the worker’s own time is compute ${s.computeMs.toFixed(1)} + communication ${s.commMs.toFixed(1)} + waiting ${s.waitMs.toFixed(1)} ms (${s.stragglerMs.toFixed(1)} of it for a slower worker, the rest for data in flight), the rest is messages to and from this page` }, ms(s.stepMs)),
      h('span', { class: 'cmp-bar-detail' }, `${ms(s.computeMs)} · ${ms(s.commMs)} · ${ms(s.waitMs)}`),
      ...(s.workers > 1 && s.waitMs > 0 ? [h('span', { class: 'cmp-sub-value cmp-wait-split', 'data-wait-data': String(inFlight), 'data-wait-slower': String(s.stragglerMs) },
        `waiting: ${ms(inFlight)} for data in flight, ${ms(s.stragglerMs)} for a slower worker`)] : []));
    const memSegs = MEMORY_KINDS.map((k) => h('span', { class: 'seg', style: `--c:${memColor(k)};flex-grow:${s.memory[k.key]}`, title: `${k.label}: ${fmt.bytes(s.memory[k.key])}` }));
    const memBar = h('div', { class: 'cmp-bar-cell' },
      h('div', { class: 'split-track', role: 'img', 'aria-label': MEMORY_KINDS.map((k) => `${k.label} ${fmt.bytes(s.memory[k.key])}`).join(', ') },
        h('div', { class: 'split-fill', style: `width:${((100 * s.memoryTotal) / maxMem).toFixed(1)}%` }, ...memSegs)),
      h('span', { class: 'cmp-bar-value' }, fmt.bytes(s.memoryTotal)));
    const speedup = ref && ref !== s ? h('span', { class: 'cmp-sub-value' }, `×${(s.tokensPerSec / ref.tokensPerSec).toFixed(2)} vs single`) : '';
    const n = run.recoveries?.length ?? 0;
    const recovered = n ? h('span', { class: 'cmp-recovered', title: run.recoveries.map(describeRecovery).join('\n') }, `⟲ ${n} recover${n > 1 ? 'ies' : 'y'}`)
      : fault && s.workers < 2 ? h('span', { class: 'cmp-recovered none', title: 'One worker has no other copy of the model to recover from: the fault is made only on strategies with 2 or more workers.' }, 'not broken: one worker')
        : fault && MODEL_PARALLEL.includes(run.key) ? h('span', { class: 'cmp-recovered none', title: 'TP and PP keep no copy of a worker\'s part of the model on another worker: a lost worker can only come back from a checkpoint, so the Compare view does not break them.' }, 'not broken: no copy of its part')
        : fault ? h('span', { class: 'cmp-recovered none', title: `${FAULT_LABELS[fault.kind]} at step ${fault.step} was asked for, and no recovery was needed` }, 'no recovery') : '';
    const diff = s.lossDiff ? (s.lossDiff.max === 0 ? '0' : s.lossDiff.max.toExponential(1)) : 'reference';
    const row = h('tr', {
      id: `compare-row-${s.key}`, 'data-strategy': s.key, 'data-tokens-per-s': String(s.tokensPerSec), 'data-step-ms': String(s.stepMs), 'data-bytes': String(s.bytesPerWorker),
      'data-memory': String(s.memoryTotal), 'data-loss-diff': String(s.lossDiff?.max ?? ''), 'data-first-loss': String(s.losses[0] ?? ''), 'data-recoveries': String(n), class: s.key === selected ? 'selected' : '',
      title: 'Show this run in the timeline',
    },
    h('th', { scope: 'row' }, h('i', { class: 'swatch', style: `--c:${STRATEGY_SWATCH[run.key]}` }), ' ', h('strong', {}, s.label),
      h('span', { class: 'cmp-sub-value' }, s.workers > 1 && s.sameBatch
        ? `${s.workers} workers, all on the same ${s.batchPerWorker} seqs · ${s.transport}`
        : `${s.workers} worker${s.workers > 1 ? 's' : ''} × ${s.batchPerWorker} seqs${s.workers > 1 ? ` · ${s.transport}` : ''}${run.dist.strategy === 'diloco' ? ` · H = ${run.dist.innerSteps ?? 20}${run.dist.outerCompress && run.dist.outerCompress !== 'none' ? ` · ${run.dist.outerCompress}` : ''}` : ''}`), recovered),
    h('td', { class: 'num big' }, fmt.count(s.tokensPerSec), speedup),
    h('td', {}, timeBar),
    h('td', { class: 'num' }, s.workers > 1 ? fmt.bytes(Math.round(s.bytesPerWorker)) : '0 B', h('span', { class: 'cmp-sub-value' }, s.workers > 1 ? `${fmt.bytes(Math.round(s.bytesPerWorker * s.workers))} all workers` : 'nothing to send')),
    h('td', {}, memBar),
    h('td', { class: 'num' }, `${fmt.loss(s.losses[0])} → ${fmt.loss(s.losses.at(-1))}`),
    sameMathExempt(s.key)
      ? h('td', { class: 'num', title: 'Not expected to coincide: each worker trains its own copy for H steps before the copies are averaged (compare it with DDP against tokens and wall time below)' }, diff, h('span', { class: 'cmp-sub-value' }, 'other math: expected'))
      : h('td', { class: `num ${s.lossDiff && !(s.lossDiff.max < COINCIDE) ? 'bad' : ''}` }, diff));
    row.addEventListener('click', () => onSelect(run.key));
    return row;
  });
  return h('table', { class: 'cmp-table cmp-results', id: 'compare-results' }, head, h('tbody', {}, ...rows));
}


/** The colours of the table's bars, and how its figures are made. */
export function legends(): HTMLElement {
  return h('div', { class: 'cmp-legends' },
    h('div', { class: 'split-legend' }, h('span', { class: 'cmp-legend-title' }, 'step time'),
      ...(['compute', 'comm', 'wait-data', 'wait'] as const).map((k) => h('span', { class: `split-value ${k}` }, h('i', { class: 'swatch' }),
        { compute: 'compute', comm: 'communication (CPU)', 'wait-data': 'waiting: data in flight', wait: 'waiting: a slower worker' }[k]))),
    h('p', { class: 'muted cmp-foot', id: 'compare-comm-explained' },
      'Communication (CPU): the time a worker’s own thread spends inside the collectives (copying gradients into buffers, adding what arrives, posting messages): the cost of talking that no other work can hide on one thread. ' +
      'Waiting is time blocked on the others: for data still on its way, or, the larger part on a machine with few cores, for a slower worker to catch up (the worker that waited least waited only for data).'),
    h('div', { class: 'split-legend' }, h('span', { class: 'cmp-legend-title' }, 'memory'),
      ...MEMORY_KINDS.map((k) => h('span', { class: 'split-value', title: k.title }, h('i', { class: 'swatch', style: `--c:${memColor(k)}` }), k.label))),
    h('p', { class: 'muted cmp-foot' }, 'Tokens/s and times: median of the steps after the warm-up, not counting the traced ones nor a step trained again after a recovery. Memory: what the worker that needs the most really allocates, by kind, from the last step (the same figure the cost model’s table shows as measured).'),
  );
}

function ms(x: number): string {
  return !Number.isFinite(x) ? '–' : `${x < 10 ? x.toFixed(1) : fmt.count(x)} ms`;
}
