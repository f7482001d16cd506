/**
 * HTTP details of the fake Jira: answers, request bodies, the request log's redaction, programmed failures, the
 * rate-limit headers and the per-issue write limiter.
 *
 * - JSON answers carry `application/json;charset=UTF-8` (measured on Jira Cloud by brekkylab/backlot).
 * - 429s (rate-limit fixture and notes A6): `Retry-After` in seconds (1 for burst, 1847 for quota: the docs'
 *   examples), `X-RateLimit-Limit` (350 burst, 100000 quota: the examples; 20 or 100 per issue: the limit hit),
 *   `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset` = now + Retry-After as `yyyy-MM-ddTHH:mmZ`, `RateLimit-Reason`.
 *   The body is a Jira error body (its wording is a GUESS: no 429 body is published).
 * - Per-issue writes (notes A6): more than 20 in 2 s or 100 in 30 s on one issue (fake clock) → 429
 *   `jira-per-issue-on-write`; Retry-After is when the oldest write in the full window leaves it.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  ERROR_CONFLICT,
  ERROR_FORBIDDEN,
  ERROR_ISSUE_NOT_FOUND,
  ERROR_RATE_LIMITED,
  GATEWAY_UNAUTHORIZED,
  OAUTH_BAD_CLIENT,
  OAUTH_BAD_REFRESH,
  errorServer,
} from './fixtures.ts';
import type { StoredIssue } from './store.ts';
import { formatResetHeader } from './time.ts';
import type { Failure, FailureMatch, HostName, RecordedRequest } from './types.ts';

export const JSON_TYPE = 'application/json;charset=UTF-8';

/** What a handler answers; the server writes it. */
export interface Answer {
  status: number;
  /** JSON-encoded unless `raw` is given. */
  body?: unknown;
  raw?: Buffer | string;
  contentType?: string;
  headers?: OutgoingHttpHeaders;
  rateLimitReason?: string;
}
export const json = (status: number, body: unknown, headers: OutgoingHttpHeaders = {}): Answer => ({ status, body, headers });
export const noContent = (status = 204): Answer => ({ status });

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function write(res: ServerResponse, rec: RecordedRequest, answer: Answer): void {
  rec.status = answer.status;
  if (answer.rateLimitReason !== undefined) rec.rateLimitReason = answer.rateLimitReason;
  const payload = answer.raw ?? (answer.body === undefined ? undefined : JSON.stringify(answer.body));
  const type = payload === undefined ? {} : { 'Content-Type': answer.contentType ?? JSON_TYPE };
  res.writeHead(answer.status, { ...type, ...answer.headers });
  res.end(payload);
}

/** A JSON request body: the value, or `undefined` for an empty body, or 'invalid'. */
export function parseJson(body: Buffer): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return 'invalid' as const;
  }
}
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A request value as text for messages and comparisons (strings as they are, anything else as JSON). */
export const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? String(v));

const SECRET_PARAM = /^(code|token|access_token|refresh_token|id_token|client_secret|password|api_?token|pat)$|secret/i;
/** Query parameters with secret-looking values replaced (the request log never keeps a secret). */
export function redactedQuery(params: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of params) out[key] = SECRET_PARAM.test(key) ? '[redacted]' : value;
  return out;
}

export interface RequestFacts {
  method: string;
  host: HostName;
  /** Path after any /ex/jira/{cloudId} prefix. */
  path: string;
  jql: string;
}
export const matchesRequest = (m: FailureMatch | undefined, r: RequestFacts): boolean =>
  (m?.method === undefined || m.method.toUpperCase() === r.method) &&
  (m?.host === undefined || m.host === r.host) &&
  (m?.pathPrefix === undefined || r.path.startsWith(m.pathPrefix)) &&
  (m?.jqlIncludes === undefined || r.jql.includes(m.jqlIncludes));

/** Programmed failures: queued (`failNext`, used first, in order) and standing (`failAlways`). */
export function createFailures() {
  const queued: { remaining: number; failure: Failure; match: FailureMatch | undefined }[] = [];
  const standing = new Map<string, { failure: Failure; match: FailureMatch | undefined }>();
  const key = (m: FailureMatch | undefined): string => JSON.stringify([m?.method?.toUpperCase(), m?.host, m?.pathPrefix, m?.jqlIncludes]);
  return {
    next(count: number, failure: Failure, match: FailureMatch | undefined): void {
      if (count > 0) queued.push({ remaining: count, failure, match });
    },
    always(failure: Failure | undefined, match: FailureMatch | undefined): void {
      if (failure) standing.set(key(match), { failure, match });
      else if (match) standing.delete(key(match));
      else standing.clear();
    },
    take(facts: RequestFacts): Failure | undefined {
      const index = queued.findIndex((q) => matchesRequest(q.match, facts));
      const hit = queued[index];
      if (hit) {
        if (--hit.remaining === 0) queued.splice(index, 1);
        return hit.failure;
      }
      return [...standing.values()].find((s) => matchesRequest(s.match, facts))?.failure;
    },
  };
}

export function rateLimited(reason: string, nowMs: number, options: { retryAfterSeconds?: number; omitRetryAfter?: boolean; limit?: number } = {}): Answer {
  const quota = reason.includes('quota');
  const retryAfter = options.retryAfterSeconds ?? (quota ? 1847 : 1);
  const limit = options.limit ?? (quota ? 100_000 : reason === 'jira-per-issue-on-write' ? 20 : 350);
  const timing = options.omitRetryAfter ? {} : { 'Retry-After': String(retryAfter), 'X-RateLimit-Reset': formatResetHeader(nowMs + retryAfter * 1000) };
  return {
    ...json(429, ERROR_RATE_LIMITED, { ...timing, 'X-RateLimit-Limit': String(limit), 'X-RateLimit-Remaining': '0', 'RateLimit-Reason': reason }),
    rateLimitReason: reason,
  };
}

/** The answer to a programmed status failure on `host`; `unauthenticated` is the site's own 401 for this request. */
export function failureAnswer(failure: Extract<Failure, { status: number }>, host: HostName, nowMs: number, unauthenticated: Answer): Answer {
  if (failure.status === 429) {
    return rateLimited(failure.reason, nowMs, {
      ...(failure.retryAfterSeconds !== undefined ? { retryAfterSeconds: failure.retryAfterSeconds } : {}),
      ...(failure.omitRetryAfter !== undefined ? { omitRetryAfter: failure.omitRetryAfter } : {}),
    });
  }
  if (failure.status >= 500) {
    const retry = 'retryAfterSeconds' in failure && failure.retryAfterSeconds !== undefined ? { 'Retry-After': String(failure.retryAfterSeconds) } : {};
    return json(failure.status, errorServer(failure.status), retry);
  }
  if (host === 'auth') return failure.status === 401 ? json(401, OAUTH_BAD_CLIENT) : json(failure.status, OAUTH_BAD_REFRESH);
  switch (failure.status) {
    case 401: return host === 'api' ? json(401, GATEWAY_UNAUTHORIZED) : unauthenticated;
    case 403: return json(403, ERROR_FORBIDDEN);
    case 404: return json(404, ERROR_ISSUE_NOT_FOUND);
    default: return json(409, ERROR_CONFLICT);
  }
}

const WINDOWS = [
  { ms: 2_000, limit: 20 },
  { ms: 30_000, limit: 100 },
] as const;
/** Per-issue write limits on the fake clock: `refusal` before a write, `record` after an accepted one. */
export const writeLimiter = {
  refusal(issue: StoredIssue, nowMs: number): Answer | undefined {
    issue.writeTimes = issue.writeTimes.filter((t) => t > nowMs - 30_000);
    for (const w of WINDOWS) {
      const inWindow = issue.writeTimes.filter((t) => t > nowMs - w.ms);
      if (inWindow.length >= w.limit) {
        const retryAfter = Math.max(1, Math.ceil((inWindow[0]! + w.ms - nowMs) / 1000));
        return rateLimited('jira-per-issue-on-write', nowMs, { retryAfterSeconds: retryAfter, limit: w.limit });
      }
    }
    return undefined;
  },
  record(issue: StoredIssue, nowMs: number): void {
    issue.writeTimes.push(nowMs);
  },
};
