import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.ts';
import { HttpError } from '../../src/http/errors.ts';
import { createMetrics } from '../../src/metrics.ts';
import { captureLogs } from '../support/logs.ts';

function buildApp(options: { bodyLimitBytes?: number; failing?: boolean } = {}) {
  const logs = captureLogs({ secrets: ['hunter2-query-secret'] });
  const metrics = createMetrics({ defaultMetrics: false });
  const app = createApp({
    logger: logs.logger,
    metrics,
    bodyLimitBytes: options.bodyLimitBytes ?? 1024,
    readiness: [{ name: 'database', check: () => (options.failing ? Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')) : Promise.resolve()) }],
  });
  // Routes a surface would add, to exercise the shared error handling and body limit.
  app.post('/echo', async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
  app.get('/coded', () => {
    throw new HttpError(409, 'already_decided', 'task T-1 was already approved');
  });
  app.get('/boom', () => {
    throw new Error('database password is hunter2-query-secret');
  });
  // A handler that logs what it should not: every header, and an error carrying a configured secret.
  app.get('/careless', (c) => {
    logs.logger.warn({ headers: c.req.header() }, 'inside the handler');
    logs.logger.error({ err: new Error('upstream said: bad token hunter2-query-secret') }, 'upstream failed');
    return c.json({ ok: true });
  });
  return { app, logs, metrics };
}

describe('HTTP app', () => {
  it('answers /healthz', async () => {
    const res = await buildApp().app.request('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('answers /readyz 503 naming the unreachable dependency', async () => {
    const res = await buildApp({ failing: true }).app.request('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      error: { code: 'not_ready', message: 'database unreachable: connect ECONNREFUSED 127.0.0.1:1' },
      checks: { database: 'connect ECONNREFUSED 127.0.0.1:1' },
    });
  });

  it('answers unknown routes 404 in the envelope', async () => {
    const res = await buildApp().app.request('/no/such/route', { method: 'DELETE' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'not_found', message: 'no route for DELETE /no/such/route' } });
  });

  it('answers 413 from the declared length, before reading the body', async () => {
    const { app } = buildApp({ bodyLimitBytes: 1024 });
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(512));
      },
    });
    const res = await app.request('/echo', { method: 'POST', body, headers: { 'content-length': '5000000' }, duplex: 'half' });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: 'payload_too_large', message: 'request body is larger than 1024 bytes' } });
    expect(pulled).toBeLessThanOrEqual(1);
  });

  it('accepts a body within the limit', async () => {
    const res = await buildApp({ bodyLimitBytes: 1024 }).app.request('/echo', { method: 'POST', body: 'x'.repeat(1000) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ bytes: 1000 });
  });

  it('keeps coded errors and hides unknown ones behind a 500 with the request id', async () => {
    const { app, logs } = buildApp();
    const coded = await app.request('/coded');
    expect(coded.status).toBe(409);
    expect(await coded.json()).toEqual({ error: { code: 'already_decided', message: 'task T-1 was already approved' } });

    const boom = await app.request('/boom', { headers: { 'x-request-id': 'req-boom-1' } });
    expect(boom.status).toBe(500);
    const body = (await boom.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('internal_error');
    expect(body.error.message).toContain('req-boom-1');
    expect(JSON.stringify(body)).not.toContain('hunter2');
    expect(logs.text()).toContain('unhandled error in request');
    expect(logs.text()).not.toContain('hunter2-query-secret');
  });

  it('echoes a well-formed X-Request-Id, replaces a bad one, and logs it on the request line', async () => {
    const { app, logs } = buildApp();
    const kept = await app.request('/echo', { method: 'POST', body: '{}', headers: { 'x-request-id': 'abc-123' } });
    expect(kept.headers.get('x-request-id')).toBe('abc-123');
    const replaced = await app.request('/echo', { method: 'POST', body: '{}', headers: { 'x-request-id': 'bad id with spaces\n' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const requestLines = logs.lines().filter((line) => line.msg === 'request');
    expect(requestLines[0]).toMatchObject({ requestId: 'abc-123', method: 'POST', path: '/echo', route: '/echo', status: 200 });
  });

  it('continues a W3C trace (same trace id, new span) and starts one when absent or invalid', async () => {
    const { app, logs } = buildApp();
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await app.request('/echo', { method: 'POST', body: '{}', headers: { traceparent: incoming } });
    await app.request('/echo', { method: 'POST', body: '{}', headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01' } });
    const [continued, fresh] = logs.lines().filter((line) => line.msg === 'request');
    expect(continued?.traceparent).toMatch(/^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/);
    expect(continued?.traceparent).not.toBe(incoming);
    expect(fresh?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(fresh?.traceparent).not.toContain('00000000000000000000000000000000');
  });

  it('puts the request id and trace on lines logged inside the handler, and redacts what the handler logs carelessly', async () => {
    const { app, logs } = buildApp();
    await app.request('/careless', {
      headers: { 'x-request-id': 'req-careless', authorization: 'Bearer sekret-bearer-value', cookie: 'sid=sekret-cookie', 'x-slack-signature': 'v0=sekret-signature' },
    });
    const inside = logs.lines().filter((line) => line.msg === 'inside the handler' || line.msg === 'upstream failed');
    expect(inside).toHaveLength(2);
    for (const line of inside) expect(line).toMatchObject({ requestId: 'req-careless', traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/) });
    const out = logs.text();
    expect(out).toContain('"authorization":"[redacted]"');
    for (const leaked of ['sekret-bearer-value', 'sekret-cookie', 'sekret-signature', 'hunter2-query-secret']) expect(out).not.toContain(leaked);
  });

  it('labels a 413 with the route it was meant for', async () => {
    const { app } = buildApp({ bodyLimitBytes: 1024 });
    await app.request('/echo', { method: 'POST', body: 'x'.repeat(5000) });
    const text = await (await app.request('/metrics')).text();
    expect(text).toContain('http_request_duration_seconds_count{method="POST",route="/echo",status="413"} 1');
  });

  it('never logs credentials sent in headers', async () => {
    const { app, logs } = buildApp();
    await app.request('/echo?token=hunter2-query-secret', {
      method: 'POST',
      body: '{}',
      headers: { authorization: 'Bearer sekret-bearer-value', cookie: 'sid=sekret-cookie' },
    });
    const out = logs.text();
    expect(out).toContain('"msg":"request"');
    expect(out).not.toContain('hunter2-query-secret');
    expect(out).not.toContain('sekret-bearer-value');
    expect(out).not.toContain('sekret-cookie');
  });

  it('exposes request durations by route pattern and status in /metrics', async () => {
    const { app } = buildApp();
    await app.request('/healthz');
    await app.request('/nowhere/1');
    await app.request('/nowhere/2');
    const res = await app.request('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1');
    expect(text).toContain('http_request_duration_seconds_count{method="GET",route="unmatched",status="404"} 2');
  });
});
