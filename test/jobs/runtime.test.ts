import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import type { Db } from '../../src/db/database.ts';
import { type JobContext, deadLetterName, defineJob } from '../../src/jobs/define-job.ts';
import { JOBS_SCHEMA, type JobRuntime, startJobRuntime } from '../../src/jobs/runtime.ts';
import { runWithContext } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { captureLogs } from '../support/logs.ts';

interface Deps {
  db: Db;
}

const SECRET = 'sn-oauth-secret-42x';
const fast = { retryDelaySeconds: 0, retryBackoff: false, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } as const;

// A job with a visible side effect: one integration_events row per run.
const recordJob = defineJob({
  name: 'test.record',
  schema: z.object({ marker: z.string().min(1) }),
  policy: { ...fast, retryLimit: 0 },
  handler: async (payload, { deps }: JobContext<Deps>) => {
    await deps.db
      .insertInto('integration_events')
      .values({ source: 'test', direction: 'inbound', event_type: payload.marker, status: 'processed' })
      .execute();
    return { recorded: payload.marker };
  },
});

let failingAttempts = 0;
const failingJob = defineJob({
  name: 'test.failing',
  schema: z.object({ n: z.number() }),
  policy: { ...fast, retryLimit: 1 },
  handler: () => {
    failingAttempts++;
    return Promise.reject(Object.assign(new Error(`upstream refused client secret ${SECRET}`), { code: 'upstream_unavailable' }));
  },
});

class Rollback extends Error {}

describe('job runtime', () => {
  let tdb: TestDatabase;
  let runtime: JobRuntime;
  const logs = captureLogs({ secrets: [SECRET] });

  beforeAll(async () => {
    tdb = await createTestDatabase();
    runtime = await startJobRuntime({
      connectionString: tdb.url,
      definitions: [recordJob, failingJob],
      logger: logs.logger,
      metrics: createMetrics({ defaultMetrics: false }),
      supervise: true,
      secrets: [SECRET],
    });
  });
  afterAll(async () => {
    await runtime.stop(2000);
    await tdb.drop();
  });

  const runsOf = async (marker: string) =>
    Number((await tdb.db.selectFrom('integration_events').select((eb) => eb.fn.countAll().as('n')).where('event_type', '=', marker).executeTakeFirstOrThrow()).n);
  const jobsWith = (marker: string) => runtime.boss.findJobs(recordJob.name, { data: { payload: { marker } } });

  it('creates each queue with its dead-letter queue and the policy from its definition, in its own schema', async () => {
    const queues = await runtime.boss.getQueues([recordJob.name, deadLetterName(recordJob.name), failingJob.name]);
    expect(queues).toHaveLength(3);
    expect(queues.find((queue) => queue.name === failingJob.name)).toMatchObject({
      deadLetter: deadLetterName(failingJob.name),
      retryLimit: 1,
      retryDelay: 0,
      retryBackoff: false,
      notify: true,
    });
    const { rows } = await sql<{ n: string }>`select count(*) as n from information_schema.tables where table_schema = ${JOBS_SCHEMA} and table_name = 'job'`.execute(tdb.db);
    expect(Number(rows[0]?.n)).toBe(1);
  });

  it('brings an existing queue in line with a changed definition (backoff and its maximum)', async () => {
    const changed = { ...failingJob, policy: { ...failingJob.policy, retryLimit: 4, retryDelaySeconds: 3, retryBackoff: true, retryDelayMaxSeconds: 120 } };
    const second = await startJobRuntime({ connectionString: tdb.url, definitions: [changed], logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false });
    try {
      expect(await second.boss.getQueue(failingJob.name)).toMatchObject({ retryLimit: 4, retryDelay: 3, retryBackoff: true, retryDelayMax: 120 });
    } finally {
      await second.stop(1000);
      // Restore the original settings for the tests below.
      const restore = await startJobRuntime({ connectionString: tdb.url, definitions: [failingJob], logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false });
      await restore.stop(1000);
    }
  });

  it('runs a job enqueued in a committed transaction exactly once, and never one from a rolled-back transaction', async () => {
    await expect(
      tdb.db.transaction().execute(async (trx) => {
        await runtime.enqueue(recordJob, { marker: 'rolled-back' }, { db: trx });
        throw new Rollback('domain write failed');
      }),
    ).rejects.toBeInstanceOf(Rollback);
    await tdb.db.transaction().execute(async (trx) => {
      await trx.insertInto('integration_configs').values({ type: 'test', name: 'outbox' }).execute();
      await runtime.enqueue(recordJob, { marker: 'committed' }, { db: trx });
    });
    expect(await jobsWith('rolled-back')).toEqual([]);

    await runtime.work<Deps>({ db: tdb.db });
    await vi.waitFor(async () => expect((await jobsWith('committed'))[0]?.state).toBe('completed'), { timeout: 15_000, interval: 100 });

    expect(await runsOf('committed')).toBe(1);
    expect(await runsOf('rolled-back')).toBe(0);
    const [job] = await jobsWith('committed');
    expect(job?.output).toEqual({ recorded: 'committed' });
  });

  it('refuses to enqueue a payload that fails the schema (a bug, so it throws)', async () => {
    await expect(runtime.enqueue(recordJob, { marker: '' })).rejects.toThrow(/marker/);
  });

  it('retries a failing job, then dead-letters it with a scrubbed reason', async () => {
    await runtime.enqueue(failingJob, { n: 7 });
    const dead = () => runtime.boss.findJobs(deadLetterName(failingJob.name), { data: { payload: { n: 7 } } });
    await vi.waitFor(async () => expect(await dead()).toHaveLength(1), { timeout: 20_000, interval: 100 });
    expect(failingAttempts).toBe(2);
    const [original] = await runtime.boss.findJobs(failingJob.name, { data: { payload: { n: 7 } } });
    expect(original?.state).toBe('failed');
    expect(original?.output).toEqual({ code: 'upstream_unavailable', message: 'upstream refused client secret [redacted]' });
    expect(logs.text()).not.toContain(SECRET);
  });

  it('dead-letters a stored payload that no longer passes its schema without running the handler', async () => {
    await runtime.boss.send(recordJob.name, { payload: { marker: 42 }, meta: { enqueuedAt: new Date().toISOString() } });
    const dead = () => runtime.boss.findJobs(deadLetterName(recordJob.name), { data: { payload: { marker: 42 } } });
    await vi.waitFor(async () => expect(await dead()).toHaveLength(1), { timeout: 15_000, interval: 100 });
    expect(logs.lines().some((line) => line.msg === 'job payload failed its schema; dead-lettered')).toBe(true);
  });

  it('carries the enqueuer\'s correlation id into the job\'s log lines', async () => {
    await runWithContext({ correlationId: 'corr-777', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, () =>
      runtime.enqueue(failingJob, { n: 8 }),
    );
    await vi.waitFor(() => expect(logs.lines().some((line) => line.msg === 'job failed' && line.correlationId === 'corr-777')).toBe(true), {
      timeout: 15_000,
      interval: 100,
    });
    const line = logs.lines().find((candidate) => candidate.msg === 'job failed' && candidate.correlationId === 'corr-777');
    expect(line).toMatchObject({ job: 'test.failing', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' });
  });
});
