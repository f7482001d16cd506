/**
 * Senders that behave as partners and Slack do: a request that met a connection error (a process killed under
 * it, a port not yet listening again) or a 5xx is sent again with the same identity (delivery id, trigger id),
 * signed afresh, to the next web process in turn, until it gets an answer below 500. Each request's trail of
 * attempts is kept, so a test can show what happened to one id.
 */
import { setTimeout as pause } from 'node:timers/promises';

export interface Attempt {
  base: string;
  /** The HTTP status, or the connection error's code. */
  outcome: number | string;
  /** When the answer (or the error) came, epoch ms. */
  at: number;
}

export interface Sent {
  key: string;
  /** The answer that ended the retries (below 500), or undefined when the sender gave up. */
  status: number | undefined;
  body: string;
  attempts: Attempt[];
}

export interface SendOptions {
  key: string;
  /** The web processes' base URLs; attempt n goes to bases[(first + n) % bases.length]. */
  bases: readonly string[];
  first: number;
  /** The request for one attempt (sign it here: a retry carries a fresh timestamp, as a real sender's does). */
  request: (base: string, attempt: number) => { path: string; init: RequestInit };
  /** Requests in flight per base (read by the test to choose its moment). */
  inFlight?: Map<string, number>;
  maxAttempts?: number;
  /** Pause between attempts (a real sender backs off; this one only briefly). */
  retryPauseMs?: number;
  /** Per-attempt limit, so a hung connection counts as an error. */
  timeoutMs?: number;
}

export async function sendWithRetries(options: SendOptions): Promise<Sent> {
  const attempts: Attempt[] = [];
  const maxAttempts = options.maxAttempts ?? 60;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    const base = options.bases[(options.first + attempt) % options.bases.length]!;
    const { path, init } = options.request(base, attempt);
    options.inFlight?.set(base, (options.inFlight.get(base) ?? 0) + 1);
    try {
      const res = await fetch(`${base}${path}`, { ...init, signal: AbortSignal.timeout(options.timeoutMs ?? 20_000) });
      const body = await res.text();
      attempts.push({ base, outcome: res.status, at: Date.now() });
      if (res.status < 500) return { key: options.key, status: res.status, body, attempts };
    } catch (error) {
      attempts.push({ base, outcome: errorCode(error), at: Date.now() });
    } finally {
      options.inFlight?.set(base, (options.inFlight.get(base) ?? 1) - 1);
    }
    await pause(options.retryPauseMs ?? 100);
  }
  return { key: options.key, status: undefined, body: '', attempts };
}

/** undici reports connection failures as `TypeError: fetch failed` with the socket's error as the cause. */
function errorCode(error: unknown): string {
  for (let current: unknown = error; current; current = (current as { cause?: unknown }).cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if ((current as { name?: unknown }).name === 'TimeoutError') return 'timeout';
  }
  return error instanceof Error ? error.message : String(error);
}

/** Runs `work` over `items` with at most `concurrency` at once; results in the items' order. */
export async function pool<T, R>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!, index);
      }
    }),
  );
  return results;
}
