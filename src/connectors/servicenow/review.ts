/**
 * A new P1 incident (or one raised to P1) gets a high-priority review task in ProjectX, exactly once per
 * incident: the incident sync announces it once (src/connectors/servicenow/sync.ts), and the task's link
 * `servicenow-review:<source>:<sys_id>` is unique, so a routing job that runs twice still makes one task.
 * The task is assigned to the instance's `reviewAssignee` (an email of a ProjectX user) when set; its
 * `task.created` / `task.assigned` events then reach people as the routing rules say. The alert in the routed
 * channel is the incident event's own notification (`incident.*` → #alerts-servicenow by default).
 */
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import type { DomainEvent } from '../../domain/events.ts';
import { createTask } from '../../domain/tasks.ts';
import { findUserByEmail } from '../../domain/users.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { servicenowAttachments } from './attachments.ts';

export async function openP1Review(event: DomainEvent, { domain, jobs }: { domain: DomainDeps; jobs: Pick<JobRuntime, 'enqueue'> }): Promise<void> {
  if ((event.type !== 'incident.created' && event.type !== 'incident.updated') || event.data?.review !== true || event.priority !== 1) return;
  const source = typeof event.data.source === 'string' ? event.data.source : 'servicenow';
  const externalId = typeof event.data.externalId === 'string' ? event.data.externalId : event.subject.id;
  const link = `servicenow-review:${source}:${externalId}`;
  const existing = await domain.db.selectFrom('task_links').select('task_id').where('kind', '=', 'external').where('target', '=', link).executeTakeFirst();
  if (!existing) await createReviewTask(event, domain, source, externalId);
  // Its attachments become evidence of the review (again harmless: mirrored ones are skipped).
  const instance = await domain.db.selectFrom('integration_configs').select('id').where('type', '=', 'servicenow').where('name', '=', source === 'servicenow' ? 'default' : source.slice('servicenow:'.length)).executeTakeFirst();
  if (instance && /^[0-9a-f]{32}$/.test(externalId)) await jobs.enqueue(servicenowAttachments, { instanceId: instance.id, incidentSysId: externalId, incidentId: event.subject.id });
}

async function createReviewTask(event: DomainEvent, domain: DomainDeps, source: string, externalId: string): Promise<void> {
  const assigneeEmail = typeof event.data?.reviewAssignee === 'string' ? event.data.reviewAssignee : undefined;
  const assignee = assigneeEmail ? await findUserByEmail(domain.db, assigneeEmail) : undefined;
  const result = await createTask(domain, { ...SYSTEM_ACTOR, via: source }, {
    type: 'review',
    title: `Review P1 ${event.subject.label}`.slice(0, 200),
    description: `${event.summary}\n\nRaised from ServiceNow (${source}).`,
    priority: 'high',
    incidentIds: [event.subject.id],
    external: [{ system: 'servicenow-review', id: `${source}:${externalId}` }],
    ...(assignee ? { assigneeId: assignee.id } : {}),
  }).catch((error: unknown) => {
    // Another run of this event created it first (the unique link): that one stands.
    if ((error as { code?: string }).code === '23505') return undefined;
    throw error;
  });
  if (result && !result.ok) throw Object.assign(new Error(result.refusal.message), { code: result.refusal.code });
}
