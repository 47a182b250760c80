// The checkpoint store (src/ui/store.ts) on an in-memory key-value store: a save is atomic (a crash at
// any write or delete of a save leaves the previous checkpoint loadable, and the next save cleans up),
// and checkpoints saved in the layout before atomic saves still load. The autosave clock
// (src/ui/checkpoints.ts): a save at least every AUTOSAVE_MS of training, whatever the eval cadence.
// Run: npx vitest run --project node test/store.test.ts

import { describe, expect, it } from 'vitest';
import { forgetCheckpoint, loadCheckpoint, loadMeta, saveCheckpoint, type CheckpointMeta, type KV } from '../src/ui/store';
import { makeConfig } from '../src/model/config';
import { AUTOSAVE_MS, AutosaveClock } from '../src/ui/checkpoints';

/** A Map as the store; `crashAt` makes the n-th write or delete (0-based) fail, and every later call too (the tab died). */
function memoryKV(data = new Map<string, unknown>(), crashAt = Infinity): KV & { data: Map<string, unknown>; ops: number } {
  let dead = false;
  const kv = {
    data,
    ops: 0,
    check() {
      if (dead || kv.ops++ === crashAt) {
        dead = true;
        throw new Error('the tab crashed');
      }
    },
    async get<T>(key: string) {
      if (dead) throw new Error('the tab crashed');
      return data.get(key) as T | undefined;
    },
    async set(key: string, value: unknown) {
      kv.check();
      data.set(key, value);
    },
    async del(key: string) {
      kv.check();
      data.delete(key);
    },
    async keys() {
      if (dead) throw new Error('the tab crashed');
      return [...data.keys()];
    },
  };
  return kv;
}

const config = makeConfig('tiny', {});
const buffer = (step: number) => new Float32Array([step, step, step]).buffer;
const meta = (step: number): CheckpointMeta => ({ step, preset: 'tiny', config, savedAt: step, bytes: 12, source: 'autosave', corpus: 'tinyshakespeare.txt' });
const stepOf = (buf: ArrayBuffer | null) => (buf ? new Float32Array(buf)[0] : null);

describe('checkpoint store', () => {
  it('saves, replaces, loads through the pointer and forgets, keeping one checkpoint', async () => {
    const kv = memoryKV();
    expect(await loadMeta(kv)).toBeNull();
    expect(await loadCheckpoint(kv)).toBeNull();
    await saveCheckpoint(buffer(10), meta(10), kv);
    expect(await loadMeta(kv)).toEqual(meta(10)); // the summary, without the pointer's key
    expect(stepOf(await loadCheckpoint(kv))).toBe(10);
    await saveCheckpoint(buffer(20), meta(20), kv);
    expect((await loadMeta(kv))?.step).toBe(20);
    expect(stepOf(await loadCheckpoint(kv))).toBe(20);
    expect([...kv.data.keys()].filter((k) => k.startsWith('checkpoint:')).length).toBe(2); // pointer + one checkpoint
    await forgetCheckpoint(kv);
    expect(await loadMeta(kv)).toBeNull();
    expect(await loadCheckpoint(kv)).toBeNull();
    expect(kv.data.size).toBe(0);
  });

  it('a crash at any write or delete of a save leaves the previous checkpoint (or the new one) whole; the next save sweeps', async () => {
    // A save makes: write the bytes, write the pointer, delete the old bytes.
    for (let crashAt = 0; crashAt < 3; crashAt++) {
      const data = new Map<string, unknown>();
      await saveCheckpoint(buffer(10), meta(10), memoryKV(data));
      const dying = memoryKV(data, crashAt);
      await saveCheckpoint(buffer(20), meta(20), dying).catch(() => {});
      // After the "reload": the pointer and the bytes it names agree, old or new.
      const kv = memoryKV(data);
      const m = await loadMeta(kv);
      const step = stepOf(await loadCheckpoint(kv));
      expect(step).toBe(m?.step);
      expect(step).toBe(crashAt < 2 ? 10 : 20); // before the pointer switched: the old one
      // The next save works and leaves exactly one checkpoint.
      await saveCheckpoint(buffer(30), meta(30), kv);
      expect(stepOf(await loadCheckpoint(kv))).toBe(30);
      expect([...data.keys()].length).toBe(2);
    }
  });

  it('a save whose write fails (a full disk) throws, and the previous checkpoint stays saved', async () => {
    const data = new Map<string, unknown>();
    await saveCheckpoint(buffer(10), meta(10), memoryKV(data));
    const full: KV = { ...memoryKV(data), set: async () => Promise.reject(new DOMException('quota exceeded', 'QuotaExceededError')) };
    await expect(saveCheckpoint(buffer(20), meta(20), full)).rejects.toThrow('quota exceeded');
    const kv = memoryKV(data);
    expect((await loadMeta(kv))?.step).toBe(10);
    expect(stepOf(await loadCheckpoint(kv))).toBe(10);
  });

  it('loads a checkpoint saved before atomic saves, and the first new save replaces it', async () => {
    const data = new Map<string, unknown>([['checkpoint:last', buffer(7)], ['checkpoint:last:meta', meta(7)], ['corpus:last', { name: 'mine.txt', text: 'abc' }]]);
    const kv = memoryKV(data);
    expect(await loadMeta(kv)).toEqual(meta(7));
    expect(stepOf(await loadCheckpoint(kv))).toBe(7);
    await saveCheckpoint(buffer(8), meta(8), kv);
    expect(stepOf(await loadCheckpoint(kv))).toBe(8);
    expect(data.has('checkpoint:last')).toBe(false);
    expect(data.has('corpus:last')).toBe(true); // the corpus is not a checkpoint
  });

  it('overlapping saves run one after the other: the last one is saved and nothing is left behind', async () => {
    const kv = memoryKV();
    await Promise.all([saveCheckpoint(buffer(1), meta(1), kv), saveCheckpoint(buffer(2), meta(2), kv), saveCheckpoint(buffer(3), meta(3), kv)]);
    expect(stepOf(await loadCheckpoint(kv))).toBe(3);
    expect((await loadMeta(kv))?.step).toBe(3);
    expect(kv.data.size).toBe(2);
  });
});

describe('autosave by time', () => {
  it('is due every AUTOSAVE_MS (at most half a minute) after the last save of any kind, and less often when saves are slow', () => {
    expect(AUTOSAVE_MS).toBeGreaterThan(0);
    expect(AUTOSAVE_MS).toBeLessThanOrEqual(30_000);
    let t = 1_000;
    const clock = new AutosaveClock(() => t);
    expect(clock.due()).toBe(false);
    t += AUTOSAVE_MS - 1;
    expect(clock.due()).toBe(false);
    t += 1;
    expect(clock.due()).toBe(true);
    // A save (this one, or an evaluation's, a pause's) starts the interval again.
    const ended = clock.started();
    expect(clock.due()).toBe(false);
    t += 50;
    ended();
    t += AUTOSAVE_MS - 50;
    expect(clock.due()).toBe(true);
    // A run started (or resumed) now: its first save is one interval away.
    clock.restart();
    expect(clock.due()).toBe(false);
    // A save that took 10 s: saving may take at most a fifth of the time, so the next is 50 s after it.
    const slow = clock.started();
    t += 10_000;
    slow();
    expect(clock.interval).toBe(50_000);
    t += 39_999;
    expect(clock.due()).toBe(false);
    t += 1;
    expect(clock.due()).toBe(true);
  });
});
