// The page's setup (src/ui/setup.ts): the dist part (strategy, workers, transport, bucket_mb, FSDP's
// shard and prefetch, PP's microbatches and schedule) through the form values, checkDist, checkSplit and
// the URL; the global batch of data and model parallelism; the memory expected at rest (src/ui/memory.ts)
// and the Workers panel's one-line descriptions. Pure functions, no browser.

import { describe, expect, it } from 'vitest';
import { defaultWorkers } from '../src/parallel/layout';
import { TRANSPORTS } from '../src/parallel/collectives';
import { DEFAULT_DIST, distFieldsInMessage, distValues, fieldsInMessage, fromQuery, globalBatch, memoryError, overrides, splitError, toConfig, toDist, toQuery } from '../src/ui/setup';
import { describe as describeDist, partOf } from '../src/ui/workers-panel';
import { makeConfig } from '../src/model/config';
import { stageTable } from '../src/parallel/pp-layout';
import { tpLocalTable } from '../src/parallel/tp-layout';
import { parseTrainOptions } from '../src/cli/train-options';
import { expectedAtRest } from '../src/ui/memory';
import { buildParamTable } from '../src/model/params';
import { PRESETS } from '../src/model/config';

describe('the same settings train the same way in the page and the CLI', () => {
  // A link and the CLI flags that say the same thing must build the same RunConfig (the schedule rules
  // live in makeConfig, and the page's form follows them).
  const pairs: [string, string[]][] = [
    ['?preset=tiny', ['--preset', 'tiny']],
    ['?preset=tiny&max_iters=8', ['--preset', 'tiny', '--steps', '8']],
    ['?preset=tiny&lr=0.003&max_iters=60', ['--preset', 'tiny', '--lr', '0.003', '--steps', '60']],
    ['?preset=shakespeare-cpu&max_iters=3000&lr=0.002&min_lr=0.0001', ['--steps', '3000', '--lr', '0.002', '--set', 'min_lr=0.0001']],
    ['?preset=tiny&max_iters=100&lr_decay_iters=50&warmup_iters=5&batch_size=3&seed=7', ['--preset', 'tiny', '--steps', '100', '--set', 'lr_decay_iters=50', '--set', 'warmup_iters=5', '--batch', '3', '--seed', '7']],
  ];
  it.each(pairs)('%s', (link, flags) => {
    const { setup, problems } = fromQuery(link);
    expect(problems).toEqual([]);
    const page = toConfig(setup);
    expect(page.error).toBeNull();
    expect(page.config).toEqual(parseTrainOptions(flags)!.cfg);
  });

  it('a link that leaves the schedule out shows it following; one the user typed stays', () => {
    const { setup } = fromQuery('?preset=tiny&max_iters=8&lr=0.002');
    expect(setup.values).toMatchObject({ lr_decay_iters: '8', warmup_iters: '8', min_lr: '0.0002' });
    expect(toQuery(setup)).toBe('?preset=tiny&max_iters=8&lr=0.002'); // following values are not overrides
    const typed = overrides({ ...setup, values: { ...setup.values, lr_decay_iters: '6' } });
    expect(typed).toMatchObject({ lr_decay_iters: '6' });
    expect(typed).not.toHaveProperty('min_lr');
  });
});

describe('dist settings of the page', () => {
  it('defaults to one worker; ddp defaults to the cores, at least 2, at most 8', () => {
    expect(fromQuery('?preset=tiny').setup.dist).toEqual(DEFAULT_DIST);
    expect(DEFAULT_DIST).toEqual({
      strategy: 'single', workers: '1', transport: 'ring', bucket_mb: '25', shard: 'full', prefetch: 'on', microbatches: '4', schedule: '1f1b',
      inner_steps: '20', outer_lr: '0.7', outer_momentum: '0.9', outer_compress: 'none',
    });
    expect(toDist(DEFAULT_DIST)).toEqual({ dist: { strategy: 'single', workers: 1, transport: 'ring', bucketMb: 25 }, error: null });
    expect([1, 2, 6, 64, undefined].map(defaultWorkers)).toEqual([2, 2, 6, 8, 2]);
    expect(fromQuery('?preset=tiny&strategy=ddp', 6).setup.dist.workers).toBe('6');
  });

  it('round-trips through the link, naming ddp workers explicitly', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=ddp&workers=4&transport=star&bucket_mb=0.5', 2);
    expect(problems).toEqual([]);
    expect(toDist(setup.dist).dist).toEqual({ strategy: 'ddp', workers: 4, transport: 'star', bucketMb: 0.5 });
    expect(toQuery(setup)).toBe('?preset=tiny&strategy=ddp&workers=4&transport=star&bucket_mb=0.5');
    expect(toQuery(fromQuery('?preset=tiny&strategy=ddp', 3).setup)).toBe('?preset=tiny&strategy=ddp&workers=3');
    expect(toQuery(fromQuery('?preset=tiny').setup)).toBe('?preset=tiny');
  });

  it('a valid link gives no warning: the defaults named, every strategy, and every link the page writes', () => {
    const links = [
      '?preset=tiny&strategy=single', '?preset=tiny&strategy=single&workers=1', '?preset=tiny&workers=1', '?preset=tiny&transport=ring&bucket_mb=25',
      '?preset=tiny&strategy=ddp&workers=2', '?preset=tiny&strategy=ddp&workers=1', '?preset=tiny&strategy=fsdp&workers=2&shard=full&prefetch=on',
      '?preset=tiny&strategy=tp&workers=2', '?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=gpipe', '?strategy=single&transport=shared',
    ];
    for (const link of links) {
      const { setup, problems } = fromQuery(link, 2);
      expect(problems, link).toEqual([]);
      expect(toConfig(setup).error, link).toBeNull();
      expect(toDist(setup.dist).error, link).toBeNull();
      expect(fromQuery(toQuery(setup), 2).problems, link).toEqual([]); // and the link the page then writes
    }
    expect(toQuery(fromQuery('?preset=tiny&strategy=single&workers=1').setup)).toBe('?preset=tiny');
  });

  it('a setup one worker could not hold blocks Start with the memory it would need; splitting the model can make it fit', () => {
    const dist = (d: string) => toDist({ ...DEFAULT_DIST, ...Object.fromEntries(new URLSearchParams(d)) }).dist!;
    expect(memoryError(makeConfig('tiny'), dist(''))).toBeNull();
    expect(memoryError(makeConfig('gpt2', { backend: 'wasm' }), dist(''))).toBeNull();
    const big = memoryError(makeConfig('tiny', { batch_size: 100_000 }), dist(''))!;
    expect(big).toMatch(/^one worker would need about 35\.1 GB .*holds at most 4\.0 GB/);
    expect(fieldsInMessage(big)).toContain('batch_size'); // highlighted in the form
    // Data parallelism does not split a worker's micro-batch: each of 2 DDP workers still needs it all.
    expect(memoryError(makeConfig('tiny', { batch_size: 100_000 }), dist('strategy=ddp&workers=2'))).toMatch(/^one worker of ddp over 2 workers would need about 35\.1 GB/);
    // GPT-2 large's shape (774M) is too big for one GPU worker, and fits when FSDP shards it over 8.
    const large = makeConfig('gpt2', { n_layer: 36, n_head: 20, n_embd: 1280, backend: 'webgpu' });
    expect(memoryError(large, dist(''))).toMatch(/^one worker would need about 2\d\.\d GB .*a GPU worker \(backend webgpu\) holds at most 16\.0 GB: lower n_layer or n_embd, or split the model over more workers/);
    expect(memoryError(large, dist('strategy=fsdp&workers=8'))).toBeNull();
  });

  it('a bad link value falls back, with checkDist\'s reason', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=zero3&workers=0&transport=udp&bucket_mb=-1', 4);
    expect(setup.dist).toEqual(DEFAULT_DIST);
    expect(problems).toEqual([
      'The link\'s strategy could not be used (strategy must be single, ddp, fsdp, tp, pp or diloco, got "zero3"); using single instead.',
      'The link\'s workers could not be used (workers must be a whole number from 1 to 8, got 0); using 1 instead.',
      `The link's transport could not be used (transport must be ${TRANSPORTS.slice(0, -1).join(', ')} or ${TRANSPORTS.at(-1)}, got "udp"); using ring instead.`,
      'The link\'s bucket_mb could not be used (bucket_mb must be a positive number of MB, got -1); using 25 instead.',
    ]);
    const single = fromQuery('?preset=tiny&workers=3');
    expect(single.setup.dist.workers).toBe('1');
    expect(single.problems[0]).toContain('strategy single runs one worker; choose strategy ddp, fsdp, tp, pp or diloco to train with 3');
    const ddp = fromQuery('?preset=tiny&strategy=ddp&workers=many', 4);
    expect(ddp.setup.dist.workers).toBe('4');
    expect(ddp.problems[0]).toBe('The link\'s workers could not be used (workers must be a whole number from 1 to 8, got "many"); using 4 instead.');
  });

  it('form values get specific messages that name the field', () => {
    const bad = (patch: Partial<typeof DEFAULT_DIST>) => toDist({ ...DEFAULT_DIST, strategy: 'ddp', workers: '2', ...patch }).error;
    expect(bad({ workers: 'two' })).toBe('workers must be a whole number from 1 to 8, got "two"');
    expect(bad({ workers: '2.5' })).toBe('workers must be a whole number from 1 to 8, got 2.5');
    expect(bad({ bucket_mb: '' })).toBe('bucket_mb must be a positive number of MB, got ""');
    expect(bad({ bucket_mb: '0' })).toBe('bucket_mb must be a positive number of MB, got 0');
    expect(bad({ strategy: 'single' })).toContain('strategy single runs one worker');
    expect(distFieldsInMessage(bad({ strategy: 'single' })!)).toEqual(['strategy', 'workers']);
    expect(distFieldsInMessage(bad({ bucket_mb: '0' })!)).toEqual(['bucket_mb']);
  });

  it('fsdp: shard and prefetch round-trip through the link, only with fsdp', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=fsdp&workers=2&shard=grad_op&prefetch=off&transport=star', 4);
    expect(problems).toEqual([]);
    expect(setup.dist).toEqual({ ...DEFAULT_DIST, strategy: 'fsdp', workers: '2', transport: 'star', bucket_mb: '25', shard: 'grad_op', prefetch: 'off' });
    expect(toDist(setup.dist)).toEqual({ dist: { strategy: 'fsdp', workers: 2, transport: 'star', bucketMb: 25, shard: 'grad_op', prefetch: false }, error: null });
    expect(toQuery(setup)).toBe('?preset=tiny&strategy=fsdp&workers=2&transport=star&shard=grad_op&prefetch=off');
    // The defaults (full, prefetch on) are left out; fsdp, like ddp, names its workers.
    const plain = fromQuery('?preset=tiny&strategy=fsdp', 3).setup;
    expect(plain.dist.workers).toBe('3');
    expect(toQuery(plain)).toBe('?preset=tiny&strategy=fsdp&workers=3');
    expect(toDist(plain.dist).dist).toEqual({ strategy: 'fsdp', workers: 3, transport: 'ring', bucketMb: 25, shard: 'full', prefetch: true });
    expect(toQuery(fromQuery('?preset=tiny&strategy=fsdp&workers=2&shard=none').setup)).toBe('?preset=tiny&strategy=fsdp&workers=2&shard=none');
    // With another strategy they are hidden, not part of the options, and not in the link.
    const ddp = { ...plain, dist: { ...plain.dist, strategy: 'ddp', shard: 'grad_op' } };
    expect(toDist(ddp.dist).dist).toEqual({ strategy: 'ddp', workers: 3, transport: 'ring', bucketMb: 25 });
    expect(toQuery(ddp)).toBe('?preset=tiny&strategy=ddp&workers=3');
    // What a checkpoint stores comes back as the same form values (older ones have no shard/prefetch).
    expect(distValues(toDist(setup.dist).dist!)).toEqual(setup.dist);
    expect(distValues({ strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25 })).toEqual({ ...DEFAULT_DIST, strategy: 'ddp', workers: '2' });
  });

  it('fsdp: bad link values fall back with a reason; form values block Start with one', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=fsdp&workers=2&shard=half&prefetch=maybe', 4);
    expect(setup.dist).toEqual({ ...DEFAULT_DIST, strategy: 'fsdp', workers: '2' });
    expect(problems).toEqual([
      'The link\'s shard could not be used (shard must be full, grad_op or none, got "half"); using full instead.',
      'The link\'s prefetch could not be used (prefetch must be on or off, got "maybe"); using on instead.',
    ]);
    const ignored = fromQuery('?preset=tiny&strategy=ddp&workers=2&shard=grad_op&prefetch=off');
    expect(ignored.setup.dist).toEqual({ ...DEFAULT_DIST, strategy: 'ddp', workers: '2' });
    expect(ignored.problems).toEqual(['The link sets shard and prefetch, which only strategy fsdp uses; they were ignored.']);
    expect(fromQuery('?preset=tiny&shard=none').problems).toEqual(['The link sets shard, which only strategy fsdp uses; it was ignored.']);

    const bad = (patch: Partial<typeof DEFAULT_DIST>) => toDist({ ...DEFAULT_DIST, strategy: 'fsdp', workers: '2', ...patch }).error;
    expect(bad({})).toBeNull();
    expect(bad({ shard: 'half' })).toBe('shard must be full, grad_op or none, got "half"');
    expect(bad({ prefetch: 'yes' })).toBe('prefetch must be on or off, got "yes"');
    expect(distFieldsInMessage(bad({ shard: 'half' })!)).toEqual(['shard']);
    expect(distFieldsInMessage(bad({ prefetch: 'yes' })!)).toEqual(['prefetch']);
    expect(bad({ strategy: 'zero3' })).toBe('strategy must be single, ddp, fsdp, tp, pp or diloco, got "zero3"');
    expect(bad({ workers: '9' })).toBe('workers must be a whole number from 1 to 8, got 9');
  });

  it('memory at rest: 16 bytes per parameter for a replica (20 on the CPU backends), (16 + 12 buddy)/N (padded shards) for FULL_SHARD', () => {
    const table = buildParamTable(PRESETS.tiny);
    const P = table.total;
    expect(expectedAtRest(table, { strategy: 'ddp', workers: 2 }, 'webgpu').bytes).toBe(16 * P);
    expect(expectedAtRest(table, { strategy: 'fsdp', workers: 2, shard: 'none' }, 'webgl').bytes).toBe(16 * P);
    expect(expectedAtRest(table, { strategy: 'ddp', workers: 2 }, 'wasm').bytes).toBe(20 * P); // + the host AdamW's master copy
    for (const N of [2, 3, 8]) {
      const full = expectedAtRest(table, { strategy: 'fsdp', workers: N, shard: 'full' }, 'wasm');
      expect(full.bytes).toBeGreaterThanOrEqual((28 * P) / N); // the shards, and the next worker's (its buddy copy)
      expect(full.bytes).toBeLessThanOrEqual((28 * (P + N * table.units.length)) / N); // at most one pad per unit
      expect(full.formula).toBe(`28 B × ${P.toLocaleString('en-US')} parameters ÷ ${N} workers (16 for the shards, 12 for a neighbour's buddy copy)`);
    }
    const shards = (shard: 'full' | 'grad_op') => expectedAtRest(table, { strategy: 'fsdp', workers: 2, shard }, 'wasm').bytes;
    expect(shards('grad_op')).toBe(shards('full'));
  });

  it('global batch is workers x batch_size x grad_accum for data parallelism, batch_size x grad_accum for single, tp and pp', () => {
    const cfg = { batch_size: 4, grad_accum: 2, block_size: 32 };
    expect(globalBatch(cfg, 3)).toEqual({ sequences: 24, tokens: 768 });
    expect(globalBatch(cfg, 3, 'fsdp')).toEqual({ sequences: 24, tokens: 768 });
    expect(globalBatch(cfg, 1, 'single')).toEqual({ sequences: 8, tokens: 256 });
    expect(globalBatch(cfg, 2, 'tp')).toEqual({ sequences: 8, tokens: 256 }); // every worker works on the same batch
    expect(globalBatch(cfg, 4, 'pp')).toEqual({ sequences: 8, tokens: 256 });
  });
});

describe('model parallelism in the setup: tp and pp', () => {
  it('pp: microbatches and schedule round-trip through the link (always named), only with pp', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=1f1b', 4);
    expect(problems).toEqual([]);
    expect(setup.dist).toEqual({ ...DEFAULT_DIST, strategy: 'pp', workers: '2', microbatches: '4', schedule: '1f1b' });
    expect(toDist(setup.dist)).toEqual({ dist: { strategy: 'pp', workers: 2, transport: 'ring', bucketMb: 25, microbatches: 4, schedule: '1f1b' }, error: null });
    expect(toQuery(setup)).toBe('?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=1f1b');
    const gpipe = fromQuery('?preset=tiny&strategy=pp&workers=2&microbatches=2&schedule=gpipe&transport=star');
    expect(gpipe.problems).toEqual([]);
    expect(toQuery(gpipe.setup)).toBe('?preset=tiny&strategy=pp&workers=2&transport=star&microbatches=2&schedule=gpipe');
    expect(fromQuery(toQuery(gpipe.setup)).setup).toEqual(gpipe.setup);
    // pp without them: the defaults, named in the link; a checkpoint's options give the same form values
    expect(toQuery(fromQuery('?preset=tiny&strategy=pp&workers=2').setup)).toBe('?preset=tiny&strategy=pp&workers=2&microbatches=4&schedule=1f1b');
    expect(distValues(toDist(gpipe.setup.dist).dist!)).toEqual(gpipe.setup.dist);
    // another strategy: not part of the options, not in the link, and a link that sets them says so
    const ddp = { ...setup, dist: { ...setup.dist, strategy: 'ddp', microbatches: '8', schedule: 'gpipe' } };
    expect(toDist(ddp.dist).dist).toEqual({ strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25 });
    expect(toQuery(ddp)).toBe('?preset=tiny&strategy=ddp&workers=2');
    expect(fromQuery('?preset=tiny&strategy=ddp&workers=2&microbatches=8&schedule=gpipe').problems)
      .toEqual(['The link sets microbatches and schedule, which only strategy pp uses; they were ignored.']);
  });

  it('pp: bad values fall back (a link) or block Start (the form) with a reason', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=pp&workers=2&microbatches=0&schedule=zigzag', 4);
    expect(setup.dist).toMatchObject({ strategy: 'pp', microbatches: '4', schedule: '1f1b' });
    expect(problems).toEqual([
      'The link\'s microbatches could not be used (microbatches must be a whole number of at least 1, got 0); using 4 instead.',
      'The link\'s schedule could not be used (schedule must be gpipe or 1f1b, got "zigzag"); using 1f1b instead.',
    ]);
    expect(fromQuery('?preset=tiny&strategy=pp&workers=2&microbatches=many').problems[0]).toContain('microbatches must be a whole number of at least 1, got "many"');
    const bad = (patch: Partial<typeof DEFAULT_DIST>) => toDist({ ...DEFAULT_DIST, strategy: 'pp', workers: '2', ...patch }).error;
    expect(bad({})).toBeNull();
    expect(bad({ microbatches: 'two' })).toBe('microbatches must be a whole number of at least 1, got "two"');
    expect(bad({ microbatches: '1.5' })).toBe('microbatches must be a whole number of at least 1, got 1.5');
    expect(bad({ schedule: 'zigzag' })).toBe('schedule must be gpipe or 1f1b, got "zigzag"');
    expect(distFieldsInMessage(bad({ microbatches: '0' })!)).toEqual(['microbatches']);
    expect(distFieldsInMessage(bad({ schedule: 'x' })!)).toEqual(['schedule']);
  });

  it('a split that does not work blocks Start with a clear message: tp heads, pp blocks and micro-batches', () => {
    const tiny = makeConfig('tiny'); // 4 heads, 2 blocks, batch 4
    const dist = (d: string) => toDist({ ...DEFAULT_DIST, ...Object.fromEntries(new URLSearchParams(d)) }).dist!;
    expect(splitError(tiny, dist('strategy=tp&workers=2'))).toBeNull();
    expect(splitError(tiny, dist('strategy=tp&workers=4'))).toBeNull();
    expect(splitError(tiny, dist('strategy=tp&workers=3'))).toBe('tensor parallelism splits the 4 heads among the workers: use 1, 2 or 4 workers (not 3)');
    expect(distFieldsInMessage(splitError(tiny, dist('strategy=tp&workers=3'))!)).toEqual(['workers']);
    expect(splitError(tiny, dist('strategy=pp&workers=2'))).toBeNull();
    expect(splitError(tiny, dist('strategy=pp&workers=3'))).toMatch(/3 workers need n_layer >= 3, this model has n_layer 2/);
    expect(splitError(tiny, dist('strategy=pp&workers=2&microbatches=3'))).toMatch(/3 micro-batches do not divide the step's batch of 4 sequences .*use one of 1, 2, 4/);
    expect(distFieldsInMessage(splitError(tiny, dist('strategy=pp&workers=2&microbatches=3'))!)).toContain('microbatches');
    expect(splitError({ ...tiny, grad_accum: 3 }, dist('strategy=pp&workers=2&microbatches=3'))).toBeNull(); // 12 sequences
    expect(splitError(tiny, dist('strategy=ddp&workers=3'))).toBeNull();
  });

  it('memory at rest: tp keeps its slices, pp its largest stage', () => {
    const table = buildParamTable(PRESETS['shakespeare-cpu']);
    const tp = expectedAtRest(table, { strategy: 'tp', workers: 2 }, 'webgpu');
    expect(tp.bytes).toBe(16 * tpLocalTable(table, 2, 0).total);
    expect(tp.bytes).toBeLessThan(16 * table.total);
    expect(tp.formula).toMatch(/^16 B × [\d,]+ parameters \(1\/2 of the [\d,]+ split among the workers \+ all [\d,]+ replicated/);
    const pp = expectedAtRest(table, { strategy: 'pp', workers: 2 }, 'wasm');
    const stages = [0, 1].map((r) => stageTable(table, 2, r).total);
    expect(pp.bytes).toBe(20 * Math.max(...stages));
    expect(pp.formula).toContain('parameters of the largest stage (worker 0: blocks 0–1, wte and wpe)');
    expect(expectedAtRest(table, { strategy: 'pp', workers: 1 }, 'wasm').bytes).toBe(20 * table.total);
  });

  it('the Workers panel says what each strategy does with the run\'s numbers', () => {
    const cfg = makeConfig('shakespeare-cpu'); // 4 heads, 4 blocks, batch 12
    const tp = describeDist({ strategy: 'tp', workers: 2, transport: 'ring', bucketMb: 25 }, cfg);
    expect(tp).toContain('TP: each of 2 workers holds 2 of the 4 heads and 1/2 of the MLP in every block, and all work on the same batch');
    expect(tp).toContain('4 times per block (16 per micro-batch for 4 blocks)');
    const pp = describeDist({ strategy: 'pp', workers: 2, transport: 'ring', bucketMb: 25, microbatches: 4, schedule: 'gpipe' }, cfg);
    expect(pp).toContain('PP: 2 stages of 2 blocks each; every step\'s batch goes through in 4 micro-batches of 3 sequences');
    expect(pp).toContain('GPipe');
    expect(pp).toContain('(N−1)/(M+N−1) = 20%');
    expect(describeDist({ strategy: 'pp', workers: 3, transport: 'ring', bucketMb: 25 }, cfg)).toContain('3 stages of 2, 1, 1 blocks');
    expect([0, 1].map((r) => partOf({ strategy: 'tp', workers: 2 }, cfg, r))).toEqual(['heads 0–1', 'heads 2–3']);
    expect([0, 1].map((r) => partOf({ strategy: 'pp', workers: 2 }, cfg, r))).toEqual(['stage 0: embedding, blocks 0–1', 'stage 1: blocks 2–3, head']);
    expect(partOf({ strategy: 'ddp', workers: 2 }, cfg, 0)).toBe('');
  });
});

describe('diloco in the setup', () => {
  it('inner_steps, outer_lr, outer_momentum and outer_compress round-trip through the link (H always named), only with diloco', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=diloco&workers=2&inner_steps=5&outer_compress=fp16', 4);
    expect(problems).toEqual([]);
    expect(setup.dist).toEqual({ ...DEFAULT_DIST, strategy: 'diloco', workers: '2', inner_steps: '5', outer_compress: 'fp16' });
    expect(toDist(setup.dist)).toEqual({
      dist: { strategy: 'diloco', workers: 2, transport: 'ring', bucketMb: 25, innerSteps: 5, outerLr: 0.7, outerMomentum: 0.9, outerCompress: 'fp16' }, error: null,
    });
    expect(toQuery(setup)).toBe('?preset=tiny&strategy=diloco&workers=2&inner_steps=5&outer_compress=fp16');
    expect(fromQuery(toQuery(setup)).setup).toEqual(setup);
    // the outer step's lr and momentum, when not DiLoCo's defaults; H = 20 named anyway
    const plain = fromQuery('?preset=tiny&strategy=diloco&workers=3&outer_lr=1&outer_momentum=0');
    expect(plain.problems).toEqual([]);
    expect(toQuery(plain.setup)).toBe('?preset=tiny&strategy=diloco&workers=3&inner_steps=20&outer_lr=1&outer_momentum=0');
    expect(toDist(plain.setup.dist).dist).toMatchObject({ innerSteps: 20, outerLr: 1, outerMomentum: 0, outerCompress: 'none' });
    expect(distValues(toDist(setup.dist).dist!)).toEqual(setup.dist);
    // another strategy: not in the options nor the link, and a link that sets them says so
    const ddp = { ...setup, dist: { ...setup.dist, strategy: 'ddp' } };
    expect(toDist(ddp.dist).dist).toEqual({ strategy: 'ddp', workers: 2, transport: 'ring', bucketMb: 25 });
    expect(toQuery(ddp)).toBe('?preset=tiny&strategy=ddp&workers=2');
    const ignored = fromQuery('?preset=tiny&strategy=ddp&workers=2&inner_steps=5');
    expect(ignored.problems).toEqual(['The link sets inner_steps, which only strategy diloco uses; it was ignored.']);
    expect(ignored.setup.dist.inner_steps).toBe('20');
  });

  it('refuses a bad H, outer lr, momentum or compression with a message naming the setting', () => {
    const bad = (patch: Partial<typeof DEFAULT_DIST>) => toDist({ ...DEFAULT_DIST, strategy: 'diloco', workers: '2', ...patch }).error;
    expect(bad({ inner_steps: '0' })).toBe('inner_steps must be a whole number of at least 1, got "0"');
    expect(bad({ inner_steps: '2.5' })).toMatch(/^inner_steps/);
    expect(bad({ outer_lr: '-1' })).toBe('outer_lr must be a positive number, got "-1"');
    expect(bad({ outer_momentum: '1' })).toMatch(/^outer_momentum/);
    expect(bad({ outer_compress: 'zip' })).toBe('outer_compress must be none, fp16, int8, got "zip"');
    expect(distFieldsInMessage(bad({ inner_steps: 'x' })!)).toEqual(['inner_steps']);
    const link = fromQuery('?preset=tiny&strategy=diloco&workers=2&inner_steps=0&outer_compress=zip');
    expect(link.setup.dist).toMatchObject({ inner_steps: '20', outer_compress: 'none' });
    expect(link.problems).toHaveLength(2);
    expect(link.problems[0]).toMatch(/^The link's inner_steps could not be used/);
  });
});
