/**
 * The one HTTP error type and the one error envelope: every 4xx/5xx body is
 * `{ "error": { "code": "snake_case", "message": "…" } }`. Codes are stable; messages are for people and never
 * carry secrets or internals (a 500 says only that something failed and which request id to look for).
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from '../logger.ts';

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

export class HttpError extends Error {
  readonly status: ContentfulStatusCode;
  readonly code: string;
  readonly details: unknown;

  /** @example throw new HttpError(404, 'partner_not_found', 'no partner with key "acme"'); */
  constructor(status: ContentfulStatusCode, code: string, message: string, options?: { cause?: unknown; details?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HttpError';
    this.status = status;
    this.code = code;
    this.details = options?.details;
  }
}

export function errorBody(code: string, message: string, details?: unknown): ErrorBody {
  return { error: details === undefined ? { code, message } : { code, message, details } };
}

/** Default codes for statuses raised without one (by Hono itself or its middleware). */
const CODES: Partial<Record<number, string>> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  408: 'request_timeout',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'unprocessable_entity',
  429: 'too_many_requests',
  503: 'unavailable',
};

/** `app.onError` handler: maps any thrown value to the envelope; unknown errors become a logged 500. */
export function handleError(logger: Logger) {
  return function onError(error: Error, c: Context): Response {
    if (error instanceof HttpError) {
      return c.json(errorBody(error.code, error.message, error.details), error.status);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      return c.json(errorBody(CODES[status] ?? 'http_error', error.message || 'request failed'), status);
    }
    logger.error({ err: error, method: c.req.method, path: c.req.path }, 'unhandled error in request');
    const requestId = c.res.headers.get('x-request-id') ?? c.req.header('x-request-id') ?? 'unknown';
    return c.json(errorBody('internal_error', `the request failed; quote request id ${requestId} to an operator`), 500);
  };
}

/** `app.notFound` handler. */
export function handleNotFound(c: Context): Response {
  return c.json(errorBody('not_found', `no route for ${c.req.method} ${c.req.path}`), 404);
}
