/**
 * The Node HTTP server around a Hono app, with a graceful close: stop accepting, let in-flight requests
 * finish (their responses say `Connection: close`, so keep-alive clients do not send another request on a
 * connection that is about to go), close idle connections at once and, after the grace period, the rest.
 *
 * It reports where it really listens (`bound`, told by `describeListen`) apart from the URL to reach it from
 * this machine (`url`): HOST's default 0.0.0.0 binds every IPv4 interface, not just 127.0.0.1. A failure to
 * listen rejects with an `HttpServerError` whose message says which variable to change.
 */
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';

/** The address the socket is bound to, as the operating system reports it. */
export interface BoundAddress {
  /** `0.0.0.0` or `::` when bound to every interface. */
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
  /** Bound to the wildcard address: reachable on every interface of its family (`::` usually takes IPv4 too). */
  allInterfaces: boolean;
}

export interface HttpServer {
  port: number;
  /** Where to reach it from this machine (127.0.0.1 when bound to every interface). */
  url: string;
  /** Where it really listens. */
  bound: BoundAddress;
  /** Resolves once every in-flight request has finished, or after `graceMs` with the rest cut off. */
  close(graceMs: number): Promise<void>;
}

export interface HttpServerOptions {
  host: string;
  port: number;
  /** Errors of the listening server after start (the first one, before listening, rejects instead). */
  onError?: (error: Error) => void;
}

/** Why the server could not listen: `port_in_use`, `port_not_permitted`, `host_unavailable` or `listen_failed`. */
export class HttpServerError extends Error {
  readonly code: 'port_in_use' | 'port_not_permitted' | 'host_unavailable' | 'listen_failed';

  constructor(code: HttpServerError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpServerError';
    this.code = code;
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The URL to reach a bound address from this machine (`::` takes IPv4 too, unless the system says otherwise). */
function localUrl(bound: BoundAddress): string {
  const host = bound.allInterfaces ? '127.0.0.1' : bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return `http://${host}:${bound.port}`;
}

/**
 * Where a server listens, for the start-up log: the bound address, and how to reach it locally.
 *
 * @example describeListen(http.bound) // '0.0.0.0:3000 (all IPv4 interfaces; locally http://127.0.0.1:3000)'
 * @example describeListen(http.bound) // 'http://127.0.0.1:3000' (HOST=127.0.0.1: one interface, nothing more to say)
 */
export function describeListen(bound: BoundAddress): string {
  if (!bound.allInterfaces) return localUrl(bound);
  const where = bound.family === 'IPv6' ? `[${bound.address}]:${bound.port}` : `${bound.address}:${bound.port}`;
  return `${where} (all ${bound.family === 'IPv6' ? '' : 'IPv4 '}interfaces; locally ${localUrl(bound)})`;
}

/** The error a failed listen rejects with, saying what to change (the service's HOST and PORT variables). */
function listenError(error: Error & { code?: string }, options: HttpServerOptions): HttpServerError {
  const where = `port ${options.port} on ${options.host}`;
  const set = `(PORT=${options.port}, HOST=${options.host})`;
  switch (error.code) {
    case 'EADDRINUSE':
      return new HttpServerError('port_in_use', `${where} is already in use ${set}; set PORT to another port, or PORT=0 for any free one`, { cause: error });
    case 'EACCES':
      return new HttpServerError('port_not_permitted', `${where} needs privileges this process does not have ${set}; set PORT to 1024 or above, or PORT=0 for any free one`, { cause: error });
    case 'EADDRNOTAVAIL':
      return new HttpServerError('host_unavailable', `${options.host} is not an address of this machine ${set}; set HOST to one of its addresses, 127.0.0.1 for this machine only, or 0.0.0.0 for every interface`, { cause: error });
    default:
      return new HttpServerError('listen_failed', `could not listen on ${where} ${set}`, { cause: error });
  }
}

export function startHttpServer(app: Hono, options: HttpServerOptions): Promise<HttpServer> {
  return new Promise((resolve, reject) => {
    const inFlight = new Set<ServerResponse>();
    let closing = false;
    const refuse = (error: Error) => reject(listenError(error, options));
    const server = serve({ fetch: app.fetch, hostname: options.host, port: options.port }, (info: AddressInfo) => {
      server.off('error', refuse);
      server.on('error', (error) => options.onError?.(error));
      const family = info.family === 'IPv6' ? 'IPv6' : 'IPv4';
      const bound: BoundAddress = { address: info.address, port: info.port, family, allInterfaces: WILDCARDS.has(info.address) };
      resolve({
        port: info.port,
        url: localUrl(bound),
        bound,
        close: (graceMs) => {
          closing = true;
          for (const res of inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
          return closeGracefully(server, graceMs);
        },
      });
    }) as Server;
    server.once('error', refuse);
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
