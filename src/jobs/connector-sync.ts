/**
 * `connector.sync`: one sync run of one model of one connector instance (src/connectors/sdk/sync.ts does the
 * work). One active run per (instance, model): the queue's `singleton` policy with that pair as singletonKey;
 * others wait their turn in the queue.
 *
 * - A deferred run (a long Retry-After, an open circuit) re-enqueues itself for the time given, same run id,
 *   and completes: no worker sleeps.
 * - A failed attempt is retried by the queue with backoff (5 attempts in all, the runbook's figure), resuming
 *   from the checkpoint, same run; the last attempt records the run as failed. A worker that dies mid-run is
 *   noticed by its heartbeat and the run resumes the same way.
 * - Scheduled runs come from pg-boss schedules, one per (instance, model), installed by
 *   `installConnectorSchedules`; their jitter is applied by re-enqueueing once with a random delay.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { PgBoss } from 'pg-boss';
import { createBreaker } from '../connectors/sdk/breaker.ts';
import type { ConnectorDefinition, Schedule } from '../connectors/sdk/contract.ts';
import { listInstances } from '../connectors/sdk/instances.ts';
import { ConnectorJobError as SyncFailed, withConnectorInstance } from './connector-context.ts';
import { type RunSummary, runSync } from '../connectors/sdk/sync.ts';
import { reconcile } from '../connectors/sdk/reconcile.ts';
import type { Db } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import { defineJob } from './define-job.ts';
import { rerenderSubject } from './domain-events.ts';
import type { JobDeps } from './job-deps.ts';

export const SYNC_RETRY_LIMIT = 4;

const payload = z.object({
  connector: z.string().min(1),
  instanceId: z.uuid(),
  model: z.string().min(1),
  runId: z.uuid(),
  full: z.boolean().default(false),
  trigger: z.enum(['schedule', 'manual', 'webhook', 'retry', 'reconcile']),
  /** Scheduled runs: the schedule's jitter, and whether it was applied (each tick starts its own run). */
  jitterSeconds: z.number().int().min(0).optional(),
  jittered: z.boolean().optional(),
});
export type SyncJobPayload = z.input<typeof payload>;


export const connectorSync = defineJob({
  name: 'connector.sync',
  schema: payload,
  policy: { queuePolicy: 'singleton', retryLimit: SYNC_RETRY_LIMIT, retryDelaySeconds: 5, retryBackoff: true, retryDelayMaxSeconds: 300, expireInSeconds: 3600, batchSize: 1, localConcurrency: 2 },
  handler: async (job, { deps, logger, signal, job: meta }: { deps: JobDeps; logger: Logger; signal: AbortSignal; job: { retryCount: number } }) => {
    const connector = deps.connectors.find((candidate) => candidate.id === job.connector);
    if (!connector) throw new SyncFailed('unknown_connector', `no connector ${job.connector}`);
    const model = connector.models.find((candidate) => candidate.name === job.model);
    if (!model) throw new SyncFailed('unknown_model', `${connector.id} has no model ${job.model}`);
    if (job.trigger === 'schedule' && !job.jittered) {
      // A schedule's payload is the same at every tick: the tick becomes a run of its own, started within
      // the jitter, so that instances do not all call at the top of the minute.
      const delay = Math.floor(Math.random() * (job.jitterSeconds ?? model.schedule.jitterSeconds));
      await deps.jobs.enqueue(connectorSync, { ...job, runId: randomUUID(), jittered: true }, { singletonKey: syncKey(job.instanceId, job.model), startAfter: new Date(deps.clock.now().getTime() + delay * 1000) });
      return { jitteredSeconds: delay };
    }
    return withConnectorInstance(deps, logger, connector, job.instanceId, async ({ instance, client, runtime }) => {
      const breaker = createBreaker({ ...runtime, instance, connector, direction: 'read' });
      const summary: RunSummary = await runSync({
        runtime,
        connector,
        instance,
        client,
        breaker,
        request: { runId: job.runId, model: job.model, full: job.full, trigger: job.trigger },
        finalAttempt: meta.retryCount >= SYNC_RETRY_LIMIT,
        signal,
      });
      if (summary.status === 'deferred') {
        await deps.jobs.enqueue(connectorSync, { ...job, trigger: job.trigger, jittered: true }, { singletonKey: syncKey(job.instanceId, job.model), startAfter: new Date(summary.retryAt!) });
        logger.info({ runId: job.runId, retryAt: summary.retryAt, codes: summary.errorCodes }, 'sync deferred');
        return summary;
      }
      if (summary.status === 'retrying') throw new SyncFailed(summary.errorCodes[0] ?? 'sync_failed', `sync of ${connector.id} ${job.model} failed (${summary.errorCodes.join(', ')}); it resumes from its checkpoint`);
      logger.info({ runId: job.runId, status: summary.status, counts: summary.counts, ms: summary.durationMs }, 'sync finished');
      return summary;
    });
  },
});

/** The singleton key and schedule key of an (instance, model): pg-boss schedule keys allow letters, digits, `_-./` only. */
export const syncKey = (instanceId: string, model: string) => `${instanceId}/${model}`;

/** Enqueues a run now (`projectx sync`, a webhook); returns its run id. */
export async function enqueueSync(jobs: JobDeps['jobs'], input: { connector: string; instanceId: string; model: string; full: boolean; trigger: 'manual' | 'webhook' | 'reconcile'; runId?: string }): Promise<string> {
  const runId = input.runId ?? randomUUID();
  const id = await jobs.enqueue(connectorSync, { connector: input.connector, instanceId: input.instanceId, model: input.model, runId, full: input.full, trigger: input.trigger }, { singletonKey: syncKey(input.instanceId, input.model) });
  if (!id) throw new SyncFailed('not_enqueued', `the sync of ${input.connector} ${input.model} could not be queued`);
  return runId;
}

/** A schedule as pg-boss cron (whole minutes, UTC). */
export function scheduleCron(schedule: Schedule): string {
  if ('cron' in schedule) return schedule.cron;
  const minutes = Math.max(1, Math.round(schedule.everySeconds / 60));
  if (minutes < 60) return `*/${minutes} * * * *`;
  const hours = Math.max(1, Math.round(minutes / 60));
  return hours < 24 ? `0 */${hours} * * *` : '0 0 * * *';
}

/**
 * One pg-boss schedule per enabled (instance, model), keyed `instance/model`; schedules of instances that are
 * gone or disabled are removed. Run by the worker role at start. The instance's `schedules` column may
 * override a model's default (`[{ "model": "incident", "everySeconds": 120, "jitterSeconds": 10 }]`).
 */
export async function installConnectorSchedules(boss: Pick<PgBoss, 'schedule' | 'unschedule' | 'getSchedules'>, db: Db, logger: Logger, list: readonly ConnectorDefinition[]): Promise<number> {
  const wanted = new Map<string, { cron: string; data: SyncJobPayload }>();
  const noReconcile = new Set<string>();
  for (const connector of list) {
    for (const instance of await listInstances(db, connector.id)) {
      const overrides = z.array(z.object({ model: z.string(), everySeconds: z.number().int().min(60).optional(), cron: z.string().optional(), jitterSeconds: z.number().int().min(0).default(0) })).safeParse(instance.schedules);
      const settings = connector.scheduleDefaults ? connector.settings.safeParse(instance.settings) : undefined;
      const defaults = settings?.success ? (connector.scheduleDefaults?.(settings.data) ?? []) : [];
      for (const model of connector.models) {
        const override = overrides.success ? overrides.data.find((candidate) => candidate.model === model.name) : undefined;
        const fallback = defaults.find((candidate) => candidate.model === model.name);
        if (fallback?.reconcile === false) noReconcile.add(syncKey(instance.id, model.name));
        const schedule: Schedule = override?.cron
          ? { cron: override.cron, jitterSeconds: override.jitterSeconds }
          : override?.everySeconds
            ? { everySeconds: override.everySeconds, jitterSeconds: override.jitterSeconds }
            : fallback?.everySeconds
              ? { everySeconds: fallback.everySeconds, jitterSeconds: model.schedule.jitterSeconds }
              : model.schedule;
        // Each tick gets a run id of its own when it starts (see the handler).
        wanted.set(syncKey(instance.id, model.name), { cron: scheduleCron(schedule), data: { connector: connector.id, instanceId: instance.id, model: model.name, runId: randomUUID(), full: false, trigger: 'schedule', jitterSeconds: schedule.jitterSeconds } });
      }
    }
  }
  for (const existing of await boss.getSchedules(connectorSync.name)) {
    if (existing.key && !wanted.has(existing.key)) await boss.unschedule(connectorSync.name, existing.key);
  }
  for (const [key, { cron, data }] of wanted) {
    await boss.schedule(connectorSync.name, cron, { payload: data, meta: { enqueuedAt: 'schedule' } }, { tz: 'UTC', key, singletonKey: key });
  }
  // Nightly reconciliation of every model that can list its ids, at 02:17 UTC.
  const reconciles = new Map<string, ReconcileJobPayload>();
  for (const [key, { data }] of wanted) {
    const connector = list.find((candidate) => candidate.id === data.connector);
    if (connector?.models.find((model) => model.name === data.model)?.listIds && !noReconcile.has(key)) reconciles.set(key, { connector: data.connector, instanceId: data.instanceId, model: data.model });
  }
  for (const existing of await boss.getSchedules(connectorReconcile.name)) {
    if (existing.key && !reconciles.has(existing.key)) await boss.unschedule(connectorReconcile.name, existing.key);
  }
  for (const [key, data] of reconciles) {
    await boss.schedule(connectorReconcile.name, RECONCILE_CRON, { payload: data, meta: { enqueuedAt: 'schedule' } }, { tz: 'UTC', key, singletonKey: key });
  }
  logger.info({ schedules: wanted.size, reconciliations: reconciles.size }, 'connector sync schedules installed');
  return wanted.size;
}

export const RECONCILE_CRON = '17 2 * * *';

/** `runId`: given by `projectx reconcile` (to watch the run); a scheduled one makes its own. */
const reconcilePayload = z.object({ connector: z.string().min(1), instanceId: z.uuid(), model: z.string().min(1), runId: z.uuid().optional() });
export type ReconcileJobPayload = z.input<typeof reconcilePayload>;

/**
 * `connector.reconcile`: the nightly ids-only comparison of one model of one instance with the ledger
 * (src/connectors/sdk/reconcile.ts). Records the sync missed are brought in by a full sync it queues.
 */
export const connectorReconcile = defineJob({
  name: 'connector.reconcile',
  schema: reconcilePayload,
  policy: { queuePolicy: 'singleton', retryLimit: 3, retryDelaySeconds: 60, retryBackoff: true, expireInSeconds: 3600, batchSize: 1 },
  handler: async (job, { deps, logger, signal }: { deps: JobDeps; logger: Logger; signal: AbortSignal }) => {
    const connector = deps.connectors.find((candidate) => candidate.id === job.connector);
    const model = connector?.models.find((candidate) => candidate.name === job.model);
    if (!connector || !model) throw new SyncFailed('unknown_model', `no ${job.connector} model ${job.model}`);
    return withConnectorInstance(deps, logger, connector, job.instanceId, async ({ instance, client, runtime }) => {
      // Since the last reconciliation that finished (a week back at most): what the repair below looks at.
      const previous = await deps.db.selectFrom('integration_runs').select('started_at').where('config_id', '=', instance.id).where('model', '=', model.name).where('trigger', '=', 'reconcile').where('status', '=', 'succeeded').orderBy('started_at', 'desc').limit(1).executeTakeFirst();
      const weekAgo = new Date(deps.clock.now().getTime() - 7 * 86_400_000);
      const since = previous && previous.started_at > weekAgo ? previous.started_at : weekAgo;
      const summary = await reconcile({ runtime, connector, instance, client, model, runId: job.runId ?? randomUUID(), signal });
      if (summary.status === 'failed') throw new SyncFailed(summary.errorCodes[0] ?? 'reconcile_failed', `reconciliation of ${connector.id} ${model.name} failed (${summary.errorCodes.join(', ')})`);
      // Chat messages that may still offer buttons for what is closed or gone: re-rendered (idempotent).
      const stale = (await model.staleSubjects?.({ db: deps.db, instance, since })) ?? [];
      for (const subject of stale) await deps.jobs.enqueue(rerenderSubject, subject);
      if (stale.length > 0) logger.info({ subjects: stale.length }, 'chat messages of closed or gone records queued for re-rendering');
      const fullSync = summary.orphans > 0 ? await enqueueSync(deps.jobs, { connector: connector.id, instanceId: instance.id, model: model.name, full: true, trigger: 'reconcile' }) : undefined;
      logger.info({ ...summary, fullSync }, 'reconciliation finished');
      return { ...summary, ...(fullSync ? { fullSync } : {}) };
    });
  },
});
