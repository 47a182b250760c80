// (Long on purpose: every scenario shares one dev server and one browser, which take most of the time.)
// The page end to end: a Vite dev server and headless Chromium. Trains the tiny preset on wasm from a
// shared link, with one worker, with DDP over 2 workers (ring, shared, star) and with FSDP FULL_SHARD
// over 2, checks the loss goes down, that samples, worker cards (with memory bars by kind) and a
// checkpoint appear, that the checkpoint (and its dist settings) is offered after a reload, that a worker
// broken from the "Break something" menu or crashing on its own is replaced and the run goes on (listed
// in #recoveries), that a lone worker's crash stops the run with a message, that bad links and bad
// files give specific messages, and that models go in and out: a run starts from llm.c's weights (or
// Hugging Face's, dropped together), and the saved model downloads as a checkpoint (.ckpt), as llm.c's
// .bin and as Hugging Face's files, which parse back with the fixture's shape.
// Run: npx vitest run --project node test/page.test.ts
// (screenshots: test-results/page.png, test-results/page-ddp.png, test-results/page-fsdp.png)

import { mkdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Download, Page } from 'playwright-core';
import { root, startHarness, type Harness } from './harness';
import { readLlmcModel } from '../src/model/llmc';
import { readHf, writeHf } from '../src/model/hf';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('page-test');
});

afterAll(async () => {
  await h?.close();
});

/** A fresh page (and profile: its own IndexedDB) that records console errors and uncaught exceptions. */
async function open(query: string): Promise<{ page: Page; errors: string[] }> {
  const context = await h.browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(h.base + '/' + query);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return { page, errors };
}

const num = (s: string | null | undefined) => (s ? Number(s) : NaN);
const arrayBuffer = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
const downloaded = async (d: Download) => readFileSync((await d.path())!);

/** The data attributes of every worker card. */
async function cards(page: Page): Promise<Record<string, string>[]> {
  return page.locator('#workers .worker').evaluateAll((els) => els.map((el) => ({ ...(el as HTMLElement).dataset }) as Record<string, string>));
}

/** Clicks Start and waits until the run has finished; returns the progress panel's numbers. */
async function trainToEnd(page: Page, timeout = 100_000) {
  await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
  await page.click('#start');
  await page.waitForSelector('#state[data-state="done"]', { timeout });
  const d = await page.locator('#stats').evaluate((el) => ({ ...(el as HTMLElement).dataset }));
  return { step: num(d.step), first: num(d.firstLoss), last: num(d.lastLoss), val: num(d.valLoss), gradNorm: num(d.gradNorm) };
}

describe('the trainer page', () => {
  it('trains tiny on wasm from a link: loss goes down, samples and a checkpoint appear', async () => {
    const { page, errors } = await open('?preset=tiny&backend=wasm&max_iters=40&eval_interval=10');
    // The link filled the form.
    expect(await page.inputValue('#f-max_iters')).toBe('40');
    expect(await page.inputValue('#f-backend')).toBe('wasm');
    expect(await page.isVisible('#config-error')).toBe(false);

    const start = page.locator('#start');
    await expect.poll(() => start.isEnabled(), { timeout: 30_000 }).toBe(true);
    await start.click();
    await page.waitForSelector('#state[data-state="done"]', { timeout: 100_000 });

    const stats = await page.locator('#stats').evaluate((el) => ({ ...(el as HTMLElement).dataset }));
    expect(num(stats.step)).toBe(40);
    const first = num(stats.firstLoss);
    const last = num(stats.lastLoss);
    expect(first).toBeGreaterThan(3.5); // ~ln(65) at initialisation
    expect(last).toBeLessThan(first);
    expect(num(stats.valLoss)).toBeLessThan(first);
    // The last step's gradient norm (before clipping), beside the loss and as a line in the chart.
    const gradNorm = num(stats.gradNorm);
    expect(Number.isFinite(gradNorm)).toBe(true);
    expect(gradNorm).toBeGreaterThan(0);
    expect(await page.textContent('#s-gn')).not.toBe('–');
    expect(await page.textContent('#chart .u-legend')).toContain('grad norm');
    // After a run, the estimate says what a step of the setup should take on this backend.
    await expect.poll(() => page.textContent('#estimate')).toMatch(/A step should take about \d+ ms of compute per worker on wasm \([\d.]+ GFLOP at the [\d.]+ GFLOP\/s of your last wasm run here/);

    // What the page says about the run.
    await expect.poll(() => page.textContent('#run-info')).toContain('Backend: wasm');
    expect(await page.textContent('#run-info')).toContain('chosen in the settings');
    expect(await page.textContent('#step-label')).toBe('step 40 / 40');
    expect(await page.locator('#samples .sample').count()).toBeGreaterThan(0);
    expect((await page.locator('#samples .sample-text').first().textContent())!.length).toBeGreaterThan(50);
    expect(await page.locator('#chart canvas').count()).toBe(1);

    // One worker, with its last step's time split and its memory.
    const [card] = await cards(page);
    expect(await page.locator('#workers .worker').count()).toBe(1);
    expect(card.state).toBe('idle');
    expect(num(card.computeMs)).toBeGreaterThan(0);
    expect(num(card.bytesSent)).toBe(0); // nothing to exchange with one worker
    expect(num(card.numTensors)).toBeGreaterThan(0);
    expect(await page.textContent('#global-batch')).toContain('1 worker × 4 batch_size × 1 grad_accum = 4 sequences (128 tokens) per step');

    // The final checkpoint is in IndexedDB.
    await page.waitForSelector('#checkpoint-info[data-step="40"]', { timeout: 20_000 });
    expect(await page.isEnabled('#download-checkpoint')).toBe(true);

    // Sample now, with a prompt.
    await page.fill('#sample-prompt', 'ROMEO:');
    await page.click('#sample-now');
    await expect.poll(() => page.locator('#samples .sample header').first().textContent(), { timeout: 20_000 }).toContain('your sample');
    expect(await page.locator('#samples .sample mark.prompt').first().textContent()).toBe('ROMEO:');

    mkdirSync(root + 'test-results', { recursive: true });
    await page.screenshot({ path: root + 'test-results/page.png', fullPage: true });

    // After a reload the checkpoint is offered, with its loss curve.
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    await expect.poll(() => page.textContent('#resume-checkpoint')).toContain('step 40');
    expect(await page.isVisible('#chart-empty')).toBe(false);

    // Download it, then load it back: a cut-off copy is refused with the decoder's message, the whole one is taken.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-checkpoint')]);
    expect(download.suggestedFilename()).toBe('gpt2-tiny-step40.ckpt');
    const bytes = readFileSync((await download.path())!);
    // (named .bin, as older downloads were: a checkpoint is recognised by its content)
    await page.setInputFiles('#checkpoint-file', { name: 'cut.bin', mimeType: 'application/octet-stream', buffer: bytes.subarray(0, bytes.length - 64) });
    await expect.poll(() => page.textContent('#checkpoint-error')).toContain('truncated or corrupt');
    await page.setInputFiles('#checkpoint-file', { name: 'mine.bin', mimeType: 'application/octet-stream', buffer: bytes });
    await expect.poll(() => page.textContent('#checkpoint-info')).toContain('loaded from mine.bin');
    expect(await page.isVisible('#checkpoint-error')).toBe(false);

    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('pauses, resumes and stops; each saves a checkpoint; a new worker continues from it', async () => {
    const { page, errors } = await open('?preset=tiny&backend=wasm&max_iters=5000&eval_interval=0');
    const step = async () => num(await page.getAttribute('#stats', 'data-step'));
    const saved = async () => num(await page.getAttribute('#checkpoint-info', 'data-step'));
    await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
    await page.click('#start');
    await expect.poll(step, { timeout: 60_000 }).toBeGreaterThan(10);

    await page.click('#pause');
    await page.waitForSelector('#state[data-state="paused"]');
    await expect.poll(async () => (await saved()) === (await step()), { timeout: 20_000 }).toBe(true); // pause saved
    const pausedAt = await step();
    await page.waitForTimeout(400);
    expect(await step()).toBe(pausedAt);

    await page.click('#resume');
    await expect.poll(step, { timeout: 20_000 }).toBeGreaterThan(pausedAt + 5);
    await page.click('#stop');
    await page.waitForSelector('#state[data-state="stopped"]');
    await expect.poll(async () => (await saved()) === (await step()), { timeout: 20_000 }).toBe(true); // stop saved
    const stoppedAt = await step();
    const firstLoss = await page.getAttribute('#stats', 'data-first-loss');
    expect(await page.textContent('#resume-checkpoint')).toBe(`Resume from step ${stoppedAt}`);

    await page.click('#resume-checkpoint');
    await page.waitForSelector('#state[data-state="running"]');
    await expect.poll(step, { timeout: 20_000 }).toBeGreaterThan(stoppedAt + 5);
    expect(await page.getAttribute('#stats', 'data-first-loss')).toBe(firstLoss); // the loss history came along
    await expect.poll(() => page.workers().length).toBe(1); // the first run's worker was terminated
    // One worker: nothing to recover from, so "Break something" is off and says why ...
    expect(await page.isDisabled('#break-kill')).toBe(true);
    expect(await page.getAttribute('#break-kill', 'title')).toContain('This run has one worker');
    // ... and a crash of the lone worker stops the run with a message, marks it and keeps the checkpoint.
    await page.waitForSelector('#checkpoint-info[data-step]');
    await page.workers()[0].evaluate(() => setTimeout(() => {
      throw new Error('boom (a test crash)');
    }));
    await page.waitForSelector('#state[data-state="error"]', { timeout: 20_000 });
    const banner = await page.textContent('#banner');
    expect(banner).toContain('Training stopped.');
    expect(banner).toContain('the only worker failed');
    expect(banner).toMatch(/Your last checkpoint \(step \d+\) is kept/);
    await expect.poll(async () => (await cards(page)).map((c) => c.state), { timeout: 5_000 }).toEqual(['error']);
    expect(await page.isVisible('#resume-checkpoint')).toBe(true);
    expect(await page.locator('#recoveries li').count()).toBe(0);
    expect(errors.filter((e) => !e.includes('boom (a test crash)'))).toEqual([]);
    await page.context().close();
  });

  it('a bad link shows the specific config error and keeps Start disabled', async () => {
    const { page, errors } = await open('?preset=tiny&n_head=5');
    await expect.poll(() => page.textContent('#config-error-text')).toContain('n_embd (64) must be divisible by n_head (5)');
    expect(await page.isVisible('#config-error')).toBe(true);
    expect(await page.isDisabled('#start')).toBe(true);
    expect(await page.getAttribute('#f-n_head', 'aria-invalid')).toBe('true');
    // Fixing the field enables Start and updates the link.
    await page.fill('#f-n_head', '4');
    await expect.poll(() => page.isEnabled('#start')).toBe(true);
    expect(page.url()).toBe(`${h.base}/?preset=tiny`);

    // Before a run: what a setup needs, and whether a CPU worker can hold it (GPT-2 124M, batch 8 of 1,024 tokens).
    await page.goto(h.base + '/?preset=gpt2&backend=wasm&batch_size=8');
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.textContent('#estimate')).toMatch(/124 M parameters.*A CPU worker can hold at most 4\.0 GB \(32-bit WebAssembly\): this needs [\d.]+ GB \([\d.]+ GB of activations for batch_size 8 x block_size 1024, .*\)\. Lower batch_size/s);
    expect(await page.getAttribute('#estimate [data-fits]', 'data-fits')).toBe('false');
    // ... and so Start stays disabled, the setup saying how much one worker would need (test/reload.test.ts has more).
    expect(await page.textContent('#config-error-text')).toMatch(/^one worker would need about [\d.]+ GB .*holds at most 4\.0 GB: lower batch_size/);
    expect(await page.isDisabled('#start')).toBe(true);

    // Unknown settings and presets are named and dropped; the page falls back instead of crashing.
    await page.goto(h.base + '/?preset=huge&lr=0.1');
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.textContent('#banner')).toContain('preset "huge", which does not exist');
    expect(await page.inputValue('#preset')).toBe('shakespeare-cpu');
    await page.goto(h.base + '/?preset=tiny&foo=1&lr=abc');
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.textContent('#banner')).toContain('unknown setting "foo"');
    expect(await page.textContent('#config-error-text')).toContain('lr must be a number, got "abc"');
    expect(await page.isDisabled('#start')).toBe(true);

    // Dist settings a link gets wrong fall back to working ones, each with checkDist's reason.
    await page.goto(h.base + '/?preset=tiny&strategy=zero3&workers=20&transport=pigeon&bucket_mb=0');
    await page.waitForSelector('body[data-ready="true"]');
    const banner = await page.textContent('#banner');
    expect(banner).toContain('strategy must be single, ddp, fsdp, tp, pp or diloco, got "zero3"');
    expect(banner).toContain('workers must be a whole number from 1 to 8, got 20');
    expect(banner).toContain('transport must be ring, star, shared or network, got "pigeon"');
    expect(banner).toContain('bucket_mb must be a positive number of MB, got 0');
    expect(await page.inputValue('#f-strategy')).toBe('single');
    expect(await page.inputValue('#f-transport')).toBe('ring');
    expect(await page.isEnabled('#start')).toBe(true);
    expect(page.url()).toBe(`${h.base}/?preset=tiny`);
    // In the form: ddp offers a worker per core (at least 2); a bad worker count is named and blocks Start.
    await page.selectOption('#f-strategy', 'ddp');
    expect(num(await page.inputValue('#f-workers'))).toBeGreaterThanOrEqual(2);
    await expect.poll(() => page.locator('#workers .worker').count()).toBe(num(await page.inputValue('#f-workers')));
    expect(await page.textContent('#dist-help')).toContain('each worker talks to its neighbours');
    await page.fill('#f-workers', '9');
    await expect.poll(() => page.textContent('#dist-error')).toContain('workers must be a whole number from 1 to 8, got 9');
    expect(await page.getAttribute('#f-workers', 'aria-invalid')).toBe('true');
    expect(await page.isDisabled('#start')).toBe(true);
    expect(page.url()).toBe(`${h.base}/?preset=tiny&strategy=ddp&workers=9`);
    await page.fill('#f-workers', '3');
    await page.selectOption('#f-transport', 'star');
    await expect.poll(() => page.isEnabled('#start')).toBe(true);
    expect(await page.textContent('#dist-help')).toContain('every worker sends everything to this page');
    expect(await page.textContent('#global-batch')).toContain('3 workers × 4 batch_size × 1 grad_accum = 12 sequences');
    expect(page.url()).toBe(`${h.base}/?preset=tiny&strategy=ddp&workers=3&transport=star`);
    expect(await page.isVisible('#f-shard')).toBe(false); // FSDP's settings appear with fsdp only

    // fsdp: shard and prefetch appear, with help, in the link; a sharded model has no buckets.
    await page.selectOption('#f-strategy', 'fsdp');
    expect(await page.isVisible('#f-shard')).toBe(true);
    expect(await page.isVisible('#f-prefetch')).toBe(true);
    expect(await page.isDisabled('#f-bucket_mb')).toBe(true);
    expect(page.url()).toBe(`${h.base}/?preset=tiny&strategy=fsdp&workers=3&transport=star`);
    const help = await page.textContent('#dist-help');
    expect(help).toContain('FULL_SHARD');
    expect(help).toContain('BACKWARD_PRE');
    await page.selectOption('#f-shard', 'grad_op');
    await page.selectOption('#f-prefetch', 'off');
    expect(await page.textContent('#dist-help')).toContain('SHARD_GRAD_OP, ZeRO-2');
    expect(page.url()).toBe(`${h.base}/?preset=tiny&strategy=fsdp&workers=3&transport=star&shard=grad_op&prefetch=off`);
    await page.selectOption('#f-shard', 'none'); // NO_SHARD is DDP: buckets again, nothing to prefetch
    expect(await page.isDisabled('#f-prefetch')).toBe(true);
    expect(await page.isEnabled('#f-bucket_mb')).toBe(true);
    expect(await page.textContent('#dist-help')).toContain('exactly DDP');
    expect(await page.isEnabled('#start')).toBe(true);
    // A link's bad shard or prefetch falls back with the reason.
    await page.goto(h.base + '/?preset=tiny&strategy=fsdp&workers=2&shard=half&prefetch=maybe');
    await page.waitForSelector('body[data-ready="true"]');
    const fsdpBanner = await page.textContent('#banner');
    expect(fsdpBanner).toContain('shard must be full, grad_op or none, got "half"); using full instead');
    expect(fsdpBanner).toContain('prefetch must be on or off, got "maybe"); using on instead');
    expect(await page.inputValue('#f-shard')).toBe('full');
    expect(page.url()).toBe(`${h.base}/?preset=tiny&strategy=fsdp&workers=2`);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('trains with DDP on 2 workers over ring: a card per worker, bytes sent, resume keeps the dist settings', async () => {
    const { page, errors } = await open('?preset=tiny&backend=wasm&strategy=ddp&workers=2&transport=ring&max_iters=30&eval_interval=10');
    expect(await page.inputValue('#f-strategy')).toBe('ddp');
    expect(await page.inputValue('#f-workers')).toBe('2');
    expect(await page.textContent('#global-batch')).toContain('2 workers × 4 batch_size × 1 grad_accum = 8 sequences (256 tokens) per step');
    // Before the run, "Break something" is there but disabled, and says why.
    expect(await page.isDisabled('#break-kill')).toBe(true);
    expect(await page.getAttribute('#break-kill', 'title')).toContain('Start a run with 2 or more workers');
    await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
    await page.click('#start');
    // While it trains, a teacher kills worker 1 from the menu: the run notices, replaces it, trains the step again.
    await page.click('#break summary');
    await expect.poll(() => page.isEnabled('#break-kill'), { timeout: 30_000 }).toBe(true);
    await page.selectOption('#break-rank', '1');
    await page.click('#break-kill');
    expect(await page.textContent('#break-status')).toMatch(/Worker 1 will be killed while it trains step \d+/);
    await page.waitForSelector('#state[data-state="done"]', { timeout: 100_000 });
    const recovered = await page.locator('#recoveries li').evaluateAll((els) => els.map((el) => ({ ...(el as HTMLElement).dataset }) as Record<string, string>));
    expect(recovered.map((r) => [r.rank, r.cause])).toEqual([['1', 'crash']]);
    const killedAt = num(recovered[0].step);
    expect(killedAt).toBeGreaterThan(0);
    expect(killedAt).toBeLessThanOrEqual(30);
    expect(recovered[0].restoredFrom).toBe("rank 0's replica");
    expect(await page.isVisible('#recovery-notice')).toBe(true);
    expect(await page.textContent('#recovery-notice')).toContain(`Worker 1 crashed during step ${killedAt}`);
    expect(await page.textContent('#recovery-notice')).toContain('no step was lost');
    await expect.poll(async () => (await cards(page))[1].replacedAt).toBe(String(killedAt));
    expect(await page.isDisabled('#break-kill')).toBe(true); // the run is over
    expect(await page.getAttribute('#break-kill', 'title')).toBe('Only while the run is training.');
    const d = await page.locator('#stats').evaluate((el) => ({ ...(el as HTMLElement).dataset }));
    const run = { step: num(d.step), first: num(d.firstLoss), last: num(d.lastLoss), val: num(d.valLoss), gradNorm: num(d.gradNorm) };
    expect(run.step).toBe(30);
    expect(run.first).toBeGreaterThan(3.5);
    expect(run.last).toBeLessThan(run.first);
    expect(run.val).toBeLessThan(run.first);
    expect(Number.isFinite(run.gradNorm) && run.gradNorm > 0).toBe(true); // the averaged gradient's norm
    await expect.poll(() => page.workers().length).toBe(2); // one Web Worker per rank (the killed one was terminated)

    const all = await cards(page);
    expect(all.map((c) => c.rank)).toEqual(['0', '1']);
    for (const c of all) {
      expect(num(c.computeMs)).toBeGreaterThan(0);
      expect(num(c.bytesSent)).toBeGreaterThan(0);
      expect(num(c.commMs) + num(c.waitMs)).toBeGreaterThanOrEqual(0);
      expect(num(c.stragglerMs)).toBeLessThanOrEqual(num(c.waitMs)); // the part of the wait spent on a slower worker
    }
    expect(Math.min(...all.map((c) => num(c.stragglerMs)))).toBe(0); // the slowest worker waited only for data
    await expect.poll(async () => (await cards(page)).every((c) => num(c.numTensors) > 0)).toBe(true);
    expect(await page.textContent('#workers .worker')).toContain('wasm · rank 0');
    // Memory by kind, from the last step: every worker holds a full replica (16 bytes per parameter, and
    // on wasm 4 more: the master copy its AdamW updates on the host).
    const P = num(await page.getAttribute('#run-info', 'data-num-params'));
    for (const c of await cards(page)) {
      expect(c.backend).toBe('wasm');
      expect(num(c.memParams)).toBe(4 * P);
      expect(num(c.memGrads) + num(c.memOptimizer)).toBe(16 * P);
      expect(num(c.memGathered)).toBe(0);
      expect(num(c.memActivations)).toBeGreaterThan(0);
    }
    expect(num(await page.getAttribute('#memory-expect', 'data-expected-bytes'))).toBe(20 * P);
    expect(num(await page.getAttribute('#memory-expect', 'data-measured-bytes'))).toBe(20 * P);
    expect(await page.textContent('#workers-subtitle')).toContain('DDP: 2 copies of the model');
    expect(await page.isVisible('#workers-notice')).toBe(false);
    expect(await page.isVisible('#banner')).toBe(false);
    await page.waitForSelector('#checkpoint-info[data-step="30"]', { timeout: 20_000 });
    expect(await page.textContent('#checkpoint-info')).toContain('ddp × 2 (ring)');
    mkdirSync(root + 'test-results', { recursive: true });
    await page.screenshot({ path: root + 'test-results/page-ddp.png', fullPage: true });

    // Resume restores the checkpoint's dist settings, whatever the form says now.
    await page.selectOption('#f-strategy', 'single');
    await page.fill('#f-max_iters', '36');
    await expect.poll(() => page.textContent('#resume-checkpoint')).toBe('Resume from step 30');
    await page.click('#resume-checkpoint');
    await page.waitForSelector('#state[data-state="done"]', { timeout: 60_000 });
    expect(await page.inputValue('#f-strategy')).toBe('ddp');
    expect(await page.inputValue('#f-workers')).toBe('2');
    expect(num(await page.getAttribute('#stats', 'data-step'))).toBe(36);
    await expect.poll(() => page.workers().length).toBe(2); // the first run's workers were terminated
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('trains with FSDP FULL_SHARD on 2 workers: memory bars show each worker holds half the parameters', async () => {
    const { page, errors } = await open('?preset=tiny&backend=wasm&strategy=fsdp&workers=2&shard=full&max_iters=20&eval_interval=10');
    expect(await page.inputValue('#f-strategy')).toBe('fsdp');
    expect(await page.inputValue('#f-shard')).toBe('full');
    expect(await page.inputValue('#f-prefetch')).toBe('on');
    expect(await page.isVisible('#banner')).toBe(false);
    const run = await trainToEnd(page);
    expect(run.step).toBe(20);
    expect(run.first).toBeGreaterThan(3.5);
    expect(run.last).toBeLessThan(run.first);
    expect(run.val).toBeLessThan(run.first);
    expect(page.workers().length).toBe(2);

    // Each worker keeps a shard: half of the 4 bytes per parameter a DDP or single worker keeps (the DDP
    // test checks those hold 4 x parameters), plus at most one float of padding per unit.
    const P = num(await page.getAttribute('#run-info', 'data-num-params'));
    const all = await cards(page);
    expect(all.map((c) => c.rank)).toEqual(['0', '1']);
    for (const c of all) {
      expect(c.backend).toBe('wasm');
      const params = num(c.memParams);
      expect(params).toBeGreaterThanOrEqual(2 * P);
      expect(params).toBeLessThan(2 * P + 4 * 8);
      expect(num(c.memGrads)).toBe(params);
      // AdamW's m and v (2 x the shard) and the weight-decay masks of units decayed only in part (1 byte
      // per shard element at most), as test/fsdp.test.ts measures them
      expect(num(c.memOptimizer)).toBeGreaterThan(2 * params);
      expect(num(c.memOptimizer)).toBeLessThanOrEqual(2 * params + params / 4);
      expect(num(c.memGathered)).toBeGreaterThan(0); // FULL_SHARD gathers units while it computes
      expect(num(c.memGathered)).toBeLessThanOrEqual(4 * P);
      expect(num(c.memActivations)).toBeGreaterThan(0);
      expect(num(c.memComm)).toBeGreaterThan(0);
      // Shorter than a full replica's bar with the same activations and buffers (a DDP worker's).
      // (a wasm replica keeps 20 bytes per parameter; this worker 16 / 2 for its shards and 12 / 2 for its buddy copy)
      expect(num(c.memTotal)).toBeLessThan(20 * P + num(c.memActivations) + num(c.memComm));
      expect(num(c.bytesSent)).toBeGreaterThan(0);
      expect(num(c.computeMs)).toBeGreaterThan(0);
    }
    for (const c of all) expect(num(c.memBuddy)).toBe(3 * num(c.memParams)); // the neighbour's shards of weights, m and v
    const expected = num(await page.getAttribute('#memory-expect', 'data-expected-bytes'));
    expect(expected).toBe(7 * num(all[0].memParams)); // 16 + 12 bytes per parameter / 2
    const measured = num(await page.getAttribute('#memory-expect', 'data-measured-bytes'));
    expect(measured).toBe(Math.max(...all.map((c) => num(c.memParams) + num(c.memGrads) + num(c.memOptimizer) + num(c.memBuddy))));
    expect(measured - expected).toBeGreaterThan(0); // the formula leaves the masks out
    expect(measured - expected).toBeLessThanOrEqual(num(all[0].memParams) / 4);
    expect(await page.textContent('#memory-expect')).toContain(`28 B × ${P.toLocaleString('en-US')} parameters ÷ 2 workers`);
    expect(await page.locator('#workers .worker .mem-seg.params').count()).toBe(2);
    expect(await page.textContent('#workers-subtitle')).toContain('FSDP FULL_SHARD: each of 2 workers keeps a 1/2 shard');
    expect(await page.textContent('#memory-legend')).toContain('gathered');
    // The checkpoint gathers the shards into one model, and remembers how it was trained.
    await page.waitForSelector('#checkpoint-info[data-step="20"]', { timeout: 20_000 });
    expect(await page.textContent('#checkpoint-info')).toContain('fsdp × 2 (full, ring)');
    expect(await page.isVisible('#banner')).toBe(false);
    mkdirSync(root + 'test-results', { recursive: true });
    await page.screenshot({ path: root + 'test-results/page-fsdp.png', fullPage: true });

    // Resume restores FSDP's settings from the checkpoint.
    await page.selectOption('#f-strategy', 'ddp');
    await page.fill('#f-max_iters', '22');
    await page.click('#resume-checkpoint');
    await page.waitForSelector('#state[data-state="done"]', { timeout: 60_000 });
    expect(await page.inputValue('#f-strategy')).toBe('fsdp');
    expect(await page.inputValue('#f-shard')).toBe('full');
    expect(num(await page.getAttribute('#stats', 'data-step'))).toBe(22);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('shared works on the cross-origin isolated dev server; star counts the bytes through the page', async () => {
    const shared = await open('?preset=tiny&backend=wasm&strategy=ddp&workers=2&transport=shared&max_iters=12&eval_interval=0');
    expect(await shared.page.evaluate(() => crossOriginIsolated)).toBe(true);
    const a = await trainToEnd(shared.page);
    expect(a.last).toBeLessThan(a.first);
    expect(await shared.page.isVisible('#workers-notice')).toBe(false); // no fallback to ring
    expect(await shared.page.isVisible('#banner')).toBe(false);
    expect(await shared.page.textContent('#workers-subtitle')).toContain('shared memory');
    for (const c of await cards(shared.page)) expect(num(c.bytesSent)).toBeGreaterThan(0);
    expect(shared.errors).toEqual([]);
    await shared.page.context().close();

    const star = await open('?preset=tiny&backend=wasm&strategy=ddp&workers=2&transport=star&max_iters=8&eval_interval=0');
    await trainToEnd(star.page);
    expect(num(await star.page.getAttribute('#workers-totals', 'data-hub-bytes'))).toBeGreaterThan(0);
    expect(await star.page.textContent('#workers-totals')).toContain('through this page');
    expect(star.errors).toEqual([]);
    await star.page.context().close();
  });

  it('a worker that crashes on its own is replaced: the run notices, recovers and goes on', async () => {
    const { page, errors } = await open('?preset=tiny&backend=wasm&strategy=ddp&workers=2&max_iters=5000&eval_interval=5');
    await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
    await page.click('#start');
    await page.waitForSelector('#checkpoint-info[data-step]', { timeout: 60_000 });
    const ranks = await Promise.all(page.workers().map(async (w) => ({ w, name: await w.evaluate(() => self.name) })));
    const rank1 = ranks.find((r) => r.name === 'rank 1')!;
    await rank1.w.evaluate(() => setTimeout(() => {
      throw new Error('boom (a test crash)');
    }));
    await page.waitForSelector('#recoveries li[data-rank="1"][data-cause="crash"]', { timeout: 30_000 });
    const crashedAt = num(await page.getAttribute('#recoveries li', 'data-step'));
    expect(await page.getAttribute('#recoveries li', 'title')).toContain('training worker 1 crashed: Uncaught Error: boom');
    expect(await page.textContent('#recovery-notice')).toContain(`Worker 1 crashed during step ${crashedAt}`);
    // The run goes on with a new worker 1, and says so on its card; no error banner.
    await expect.poll(async () => num(await page.getAttribute('#stats', 'data-step')), { timeout: 30_000 }).toBeGreaterThan(crashedAt + 3);
    expect(await page.getAttribute('#state', 'data-state')).toBe('running');
    await expect.poll(async () => (await cards(page)).map((c) => [c.state, c.replacedAt])).toEqual([['training', undefined], ['training', String(crashedAt)]]);
    expect(await page.isVisible('#banner')).toBe(false);
    await page.click('#stop');
    await page.waitForSelector('#state[data-state="stopped"]');
    expect(errors.filter((e) => !e.includes('boom (a test crash)'))).toEqual([]);
    await page.context().close();
  });

  it('rejects bad texts and model files with specific messages; trains from llm.c weights and downloads the model in every format', async () => {
    const { page, errors } = await open('?preset=tiny&backend=wasm&max_iters=3&eval_interval=0');
    await page.setInputFiles('#corpus-file', { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: Buffer.from([0xff, 0xd8, 0x00, 0x10]) });
    await expect.poll(() => page.textContent('#corpus-error')).toContain('NUL bytes');
    await page.setInputFiles('#corpus-file', { name: 'short.txt', mimeType: 'text/plain', buffer: Buffer.from('To be or not to be.') });
    await expect.poll(() => page.textContent('#corpus-error')).toContain('too short');
    await page.setInputFiles('#corpus-file', { name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) });
    await expect.poll(() => page.textContent('#corpus-error')).toContain('is empty');
    expect(await page.getAttribute('#corpus-info', 'data-name')).toBe('tinyshakespeare.txt'); // still the old text

    // Bad model files: the reader's one line each, and nothing changes.
    const bin = (name: string, buffer: Buffer) => ({ name, mimeType: 'application/octet-stream', buffer });
    await page.setInputFiles('#checkpoint-file', bin('notes.ckpt', Buffer.from('definitely not a checkpoint')));
    await expect.poll(() => page.textContent('#checkpoint-error')).toContain('“notes.ckpt” cannot be used: not a checkpoint of this trainer');
    await page.setInputFiles('#checkpoint-file', bin('notes.bin', Buffer.from('definitely not a checkpoint')));
    await expect.poll(() => page.textContent('#checkpoint-error')).toContain("“notes.bin” cannot be used: model file is 27 bytes, shorter than llm.c's 1024-byte header: not an llm.c file");
    const fixtureBytes = readFileSync(root + 'test/fixtures/llmc-tiny/model.bin');
    const fixture = readLlmcModel(arrayBuffer(fixtureBytes));
    const hf = writeHf(fixture.config, fixture.params);
    const safetensors = Buffer.from(hf['model.safetensors']);
    await page.setInputFiles('#checkpoint-file', bin('model.safetensors', safetensors));
    await expect.poll(() => page.textContent('#checkpoint-error')).toContain('“model.safetensors” cannot be used: no config.json beside the weights');
    // A vocabulary that does not match the text: startFromWeights' message.
    await page.setInputFiles('#corpus-file', { name: 'abc.txt', mimeType: 'text/plain', buffer: Buffer.from('abc\n'.repeat(3000)) });
    await expect.poll(() => page.getAttribute('#corpus-info', 'data-name')).toBe('abc.txt');
    await page.setInputFiles('#checkpoint-file', bin('model.bin', fixtureBytes));
    await expect.poll(() => page.textContent('#checkpoint-error')).toContain('“model.bin” cannot be used: the weights have a vocabulary of 65 tokens, the char tokenizer of “abc.txt” has 4');
    expect(await page.isVisible('#weights')).toBe(false);
    expect(await page.isVisible('#resume-checkpoint')).toBe(false);
    await page.click('#corpus-default');
    await expect.poll(() => page.getAttribute('#corpus-info', 'data-name')).toBe('tinyshakespeare.txt');

    // Hugging Face's model.safetensors and config.json dropped together: the next Start's weights, their
    // shape in the setup (n_layer was 3) and in the estimate.
    await page.fill('#f-n_layer', '3');
    const drop = await page.evaluateHandle(([weights, config]) => {
      const dt = new DataTransfer();
      dt.items.add(new File([Uint8Array.from(atob(weights), (c) => c.charCodeAt(0))], 'model.safetensors'));
      dt.items.add(new File([config], 'config.json', { type: 'application/json' }));
      return dt;
    }, [safetensors.toString('base64'), hf['config.json']] as const);
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer: drop });
    await expect.poll(() => page.getAttribute('#weights', 'data-source')).toBe('model.safetensors + config.json');
    expect(await page.isVisible('#checkpoint-error')).toBe(false);
    expect(await page.getAttribute('#weights', 'data-format')).toBe('hf');
    expect(await page.inputValue('#f-n_layer')).toBe('2');
    expect(num(await page.getAttribute('#estimate', 'data-params'))).toBe(106_304);
    expect(await page.textContent('#weights-info')).toContain('n_layer 2 · n_head 4 · n_embd 64 · block_size 32 · vocab_size 65');
    // A shape edited since blocks Start and says so; one click puts the weights' shape back.
    await page.fill('#f-n_layer', '3');
    await expect.poll(() => page.textContent('#weights-problem')).toContain('n_layer 3 (the weights have 2)');
    expect(await page.isDisabled('#start')).toBe(true);
    await page.click('#weights-reshape');
    expect(await page.inputValue('#f-n_layer')).toBe('2');
    await expect.poll(() => page.isEnabled('#start')).toBe(true);

    // llm.c's fixture (2 layers, 4 heads, n_embd 64, block 32, the 65 characters of tinyshakespeare): 3 steps from it.
    await page.setInputFiles('#checkpoint-file', bin('model.bin', fixtureBytes));
    await expect.poll(() => page.getAttribute('#weights', 'data-source')).toBe('model.bin');
    expect(await page.textContent('#weights-info')).toContain('the characters of “tinyshakespeare.txt”');
    expect(await page.textContent('#start')).toBe('Start from the loaded weights');
    const run = await trainToEnd(page, 60_000);
    expect(run.step).toBe(3);
    expect(num(await page.getAttribute('#run-info', 'data-num-params'))).toBe(106_304);
    await page.waitForSelector('#checkpoint-info[data-step="3"]', { timeout: 20_000 });

    // Download it as llm.c's .bin: the fixture's shape, and its weights moved by 3 small steps, not a new model.
    const [llmc] = await Promise.all([page.waitForEvent('download'), page.click('#download-llmc')]);
    expect(llmc.suggestedFilename()).toBe('gpt2-tiny-step3.bin');
    const trained = readLlmcModel(arrayBuffer(await downloaded(llmc)));
    expect(trained.config).toEqual(fixture.config);
    let moved = 0;
    for (let i = 0; i < fixture.params.length; i++) moved = Math.max(moved, Math.abs(trained.params[i] - fixture.params[i]));
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(0.01);
    // As Hugging Face's files (separate downloads), with the character vocabulary.
    const hfFiles: Download[] = [];
    const collect = (d: Download) => hfFiles.push(d);
    page.on('download', collect);
    await page.click('#download-hf');
    await expect.poll(() => hfFiles.length, { timeout: 10_000 }).toBe(3);
    page.off('download', collect);
    const byName = new Map(await Promise.all(hfFiles.map(async (d) => [d.suggestedFilename(), await downloaded(d)] as const)));
    expect([...byName.keys()].sort()).toEqual(['char_vocab.json', 'config.json', 'model.safetensors']);
    const back = readHf({ 'model.safetensors': arrayBuffer(byName.get('model.safetensors')!), 'config.json': byName.get('config.json')!.toString(), 'char_vocab.json': byName.get('char_vocab.json')!.toString() });
    expect(back.config).toMatchObject({ n_layer: 2, n_head: 4, n_embd: 64, block_size: 32, vocab_size: 65 });
    expect(back.params).toEqual(trained.params);
    // And as the checkpoint, which loads back (after a reload, the saved one deleted) offering step 3.
    const [ckpt] = await Promise.all([page.waitForEvent('download'), page.click('#download-checkpoint')]);
    expect(ckpt.suggestedFilename()).toBe('gpt2-tiny-step3.ckpt');
    const ckptBytes = await downloaded(ckpt);
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.isVisible('#weights')).toBe(false); // loaded weights are not kept across a reload
    await page.click('#forget-checkpoint');
    await expect.poll(() => page.isVisible('#resume-checkpoint')).toBe(false);
    await page.setInputFiles('#checkpoint-file', bin('gpt2-tiny-step3.ckpt', ckptBytes));
    await expect.poll(() => page.textContent('#checkpoint-info')).toContain('loaded from gpt2-tiny-step3.ckpt');
    expect(await page.getAttribute('#checkpoint-info', 'data-step')).toBe('3');
    await page.fill('#f-max_iters', '6');
    await expect.poll(() => page.textContent('#resume-checkpoint')).toBe('Resume from step 3');
    expect(await page.isVisible('#checkpoint-error')).toBe(false);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
