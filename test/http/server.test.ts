import { request } from 'node:http';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../src/http/app.ts';
import { HttpServerError, describeListen, startHttpServer } from '../../src/http/server.ts';
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

  it('reports the address it is bound to, apart from the URL to reach it locally', async () => {
    const server = await startHttpServer(new Hono().get('/', (c) => c.text('here')), { host: '127.0.0.1', port: 0 });
    try {
      expect(server.port).toBeGreaterThan(0);
      expect(server.bound).toEqual({ address: '127.0.0.1', port: server.port, family: 'IPv4', allInterfaces: false });
      expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
      expect(describeListen(server.bound)).toBe(server.url);
      expect(await (await fetch(server.url)).text()).toBe('here');
    } finally {
      await server.close(1000);
    }
  });

  it('says a wildcard address listens on every interface, and how to reach it locally', () => {
    expect(describeListen({ address: '0.0.0.0', port: 3000, family: 'IPv4', allInterfaces: true })).toBe('0.0.0.0:3000 (all IPv4 interfaces; locally http://127.0.0.1:3000)');
    expect(describeListen({ address: '::', port: 3000, family: 'IPv6', allInterfaces: true })).toBe('[::]:3000 (all interfaces; locally http://127.0.0.1:3000)');
    expect(describeListen({ address: '::1', port: 8080, family: 'IPv6', allInterfaces: false })).toBe('http://[::1]:8080');
  });

  it('refuses a port already in use with a coded error naming PORT and HOST and suggesting PORT=0', async () => {
    const first = await startHttpServer(new Hono(), { host: '127.0.0.1', port: 0 });
    try {
      const second = startHttpServer(new Hono(), { host: '127.0.0.1', port: first.port });
      await expect(second).rejects.toBeInstanceOf(HttpServerError);
      const error = (await second.catch((failure: unknown) => failure)) as HttpServerError;
      expect(error.code).toBe('port_in_use');
      expect(error.message).toBe(`port ${first.port} on 127.0.0.1 is already in use (PORT=${first.port}, HOST=127.0.0.1); set PORT to another port, or PORT=0 for any free one`);
      expect(error.cause).toMatchObject({ code: 'EADDRINUSE' });
      // The first server is untouched.
      expect((await fetch(`${first.url}/anything`)).status).toBe(404);
    } finally {
      await first.close(1000);
    }
  });

  it('refuses a HOST that is not an address of this machine, saying what to set', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never configured on a machine, and binding sends nothing anywhere.
    const error = (await startHttpServer(new Hono(), { host: '192.0.2.1', port: 0 }).catch((failure: unknown) => failure)) as HttpServerError;
    expect(error).toBeInstanceOf(HttpServerError);
    expect(error.code).toBe('host_unavailable');
    expect(error.message).toMatch(/^192\.0\.2\.1 is not an address of this machine \(PORT=0, HOST=192\.0\.2\.1\); set HOST to/);
  });
});
