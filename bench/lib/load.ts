/**
 * A closed-loop HTTP load generator on loopback (undici keep-alive pool): `connections` requests in flight at
 * all times for `durationMs`, latencies in an HDR histogram. Written here rather than taken from autocannon or
 * wrk so that every benchmark (and its baseline) is driven by the same code in the same process layout, with
 * no extra install; it needs ~40 lines on top of undici.
 */
import { createHistogram } from 'node:perf_hooks';
import { Pool } from 'undici';

export interface LoadResult {
  requests: number;
  errors: number;
  statuses: Record<number, number>;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
}

export interface LoadOptions {
  /** Several origins: the connections are spread over them evenly, as a load balancer would. */
  origin: string | readonly string[];
  connections: number;
  durationMs: number;
  /** Builds each request; defaults to GET /. */
  request?: () => { method: 'GET' | 'POST'; path: string; headers?: Record<string, string>; body?: string | Buffer };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const origins = typeof options.origin === 'string' ? [options.origin] : options.origin;
  const pools = origins.map((origin, index) => new Pool(origin, { connections: Math.ceil((options.connections - index) / origins.length), pipelining: 1 }));
  const histogram = createHistogram();
  const statuses: Record<number, number> = {};
  let errors = 0;
  let requests = 0;
  const started = performance.now();
  const until = started + options.durationMs;
  const make = options.request ?? (() => ({ method: 'GET' as const, path: '/' }));
  const worker = async (pool: Pool) => {
    while (performance.now() < until) {
      const t0 = process.hrtime.bigint();
      try {
        const { statusCode, body } = await pool.request(make());
        await body.dump();
        statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      } catch {
        errors++;
      }
      histogram.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
      requests++;
    }
  };
  await Promise.all(Array.from({ length: options.connections }, (_, index) => worker(pools[index % pools.length]!)));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(pools.map((pool) => pool.close()));
  return {
    requests,
    errors,
    statuses,
    seconds,
    rps: requests / seconds,
    p50ms: histogram.percentile(50) / 1e6,
    p99ms: histogram.percentile(99) / 1e6,
    maxms: histogram.max / 1e6,
  };
}

/** A markdown table of results, one row per labelled run. */
export function table(rows: { label: string; result: LoadResult; note?: string }[]): string {
  const lines = ['| target | req/s | p50 ms | p99 ms | max ms | errors | non-2xx |', '|---|---:|---:|---:|---:|---:|---:|'];
  for (const { label, result } of rows) {
    const non2xx = Object.entries(result.statuses).filter(([status]) => !status.startsWith('2')).reduce((sum, [, n]) => sum + n, 0);
    lines.push(`| ${label} | ${Math.round(result.rps)} | ${result.p50ms.toFixed(2)} | ${result.p99ms.toFixed(2)} | ${result.maxms.toFixed(1)} | ${result.errors} | ${non2xx} |`);
  }
  return lines.join('\n');
}
