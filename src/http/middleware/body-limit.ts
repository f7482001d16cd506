/**
 * Request body limit (default 1 MiB) answering 413 in our envelope. A declared Content-Length over the limit
 * is refused before any byte of the body is read; a chunked body is cut off as soon as it passes the limit.
 * The connection is closed after a 413 so that the client stops sending.
 *
 * A body with a Content-Length is judged by the header alone, without touching `c.req.raw.body`: on
 * @hono/node-server that getter turns the lightweight request into a full WHATWG Request with a stream over the
 * socket, and reading the body then goes through web streams instead of straight from the IncomingMessage (a
 * large share of the CPU of a small request such as a Slack ack). Only chunked bodies need hono's counting
 * reader.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit as honoBodyLimit } from 'hono/body-limit';
import { errorBody } from '../errors.ts';

export function bodyLimit(options: { maxBytes: number; onTooLarge?: ((c: Context) => void | Promise<void>) | undefined }): MiddlewareHandler {
  const tooLarge = async (c: Context) => {
    await options.onTooLarge?.(c);
    c.header('Connection', 'close');
    return c.json(errorBody('payload_too_large', `request body is larger than ${options.maxBytes} bytes`), 413);
  };
  const counting = honoBodyLimit({ maxSize: options.maxBytes, onError: tooLarge });
  return async function bodyLimitMiddleware(c, next) {
    const length = c.req.header('content-length');
    const chunked = c.req.header('transfer-encoding') !== undefined;
    if (length !== undefined && !chunked) return Number.parseInt(length, 10) > options.maxBytes ? tooLarge(c) : next();
    // Neither header: over HTTP/1.1 there is no body; a request built in-process (`app.request`) may still carry
    // one, so anything but GET/HEAD is counted.
    if (!chunked && (c.req.method === 'GET' || c.req.method === 'HEAD')) return next();
    return counting(c, next);
  };
}
