/**
 * pg-boss on our database: queues created from the job definitions (each with its dead-letter queue), the
 * typed `enqueue` (optionally inside a caller's kysely transaction, so a job exists iff the write committed),
 * workers for the worker role, schedules, and queue depth for /metrics.
 */
import { type Job, PgBoss, fromKysely } from 'pg-boss';
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import { type Logger, currentContext, runWithContext, createScrubber } from '../logger.ts';
import { type Metrics, registerCollectedGauge } from '../metrics.ts';
import { type JobDefinition, deadLetterName, resolvePolicy } from './define-job.ts';

/** What travels in pg-boss's `data`: the validated payload plus the context of whoever enqueued it. */
interface Envelope {
  payload: unknown;
  meta: { correlationId?: string; traceparent?: string; enqueuedAt: string };
}

export interface EnqueueOptions {
  /** A kysely transaction (or instance): the job is inserted through it and commits or rolls back with it. */
  db?: Kysely<any>;
  startAfter?: Date | number;
  singletonKey?: string;
  /** With `singletonKey`: at most one job per key in each window of this many seconds (throttling). */
  singletonSeconds?: number;
  /** With `singletonSeconds`: a job sent while the window's slot is taken goes into the next slot (debouncing). */
  singletonNextSlot?: boolean;
  /** A stable job id (uuid) for idempotent enqueueing. */
  id?: string;
}

export type AnyJob = JobDefinition<any, any>;

export interface JobRuntime {
  boss: PgBoss;
  /** Validates the payload (a bad one throws: it is a bug) and enqueues it. Returns the job id. */
  enqueue<S extends z.ZodType>(job: JobDefinition<S, any>, payload: z.input<S>, options?: EnqueueOptions): Promise<string | null>;
  /** Starts workers and schedules for every definition (worker role), or for the named queues only. */
  work<Deps>(deps: Deps, options?: { only?: readonly string[] }): Promise<void>;
  /** The queues this process works (for checks that every job has a worker). */
  working(): readonly string[];
  /** Stops fetching, waits up to `timeoutMs` for running jobs, then closes pg-boss's pool. */
  stop(timeoutMs: number): Promise<void>;
}

export interface JobRuntimeOptions {
  connectionString: string;
  definitions: readonly AnyJob[];
  logger: Logger;
  metrics: Metrics;
  /** Run maintenance, monitoring and cron (true for the worker role). */
  supervise: boolean;
  schema?: string;
  secrets?: readonly string[];
}

export const JOBS_SCHEMA = 'projectx_jobs';

export async function startJobRuntime(options: JobRuntimeOptions): Promise<JobRuntime> {
  const { logger, metrics, definitions } = options;
  const scrub = createScrubber(options.secrets ?? []);
  const byName = new Map(definitions.map((definition) => [definition.name, definition]));
  const boss = new PgBoss({
    connectionString: options.connectionString,
    schema: options.schema ?? JOBS_SCHEMA,
    application_name: 'projectx-jobs',
    max: 10,
    useListenNotify: true,
    supervise: options.supervise,
    schedule: options.supervise,
    migrate: true,
    // Queue counts (queue_depth) are refreshed by the monitor; every 15 s keeps /metrics fresh and cheap.
    monitorIntervalSeconds: 15,
    // The monitor runs inside the supervise pass, so this sets how often it really runs (pg-boss's default is
    // 60 s): queue depths, expired jobs and jobs whose worker died (heartbeat) are looked at every 15 s.
    superviseIntervalSeconds: 15,
  });
  boss.on('error', (error) => logger.error({ err: error }, 'job queue error'));
  await boss.start();
  try {
    await ensureQueues(boss, definitions);
  } catch (error) {
    await boss.stop({ graceful: false, close: true });
    throw error;
  }

  registerCollectedGauge(
    metrics,
    { name: 'queue_depth', help: 'Jobs per queue and state, as of the last monitor pass', labelNames: ['queue', 'state'] as const },
    async () =>
      (await boss.getQueues()).flatMap((queue) =>
        (
          [
            ['ready', queue.readyCount],
            ['deferred', queue.deferredCount],
            ['active', queue.activeCount],
            ['failed', queue.failedCount],
          ] as const
        ).map(([state, value]) => ({ labels: { queue: queue.name, state }, value: Number(value) || 0 })),
      ),
  );

  const runOne = async <Deps>(job: Job<Envelope>, deps: Deps) => {
    const definition = byName.get(job.name);
    const meta = job.data?.meta;
    const context = { correlationId: meta?.correlationId ?? job.id, traceparent: meta?.traceparent, job: job.name, jobId: job.id };
    return runWithContext(dropUndefined(context), async () => {
      const jobLogger = logger.child({ retryCount: job.retryCount });
      const parsed = definition?.schema.safeParse(job.data?.payload);
      if (!definition || !parsed?.success) {
        // Retrying cannot make an invalid payload valid: dead-letter it at once, where an operator can see it.
        jobLogger.error({ issues: parsed?.error?.issues }, 'job payload failed its schema; dead-lettered');
        metrics.jobRuns.inc({ queue: job.name, outcome: 'invalid' });
        return { id: job.id, status: 'deadletter' as const, output: { code: 'invalid_payload', issues: parsed?.error?.issues ?? [] } };
      }
      const stopTimer = metrics.jobDuration.startTimer({ queue: job.name });
      try {
        const result = await definition.handler(parsed.data, {
          deps,
          logger: jobLogger,
          signal: job.signal,
          job: { id: job.id, name: job.name, retryCount: job.retryCount },
        });
        metrics.jobRuns.inc({ queue: job.name, outcome: 'completed' });
        return { id: job.id, status: 'completed' as const, output: isPlainObject(result) ? result : {} };
      } catch (error) {
        const failure = describeError(error, scrub);
        jobLogger.warn({ err: error, attempt: job.retryCount + 1 }, 'job failed');
        metrics.jobRuns.inc({ queue: job.name, outcome: 'failed' });
        return { id: job.id, status: 'failed' as const, output: failure };
      } finally {
        stopTimer();
      }
    });
  };

  let stopping: Promise<void> | undefined;
  const worked = new Set<string>();
  return {
    boss,
    working: () => [...worked],
    async enqueue(job, payload, enqueueOptions = {}) {
      return boss.send(job.name, envelopeOf(job, payload), {
        ...(enqueueOptions.db ? { db: fromKysely(enqueueOptions.db) } : {}),
        ...(enqueueOptions.startAfter !== undefined ? { startAfter: enqueueOptions.startAfter } : {}),
        ...(enqueueOptions.singletonKey !== undefined ? { singletonKey: enqueueOptions.singletonKey } : {}),
        ...(enqueueOptions.singletonSeconds !== undefined ? { singletonSeconds: enqueueOptions.singletonSeconds } : {}),
        ...(enqueueOptions.singletonNextSlot !== undefined ? { singletonNextSlot: enqueueOptions.singletonNextSlot } : {}),
        ...(enqueueOptions.id !== undefined ? { id: enqueueOptions.id } : {}),
      });
    },
    async work(deps, workOptions = {}) {
      for (const definition of definitions) {
        if (workOptions.only && !workOptions.only.includes(definition.name)) continue;
        // A queue is worked once per process, whoever asks again (a module and the shared set).
        if (worked.has(definition.name)) continue;
        worked.add(definition.name);
        const policy = resolvePolicy(definition);
        await boss.work<Envelope>(
          definition.name,
          {
            batchSize: policy.batchSize,
            localConcurrency: policy.localConcurrency,
            pollingIntervalSeconds: policy.pollingIntervalSeconds,
            notifyPollingIntervalSeconds: policy.notifyPollingIntervalSeconds,
            // A full batch means more is waiting: fetch again at once. Without it a backlog (after a restart,
            // an outage, a burst) drained at one batch per poll interval, 10 jobs every 5 s, once new jobs
            // stopped arriving to NOTIFY the worker.
            burstWhenBatchFull: true,
            perJobResults: true,
          },
          (jobs) => Promise.all(jobs.map((job) => runOne(job, deps))),
        );
        if (definition.schedule) {
          const payload = definition.schema.parse(definition.schedule.payload);
          await boss.schedule(definition.name, definition.schedule.cron, { payload, meta: { enqueuedAt: 'schedule' } }, { tz: 'UTC' });
        }
      }
    },
    stop(timeoutMs) {
      stopping ??= boss.stop({ graceful: true, close: true, timeout: Math.max(1000, timeoutMs) });
      return stopping;
    },
  };
}

/** Validates the payload (a bad one throws: it is a bug) and wraps it with the enqueuer's context. */
function envelopeOf(job: AnyJob, payload: unknown): Envelope {
  const checked: unknown = job.schema.parse(payload);
  const { correlationId, traceparent, requestId } = currentContext();
  return { payload: checked, meta: dropUndefined({ correlationId: correlationId ?? requestId, traceparent, enqueuedAt: new Date().toISOString() }) };
}

/** Creates every queue and its dead-letter queue; settings of existing queues are brought in line with the code. */
async function ensureQueues(boss: PgBoss, definitions: readonly AnyJob[]): Promise<void> {
  for (const definition of definitions) {
    const policy = resolvePolicy(definition);
    const dead = deadLetterName(definition.name);
    await boss.createQueue(dead, { retentionSeconds: 14 * 24 * 3600, deleteAfterSeconds: 30 * 24 * 3600 });
    const settings = {
      retryLimit: policy.retryLimit,
      retryDelay: policy.retryDelaySeconds,
      retryBackoff: policy.retryBackoff,
      // pg-boss accepts a maximum only together with backoff.
      ...(policy.retryBackoff ? { retryDelayMax: policy.retryDelayMaxSeconds } : {}),
      expireInSeconds: policy.expireInSeconds,
      heartbeatSeconds: policy.heartbeatSeconds,
      deadLetter: dead,
      notify: true,
    };
    await boss.createQueue(definition.name, { ...settings, policy: policy.queuePolicy });
    // createQueue leaves an existing queue as it was; bring its settings in line with the code.
    await boss.updateQueue(definition.name, { ...settings, retryDelayMax: policy.retryBackoff ? policy.retryDelayMaxSeconds : null });
  }
}

function describeError(error: unknown, scrub: (text: string) => string): { code: string; message: string } {
  const code = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : 'job_failed';
  const message = error instanceof Error ? error.message : String(error);
  return { code, message: scrub(message).slice(0, 1000) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function dropUndefined<T extends Record<string, unknown>>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, inner]) => inner !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}
