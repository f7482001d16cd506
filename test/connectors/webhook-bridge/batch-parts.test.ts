import { describe, expect, it } from 'vitest';
import { partsByBodySize } from '../../../src/connectors/webhook-bridge/inbound.ts';

const row = (name: string, bytes: number) => ({ name, body: new Uint8Array(bytes) });
const names = (parts: { name: string }[][]) => parts.map((part) => part.map((one) => one.name));

describe('a batch of deliveries split by body size (bodies travel as hex text in one statement parameter)', () => {
  it('keeps a batch whole while its bodies fit, in order', () => {
    expect(names(partsByBodySize([row('a', 10), row('b', 20), row('c', 30)], 60))).toEqual([['a', 'b', 'c']]);
  });

  it('starts a new part where the next body would pass the limit, and gives an oversized body a part of its own', () => {
    expect(names(partsByBodySize([row('a', 40), row('b', 30), row('c', 100), row('d', 5), row('e', 55)], 60))).toEqual([['a'], ['b'], ['c'], ['d', 'e']]);
  });

  it('has no parts for no rows', () => {
    expect(partsByBodySize([], 60)).toEqual([]);
  });
});
