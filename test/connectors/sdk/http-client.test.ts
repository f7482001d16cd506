/**
 * The connectors' HTTP client against a scripted HTTP server on 127.0.0.1: which answers are retried and how
 * long it waits, what is deferred to the queue instead of slept, the 401 refresh, headers sent, metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AuthProvider, backoff, createHttpClient, toldWaitMs } from '../../../src/connectors/sdk/http-client.ts';
import { runWithContext } from '../../../src/logger.ts';
import { createMetrics } from '../../../src/metrics.ts';

type Script = (req: IncomingMessage, res: ServerResponse, call: number) => void;

let server: Server;
let baseUrl: string;
let script: Script = (_req, res) => res.end('{}');
let seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      script(req, res, seen.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
afterEach(() => {
  seen = [];
});

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

function client(overrides: Partial<Parameters<typeof createHttpClient>[0]> = {}) {
  const metrics = createMetrics({ defaultMetrics: false });
  const http = createHttpClient({ connector: 'fake', baseUrl, metrics, backoffBaseMs: 5, maxInlineWaitMs: 2000, random: () => 0.5, ...overrides });
  return { http, metrics };
}

describe('connector HTTP client', () => {
  it('sends the auth header, a continued traceparent and the correlation id, and parses JSON', async () => {
    script = (_req, res) => json(res, 200, { result: [1, 2] });
    const auth: AuthProvider = { authorization: () => Promise.resolve('Bearer t0ken'), refresh: () => Promise.resolve() };
    const { http } = client({ auth });
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const result = await runWithContext({ correlationId: 'corr-123', traceparent }, () => http.send<{ result: number[] }>({ method: 'GET', path: '/api/now/table/incident', query: { sysparm_limit: 2, skipped: undefined } }));
    expect(result).toMatchObject({ ok: true, value: { status: 200, body: { result: [1, 2] }, attempts: 1 } });
    const request = seen[0]!;
    expect(request.url).toBe('/api/now/table/incident?sysparm_limit=2');
    expect(request.headers.authorization).toBe('Bearer t0ken');
    expect(request.headers['x-correlation-id']).toBe('corr-123');
    expect(request.headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(request.headers.traceparent).not.toBe(traceparent);
    await http.close();
  });

  it('retries 502, 503 and 504 at most twice inside a call, then defers the rest to the queue', async () => {
    script = (_req, res, call) => json(res, [502, 503, 504][call - 1] ?? 200, { call });
    const waits: number[] = [];
    const { http, metrics } = client({ sleep: (ms) => Promise.resolve(waits.push(ms)), random: () => 0.999 });
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: false, failure: { kind: 'deferred', code: 'upstream_unavailable', status: 504, attempts: 3 } });
    expect(seen).toHaveLength(3);
    expect(waits).toEqual([4, 9]); // full jitter under 5 ms, then under 10 ms
    const text = await metrics.registry.metrics();
    expect(text).toContain('upstream_requests_total{connector="fake",status="502"} 1');
    expect(text).toContain('upstream_requests_total{connector="fake",status="504"} 1');

    seen = [];
    script = (_req, res, call) => json(res, call === 1 ? 503 : 200, { call });
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: true, value: { status: 200, attempts: 2 } });
    await http.close();
  });

  it('does not resend a POST after a gateway error (it may have been applied), but does after a 503', async () => {
    const { http } = client({ sleep: () => Promise.resolve() });
    script = (_req, res) => json(res, 504, {});
    expect(await http.send({ method: 'POST', path: '/x', json: {} })).toMatchObject({ ok: false, failure: { kind: 'http', code: 'upstream_error', status: 504, attempts: 1 } });
    expect(seen).toHaveLength(1);
    seen = [];
    script = (_req, res, call) => json(res, call === 1 ? 503 : 201, {});
    expect(await http.send({ method: 'POST', path: '/x', json: {} })).toMatchObject({ ok: true, value: { status: 201, attempts: 2 } });
    await http.close();
  });

  it('does not retry other errors: a 500, a 400, a 404 come back as values at once', async () => {
    const { http } = client();
    for (const [status, code] of [
      [500, 'upstream_error'],
      [400, 'rejected'],
      [404, 'not_found'],
      [403, 'forbidden'],
    ] as const) {
      seen = [];
      script = (_req, res) => json(res, status, { error: { message: 'No Record found' } });
      expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: false, failure: { kind: 'http', code, status, body: { error: { message: 'No Record found' } }, attempts: 1 } });
      expect(seen).toHaveLength(1);
    }
    await http.close();
  });

  it('honours a short Retry-After inside the call and defers a long one without sleeping (no hot loop)', async () => {
    const now = 1_800_000_000_000;
    script = (_req, res, call) => (call === 1 ? json(res, 429, { error: { message: 'Rate limit exceeded' } }, { 'retry-after': '1' }) : json(res, 200, {}));
    const waits: number[] = [];
    const { http, metrics } = client({ now: () => now, sleep: (ms) => Promise.resolve(waits.push(ms)) });
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: true, value: { attempts: 2 } });
    expect(waits).toEqual([1000]); // what it was told, not its own backoff
    expect(await metrics.registry.metrics()).toContain('rate_limited_total{connector="fake"} 1');

    seen = [];
    script = (_req, res) => json(res, 429, {}, { 'retry-after': '120' });
    expect(await http.send({ method: 'GET', path: '/x' })).toEqual({ ok: false, failure: { kind: 'deferred', code: 'rate_limited', status: 429, retryAt: new Date(now + 120_000), attempts: 1 } });
    expect(seen).toHaveLength(1);
    expect(waits).toEqual([1000]);

    seen = [];
    script = (_req, res) => json(res, 429, {}, { 'x-ratelimit-reset': String(now / 1000 + 600) });
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: false, failure: { kind: 'deferred', retryAt: new Date(now + 600_000), attempts: 1 } });
    await http.close();
  });

  it('refreshes the token once after a 401 and tries once more', async () => {
    let token = 'old';
    let refreshes = 0;
    const auth: AuthProvider = {
      authorization: () => Promise.resolve(`Bearer ${token}`),
      refresh: () => {
        refreshes++;
        token = 'new';
        return Promise.resolve();
      },
    };
    script = (req, res) => (req.headers.authorization === 'Bearer new' ? json(res, 200, { ok: 1 }) : json(res, 401, { error: { message: 'User Not Authenticated' } }));
    const { http } = client({ auth });
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: true, value: { attempts: 2 } });
    expect(refreshes).toBe(1);

    // A second 401 after the refresh is an answer, not a loop.
    seen = [];
    script = (_req, res) => json(res, 401, {});
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: false, failure: { kind: 'http', code: 'unauthorized', status: 401, attempts: 2 } });
    expect(refreshes).toBe(2);
    expect(seen).toHaveLength(2);
    await http.close();
  });

  it('retries a broken connection for idempotent requests only', async () => {
    script = (req, res, call) => (call === 1 ? req.socket.destroy() : json(res, 200, {}));
    const { http, metrics } = client();
    expect(await http.send({ method: 'GET', path: '/x' })).toMatchObject({ ok: true, value: { attempts: 2 } });
    expect(await metrics.registry.metrics()).toContain('upstream_requests_total{connector="fake",status="network_error"} 1');

    seen = [];
    script = (req) => req.socket.destroy();
    expect(await http.send({ method: 'POST', path: '/x', json: { a: 1 } })).toEqual({ ok: false, failure: { kind: 'network', code: 'network_error', attempts: 1 } });
    expect(seen).toHaveLength(1);
    await http.close();
  });

  it('times out a slow answer', async () => {
    script = (_req, res) => setTimeout(() => json(res, 200, {}), 500);
    const { http } = client({ timeoutMs: 100, maxRetries: 0 });
    expect(await http.send({ method: 'GET', path: '/x' })).toEqual({ ok: false, failure: { kind: 'network', code: 'timeout', attempts: 1 } });
    await http.close();
  });

  it('sends forms and JSON bodies, reads bytes, and refuses an answer over the size limit', async () => {
    script = (req, res) => (req.url === '/big' ? json(res, 200, { pad: 'x'.repeat(5000) }) : res.end(Buffer.from([0, 1, 2])));
    const { http } = client({ maxResponseBytes: 1000 });
    await http.send({ method: 'POST', path: '/form', form: { grant_type: 'client_credentials', client_id: 'id' }, anonymous: true });
    expect(seen[0]).toMatchObject({ body: 'grant_type=client_credentials&client_id=id', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    await http.send({ method: 'PATCH', path: '/json', json: { work_notes: 'hi' } });
    expect(seen[1]).toMatchObject({ body: '{"work_notes":"hi"}', headers: { 'content-type': 'application/json' } });
    const bytes = await http.send<Buffer>({ method: 'GET', path: '/file', binary: true });
    expect(bytes.ok && [...bytes.value.body]).toEqual([0, 1, 2]);
    expect(await http.send({ method: 'GET', path: '/big' })).toMatchObject({ ok: false, failure: { kind: 'http', code: 'response_too_large', status: 200 } });
    await http.close();
  });

  it('never sends the credentials to another origin (a Link header pointing elsewhere is a bug)', async () => {
    const { http } = client();
    await expect(http.send({ method: 'GET', path: 'http://127.0.0.2:1/steal' })).rejects.toThrow(/another origin/);
    expect(seen).toHaveLength(0);
    await http.close();
  });
});

describe('wait rules', () => {
  it('full jitter stays within [0, base × 2^(n-1)]', () => {
    expect(backoff(1, 100, () => 0.999)).toBe(99);
    expect(backoff(3, 100, () => 0.999)).toBe(399);
    expect(backoff(3, 100, () => 0)).toBe(0);
  });

  it('reads Retry-After as seconds or an HTTP date, and X-RateLimit-Reset for a 429 only', () => {
    const now = Date.parse('2026-11-22T10:00:00Z');
    expect(toldWaitMs({ 'retry-after': '7' }, 503, now)).toBe(7000);
    expect(toldWaitMs({ 'retry-after': 'Sun, 22 Nov 2026 10:00:30 GMT' }, 429, now)).toBe(30_000);
    expect(toldWaitMs({ 'x-ratelimit-reset': String(now / 1000 + 90) }, 429, now)).toBe(90_000);
    expect(toldWaitMs({ 'x-ratelimit-reset': String(now / 1000 + 90) }, 503, now)).toBeUndefined();
    expect(toldWaitMs({ 'retry-after': 'soon' }, 503, now)).toBeUndefined();
    // Jira writes the reset as ISO 8601, with or without seconds (rate-limiting docs).
    expect(toldWaitMs({ 'x-ratelimit-reset': '2026-11-22T10:02Z' }, 429, now)).toBe(120_000);
    expect(toldWaitMs({ 'x-ratelimit-reset': '2026-11-22T10:00:45Z' }, 429, now)).toBe(45_000);
    expect(toldWaitMs({ 'x-ratelimit-reset': 'tomorrow' }, 429, now)).toBeUndefined();
  });
});
