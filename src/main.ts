// The page: wires the setup form, the training workers, the chart and the checkpoint store together.
// All training math runs in Web Workers, one per rank (src/ui/run.ts: a Coordinator of ranks and the
// training loop around it); this thread awaits them and moves their results into the DOM.
//
// Life of a run: Start (or Resume from a checkpoint) disposes the previous run's workers, starts
// `workers` new ones (1 for strategy single), waits until every replica is built, then runs the loop.
// Events: 'step' -> progress, chart and the Workers panel, 'eval' -> chart, an autosave and a memory
// reading, 'sample' -> the samples panel, 'state' -> buttons. Pause and stop also save.

import './ui/style.css';
import type { RunConfig } from './model/config';
import { buildParamTable, type ParamTable } from './model/params';
import { decodeCheckpoint, type CheckpointHeader } from './train/checkpoint';
import type { RunState, TrainEvent } from './train/session';
import type { InitInfo } from './parallel/protocol';
import type { DistOptions } from './parallel/coordinator';
import { LossChart } from './ui/chart';
import { Run } from './ui/run';
import { CorpusError, checkLength, describe, fetchDefaultCorpus, readCorpusFile, type Corpus } from './ui/corpus';
import { byId, h } from './ui/dom';
import { SetupForm } from './ui/form';
import * as fmt from './ui/format';
import { SamplesPanel } from './ui/samples';
import { configValues, distValues, fromQuery, globalBatch, toConfig, toDist, toQuery, type Setup } from './ui/setup';
import { StatsPanel } from './ui/stats';
import * as store from './ui/store';
import { WorkersPanel } from './ui/workers-panel';
import { expectedAtRest } from './ui/memory';
import { gradientSync } from './parallel/layout';
import { mountCompare } from './ui/compare/view';

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
  banner: byId('banner'),
  bannerTitle: byId('banner-title'),
  bannerMessage: byId('banner-message'),
  corpusInfo: byId('corpus-info'),
  corpusError: byId('corpus-error'),
  corpusFile: byId<HTMLInputElement>('corpus-file'),
  corpusDefault: byId<HTMLButtonElement>('corpus-default'),
  dropzone: byId('dropzone'),
  ckptInfo: byId('checkpoint-info'),
  ckptError: byId('checkpoint-error'),
  ckptResume: byId<HTMLButtonElement>('resume-checkpoint'),
  ckptDownload: byId<HTMLButtonElement>('download-checkpoint'),
  ckptFile: byId<HTMLInputElement>('checkpoint-file'),
  ckptFileLabel: byId('load-checkpoint-label'),
  ckptForget: byId<HTMLButtonElement>('forget-checkpoint'),
  sampleForm: byId<HTMLFormElement>('sample-form'),
  sampleNow: byId<HTMLButtonElement>('sample-now'),
  sampleError: byId('sample-error'),
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
let corpus: Corpus | null = null;
let run: Run | null = null; // the current run: its workers and training loop
let runDist: DistOptions | null = null; // what the current run was started with (saved with its checkpoints)
let generation = 0; // bumped per launch: events and results of an older run are ignored
let info: InitInfo | null = null; // what the current run's workers built
let phase: Phase = 'idle';
let savedMeta: store.CheckpointMeta | null = null;
let storeAvailable = true;

const cores = navigator.hardwareConcurrency;
const form = new SetupForm(byId('setup'), onSetupChange, cores);
const chart = new LossChart(byId('chart'), byId('chart-empty'));
const stats = new StatsPanel();
const samples = new SamplesPanel(byId('samples'), byId('samples-empty'));
const workers = new WorkersPanel();

// ---- messages -----------------------------------------------------------------------------------------
function showBanner(title: string, message: string, kind: 'error' | 'warning' = 'error'): void {
  el.bannerTitle.textContent = title;
  el.bannerMessage.textContent = message;
  el.banner.dataset.kind = kind;
  el.banner.hidden = false;
}

function hideBanner(): void {
  el.banner.hidden = true;
}

function inline(target: HTMLElement, message: string | null): void {
  target.textContent = message ?? '';
  target.hidden = message === null;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function sentence(msg: string): string {
  return `${msg.charAt(0).toUpperCase()}${msg.slice(1)}${/[.!?]$/.test(msg) ? '' : '.'}`;
}

/** The run failed: say why, keep the workers (rank 0's model may still sample) and the saved checkpoint. */
function fail(e: unknown): void {
  phase = 'error';
  const kept = savedMeta ? ` Your last checkpoint (step ${savedMeta.step}) is kept: use “Resume from step ${savedMeta.step}” to continue.` : '';
  const msg = messageOf(e);
  showBanner('Training stopped.', `${sentence(msg)}${kept}`);
  workers.setPhase('error', msg);
  render();
}

// ---- setup ---------------------------------------------------------------------------------------------
function onSetupChange(s: Setup): void {
  setup = s;
  const r = toConfig(s);
  config = r.config;
  configError = r.error;
  form.showError(r.error);
  const d = toDist(s.dist);
  dist = d.dist;
  distError = d.error;
  form.showDistError(d.error);
  form.showDistHelp(config && dist ? { workers: dist.workers, batchSize: config.batch_size, gradAccum: config.grad_accum, ...globalBatch(config, dist.workers) } : null);
  workers.preview(dist, config?.backend ?? s.values.backend, config && dist ? globalBatch(config, dist.workers) : null);
  if (config && !busy()) stats.setMaxIters(config.max_iters);
  history.replaceState(null, '', location.pathname + toQuery(s) + location.hash);
  render();
}

/** The parameters of the model a config builds (its vocabulary: the tokenizer's, or the run's). */
function paramTable(cfg: RunConfig, vocab?: number): ParamTable {
  return buildParamTable({ ...cfg, vocab_size: vocab ?? (cfg.tokenizer === 'bpe' ? 50257 : corpus?.vocab ?? cfg.vocab_size) });
}

function renderEstimate(): void {
  if (!config) {
    el.estimate.textContent = '';
    workers.previewModel(null);
    return;
  }
  const table = paramTable(config);
  workers.previewModel(table);
  const params = table.total;
  const n = dist?.workers ?? 1;
  const tokensPerStep = globalBatch(config, n).tokens;
  const shards = dist !== null && gradientSync(dist) === 'shard' && n > 1;
  const rest = expectedAtRest(table, dist ?? { strategy: 'single', workers: 1 }, config.backend).bytes;
  el.estimate.replaceChildren(
    h('strong', {}, `≈ ${fmt.compact(params)} parameters`),
    ` · ${fmt.bytes(rest)} for ${shards ? 'a 1/' + n + ' shard of ' : ''}weights, gradients and AdamW state${n > 1 ? ` in each of ${n} workers` : ''} · ${fmt.count(tokensPerStep)} tokens per step`,
  );
  if (config.lr_decay_iters < config.max_iters) {
    el.estimate.append(h('br'), `The learning rate reaches min_lr at step ${fmt.count(config.lr_decay_iters)} (lr_decay_iters) and stays there.`);
  }
}

// ---- buttons and status ----------------------------------------------------------------------------
const busy = () => phase === 'starting' || phase === 'running' || phase === 'paused';
const failed = () => phase === 'error'; // a function: events change `phase` while launch() awaits

function render(): void {
  const ready = config !== null && dist !== null && corpus !== null;
  compare.refresh();
  el.start.disabled = !ready || busy() || compare.active; // one thing at a time on the workers
  el.start.textContent = info && !busy() ? 'Start new run' : 'Start training';
  el.pause.disabled = phase !== 'running';
  el.resume.disabled = phase !== 'paused';
  el.stop.disabled = phase !== 'running' && phase !== 'paused';
  el.state.textContent = STATE_LABELS[phase];
  el.state.dataset.state = phase;
  form.setLocked(busy());
  el.sampleNow.disabled = !run || !info || phase === 'starting' || phase === 'error';

  el.startHint.textContent = !config
    ? `Fix the setup first: ${configError}.`
    : !dist
      ? `Fix the setup first: ${distError}.`
      : !corpus
        ? 'Waiting for the training text…'
        : busy()
          ? 'The setup is locked while a run is going. Stop it to change settings.'
          : savedMeta && !info
            ? 'Start trains a new model from scratch; “Resume” in the Checkpoint panel continues the saved one.'
            : '';
  el.startHint.classList.toggle('problem', !config || !dist);
  renderEstimate();
  renderCheckpoint();
}

function renderInfo(i: InitInfo | null): void {
  if (!i) {
    el.runInfo.replaceChildren();
    return;
  }
  const chip = (label: string, value: string) => h('span', { class: 'chip' }, h('span', {}, label), h('strong', {}, value));
  const b = i.backend;
  const backend = h('p', { class: 'backend' }, h('strong', {}, `Backend: ${b.name}`), ` — ${b.reason}.`);
  if (b.adapter) {
    const a = b.adapter;
    backend.append(` GPU adapter: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' · ') || 'unknown'}${a.fallback ? ' (software fallback)' : ''}.`);
  }
  el.runInfo.replaceChildren(
    backend,
    h('div', { class: 'chips' },
      chip('parameters', fmt.compact(i.numParams)),
      chip('vocabulary', fmt.count(i.vocabSize)),
      chip('train tokens', fmt.count(i.trainTokens)),
      chip('val tokens', fmt.count(i.valTokens)),
    ),
  );
  el.runInfo.dataset.backend = b.name;
  el.runInfo.dataset.numParams = String(i.numParams);
}

// ---- a run ---------------------------------------------------------------------------------------------
async function launch(resume: boolean): Promise<void> {
  if (!config || !dist || !corpus || busy()) return;
  const before = phase;
  phase = 'starting'; // from here on, a second click does nothing
  hideBanner();
  inline(el.sampleError, null);
  render();
  let checkpoint: ArrayBuffer | undefined;
  let header: CheckpointHeader | undefined;
  if (resume) {
    const buf = await store.loadCheckpoint().catch(() => null);
    if (buf) {
      header = store.readHeader(buf);
      // The workers continue the checkpoint's model and optimizer; only max_iters and backend come from
      // the form, and the dist settings from the checkpoint's run (a loaded file has none: the form's).
      // Show exactly that in the form (and so in the URL).
      form.set({
        preset: header.config.preset,
        values: { ...configValues(header.config), max_iters: setup.values.max_iters, backend: setup.values.backend },
        dist: savedMeta?.dist ? distValues(savedMeta.dist) : setup.dist,
      }, true);
      checkpoint = buf;
    } else showBanner('No checkpoint to resume.', 'The saved checkpoint could not be read from this browser’s storage.');
    if (!buf || !config || !dist) {
      phase = before; // (an invalid config is explained in the setup panel)
      render();
      return;
    }
  }
  const cfg: RunConfig = config;
  const d: DistOptions = dist;
  const text = corpus.text;

  const gen = ++generation;
  run?.dispose();
  run = null;
  info = null;

  phase = 'starting';
  samples.clear();
  renderInfo(null);
  workers.start(d, cfg.backend === 'auto' ? '' : cfg.backend, globalBatch(cfg, d.workers), paramTable(cfg));
  if (header) {
    chart.setHistory(header.losses ?? [], header.val_losses ?? []);
    stats.reset(cfg.max_iters, header.step, header.losses?.[0] ?? null, header.val_losses?.at(-1)?.[1] ?? null);
  } else {
    chart.reset();
    stats.reset(cfg.max_iters);
  }
  render();

  let r: Run;
  try {
    r = await Run.start(cfg, text, d, (e) => onEvent(gen, e), checkpoint && { buffer: checkpoint, losses: header?.losses, valLosses: header?.val_losses });
  } catch (e) {
    const trainedOn = resume && savedMeta?.corpus && savedMeta.corpus !== corpus.name ? savedMeta.corpus : null;
    if (gen === generation) fail(trainedOn ? `${messageOf(e)}. This checkpoint was trained on “${trainedOn}”: choose that text and resume again` : e);
    return;
  }
  if (gen !== generation) return r.dispose();
  run = r;
  runDist = d;
  info = r.info;
  renderInfo(info);
  workers.ready(r.infos.map((i) => i.backend.name), r.dist, r.notice, paramTable(cfg, info.vocabSize));
  workers.setPhase('idle');
  if (r.notice) showBanner('Using the ring transport instead.', `${sentence(r.notice)} Serve the page with the Cross-Origin-Opener-Policy and Cross-Origin-Embedder-Policy headers (as npm run dev does) to use shared.`, 'warning');
  void readMemory();
  if (info.step >= cfg.max_iters) {
    phase = 'done';
    showBanner('This checkpoint has finished.', `It is at step ${info.step} and max_iters is ${cfg.max_iters}. Raise max_iters in the setup and press “Resume from step ${info.step}” to train further, or sample from it below.`, 'warning');
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
    if (final === 'stopped' || final === 'done') void save();
  } catch (e) {
    if (gen === generation && !failed()) fail(e);
  }
}

function onEvent(gen: number, e: TrainEvent): void {
  if (gen !== generation) return; // a late event from a run being disposed
  switch (e.type) {
    case 'step':
      chart.addStep(e.stats.step, e.stats.loss);
      stats.onStep(e);
      workers.onStep(e);
      if (e.stats.step % MEMORY_EVERY === 0) void readMemory();
      break;
    case 'eval':
      chart.addVal(e.step, e.val);
      stats.onVal(e.val);
      void save();
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
        if (e.state === 'paused') void save();
      }
      break;
  }
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

// ---- checkpoints ---------------------------------------------------------------------------------------
let saving: Promise<void> | null = null;
let saveAgain = false;

/** Exports the run's checkpoint into IndexedDB; overlapping requests collapse into one more save. */
function save(): Promise<void> {
  if (saving) {
    saveAgain = true;
    return saving;
  }
  saving = (async () => {
    do {
      saveAgain = false;
      await saveOnce();
    } while (saveAgain);
  })().finally(() => (saving = null));
  return saving;
}

async function saveOnce(): Promise<void> {
  const r = run;
  if (!r || !info || phase === 'error' || !storeAvailable) return;
  let buf: ArrayBuffer;
  try {
    buf = await r.exportCheckpoint();
  } catch (e) {
    if (run === r && !failed()) showBanner('Could not export a checkpoint.', messageOf(e));
    return;
  }
  if (run !== r) return; // a new run started meanwhile; its own saves follow
  const meta = store.metaFor(buf, 'autosave', corpus?.name ?? '', runDist ?? undefined);
  try {
    await store.saveCheckpoint(buf, meta);
    savedMeta = meta;
    renderCheckpoint();
  } catch (e) {
    showBanner('Could not save the checkpoint in this browser.', `${messageOf(e)}. Use “Download .bin” to keep your model.`, 'warning');
  }
}

function renderCheckpoint(): void {
  const m = savedMeta;
  el.ckptDownload.disabled = !m;
  el.ckptForget.hidden = !m || busy();
  el.ckptResume.hidden = !m || busy();
  el.ckptFileLabel.classList.toggle('disabled', busy());
  el.ckptFile.disabled = busy();
  if (!storeAvailable) {
    el.ckptInfo.textContent = 'This browser does not allow storage for this page, so nothing is saved automatically.';
    return;
  }
  if (!m) {
    el.ckptInfo.textContent = 'Saved automatically after every evaluation and when you pause or stop.';
    return;
  }
  const c = m.config;
  const finished = config ? m.step >= config.max_iters : false;
  el.ckptResume.textContent = finished ? `Open step ${fmt.count(m.step)}` : `Resume from step ${fmt.count(m.step)}`;
  el.ckptResume.disabled = !config || !corpus;
  const how = !m.dist ? null
    : m.dist.strategy === 'ddp' ? `ddp × ${m.dist.workers} (${m.dist.transport})`
      : m.dist.strategy === 'fsdp' ? `fsdp × ${m.dist.workers} (${m.dist.shard ?? 'full'}, ${m.dist.transport}${m.dist.prefetch === false ? ', no prefetch' : ''})`
        : 'one worker';
  el.ckptResume.title = `Continue ${c.preset} (${c.n_layer} layers × ${c.n_embd}) from step ${m.step}${how ? ` with ${how}` : ''}, saved ${fmt.date(m.savedAt)}`;
  el.ckptInfo.replaceChildren(
    h('strong', {}, `Step ${fmt.count(m.step)}`),
    ` · ${c.preset} (${c.n_layer} × ${c.n_embd})${how ? ` · ${how}` : ''} · ${m.source === 'autosave' ? 'saved' : `loaded from ${m.source}`} ${fmt.date(m.savedAt)} · ${fmt.bytes(m.bytes)}`,
    ...(finished ? [h('br'), h('span', { class: 'muted' }, `It reached max_iters (${config!.max_iters}): raise max_iters to train it further.`)] : []),
  );
  el.ckptInfo.dataset.step = String(m.step);
}

async function downloadCheckpoint(): Promise<void> {
  const buf = await store.loadCheckpoint().catch(() => null);
  if (!buf || !savedMeta) return inline(el.ckptError, 'The saved checkpoint could not be read from this browser’s storage.');
  const url = URL.createObjectURL(new Blob([buf], { type: 'application/octet-stream' }));
  h('a', { href: url, download: `gpt2-${savedMeta.preset}-step${savedMeta.step}.bin` }).click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function loadCheckpointFile(file: File): Promise<void> {
  inline(el.ckptError, null);
  let header: CheckpointHeader;
  const buf = await file.arrayBuffer();
  try {
    header = decodeCheckpoint(buf).header; // every check, with a message that says what is wrong
  } catch (e) {
    return inline(el.ckptError, `“${file.name}” cannot be used: ${messageOf(e)}.`);
  }
  const meta = store.metaFor(buf, file.name, corpus?.name ?? '');
  try {
    await store.saveCheckpoint(buf, meta);
  } catch (e) {
    return inline(el.ckptError, `“${file.name}” is a valid checkpoint, but this browser would not store it: ${messageOf(e)}.`);
  }
  savedMeta = meta;
  if (!busy()) {
    chart.setHistory(header.losses ?? [], header.val_losses ?? []);
    stats.reset(config?.max_iters ?? header.config.max_iters, header.step, header.losses?.[0] ?? null, header.val_losses?.at(-1)?.[1] ?? null);
  }
  render();
}

// ---- corpus --------------------------------------------------------------------------------------------
function setCorpus(c: Corpus): void {
  corpus = c;
  inline(el.corpusError, null);
  el.corpusInfo.replaceChildren(
    h('strong', {}, c.name),
    ` · ${fmt.bytes(c.bytes)} · ${fmt.count(c.chars)} characters · ${fmt.count(c.vocab)} distinct`,
  );
  el.corpusInfo.dataset.name = c.name;
  el.corpusDefault.hidden = !c.custom;
  render();
}

async function useFile(file: File): Promise<void> {
  if (busy()) return inline(el.corpusError, 'Stop the run before changing the training text.');
  try {
    const c = await readCorpusFile(file, config?.block_size ?? 64);
    setCorpus(c);
    await store.saveCorpus({ name: c.name, text: c.text }).catch(() => {});
  } catch (e) {
    inline(el.corpusError, e instanceof CorpusError ? messageOf(e) : `“${file.name}” could not be read: ${messageOf(e)}`);
  }
}

async function useDefaultCorpus(): Promise<void> {
  try {
    setCorpus(await fetchDefaultCorpus());
    await store.saveCorpus(null).catch(() => {});
  } catch (e) {
    el.corpusInfo.textContent = 'No training text yet.';
    inline(el.corpusError, messageOf(e));
  }
}

// ---- sampling on demand --------------------------------------------------------------------------------
async function sampleNow(): Promise<void> {
  const r = run;
  if (!r || !info) return;
  const num = (id: string) => Number(byId<HTMLInputElement>(id).value.trim() || NaN);
  const prompt = byId<HTMLInputElement>('sample-prompt').value;
  const temperature = num('sample-temperature');
  const topK = num('sample-topk');
  const tokens = num('sample-length');
  const problem = !(temperature >= 0 && temperature <= 5) ? 'temperature must be a number from 0 (always the likeliest token) to 5'
    : !(Number.isInteger(topK) && topK >= 0) ? 'top-k must be a whole number (0 keeps every token)'
      : !(Number.isInteger(tokens) && tokens >= 1 && tokens <= 2000) ? 'length must be a whole number of tokens from 1 to 2000'
        : null;
  inline(el.sampleError, problem);
  if (problem) return;
  el.sampleNow.disabled = true;
  el.sampleNow.textContent = 'Sampling…';
  try {
    const step = stats.currentStep;
    const text = await r.sample({ prompt, tokens, temperature, topK, seed: Math.floor(Math.random() * 2 ** 31) });
    if (run === r) samples.add(`step ${fmt.count(step)} · your sample · temperature ${temperature} · top-k ${topK}`, text, prompt);
  } catch (e) {
    if (run === r) inline(el.sampleError, messageOf(e));
  } finally {
    el.sampleNow.textContent = 'Sample now';
    render();
  }
}

// ---- event wiring (once, for the page's lifetime) -----------------------------------------------------
el.start.addEventListener('click', () => void launch(false));
el.ckptResume.addEventListener('click', () => void launch(true));
el.pause.addEventListener('click', () => control('pause'));
el.resume.addEventListener('click', () => control('resume'));
el.stop.addEventListener('click', () => control('stop'));
el.sampleForm.addEventListener('submit', (e) => {
  e.preventDefault();
  void sampleNow();
});
byId('banner-close').addEventListener('click', hideBanner);
el.ckptDownload.addEventListener('click', () => void downloadCheckpoint());
el.ckptFile.addEventListener('change', () => {
  const f = el.ckptFile.files?.[0];
  el.ckptFile.value = '';
  if (f) void loadCheckpointFile(f);
});
el.ckptForget.addEventListener('click', async () => {
  await store.forgetCheckpoint().catch(() => {});
  savedMeta = null;
  render();
});
el.corpusFile.addEventListener('change', () => {
  const f = el.corpusFile.files?.[0];
  el.corpusFile.value = '';
  if (f) void useFile(f);
});
el.corpusDefault.addEventListener('click', () => void useDefaultCorpus());
// A file dropped anywhere on the page (not only on the drop zone) must not make the browser navigate
// away from a run: a .bin is a checkpoint, anything else a training text.
window.addEventListener('dragover', (e) => {
  e.preventDefault();
  el.dropzone.classList.add('over');
});
window.addEventListener('dragleave', (e) => e.relatedTarget === null && el.dropzone.classList.remove('over'));
window.addEventListener('drop', (e) => {
  e.preventDefault();
  el.dropzone.classList.remove('over');
  const f = e.dataTransfer?.files[0];
  if (!f) return;
  if (/\.bin$/i.test(f.name)) {
    if (busy()) inline(el.ckptError, 'Stop the run before loading a checkpoint.');
    else void loadCheckpointFile(f);
  } else void useFile(f);
});
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
window.addEventListener('unhandledrejection', (e) => showBanner('Something went wrong.', messageOf(e.reason)));
// An uncaught error in a worker also reaches this page's 'error' handler. If it stopped the run, the
// run's own failure (“training worker N crashed: …”, raised through the coordinator in the same task)
// already says so: only speak when nothing else did.
window.addEventListener('error', (e) => {
  const message = e.message;
  setTimeout(() => !failed() && showBanner('Something went wrong.', message), 0);
});

// ---- the Compare view (src/ui/compare): runs this setup under several strategies, side by side --------
const compare = mountCompare(byId('compare'), {
  config: () => config,
  configError: () => configError,
  corpus: () => corpus,
  bucketMb: () => dist?.bucketMb,
  busy,
  onActiveChange: () => render(),
});

// ---- start-up ------------------------------------------------------------------------------------------
async function boot(): Promise<void> {
  const { setup: fromLink, problems } = fromQuery(location.search, cores);
  form.set(fromLink, true);
  if (problems.length) showBanner('This link could not be used as it is.', problems.join(' '), 'warning');

  // The user's own text from an earlier visit, else Tiny Shakespeare.
  const own = await store.loadCorpus().catch(() => {
    storeAvailable = false;
    return null;
  });
  if (own) {
    const c = describe(own.name, own.text, true, new TextEncoder().encode(own.text).length);
    try {
      checkLength(c, config?.block_size ?? 1);
      setCorpus(c);
    } catch {
      await useDefaultCorpus();
    }
  } else await useDefaultCorpus();

  // A checkpoint from an earlier visit: offer to resume it, and show its loss curve.
  savedMeta = storeAvailable ? await store.loadMeta().catch(() => null) : null;
  if (savedMeta) {
    const buf = await store.loadCheckpoint().catch(() => null);
    if (buf) {
      const header = store.readHeader(buf);
      chart.setHistory(header.losses ?? [], header.val_losses ?? []);
      stats.reset(config?.max_iters ?? header.config.max_iters, header.step, header.losses?.[0] ?? null, header.val_losses?.at(-1)?.[1] ?? null);
    } else savedMeta = null;
  }
  render();
  document.body.dataset.ready = 'true';
}

void boot();
