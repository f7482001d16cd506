/** The sync runner's one-page read-ahead: the next page is asked for while the current one is stored. */
import { describe, expect, it } from 'vitest';
import { readAhead } from '../../../src/connectors/sdk/sync.ts';

describe('readAhead', () => {
  it('asks for page n+1 before the caller is done with page n, and never more than one ahead', async () => {
    const log: string[] = [];
    async function* pages() {
      for (let page = 1; page <= 3; page++) {
        log.push(`fetch ${page}`);
        await Promise.resolve();
        yield page;
      }
      log.push('end');
    }
    for await (const page of readAhead(pages())) {
      await new Promise((resolve) => setImmediate(resolve));
      log.push(`stored ${page}`);
    }
    expect(log).toEqual(['fetch 1', 'fetch 2', 'stored 1', 'fetch 3', 'stored 2', 'end', 'stored 3']);
  });

  it('closes the source when the caller stops early, and a failing read-ahead does not go unhandled', async () => {
    let closed = false;
    async function* pages() {
      try {
        yield await Promise.resolve(1);
        throw new Error('page 2 failed');
      } finally {
        closed = true;
      }
    }
    const seen: number[] = [];
    for await (const page of readAhead(pages())) {
      seen.push(page);
      break;
    }
    expect(seen).toEqual([1]);
    expect(closed).toBe(true);
    await expect(async () => {
      for await (const _ of readAhead(pages())) void _;
    }).rejects.toThrow('page 2 failed');
  });
});
