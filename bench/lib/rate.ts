/**
 * An OPEN-LOOP HTTP load generator (fixed arrival rate, in the manner of wrk2): request i is due at
 * `start + i / rate` and is sent then whether or not earlier ones have been answered, over an undici keep-alive
 * pool with enough connections that the client is never the queue. Latency is measured from the request's
 * *scheduled* send time, not from when it actually left, so time spent waiting behind a slow server (or a
 * late client) is counted.
 *
 * Why not the closed loop of `load.ts` for latency targets: a closed loop with N connections sends the next
 * request only when one comes back, so when the server stalls the client stops sending too ("coordinated
 * omission"). Its p99 then describes the few requests that were in flight, not the ones real callers (Slack
 * sends commands when people type them, not when we are ready) would have queued behind the stall, and its
 * throughput is whatever the server could do, never "can it keep up with X/s". Here the arrival rate is the
 * input and queueing shows up as latency.
 */
import { createHistogram } from 'node:perf_hooks';
import { Pool } from 'undici';

export interface RateRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface RateOptions {
  origin: string;
  ratePerSecond: number;
  durationMs: number;
  /** Builds request number `i` (0-based, in send order). */
  request: (i: number) => RateRequest;
  /** Pool size; default 128 (a request finds a free connection unless ~128 are already waiting). */
  connections?: number;
  /** After the last send, how long to wait for answers before aborting the rest (they count as errors). */
  drainTimeoutMs?: number;
  /** Answers slower than this are counted in `slow` (default 3000 ms: Slack's deadline for an ack). */
  slowMs?: number;
  /**
   * Requests already waiting beyond this many are not sent but counted as errors (`shed`): a server that far
   * behind has failed the step anyway, and an unbounded client-side queue would only slow the client down.
   * Default: 32 per connection.
   */
  maxInFlight?: number;
  /** Called once per request with its status (undefined: a transport error or abort). */
  onResponse?: (i: number, status: number | undefined) => void;
}

export interface RateResult {
  /** Requested arrival rate. */
  rate: number;
  /** Requests sent (scheduled minus shed). */
  sent: number;
  /** Answers with a 2xx status. */
  ok: number;
  /** Transport errors, timeouts, aborted stragglers and shed requests. */
  errors: number;
  /** Requests not sent because `maxInFlight` were already waiting (counted in `errors` too). */
  shed: number;
  statuses: Record<number, number>;
  non2xx: number;
  /** Answers (any status) slower than `slowMs`. */
  slow: number;
  /** From the first scheduled send to the last answer. */
  seconds: number;
  /** 2xx answers per second over `seconds`. */
  throughput: number;
  p50ms: number;
  p90ms: number;
  p99ms: number;
  maxms: number;
  /** How far behind its schedule the client itself got sending (a sanity check on the load generator). */
  sendLagMaxMs: number;
}

export async function runRate(options: RateOptions): Promise<RateResult> {
  const { ratePerSecond: rate, durationMs } = options;
  const connections = options.connections ?? 128;
  const maxInFlight = options.maxInFlight ?? connections * 32;
  const pool = new Pool(options.origin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });
  const abort = new AbortController();
  const histogram = createHistogram();
  const statuses: Record<number, number> = {};
  const slowMs = options.slowMs ?? 3000;
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  const interval = 1000 / rate;
  let sent = 0;
  let ok = 0;
  let errors = 0;
  let slow = 0;
  let shed = 0;
  let sendLagMaxMs = 0;
  let lastDone = 0;
  const inFlight = new Set<Promise<void>>();

  const fire = (i: number, scheduled: number) => {
    if (inFlight.size >= maxInFlight) {
      shed++;
      errors++;
      options.onResponse?.(i, undefined);
      return;
    }
    const spec = options.request(i);
    const done = (status: number | undefined) => {
      const end = performance.now();
      lastDone = Math.max(lastDone, end);
      const ms = end - scheduled;
      histogram.record(Math.max(1, Math.round(ms * 1e6)));
      if (ms > slowMs) slow++;
      if (status === undefined) errors++;
      else {
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status >= 200 && status < 300) ok++;
      }
      options.onResponse?.(i, status);
    };
    const request = pool
      .request({ ...spec, signal: abort.signal })
      .then(async ({ statusCode, body }) => {
        await body.dump();
        done(statusCode);
      })
      .catch(() => done(undefined))
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  };

  const start = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - start) / interval) + 1);
      while (sent < due) {
        const scheduled = start + sent * interval;
        sendLagMaxMs = Math.max(sendLagMaxMs, now - scheduled);
        fire(sent, scheduled);
        sent++;
      }
      if (sent >= total) resolve();
      // Timers fire no more often than every ~1 ms; at high rates each tick sends the batch that fell due.
      else setTimeout(tick, Math.max(0, start + sent * interval - performance.now()));
    };
    tick();
  });

  const drain = Promise.all(inFlight).then(() => true);
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([drain, new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), options.drainTimeoutMs ?? 10_000)))]);
  clearTimeout(timer);
  if (!drained) {
    abort.abort();
    await drain;
  }
  await pool.close();
  const seconds = (Math.max(lastDone, start + durationMs) - start) / 1000;
  const non2xx = Object.entries(statuses)
    .filter(([status]) => !status.startsWith('2'))
    .reduce((sum, [, n]) => sum + n, 0);
  return {
    rate,
    sent: sent - shed,
    ok,
    errors,
    shed,
    statuses,
    non2xx,
    slow,
    seconds,
    throughput: ok / seconds,
    p50ms: histogram.percentile(50) / 1e6,
    p90ms: histogram.percentile(90) / 1e6,
    p99ms: histogram.percentile(99) / 1e6,
    maxms: histogram.max / 1e6,
    sendLagMaxMs,
  };
}

/** A markdown table of open-loop results, one row per step; `extra` adds columns (headers, then per-row cells). */
export function rateTable(rows: { label: string; result: RateResult; note?: string; extra?: string[] }[], extraHeaders: string[] = []): string {
  const lines = [
    `| step | target/s | achieved 2xx/s | p50 ms | p90 ms | p99 ms | max ms | errors | non-2xx | > 3 s | client lag ms | ${extraHeaders.map((h) => `${h} | `).join('')}note |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${extraHeaders.map(() => '---:|').join('')}---|`,
  ];
  for (const { label, result: r, note, extra } of rows) {
    const cells = extraHeaders.map((_, i) => `${extra?.[i] ?? ''} | `).join('');
    lines.push(
      `| ${label} | ${r.rate} | ${Math.round(r.throughput)} | ${r.p50ms.toFixed(2)} | ${r.p90ms.toFixed(2)} | ${r.p99ms.toFixed(2)} | ${r.maxms.toFixed(1)} | ${r.errors} | ${r.non2xx} | ${r.slow} | ${r.sendLagMaxMs.toFixed(1)} | ${cells}${note ?? ''} |`,
    );
  }
  return lines.join('\n');
}
