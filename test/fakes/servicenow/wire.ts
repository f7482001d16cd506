/**
 * HTTP details of the fake ServiceNow: answers, the Table API's paging headers, programmed failures.
 *
 * Link / X-Total-Count follow the captured answer in servicenow_table_get_response_headers_gist_capture.txt:
 * `<url>;rel="first",<url>;rel="prev",<url>;rel="next",<url>;rel="last"`, absolute URLs carrying the request's
 * parameters in their order with `sysparm_offset` moved to the end; prev is offset - limit even on the first page
 * (the capture shows `sysparm_offset=-1`); next only while more remain; last is total - limit (the capture's 549 of
 * 550, and the docs' 2780 with limit 1000, c_TableAPI.md). Parameters are re-encoded as URLSearchParams does.
 * Content-Type is `application/json;charset=UTF-8` as current instances send it (the 2015 capture shows plain
 * `application/json`).
 */
import { STATUS_CODES, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import {
  ERROR_NOT_AUTHENTICATED,
  ERROR_NOT_AUTHORIZED,
  FIXTURE_RATE_LIMIT_BODY,
  OAUTH_ERROR,
  errorServer,
} from './fixtures.ts';
import type { Failure, FailureMatch, RecordedRequest } from './types.ts';

export const JSON_TYPE = 'application/json;charset=UTF-8';
/** X-RateLimit-Rule: the sys_id of a sys_rate_limit_rules record (made up; the docs give no value). */
export const RATE_LIMIT_RULE = '7a3b5c9d0e1f4a2b8c6d4e2f0a1b3c5d';
/** X-RateLimit-Limit: the docs' 429 body speaks of "100 requests per hour". */
export const RATE_LIMIT_PER_HOUR = 100;

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function send(
  res: ServerResponse,
  rec: RecordedRequest,
  status: number,
  body: object | string | undefined,
  headers: OutgoingHttpHeaders = {},
): void {
  rec.status = status;
  const type = body === undefined ? {} : { 'Content-Type': JSON_TYPE };
  res.writeHead(status, { Server: 'ServiceNow', ...type, ...headers });
  res.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
}

export function linkHeader(origin: string, path: string, params: URLSearchParams, offset: number, limit: number, total: number): string {
  const kept = [...params].filter(([key]) => key !== 'sysparm_offset');
  const at = (o: number): string => `<${origin}${path}?${new URLSearchParams([...kept, ['sysparm_offset', String(o)]]).toString()}>`;
  const links = [`${at(0)};rel="first"`, `${at(offset - limit)};rel="prev"`];
  if (offset + limit < total) links.push(`${at(offset + limit)};rel="next"`);
  links.push(`${at(Math.max(0, total - limit))};rel="last"`);
  return links.join(',');
}

/** Query parameters with secret-looking values replaced (the request log never keeps a secret). */
export function redactedQuery(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of params) out[key] = /secret|password|token/i.test(key) ? '[redacted]' : value;
  return out;
}

export const matchesRequest = (match: FailureMatch | undefined, method: string, path: string, query = ''): boolean =>
  (match?.method === undefined || match.method.toUpperCase() === method) &&
  (match?.pathPrefix === undefined || path.startsWith(match.pathPrefix)) &&
  (match?.queryIncludes === undefined || query.includes(match.queryIncludes));

/** Programmed failures: queued (`failNext`, used first, in order) and standing (`failAlways`). */
export function createFailures() {
  const queued: { remaining: number; failure: Failure; match: FailureMatch | undefined }[] = [];
  const standing = new Map<string, { failure: Failure; match: FailureMatch | undefined }>();
  const key = (match: FailureMatch | undefined): string => `${match?.method?.toUpperCase() ?? '*'} ${match?.pathPrefix ?? ''} ${match?.queryIncludes ?? ''}`;
  return {
    next(count: number, failure: Failure, match: FailureMatch | undefined): void {
      if (count > 0) queued.push({ remaining: count, failure, match });
    },
    always(failure: Failure | undefined, match: FailureMatch | undefined): void {
      if (failure) standing.set(key(match), { failure, match });
      else if (match) standing.delete(key(match));
      else standing.clear();
    },
    take(method: string, path: string, query?: string): Failure | undefined {
      const index = queued.findIndex((q) => matchesRequest(q.match, method, path, query));
      const hit = queued[index];
      if (hit) {
        if (--hit.remaining === 0) queued.splice(index, 1);
        return hit.failure;
      }
      return [...standing.values()].find((s) => matchesRequest(s.match, method, path, query))?.failure;
    },
  };
}

/** The answer to a programmed status failure. 429 as the docs' rate-limiting page describes it. */
export function sendFailure(res: ServerResponse, rec: RecordedRequest, failure: Extract<Failure, { status: number }>, nowMs: number): void {
  if (failure.status === 429) {
    const retryAfter = failure.retryAfterSeconds ?? 1;
    const reset = failure.rateLimitResetEpochSeconds ?? Math.ceil(nowMs / 1000) + retryAfter;
    send(res, rec, 429, FIXTURE_RATE_LIMIT_BODY, {
      'Retry-After': String(retryAfter),
      'X-RateLimit-Limit': String(RATE_LIMIT_PER_HOUR),
      'X-RateLimit-Reset': String(reset),
      'X-RateLimit-Rule': RATE_LIMIT_RULE,
    });
  } else if (failure.status === 401 || failure.status === 403) {
    const oauth = rec.path === '/oauth_token.do';
    send(res, rec, failure.status, oauth ? OAUTH_ERROR : failure.status === 401 ? ERROR_NOT_AUTHENTICATED : ERROR_NOT_AUTHORIZED);
  } else send(res, rec, failure.status, errorServer(STATUS_CODES[failure.status] ?? 'Server Error'));
}
