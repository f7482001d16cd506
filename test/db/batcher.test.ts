import { describe, expect, it } from 'vitest';
import { Batcher, BatcherFull } from '../../src/db/batcher.ts';

describe('Batcher (group commit)', () => {
  it('writes a lone item at once, and items arriving during a write together in the next batch', async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batcher = new Batcher<number, number>(async (items) => {
      batches.push([...items]);
      if (batches.length === 1) await gate;
      return items.map((item) => item * 10);
    });
    const first = batcher.add(1);
    const rest = [batcher.add(2), batcher.add(3), batcher.add(4)];
    release();
    expect(await first).toBe(10);
    expect(await Promise.all(rest)).toEqual([20, 30, 40]);
    expect(batches).toEqual([[1], [2, 3, 4]]);
  });

  it('fails every item of a failed batch, and keeps serving later ones', async () => {
    let fail = true;
    const batcher = new Batcher<string, string>((items) => (fail ? Promise.reject(new Error('db down')) : Promise.resolve(items.map((item) => item.toUpperCase()))));
    await expect(batcher.add('a')).rejects.toThrow('db down');
    fail = false;
    expect(await batcher.add('b')).toBe('B');
    await batcher.flush();
  });

  it('writes a failed batch again item by item, so only the item that fails alone is rejected', async () => {
    const batches: string[][] = [];
    const told: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    // Like PostgreSQL refusing a NUL byte: the statement that holds the bad item fails as a whole.
    const batcher = new Batcher<string, string>(
      async (items) => {
        batches.push([...items]);
        if (batches.length === 1) await gate;
        if (items.some((item) => item.includes('\u0000'))) throw new Error('invalid byte sequence for encoding "UTF8": 0x00');
        return items.map((item) => item.toUpperCase());
      },
      { onBatchFailure: (_error, items) => told.push(items) },
    );
    const first = batcher.add('first');
    const burst = ['a', 'b\u0000', 'c'].map((item) => batcher.add(item).then((value) => ({ value }), (error: unknown) => ({ error: (error as Error).message })));
    release();
    expect(await first).toBe('FIRST');
    expect(await Promise.all(burst)).toEqual([{ value: 'A' }, { error: 'invalid byte sequence for encoding "UTF8": 0x00' }, { value: 'C' }]);
    expect(batches).toEqual([['first'], ['a', 'b\u0000', 'c'], ['a'], ['b\u0000'], ['c']]);
    expect(told).toEqual([3]);
  });

  it('splits a long queue into batches of at most maxBatch', async () => {
    const sizes: number[] = [];
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batcher = new Batcher<number, number>(async (items) => {
      sizes.push(items.length);
      if (sizes.length === 1) await gate;
      return [...items];
    }, { maxBatch: 3 });
    const all = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => batcher.add(n));
    release();
    expect(await Promise.all(all)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(sizes).toEqual([1, 3, 3, 1]);
  });

  it('runs up to `concurrency` writes at once, each taking what has queued up', async () => {
    const batches: number[][] = [];
    const gates: (() => void)[] = [];
    let running = 0;
    let most = 0;
    const batcher = new Batcher<number, number>(
      async (items) => {
        batches.push([...items]);
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => gates.push(resolve));
        running--;
        return [...items];
      },
      { concurrency: 2 },
    );
    const first = [batcher.add(1), batcher.add(2)]; // two writers start, one item each
    const rest = [batcher.add(3), batcher.add(4), batcher.add(5)]; // wait for a free writer, then go together
    expect(batches).toEqual([[1], [2]]);
    gates.shift()!();
    await first[0];
    expect(batches).toEqual([[1], [2], [3, 4, 5]]);
    while (gates.length > 0) gates.shift()!();
    expect(await Promise.all([...first, ...rest])).toEqual([1, 2, 3, 4, 5]);
    expect(most).toBe(2);
    await batcher.flush();
  });

  it('starts a writer for an item added right after the previous one was answered (no lost wake-up)', async () => {
    const batcher = new Batcher<number, number>((items) => Promise.resolve(items.map((item) => item + 1)));
    expect(await batcher.add(1)).toBe(2);
    expect(await batcher.add(2)).toBe(3);
    const concurrent = new Batcher<number, number>((items) => Promise.resolve([...items]), { concurrency: 3 });
    for (let i = 0; i < 5; i++) expect(await concurrent.add(i)).toBe(i);
    await batcher.flush();
    await concurrent.flush();
  });

  it('refuses items beyond maxQueued instead of holding them in memory', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batcher = new Batcher<number, number>(async (items) => {
      await gate;
      return [...items];
    }, { maxQueued: 2 });
    const first = batcher.add(1); // being written
    const queued = [batcher.add(2), batcher.add(3)];
    await expect(batcher.add(4)).rejects.toThrow(BatcherFull);
    release();
    expect(await Promise.all([first, ...queued])).toEqual([1, 2, 3]);
  });
});

