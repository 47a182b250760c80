// DiLoCo beside per-step DDP in the Compare view, end to end (a Vite dev server and headless Chromium
// driving the real page): tiny, wasm, 2 workers, 8 steps, H = 4. Both rows; DiLoCo's bytes per step are
// about DDP's / H (measured, averaged over its steps); the loss against tokens and against wall time
// (measured, and predicted over classroom Wi-Fi, dashed); its inner steps and compression in the link;
// and the what-if's classroom Wi-Fi says where per-step DDP stops paying. Screenshot:
// test-results/compare-diloco.png.
// Run: npx vitest run --project node test/diloco-compare.test.ts

import { mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { root, startHarness, type Harness } from './harness';

let h: Harness;

describe('the Compare view: DDP against DiLoCo', () => {
  beforeAll(async () => {
    h = await startHarness('diloco-compare-test');
  });

  afterAll(async () => {
    await h?.close();
  });

  it('runs DDP and DiLoCo (H = 4) side by side: both rows, DiLoCo\'s bytes about DDP\'s / H, loss against tokens and wall time', async () => {
    const context = await h.browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${h.base}/?preset=tiny&backend=wasm#compare?strategies=ddp,diloco&workers=2&transport=ring&steps=8&inner_steps=4`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    expect(await page.isChecked('#compare-s-diloco')).toBe(true);
    expect(await page.inputValue('#compare-inner-steps')).toBe('4');
    expect(await page.isEnabled('#compare-inner-steps')).toBe(true);
    expect(await page.textContent('#compare-setup')).toContain('DiLoCo: 2 workers × 4 each, averaging every 4 steps');
    // the compression goes into the link
    await page.selectOption('#compare-outer-compress', 'none');
    expect(new URL(page.url()).hash).toContain('inner_steps=4&outer_compress=none');

    await expect.poll(() => page.isEnabled('#compare-run'), { timeout: 30_000 }).toBe(true);
    await page.click('#compare-run');
    await page.waitForSelector('#compare[data-state="done"]', { timeout: 150_000 });
    expect(await page.textContent('#compare-error')).toBe('');

    const rows = await page.locator('#compare-results tbody tr').evaluateAll((els) => els.map((el) => ({ ...(el as HTMLElement).dataset })));
    expect(rows.map((r) => r.strategy)).toEqual(['ddp', 'diloco']);
    const [ddp, diloco] = rows.map((r) => Number(r.bytes));
    expect(ddp).toBeGreaterThan(0);
    expect(diloco / ddp).toBeGreaterThan(0.25 * 0.9); // 1/H, give or take the scalars each sends
    expect(diloco / ddp).toBeLessThan(0.25 * 1.1);
    expect(Number(rows[1].firstLoss)).toBeCloseTo(Number(rows[0].firstLoss), 4); // the same first step (same model, same samples)
    expect(await page.textContent('#compare-results tbody tr[data-strategy="diloco"]')).toContain('H = 4');
    // the verdict does not hold DiLoCo's other math against it
    expect(await page.getAttribute('#compare-verdict', 'data-coincide')).not.toBe('false');

    // the DDP-against-DiLoCo card: bytes beside the formula, and both charts
    expect(await page.isVisible('#compare-diloco')).toBe(true);
    const ratio = Number(await page.getAttribute('#compare-diloco-bytes', 'data-ratio'));
    expect(ratio).toBeCloseTo(0.25, 1);
    expect(Number(await page.getAttribute('#compare-diloco-bytes', 'data-formula'))).toBeCloseTo(0.25, 12);
    expect(await page.textContent('#compare-diloco-bytes')).toContain('once every H = 4 steps');
    expect(await page.locator('#compare-loss-tokens canvas').count()).toBe(1);
    expect(await page.locator('#compare-loss-time canvas').count()).toBe(1);
    expect((await page.getAttribute('#compare-loss-tokens', 'data-series'))!.split('|')).toEqual(['DDP', 'DiLoCo (H = 4)']);
    const series = (await page.getAttribute('#compare-loss-time', 'data-series'))!.split('|');
    expect(series).toEqual(['DDP, measured', 'DiLoCo (H = 4), measured', 'DDP, classroom Wi-Fi (predicted)', 'DiLoCo (H = 4), classroom Wi-Fi (predicted)']);
    const ends = (await page.getAttribute('#compare-loss-time', 'data-ends'))!.split('|').map(Number);
    expect(ends.every((x) => x > 0)).toBe(true);
    expect(ends[3]).toBeLessThan(ends[2]); // over Wi-Fi, DiLoCo finishes its steps sooner than DDP
    expect(await page.textContent('#compare-loss-time-note')).toContain('20 MB/s shared by the 2 workers');

    // the cost model: DiLoCo predicted beside measured, and the what-if's classroom Wi-Fi
    const pred = Number(await page.getAttribute('#compare-pred-diloco', 'data-predicted-bytes'));
    expect(pred / diloco).toBeGreaterThan(0.9);
    expect(pred / diloco).toBeLessThan(1.1);
    await expect.poll(() => page.getAttribute('#compare-wifi', 'data-ddp-ms'), { timeout: 10_000 }).not.toBe('');
    await page.check('#whatif-wifi');
    expect(await page.textContent('#compare-wifi')).toMatch(/Over classroom Wi-Fi \(20 MB\/s shared, .* per-step DDP .* a step, DiLoCo \(H = 4\)/);
    expect(await page.textContent('#compare-wifi')).toMatch(/per-step DDP (stops paying from \d+ students|pays up to 32 students), DiLoCo/);
    expect(Number(await page.getAttribute('#compare-wifi', 'data-diloco-ms'))).toBeLessThan(Number(await page.getAttribute('#compare-wifi', 'data-ddp-ms')));
    expect(await page.textContent('#compare-whatif')).toContain('DiLoCo');

    mkdirSync(root + 'test-results', { recursive: true });
    await page.locator('#compare-diloco').screenshot({ path: root + 'test-results/compare-diloco.png' });
    expect(errors).toEqual([]);
    await context.close();
  });
});
