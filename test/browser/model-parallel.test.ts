// Model parallelism on the page, in headless Chromium: the real page (index.html and src/main.ts) in an
// iframe of the browser test, driven through its DOM. The setup form offers tp and pp with their
// one-line explanations, refuses tp with 3 workers on 4 heads (Start disabled, the reason shown), shows
// PP's micro-batches and schedule only for pp, and carries them in the link; the Workers panel says what
// each does with the run's numbers. Then the Compare view runs single, DDP, TP and PP 1F1B on 2 workers
// (tiny, wasm, 4 steps) with the same global batch: four rows, TP's and PP's first losses equal single's
// (1e-4), PP's timeline has its micro-batches' forwards and backwards and a bubble label per stage, the
// cost model predicts their bubble and bytes beside the measurements, and the lesson panel says what each
// split and paid. Screenshots: test-results/compare-model-parallel.png, compare-lesson.png and
// compare-pp-timeline.png (docs/ keeps copies for the README).
// Run: npx vitest run --project browser test/browser/model-parallel.test.ts

import { afterEach, describe, expect, it } from 'vitest';
import { page } from 'vitest/browser';
import { STRATEGY_LINES } from '../../src/parallel/layout';

interface Page {
  doc: Document;
  win: Window;
  frame: HTMLIFrameElement;
}

const frames: HTMLIFrameElement[] = [];
afterEach(() => {
  for (const f of frames.splice(0)) f.remove(); // its Workers end with it
});

/** The page at this query (and hash), in an iframe, once it says it is ready. */
async function openPage(query: string, height = 1000): Promise<Page> {
  const frame = document.createElement('iframe');
  Object.assign(frame.style, { width: '1400px', height: `${height}px`, border: '0' });
  frame.src = `/index.html${query}`;
  document.body.append(frame);
  frames.push(frame);
  await until(() => frame.contentDocument?.body?.dataset.ready === 'true', 60_000, 'the page to be ready');
  return { doc: frame.contentDocument!, win: frame.contentWindow!, frame };
}

async function until(ok: () => boolean, timeout: number, what: string): Promise<void> {
  const t0 = performance.now();
  while (!ok()) {
    if (performance.now() - t0 > timeout) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sets a form field as a user would (an 'input' event that bubbles to its form). */
function set(p: Page, selector: string, value: string): void {
  const el = p.doc.querySelector<HTMLInputElement | HTMLSelectElement>(selector);
  if (!el) throw new Error(`no ${selector}`);
  el.value = value;
  el.dispatchEvent(new (p.win as unknown as typeof globalThis).Event('input', { bubbles: true }));
}

const $ = (p: Page, selector: string) => {
  const el = p.doc.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`no ${selector}`);
  return el;
};
const text = (p: Page, selector: string) => $(p, selector).textContent ?? '';
const hidden = (p: Page, field: string) => ($(p, `.field[data-field="${field}"]`) as HTMLElement).hidden;
const startDisabled = (p: Page) => ($(p, '#start') as HTMLButtonElement).disabled;

describe('the setup form: tp and pp', () => {
  it('offers tp and pp with their explanations, and refuses tp with 3 workers on 4 heads with a clear message', async () => {
    const p = await openPage('?preset=tiny&backend=wasm');
    const options = [...p.doc.querySelectorAll<HTMLOptionElement>('#f-strategy option')].map((o) => o.value);
    expect(options).toEqual(['single', 'ddp', 'fsdp', 'tp', 'pp', 'diloco']);
    await until(() => !startDisabled(p), 30_000, 'Start to be enabled (the training text)');

    set(p, '#f-strategy', 'tp');
    set(p, '#f-workers', '2');
    expect(text(p, '#dist-help li[data-help="strategy"]')).toContain(STRATEGY_LINES.tp);
    expect(text(p, '#dist-help li[data-help="workers"]')).toContain('each of 2 workers holds 2 of the 4 heads of every block');
    expect(text(p, '#global-batch')).toContain('Global batch = 4 batch_size × 1 grad_accum = 4 sequences (128 tokens) per step (every worker works on the same batch');
    expect(hidden(p, 'microbatches')).toBe(true);
    expect(hidden(p, 'schedule')).toBe(true);
    expect(($(p, '#f-bucket_mb') as HTMLInputElement).disabled).toBe(true); // no gradient buckets in TP
    expect(startDisabled(p)).toBe(false);
    await until(() => text(p, '#workers-subtitle').startsWith('TP:'), 5_000, 'the Workers panel to describe TP');
    expect(text(p, '#workers-subtitle')).toContain('TP: each of 2 workers holds 2 of the 4 heads and 1/2 of the MLP in every block');
    expect([...p.doc.querySelectorAll('.worker .worker-part')].map((e) => e.textContent)).toEqual(['heads 0–1', 'heads 2–3']);

    // 3 workers cannot split 4 heads: Start is disabled and the form says why
    set(p, '#f-workers', '3');
    const why = 'tensor parallelism splits the 4 heads among the workers: use 1, 2 or 4 workers (not 3)';
    expect(text(p, '#dist-error')).toBe(why);
    expect($(p, '#dist-error').hidden).toBe(false);
    expect(startDisabled(p)).toBe(true);
    expect(text(p, '#start-hint')).toBe(`Fix the setup first: ${why}.`);
    expect($(p, '.field[data-field="workers"]').classList.contains('invalid')).toBe(true);
    set(p, '#f-workers', '4');
    expect($(p, '#dist-error').hidden).toBe(true);
    expect(startDisabled(p)).toBe(false);
    expect(p.win.location.search).toBe('?preset=tiny&backend=wasm&strategy=tp&workers=4');

    // pp: its settings appear; 3 stages cannot share 2 blocks, 3 micro-batches cannot split a batch of 4
    set(p, '#f-strategy', 'pp');
    set(p, '#f-workers', '2');
    expect(hidden(p, 'microbatches')).toBe(false);
    expect(hidden(p, 'schedule')).toBe(false);
    expect(hidden(p, 'shard')).toBe(true);
    expect(text(p, '#dist-help li[data-help="strategy"]')).toContain(STRATEGY_LINES.pp);
    expect(text(p, '#dist-help li[data-help="microbatches"]')).toContain('(N−1)/(M+N−1) = 1/5 = 20% of every step');
    expect(text(p, '#dist-help li[data-help="schedule"]')).toContain('1f1b');
    expect(startDisabled(p)).toBe(false);
    set(p, '#f-microbatches', '3');
    expect(text(p, '#dist-error')).toMatch(/3 micro-batches do not divide the step's batch of 4 sequences/);
    expect($(p, '.field[data-field="microbatches"]').classList.contains('invalid')).toBe(true);
    expect(startDisabled(p)).toBe(true);
    set(p, '#f-microbatches', '2');
    set(p, '#f-workers', '3');
    expect(text(p, '#dist-error')).toMatch(/n_layer 2/);
    expect(startDisabled(p)).toBe(true);
    set(p, '#f-workers', '2');
    expect(startDisabled(p)).toBe(false);
    await until(() => text(p, '#workers-subtitle').startsWith('PP:'), 5_000, 'the Workers panel to describe PP');
    expect(text(p, '#workers-subtitle')).toContain('PP: 2 stages of 1 block each; every step\'s batch goes through in 2 micro-batches of 2 sequences');
    expect([...p.doc.querySelectorAll('.worker .worker-part')].map((e) => e.textContent)).toEqual(['stage 0: embedding, block 0', 'stage 1: block 1, head']);
  });

  it('a link with pp settings fills the form and round-trips', async () => {
    const link = '?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=1f1b';
    const p = await openPage(link);
    expect(($(p, '#f-strategy') as HTMLSelectElement).value).toBe('pp');
    expect(($(p, '#f-workers') as HTMLInputElement).value).toBe('2');
    expect(($(p, '#f-microbatches') as HTMLInputElement).value).toBe('4');
    expect(($(p, '#f-schedule') as HTMLSelectElement).value).toBe('1f1b');
    expect(p.win.location.search).toBe(link); // the page rewrote its address from the form: the same link
    expect($(p, '#banner').hidden).toBe(true);
    set(p, '#f-schedule', 'gpipe');
    const gpipe = '?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=gpipe';
    expect(p.win.location.search).toBe(gpipe);
    const q = await openPage(gpipe);
    expect(($(q, '#f-schedule') as HTMLSelectElement).value).toBe('gpipe');
    expect(q.win.location.search).toBe(gpipe);
  });
});

describe('the Compare view: data and model parallelism side by side', () => {
  it('runs single, DDP, TP and PP 1F1B on 2 workers: four rows, the same first loss, PP\'s micro-batches and bubble, the lesson', async () => {
    const p = await openPage('?preset=tiny&backend=wasm#compare?strategies=single,ddp,tp,pp-1f1b&workers=2&transport=ring&steps=4', 1200);
    expect((['single', 'ddp', 'tp', 'pp-1f1b', 'pp-gpipe'] as const).map((k) => ($(p, `#compare-s-${k}`) as HTMLInputElement).checked)).toEqual([true, true, true, true, false]);
    expect(text(p, '#compare-setup')).toContain('global batch 8 sequences (256 tokens)');
    expect(text(p, '#compare-setup')).toContain('single, TP, PP 1F1B train all 8 at once (every worker on the same batch). PP cuts them into 4 micro-batches of 2.');
    // TP on 3 workers cannot split 4 heads: the comparison says so and does not run
    set(p, '#compare-workers', '3');
    expect(text(p, '#compare-error')).toBe('TP: tensor parallelism splits the 4 heads among the workers: use 1, 2 or 4 workers (not 3).');
    expect(($(p, '#compare-run') as HTMLButtonElement).disabled).toBe(true);
    set(p, '#compare-workers', '2');
    expect($(p, '#compare-error').hidden).toBe(true);
    expect(p.win.location.hash).toBe('#compare?strategies=single,ddp,tp,pp-1f1b&workers=2&transport=ring&steps=4&microbatches=4');

    await until(() => !($(p, '#compare-run') as HTMLButtonElement).disabled, 30_000, 'Run comparison to be enabled');
    $(p, '#compare-run').click();
    await until(() => ['done', 'error'].includes($(p, '#compare').dataset.state ?? ''), 280_000, 'the comparison to finish');
    expect(text(p, '#compare-error')).toBe('');
    expect($(p, '#compare').dataset.state).toBe('done');

    // Four rows; TP and PP trained the same global batch as single: the same loss at step 1 (and after)
    const rows = [...p.doc.querySelectorAll<HTMLElement>('#compare-results tbody tr')].map((r) => ({ ...r.dataset, sub: r.querySelector('.cmp-sub-value')?.textContent }) as Record<string, string | undefined>);
    expect(rows.map((r) => r.strategy)).toEqual(['single', 'ddp', 'tp', 'pp-1f1b']);
    const first = (k: string) => Number(rows.find((r) => r.strategy === k)!.firstLoss);
    for (const k of ['ddp', 'tp', 'pp-1f1b']) {
      expect(Math.abs(first(k) - first('single')), `${k}'s loss at step 1`).toBeLessThan(1e-4);
      expect(Number(rows.find((r) => r.strategy === k)!.lossDiff), `${k}'s losses`).toBeLessThan(1e-4);
    }
    for (const r of rows) expect(Number(r.memory)).toBeGreaterThan(0);
    expect(rows.find((r) => r.strategy === 'tp')!.sub).toBe('2 workers, all on the same 8 seqs · ring');
    expect(rows.find((r) => r.strategy === 'ddp')!.sub).toBe('2 workers × 4 seqs · ring');
    const bytes = (k: string) => Number(rows.find((r) => r.strategy === k)!.bytes);
    expect(bytes('tp')).toBeGreaterThan(0);
    expect(bytes('pp-1f1b')).toBeGreaterThan(0);
    expect(bytes('pp-1f1b')).toBeLessThan(bytes('tp')); // PP sends only the boundary activations
    expect(text(p, '#compare-verdict')).toMatch(/The loss curves coincide/);

    // PP's timeline (the last run): micro-batch forwards and backwards, waits, sends, and a bubble label per stage
    expect($(p, '#compare-timeline svg').getAttribute('aria-label')).toContain('PP 1F1B: 2 workers');
    const blocks = (kind: string) => [...p.doc.querySelectorAll(`#compare-timeline g[data-kind="${kind}"]`)].map((g) => g.getAttribute('data-what') ?? '');
    expect(blocks('forward').some((w) => / · F0 · /.test(w))).toBe(true);
    expect(blocks('backward').some((w) => / · B3 · /.test(w))).toBe(true);
    expect(blocks('wait').length).toBeGreaterThan(0);
    expect(blocks('send').length).toBeGreaterThan(0);
    const labels = [...p.doc.querySelectorAll<SVGTextElement>('#compare-timeline text.cmp-bubble-label')];
    expect(labels.map((l) => l.dataset.rank)).toEqual(['0', '1']);
    for (const l of labels) {
      expect(Number(l.dataset.predicted)).toBeCloseTo(0.2, 4);
      expect(Number(l.dataset.measured)).toBeGreaterThan(0);
      expect(Number(l.dataset.measured)).toBeLessThan(1);
      expect(l.lastChild!.textContent).toMatch(/^stage \d: idle \d+% of the schedule \(the bubble, measured\) · predicted \(N−1\)\/\(M\+N−1\) = 1\/5 = 20%$/);
    }
    expect(text(p, '#compare-bubble')).toMatch(/^Bubble: the 2 stages sat idle \d+% of the schedule on average .* predicts \(N−1\)\/\(M\+N−1\) = 1\/5 = 20%/);

    // The cost model: its predictions beside the measurements, PP's bubble among them
    await until(() => $(p, '#compare-calibration').dataset.calibrated === 'true', 60_000, 'the calibration');
    const pvm = [...p.doc.querySelectorAll<HTMLElement>('#compare-predicted tbody tr')].map((r) => ({ ...r.dataset }) as Record<string, string | undefined>);
    expect(pvm.map((r) => r.strategy)).toEqual(['single', 'ddp', 'tp', 'pp-1f1b']);
    for (const r of pvm) expect(Number(r.predictedMs)).toBeGreaterThan(0);
    expect(Number(pvm[3].predictedBubble)).toBeCloseTo(0.2, 6);
    expect(pvm[2].predictedBubble).toBe('');
    // TP's and PP's bytes: the cost model's figure is what the workers sent (the runtime's own counts)
    for (const i of [2, 3]) {
      const measured = bytes(pvm[i].strategy!);
      expect(Math.abs(Number(pvm[i].predictedBytes) / measured - 1), `${pvm[i].strategy} bytes: predicted ${pvm[i].predictedBytes}, measured ${measured}`).toBeLessThan(0.05);
    }
    for (const r of pvm) console.log(`[model-parallel] ${r.strategy}: predicted ${Number(r.predictedMs).toFixed(1)} ms/step, measured ${Number(r.measuredMs).toFixed(1)} ms/step; idle ${Number(r.measuredIdle).toFixed(2)}${r.predictedBubble ? ` (bubble predicted ${r.predictedBubble})` : ''}`);
    // the what-if's advice at 2 workers: a slow link, PP moves least
    set(p, '#whatif-workers', '2');
    expect($(p, '#compare-advice').dataset.leastTraffic).toMatch(/^pp-/);
    expect(text(p, '#compare-advice li[data-advice="traffic"]')).toContain('moves least');

    // The lesson: what each split, and what it paid, with this run's numbers and links to them
    const lesson = [...p.doc.querySelectorAll<HTMLElement>('#compare-lesson-body p[data-strategy]')];
    expect(text(p, '#compare-lesson-title')).toBe('What does each kind of parallelism split, and what does it pay for it?');
    expect(lesson.map((e) => e.dataset.strategy)).toEqual(['single', 'ddp', 'tp', 'pp-1f1b']);
    expect(lesson[0].textContent).toContain('splits nothing');
    expect(lesson[1].textContent).toContain('splits the batch: each of 2 workers trains 4 of the 8 sequences');
    expect(lesson[2].textContent).toContain('splits every layer: each of 2 workers holds 2 of the 4 heads');
    expect(lesson[3].textContent).toMatch(/splits the model by depth: 2 stages of 1 block each.*the bubble.*\d+% of the schedule measured against \(N−1\)\/\(M\+N−1\) = 1\/5 = 20% predicted/);
    const hrefs = lesson.flatMap((e) => [...e.querySelectorAll('a')].map((a) => a.getAttribute('href')));
    for (const id of ['#compare-row-tp', '#compare-pred-pp-1f1b', '#compare-timeline']) expect(hrefs).toContain(id);
    for (const href of new Set(hrefs)) expect(p.doc.querySelector(href!), href!).not.toBeNull();
    // a number about TP's waiting shows TP in the timeline
    (lesson[2].querySelector('a[data-select="tp"]') as HTMLElement).click();
    expect($(p, '#compare-timeline svg').getAttribute('aria-label')).toContain('TP: 2 workers');

    // Screenshots for the README: the Compare view, PP's timeline, the lesson
    // (the test's own viewport as tall as the shot: what lies outside it is not painted)
    const shoot = async (selector: string, path: string) => {
      const el = $(p, selector);
      for (let i = 0; i < 2; i++) { // charts and the timeline follow the new size, which may change the height
        const height = Math.ceil(el.getBoundingClientRect().height) + 8;
        await page.viewport(1420, height + 40);
        p.frame.style.height = `${height}px`;
        await new Promise((r) => setTimeout(r, 300));
      }
      el.scrollIntoView({ block: 'start' });
      await page.screenshot({ element: p.frame, path });
    };
    try {
      await shoot('#compare', '../../test-results/compare-model-parallel.png');
      (p.doc.querySelector('#compare .cmp-pill[data-strategy="pp-1f1b"]') as HTMLElement).click();
      await shoot('section[aria-labelledby="compare-timeline-title"]', '../../test-results/compare-pp-timeline.png');
      await shoot('#compare-lesson', '../../test-results/compare-lesson.png');
    } catch (e) {
      console.log(`[model-parallel] no screenshots: ${(e as Error).message}`);
    }
  });
});
