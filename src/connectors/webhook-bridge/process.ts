/**
 * Processing an accepted partner delivery (`webhooks.process`): re-read it from `inbound_events`, interpret it
 * with the partner's current mapping, perform the action through the domain, and record the result on the
 * delivery and in `integration_events`.
 *
 * Exactly once, although jobs run at least once: each action is idempotent per delivery (a task carries the
 * delivery as its external reference, a comment its source, evidence is stored by content hash, an alert's
 * event id is derived from the delivery), and a delivery no longer 'received' is skipped. Errors are retried
 * with backoff; after the last attempt, or at once when the domain refuses (an unknown control: retrying cannot
 * help), the delivery is marked 'failed', where `projectx webhooks dead list|replay` finds it.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { Actor } from '../../domain/actor.ts';
import { auditRefusal } from '../../domain/audit.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { newEvent } from '../../domain/events.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import { commentOnTask, createTask, parseTaskRef, taskRef } from '../../domain/tasks.ts';
import { findUserByEmail } from '../../domain/users.ts';
import { DEFAULT_POLICY, type JobContext, defineJob } from '../../jobs/define-job.ts';
import { runWithContext } from '../../logger.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import { ingestEvidence } from '../evidence-stores/ingest.ts';
import { type ActionInput, type Interpretation, interpret } from './mapping.ts';
import { type PartnerMapping, loadPartnerMapping } from './partners.ts';

export const SOURCE_PREFIX = 'webhook:';
const RETRY_LIMIT = DEFAULT_POLICY.retryLimit;

type Performed = Record<string, unknown>;

/**
 * One job per relay of staged deliveries (up to 100, src/jobs/inbound-outbox.ts), not per delivery: a job row
 * costs PostgreSQL more than the delivery row itself. Each delivery is processed on its own; a retry of the job
 * finds the ones already processed settled and skips them, so only the unfinished ones run again.
 */
export const webhookProcess = defineJob({
  name: 'webhooks.process',
  schema: z.object({ inboundIds: z.array(z.uuid()).min(1).max(500) }),
  policy: { retryLimit: RETRY_LIMIT },
  handler: async ({ inboundIds }, context: JobContext<JobDeps>) => {
    const outcomes: Record<string, unknown>[] = [];
    const errors: unknown[] = [];
    for (const inboundId of inboundIds) {
      // A stopping worker (or an expired job) leaves the rest for the retry instead of racing it.
      if (context.signal.aborted) {
        errors.push(new Error('the job was stopped before every delivery was processed'));
        break;
      }
      try {
        outcomes.push(await processDelivery(inboundId, context));
      } catch (error) {
        errors.push(error);
      }
    }
    if (errors.length > 0) throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} of ${inboundIds.length} webhook deliveries failed; they are retried`);
    return { deliveries: outcomes.length, outcomes: outcomes.slice(0, 20) };
  },
});

async function processDelivery(inboundId: string, context: JobContext<JobDeps>): Promise<Record<string, unknown>> {
  try {
    return await processOnce(inboundId, context);
  } catch (error) {
    // Whatever failed (the domain, the partner's record, the database), the last attempt leaves the delivery
    // 'failed', where `projectx webhooks dead` finds it, rather than 'received' with its job dead-lettered.
    if (context.job.retryCount >= RETRY_LIMIT) {
      const message = error instanceof Error ? error.message : String(error);
      await context.deps.db
        .updateTable('inbound_events')
        .set({ status: 'failed', processed_at: context.deps.clock.now(), error: JSON.stringify({ code: 'processing_failed', message: message.slice(0, 1000) }) })
        .where('id', '=', inboundId)
        .where('status', '=', 'received')
        .execute()
        .catch((failure: unknown) => context.logger.error({ err: failure, inboundId }, 'could not mark a webhook delivery failed'));
    }
    throw error;
  }
}

async function processOnce(inboundId: string, context: JobContext<JobDeps>): Promise<Record<string, unknown>> {
  const row = await context.deps.db.selectFrom('inbound_events').select(['id', 'source', 'delivery_id', 'status', 'headers', 'body', 'correlation_id']).where('id', '=', inboundId).executeTakeFirst();
  if (!row || row.status !== 'received') return { skipped: row?.status ?? 'missing' };
  // The job was enqueued by the outbox relay, not by the request: what this delivery causes (log lines, domain
  // events and their jobs) carries the request id it was accepted under.
  return row.correlation_id ? runWithContext({ correlationId: row.correlation_id }, () => performDelivery(row, context)) : performDelivery(row, context);
}

async function performDelivery(
  row: { id: string; source: string; delivery_id: string; headers: Record<string, string>; body: Buffer; correlation_id: string | null },
  { deps, logger }: JobContext<JobDeps>,
): Promise<Record<string, unknown>> {
  const key = row.source.slice(SOURCE_PREFIX.length);
  const partner = await loadPartnerMapping(deps.db, key);
  const settle = (status: 'processed' | 'failed' | 'quarantined', detail: { result?: Performed; error?: Record<string, unknown>; eventType?: string }) => settleDelivery(deps, row, status, detail);
  if (!partner) {
    await settle('failed', { error: { code: 'unknown_partner', message: `partner ${key} no longer exists` } });
    return { failed: 'unknown_partner' };
  }
  const meaning = interpret({ scheme: partner.scheme, mapping: partner.mapping, body: row.body, headers: row.headers });
  if (!meaning.ok) {
    // The mapping changed since the delivery was accepted: it waits in quarantine like any unfit payload.
    await settle('quarantined', { error: quarantineError(meaning) });
    return { quarantined: meaning.reason };
  }
  const performed = await perform(deps, partner, row.delivery_id, meaning);
  if (!performed.ok) {
    await settle('failed', { eventType: meaning.eventType, error: { code: performed.refusal.code, message: performed.refusal.message } });
    logger.warn({ partner: key, code: performed.refusal.code }, 'webhook delivery refused by the domain; marked failed');
    return { failed: performed.refusal.code };
  }
  await settle('processed', { eventType: meaning.eventType, result: performed.value });
  return performed.value;
}


export function quarantineError(meaning: Extract<Interpretation, { ok: false }>): Record<string, unknown> {
  return { code: meaning.reason, message: meaning.message, ...(meaning.eventType ? { eventType: meaning.eventType } : {}), ...(meaning.issues ? { issues: meaning.issues } : {}) };
}

/** Records how a delivery ended, on the delivery and as an `integration_events` row. */
async function settleDelivery(
  deps: JobDeps,
  row: { id: string; source: string; delivery_id: string; correlation_id: string | null },
  status: 'processed' | 'failed' | 'quarantined',
  detail: { result?: Performed; error?: Record<string, unknown>; eventType?: string },
): Promise<void> {
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('inbound_events')
      .set({ status, processed_at: now, result: detail.result ? JSON.stringify(detail.result) : null, error: detail.error ? JSON.stringify(detail.error) : null })
      .where('id', '=', row.id)
      .execute();
    await trx
      .insertInto('integration_events')
      .values({
        source: row.source,
        direction: 'inbound',
        event_type: detail.eventType ?? 'unknown',
        external_id: row.delivery_id,
        status,
        result: detail.result ? JSON.stringify(detail.result) : null,
        error: detail.error ? JSON.stringify(detail.error) : null,
        correlation_id: row.correlation_id,
        created_at: now,
        processed_at: now,
      })
      .execute();
  });
}

const SEVERITY_PRIORITY = { critical: 1, high: 2, medium: 3, low: 4, info: 5 } as const;

/** Performs the mapped action, idempotently per delivery. */
async function perform(deps: JobDeps, partner: PartnerMapping, deliveryId: string, meaning: Extract<Interpretation, { ok: true }>): Promise<Result<Performed>> {
  const domain: DomainDeps = { db: deps.db, events: deps.events, clock: deps.clock };
  const actor: Actor = { surface: 'system', user: undefined, via: `webhook:${partner.key}` };
  const system = `${SOURCE_PREFIX}${partner.key}`;
  switch (meaning.action) {
    case 'create_task': {
      const input = meaning.input as ActionInput<'create_task'>;
      const target = `${system}:${deliveryId}`;
      const existing = await domain.db.selectFrom('task_links').select('task_id').where('kind', '=', 'external').where('target', '=', target).executeTakeFirst();
      if (existing) return ok({ action: 'create_task', task: taskRef(existing.task_id), created: false });
      const assignee = input.assignee_email ? await findUserByEmail(domain.db, input.assignee_email) : undefined;
      const created = await createTask(domain, actor, {
        type: input.type,
        title: input.title,
        description: input.description,
        priority: input.priority,
        assigneeId: assignee?.id,
        controlIds: input.control_ids,
        external: [{ system, id: deliveryId, ...(input.url ? { url: input.url } : {}) }],
      });
      if (!created.ok) return created;
      return ok({ action: 'create_task', task: created.value.ref, created: true, ...(input.assignee_email && !assignee ? { assigneeNotFound: input.assignee_email } : {}) });
    }
    case 'attach_evidence': {
      const input = meaning.input as ActionInput<'attach_evidence'>;
      const taskId = input.task_ref ? parseTaskRef(input.task_ref) : undefined;
      if (input.task_ref && !taskId) return refuse('unknown_task', `no task ${input.task_ref}`);
      if (taskId) {
        const allowed = await mayActOnTask(domain, actor, system, taskId, meaning.tasks, 'evidence.record');
        if (!allowed.ok) return allowed;
      }
      const stored = await ingestEvidence(domain, deps.evidence, actor, {
        content: Readable.from([Buffer.from(input.content_base64, 'base64')]),
        fileName: input.name,
        source: system,
        controlIds: input.control_ids,
        taskIds: taskId ? [taskId] : undefined,
      });
      if (!stored.ok) return stored;
      return ok(stored.value.outcome === 'recorded' ? { action: 'attach_evidence', evidence: stored.value.id, sha256: stored.value.sha256, links: stored.value.newLinks, scan: stored.value.scanStatus } : { action: 'attach_evidence', held: stored.value.reason, quarantine: stored.value.quarantineId, sha256: stored.value.sha256 });
    }
    case 'comment_task': {
      const input = meaning.input as ActionInput<'comment_task'>;
      const taskId = parseTaskRef(input.task_ref);
      if (!taskId) return refuse('unknown_task', `no task ${input.task_ref}`);
      const allowed = await mayActOnTask(domain, actor, system, taskId, meaning.tasks, 'task.comment');
      if (!allowed.ok) return allowed;
      const commented = await commentOnTask(domain, actor, taskId, input.text, `${system}:${deliveryId}`);
      if (!commented.ok) return commented;
      return ok({ action: 'comment_task', task: commented.value.task.ref, added: commented.value.added });
    }
    case 'notify': {
      const input = meaning.input as ActionInput<'notify'>;
      // The event id is derived from the delivery: a second run emits the same event, and notifications are
      // unique per (event, target), so nobody is told twice.
      const event = {
        ...newEvent(
          {
            type: 'partner.alert',
            subject: { kind: 'integration', id: partner.key, label: partner.key },
            summary: `[${input.severity}] ${input.title}`,
            priority: SEVERITY_PRIORITY[input.severity],
            data: { partner: partner.key, text: input.text, ...(input.url ? { url: input.url } : {}) },
          },
          domain.clock.now(),
        ),
        id: uuidFrom(`${system}:${deliveryId}`),
      };
      await domain.db.transaction().execute((trx) => domain.events.emit(trx, event));
      return ok({ action: 'notify', event: event.id });
    }
  }
}

/**
 * A partner acts on the tasks its own deliveries created, unless its mapping says `"tasks": "any"`: a leaked
 * partner secret must not reach every task. A refusal is audited under the partner.
 */
async function mayActOnTask(domain: DomainDeps, actor: Actor, system: string, taskId: string, scope: 'own' | 'any', action: string): Promise<Result<true>> {
  if (scope === 'any') return ok(true);
  const own = await domain.db.selectFrom('task_links').select('task_id').where('task_id', '=', taskId).where('kind', '=', 'external').where('target', 'like', `${system.replaceAll('_', '\\_')}:%`).executeTakeFirst();
  if (own) return ok(true);
  const message = `${system} may act only on tasks its own deliveries created (set "tasks": "any" in its mapping to allow more)`;
  await auditRefusal(domain.db, { actor, action, objectType: 'task', objectId: taskRef(taskId), at: domain.clock.now(), code: 'forbidden', message });
  return refuse('forbidden', message);
}

/** A stable UUID-shaped id (version 8: custom) from a name. */
function uuidFrom(name: string): string {
  const hex = createHash('sha256').update(name).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${((Number.parseInt(hex.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
