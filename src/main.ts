// The page: wires the setup form, the training workers, the chart and the panels together, and runs the
// life of a run. All training math runs in Web Workers, one per rank (src/ui/run.ts: a Coordinator of
// ranks and the training loop around it); this thread awaits them and moves their results into the DOM.
// The panels own their parts of the page: src/ui/corpus.ts the training text, src/ui/checkpoints.ts the
// saved checkpoint and the model files, src/ui/samples.ts the samples and the “Sample now” form.
// Weights loaded from llm.c's or Hugging Face's files (src/ui/weights.ts) are what the next Start
// begins from: the setup takes their shape, and Start makes a step-0 checkpoint of them with the
// setup's other settings (startFromWeights) for the workers to restore.
//
// Life of a run: Start (or Resume from a checkpoint) disposes the previous run's workers, starts
// `workers` new ones (1 for strategy single), waits until every replica is built, then runs the loop.
// Events: 'step' -> progress (loss, grad norm), chart and the Workers panel (and any recovery the step
// needed: src/ui/faults-panel.ts lists it, the chart and the worker's card mark it) and an autosave when
// the last one is 20 s old (src/ui/checkpoints.ts AutosaveClock), 'eval' -> chart, an autosave and a
// memory reading, 'sample' -> the samples panel, 'state' -> buttons. Pause and stop also save, and so
// does hiding or leaving the page; leaving while a run trains asks first (beforeunload).
//
// One Resume button: it resumes a paused run, and otherwise (after a reload, a stop or a failure) continues
// the checkpoint saved in this browser, as the Checkpoint panel's “Resume from step N” does.
//
// A setup that one worker could not hold (the cost model's memory per worker against what a worker holds:
// memoryError in src/ui/setup.ts) is refused like an invalid setting: the error says how much it would
// need and what to change, and Start stays disabled.

import './ui/style.css';
import type { RunConfig } from './model/config';
import { buildParamTable, type ParamTable } from './model/params';
import type { CheckpointHeader } from './train/checkpoint';
import type { RunState, TrainEvent } from './train/session';
import type { InitInfo } from './parallel/protocol';
import type { DistOptions } from './parallel/coordinator';
import { LossChart } from './ui/chart';
import { Run } from './ui/run';
import { CheckpointPanel } from './ui/checkpoints';
import { CorpusPanel } from './ui/corpus';
import { byId } from './ui/dom';
import { SetupForm } from './ui/form';
import * as fmt from './ui/format';
import { SampleForm, SamplesPanel } from './ui/samples';
import { configValues, distValues, fromQuery, globalBatch, memoryError, splitError, toConfig, toDist, toQuery, type Setup } from './ui/setup';
import { StatsPanel } from './ui/stats';
import { WorkersPanel } from './ui/workers-panel';
import { FaultsPanel } from './ui/faults-panel';
import { mountCompare } from './ui/compare/view';
import { WeightsNote, prepareWeights, reshaped, shapeProblem, startCheckpoint, vocabOf, type StartWeights } from './ui/weights';
import type { LoadedModel } from './ui/model-files';
import { banner, messageOf, sentence } from './ui/messages';
import { renderRunInfo } from './ui/run-info';
import { recordSpeed, renderEstimate as renderEstimateLine } from './ui/estimate';

type Phase = 'starting' | RunState; // RunState: idle running paused stopped done error
const MEMORY_EVERY = 20; // steps between memory readings of the workers (and at every evaluation)

const el = {
  start: byId<HTMLButtonElement>('start'),
  pause: byId<HTMLButtonElement>('pause'),
  resume: byId<HTMLButtonElement>('resume'),
  stop: byId<HTMLButtonElement>('stop'),
  state: byId('state'),
  startHint: byId('start-hint'),
  runInfo: byId('run-info'),
  estimate: byId('estimate'),
  copyLink: byId<HTMLButtonElement>('copy-link'),
};

const STATE_LABELS: Record<Phase, string> = {
  idle: 'Ready', starting: 'Building the model…', running: 'Training', paused: 'Paused', stopped: 'Stopped', done: 'Finished', error: 'Error',
};

// ---- page state -------------------------------------------------------------------------------------
let setup: Setup;
let config: RunConfig | null = null;
let configError: string | null = null;
let dist: DistOptions | null = null; // strategy, workers, transport, bucket size (not RunConfig keys)
let distError: string | null = null;
let sizeError: string | null = null; // one worker could not hold this setup (memoryError), set by render()
let run: Run | null = null; // the current run: its workers and training loop
let runDist: DistOptions | null = null; // what the current run was started with (saved with its checkpoints)
let generation = 0; // bumped per launch: events and results of an older run are ignored
let info: InitInfo | null = null; // what the current run's workers built
let phase: Phase = 'idle';
let startWeights: StartWeights | null = null; // llm.c's or Hugging Face's weights the next Start begins from

const cores = navigator.hardwareConcurrency;
const form = new SetupForm(byId('setup'), onSetupChange, cores);
const chart = new LossChart(byId('chart'), byId('chart-empty'));
const stats = new StatsPanel();
const samples = new SamplesPanel(byId('samples'), byId('samples-empty'));
const workers = new WorkersPanel();
const faults = new FaultsPanel({ run: () => (info ? run : null), running: () => phase === 'running' });
// The panels that own their part of the page, with getters for the page state they read:
const sampleForm = new SampleForm(samples, { run: () => (info ? run : null), step: () => stats.currentStep, changed: render });
const corpusPanel = new CorpusPanel({
  busy, blockSize: () => config?.block_size ?? null, modelFiles: (files) => checkpoints.drop(files), changed: render,
});
const checkpoints = new CheckpointPanel({
  run: () => (info ? run : null),
  runDist: () => runDist,
  config: () => config,
  corpus: () => corpusPanel.corpus,
  busy,
  failed,
  resume: () => void launch(true),
  showHistory,
  warn: banner.show,
  changed: render,
  useWeights,
});
const weightsNote = new WeightsNote({ reshape: reshapeToWeights, forget: forgetWeights });

// ---- messages -----------------------------------------------------------------------------------------
/** The run failed: say why, keep the workers (rank 0's model may still sample) and the saved checkpoint. */
function fail(e: unknown): void {
  phase = 'error';
  const saved = checkpoints.meta;
  const kept = saved ? ` Your last checkpoint (step ${saved.step}) is kept: press Resume to continue from it.` : '';
  const msg = messageOf(e);
  banner.show('Training stopped.', `${sentence(msg)}${kept}`);
  workers.setPhase('error', msg);
  render();
}

// ---- setup ---------------------------------------------------------------------------------------------
function onSetupChange(s: Setup): void {
  // A new preset brings its own shape: while weights are loaded (and no run is starting), keep theirs.
  if (startWeights && !busy() && setup && s.preset !== setup.preset) {
    setup = s;
    form.set(reshaped(s, startWeights), true);
    return;
  }
  setup = s;
  const r = toConfig(s);
  config = r.config;
  configError = r.error;
  form.showError(r.error); // (render() adds a setup too big for a worker: memoryError)
  const d = toDist(s.dist);
  // TP's workers must divide the heads, PP's stages fit the blocks and its micro-batches the batch:
  // a split that does not work disables Start with its reason, as any other invalid setting.
  const split = config && d.dist ? splitError(config, d.dist) : null;
  dist = split ? null : d.dist;
  distError = split ?? d.error;
  form.showDistError(distError);
  const shown = split ? d.dist : dist; // the help still describes what was chosen
  form.showDistHelp(config && shown ? { strategy: shown.strategy, workers: shown.workers, batchSize: config.batch_size, gradAccum: config.grad_accum, ...globalBatch(config, shown.workers, shown.strategy) } : null, config);
  workers.preview(dist, config?.backend ?? s.values.backend, config && dist ? globalBatch(config, dist.workers, dist.strategy) : null);
  if (config && !busy()) stats.setMaxIters(config.max_iters);
  history.replaceState(null, '', location.pathname + toQuery(s) + location.hash);
  render();
}

/**
 * The parameters of the model a config builds (its vocabulary: the one given, the loaded weights', the
 * tokenizer's, or the run's).
 */
function paramTable(cfg: RunConfig, vocab?: number): ParamTable {
  const fromWeights = startWeights && !weightsProblem() ? vocabOf(startWeights) : undefined;
  return buildParamTable({ ...cfg, vocab_size: vocab ?? fromWeights ?? (cfg.tokenizer === 'bpe' ? 50257 : corpusPanel.corpus?.vocab ?? cfg.vocab_size) });
}

// ---- weights to start from (llm.c's, Hugging Face's) --------------------------------------------------
/** Where the setup and the loaded weights disagree (a shape edited since they were loaded), or null. */
function weightsProblem(): string | null {
  return startWeights && config ? shapeProblem(startWeights, config) : null;
}

/**
 * llm.c's or Hugging Face's weights, chosen or dropped: checked against the setup and the text as a Start
 * would check them; the setup takes their shape. Throws (nothing changed) what does not fit.
 */
function useWeights(model: LoadedModel): void {
  const r = prepareWeights(model, form.setup, corpusPanel.corpus, `“${model.source}” cannot be used`);
  startWeights = r.weights;
  form.set(r.setup, true);
}

function reshapeToWeights(): void {
  if (startWeights && !busy()) form.set(reshaped(form.setup, startWeights), true);
}

function forgetWeights(): void {
  if (busy()) return;
  startWeights = null;
  render();
}

function renderEstimate(): void {
  if (!config) {
    el.estimate.textContent = '';
    workers.previewModel(null);
    return;
  }
  const table = paramTable(config);
  workers.previewModel(table, config);
  renderEstimateLine(el.estimate, config, dist, table, startWeights && !weightsProblem() ? startWeights.source : null);
}

// ---- buttons and status ----------------------------------------------------------------------------
function busy(): boolean {
  return phase === 'starting' || phase === 'running' || phase === 'paused';
}

/** A function, not a value: events change `phase` while launch() awaits. */
function failed(): boolean {
  return phase === 'error';
}

/** The saved checkpoint, when the Resume button would continue it (no run going, one not finished). */
function resumable(): { step: number } | null {
  const m = checkpoints.meta;
  if (!m || busy() || compare.active || !config || !dist || !corpusPanel.corpus) return null;
  return m.step < config.max_iters ? { step: m.step } : null;
}

function render(): void {
  const corpus = corpusPanel.corpus;
  const ready = config !== null && dist !== null && corpus !== null;
  const weightsIssue = weightsProblem();
  // Judged on the model as it will be built (the text's vocabulary, or the loaded weights')
  sizeError = config && dist ? memoryError(config, dist, paramTable(config)) : null;
  if (!busy()) form.showError(configError ?? sizeError);
  compare.refresh();
  el.start.disabled = !ready || busy() || compare.active || weightsIssue !== null || sizeError !== null; // one thing at a time on the workers
  el.start.textContent = startWeights ? 'Start from the loaded weights' : (info || checkpoints.meta) && !busy() ? 'Start new run' : 'Start training';
  el.pause.disabled = phase !== 'running';
  const saved = phase === 'paused' ? null : resumable();
  el.resume.disabled = phase !== 'paused' && !saved;
  el.resume.dataset.from = saved ? String(saved.step) : '';
  el.resume.title = phase === 'paused' ? 'Continue this run'
    : saved ? `Continue the checkpoint saved in this browser, from step ${fmt.count(saved.step)}`
      : checkpoints.meta && config && checkpoints.meta.step >= config.max_iters ? `The saved checkpoint reached max_iters (${fmt.count(config.max_iters)}): raise max_iters to train it further`
        : 'Resumes a paused run, or a checkpoint saved in this browser';
  el.stop.disabled = phase !== 'running' && phase !== 'paused';
  el.state.textContent = STATE_LABELS[phase];
  el.state.dataset.state = phase;
  form.setLocked(busy());
  sampleForm.setEnabled(!!run && !!info && phase !== 'starting' && phase !== 'error');
  faults.render();

  el.startHint.textContent = !config
    ? `Fix the setup first: ${configError}.`
    : !dist
      ? `Fix the setup first: ${distError}.`
      : !corpus
        ? 'Waiting for the training text…'
        : busy()
          ? 'The setup is locked while a run is going. Stop it to change settings.'
          : sizeError
            ? `Too big to start: ${sizeError}.`
            : weightsIssue
              ? `Fix the setup first: ${weightsIssue}.`
              : startWeights
                ? `Start trains from the weights of ${startWeights.source} (step 0, a fresh optimizer)${saved ? `; Resume continues the checkpoint saved at step ${fmt.count(saved.step)}` : ''}.`
                : saved
                  ? `Resume continues the checkpoint saved in this browser at step ${fmt.count(saved.step)}; Start trains a new model from scratch.`
                  : '';
  el.startHint.classList.toggle('problem', !config || !dist || (!busy() && (sizeError !== null || weightsIssue !== null)));
  renderEstimate();
  checkpoints.render();
  weightsNote.render(startWeights, weightsIssue, corpus, busy());
}

// ---- a run ---------------------------------------------------------------------------------------------
async function launch(resume: boolean): Promise<void> {
  const corpus = corpusPanel.corpus;
  if (!config || !dist || !corpus || busy()) return;
  const before = phase;
  phase = 'starting'; // from here on, a second click does nothing
  banner.hide();
  sampleForm.clearError();
  render();
  let checkpoint: ArrayBuffer | undefined;
  let header: CheckpointHeader | undefined;
  if (resume) {
    await checkpoints.settled(); // a save still on its way (a stop's) is the one to continue
    const saved = await checkpoints.loadSaved();
    if (saved) {
      header = saved.header;
      // The workers continue the checkpoint's model and optimizer; only max_iters and backend come from
      // the form, and the dist settings from the checkpoint's run (a loaded file has none: the form's).
      // Show exactly that in the form (and so in the URL).
      form.set({
        preset: header.config.preset,
        values: { ...configValues(header.config), max_iters: setup.values.max_iters, backend: setup.values.backend },
        dist: checkpoints.meta?.dist ? distValues(checkpoints.meta.dist) : setup.dist,
      }, true);
      checkpoint = saved.buffer;
    }
    if (!saved || !config || !dist) {
      phase = before; // (an invalid config is explained in the setup panel)
      render();
      return;
    }
  }
  if (memoryError(config, dist, paramTable(config, header?.config.vocab_size))) {
    phase = before; // too big for a worker: render() says so in the setup panel and the hint
    render();
    return;
  }
  let cfg: RunConfig = config;
  const d: DistOptions = dist;
  const text = corpus.text;
  if (!resume && startWeights) {
    // A step-0 checkpoint of the loaded weights with the setup's settings: the workers restore it.
    try {
      ({ config: cfg, checkpoint } = startCheckpoint(startWeights, cfg, corpus));
    } catch (e) {
      phase = before;
      banner.show('Cannot start from the loaded weights.', sentence(messageOf(e)));
      render();
      return;
    }
  }
  const vocab = header?.config.vocab_size ?? (checkpoint ? cfg.vocab_size : undefined); // the checkpoint's model, exactly

  const gen = ++generation;
  run?.dispose();
  run = null;
  info = null;

  phase = 'starting';
  samples.clear();
  faults.reset();
  renderRunInfo(el.runInfo, null);
  workers.start(d, cfg.backend === 'auto' ? '' : cfg.backend, globalBatch(cfg, d.workers, d.strategy), paramTable(cfg, vocab), cfg);
  if (header) showHistory(header);
  else {
    chart.reset();
    stats.reset(cfg.max_iters);
  }
  render();

  let r: Run;
  try {
    r = await Run.start(cfg, text, d, (e) => onEvent(gen, e), checkpoint && { buffer: checkpoint, losses: header?.losses, valLosses: header?.val_losses });
  } catch (e) {
    const trainedOn = resume && checkpoints.meta?.corpus && checkpoints.meta.corpus !== corpus.name ? checkpoints.meta.corpus : null;
    if (gen === generation) fail(trainedOn ? `${messageOf(e)}. This checkpoint was trained on “${trainedOn}”: choose that text and resume again` : e);
    return;
  }
  if (gen !== generation) return r.dispose();
  checkpoints.clock.restart(); // the first autosave by time is one interval from now
  run = r;
  runDist = d;
  info = r.info;
  renderRunInfo(el.runInfo, info);
  workers.ready(r.infos.map((i) => i.backend.name), r.dist, r.notice, paramTable(cfg, info.vocabSize));
  workers.setPhase('idle');
  if (r.notice) banner.show('Using the ring transport instead.', `${sentence(r.notice)} Serve the page with the Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers (as npm run dev does) to use shared.`, 'warning');
  void readMemory();
  if (info.step >= cfg.max_iters) {
    phase = 'done';
    banner.show('This checkpoint has finished.', `It is at step ${info.step} and max_iters is ${cfg.max_iters}. Raise max_iters in the setup and press “Resume from step ${info.step}” to train further, or sample from it below.`, 'warning');
    render();
    return;
  }
  try {
    const final = await r.run();
    if (gen !== generation || failed()) return;
    phase = final;
    workers.setPhase(final);
    render();
    void readMemory();
    if (final === 'stopped' || final === 'done') void checkpoints.save();
  } catch (e) {
    if (gen === generation && !failed()) fail(e);
  }
}

function onEvent(gen: number, e: TrainEvent): void {
  if (gen !== generation) return; // a late event from a run being disposed
  switch (e.type) {
    case 'step':
      chart.addStep(e.stats.step, e.stats.loss, e.stats.gradNorm);
      if (info && config) recordSpeed(info.backend.name, config, e.stats, runDist?.workers ?? 1);
      stats.onStep(e);
      workers.onStep(e);
      for (const r of faults.onStep(e.stats.step)) {
        chart.markRecovered(r.step);
        workers.markRecovered(r.rank, r.step, r.cause !== 'nan');
        void readMemory(); // the new worker's tensors
      }
      if (e.stats.step % MEMORY_EVERY === 0) void readMemory();
      checkpoints.tick(); // an autosave when the last one is an interval old
      break;
    case 'eval':
      chart.addVal(e.step, e.val);
      stats.onVal(e.val);
      void checkpoints.save();
      void readMemory();
      break;
    case 'sample':
      samples.add(`step ${fmt.count(e.step)} · sampled automatically`, e.text);
      break;
    case 'state':
      if (e.state === 'error') fail(e.message ?? 'a worker reported an error');
      else if (phase !== 'error') {
        phase = e.state;
        workers.setPhase(e.state);
        render();
        if (e.state === 'paused') void checkpoints.save();
      }
      break;
  }
}

/** A checkpoint's loss history on the chart and in the progress panel. */
function showHistory(header: CheckpointHeader): void {
  chart.setHistory(header.losses ?? [], header.val_losses ?? []);
  stats.reset(config?.max_iters ?? header.config.max_iters, header.step, header.losses?.[0] ?? null, header.val_losses?.at(-1)?.[1] ?? null);
}

function control(action: 'pause' | 'resume' | 'stop'): void {
  run?.[action]();
}

/** tf.memory() of every worker, into the Workers panel (one reading at a time). */
let readingMemory = false;
async function readMemory(): Promise<void> {
  const r = run;
  if (!r || readingMemory) return;
  readingMemory = true;
  try {
    const m = await r.memory();
    if (run === r) workers.setMemory(m);
  } finally {
    readingMemory = false;
  }
}

// ---- event wiring (once, for the page's lifetime) -----------------------------------------------------
el.start.addEventListener('click', () => void launch(false));
el.pause.addEventListener('click', () => control('pause'));
// Resume: the paused run, or else the checkpoint saved in this browser (after a reload, a stop, a failure).
el.resume.addEventListener('click', () => {
  if (phase === 'paused') control('resume');
  else if (resumable()) void launch(true);
});
el.stop.addEventListener('click', () => control('stop'));
byId('banner-close').addEventListener('click', banner.hide);
el.copyLink.addEventListener('click', async () => {
  const label = el.copyLink.textContent;
  try {
    await navigator.clipboard.writeText(location.href);
    el.copyLink.textContent = 'Link copied ✓';
  } catch {
    el.copyLink.textContent = 'Copy the address bar instead';
  }
  setTimeout(() => (el.copyLink.textContent = label), 2000);
});
// Leaving (or hiding) the page while a run trains: save now, and ask before leaving; a reload then
// offers the saved checkpoint through the Resume button.
const training = () => phase === 'running' || phase === 'starting';
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden' && phase === 'running') void checkpoints.save();
});
window.addEventListener('beforeunload', (e) => {
  if (!training() && !checkpoints.pending) return;
  if (phase === 'running') void checkpoints.save();
  e.preventDefault();
  e.returnValue = ''; // older browsers ask only when this is set
});
window.addEventListener('unhandledrejection', (e) => banner.show('Something went wrong.', messageOf(e.reason)));
// An uncaught error in a worker also reaches this page's 'error' handler. If it stopped the run, the
// run's own failure (“training worker N crashed: …”, raised through the coordinator in the same task)
// already says so: only speak when nothing else did.
window.addEventListener('error', (e) => {
  const message = e.message;
  setTimeout(() => !failed() && banner.show('Something went wrong.', message), 0);
});

// ---- the Compare view (src/ui/compare): runs this setup under several strategies, side by side --------
const compare = mountCompare(byId('compare'), {
  config: () => config,
  configError: () => configError,
  corpus: () => corpusPanel.corpus,
  bucketMb: () => dist?.bucketMb,
  busy,
  onActiveChange: () => render(),
});

// ---- start-up ------------------------------------------------------------------------------------------
async function boot(): Promise<void> {
  const { setup: fromLink, problems } = fromQuery(location.search, cores);
  form.set(fromLink, true);
  if (problems.length) banner.show('This link could not be used as it is.', problems.join(' '), 'warning');

  await corpusPanel.restore(); // the user's own text from an earlier visit, else Tiny Shakespeare
  await checkpoints.restore(); // a checkpoint from an earlier visit: offer to resume it, with its loss curve
  render();
  document.body.dataset.ready = 'true';
}

void boot();
