/**
 * The one HTTP client every connector calls its system through (undici). What it guarantees:
 *
 * - a timeout on every call (headers and body), and a `traceparent` (the caller's trace, a new span) and
 *   `X-Correlation-Id` on every request;
 * - retries only where they are safe and can help: 429, 502, 503, 504 and network errors (502, 504 and network
 *   errors only for idempotent requests: a POST whose connection broke, or whose gateway timed out, may have
 *   been applied);
 * - the wait before a retry from `Retry-After` (seconds or an HTTP date) or `X-RateLimit-Reset` (epoch seconds, or
 *   an ISO 8601 time as Jira sends)
 *   when the system says, else full-jitter exponential backoff (a random wait in [0, base × 2^attempt]);
 * - at most two retries inside one call, and only short waits (`maxInlineWaitMs`): a longer wait is not slept
 *   (a worker must not sit idle for a minute) but returned as `deferred` with the time to come back, so that the
 *   job re-enqueues itself for then;
 * - a 401 asks the auth provider for a fresh token once and tries once more;
 * - expected remote failures are values (`UpstreamFailure`), never exceptions; only bugs throw.
 * - `upstream_requests_total{connector,status}` and `rate_limited_total{connector}` count every attempt.
 *
 * undici's own RetryAgent was considered: it sleeps whatever Retry-After says, knows nothing of
 * X-RateLimit-Reset or of deferring to the queue, and has no token refresh, which is most of this policy.
 * Nothing here logs a header or a body: the Authorization value and request bodies (which may carry a client
 * secret) never reach a log line or an error message.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Counter, type Registry } from 'prom-client';
import { Agent, type Dispatcher, errors as undiciErrors, request } from 'undici';
import { currentContext } from '../../logger.ts';
import { nextTraceparent } from '../../http/middleware/request-context.ts';

/** Thrown by an auth provider that cannot get a credential (the token endpoint refused us, or is down). */
export class AuthUnavailable extends Error {
  readonly code: string;
  readonly failure: UpstreamFailure | undefined;
  constructor(code: string, message: string, failure?: UpstreamFailure) {
    super(message);
    this.code = code;
    this.failure = failure;
  }
}

export interface AuthProvider {
  /** The Authorization header value for the next request. */
  authorization(): Promise<string>;
  /** Called after a 401: get a new token (single-flight across processes is the provider's business). */
  refresh(): Promise<void>;
}

export interface UpstreamRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path below the client's base URL (`/api/now/table/incident`), or an absolute URL on the same origin. */
  path: string;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  /** JSON-encoded, or sent as a form when `form` is set. */
  json?: unknown;
  form?: Record<string, string>;
  /** Safe to send twice (network errors are retried). Defaults to true for GET, PUT and DELETE. */
  idempotent?: boolean;
  /** Read the answer as bytes instead of JSON (attachments). */
  binary?: boolean;
  /** Skip the auth provider (the token endpoint itself). */
  anonymous?: boolean;
}

export interface UpstreamResponse<T = unknown> {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: T;
  /** Attempts this call took (1 when the first succeeded). */
  attempts: number;
}

export type UpstreamFailure =
  /** A status we do not retry (4xx but 429, or a retryable one after the retries), with what the system said. */
  | { kind: 'http'; code: string; status: number; body: unknown; attempts: number }
  /** Come back at `retryAt` (a rate limit or an outage that needs a longer wait than a call may sleep). */
  | { kind: 'deferred'; code: 'rate_limited' | 'upstream_unavailable'; status: number | undefined; retryAt: Date; attempts: number; /** A 429's `RateLimit-Reason` (Jira: global or tenant quota, burst, per-issue write). */ reason?: string }
  /** No answer: connection refused or reset, DNS, the timeout, or the caller stopped (`interrupted`). */
  | { kind: 'network'; code: 'timeout' | 'network_error' | 'interrupted'; attempts: number }
  /** No credential to send: the token endpoint refused or could not be reached (`cause` says how). */
  | { kind: 'auth'; code: string; attempts: number; cause?: UpstreamFailure | undefined };

export type UpstreamResult<T> = { ok: true; value: UpstreamResponse<T> } | { ok: false; failure: UpstreamFailure };

export interface HttpClientOptions {
  /** Names the connector in metrics. */
  connector: string;
  baseUrl: string;
  auth?: AuthProvider | undefined;
  metrics: { registry: Registry };
  /** Per attempt, headers and body each (default 15 s). */
  timeoutMs?: number;
  /** Retries inside one call (default 2). */
  maxRetries?: number;
  /** Backoff base (default 250 ms) and the longest wait slept inside a call (default 2 s). */
  backoffBaseMs?: number;
  maxInlineWaitMs?: number;
  /** Largest answer read (default 16 MiB); a larger one is a failure, not a crash. */
  maxResponseBytes?: number;
  now?: () => number;
  random?: () => number;
  /** How a short wait inside a call is spent (tests record it). */
  sleep?: (ms: number) => Promise<unknown>;
  dispatcher?: Dispatcher;
  userAgent?: string;
}

export interface HttpClient {
  send<T = unknown>(input: UpstreamRequest): Promise<UpstreamResult<T>>;
  close(): Promise<void>;
}

const RETRYABLE = new Set([429, 502, 503, 504]);

/** One set of counters per registry, shared by every connector's client (the framework module makes them at start, so /metrics shows them before the first call). */
const countersByRegistry = new WeakMap<Registry, { requests: Counter<'connector' | 'status'>; rateLimited: Counter<'connector'> }>();
export function upstreamCounters(registry: Registry) {
  let found = countersByRegistry.get(registry);
  if (!found) {
    found = {
      requests: new Counter({ name: 'upstream_requests_total', help: 'Requests to connected systems, by connector and HTTP status (or network_error / timeout)', labelNames: ['connector', 'status'], registers: [registry] }),
      rateLimited: new Counter({ name: 'rate_limited_total', help: 'Answers 429 (rate limited) from connected systems, by connector', labelNames: ['connector'], registers: [registry] }),
    };
    countersByRegistry.set(registry, found);
  }
  return found;
}

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const maxRetries = options.maxRetries ?? 2;
  const base = options.backoffBaseMs ?? 250;
  const maxInline = options.maxInlineWaitMs ?? 2000;
  const maxBytes = options.maxResponseBytes ?? 16 * 1024 * 1024;
  const now = options.now ?? Date.now;
  const random = options.random ?? Math.random;
  const wait = options.sleep ?? ((ms: number) => sleep(ms));
  const ownDispatcher = options.dispatcher ? undefined : new Agent({ headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connections: 16 });
  const dispatcher = options.dispatcher ?? ownDispatcher!;
  const origin = new URL(options.baseUrl);
  const metrics = upstreamCounters(options.metrics.registry);

  const urlOf = (input: UpstreamRequest): URL => {
    const url = new URL(input.path, origin);
    // An absolute URL (a Link header's next page) must stay on the system we hold credentials for.
    if (url.origin !== origin.origin) throw new Error(`refusing to send credentials to another origin (${url.origin})`);
    for (const [key, value] of Object.entries(input.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
    return url;
  };

  const attempt = async (input: UpstreamRequest, url: URL, authorization: string | undefined) => {
    const { correlationId, requestId, traceparent } = currentContext();
    const headers: Record<string, string> = {
      accept: input.binary ? '*/*' : 'application/json',
      'user-agent': options.userAgent ?? 'projectx-integrations',
      traceparent: nextTraceparent(traceparent),
      ...(correlationId ?? requestId ? { 'x-correlation-id': (correlationId ?? requestId)! } : {}),
      ...input.headers,
      ...(authorization ? { authorization } : {}),
    };
    let body: string | null = null;
    if (input.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(input.form).toString();
    } else if (input.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(input.json);
    }
    const response = await request(url, { method: input.method, headers, body, dispatcher, signal: AbortSignal.timeout(timeoutMs), headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const bytes = await readLimited(response.body, maxBytes, response.statusCode);
    return { status: response.statusCode, headers: response.headers, bytes };
  };

  return {
    async send<T>(input: UpstreamRequest): Promise<UpstreamResult<T>> {
      const url = urlOf(input);
      const idempotent = input.idempotent ?? (input.method === 'GET' || input.method === 'PUT' || input.method === 'DELETE');
      let refreshed = false;
      let retries = 0;
      for (let attempts = 1; ; attempts++) {
        let authorization: string | undefined;
        try {
          authorization = input.anonymous || !options.auth ? undefined : await options.auth.authorization();
        } catch (error) {
          if (error instanceof AuthUnavailable) return { ok: false, failure: { kind: 'auth', code: error.code, attempts, cause: error.failure } };
          throw error;
        }
        let answer: Awaited<ReturnType<typeof attempt>>;
        try {
          answer = await attempt(input, url, authorization);
        } catch (error) {
          if (error instanceof ResponseTooLarge) return { ok: false, failure: { kind: 'http', code: 'response_too_large', status: error.status, body: undefined, attempts } };
          const code = isTimeout(error) ? 'timeout' : 'network_error';
          metrics.requests.inc({ connector: options.connector, status: code });
          if (!idempotent || retries >= maxRetries) return { ok: false, failure: { kind: 'network', code, attempts } };
          retries++;
          await wait(backoff(retries, base, random));
          continue;
        }
        metrics.requests.inc({ connector: options.connector, status: String(answer.status) });
        if (answer.status === 429) metrics.rateLimited.inc({ connector: options.connector });
        if (answer.status >= 200 && answer.status < 300) {
          return { ok: true, value: { status: answer.status, headers: answer.headers, body: (input.binary ? answer.bytes : parseJson(answer.bytes)) as T, attempts } };
        }
        if (answer.status === 401 && options.auth && !input.anonymous && !refreshed) {
          refreshed = true;
          try {
            await options.auth.refresh();
          } catch (error) {
            if (error instanceof AuthUnavailable) return { ok: false, failure: { kind: 'auth', code: error.code, attempts, cause: error.failure } };
            throw error;
          }
          continue;
        }
        if (!RETRYABLE.has(answer.status)) {
          return { ok: false, failure: { kind: 'http', code: httpCode(answer.status), status: answer.status, body: parseJson(answer.bytes), attempts } };
        }
        if (!idempotent && (answer.status === 502 || answer.status === 504)) {
          // A gateway's error says nothing of whether the system applied the request: sending a POST again here
          // could apply it twice. The caller decides (a push checks first whether its write is already there).
          return { ok: false, failure: { kind: 'http', code: 'upstream_error', status: answer.status, body: parseJson(answer.bytes), attempts } };
        }
        const told = toldWaitMs(answer.headers, answer.status, now());
        const delay = told ?? backoff(retries + 1, base, random);
        const code = answer.status === 429 ? 'rate_limited' : 'upstream_unavailable';
        const reason = answer.status === 429 ? first(answer.headers['ratelimit-reason'])?.trim().slice(0, 100) : undefined;
        const why = reason ? { reason } : {};
        if (delay > maxInline) return { ok: false, failure: { kind: 'deferred', code, status: answer.status, retryAt: new Date(now() + delay), attempts, ...why } };
        if (retries >= maxRetries) {
          // Out of in-call retries: come back later, at the system's word or after a backoff step.
          return { ok: false, failure: { kind: 'deferred', code, status: answer.status, retryAt: new Date(now() + Math.max(delay, base * 4 * 2 ** retries + backoff(retries + 1, base * 4, random))), attempts, ...why } };
        }
        retries++;
        await wait(delay);
      }
    },
    close: async () => {
      await ownDispatcher?.close();
    },
  };
}

/** Full jitter: a random wait in [0, base × 2^(retry-1)]. */
export function backoff(retry: number, baseMs: number, random: () => number): number {
  return Math.floor(random() * baseMs * 2 ** Math.max(0, retry - 1));
}

/** How long the system asked us to wait: Retry-After (seconds or HTTP date), else a 429's X-RateLimit-Reset (epoch seconds or ISO 8601). */
export function toldWaitMs(headers: Record<string, string | string[] | undefined>, status: number, nowMs: number): number | undefined {
  const retryAfter = first(headers['retry-after']);
  if (retryAfter !== undefined) {
    if (/^\d+$/.test(retryAfter.trim())) return Number(retryAfter.trim()) * 1000;
    const at = Date.parse(retryAfter);
    if (Number.isFinite(at)) return Math.max(0, at - nowMs);
  }
  const reset = first(headers['x-ratelimit-reset'])?.trim();
  if (status !== 429 || reset === undefined) return undefined;
  // Epoch seconds (ServiceNow, GitHub) or an ISO 8601 time (Jira: `2026-01-01T01:01Z`).
  if (/^\d+$/.test(reset)) return Math.max(0, Number(reset) * 1000 - nowMs);
  const at = /^\d{4}-\d{2}-\d{2}T/.test(reset) ? Date.parse(reset) : Number.NaN;
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function httpCode(status: number): string {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 400 || status === 422) return 'rejected';
  if (status >= 500) return 'upstream_error';
  return `http_${status}`;
}

function parseJson(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

class ResponseTooLarge extends Error {
  readonly status: number;
  constructor(status: number) {
    super('the answer is larger than the client reads');
    this.status = status;
  }
}

async function readLimited(body: AsyncIterable<Buffer> & { destroy(): unknown }, maxBytes: number, status: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw new ResponseTooLarge(status);
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

function isTimeout(error: unknown): boolean {
  return (
    error instanceof undiciErrors.HeadersTimeoutError ||
    error instanceof undiciErrors.BodyTimeoutError ||
    (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError'))
  );
}
