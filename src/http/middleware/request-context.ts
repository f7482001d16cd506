/**
 * Request context: a request id (`X-Request-Id`, accepted from the caller when well-formed, else generated,
 * always echoed), W3C trace context (`traceparent` continued with a new span id, or a new trace started), an
 * access log line, and the request duration histogram. Everything downstream, including log lines written
 * deep in the domain and jobs enqueued, sees the ids through `currentContext()`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { type Logger, runWithContext } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

// A call to randomBytes() per id is a getrandom() syscall each time and was half the CPU of a request in
// bench/http-ops; draw ids from a 4 KiB pool refilled when spent (randomUUID() does the same internally).
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let offset = 0;
function randomHex(bytes: number): string {
  if (offset + bytes > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Continues the caller's trace with a new span id, or starts a new sampled trace. */
export function nextTraceparent(incoming: string | undefined): string {
  const match = incoming ? TRACEPARENT.exec(incoming.trim().toLowerCase()) : null;
  const version = match?.[1];
  const traceId = match?.[2];
  const valid = match && version !== 'ff' && !/^0+$/.test(traceId ?? '') && !/^0+$/.test(match[3] ?? '');
  const span = randomHex(8);
  return valid ? `00-${traceId}-${span}-${match[4]}` : `00-${randomHex(16)}-${span}-01`;
}

export interface RequestContextOptions {
  logger: Logger;
  metrics: Metrics;
  /** Paths not worth an access line (probes, scrapes). */
  quietPaths?: readonly string[];
}

export function requestContext(options: RequestContextOptions): MiddlewareHandler {
  const quiet = new Set(options.quietPaths ?? ['/healthz', '/readyz', '/metrics']);
  return async function requestContextMiddleware(c, next) {
    const started = performance.now();
    const offered = c.req.header('x-request-id');
    const requestId = offered && REQUEST_ID.test(offered) ? offered : randomUUID();
    const traceparent = nextTraceparent(c.req.header('traceparent'));
    c.header('X-Request-Id', requestId);
    await runWithContext({ requestId, correlationId: requestId, traceparent }, async () => {
      try {
        await next();
      } finally {
        const seconds = (performance.now() - started) / 1000;
        const status = c.res.status;
        // The handler's route pattern, even when a middleware answered first (a 413); unmatched paths share one
        // label so that scanners cannot blow up the metric's cardinality.
        const route = c.req.matchedRoutes.findLast((matched) => matched.method !== 'ALL')?.path ?? 'unmatched';
        options.metrics.httpRequestDuration.observe({ method: c.req.method, route, status: String(status) }, seconds);
        if (!quiet.has(c.req.path)) {
          options.logger.info({ method: c.req.method, path: c.req.path, route, status, ms: Math.round(seconds * 1e4) / 10 }, 'request');
        }
      }
    });
  };
}
