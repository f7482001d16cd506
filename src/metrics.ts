/**
 * Prometheus metrics. One registry per service instance (not prom-client's global one), so that several
 * instances in one test process never share counters. Modules receive `Metrics` and register their own
 * instruments on `metrics.registry`; the ones every role needs are created here.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  jobRuns: Counter<'queue' | 'outcome'>;
  jobDuration: Histogram<'queue'>;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration by route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    jobRuns: new Counter({
      name: 'job_runs_total',
      help: 'Job handler runs by queue and outcome (completed, failed)',
      labelNames: ['queue', 'outcome'],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'job_duration_seconds',
      help: 'Job handler duration by queue',
      labelNames: ['queue'],
      buckets: [0.005, 0.025, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers: [registry],
    }),
  };
}

/**
 * A read several collected gauges share: callers while one read is under way get its result. A scrape
 * collects every metric at once, so gauges built from one query cost one query per scrape.
 */
export function sharedRead<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => (pending ??= read().finally(() => (pending = undefined)));
}

/**
 * Registers a gauge whose value is read at scrape time (e.g. queue depth from the database). A failed read
 * leaves the gauge empty for that scrape rather than failing `/metrics`.
 */
export function registerCollectedGauge<L extends string>(
  metrics: Metrics,
  definition: { name: string; help: string; labelNames: readonly L[] },
  read: () => Promise<{ labels: Record<L, string>; value: number }[]>,
): Gauge<L> {
  return new Gauge<L>({
    name: definition.name,
    help: definition.help,
    labelNames: definition.labelNames,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      try {
        for (const sample of await read()) this.set(sample.labels as Partial<Record<L, string>>, sample.value);
      } catch {
        // The scrape must still succeed; readiness reports the database problem.
      }
    },
  });
}
