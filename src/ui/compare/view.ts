// The Compare view: runs the page's setup (model, data, seed) under several strategies one after another
// with the same global batch, and shows them side by side: tokens/s, the step time split into compute /
// communication / waiting, bytes per worker, memory per worker by kind, the loss curves overlaid (they
// must coincide), a timeline of every worker's last steps, exports, and the cost model's predictions.
// "Break something during the run" injects a fault on worker 1 of every strategy with 2 or more workers
// at a chosen step: each recovers, its row says so, the timeline draws the recovery, the losses still
// coincide. Beside data parallelism (DDP, FSDP) it runs model parallelism: TP and PP (1F1B and GPipe
// as separate entries), each with the same global batch (DDP and FSDP split it; single, TP and PP train
// all of it on every worker). After a comparison a lesson panel (lesson.ts) says what each strategy
// split and what it paid for it, in the run's numbers. DiLoCo (local SGD: H steps alone, then an outer
// step on the averaged pseudo-gradients) runs beside per-step DDP: its bytes per step against DDP's (1/H
// of them, less with fp16 or int8), and the loss of both against tokens and against wall time, measured
// on this link and as the cost model predicts it over classroom Wi-Fi (20 MB/s shared by the workers).
//
// main.ts mounts it with getters for its setup and corpus (mountCompare) and calls refresh() when they
// change. Everything is built inside the #compare section; numbers are also exposed as data attributes
// for tests (data-state on the section, data-tokens-per-s etc. on each result row).

import './compare.css';
import type { RunConfig } from '../../model/config';
import type { TransportKind } from '../../parallel/collectives';
import { spawnWebWorker } from '../../parallel/browser-spawn';
import { FAULT_KINDS, type FaultKind } from '../../parallel/faults';
import { DEFAULT_BUCKET_MB } from '../../parallel/layout';
import { h } from '../dom';
import * as fmt from '../format';
import { LossAgainst, LossOverlay, STRATEGY_SWATCH, type XYSeries } from './charts';
import { CostPanel } from './costpanel';
import { copy, download, traceFileName, traceJson } from './export';
import { CompareStopped, StopSignal, calibrate, runCompare, type CompareRequest, type LinkCalibration, type Progress, type RunRecord } from './runner';
import {
  COMPARE_HANG_FLOOR_MS, DEFAULT_INNER_STEPS, DEFAULT_MICROBATCHES, FAULT_LABELS, MAX_COMPARE_WORKERS, MAX_INNER_STEPS, MAX_MICROBATCHES, MAX_STEPS, MIN_STEPS, MIN_WORKERS, OUTER_COMPRESS,
  STRATEGY_HELP, STRATEGY_KEYS, STRATEGY_LABELS, TRANSPORT_KINDS,
  faultStepProblem, fromHash, isPipeline, middleStep, splitProblem, toHash, type CompareFault, type CompareSettings, type OuterCompress, type StrategyKey,
} from './settings';
import { bytesRatio, dilocoRatio, lossAxes, prefetchEffect, reference, resultRow, summarize, toCsv, type RunSummary } from './summary';
import { legends, renderVerdict, resultsTable } from './results';
import { Timeline, stepWindows } from './timeline';
import { LESSON_TITLE, lesson } from './lesson';
import { flopsFromRun, predictRun, wifiTimeline, type Measured } from './whatif';

/** What the view reads from the page. */
export interface PageContext {
  config(): RunConfig | null; // the setup form's config; null while it is invalid
  configError(): string | null;
  corpus(): { name: string; text: string; vocab: number } | null;
  bucketMb(): number | undefined; // the setup's DDP bucket size (the default when it has none)
  busy(): boolean; // the page's own training run is going
  /** The comparison started or finished (the page disables its own Start meanwhile). */
  onActiveChange(): void;
}

type State = 'idle' | 'running' | 'calibrating' | 'done' | 'stopped' | 'error';

export function mountCompare(root: HTMLElement, ctx: PageContext): CompareView {
  return new CompareView(root, ctx);
}

export class CompareView {
  private state: State = 'idle';
  private runs: RunRecord[] = [];
  private summaries: RunSummary[] = [];
  private selected: StrategyKey | null = null; // the run in the timeline
  private link: LinkCalibration | null = null;
  private flops: { flops: number; from: string; backend: string } | null = null;
  private signal: StopSignal | null = null;
  private settings: CompareSettings;
  private config: RunConfig | null = null; // the setup the results were run with
  private ranWith: CompareSettings | null = null; // the compare settings the results were run with

  private readonly el = {
    strategies: new Map<StrategyKey, HTMLInputElement>(),
    workers: h('select', { id: 'compare-workers' }),
    transport: h('select', { id: 'compare-transport' }, ...TRANSPORT_KINDS.map((t) => h('option', { value: t }, t))),
    steps: h('input', { id: 'compare-steps', type: 'text', inputmode: 'numeric' }),
    microbatches: h('input', { id: 'compare-microbatches', type: 'text', inputmode: 'numeric' }),
    innerSteps: h('input', { id: 'compare-inner-steps', type: 'text', inputmode: 'numeric' }),
    outerCompress: h('select', { id: 'compare-outer-compress' }, ...OUTER_COMPRESS.map((c) => h('option', { value: c }, c === 'none' ? 'none (fp32)' : c))),
    breakKind: h('select', { id: 'compare-break' }, h('option', { value: '' }, 'nothing'), ...FAULT_KINDS.map((k) => h('option', { value: k }, FAULT_LABELS[k]))),
    breakStep: h('input', { id: 'compare-break-step', type: 'text', inputmode: 'numeric', 'aria-label': 'at step' }),
    run: h('button', { id: 'compare-run', type: 'button', class: 'primary big' }, 'Run comparison'),
    stop: h('button', { id: 'compare-stop', type: 'button', class: 'big', disabled: true }, 'Stop'),
    setup: h('p', { id: 'compare-setup', class: 'cmp-setup' }),
    progressLabel: h('span', { id: 'compare-progress' }, 'Ready'),
    progressCount: h('span', {}),
    fill: h('div', { class: 'cmp-bar-fill' }),
    error: h('p', { id: 'compare-error', class: 'inline-error', role: 'alert', hidden: true }),
    verdict: h('p', { id: 'compare-verdict', class: 'cmp-verdict', hidden: true }),
    bytesRatio: h('p', { id: 'compare-bytes-ratio', class: 'cmp-bytes-ratio', hidden: true }),
    prefetch: h('p', { id: 'compare-prefetch', class: 'cmp-prefetch', hidden: true }),
    results: h('div', { class: 'cmp-table-wrap' }),
    exports: h('div', { class: 'button-row cmp-exports' }),
    lossBox: h('div', { class: 'cmp-chart', id: 'compare-loss-chart' }),
    dilocoCard: h('section', { class: 'card', id: 'compare-diloco', 'aria-labelledby': 'compare-diloco-title', hidden: true }),
    dilocoBytes: h('p', { id: 'compare-diloco-bytes', class: 'cmp-bytes-ratio' }),
    tokensBox: h('div', { class: 'cmp-chart', id: 'compare-loss-tokens' }),
    timeBox: h('div', { class: 'cmp-chart', id: 'compare-loss-time' }),
    timeNote: h('p', { class: 'muted', id: 'compare-loss-time-note' }),
    runPills: h('div', { class: 'cmp-pills', role: 'group', 'aria-label': 'Run shown in the timeline' }),
    traceButton: h('button', { id: 'compare-trace', type: 'button', disabled: true }, 'Download trace (Perfetto)'),
    timelineTitle: h('p', { class: 'muted' }, 'Every worker’s last steps: its thread above, its collectives below.'),
    lesson: h('div', { class: 'cmp-lesson', id: 'compare-lesson-body' }),
  };
  private problem: string | null = null; // what is wrong with the compare form (Run is disabled meanwhile)
  private readonly loss: LossOverlay;
  private readonly lossTokens: LossAgainst;
  private readonly lossTime: LossAgainst;
  private readonly timeline: Timeline;
  private readonly cost: CostPanel;

  constructor(private readonly root: HTMLElement, private readonly ctx: PageContext) {
    const { settings, problems, present } = fromHash(location.hash);
    this.settings = settings;
    for (let n = MIN_WORKERS; n <= MAX_COMPARE_WORKERS; n++) this.el.workers.append(h('option', { value: n }, String(n)));

    const checks = STRATEGY_KEYS.map((key) => {
      const input = h('input', { type: 'checkbox', id: `compare-s-${key}`, value: key });
      this.el.strategies.set(key, input);
      return h('label', { class: 'cmp-check', title: STRATEGY_HELP[key] }, input,
        h('span', {}, h('i', { class: 'swatch', style: `--c:${STRATEGY_SWATCH[key]}` }), h('strong', {}, STRATEGY_LABELS[key]), h('small', {}, STRATEGY_HELP[key])));
    });
    const field = (label: string, input: HTMLElement, hint: string) =>
      h('label', { class: 'field' }, h('span', { class: 'field-name' }, label), input, h('span', { class: 'field-hint' }, hint));
    const form = h('form', { id: 'compare-form', class: 'cmp-form', autocomplete: 'off' },
      h('fieldset', { class: 'cmp-strategies' }, h('legend', {}, 'Strategies'), ...checks),
      h('div', { class: 'cmp-options' },
        field('workers', this.el.workers, 'all but single'),
        field('transport', this.el.transport, 'how workers talk'),
        field('steps', this.el.steps, `per strategy`),
        field('microbatches', this.el.microbatches, 'PP: per step'),
        field('inner steps (H)', this.el.innerSteps, 'DiLoCo: steps alone'),
        field('pseudo-gradients', this.el.outerCompress, 'DiLoCo: on the wire'),
        h('div', { class: 'cmp-break' },
          h('label', { class: 'field' }, h('span', { class: 'field-name' }, 'break something during the run'),
            h('span', { class: 'cmp-break-row' }, this.el.breakKind, h('span', { class: 'muted' }, 'at step'), this.el.breakStep),
            h('span', {
              class: 'field-hint',
              title: `Worker 1 of every strategy with 2 or more workers fails at that step (blank: the middle of the timed steps); the run notices, recovers and trains the step again, and the timeline shows the recovery. A hang is noticed at the step’s deadline, at least ${COMPARE_HANG_FLOOR_MS / 1000} s here (10 s on a training run).`,
            }, `worker 1, 2+ workers only; a hang takes ${COMPARE_HANG_FLOOR_MS / 1000} s to notice`))),
      ),
      h('div', { class: 'controls' }, this.el.run, this.el.stop),
    );
    form.addEventListener('submit', (e) => e.preventDefault());
    form.addEventListener('input', () => this.readForm());
    this.el.run.addEventListener('click', () => void this.start());
    this.el.stop.addEventListener('click', () => this.signal?.stop());
    this.el.traceButton.addEventListener('click', () => this.downloadTrace());

    const card = (id: string, title: string, sub: string | HTMLElement, ...body: (Node | string)[]) =>
      h('section', { class: 'card', 'aria-labelledby': id },
        h('div', { class: 'card-head' }, h('h2', { id }, title), typeof sub === 'string' ? h('p', { class: 'muted' }, sub) : sub), ...body);

    const timelineBox = h('div', {});
    const costBox = h('section', { class: 'card', 'aria-labelledby': 'compare-cost-title' });
    root.replaceChildren(
      h('div', { class: 'cmp-heading' },
        h('h2', { id: 'compare-title' }, 'Compare strategies'),
        h('p', {}, 'The same model, data, seed and global batch under each strategy, one after another on fresh workers: speed, time split, traffic and memory side by side.')),
      h('section', { class: 'card cmp-run-card', 'aria-label': 'Comparison settings' },
        form, this.el.setup,
        h('div', { class: 'progress' },
          h('div', { class: 'progress-label' }, this.el.progressLabel, this.el.progressCount),
          h('div', { class: 'bar', role: 'progressbar', 'aria-label': 'Comparison progress' }, this.el.fill)),
        this.el.error),
      card('compare-results-title', 'Results', h('div', { class: 'cmp-head-right' }, this.el.exports),
        this.el.verdict, this.el.results, this.el.bytesRatio, this.el.prefetch, legends()),
      card('compare-loss-title', 'Loss curves', 'Same samples, same math: the curves should lie on top of each other (DiLoCo does other math: its copies train alone for H steps).', this.el.lossBox),
      this.el.dilocoCard,
      card('compare-timeline-title', 'Timeline', h('div', { class: 'cmp-head-right' }, this.el.runPills, this.el.traceButton), this.el.timelineTitle, timelineBox),
      h('section', { class: 'card cmp-lesson-card', id: 'compare-lesson', 'aria-labelledby': 'compare-lesson-title' },
        h('div', { class: 'card-head' }, h('h2', { id: 'compare-lesson-title' }, LESSON_TITLE)), this.el.lesson),
      costBox,
    );
    // A number in the lesson that points at the timeline shows that run there.
    this.el.lesson.addEventListener('click', (e) => {
      const a = (e.target as Element).closest('a[data-select]');
      const key = a?.getAttribute('data-select') as StrategyKey | null;
      if (key && this.runs.some((r) => r.key === key)) {
        this.selected = key;
        this.renderTable();
        this.renderTimeline();
      }
    });

    this.loss = new LossOverlay(this.el.lossBox, 300);
    this.el.dilocoCard.append(
      h('div', { class: 'card-head' }, h('h2', { id: 'compare-diloco-title' }, 'Per-step DDP against DiLoCo'),
        h('p', { class: 'muted' }, 'DDP averages gradients every step; DiLoCo lets every worker train alone for H steps, then averages what they learned. Fewer bytes, at what cost in loss?')),
      this.el.dilocoBytes,
      h('h3', { class: 'cmp-h3' }, 'Loss against tokens'), this.el.tokensBox,
      h('h3', { class: 'cmp-h3' }, 'Loss against wall time'), this.el.timeNote, this.el.timeBox,
    );
    this.lossTokens = new LossAgainst(this.el.tokensBox, 260, 'tokens', (v) => fmt.compact(v));
    this.lossTime = new LossAgainst(this.el.timeBox, 260, 'seconds', (v) => (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2)));
    this.timeline = new Timeline(timelineBox);
    this.cost = new CostPanel(costBox, { calibrate: () => void this.calibrate() });
    this.drawExports();
    this.writeForm();
    this.renderResults();
    this.refresh();
    if (problems.length) this.showError(`The link's comparison settings could not all be used: ${problems.join('; ')}. Using the defaults for those.`);
    if (present) requestAnimationFrame(() => root.scrollIntoView({ block: 'start' }));
    // The "Compare strategies" link in the top bar sets the hash to #compare: put the settings back.
    window.addEventListener('hashchange', () => {
      if (location.hash === '#compare') history.replaceState(null, '', location.pathname + location.search + toHash(this.settings));
    });
  }

  // ---- settings ------------------------------------------------------------------------------------

  private writeForm(): void {
    const s = this.settings;
    for (const [key, input] of this.el.strategies) input.checked = s.strategies.includes(key);
    this.el.workers.value = String(s.workers);
    this.el.transport.value = s.transport;
    this.el.steps.value = String(s.steps);
    this.el.microbatches.value = String(s.microbatches ?? DEFAULT_MICROBATCHES);
    this.el.innerSteps.value = String(s.innerSteps ?? DEFAULT_INNER_STEPS);
    this.el.outerCompress.value = s.outerCompress ?? 'none';
    this.el.breakKind.value = s.fault?.kind ?? '';
    this.el.breakStep.value = s.fault ? String(s.fault.step) : '';
    this.el.breakStep.placeholder = `${middleStep(s.steps)}`;
  }

  /** The form's settings, or a message saying what is wrong. */
  private readForm(): string | null {
    const { settings, problem } = this.formState();
    if (settings) {
      this.settings = settings;
      history.replaceState(null, '', location.pathname + location.search + toHash(this.settings));
    }
    this.refresh();
    return problem;
  }

  /**
   * The form's settings and what is wrong with them (then no settings), including whether the page's
   * setup can be split the chosen ways (TP: heads; PP: blocks and micro-batches).
   */
  private formState(): { settings: CompareSettings | null; problem: string | null } {
    const strategies = STRATEGY_KEYS.filter((k) => this.el.strategies.get(k)!.checked);
    const steps = Number(this.el.steps.value.trim());
    const stepsOk = Number.isInteger(steps) && steps >= MIN_STEPS && steps <= MAX_STEPS;
    // The fault: none, or a kind at a step (blank: the middle of the timed steps).
    const kind = this.el.breakKind.value as FaultKind | '';
    this.el.breakStep.disabled = !kind || this.active;
    if (stepsOk) this.el.breakStep.placeholder = `${middleStep(steps)}`;
    const rawStep = this.el.breakStep.value.trim();
    const faultStep = rawStep === '' && stepsOk ? middleStep(steps) : Number(rawStep);
    const faultProblem = kind && stepsOk ? faultStepProblem(faultStep, steps) : null;
    const fault: CompareFault | undefined = kind && !faultProblem ? { kind, step: faultStep } : undefined;
    const pp = strategies.some(isPipeline);
    const mbRaw = this.el.microbatches.value.trim();
    const microbatches = Number(mbRaw);
    const mbOk = mbRaw !== '' && Number.isInteger(microbatches) && microbatches >= 1 && microbatches <= MAX_MICROBATCHES;
    const workers = Number(this.el.workers.value);
    const transport = this.el.transport.value as TransportKind;
    const diloco = strategies.includes('diloco');
    const hRaw = this.el.innerSteps.value.trim();
    const innerSteps = Number(hRaw);
    const hOk = hRaw !== '' && Number.isInteger(innerSteps) && innerSteps >= 1 && innerSteps <= MAX_INNER_STEPS;
    const outerCompress = this.el.outerCompress.value as OuterCompress;
    const dilocoSettings = {
      ...(hOk && (diloco || innerSteps !== DEFAULT_INNER_STEPS) ? { innerSteps } : {}),
      ...(diloco || outerCompress !== 'none' ? { outerCompress } : {}),
    };
    // TP's workers must divide n_head; PP's stages fit the blocks and its micro-batches the global batch.
    const cfg = this.ctx.config();
    const split = cfg && (mbOk || !pp) ? splitProblem(strategies, cfg, { workers, transport, microbatches: mbOk ? microbatches : undefined }) : null;
    const problem = !strategies.length ? 'Choose at least one strategy.'
      : !stepsOk ? `steps must be a whole number from ${MIN_STEPS} to ${MAX_STEPS}.`
        : pp && !mbOk ? `microbatches must be a whole number from 1 to ${MAX_MICROBATCHES}.`
          : diloco && !hOk ? `DiLoCo's inner steps (H) must be a whole number from 1 to ${MAX_INNER_STEPS}.`
          : faultProblem ? `Break something: ${faultProblem}.`
            : split ? `${split}.` : null;
    this.el.steps.setAttribute('aria-invalid', String(!stepsOk));
    this.el.microbatches.setAttribute('aria-invalid', String(pp && (!mbOk || /micro-batches/.test(split ?? ''))));
    this.el.breakStep.setAttribute('aria-invalid', String(!!faultProblem));
    this.el.innerSteps.setAttribute('aria-invalid', String(diloco && !hOk));
    if (problem) return { settings: null, problem };
    return { settings: { strategies, workers, transport, steps, ...(fault ? { fault } : {}), ...(mbOk && (pp || microbatches !== DEFAULT_MICROBATCHES) ? { microbatches } : {}), ...dilocoSettings }, problem };
  }

  /** Re-reads the page's setup (main.ts calls it whenever the setup or the corpus changes). */
  refresh(): void {
    const cfg = this.ctx.config();
    const corpus = this.ctx.corpus();
    const s = this.settings;
    const active = this.state === 'running' || this.state === 'calibrating';
    // The form's problem (the setup may have changed under it: n_head, n_layer, batch_size), shown until it is fixed.
    const { problem } = this.formState();
    if (problem !== this.problem) {
      if (problem) this.showError(problem);
      else if (this.el.error.textContent === this.problem) this.showError(null);
      this.problem = problem;
    }
    this.el.run.disabled = active || !cfg || !corpus || this.ctx.busy() || this.problem !== null;
    this.el.stop.disabled = this.state !== 'running';
    for (const el of [...this.el.strategies.values(), this.el.workers, this.el.transport, this.el.steps, this.el.breakKind]) el.disabled = active;
    this.el.microbatches.disabled = active || !STRATEGY_KEYS.some((k) => isPipeline(k) && this.el.strategies.get(k)!.checked);
    this.el.innerSteps.disabled = this.el.outerCompress.disabled = active || !this.el.strategies.get('diloco')!.checked;
    this.el.breakStep.disabled = active || !this.el.breakKind.value;
    this.root.dataset.state = this.state;
    if (!cfg) {
      this.el.setup.textContent = `Fix the setup first: ${this.ctx.configError() ?? 'it is not valid'}.`;
      this.el.setup.classList.add('problem');
    } else {
      this.el.setup.classList.remove('problem');
      const b = cfg.batch_size * cfg.grad_accum;
      const seqs = s.workers * b;
      const model = s.strategies.filter((k) => k === 'tp' || isPipeline(k)).map((k) => STRATEGY_LABELS[k]);
      const pp = s.strategies.some(isPipeline) ? ` PP cuts them into ${s.microbatches ?? DEFAULT_MICROBATCHES} micro-batches of ${seqs / (s.microbatches ?? DEFAULT_MICROBATCHES)}.` : '';
      const H = s.innerSteps ?? DEFAULT_INNER_STEPS;
      const dl = s.strategies.includes('diloco') ? ` DiLoCo: ${s.workers} workers × ${b} each, averaging every ${H} step${H > 1 ? 's' : ''}${s.outerCompress && s.outerCompress !== 'none' ? ` in ${s.outerCompress}` : ''}.` : '';
      this.el.setup.replaceChildren(
        h('strong', {}, `${cfg.preset}`), ` (${cfg.n_layer} layers × ${cfg.n_embd}, ${cfg.n_head} heads, seed ${cfg.seed}, ${cfg.backend} backend) · `,
        h('strong', {}, `global batch ${seqs} sequences (${fmt.count(seqs * cfg.block_size)} tokens)`),
        ` per step: DDP and FSDP ${s.workers} workers × ${b} each; single${model.length ? `, ${model.join(', ')}` : ''} train${model.length ? '' : 's'} all ${seqs} at once${model.length ? ' (every worker on the same batch)' : ''}.${pp}${dl}`,
        ...(this.ctx.busy() ? [h('br'), h('span', { class: 'problem' }, 'The training run above is using the computer: stop it to compare.')] : []),
      );
    }
    const vocab = cfg ? (cfg.tokenizer === 'bpe' ? 50257 : corpus?.vocab ?? cfg.vocab_size) : 0;
    this.cost.setSetup(cfg ? { ...cfg, vocab_size: vocab } : null, s.transport, (this.ctx.bucketMb() ?? DEFAULT_BUCKET_MB), s.microbatches, { innerSteps: s.innerSteps, outerCompress: s.outerCompress });
  }

  private request(): CompareRequest | null {
    const problem = this.readForm();
    const config = this.ctx.config();
    const corpus = this.ctx.corpus();
    if (problem || !config || !corpus || this.ctx.busy()) {
      if (problem) this.showError(problem);
      return null;
    }
    return { config, text: corpus.text, settings: this.settings, bucketMb: (this.ctx.bucketMb() ?? DEFAULT_BUCKET_MB) };
  }

  // ---- running ---------------------------------------------------------------------------------------

  private async start(): Promise<void> {
    const req = this.request();
    if (!req || this.state === 'running' || this.state === 'calibrating') return;
    this.showError(null);
    this.config = req.config;
    this.ranWith = req.settings;
    this.runs = [];
    this.summaries = [];
    this.selected = null;
    this.link = null;
    this.flops = null;
    this.setState('running');
    this.renderResults();
    this.signal = new StopSignal();
    try {
      await runCompare(req, spawnWebWorker, {
        onProgress: (p) => this.progress(p),
        onRun: (run) => {
          this.runs.push(run);
          if (run.key === 'single') {
            const f = flopsFromRun(run);
            this.flops = { flops: f.flops, from: `${run.label}’s median compute, ${f.computeMs.toFixed(1)} ms for ${fmt.count(run.cfg.batch_size * run.cfg.block_size)} tokens`, backend: run.info.backend.name };
          } else if (!this.flops && run.probe && !req.settings.strategies.includes('single')) {
            // no single run to time one worker: the probe's, each of N workers computing at once (a little less than one alone)
            this.flops = { flops: run.probe.flops, from: `the probe of ${run.probe.workers} workers computing at once around ${run.label}`, backend: run.info.backend.name };
          }
          this.selected = run.key;
          this.renderResults();
        },
        onLink: (l) => {
          this.link = l;
          this.renderCalibration();
        },
      }, this.signal);
      this.setState('done');
      this.el.progressLabel.textContent = `Done: ${this.runs.length} strateg${this.runs.length === 1 ? 'y' : 'ies'} × ${req.settings.steps} steps`;
      this.el.fill.style.width = '100%';
    } catch (e) {
      if (e instanceof CompareStopped) {
        this.setState('stopped');
        this.el.progressLabel.textContent = 'Stopped';
      } else {
        this.setState('error');
        this.showError(`The comparison stopped: ${e instanceof Error ? e.message : String(e)}`);
      }
    } finally {
      this.signal = null;
      this.refresh();
    }
  }

  private async calibrate(): Promise<void> {
    const req = this.request();
    if (!req || this.state === 'running' || this.state === 'calibrating') return;
    const before = this.state;
    this.showError(null);
    this.setState('calibrating');
    this.cost.setBusy(true, 'Calibrating…');
    const single = this.runs.find((r) => r.key === 'single');
    try {
      const { probe, link } = await calibrate(req, spawnWebWorker, (what) => this.cost.setBusy(true, `Calibrating: ${what}…`), !!single);
      const from = single ?? probe!;
      const f = flopsFromRun(from);
      this.flops = { flops: f.flops, from: `${single ? `${single.label}’s` : 'a 5-step probe’s'} median compute, ${f.computeMs.toFixed(1)} ms for ${fmt.count(from.cfg.batch_size * from.cfg.block_size)} tokens`, backend: from.info.backend.name };
      this.link = link;
      this.setState(before);
    } catch (e) {
      this.setState(before);
      this.showError(`Calibration failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    this.cost.setBusy(false);
    this.renderCalibration();
  }

  /** A comparison (or a calibration) is using the workers. */
  get active(): boolean {
    return this.state === 'running' || this.state === 'calibrating';
  }

  private setState(s: State): void {
    const was = this.active;
    this.state = s;
    this.refresh();
    if (was !== this.active) this.ctx.onActiveChange();
  }

  private progress(p: Progress): void {
    const label = STRATEGY_LABELS[p.key];
    const done = p.phase === 'training' ? p.step / p.steps : p.phase === 'link' ? 1 : 0;
    this.el.fill.style.width = `${(((p.index + done) / p.count) * 100).toFixed(1)}%`;
    this.el.progressCount.textContent = `${p.index + 1} of ${p.count}`;
    this.el.progressLabel.textContent = p.phase === 'starting' ? `starting ${label}: building the model on fresh workers…`
      : p.phase === 'link' ? `timing the ${this.settings.transport} all-reduce on ${label}’s workers (for the cost model)…`
        : `running ${label} ${p.step}/${p.steps}${p.recoveries ? ` · recovered ${p.recoveries}×` : ''}`;
  }

  private showError(message: string | null): void {
    this.el.error.textContent = message ?? '';
    this.el.error.hidden = message === null;
  }

  private measured(): Measured | null {
    if (!this.flops || !this.link) return null;
    // On a CPU backend, more workers than cores take turns (the cost model shares the FLOP/s among them).
    const cpu = ['wasm', 'cpu'].includes(this.flops.backend);
    return { flops: this.flops.flops, flopsFrom: this.flops.from, link: this.link, cores: cpu ? navigator.hardwareConcurrency : undefined };
  }

  private renderCalibration(): void {
    this.cost.setMeasured(this.measured());
  }

  // ---- results ---------------------------------------------------------------------------------------

  private renderResults(): void {
    const ref = reference(this.runs);
    this.summaries = this.runs.map((r) => summarize(r, ref));
    renderVerdict(this.el.verdict, this.summaries, ref);
    this.renderStatements();
    this.renderTable();
    this.loss.set(this.runs.map((r, i) => ({ key: r.key, losses: this.summaries[i].losses })));
    this.renderDiloco();
    this.renderTimeline();
    this.cost.setRuns(this.runs, this.summaries);
    this.renderCalibration();
    this.el.lesson.replaceChildren(...lesson(this.runs, this.summaries));
    for (const b of this.el.exports.querySelectorAll('button')) b.disabled = !this.runs.length;
  }

  /** The measured ratio of FSDP full's bytes to DDP's beside its formula, and what prefetch saved. */
  private renderStatements(): void {
    const r = bytesRatio(this.summaries);
    this.el.bytesRatio.hidden = !r;
    if (r) {
      const N = r.ddp.workers;
      this.el.bytesRatio.dataset.ratio = String(r.ratio);
      this.el.bytesRatio.replaceChildren(h('strong', {}, `Bytes: ${r.fsdp.label} sent ${(r.ratio).toFixed(2)}× DDP’s per worker per step`),
        ` (${fmt.bytes(Math.round(r.fsdp.bytesPerWorker))} against ${fmt.bytes(Math.round(r.ddp.bytesPerWorker))}, measured). The formula: FSDP full all-gathers every block twice and reduce-scatters it once, 3(N−1)/N × S = ${(3 * (N - 1) / N).toFixed(2)} × S at N = ${N}; ` +
        `DDP all-reduces it, 2(N−1)/N × S = ${(2 * (N - 1) / N).toFixed(2)} × S: ${r.formula}×, a little less here because the root unit (embeddings) is gathered once and kept, not gathered twice.`);
    }
    const p = prefetchEffect(this.summaries);
    this.el.prefetch.hidden = !p;
    if (p) {
      Object.assign(this.el.prefetch.dataset, { savedMs: String(p.savedMs), waitSavedMs: String(p.waitSavedMs), onMs: String(p.on.stepMs), offMs: String(p.off.stepMs) });
      const faster = p.savedMs >= 0;
      this.el.prefetch.replaceChildren(h('strong', {}, `Prefetch: FSDP full stepped in ${p.on.stepMs.toFixed(1)} ms with backward prefetch, ${p.off.stepMs.toFixed(1)} ms without`),
        ` (${faster ? `${p.savedMs.toFixed(1)} ms saved` : `${(-p.savedMs).toFixed(1)} ms lost: on this busy computer the difference is within the noise`}; waiting ${p.on.waitMs.toFixed(1)} against ${p.off.waitMs.toFixed(1)} ms per worker, measured). ` +
        'With prefetch each block’s all-gather for backward is issued while the block after it is still computing its backward, so it travels under compute; without, the worker stops at every block and waits for it. Pick the two in the timeline to see it.');
    }
  }

  /**
   * Per-step DDP against DiLoCo (shown once DiLoCo ran): bytes per step measured against the formula,
   * and both losses against tokens and against wall time, measured on this link and predicted over
   * classroom Wi-Fi (each run's measured compute plus the cost model's communication on 20 MB/s shared).
   */
  private renderDiloco(): void {
    const pair = this.runs.filter((r) => r.key === 'ddp' || r.key === 'diloco');
    const diloco = pair.find((r) => r.key === 'diloco');
    this.el.dilocoCard.hidden = !diloco;
    if (!diloco) {
      this.lossTokens.set([]);
      this.lossTime.set([]);
      return;
    }
    const r = dilocoRatio(this.summaries, diloco);
    const dl = this.summaries.find((s) => s.key === 'diloco')!;
    const H = diloco.dist.innerSteps ?? DEFAULT_INNER_STEPS;
    const c = diloco.dist.outerCompress ?? 'none';
    Object.assign(this.el.dilocoBytes.dataset, { ratio: r ? String(r.ratio) : '', formula: r ? String(r.formula) : '', diloco: String(dl.bytesPerWorker), ddp: r ? String(r.ddp.bytesPerWorker) : '' });
    this.el.dilocoBytes.replaceChildren(
      h('strong', {}, `Bytes: DiLoCo sent ${fmt.bytes(Math.round(dl.bytesPerWorker))} per worker per step`),
      r ? ` against DDP’s ${fmt.bytes(Math.round(r.ddp.bytesPerWorker))}: ${r.ratio.toPrecision(2)}× (measured, averaged over its ${diloco.steps.length} steps). The formula: DDP all-reduces all P gradients every step, 2(N−1)/N × 4P bytes; ` +
        `DiLoCo all-reduces P pseudo-gradients of ${c === 'none' ? '4 bytes (fp32)' : c === 'fp16' ? '2 bytes (fp16)' : '1 byte (int8)'} once every H = ${H} steps: ${c === 'none' ? '' : `${c === 'fp16' ? '½' : '¼'} × `}1/${H} = ${r.formula.toPrecision(2)}× DDP’s.`
        : ` (averaged over its ${diloco.steps.length} steps: one all-reduce of the pseudo-gradients every ${H}). Add DDP to the comparison to set them side by side.`,
    );
    const label = (run: RunRecord) => `${run.label}${run.key === 'diloco' ? ` (H = ${H})` : ''}`;
    const tokens: XYSeries[] = pair.map((run) => ({ key: run.key, label: label(run), x: lossAxes(run).tokens, y: run.steps.map((s) => s.loss) }));
    this.lossTokens.set(tokens);
    const m = this.measured();
    const time: XYSeries[] = [
      ...pair.map((run) => ({ key: run.key, label: `${label(run)}, measured`, x: lossAxes(run).seconds, y: run.steps.map((s) => s.loss) })),
      ...pair.map((run) => ({ key: run.key, label: `${label(run)}, classroom Wi-Fi (predicted)`, x: wifiTimeline(run, m), y: run.steps.map((s) => s.loss), dashed: true })),
    ];
    this.lossTime.set(time);
    this.el.tokensBox.dataset.series = tokens.map((s) => s.label).join('|');
    this.el.timeBox.dataset.series = time.map((s) => s.label).join('|');
    const end = (s: XYSeries) => s.x.at(-1) ?? 0;
    this.el.timeBox.dataset.ends = time.map((s) => end(s).toFixed(3)).join('|');
    this.el.timeNote.textContent = `Solid: the steps as measured here (${diloco.dist.transport} between Web Workers on this computer). Dashed: the same steps over classroom Wi-Fi, 20 MB/s shared by the ${diloco.dist.workers} workers: ` +
      `each run's measured compute per step plus the cost model's communication (DiLoCo pays its all-reduce every ${H}th step). ` +
      time.filter((s) => s.dashed).map((s) => `${s.label.replace(', classroom Wi-Fi (predicted)', '')}: ${end(s).toFixed(1)} s`).join(', ') + ' for the whole run over Wi-Fi.';
  }

  private renderTable(): void {
    const empty = this.state === 'running' ? 'The first strategy is running; its row appears when it finishes.'
      : 'Choose strategies and press Run comparison. Each one trains for the chosen number of steps on fresh workers.';
    this.el.results.replaceChildren(resultsTable(this.runs, this.summaries, this.selected, empty, (key) => {
      this.selected = key;
      this.renderTable();
      this.renderTimeline();
    }, this.ranWith?.fault));
  }

  // ---- timeline ---------------------------------------------------------------------------------------

  private selectedRun(): RunRecord | null {
    return this.runs.find((r) => r.key === this.selected && r.trace) ?? [...this.runs].reverse().find((r) => r.trace) ?? null;
  }

  private renderTimeline(): void {
    const run = this.selectedRun();
    this.el.runPills.replaceChildren(...this.runs.filter((r) => r.trace).map((r) => {
      const b = h('button', { type: 'button', class: 'cmp-pill', 'aria-pressed': String(r === run), 'data-strategy': r.key }, r.label);
      b.addEventListener('click', () => {
        this.selected = r.key;
        this.renderTable();
        this.renderTimeline();
      });
      return b;
    }));
    this.el.traceButton.disabled = !run;
    const t = run?.trace;
    const windows = t ? stepWindows(t.steps).map(([a, b]) => (a === b ? `${t.steps[a]}` : `${t.steps[a]}–${t.steps[b]}`)) : [];
    const n = run?.recoveries?.length ?? 0;
    this.el.timelineTitle.textContent = run && t
      ? `${run.label}, ${run.dist.workers} worker${run.dist.workers > 1 ? 's' : ''}${run.dist.workers > 1 ? ` over ${run.dist.transport}` : ''}: steps ${windows.join(' and ')} (traced${n ? `: around the fault, and the last ones` : ''}). Each worker’s thread above, its collectives below` +
        (n ? `; the red band${n > 1 ? 's are' : ' is'} the recover${n > 1 ? 'ies' : 'y'}, across every worker.` : '.')
      : 'Every worker’s last steps: its thread above, its collectives below.';
    this.timeline.show(run);
  }

  private downloadTrace(): void {
    const run = this.selectedRun();
    if (run) download(traceFileName(run), traceJson(run), 'application/json');
  }

  // ---- exports ---------------------------------------------------------------------------------------

  private rows() {
    const m = this.measured();
    return this.summaries.map((s, i) => resultRow(s, m ? predictRun(this.runs[i], m) : undefined));
  }

  /** The JSON's rows: each run's recoveries listed (the CSV has their number). */
  private jsonRows() {
    return this.rows().map((row, i) => ({
      ...row,
      recoveries: (this.runs[i].recoveries ?? []).map((r) => ({
        step: r.step, worker: r.rank, cause: r.cause, message: r.message, detected_ms: round1(r.detected_ms), recovery_ms: round1(r.ms),
        restored_from: r.restored_from, replayed_steps: r.replayed_steps, started_at: r.started_at, detected_at: r.detected_at, recovered_at: r.recovered_at,
      })),
    }));
  }

  private json(): string {
    const m = this.measured();
    return JSON.stringify({
      settings: this.ranWith ?? this.settings, // the settings of the results (the form may have changed since)
      setup: this.config, // as in the setup form (single, TP and PP ran it with batch_size × workers)
      backend: this.runs[0]?.info.backend.name,
      calibration: m ? { flops: m.flops, flops_from: m.flopsFrom, cores: m.cores ?? null, transport: m.link.transport, workers: m.link.workers, alpha_s: m.link.alpha, beta_bytes_per_s: m.link.beta, samples: m.link.samples } : null,
      results: this.jsonRows(),
      losses: Object.fromEntries(this.summaries.map((s) => [s.label, s.losses])),
    }, null, 2);
  }

  private drawExports(): void {
    const button = (id: string, label: string, act: (b: HTMLButtonElement) => void) => {
      const b = h('button', { type: 'button', id, disabled: true }, label);
      b.addEventListener('click', () => act(b));
      return b;
    };
    this.el.exports.replaceChildren(
      button('compare-csv', 'Download CSV', () => download('compare.csv', toCsv(this.rows()), 'text/csv')),
      button('compare-csv-copy', 'Copy CSV', (b) => void copy(toCsv(this.rows()), b)),
      button('compare-json', 'Download JSON', () => download('compare.json', this.json(), 'application/json')),
      button('compare-json-copy', 'Copy JSON', (b) => void copy(this.json(), b)),
    );
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
