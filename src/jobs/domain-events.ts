/**
 * The outbox side of domain events. Domain code emits an event inside its transaction (`createEventSink`
 * enqueues a `domain.event` job through that transaction); the job routes it to targets and records one
 * notification row per target, each delivered by a `notify.deliver` job through the surface's notifier.
 * A surface with no notifier configured leaves its notifications `undeliverable`, visible to operators. A chat
 * notification that fails for good (refused permanently, or out of retries) goes by email instead when email
 * is configured (src/connectors/email/fallback.ts): one more notification row, with its own delivery job.
 */
import { z } from 'zod';
import type { Insertable, Kysely, Selectable } from 'kysely';
import type { Message } from '../bot/message.ts';
import { renderEvent } from '../bot/render.ts';
import { emailFallback } from '../connectors/email/fallback.ts';
import { EMAIL_DELIVERY_POLICY } from '../connectors/email/notifier.ts';
import { enqueueSubscriptionDeliveries } from '../connectors/webhook-bridge/outbound/deliver.ts';
import type { Database, NotificationsTable, Surface } from '../db/schema.ts';
import { type DomainEvent, type EventSink, SUBJECT_KINDS } from '../domain/events.ts';
import { routeEvent } from '../domain/routing.ts';
import { recordPushes } from '../connectors/sdk/push.ts';
import { wakePushes } from './connector-push.ts';
import { type JobContext, defineJob } from './define-job.ts';
import type { JobDeps } from './job-deps.ts';
import type { Logger } from '../logger.ts';
import type { JobRuntime } from './runtime.ts';

const domainEventSchema = z.object({
  id: z.uuid(),
  type: z.string(),
  occurredAt: z.string(),
  subject: z.object({ kind: z.enum(SUBJECT_KINDS), id: z.string(), label: z.string() }),
  summary: z.string(),
  priority: z.number().optional(),
  controlIds: z.array(z.string()).optional(),
  assigneeId: z.string().optional(),
  approverIds: z.array(z.string()).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});

export const routeDomainEvent = defineJob({
  name: 'domain.event',
  schema: domainEventSchema,
  handler: async (payload, { deps }: JobContext<JobDeps>) => {
    const event = payload as DomainEvent;
    const targets = await routeEvent(deps.db, event);
    const message = renderEvent(event);
    let created = 0;
    for (const target of targets) {
      // Unique per (event, target): a retried job does not notify twice.
      const id = await deps.db.transaction().execute((trx) =>
        recordNotification(deps, trx, {
          event_id: event.id,
          event_type: event.type,
          surface: target.surface,
          target_kind: target.kind,
          target: target.target,
          message: JSON.stringify(message),
          subject_kind: event.subject.kind,
          subject_id: event.subject.id,
        }),
      );
      if (id) created++;
    }
    if (RERENDER_ON.has(event.type) && deps.rerenderers.length > 0) {
      await deps.jobs.enqueue(rerenderSubject, { kind: event.subject.kind, id: event.subject.id });
    }
    // Outbound subscriptions: a delivery row and its first attempt's job per subscriber, or none of either.
    const webhooks = await deps.db.transaction().execute((trx) => enqueueSubscriptionDeliveries(deps, trx, event));
    // Effects in ProjectX of events about connected systems' records (a review task for a new P1 incident).
    for (const connector of deps.connectors) await connector.onEvent?.(event, { domain: { db: deps.db, events: deps.events, clock: deps.clock }, jobs: deps.jobs });
    // Writes back to connected systems (an acknowledgement, a remediation task): recorded once, sent in order.
    const pushes = await recordPushes(deps.db, deps.connectors, event);
    for (const target of pushes) await wakePushes(deps.jobs, target);
    return { targets: targets.length, created, ...(webhooks > 0 ? { webhooks } : {}), ...(pushes.length > 0 ? { pushes: pushes.length } : {}) };
  },
});

/** Changes after which every posted message about the subject is re-rendered. */
const RERENDER_ON: ReadonlySet<string> = new Set(['task.decided', 'task.approval_recorded', 'task.state_changed', 'incident.acknowledged', 'incident.updated']);

export const rerenderSubject = defineJob({
  name: 'subject.rerender',
  schema: z.object({ kind: z.enum(SUBJECT_KINDS), id: z.string() }),
  policy: { retryDelaySeconds: 5, retryLimit: 8 },
  handler: async (subject, { deps }: JobContext<JobDeps>) => {
    let updated = 0;
    for (const rerenderer of deps.rerenderers) {
      const result = await rerenderer.rerender(subject);
      if (!result.ok) {
        if (result.refusal.retryAfterSeconds !== undefined) {
          await deps.jobs.enqueue(rerenderSubject, subject, { startAfter: result.refusal.retryAfterSeconds });
          return { deferredSeconds: result.refusal.retryAfterSeconds };
        }
        throw Object.assign(new Error(result.refusal.message), { code: result.refusal.code });
      }
      updated += result.value.updated;
    }
    return { updated };
  },
});

const deliverySchema = z.object({ notificationId: z.uuid() });
// Chat APIs rate-limit; back off from 10 s, and leave failures for good in the dead-letter queue.
const CHAT_DELIVERY_POLICY = { retryDelaySeconds: 10, retryLimit: 6 };

export const deliverNotification = defineJob({
  name: 'notify.deliver',
  schema: deliverySchema,
  policy: CHAT_DELIVERY_POLICY,
  handler: ({ notificationId }, context: JobContext<JobDeps>) => deliver(notificationId, context, CHAT_DELIVERY_POLICY.retryLimit),
});

/** Email notifications: the same delivery, retried as the runbook says for mail (every 10 minutes). */
export const deliverEmailNotification = defineJob({
  name: 'notify.deliver.email',
  schema: deliverySchema,
  policy: EMAIL_DELIVERY_POLICY,
  handler: ({ notificationId }, context: JobContext<JobDeps>) => deliver(notificationId, context, EMAIL_DELIVERY_POLICY.retryLimit),
});

const deliveryJob = (surface: Surface) => (surface === 'email' ? deliverEmailNotification : deliverNotification);

/** Records a notification (once per event and target) and its delivery job through `trx`; its id, or undefined when it existed. */
async function recordNotification(deps: Pick<JobDeps, 'jobs'>, trx: Kysely<Database>, values: Insertable<NotificationsTable>): Promise<string | undefined> {
  const inserted = await trx.insertInto('notifications').values(values).onConflict((oc) => oc.constraint('notifications_event_target_key').doNothing()).returning('id').executeTakeFirst();
  if (inserted) await deps.jobs.enqueue(deliveryJob(values.surface), { notificationId: inserted.id }, { db: trx });
  return inserted?.id;
}

async function deliver(notificationId: string, { deps, logger, job }: JobContext<JobDeps>, retryLimit: number) {
  const row = await deps.db.selectFrom('notifications').selectAll().where('id', '=', notificationId).executeTakeFirst();
  if (!row || row.status === 'sent') return { skipped: true };
  const notifier = deps.notifiers.find((candidate) => candidate.surface === row.surface);
  if (!notifier) {
    await deps.db.updateTable('notifications').set({ status: 'undeliverable', error: `no ${row.surface} notifier is configured` }).where('id', '=', row.id).execute();
    logger.warn({ surface: row.surface, target: row.target }, 'notification undeliverable: surface not configured');
    return { undeliverable: true };
  }
  const result = await notifier.deliver({
    notificationId: row.id,
    kind: row.target_kind,
    target: row.target,
    message: row.message as never,
    subject: row.subject_kind && row.subject_id ? { kind: row.subject_kind, id: row.subject_id } : undefined,
  });
  if (!result.ok) {
    const { refusal } = result;
    const error = `${refusal.code}: ${refusal.message}`;
    if (refusal.permanent) {
      await deps.db.transaction().execute(async (trx) => {
        await trx.updateTable('notifications').set({ status: 'undeliverable', error }).where('id', '=', row.id).execute();
        await fallBackToEmail(deps, trx, row, error, logger);
      });
      logger.warn({ surface: row.surface, code: refusal.code }, 'notification undeliverable');
      return { undeliverable: true };
    }
    if (refusal.retryAfterSeconds !== undefined) {
      // Rate limit or pacing: come back when told to, as a new job (this one completes; nothing sleeps).
      await deps.db.transaction().execute(async (trx) => {
        await trx.updateTable('notifications').set({ status: 'pending', error }).where('id', '=', row.id).execute();
        await deps.jobs.enqueue(deliveryJob(row.surface), { notificationId: row.id }, { db: trx, startAfter: refusal.retryAfterSeconds! });
      });
      return { deferredSeconds: refusal.retryAfterSeconds };
    }
    await deps.db.transaction().execute(async (trx) => {
      await trx.updateTable('notifications').set({ status: 'failed', error }).where('id', '=', row.id).execute();
      // The last attempt: this job goes to the dead-letter queue, and the notification by email if it can.
      if (job.retryCount >= retryLimit) await fallBackToEmail(deps, trx, row, error, logger);
    });
    throw Object.assign(new Error(refusal.message), { code: refusal.code });
  }
  await deps.db.updateTable('notifications').set({ status: 'sent', error: null, sent_at: deps.clock.now() }).where('id', '=', row.id).execute();
  return { sent: true, ...(result.value.ref ? { ref: result.value.ref } : {}) };
}

/** A chat notification that failed for good, recorded again for email (when configured) through `trx`. */
async function fallBackToEmail(deps: JobDeps, trx: Kysely<Database>, row: Selectable<NotificationsTable>, error: string, logger: Logger): Promise<void> {
  if (row.surface === 'email' || !deps.notifiers.some((notifier) => notifier.surface === 'email')) return;
  const fallback = emailFallback({ surface: row.surface, target_kind: row.target_kind, target: row.target, message: row.message as unknown as Message }, error, deps.config);
  if (!fallback.ok) {
    logger.warn({ surface: row.surface, target: row.target }, fallback.reason);
    return;
  }
  const id = await recordNotification(deps, trx, {
    event_id: row.event_id,
    event_type: row.event_type,
    surface: 'email',
    target_kind: fallback.kind,
    target: fallback.target,
    message: JSON.stringify(fallback.message),
    subject_kind: row.subject_kind,
    subject_id: row.subject_id,
  });
  if (id) logger.info({ surface: row.surface, target: row.target, fallbackNotificationId: id }, 'notification falls back to email');
  // One email per (event, address): a second channel that fails for the same event finds it already queued,
  // and that email names only the first channel. Said here rather than lost silently.
  else logger.warn({ surface: row.surface, target: row.target, fallbackTarget: fallback.target }, 'email fallback for this event is already queued (for another target); this target is not named in it');
}

/** The EventSink the domain writes to: a `domain.event` job in the caller's transaction. */
export function createEventSink(jobs: Pick<JobRuntime, 'enqueue'>): EventSink {
  return {
    async emit(trx: Kysely<Database>, event: DomainEvent) {
      await jobs.enqueue(routeDomainEvent, event, { db: trx, id: event.id });
    },
  };
}
