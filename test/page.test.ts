// The page end to end: a Vite dev server and headless Chromium. Trains the tiny preset on wasm from a
// shared link, checks the loss goes down, that samples and a checkpoint appear, that the checkpoint is
// offered after a reload, and that bad links and bad files give specific messages.
// Run: npx vitest run --project node test/page.test.ts   (screenshot: test-results/page.png)

import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type ViteDevServer } from 'vite';
import { chromium, type Browser, type Page } from 'playwright-core';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', '--enable-unsafe-webgpu'];

let server: ViteDevServer;
let browser: Browser;
let base = '';

beforeAll(async () => {
  server = await createServer({
    root,
    configFile: root + 'vite.config.ts',
    logLevel: 'error',
    clearScreen: false,
    // No file watching or HMR: other edits in the repository must not reload the page mid-test.
    server: { port: 0, strictPort: false, hmr: false, watch: null },
    // Its own cache directory keeps this from disturbing a dev server someone else has running.
    cacheDir: 'node_modules/.vite-page-test',
  });
  await server.listen();
  base = server.resolvedUrls!.local[0].replace(/\/$/, '');
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, args });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** A fresh page (and profile: its own IndexedDB) that records console errors and uncaught exceptions. */
async function open(query: string): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(base + '/' + query);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return { page, errors };
}

const num = (s: string | null | undefined) => (s ? Number(s) : NaN);

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

    // What the page says about the run.
    await expect.poll(() => page.textContent('#run-info')).toContain('Backend: wasm');
    expect(await page.textContent('#run-info')).toContain('chosen in the settings');
    expect(await page.textContent('#step-label')).toBe('step 40 / 40');
    expect(await page.locator('#samples .sample').count()).toBeGreaterThan(0);
    expect((await page.locator('#samples .sample-text').first().textContent())!.length).toBeGreaterThan(50);
    expect(await page.locator('#chart canvas').count()).toBe(1);

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
    expect(download.suggestedFilename()).toBe('gpt2-tiny-step40.bin');
    const bytes = readFileSync((await download.path())!);
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
    await page.click('#stop');
    await page.waitForSelector('#state[data-state="stopped"]');
    expect(errors).toEqual([]);
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
    expect(page.url()).toBe(`${base}/?preset=tiny`);

    // Unknown settings and presets are named and dropped; the page falls back instead of crashing.
    await page.goto(base + '/?preset=huge&lr=0.1');
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.textContent('#banner')).toContain('preset "huge", which does not exist');
    expect(await page.inputValue('#preset')).toBe('shakespeare-cpu');
    await page.goto(base + '/?preset=tiny&foo=1&lr=abc');
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.textContent('#banner')).toContain('unknown setting "foo"');
    expect(await page.textContent('#config-error-text')).toContain('lr must be a number, got "abc"');
    expect(await page.isDisabled('#start')).toBe(true);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('rejects binary and too-short texts and broken checkpoint files with specific messages', async () => {
    const { page, errors } = await open('?preset=tiny');
    await page.setInputFiles('#corpus-file', { name: 'photo.jpg', mimeType: 'image/jpeg', buffer: Buffer.from([0xff, 0xd8, 0x00, 0x10]) });
    await expect.poll(() => page.textContent('#corpus-error')).toContain('NUL bytes');
    await page.setInputFiles('#corpus-file', { name: 'short.txt', mimeType: 'text/plain', buffer: Buffer.from('To be or not to be.') });
    await expect.poll(() => page.textContent('#corpus-error')).toContain('too short');
    await page.setInputFiles('#corpus-file', { name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0) });
    await expect.poll(() => page.textContent('#corpus-error')).toContain('is empty');
    expect(await page.getAttribute('#corpus-info', 'data-name')).toBe('tinyshakespeare.txt'); // still the old text

    await page.setInputFiles('#checkpoint-file', { name: 'notes.bin', mimeType: 'application/octet-stream', buffer: Buffer.from('definitely not a checkpoint') });
    await expect.poll(() => page.textContent('#checkpoint-error')).toContain('not a checkpoint of this trainer');
    expect(await page.isVisible('#resume-checkpoint')).toBe(false);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
