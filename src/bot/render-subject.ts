/**
 * Renders a notification's subject as it is now (not as it was when the event happened), with its outcome:
 * a decided task loses its buttons and says who decided when; an acknowledged incident says who acknowledged.
 * Used when a message is first posted and each time it is re-rendered.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { formatTime } from '../domain/approvals.ts';
import { findIncidentsByNumber } from '../domain/incidents.ts';
import { type Task, getTask } from '../domain/tasks.ts';
import type { Message } from './message.ts';
import { renderIncident, renderTask } from './render.ts';

/** `task`: the subject's task when the caller has just read it (not read again). */
export async function renderSubject(db: Kysely<Database>, subject: { kind: string; id: string }, loaded?: { task: Task | undefined }): Promise<Message | undefined> {
  if (subject.kind === 'task') {
    const task = loaded ? loaded.task : await getTask(db, subject.id);
    if (!task) return undefined;
    const ids = [task.assigneeId, task.requesterId].filter((id): id is string => id !== null);
    const names = Object.fromEntries((ids.length ? await db.selectFrom('users').select(['id', 'display_name']).where('id', 'in', ids).execute() : []).map((row) => [row.id, row.display_name]));
    const message = renderTask(task, { buttons: task.state === 'pending_approval', names });
    if (task.state === 'approved' || task.state === 'denied') {
      const decision = await db
        .selectFrom('approval_decisions')
        .innerJoin('users', 'users.id', 'approval_decisions.user_id')
        .select(['users.display_name', 'approval_decisions.decided_at', 'approval_decisions.reason'])
        .where('approval_decisions.task_id', '=', task.id)
        .where('approval_decisions.decision', '=', task.state === 'approved' ? 'approve' : 'deny')
        .orderBy('approval_decisions.decided_at', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (decision) {
        const line = `${task.state === 'approved' ? 'Approved' : 'Denied'} by ${decision.display_name} at ${formatTime(decision.decided_at)}${decision.reason ? `: ${decision.reason}` : ''}`;
        message.blocks.push({ type: 'context', text: line });
        message.text = `${message.text}. ${line}`;
      }
    }
    return message;
  }
  if (subject.kind === 'incident') {
    const row = await db.selectFrom('incidents').select('number').where('id', '=', subject.id).executeTakeFirst();
    const [incident] = row ? await findIncidentsByNumber(db, row.number) : [];
    if (!incident) return undefined;
    const acker = incident.acknowledgedBy ? await db.selectFrom('users').select('display_name').where('id', '=', incident.acknowledgedBy).executeTakeFirst() : undefined;
    return renderIncident(incident, acker?.display_name);
  }
  return undefined;
}
