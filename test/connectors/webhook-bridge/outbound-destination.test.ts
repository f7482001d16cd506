/**
 * The pure parts of outbound webhooks: the address classifier and allow-list, the destination check with an
 * injected resolver, the connect-time lookup, the configuration variable, endpoint and event-type validation,
 * and the retry delays. Nothing here opens a connection.
 */
import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { MAX_ATTEMPTS, retryDelayMs, webhookBody, webhookMessageId } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { type Resolver, DestinationRefusedError, checkDestination, classifyAddress, destinationPolicy, forbiddenRange, guardedLookup, resolveWithin } from '../../../src/connectors/webhook-bridge/outbound/destination.ts';
import { patternsFor, validateEndpoint, validateEventTypes } from '../../../src/connectors/webhook-bridge/outbound/subscriptions.ts';

const resolving =
  (table: Record<string, string[]>): Resolver =>
  (hostname) => {
    const addresses = table[hostname];
    if (!addresses) return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
    return Promise.resolve(addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
  };

describe('classifyAddress and the allow-list', () => {
  it.each([
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.1.1', 'private'],
    ['127.0.0.1', 'loopback'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['192.0.2.10', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fd00::1', 'uniqueLocal'],
    ['fe80::1', 'linkLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['64:ff9b::a00:1', 'rfc6052'],
    ['2002:a00:1::1', '6to4'],
    ['8.8.8.8', 'unicast'],
    ['2606:4700:4700::1111', 'unicast'],
    ['not-an-ip', 'invalid'],
  ])('%s is %s', (address, range) => {
    expect(classifyAddress(address)).toBe(range);
  });

  it('stops waiting for a name that does not resolve in time: ETIMEOUT, unresolvable (tried again later)', async () => {
    const hanging = resolveWithin(() => new Promise(() => undefined), 50);
    await expect(hanging('slow.example')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(await checkDestination(new URL('https://slow.example/hook'), destinationPolicy([], hanging))).toMatchObject({ ok: false, refusal: { code: 'destination_unresolvable', message: 'slow.example did not resolve (ETIMEOUT)' } });
  });

  it('refuses everything but public unicast, unless an allowed network holds the address', () => {
    const none = destinationPolicy([]);
    for (const address of ['10.0.0.1', '169.254.169.254', '::1', 'fd00::1', '127.0.0.1', '::ffff:127.0.0.1']) expect(forbiddenRange(address, none), address).toBeDefined();
    expect(forbiddenRange('8.8.8.8', none)).toBeUndefined();
    // IPv4-compatible IPv6 (::127.0.0.1, ::169.254.169.254): ipaddr.js says "unicast"; only 2000::/3 is public.
    for (const address of ['::7f00:1', '::a9fe:a9fe']) expect(forbiddenRange(address, none), address).toBe('reserved');
    expect(forbiddenRange('::127.0.0.1', none)).toBeDefined();
    expect(forbiddenRange('2606:4700:4700::1111', none)).toBeUndefined();

    const some = destinationPolicy(['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8']);
    expect(forbiddenRange('127.0.0.1', some)).toBeUndefined();
    expect(forbiddenRange('::ffff:127.0.0.1', some)).toBeUndefined();
    expect(forbiddenRange('10.200.3.4', some)).toBeUndefined();
    expect(forbiddenRange('fd12::5', some)).toBeUndefined();
    expect(forbiddenRange('127.0.0.2', some)).toBe('loopback');
    expect(forbiddenRange('::1', some)).toBe('loopback');
    expect(forbiddenRange('169.254.169.254', some)).toBe('linkLocal');
  });
});

describe('checkDestination', () => {
  const policy = destinationPolicy([], resolving({ 'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'], 'mixed.example.com': ['93.184.215.14', '10.0.0.7'], 'empty.example.com': [] }));

  it('accepts a name whose every address is public', async () => {
    expect(await checkDestination(new URL('https://hooks.example.com/x'), policy)).toEqual({ ok: true, value: { addresses: ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'] } });
  });

  it('refuses IP literals (IPv4 and bracketed IPv6) without resolving them', async () => {
    expect(await checkDestination(new URL('http://169.254.169.254/latest/meta-data'), policy)).toMatchObject({ ok: false, refusal: { code: 'destination_refused', message: expect.stringMatching(/^169\.254\.169\.254 is not a public address \(linkLocal\)/) } });
    expect(await checkDestination(new URL('http://[::1]:8080/'), policy)).toMatchObject({ ok: false, refusal: { code: 'destination_refused', message: expect.stringMatching(/^::1 is not a public address \(loopback\)/) } });
    expect(await checkDestination(new URL('http://[fd00::1]/'), policy)).toMatchObject({ ok: false, refusal: { code: 'destination_refused' } });
    expect(await checkDestination(new URL('http://10.0.0.1/'), policy)).toMatchObject({ ok: false, refusal: { code: 'destination_refused' } });
  });

  it('refuses a name when any one of its addresses is forbidden', async () => {
    expect(await checkDestination(new URL('https://mixed.example.com/'), policy)).toEqual({
      ok: false,
      refusal: { code: 'destination_refused', message: 'mixed.example.com resolves to 10.0.0.7, which is not a public address (private); webhooks are not sent there unless OUTBOUND_WEBHOOK_ALLOWED_NETWORKS allows it' },
    });
  });

  it('tells a name that does not resolve (may pass later) from a refused one', async () => {
    expect(await checkDestination(new URL('https://nowhere.example.com/'), policy)).toEqual({ ok: false, refusal: { code: 'destination_unresolvable', message: 'nowhere.example.com did not resolve (ENOTFOUND)' } });
    expect(await checkDestination(new URL('https://empty.example.com/'), policy)).toMatchObject({ ok: false, refusal: { code: 'destination_unresolvable' } });
  });
});

describe('guardedLookup (what the connection resolves through)', () => {
  const lookupWith = (table: Record<string, string[]>, allowed: string[] = []) => guardedLookup(destinationPolicy(allowed, resolving(table)));
  const call = (lookup: ReturnType<typeof guardedLookup>, hostname: string, options: { all?: boolean; family?: number }) =>
    new Promise<{ error: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family: number | undefined }>((resolve) => lookup(hostname, options, (error, address, family) => resolve({ error, address, family })));

  it('answers in both shapes Node asks for, filtered by family', async () => {
    const lookup = lookupWith({ 'hooks.example.com': ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'] });
    expect(await call(lookup, 'hooks.example.com', { all: true })).toEqual({
      error: null,
      address: [
        { address: '93.184.215.14', family: 4 },
        { address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c', family: 6 },
      ],
      family: undefined,
    });
    expect(await call(lookup, 'hooks.example.com', { family: 6 })).toEqual({ error: null, address: '2606:2800:21f:cb07:6820:80da:af6b:8b2c', family: 6 });
  });

  it('fails the connection with DestinationRefusedError when the name now points inside', async () => {
    const { error } = await call(lookupWith({ 'rebind.example.com': ['127.0.0.1'] }), 'rebind.example.com', { all: true });
    expect(error).toBeInstanceOf(DestinationRefusedError);
    expect(error).toMatchObject({ code: 'destination_refused', message: expect.stringContaining('rebind.example.com resolves to 127.0.0.1') });
    expect((await call(lookupWith({ 'rebind.example.com': ['127.0.0.1'] }, ['127.0.0.0/8']), 'rebind.example.com', {})).error).toBeNull();
  });

  it('passes resolver errors on', async () => {
    expect((await call(lookupWith({}), 'nowhere.example.com', { all: true })).error).toMatchObject({ code: 'ENOTFOUND' });
  });
});

describe('OUTBOUND_WEBHOOK_ALLOWED_NETWORKS', () => {
  it('parses IPs and CIDRs into normalized CIDRs; empty is none', () => {
    const parsed = loadConfig({ OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1, 10.0.0.0/8,fd00::/8 , ::1' });
    expect(parsed.ok && parsed.config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS).toEqual(['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8', '::1/128']);
    const empty = loadConfig({ OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: '' });
    expect(empty.ok && empty.config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS).toBeUndefined();
  });

  it.each(['localhost', '127.1', '10.0.0.0/33', '::1/129', '10.0.0.0/8/1', '0x7f.0.0.1'])('refuses %j, naming the variable', (value) => {
    const result = loadConfig({ OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: value });
    expect(result.ok ? [] : result.problems).toEqual([expect.stringMatching(/^OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: must be comma-separated IP addresses or CIDR ranges/)]);
  });
});

describe('subscription input', () => {
  it('accepts http(s) endpoints and refuses other schemes and credentials', () => {
    expect(validateEndpoint(' https://hooks.example.com/projectx?team=a ')).toMatchObject({ ok: true, value: { href: 'https://hooks.example.com/projectx?team=a' } });
    expect(validateEndpoint('ftp://hooks.example.com/')).toMatchObject({ ok: false, refusal: { code: 'invalid_url', message: 'the URL must use https or http (got ftp)' } });
    expect(validateEndpoint('https://user:pw@hooks.example.com/')).toMatchObject({ ok: false, refusal: { code: 'invalid_url', message: expect.stringContaining('must not carry credentials') } });
    expect(validateEndpoint('hooks.example.com/x')).toMatchObject({ ok: false, refusal: { code: 'invalid_url' } });
    expect(validateEndpoint(`https://hooks.example.com/${'a'.repeat(2100)}`)).toMatchObject({ ok: false, refusal: { code: 'invalid_url' } });
  });

  it('accepts exact event types, prefixes of known ones and *', () => {
    expect(validateEventTypes(['task.created', 'incident.*', '*', 'task.created'])).toEqual({ ok: true, value: ['task.created', 'incident.*', '*'] });
    for (const bad of ['task.nope', 'tsk.*', 'task', 'task*', '.*', '*.created']) {
      expect(validateEventTypes([bad]), bad).toMatchObject({ ok: false, refusal: { code: 'unknown_event_type' } });
    }
    expect(validateEventTypes([' '])).toMatchObject({ ok: false, refusal: { code: 'missing_event_types' } });
  });

  it('matches an event type by name, by each dotted prefix, and by *', () => {
    expect(patternsFor('task.created')).toEqual(['task.created', 'task.*', '*']);
    expect(patternsFor('a.b.c')).toEqual(['a.b.c', 'a.*', 'a.b.*', '*']);
  });
});

describe('the wire format and the schedule', () => {
  it('builds the spec envelope with the event as data, and a dot-free message id', () => {
    const event = { id: '0b8c3f5e-7f1a-4b59-9a36-0c4a1d2e3f40', type: 'task.created' as const, occurredAt: '2026-11-22T09:00:00.000Z', subject: { kind: 'task' as const, id: 't1', label: 'T-1' }, summary: 'T-1 created', priority: 2 };
    expect(webhookBody(event)).toBe(
      '{"type":"task.created","timestamp":"2026-11-22T09:00:00.000Z","data":{"id":"0b8c3f5e-7f1a-4b59-9a36-0c4a1d2e3f40","type":"task.created","occurredAt":"2026-11-22T09:00:00.000Z","subject":{"kind":"task","id":"t1","label":"T-1"},"summary":"T-1 created","priority":2}}',
    );
    expect(webhookMessageId(event.id)).toBe('msg_0b8c3f5e7f1a4b599a360c4a1d2e3f40');
  });

  it('waits 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h before attempts 2-10, jittered by at most 10 %', () => {
    const hours = 3600_000;
    const base = [5000, 300_000, 1_800_000, 2 * hours, 5 * hours, 10 * hours, 14 * hours, 20 * hours, 24 * hours];
    expect(MAX_ATTEMPTS).toBe(10);
    expect(base.map((_, index) => retryDelayMs(index + 2, () => 0.5))).toEqual(base);
    expect(base.map((_, index) => retryDelayMs(index + 2, () => 0))).toEqual(base.map((ms) => Math.round(ms * 0.9)));
    expect(base.map((_, index) => retryDelayMs(index + 2, () => 1))).toEqual(base.map((ms) => Math.round(ms * 1.1)));
    expect(retryDelayMs(1)).toBeUndefined();
    expect(retryDelayMs(11)).toBeUndefined();
  });
});
