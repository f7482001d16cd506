/**
 * The Node HTTP server around a Hono app, with a graceful close: stop accepting, let in-flight requests
 * finish, close idle keep-alive connections at once and, after the grace period, whatever is left.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';

export interface HttpServer {
  port: number;
  url: string;
  /** Resolves once every in-flight request has finished, or after `graceMs` with the rest cut off. */
  close(graceMs: number): Promise<void>;
}

export function startHttpServer(app: Hono, options: { host: string; port: number }): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port }, (info: AddressInfo) => {
      const host = info.family === 'IPv6' ? `[${info.address}]` : info.address;
      resolve({
        port: info.port,
        url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${info.port}`,
        close: (graceMs) => closeGracefully(server, graceMs),
      });
    }) as Server;
    server.once('error', reject);
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
