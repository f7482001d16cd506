/**
 * The Node HTTP server around a Hono app, with a graceful close: stop accepting, let in-flight requests
 * finish (their responses say `Connection: close`, so keep-alive clients do not send another request on a
 * connection that is about to go), close idle connections at once and, after the grace period, the rest.
 */
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';

export interface HttpServer {
  port: number;
  url: string;
  /** Resolves once every in-flight request has finished, or after `graceMs` with the rest cut off. */
  close(graceMs: number): Promise<void>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Errors of the listening server after start (the first one, before listening, rejects instead). */
  onError?: (error: Error) => void;
}

export function startHttpServer(app: Hono, options: HttpServerOptions): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const inFlight = new Set<ServerResponse>();
    let closing = false;
    const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port }, (info: AddressInfo) => {
      server.off('error', reject);
      server.on('error', (error) => options.onError?.(error));
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        port: info.port,
        url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${info.port}`,
        close: (graceMs) => {
          closing = true;
          for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
          return closeGracefully(server, graceMs);
        },
      });
    }) as Server;
    server.once('error', reject);
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      inFlight.add(res);
      if (closing) res.setHeader('Connection', 'close');
      res.once('close', () => {
        inFlight.delete(res);
        if (closing) server.closeIdleConnections();
      });
    });
  });
}

function closeGracefully(server: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
