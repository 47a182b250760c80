// Nothing lost on reload, and no surprise; inputs the page must take or refuse before Start. A Vite dev
// server and headless Chromium, as test/page.test.ts:
// - a run that never evaluates (eval_interval 0) is still saved by time (every 20 s: checkpoints.ts
//   AUTOSAVE_MS); leaving the page while it trains asks first (beforeunload); after the reload the main
//   Resume button (not only the Checkpoint panel's) continues the saved checkpoint;
// - a valid link (`?preset=tiny&strategy=single`) opens without a warning;
// - absurd sizes are refused before Start with the memory they would need (batch_size 1e9 and 100,000,
//   n_layer 1000), and fixing the field enables Start again;
// - numbers too wide for their card wrap instead of being cut off.
// Run: npx vitest run --project node test/reload.test.ts

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { startHarness, type Harness } from './harness';
import { AUTOSAVE_MS } from '../src/ui/checkpoints';

let h: Harness;

beforeAll(async () => {
  h = await startHarness('reload-test');
});

afterAll(async () => {
  await h?.close();
});

async function open(query: string, width = 1440): Promise<{ page: Page; errors: string[] }> {
  const context = await h.browser.newContext({ viewport: { width, height: 1000 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(h.base + '/' + query);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return { page, errors };
}

const num = (s: string | null | undefined) => (s ? Number(s) : NaN);

describe('nothing lost on reload', () => {
  it('autosaves by time without evaluations, asks before leaving, and the main Resume button continues after a reload', async () => {
    expect(AUTOSAVE_MS).toBeLessThanOrEqual(30_000);
    const { page, errors } = await open('?preset=tiny&backend=wasm&max_iters=100000&eval_interval=0');
    const step = async () => num(await page.getAttribute('#stats', 'data-step'));
    expect(await page.isDisabled('#resume')).toBe(true); // nothing to resume yet
    await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
    await page.click('#start');
    await expect.poll(step, { timeout: 60_000 }).toBeGreaterThan(0);
    const started = Date.now();
    // No evaluation ever runs, so only the clock saves.
    await page.waitForSelector('#checkpoint-info[data-step]', { timeout: AUTOSAVE_MS + 20_000 });
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThan(AUTOSAVE_MS - 5_000);
    expect(waited).toBeLessThan(AUTOSAVE_MS + 15_000);
    const saved = num(await page.getAttribute('#checkpoint-info', 'data-step'));
    expect(saved).toBeGreaterThan(0);
    expect(await page.getAttribute('#state', 'data-state')).toBe('running');

    // Leaving while it trains asks first.
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.type());
      void d.accept();
    });
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    expect(dialogs).toEqual(['beforeunload']);

    // After the reload: the main Resume button continues the saved checkpoint (at least the autosave's step;
    // the save on leaving may have made a later one).
    await expect.poll(() => page.isEnabled('#resume'), { timeout: 30_000 }).toBe(true);
    const from = num(await page.getAttribute('#resume', 'data-from'));
    expect(from).toBeGreaterThanOrEqual(saved);
    expect(await page.textContent('#start-hint')).toContain(`Resume continues the checkpoint saved in this browser at step ${from.toLocaleString('en-US')}`);
    expect(await page.textContent('#start')).toBe('Start new run');
    await page.click('#resume');
    await page.waitForSelector('#state[data-state="running"]', { timeout: 60_000 });
    await expect.poll(step, { timeout: 60_000 }).toBeGreaterThan(from);
    expect(await page.getAttribute('#stats', 'data-first-loss')).not.toBeNull(); // the loss history came along
    // Pause, then the same button resumes the paused run.
    await page.click('#pause');
    await page.waitForSelector('#state[data-state="paused"]');
    await page.click('#resume');
    await page.waitForSelector('#state[data-state="running"]');
    await page.click('#stop');
    await page.waitForSelector('#state[data-state="stopped"]');
    // Stopped (and saved): Resume continues from the stop's checkpoint; no prompt when nothing trains.
    await expect.poll(() => page.isEnabled('#resume'), { timeout: 20_000 }).toBe(true);
    await expect.poll(async () => num(await page.getAttribute('#resume', 'data-from')), { timeout: 20_000 }).toBe(await step());
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    expect(dialogs).toEqual(['beforeunload']);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

describe('inputs', () => {
  it('a valid link gives no warning', async () => {
    for (const link of ['?preset=tiny&strategy=single', '?preset=tiny&strategy=single&workers=1', '?preset=tiny&workers=1&transport=ring']) {
      const { page, errors } = await open(link);
      expect(await page.isVisible('#banner'), link).toBe(false);
      await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
      expect(page.url()).toBe(`${h.base}/?preset=tiny`);
      expect(errors).toEqual([]);
      await page.context().close();
    }
  });

  it('absurd sizes are refused before Start with the memory they would need', async () => {
    const { page, errors } = await open('?preset=tiny&batch_size=1000000000');
    const error = () => page.textContent('#config-error-text');
    // Over the largest tensor: refused by makeConfig, with the bytes of that tensor.
    await expect.poll(error).toMatch(/one micro-batch would need a tensor of [\d.e+]+ numbers, [\d.]+ TB of float32 for that tensor alone .*lower batch_size/);
    expect(await page.isDisabled('#start')).toBe(true);
    expect(await page.getAttribute('#f-batch_size', 'aria-invalid')).toBe('true');

    // Under it, but far more than a worker holds: refused with the cost model's figure.
    await page.fill('#f-batch_size', '100000');
    await expect.poll(error).toMatch(/^one worker would need about 3\d\.\d GB \([\d.]+ GB of activations for batch_size 100000 x block_size 32, .*\); a CPU worker \(32-bit WebAssembly\) holds at most 4\.0 GB: lower batch_size/);
    expect(await page.isVisible('#config-error')).toBe(true);
    expect(await page.isDisabled('#start')).toBe(true);
    expect(await page.getAttribute('#f-batch_size', 'aria-invalid')).toBe('true');
    expect(await page.textContent('#start-hint')).toMatch(/^Too big to start: one worker would need about/);
    expect(await page.getAttribute('#estimate [data-fits]', 'data-fits')).toBe('false');
    expect(await page.textContent('#estimate')).toMatch(/A CPU worker can hold at most 4\.0 GB \(32-bit WebAssembly\): this needs 3\d\.\d GB/);
    // A sensible batch: Start is enabled again.
    await page.fill('#f-batch_size', '8');
    await expect.poll(() => page.isEnabled('#start'), { timeout: 30_000 }).toBe(true);
    expect(await page.isVisible('#config-error')).toBe(false);

    // n_layer 1000 on the default preset: ~10 GB per worker.
    await page.goto(h.base + '/?n_layer=1000');
    await page.waitForSelector('body[data-ready="true"]');
    await expect.poll(error).toMatch(/^one worker would need about \d+\.\d GB .*holds at most 4\.0 GB/);
    expect(await page.isDisabled('#start')).toBe(true);
    expect(await page.getAttribute('#f-n_layer', 'aria-invalid')).toBe('true');
    // Sharding over more workers does not shrink the activations: still refused, saying so for fsdp.
    await page.selectOption('#f-strategy', 'fsdp');
    await page.fill('#f-workers', '2');
    await expect.poll(error).toMatch(/^one worker of fsdp over 2 workers would need about/);
    expect(await page.isDisabled('#start')).toBe(true);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

describe('charts', () => {
  it('large numbers wrap in their cards instead of being cut off', async () => {
    const { page, errors } = await open('?preset=tiny&strategy=ddp&workers=4', 1100);
    await expect.poll(() => page.locator('#workers .worker').count()).toBe(4);
    const clipped = await page.evaluate(() => {
      const wide = '123,456,789,012,345 (12.3 ms for a slower worker)';
      for (const dd of document.querySelectorAll('#stats dd')) dd.textContent = '123,456,789,012,345';
      for (const dd of document.querySelectorAll('#workers .worker-nums dd')) dd.textContent = wide;
      return [...document.querySelectorAll<HTMLElement>('#stats dd, #workers .worker-nums dd, #workers .worker-nums dt')]
        .filter((el) => {
          const card = el.closest('.stat, .worker')!.getBoundingClientRect();
          const r = el.getBoundingClientRect();
          return el.scrollWidth > el.clientWidth + 1 || r.right > card.right + 1 || r.width < 1;
        })
        .map((el) => `${el.id || el.tagName}: ${el.textContent}`);
    });
    expect(clipped).toEqual([]);
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
