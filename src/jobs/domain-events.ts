/**
 * The outbox side of domain events. Domain code emits an event inside its transaction (`createEventSink`
 * enqueues a `domain.event` job through that transaction); the job routes it to targets and records one
 * notification row per target, each delivered by a `notify.deliver` job through the surface's notifier.
 * A surface with no notifier configured leaves its notifications `undeliverable`, visible to operators.
 */
import { z } from 'zod';
import type { Kysely } from 'kysely';
import { renderEvent } from '../bot/render.ts';
import { enqueueSubscriptionDeliveries } from '../connectors/webhook-bridge/outbound/deliver.ts';
import type { Database } from '../db/schema.ts';
import { type DomainEvent, type EventSink, SUBJECT_KINDS } from '../domain/events.ts';
import { routeEvent } from '../domain/routing.ts';
import { type JobContext, defineJob } from './define-job.ts';
import type { JobDeps } from './job-deps.ts';
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
      const row = await deps.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('notifications')
          .values({
            event_id: event.id,
            event_type: event.type,
            surface: target.surface,
            target_kind: target.kind,
            target: target.target,
            message: JSON.stringify(message),
            subject_kind: event.subject.kind,
            subject_id: event.subject.id,
          })
          .onConflict((oc) => oc.constraint('notifications_event_target_key').doNothing())
          .returning('id')
          .executeTakeFirst();
        if (inserted) await deps.jobs.enqueue(deliverNotification, { notificationId: inserted.id }, { db: trx });
        return inserted;
      });
      if (row) created++;
    }
    if (RERENDER_ON.has(event.type) && deps.rerenderers.length > 0) {
      await deps.jobs.enqueue(rerenderSubject, { kind: event.subject.kind, id: event.subject.id });
    }
    // Outbound subscriptions: a delivery row and its first attempt's job per subscriber, or none of either.
    const webhooks = await deps.db.transaction().execute((trx) => enqueueSubscriptionDeliveries(deps, trx, event));
    return { targets: targets.length, created, ...(webhooks > 0 ? { webhooks } : {}) };
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

export const deliverNotification = defineJob({
  name: 'notify.deliver',
  schema: z.object({ notificationId: z.uuid() }),
  // Chat APIs rate-limit; back off from 10 s, and leave failures for good in the dead-letter queue.
  policy: { retryDelaySeconds: 10, retryLimit: 6 },
  handler: async ({ notificationId }, { deps, logger }: JobContext<JobDeps>) => {
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
        await deps.db.updateTable('notifications').set({ status: 'undeliverable', error }).where('id', '=', row.id).execute();
        logger.warn({ surface: row.surface, code: refusal.code }, 'notification undeliverable');
        return { undeliverable: true };
      }
      if (refusal.retryAfterSeconds !== undefined) {
        // Rate limit or pacing: come back when told to, as a new job (this one completes; nothing sleeps).
        await deps.db.transaction().execute(async (trx) => {
          await trx.updateTable('notifications').set({ status: 'pending', error }).where('id', '=', row.id).execute();
          await deps.jobs.enqueue(deliverNotification, { notificationId: row.id }, { db: trx, startAfter: refusal.retryAfterSeconds! });
        });
        return { deferredSeconds: refusal.retryAfterSeconds };
      }
      await deps.db.updateTable('notifications').set({ status: 'failed', error }).where('id', '=', row.id).execute();
      throw Object.assign(new Error(refusal.message), { code: refusal.code });
    }
    await deps.db.updateTable('notifications').set({ status: 'sent', error: null, sent_at: deps.clock.now() }).where('id', '=', row.id).execute();
    return { sent: true, ...(result.value.ref ? { ref: result.value.ref } : {}) };
  },
});

/** The EventSink the domain writes to: a `domain.event` job in the caller's transaction. */
export function createEventSink(jobs: Pick<JobRuntime, 'enqueue'>): EventSink {
  return {
    async emit(trx: Kysely<Database>, event: DomainEvent) {
      await jobs.enqueue(routeDomainEvent, event, { db: trx, id: event.id });
    },
  };
}
