// The page's setup (src/ui/setup.ts): the dist part (strategy, workers, transport, bucket_mb) through
// the form values, checkDist and the URL. Pure functions, no browser.

import { describe, expect, it } from 'vitest';
import { DEFAULT_DIST, defaultWorkers, distFieldsInMessage, fromQuery, globalBatch, toDist, toQuery } from '../src/ui/setup';

describe('dist settings of the page', () => {
  it('defaults to one worker; ddp defaults to the cores, at least 2, at most 8', () => {
    expect(fromQuery('?preset=tiny').setup.dist).toEqual(DEFAULT_DIST);
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

  it('a bad link value falls back, with checkDist\'s reason', () => {
    const { setup, problems } = fromQuery('?preset=tiny&strategy=fsdp&workers=0&transport=udp&bucket_mb=-1', 4);
    expect(setup.dist).toEqual(DEFAULT_DIST);
    expect(problems).toEqual([
      'The link\'s strategy could not be used (strategy must be single or ddp, got "fsdp"); using single instead.',
      'The link\'s workers could not be used (workers must be a whole number from 1 to 8, got 0); using 1 instead.',
      'The link\'s transport could not be used (transport must be ring, star or shared, got "udp"); using ring instead.',
      'The link\'s bucket_mb could not be used (bucket_mb must be a positive number of MB, got -1); using 25 instead.',
    ]);
    const single = fromQuery('?preset=tiny&workers=3');
    expect(single.setup.dist.workers).toBe('1');
    expect(single.problems[0]).toContain('strategy single runs one worker; choose strategy ddp to train with 3');
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

  it('global batch is workers x batch_size x grad_accum', () => {
    expect(globalBatch({ batch_size: 4, grad_accum: 2, block_size: 32 }, 3)).toEqual({ sequences: 24, tokens: 768 });
  });
});
