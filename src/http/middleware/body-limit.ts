/**
 * Request body limit (default 1 MiB) answering 413 in our envelope. A declared Content-Length over the limit
 * is refused before any byte of the body is read; a chunked body is cut off as soon as it passes the limit.
 * The connection is closed after a 413 so that the client stops sending.
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit as honoBodyLimit } from 'hono/body-limit';
import { errorBody } from '../errors.ts';

export function bodyLimit(options: { maxBytes: number }): MiddlewareHandler {
  return honoBodyLimit({
    maxSize: options.maxBytes,
    onError: (c) => {
      c.header('Connection', 'close');
      return c.json(errorBody('payload_too_large', `request body is larger than ${options.maxBytes} bytes`), 413);
    },
  });
}
