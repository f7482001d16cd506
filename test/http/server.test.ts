import { request } from 'node:http';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.ts';
import { startHttpServer } from '../../src/http/server.ts';
import { createMetrics } from '../../src/metrics.ts';
import { captureLogs } from '../support/logs.ts';

describe('HTTP server', () => {
  it('on close, refuses new connections but finishes the in-flight request', async () => {
    let release: () => void = () => {};
    let arrived: () => void = () => {};
    const arrivedPromise = new Promise<void>((resolve) => (arrived = resolve));
    const app = new Hono();
    app.get('/slow', async (c) => {
      arrived();
      await new Promise<void>((resolve) => (release = resolve));
      return c.json({ finished: true });
    });
    const server = await startHttpServer(app, { host: '127.0.0.1', port: 0 });

    const inFlight = fetch(`${server.url}/slow`);
    await arrivedPromise;
    let closed = false;
    const closing = server.close(5000).then(() => (closed = true));

    await expect(fetch(`${server.url}/slow`)).rejects.toThrow();
    expect(closed).toBe(false);

    release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    // The keep-alive client is told not to reuse the connection, so the close need not wait for it.
    expect(res.headers.get('connection')).toBe('close');
    expect(await res.json()).toEqual({ finished: true });
    await closing;
    expect(closed).toBe(true);
  });

  it('answers 413 to a chunked body as soon as it passes the limit, without reading the rest', async () => {
    const logs = captureLogs();
    const app = createApp({ logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), readiness: [], bodyLimitBytes: 2048 });
    app.post('/upload', async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
    const server = await startHttpServer(app, { host: '127.0.0.1', port: 0 });
    const { port } = server;
    try {
      const result = await new Promise<{ status: number; body: string; chunksSent: number }>((resolve, reject) => {
        let chunksSent = 0;
        let done = false;
        const req = request({ host: '127.0.0.1', port, path: '/upload', method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => {
            done = true;
            resolve({ status: res.statusCode ?? 0, body, chunksSent });
          });
        });
        req.on('error', (error) => (done ? undefined : reject(error)));
        // Keep sending 1 KiB chunks until the server answers (a 100 MiB cap keeps a broken server from hanging us).
        const pump = () => {
          if (done || chunksSent >= 100 * 1024) return;
          chunksSent++;
          if (req.write(Buffer.alloc(1024, 97))) setImmediate(pump);
          else req.once('drain', pump);
        };
        pump();
      });
      expect(result.status).toBe(413);
      expect(JSON.parse(result.body)).toEqual({ error: { code: 'payload_too_large', message: 'request body is larger than 2048 bytes' } });
      // Refused within a few chunks of the 2 KiB limit (socket buffers let some more through before the answer).
      expect(result.chunksSent).toBeLessThan(64);
    } finally {
      await server.close(1000);
    }
  });
});
