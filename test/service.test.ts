/**
 * The composed service in-process, against a real database: roles, readiness, metrics, graceful stop.
 */
import { sql } from 'kysely';
import { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { migrations as allMigrations } from '../src/db/migrations/index.ts';
import { defineJob } from '../src/jobs/define-job.ts';
import { JOBS_SCHEMA } from '../src/jobs/runtime.ts';
import { loadConfig } from '../src/config.ts';
import { createDatabase } from '../src/db/database.ts';
import { createApp } from '../src/http/app.ts';
import { pruneInboundEvents } from '../src/jobs/maintenance/prune-inbound-events.ts';
import { type Role, type Service, startService } from '../src/main.ts';
import { coreReadiness as readinessChecks } from '../src/modules.ts';
import { createMetrics } from '../src/metrics.ts';
import { type TestDatabase, createTestDatabase } from './support/database.ts';
import { captureLogs } from './support/logs.ts';

function configFor(url: string) {
  const result = loadConfig({ DATABASE_URL: url, HOST: '127.0.0.1', PORT: '0', SHUTDOWN_TIMEOUT_MS: '5000' });
  if (!result.ok) throw new Error(result.problems.join('; '));
  return result.config;
}

describe('service', () => {
  let tdb: TestDatabase;
  const started: Service[] = [];
  const start = async (role: Role) => {
    const logs = captureLogs({ level: 'info' });
    const service = await startService({ config: configFor(tdb.url), role, logger: logs.logger });
    started.push(service);
    return { service, logs };
  };

  beforeAll(async () => {
    tdb = await createTestDatabase();
  });
  afterAll(async () => {
    for (const service of started) await service.stop();
    await tdb.drop();
  });

  it('is ready when the database and the queue answer, and logs where it listens and what is configured', async () => {
    const { service, logs } = await start('all');
    const res = await fetch(`${service.http.url}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { database: 'ok', queue: 'ok' } });
    const messages = logs.lines().map((line) => String(line.msg));
    expect(messages).toContain(`ProjectX Integrations (all) listening on ${service.http.url}`);
    expect(messages).toContain('Slack: not configured (set SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)');
    expect(await service.stop()).toBe(true);
    started.pop();
  });

  it('answers /readyz 503 when the database is unreachable', async () => {
    const { service } = await start('web');
    const unreachable = createDatabase({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    try {
      const app = createApp({
        logger: captureLogs().logger,
        metrics: createMetrics({ defaultMetrics: false }),
        bodyLimitBytes: 1024,
        readiness: readinessChecks(unreachable, service.jobs),
      });
      const res = await app.request('/readyz');
      expect(res.status).toBe(503);
      const body = (await res.json()) as { error: { code: string; message: string }; checks: Record<string, string> };
      expect(body.error.code).toBe('not_ready');
      expect(body.error.message).toMatch(/^database unreachable: .*ECONNREFUSED/);
      expect(body.checks.queue).toBe('ok');
    } finally {
      await unreachable.destroy();
    }
  });

  it('serves process metrics and queue depth per queue', async () => {
    const { service } = await start('web');
    await service.jobs.enqueue(pruneInboundEvents, { olderThanDays: 30 }, { startAfter: 3600 });
    await service.jobs.enqueue(pruneInboundEvents, { olderThanDays: 40 });
    await service.jobs.boss.supervise(pruneInboundEvents.name); // refresh the cached counts now, not in 15 s
    const text = await (await fetch(`${service.http.url}/metrics`)).text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).toContain(`queue_depth{queue="${pruneInboundEvents.name}",state="ready"} 1`);
    expect(text).toContain(`queue_depth{queue="${pruneInboundEvents.name}",state="deferred"} 1`);
    expect(text).toContain(`queue_depth{queue="${pruneInboundEvents.name}.dead",state="ready"} 0`);
    // Failed inbound deliveries are visible to operators.
    await tdb.db.insertInto('inbound_events').values({ source: 'slack', delivery_id: 'metrics-failed-1', kind: 'event_callback', body: Buffer.from('{}'), status: 'failed' }).execute();
    const after = await (await fetch(`${service.http.url}/metrics`)).text();
    expect(after).toContain('inbound_events_unsettled{source="slack",status="failed"} 1');
    await tdb.db.deleteFrom('inbound_events').where('delivery_id', '=', 'metrics-failed-1').execute();
    await service.jobs.boss.deleteAllJobs(pruneInboundEvents.name);
  });

  it('on stop, finishes the in-flight request and the running job before closing the pool', async () => {
    let releaseRequest: () => void = () => {};
    let requestArrived: () => void = () => {};
    const arrived = new Promise<void>((resolve) => (requestArrived = resolve));
    let jobStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => (jobStarted = resolve));
    let releaseJob: () => void = () => {};
    const slowJob = defineJob({
      name: 'test.slow',
      schema: z.object({}),
      policy: { pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 },
      handler: async () => {
        jobStarted();
        await new Promise<void>((resolve) => (releaseJob = resolve));
        return { finished: true };
      },
    });
    const logs = captureLogs({ level: 'info' });
    const service = await startService({
      config: configFor(tdb.url),
      role: 'all',
      logger: logs.logger,
      jobs: [slowJob],
      mount: (app) => {
        app.get('/slow', async (c) => {
          requestArrived();
          await new Promise<void>((resolve) => (releaseRequest = resolve));
          return c.json({ finished: true });
        });
      },
    });
    const jobId = await service.jobs.enqueue(slowJob, {});
    const response = fetch(`${service.http.url}/slow`);
    await Promise.all([arrived, started]);

    const stopping = service.stop();
    releaseRequest();
    const res = await response;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ finished: true });
    releaseJob();
    expect(await stopping).toBe(true);

    const [job] = await runtimeJobs(tdb.url, slowJob.name, jobId!);
    expect(job).toMatchObject({ state: 'completed', output: { finished: true } });
  });

  it('starts twice at once on an empty database: migrations and queues are created once, both serve', async () => {
    const empty = await createTestDatabase({ empty: true });
    try {
      const [a, b] = await Promise.all(
        [1, 2].map(() => startService({ config: configFor(empty.url), role: 'all', logger: captureLogs().logger })),
      );
      started.push(a!, b!);
      const migrations = await empty.db.selectFrom('kysely_migration' as never).select(sql<string>`count(*)`.as('n')).executeTakeFirstOrThrow();
      expect(Number((migrations).n)).toBe(Object.keys(allMigrations).length);
      expect((await fetch(`${a!.http.url}/readyz`)).status).toBe(200);
      expect((await fetch(`${b!.http.url}/readyz`)).status).toBe(200);
      await a!.stop();
      await b!.stop();
    } finally {
      await empty.drop();
    }
  });

  it('splits into a web role that enqueues and a worker role that runs jobs, on one database', async () => {
    const { service: web } = await start('web');
    const { service: worker, logs: workerLogs } = await start('worker');
    await tdb.db
      .insertInto('inbound_events')
      .values([
        { source: 'slack', delivery_id: 'old', kind: 'event_callback', body: Buffer.from('{}'), status: 'processed', received_at: new Date(Date.now() - 40 * 86_400_000) },
        { source: 'slack', delivery_id: 'new', kind: 'event_callback', body: Buffer.from('{}'), status: 'processed' },
        { source: 'slack', delivery_id: 'old-failed', kind: 'event_callback', body: Buffer.from('{}'), status: 'failed', received_at: new Date(Date.now() - 40 * 86_400_000) },
      ])
      .execute();
    await web.jobs.enqueue(pruneInboundEvents, { olderThanDays: 30 });
    await vi.waitFor(() => expect(workerLogs.lines().some((line) => line.msg === 'pruned processed inbound events')).toBe(true), { timeout: 15_000, interval: 100 });
    const left = await tdb.db.selectFrom('inbound_events').select('delivery_id').orderBy('delivery_id').execute();
    expect(left.map((row) => row.delivery_id)).toEqual(['new', 'old-failed']);
    // The worker role serves only the operations endpoints.
    expect((await fetch(`${worker.http.url}/healthz`)).status).toBe(200);
  });
});

/** Reads a job with a separate pg-boss client (the service's own has been stopped). */
async function runtimeJobs(url: string, queue: string, id: string) {
  const boss = new PgBoss({ connectionString: url, schema: JOBS_SCHEMA, supervise: false, schedule: false, migrate: false, max: 1 });
  await boss.start();
  try {
    return await boss.findJobs(queue, { id });
  } finally {
    await boss.stop({ graceful: false, close: true });
  }
}
