// The Checkpoint panel: the run's last checkpoint, kept in this browser (IndexedDB, src/ui/store.ts).
// It is saved after every evaluation, by time while training (tick(): at least every AUTOSAVE_MS, so a
// reload or a crash loses at most about that much training whatever the eval cadence), on pause/stop and
// when the page is hidden or left (save(): one save at a time, later requests collapse into one more), can
// be downloaded (as this trainer's .ckpt, llm.c's .bin or Hugging Face's
// model.safetensors + config.json), loaded back from a file, deleted, or resumed.
// Loading takes any model file (src/ui/model-files.ts): a trainer checkpoint (by its content, whatever
// its name) becomes the saved checkpoint, offered for resuming; llm.c's and Hugging Face's weights go to
// the page (useWeights) as the weights the next Start begins from (src/ui/weights.ts).
//
// The panel owns its elements, the saved checkpoint's summary (meta) and the save queue; the page hands it
// getters for what it reads (the current run, the setup, the corpus) and callbacks for what it changes on
// the page (resume, the loss history of a loaded checkpoint, a redraw).

import type { RunConfig } from '../model/config';
import type { DistOptions } from '../parallel/coordinator';
import type { CheckpointHeader } from '../train/checkpoint';
import type { Corpus } from './corpus';
import { byId, h } from './dom';
import { messageOf } from './messages';
import * as fmt from './format';
import { exportFiles, readModelFiles, type DownloadFormat, type LoadedModel } from './model-files';
import type { Run } from './run';
import * as store from './store';

/** What the panel needs from the page. */
export interface CheckpointPage {
  run(): Run | null; // the current run, once its workers are built
  runDist(): DistOptions | null; // what it was started with (saved with its checkpoints)
  config(): RunConfig | null; // the setup's config, null while it is invalid
  corpus(): Corpus | null;
  busy(): boolean; // a run is starting, running or paused
  failed(): boolean; // the run stopped with an error
  resume(): void; // “Resume from step N”
  showHistory(header: CheckpointHeader): void; // a checkpoint's loss curve on the chart and in the stats
  warn(title: string, message: string, kind?: 'error' | 'warning'): void; // the page's banner
  changed(): void; // redraw the page (the saved checkpoint changed)
  useWeights(model: LoadedModel): void; // llm.c's or Hugging Face's weights: the next Start's; throws what does not fit
}

/** Training time between two autosaves at most (plus the save itself and the step in flight). */
export const AUTOSAVE_MS = 20_000;
/** A save may take at most this share of the training time: a model whose save takes seconds is saved less often. */
const SAVE_SHARE = 0.2;

/**
 * When the next autosave is due: AUTOSAVE_MS after the last one started, or longer when saves are slow
 * (at most SAVE_SHARE of the time spent saving). Pure, so the Node tests can drive it with their own clock.
 */
export class AutosaveClock {
  private last: number;
  private lastDuration = 0;

  constructor(private readonly now: () => number = Date.now, readonly every = AUTOSAVE_MS) {
    this.last = now();
  }

  /** The interval now in force. */
  get interval(): number {
    return Math.max(this.every, this.lastDuration / SAVE_SHARE);
  }

  /** A run (re)started: its first autosave is one interval away. */
  restart(): void {
    this.last = this.now();
  }

  due(): boolean {
    return this.now() - this.last >= this.interval;
  }

  /** A save started (any save: by time, at an evaluation, on pause); returns a function to call when it ends. */
  started(): () => void {
    const t = this.now();
    this.last = t;
    return () => (this.lastDuration = this.now() - t);
  }
}

export class CheckpointPanel {
  private readonly info = byId('checkpoint-info');
  private readonly error = byId('checkpoint-error');
  private readonly resumeButton = byId<HTMLButtonElement>('resume-checkpoint');
  private readonly downloads: Record<DownloadFormat, HTMLButtonElement> = {
    checkpoint: byId<HTMLButtonElement>('download-checkpoint'),
    llmc: byId<HTMLButtonElement>('download-llmc'),
    hf: byId<HTMLButtonElement>('download-hf'),
  };
  private readonly file = byId<HTMLInputElement>('checkpoint-file');
  private readonly fileLabel = byId('load-checkpoint-label');
  private readonly forgetButton = byId<HTMLButtonElement>('forget-checkpoint');
  private saved: store.CheckpointMeta | null = null;
  private storeAvailable = true;
  private saving: Promise<void> | null = null;
  private saveAgain = false;
  readonly clock = new AutosaveClock();
  private downloading = false; // one download (of one or more files) at a time

  constructor(private readonly page: CheckpointPage) {
    this.resumeButton.addEventListener('click', () => page.resume());
    for (const [format, button] of Object.entries(this.downloads)) button.addEventListener('click', () => void this.download(format as DownloadFormat));
    this.file.addEventListener('change', () => {
      const files = [...(this.file.files ?? [])];
      this.file.value = '';
      if (files.length) void this.loadFiles(files);
    });
    this.forgetButton.addEventListener('click', async () => {
      await store.forgetCheckpoint().catch(() => {});
      this.saved = null;
      page.changed();
    });
  }

  /** The saved checkpoint's summary, null when there is none. */
  get meta(): store.CheckpointMeta | null {
    return this.saved;
  }

  /**
   * At start-up: the checkpoint from an earlier visit, offered for resuming, with its loss curve. A browser
   * that gives the page no storage says so here, and nothing is saved automatically.
   */
  async restore(): Promise<void> {
    this.saved = await store.loadMeta().catch(() => {
      this.storeAvailable = false;
      return null;
    });
    if (!this.saved) return;
    const buf = await store.loadCheckpoint().catch(() => null);
    if (buf) this.page.showHistory(store.readHeader(buf));
    else this.saved = null;
  }

  /** The saved checkpoint to resume from; null (and a banner) when it cannot be read. */
  async loadSaved(): Promise<{ buffer: ArrayBuffer; header: CheckpointHeader } | null> {
    const buffer = await store.loadCheckpoint().catch(() => null);
    if (buffer) return { buffer, header: store.readHeader(buffer) };
    this.page.warn('No checkpoint to resume.', 'The saved checkpoint could not be read from this browser’s storage.');
    return null;
  }

  /** After every step: saves when the last save is an autosave interval old (AutosaveClock). */
  tick(): void {
    if (!this.saving && this.page.run() && this.clock.due()) void this.save();
  }

  /** A save is running or queued (leaving the page now could lose it). */
  get pending(): boolean {
    return this.saving !== null;
  }

  /** Resolves when no save is running or queued (before resuming from the saved checkpoint). */
  async settled(): Promise<void> {
    while (this.saving) await this.saving.catch(() => {});
  }

  /** Exports the run's checkpoint into IndexedDB; overlapping requests collapse into one more save. */
  save(): Promise<void> {
    if (this.saving) {
      this.saveAgain = true;
      return this.saving;
    }
    this.saving = (async () => {
      do {
        this.saveAgain = false;
        await this.saveOnce();
      } while (this.saveAgain);
    })().finally(() => (this.saving = null));
    return this.saving;
  }

  private async saveOnce(): Promise<void> {
    const r = this.page.run();
    if (!r || this.page.failed() || !this.storeAvailable) return;
    const ended = this.clock.started();
    try {
      await this.exportAndStore(r);
    } finally {
      ended();
    }
  }

  private async exportAndStore(r: Run): Promise<void> {
    let buf: ArrayBuffer;
    try {
      buf = await r.exportCheckpoint();
    } catch (e) {
      if (this.page.run() === r && !this.page.failed()) this.page.warn('Could not export a checkpoint.', messageOf(e));
      return;
    }
    if (this.page.run() !== r) return; // a new run started meanwhile; its own saves follow
    const meta = store.metaFor(buf, 'autosave', this.page.corpus()?.name ?? '', this.page.runDist() ?? undefined);
    try {
      await store.saveCheckpoint(buf, meta);
      this.saved = meta;
      this.page.changed(); // the page's Resume button offers the newest step
    } catch (e) {
      this.page.warn('Could not save the checkpoint in this browser.', `${messageOf(e)}. Download the checkpoint (.ckpt) to keep your model.`, 'warning');
    }
  }

  /** Model files dropped anywhere on the page. */
  drop(files: File[]): void {
    if (this.page.busy()) this.showError('Stop the run before loading a checkpoint or a model.');
    else void this.loadFiles(files);
  }

  render(): void {
    const m = this.saved;
    const busy = this.page.busy();
    const config = this.page.config();
    for (const button of Object.values(this.downloads)) button.disabled = !m || this.downloading;
    this.forgetButton.hidden = !m || busy;
    this.resumeButton.hidden = !m || busy;
    this.fileLabel.classList.toggle('disabled', busy);
    this.file.disabled = busy;
    if (!this.storeAvailable) {
      this.info.textContent = 'This browser does not allow storage for this page, so nothing is saved automatically.';
      return;
    }
    if (!m) {
      this.info.textContent = AUTOSAVE_LINE;
      return;
    }
    const c = m.config;
    const finished = config ? m.step >= config.max_iters : false;
    this.resumeButton.textContent = finished ? `Open step ${fmt.count(m.step)}` : `Resume from step ${fmt.count(m.step)}`;
    this.resumeButton.disabled = !config || !this.page.corpus();
    const how = !m.dist ? null
      : m.dist.strategy === 'ddp' ? `ddp × ${m.dist.workers} (${m.dist.transport})`
        : m.dist.strategy === 'fsdp' ? `fsdp × ${m.dist.workers} (${m.dist.shard ?? 'full'}, ${m.dist.transport}${m.dist.prefetch === false ? ', no prefetch' : ''})`
          : m.dist.strategy === 'tp' ? `tp × ${m.dist.workers} (${m.dist.transport})`
            : m.dist.strategy === 'pp' ? `pp × ${m.dist.workers} (${m.dist.schedule ?? '1f1b'}, ${m.dist.microbatches ?? 4} micro-batches, ${m.dist.transport})`
              : 'one worker';
    this.resumeButton.title = `Continue ${c.preset} (${c.n_layer} layers × ${c.n_embd}) from step ${m.step}${how ? ` with ${how}` : ''}, saved ${fmt.date(m.savedAt)}`;
    this.info.replaceChildren(
      h('strong', {}, `Step ${fmt.count(m.step)}`),
      ` · ${c.preset} (${c.n_layer} × ${c.n_embd})${how ? ` · ${how}` : ''} · ${m.source === 'autosave' ? 'saved' : `loaded from ${m.source}`} ${fmt.date(m.savedAt)} · ${fmt.bytes(m.bytes)}`,
      ...(finished ? [h('br'), h('span', { class: 'muted' }, `It reached max_iters (${config!.max_iters}): raise max_iters to train it further.`)] : []),
    );
    this.info.dataset.step = String(m.step);
  }

  /**
   * The saved checkpoint as files: as it is (.ckpt), or decoded and written as llm.c's model file or
   * Hugging Face's files (each its own download; the browser may ask once to allow several).
   */
  private async download(format: DownloadFormat): Promise<void> {
    this.showError(null);
    const buf = await store.loadCheckpoint().catch(() => null);
    if (!buf || !this.saved) return this.showError('The saved checkpoint could not be read from this browser’s storage.');
    let files: [string, ArrayBuffer | string][];
    try {
      files = exportFiles(buf, format, `gpt2-${this.saved.preset}-step${this.saved.step}`);
    } catch (e) {
      return this.showError(`The saved checkpoint cannot be exported: ${messageOf(e)}.`);
    }
    this.downloading = true;
    this.render();
    try {
      for (const [i, [name, data]] of files.entries()) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, 250)); // one download at a time
        const url = URL.createObjectURL(new Blob([data], { type: typeof data === 'string' ? 'application/json' : 'application/octet-stream' }));
        h('a', { href: url, download: name }).click();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
      }
    } finally {
      this.downloading = false;
      this.render();
    }
  }

  /**
   * Files chosen or dropped: a trainer checkpoint is stored as the checkpoint to resume; llm.c's or
   * Hugging Face's weights become the next Start's (the page checks them against the setup and the text).
   * A file that cannot be used changes nothing and says why, in one line.
   */
  private async loadFiles(files: File[]): Promise<void> {
    this.showError(null);
    let model: LoadedModel;
    try {
      model = await readModelFiles(files); // every check, with a message that says what is wrong
    } catch (e) {
      return this.showError(sentence(messageOf(e)));
    }
    if (!model.weights.checkpoint || !model.bytes) {
      try {
        this.page.useWeights(model);
      } catch (e) {
        this.showError(sentence(messageOf(e)));
      }
      return;
    }
    const buf = model.bytes;
    const meta = store.metaFor(buf, model.source, this.page.corpus()?.name ?? '');
    try {
      await store.saveCheckpoint(buf, meta);
    } catch (e) {
      return this.showError(`“${model.source}” is a valid checkpoint, but this browser would not store it: ${messageOf(e)}.`);
    }
    this.saved = meta;
    if (!this.page.busy()) this.page.showHistory(model.weights.checkpoint.header);
    this.page.changed();
  }

  private showError(message: string | null): void {
    this.error.textContent = message ?? '';
    this.error.hidden = message === null;
  }
}

const AUTOSAVE_LINE = `Saved automatically every ${AUTOSAVE_MS / 1000} s while training, after every evaluation, and when you pause, stop or leave the page.`;

function sentence(msg: string): string {
  return /[.!?]$/.test(msg) ? msg : `${msg}.`;
}

