// The cost model panel: Calibrate (this machine's FLOP/s and the transport's alpha and beta), the
// predictions of src/parallel/costmodel.ts beside the measured runs, the formulas with the numbers plugged
// in, and "what if": more workers, a bigger model, a slower link, a memory budget per worker; which
// strategies fit, from how many workers FSDP, TP or PP does when a replica does not, and when each is
// the better choice (too big for one worker: FSDP, TP or PP; a slow link: PP moves least). For PP the
// bubble, predicted, sits beside the measured idle share. "Classroom Wi-Fi" replaces the measured link by
// one medium of 20 MB/s that the whole class shares (beta = 20 MB/s / N): the table predicts every strategy
// over it, and a paragraph says from how many students per-step DDP stops paying (more than half of each
// step waiting on the Wi-Fi) while DiLoCo still does, and for which model sizes.

import costmodelSource from '../../parallel/costmodel.ts?raw';
import { PRESET_NAMES, type RunConfig } from '../../model/config';
import { buildParamTable } from '../../model/params';
import type { TransportKind } from '../../parallel/collectives';
import type { OuterCompress } from '../../parallel/costmodel';
import { h } from '../dom';
import * as fmt from '../format';
import { MemoryChart, STRATEGY_SWATCH } from './charts';
import type { RunRecord } from './runner';
import type { RunSummary } from './summary';
import { STRATEGY_HELP, type StrategyKey } from './settings';
import {
  BETTER_WHEN, CLASS_MAX, WHATIF_MAX_WORKERS, advice, classroom, crossover, explain, memoryCurves, predictRun, presetLabel, runDrift, whatIfConfig, whatIfRows,
  type Classroom, type Crossover, type Measured, type WhatIf, type WhatIfModel,
} from './whatif';

/** The formulas as costmodel.ts's header comment states them. */
function formulas(): string {
  const lines: string[] = [];
  for (const line of costmodelSource.split('\n')) {
    if (!line.startsWith('//')) break;
    lines.push(line.replace(/^\/\/ ?/, ''));
  }
  return lines.join('\n').trim();
}

const ms = (x: number) => (!Number.isFinite(x) ? '–'
  : x >= 60_000 ? fmt.duration(x)
    : x >= 10_000 ? `${(x / 1000).toFixed(1)} s`
      : `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : fmt.count(x)} ms`);
const rate = (x: number) => (!Number.isFinite(x) ? '–' : fmt.count(x));
const gap = (pred: number, meas: number) => {
  if (!(pred > 0) || !Number.isFinite(meas)) return '';
  const g = (meas / pred - 1) * 100;
  return `${g >= 0 ? '+' : '−'}${Math.abs(g).toFixed(0)}%`;
};

export interface CostPanelHooks {
  calibrate(): void;
}

export class CostPanel {
  private readonly status = h('p', { class: 'cmp-cal-status', id: 'compare-calibration' });
  private readonly calibrateButton = h('button', { type: 'button', id: 'compare-calibrate' }, 'Calibrate');
  private readonly table = h('div', { class: 'cmp-table-wrap' });
  private readonly explained = h('div', { class: 'cmp-explained' });
  private readonly whatTable = h('div', { class: 'cmp-table-wrap' });
  private readonly verdict = h('p', { class: 'cmp-crossover', id: 'compare-crossover' });
  private readonly advice = h('ul', { class: 'cmp-advice', id: 'compare-advice' });
  private readonly wifiVerdict = h('p', { class: 'cmp-crossover', id: 'compare-wifi' });
  private readonly chartBox = h('div', { class: 'cmp-chart' });
  private readonly chart: MemoryChart;
  private readonly inputs = {
    model: h('select', { id: 'whatif-model' }),
    workers: h('input', { id: 'whatif-workers', type: 'range', min: 1, max: WHATIF_MAX_WORKERS, step: 1, value: 8 }),
    link: h('input', { id: 'whatif-link', type: 'range', min: -3, max: 0, step: 0.25, value: 0 }),
    budget: h('input', { id: 'whatif-budget', type: 'text', inputmode: 'decimal', value: '4' }),
    wifi: h('input', { id: 'whatif-wifi', type: 'checkbox' }),
  };
  private readonly outputs = { workers: h('output', {}), link: h('output', {}) };

  private runs: RunRecord[] = [];
  private summaries: RunSummary[] = [];
  private measured: Measured | null = null;
  private setup: RunConfig | null = null;
  private transport: TransportKind = 'ring';
  private bucketMb = 25;
  private microbatches: number | undefined;
  private diloco: { innerSteps?: number; outerCompress?: OuterCompress } = {};
  private setupKey = '';

  constructor(root: HTMLElement, hooks: CostPanelHooks) {
    this.calibrateButton.addEventListener('click', () => hooks.calibrate());
    const field = (label: string, input: HTMLElement, out?: HTMLElement) =>
      h('label', { class: 'field' }, h('span', { class: 'field-name' }, label, ...(out ? [' ', out] : [])), input);
    const controls = h('div', { class: 'cmp-whatif-controls' },
      field('model', this.inputs.model),
      field('workers', this.inputs.workers, this.outputs.workers),
      field('link speed', this.inputs.link, this.outputs.link),
      field('memory budget per worker (GB)', this.inputs.budget),
      h('label', { class: 'field cmp-wifi-field', title: 'One Wi-Fi of 20 MB/s for the whole class: every worker (a laptop of its own) gets 20 MB/s ÷ N, and all their traffic shares it' },
        h('span', { class: 'field-name' }, 'classroom Wi-Fi'), h('span', {}, this.inputs.wifi, ' 20 MB/s shared by the class')),
    );
    for (const el of Object.values(this.inputs)) el.addEventListener('input', () => this.drawWhatIf());
    this.chart = new MemoryChart(this.chartBox, 300);
    root.append(
      h('div', { class: 'card-head' },
        h('div', {}, h('h2', { id: 'compare-cost-title' }, 'Cost model: predicted beside measured'),
          h('p', { class: 'muted' }, 'Calibrate measures this computer: training FLOP/s of one worker, and the latency (α) and bandwidth (β) of the transport.')),
        this.calibrateButton),
      this.status,
      this.table,
      h('details', { class: 'cmp-formulas' }, h('summary', {}, 'How the predictions are made: the formulas, with the numbers plugged in'),
        h('pre', { class: 'cmp-pre' }, formulas()), this.explained),
      h('h3', { class: 'cmp-h3' }, 'What if?'),
      h('p', { class: 'muted cmp-sub' }, 'More workers, a bigger model, a slower link, less memory: the cost model predicts every strategy (single trains the same global batch alone).'),
      controls, this.whatTable, this.verdict,
      h('h4', { class: 'cmp-h4' }, 'Classroom Wi-Fi: per-step DDP or DiLoCo?'), this.wifiVerdict,
      h('h4', { class: 'cmp-h4' }, 'When is each the better choice?'), this.advice, this.chartBox,
    );
    this.drawModels();
    this.draw();
  }

  setBusy(busy: boolean, status?: string): void {
    this.calibrateButton.disabled = busy;
    if (status) this.status.textContent = status;
    else this.drawStatus();
  }

  setRuns(runs: RunRecord[], summaries: RunSummary[]): void {
    this.runs = runs;
    this.summaries = summaries;
    this.draw();
  }

  setMeasured(m: Measured | null): void {
    this.measured = m;
    this.draw();
  }

  /** The page's setup (the what-if's "this setup"), the transport, bucket size and PP's micro-batches compared. */
  setSetup(cfg: RunConfig | null, transport: TransportKind, bucketMb: number, microbatches?: number, diloco: { innerSteps?: number; outerCompress?: OuterCompress } = {}): void {
    const key = JSON.stringify([cfg, transport, bucketMb, microbatches, diloco]);
    if (key === this.setupKey) return; // main.ts calls this on every render
    this.setupKey = key;
    this.setup = cfg;
    this.transport = transport;
    this.bucketMb = bucketMb;
    this.microbatches = microbatches;
    this.diloco = diloco;
    this.drawModels();
    this.drawWhatIf();
  }

  private draw(): void {
    this.drawStatus();
    this.drawTable();
    this.drawWhatIf();
  }

  private drawStatus(): void {
    const m = this.measured;
    if (!m) {
      this.status.textContent = 'Not calibrated yet: run a comparison (it calibrates itself), or press Calibrate.';
      this.status.dataset.calibrated = 'false';
      return;
    }
    const l = m.link;
    const samples = l.samples.map((s) => `${fmt.bytes(s.bytes)}: ${ms(s.seconds * 1000)}`).join(', ');
    this.status.replaceChildren(
      h('strong', {}, `${(m.flops / 1e9).toFixed(2)} GFLOP/s`), ` per worker with a core to itself (${m.flopsFrom}${m.cores ? `; ${m.cores} cores` : ''}) · `,
      h('strong', {}, `${l.alpha > 0 ? `α = ${(l.alpha * 1e6).toFixed(0)} µs` : 'α ≈ 0 µs'}, β = ${(l.beta / 1e9).toFixed(2)} GB/s`),
      ` for the ${l.transport} all-reduce on ${l.workers} workers (${samples}; medians of ${l.fit?.rounds ?? 1} rounds, smallest size first)${l.alpha > 0 ? '' : '; the latency is too small to see next to the bandwidth at these sizes'}` +
        (l.fit ? `; the fit is off by ${(100 * l.fit.error).toFixed(0)}% (root mean square)${l.fit.ordered ? '' : ', and a larger size ran faster than a smaller one: the computer was busy, press Calibrate again'}` : '') +
        (l.stepOverheadMs !== undefined ? `; the coordinator’s round trips ${l.stepOverheadMs.toFixed(1)} ms per step` : '') + '.',
    );
    this.status.dataset.calibrated = 'true';
  }

  private drawTable(): void {
    const m = this.measured;
    if (!this.runs.length) {
      this.table.replaceChildren(h('p', { class: 'muted' }, 'Run a comparison to see the predictions beside the measurements.'));
      this.explained.replaceChildren();
      return;
    }
    const head = h('thead', {},
      h('tr', {}, h('th', { rowspan: 2 }, 'strategy'), ...['step time', 'tokens / s', 'sent / step / worker', 'memory / worker', 'idle (PP: the bubble)'].map((t) => h('th', { colspan: 2, class: 'group' }, t))),
      h('tr', {}, ...Array.from({ length: 5 }, () => [h('th', { class: 'pred' }, 'predicted'), h('th', {}, 'measured')]).flat()),
    );
    const rows = this.runs.map((run, i) => {
      const s = this.summaries[i];
      const p = predictRun(run, m);
      // PP's stages send different amounts: the mean, as measured (the busiest is p.bytes_per_rank)
      const predBytes = p.bytes_by_rank ? p.bytes_by_rank.reduce((x, y) => x + y, 0) / p.bytes_by_rank.length : p.bytes_per_rank;
      const measuredMem = s.memoryTotal; // the same figure as the results table: everything the worker allocates
      const d = m ? runDrift(run, p.step_ms, s.stepMs) : null;
      const cell = (pred: string, meas: string, g: string, title?: string) => [
        h('td', { class: 'pred num' }, pred),
        h('td', { class: 'num', title }, meas, g ? h('span', { class: 'cmp-gap' }, ` ${g}`) : ''),
      ];
      const bubble = p.bubble !== undefined;
      return h('tr', {
        id: `compare-pred-${run.key}`, 'data-strategy': run.key, 'data-predicted-ms': String(m ? p.step_ms : ''), 'data-measured-ms': String(s.stepMs),
        'data-predicted-bytes': String(predBytes), 'data-predicted-memory': String(p.memory.total),
        'data-predicted-bubble': bubble ? String(p.bubble) : '', 'data-measured-idle': String(s.idleShare),
        'data-measured-memory': String(measuredMem), 'data-drift': d ? String(d.drifted) : '', 'data-load-changed': d ? String(d.loadChanged) : '',
        class: d?.drifted ? 'cmp-drifted' : '',
      },
        h('th', { scope: 'row' }, h('i', { class: 'swatch', style: `--c:${STRATEGY_SWATCH[run.key]}` }), ` ${run.label}`),
        ...cell(m ? ms(p.step_ms) : '–', ms(s.stepMs), m ? gap(p.step_ms, s.stepMs) + (d?.drifted ? ' ⚠' : '') : '', d?.note ?? undefined),
        ...cell(m ? rate(p.tokens_per_s) : '–', rate(s.tokensPerSec), m ? gap(p.tokens_per_s, s.tokensPerSec) : ''),
        ...cell(fmt.bytes(Math.round(predBytes)), fmt.bytes(Math.round(s.bytesPerWorker)), '', p.bytes_by_rank ? `mean over the stages; by stage, predicted: ${p.bytes_by_rank.map((x) => fmt.bytes(Math.round(x))).join(', ')}` : undefined),
        ...cell(fmt.bytes(Math.round(p.memory.total)), fmt.bytes(measuredMem), '', 'everything a worker allocates, on one basis for every strategy: params + grads + optimizer (with the host master copy on the CPU backends, FSDP\'s masks) + buddy copy + gathered peak + activations peak + communication buffers'),
        ...cell(bubble ? `${pct(p.bubble!)} bubble` : '–', s.workers > 1 ? pct(s.idleShare) : '–', '',
          bubble ? `predicted: (N−1)/(M+N−1) of the schedule; measured: the share of the schedule each stage did not work (waiting for a neighbour, or done before the last stage), averaged over the stages` : 'the share of each worker\'s step it spent waiting for another, averaged over the workers'),
      );
    });
    const drifted = m ? this.runs.map((run, i) => ({ run, d: runDrift(run, predictRun(run, m).step_ms, this.summaries[i].stepMs) })).filter((x) => x.d.drifted) : [];
    this.table.replaceChildren(h('table', { class: 'cmp-table cmp-pvm', id: 'compare-predicted' }, head, h('tbody', {}, ...rows)),
      ...(drifted.length ? [h('p', { class: 'cmp-drift', id: 'compare-drift' }, h('strong', {}, '⚠ Far from the prediction (more than 20%): '),
        drifted.map((x) => `${x.run.label}: ${x.d.note}`).join('; ') + '.')] : []),
      h('p', { class: 'muted cmp-foot' }, m
        ? `Gaps are measured against predicted. Each run's times are predicted from what its workers got while it trained: a probe of as many workers computing at once (no communication) steps before, between and after the run's steps, giving the FLOP/s each gets, the slowest one's lag at every point the workers meet, and the coordinator's round trips` +
          (this.runs.every((r) => r.probe) ? '' : (m.link.concurrent ? ` (runs without probes: ${m.link.concurrent.workers} workers' FLOP/s and lag, measured with them computing at once)` : '')) +
          (m.cores ? `, shared when there are more workers than this computer’s ${m.cores} cores (which also run the page and everything else)` : '') +
          `; the model adds compute, communication and copies between the backend and JavaScript one after the other (no overlap).`
        : 'Bytes and memory need no calibration; times do (press Calibrate, or include single in a comparison).'));
    this.explained.replaceChildren(...(m
      ? this.runs.map((run) => {
        const e = explain(run, m);
        return h('div', { class: 'cmp-explain' }, h('h4', {}, e.label), h('ul', {}, ...e.lines.map((l) => h('li', {}, l))));
      })
      : [h('p', { class: 'muted' }, 'Calibrate to see each strategy’s numbers plugged in.')]));
  }

  private drawModels(): void {
    const current = this.inputs.model.value || 'setup';
    const setupLabel = this.setup ? `this setup (${fmt.compact(buildParamTable(this.setup).total)})` : 'this setup';
    this.inputs.model.replaceChildren(
      h('option', { value: 'setup' }, setupLabel),
      ...PRESET_NAMES.map((p) => h('option', { value: p }, presetLabel(p))),
    );
    this.inputs.model.value = current;
  }

  private whatIf(): WhatIf {
    const budgetGb = Number(this.inputs.budget.value.trim());
    return {
      model: this.inputs.model.value as WhatIfModel,
      workers: Number(this.inputs.workers.value),
      linkScale: 10 ** Number(this.inputs.link.value),
      budget: (budgetGb > 0 ? budgetGb : 4) * 2 ** 30,
      transport: this.measured?.link.transport ?? this.transport,
      bucketMb: this.bucketMb,
      microbatches: this.microbatches,
      ...this.diloco,
      wifi: this.inputs.wifi.checked,
    };
  }

  private drawWhatIf(): void {
    const w = this.whatIf();
    const m = this.measured;
    const cfg = whatIfConfig(w.model, this.setup);
    this.outputs.workers.textContent = String(w.workers);
    this.outputs.link.textContent = w.wifi ? 'classroom Wi-Fi' : w.linkScale === 1 ? '× 1 (as measured)' : `÷ ${+(1 / w.linkScale).toPrecision(2)}`;
    this.inputs.link.disabled = !!w.wifi;
    this.inputs.budget.setAttribute('aria-invalid', String(!(Number(this.inputs.budget.value) > 0)));
    const rows = whatIfRows(cfg, w, m);
    const c = crossover(cfg, w);
    const replica = rows.find((r) => r.key === 'ddp')!.fits || rows.find((r) => r.key === 'single')!.fits;
    const fitting = rows.filter((r) => r.fits);
    const only = (key: StrategyKey) => !replica && fitting.length > 0 && fitting.every((r) => r.key.startsWith('fsdp')) && key.startsWith('fsdp')
      || (!replica && fitting.length === 1 && fitting[0].key === key);
    const head = h('thead', {}, h('tr', {}, ...['strategy', 'workers', 'step time', 'tokens / s', 'sent / step / worker', 'memory / worker', `fits in ${fmt.bytes(w.budget)}?`, 'the better choice when…'].map((t) => h('th', {}, t))));
    const body = rows.map((r) =>
      h('tr', { class: r.fits ? 'fits' : 'no-fit', 'data-strategy': r.key, 'data-fits': String(r.fits), 'data-split': r.split ? 'false' : 'true' },
        h('th', { scope: 'row', title: STRATEGY_HELP[r.key] }, h('i', { class: 'swatch', style: `--c:${STRATEGY_SWATCH[r.key]}` }), ` ${r.label}`),
        h('td', { class: 'num' }, String(r.workers)),
        h('td', { class: 'num' }, m && !r.split ? ms(r.p.step_ms) : '–'),
        h('td', { class: 'num' }, m && !r.split ? rate(r.p.tokens_per_s) : '–'),
        h('td', { class: 'num' }, r.split ? '–' : fmt.bytes(Math.round(r.p.bytes_per_rank))),
        h('td', { class: 'num' }, r.split ? '–' : fmt.bytes(Math.round(r.p.memory.total))),
        h('td', {}, h('span', { class: `cmp-badge ${r.fits ? 'ok' : 'bad'}`, title: r.split ?? '' }, r.split ? 'cannot split' : r.fits ? (only(r.key) ? 'fits · the only option' : 'fits') : 'does not fit')),
        h('td', { class: 'cmp-when' }, BETTER_WHEN[r.key]),
      ));
    const params = fmt.compact(buildParamTable(cfg).total);
    this.whatTable.replaceChildren(
      h('p', { class: 'cmp-whatif-model' }, h('strong', {}, `${cfg.preset}: ${params} parameters`),
        ` · ${cfg.n_layer} layers × ${cfg.n_embd} channels · batch ${cfg.batch_size} × ${cfg.block_size} tokens per worker · ${w.wifi ? 'classroom Wi-Fi, 20 MB/s shared (ring)' : w.transport}` +
        (!m ? ' · press Calibrate for times' : m.cores ? ` · times for this computer (${m.cores} cores shared by the workers)` : '')),
      h('table', { class: 'cmp-table', id: 'compare-whatif' }, head, h('tbody', {}, ...body)),
    );
    this.verdict.replaceChildren(...verdictOf(c, w));
    this.verdict.dataset.fsdpFrom = String(c.fsdpFrom ?? '');
    this.verdict.dataset.tpFrom = String(c.tpFrom ?? '');
    this.verdict.dataset.ppFrom = String(c.ppFrom ?? '');
    const room = classroom(cfg, w, m);
    this.wifiVerdict.replaceChildren(...wifiVerdictOf(room));
    Object.assign(this.wifiVerdict.dataset, {
      ddpStopsAt: room ? String(room.scenario.ddpStopsAt ?? '') : '', dilocoStopsAt: room ? String(room.scenario.dilocoStopsAt ?? '') : '',
      ddpMs: room ? String(room.at.ddpMs) : '', dilocoMs: room ? String(room.at.dilocoMs) : '', workers: room ? String(room.at.workers) : '',
    });
    const a = advice(cfg, w, m);
    this.advice.replaceChildren(
      h('li', { 'data-advice': 'memory' }, h('strong', {}, 'Memory: '), a.memory),
      h('li', { 'data-advice': 'traffic' }, h('strong', {}, 'A slow link: '), a.traffic),
      ...(a.time ? [h('li', { 'data-advice': 'time' }, h('strong', {}, 'Time: '), a.time)] : [h('li', { class: 'muted', 'data-advice': 'time' }, 'Calibrate to see which is fastest here and on a slower link.')]),
    );
    Object.assign(this.advice.dataset, { fits: a.fits.join(','), leastTraffic: a.leastTraffic ?? '', fastest: a.fastest ?? '', slowLink: a.slowLink?.fastest ?? '' });
    const curves = memoryCurves(cfg, w);
    this.chart.set(curves.workers, curves.bytes, w.budget, w.workers);
    if (this.chart.range) Object.assign(this.chartBox.dataset, { yMin: String(this.chart.range.lo), yMax: String(this.chart.range.hi) });
    this.chartBox.id = 'compare-memory-chart';
  }
}

const pct = (x: number) => (!Number.isFinite(x) ? '–' : `${Math.round(100 * x)}%`);

/** Where a replica stops fitting, and from how many workers FSDP full, TP or PP (1F1B) fits instead. */
function verdictOf(c: Crossover, w: WhatIf): (Node | string)[] {
  const b = fmt.bytes(w.budget);
  const from = (n: number | null) => (n === null ? 'never' : `from ${n} worker${n > 1 ? 's' : ''}`);
  const others = `; TP fits ${from(c.tpFrom)}${c.tpFrom === null ? ' (its activations and the replicated embeddings stay on every worker)' : ''}, PP 1F1B ${from(c.ppFrom)}`;
  if (c.ddpFits) {
    return [h('strong', {}, 'DDP fits'), ` (${fmt.bytes(c.ddpNeed)} per worker ≤ ${b}). Below a budget of ${fmt.bytes(c.ddpNeed)} the model must be split: FSDP full needs ${fmt.bytes(c.fsdpNeed)} at ${w.workers} workers, and never less than ${fmt.bytes(c.fsdpFloor)} (the activations, ${fmt.bytes(c.activations)}, are not sharded).`];
  }
  if (c.fsdpFrom === null && c.tpFrom === null && c.ppFrom === null) {
    return [h('strong', {}, 'Nothing fits'), `: even with ${WHATIF_MAX_WORKERS} workers FSDP full needs ${fmt.bytes(c.fsdpFloor)} per worker, of which ${fmt.bytes(c.activations)} are activations (not sharded: lower batch_size or block_size), and neither TP nor PP fits.`];
  }
  if (c.tpFrom === null && c.ppFrom === null) {
    return [h('strong', {}, `FSDP is the only option from ${c.fsdpFrom} worker${c.fsdpFrom! > 1 ? 's' : ''} on`), `: DDP needs ${fmt.bytes(c.ddpNeed)} per worker however many workers there are, more than ${b}; FSDP full's share shrinks with every worker and fits from ${c.fsdpFrom}` +
      (c.gradOpFrom !== null ? `, FSDP grad_op from ${c.gradOpFrom}` : '; FSDP grad_op never does (it keeps every block gathered until its backward)') + `${others}.`];
  }
  const first = ([['FSDP full', c.fsdpFrom], ['TP', c.tpFrom], ['PP', c.ppFrom]] as const).filter(([, n]) => n !== null).sort((x, y) => x[1]! - y[1]!);
  return [h('strong', {}, `Split the model: ${first.map(([k, n]) => `${k} ${from(n)}`).join(', ')}`),
    `. DDP needs ${fmt.bytes(c.ddpNeed)} per worker however many workers there are, more than ${b}; FSDP full fits ${from(c.fsdpFrom)}${c.gradOpFrom !== null ? `, FSDP grad_op ${from(c.gradOpFrom)}` : ''}${others}.`];
}

/**
 * The classroom Wi-Fi paragraph: at the what-if's number of students, per-step DDP's and DiLoCo's step
 * over 20 MB/s shared, from how many students each stops paying, and which model sizes each still pays for.
 */
function wifiVerdictOf(room: Classroom | null): (Node | string)[] {
  if (!room) return [h('span', { class: 'muted' }, 'Calibrate (or run a comparison) to see where per-step DDP stops paying on a classroom’s Wi-Fi and DiLoCo takes over: it is compute time against link time.')];
  const { at, scenario: s } = room;
  const stops = (n: number | null) => (n === null ? `pays up to ${CLASS_MAX} students` : `stops paying from ${n} students`);
  const pays = room.models.filter((x) => x.ddpPays).map((x) => x.name);
  const only = room.models.filter((x) => !x.ddpPays && x.dilocoPays).map((x) => x.name);
  const per = (b: number) => fmt.bytes(Math.round(b));
  return [
    h('strong', {}, `Over classroom Wi-Fi (20 MB/s shared, ${(room.wifi.alpha * 1000).toFixed(0)} ms a message), ${at.workers} students: per-step DDP ${ms(at.ddpMs)} a step, DiLoCo (H = ${room.innerSteps}) ${ms(at.dilocoMs)}`),
    `, against ${ms(at.computeMs)} of compute on each laptop; DDP sends ${per(at.ddpBytes)} per student per step, DiLoCo ${per(at.dilocoBytes)}. ` +
      `Each gets ${(100 * at.ddpEfficiency).toFixed(0)}% and ${(100 * at.dilocoEfficiency).toFixed(0)}% of perfect scaling. A strategy stops paying when a laptop spends more than half its step waiting on the Wi-Fi: ` +
      `for this model per-step DDP ${stops(s.ddpStopsAt)}, DiLoCo ${stops(s.dilocoStopsAt)}` +
      (s.ddpStopsAt !== null && (s.dilocoStopsAt === null || s.dilocoStopsAt > s.ddpStopsAt) ? `: from ${s.ddpStopsAt} students on, DiLoCo takes over. ` : '. ') +
      `At ${at.workers} students DDP still pays for ${pays.length ? pays.join(', ') : 'none of the presets'}` + (only.length ? `; only DiLoCo does for ${only.join(', ')}.` : '.'),
  ];
}
