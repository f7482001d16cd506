/**
 * What a changed Jira issue does in ProjectX (the issue model's `apply`, in the sync page's transaction): it
 * becomes, or updates, the remediation task linked to it (`task_links`: external, `jira:<instance>:issue:<id>`,
 * with the issue's URL).
 *
 * - title and description (ADF flattened to text), state from the status (mapper.ts `stateOf`: the category,
 *   unless the project's mapping names the status), priority, labels, due date (end of that day, UTC);
 * - assignee: the ProjectX user with the Jira assignee's email; otherwise the email or name is kept as text
 *   (`external_assignee`), as Jira hides some people's email;
 * - the control(s) the issue names (a label matching `controlLabelPattern`, or `controlField`) are linked when
 *   ProjectX has them, and the programme its epic is mapped to (`epicPrograms`: the epic itself, or the issue's
 *   parent) when ProjectX has it (links are added, never removed by a sync: someone may have linked one here).
 *
 * A page is a few statements whatever its size (new tasks and their links in one, updates in one). New tasks
 * make no event (an initial sync of 100,000 issues must not notify anyone 100,000 times); a task whose state
 * changes emits `task.state_changed`, so the chat messages that show it are re-rendered (no Approve button on a
 * task whose issue is done), and one whose assignee becomes a ProjectX user emits `task.assigned`. One audit row
 * per page names the tasks created and updated.
 */
import { type Kysely, sql } from 'kysely';
import type { Database, TaskPriority, TaskState } from '../../db/schema.ts';
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import { newEvent } from '../../domain/events.ts';
import { taskRef } from '../../domain/tasks.ts';
import type { Change, ConnectorInstance, ConnectorRuntime } from '../sdk/contract.ts';
import type { JiraSettings } from './client.ts';
import { jiraIssueExtras } from './extras.ts';
import { type IssueRecord, assigneeOf, controlIdsOf, issueTarget, issueUrl, plainText, priorityOf, stateOf } from './mapper.ts';


interface Row {
  target: string;
  url: string;
  title: string;
  description: string | null;
  state: TaskState;
  priority: TaskPriority;
  assigneeId: string | null;
  externalAssignee: string | null;
  dueAt: Date | null;
  labels: string[];
  controls: string[];
  key: string;
  /** An epic of a priority the instance calls critical. */
  criticalEpic: boolean;
}

export async function applyIssues(input: { trx: Kysely<Database>; instance: ConnectorInstance<JiraSettings>; changes: readonly Change<IssueRecord>[]; runtime: ConnectorRuntime; now: Date }): Promise<void> {
  const { trx, instance, changes, runtime, now } = input;
  const { settings } = instance;
  if (changes.length === 0) return;
  const labelPattern = new RegExp(settings.controlLabelPattern, 'i');

  const emails = [...new Set(changes.map((change) => assigneeOf(change.record)?.email).filter((email): email is string => !!email))];
  const users = emails.length ? await trx.selectFrom('users').select(['id', 'email']).where(sql<boolean>`lower(email) = any(${emails}::text[])`).where('active', '=', true).execute() : [];
  const userByEmail = new Map(users.map((user) => [user.email.toLowerCase(), user.id]));
  const named = [...new Set(changes.flatMap((change) => controlIdsOf(change.record, { labelPattern, field: settings.controlField })))];
  const controls = new Set(named.length ? (await trx.selectFrom('controls').select('id').where('id', 'in', named).execute()).map((row) => row.id) : []);

  const rows: Row[] = changes.map(({ record, externalId }) => {
    const assignee = assigneeOf(record);
    const assigneeId = assignee?.email ? (userByEmail.get(assignee.email) ?? null) : null;
    return {
      target: issueTarget(instance.name, externalId),
      url: issueUrl(settings, record.key),
      title: `${record.key} ${record.fields.summary}`.trim().slice(0, 500),
      description: plainText(record.fields.description) || null,
      state: stateOf(record, settings.stateMapping),
      priority: priorityOf(record),
      assigneeId,
      externalAssignee: assignee && !assigneeId ? (assignee.email ?? assignee.name ?? assignee.accountId) : null,
      dueAt: record.fields.duedate ? new Date(`${record.fields.duedate}T23:59:59.999Z`) : null,
      labels: [...record.fields.labels].sort(),
      controls: controlIdsOf(record, { labelPattern, field: settings.controlField }).filter((id) => controls.has(id)),
      key: record.key,
      criticalEpic: record.fields.issuetype?.name === 'Epic' && settings.criticalPriorities.includes(record.fields.priority?.name ?? ''),
    };
  });

  const existing = await trx
    .selectFrom('task_links')
    .innerJoin('tasks', 'tasks.id', 'task_links.task_id')
    .select(['task_links.target', 'tasks.id', 'tasks.state', 'tasks.assignee_id'])
    .where('task_links.kind', '=', 'external')
    .where('task_links.target', 'in', rows.map((row) => row.target))
    .execute();
  const byTarget = new Map(existing.map((row) => [row.target, row]));
  const fresh = rows.filter((row) => !byTarget.has(row.target));
  const known = rows.filter((row) => byTarget.has(row.target));
  const columns = (list: Row[]) => [
    list.map((row) => row.target),
    list.map((row) => row.title),
    list.map((row) => row.description),
    list.map((row) => row.state),
    list.map((row) => row.priority),
    list.map((row) => row.assigneeId),
    list.map((row) => row.externalAssignee),
    list.map((row) => row.dueAt),
    list.map((row) => JSON.stringify(row.labels)),
  ];

  const created: { id: string; target: string }[] = [];
  if (fresh.length > 0) {
    const [targets, titles, descriptions, states, priorities, assignees, externals, dues, labels] = columns(fresh);
    // Ids taken from the identity's sequence first, so the task and its link are written by one statement.
    const inserted = await sql<{ id: string; target: string }>`
      with input as (
        select nextval(pg_get_serial_sequence('tasks', 'id')) as id, t.*
        from unnest(${targets}::text[], ${fresh.map((row) => row.url)}::text[], ${titles}::text[], ${descriptions}::text[], ${states}::text[], ${priorities}::text[], ${assignees}::uuid[], ${externals}::text[], ${dues}::timestamptz[], ${labels}::text[])
          as t(target, url, title, description, state, priority, assignee_id, external_assignee, due_at, labels)
      ), tasks_in as (
        insert into tasks (id, type, title, description, state, priority, assignee_id, external_assignee, due_at, labels, created_at, updated_at)
        overriding system value
        select id, 'remediation', title, description, state, priority, assignee_id, external_assignee, due_at, array(select jsonb_array_elements_text(labels::jsonb)), ${now}::timestamptz, ${now}::timestamptz
        from input
      ), links_in as (
        insert into task_links (task_id, kind, target, url) select id, 'external', target, url from input
      )
      select id::text, target from input`.execute(trx);
    created.push(...inserted.rows);
  }

  const changed: { id: string; from: TaskState; to: TaskState; assigneeFrom: string | null; assigneeTo: string | null; title: string; row: Row }[] = [];
  if (known.length > 0) {
    const [targets, titles, descriptions, states, priorities, assignees, externals, dues, labels] = columns(known);
    await sql`
      update tasks set title = t.title, description = t.description, state = t.state, priority = t.priority, assignee_id = t.assignee_id,
        external_assignee = t.external_assignee, due_at = t.due_at, labels = array(select jsonb_array_elements_text(t.labels::jsonb)),
        version = tasks.version + 1, updated_at = ${now}::timestamptz
      from unnest(${known.map((row) => byTarget.get(row.target)!.id)}::bigint[], ${targets}::text[], ${titles}::text[], ${descriptions}::text[], ${states}::text[], ${priorities}::text[], ${assignees}::uuid[], ${externals}::text[], ${dues}::timestamptz[], ${labels}::text[])
        as t(id, target, title, description, state, priority, assignee_id, external_assignee, due_at, labels)
      where tasks.id = t.id`.execute(trx);
    for (const row of known) {
      const before = byTarget.get(row.target)!;
      if (before.state !== row.state || before.assignee_id !== row.assigneeId) changed.push({ id: before.id, from: before.state, to: row.state, assigneeFrom: before.assignee_id, assigneeTo: row.assigneeId, title: row.title, row });
    }
  }

  const taskIdOf = new Map([...created.map((row) => [row.target, row.id] as const), ...existing.map((row) => [row.target, row.id] as const)]);
  const controlLinks = rows.flatMap((row) => row.controls.map((control) => ({ task_id: taskIdOf.get(row.target)!, kind: 'control' as const, target: control, url: null })));
  // An epic mapped to a programme: the epic's task and its children's tasks belong to it (added, never removed).
  const mapped = changes.flatMap(({ record, externalId }) => {
    const program = settings.epicPrograms[record.key] ?? (record.fields.parent ? settings.epicPrograms[record.fields.parent.key] : undefined);
    return program ? [{ target: issueTarget(instance.name, externalId), program }] : [];
  });
  const programs = new Set(mapped.length ? (await trx.selectFrom('programs').select('id').where('id', 'in', [...new Set(mapped.map((row) => row.program))]).execute()).map((row) => row.id) : []);
  const programLinks = mapped.filter((row) => programs.has(row.program)).map((row) => ({ task_id: taskIdOf.get(row.target)!, kind: 'program' as const, target: row.program, url: null }));
  if (controlLinks.length + programLinks.length > 0) await trx.insertInto('task_links').values([...controlLinks, ...programLinks]).onConflict((oc) => oc.doNothing()).execute();

  // Comments and attachments are fetched apart, for the issues that have any (most have none).
  const extras = changes.filter(({ record }) => (record.fields.attachment?.length ?? 0) > 0 || (record.fields.comment?.total ?? record.fields.comment?.comments?.length ?? 0) > 0).map((change) => change.externalId);
  for (let index = 0; index < extras.length && runtime.jobs; index += 100) await runtime.jobs.enqueue(jiraIssueExtras, { instanceId: instance.id, issueIds: extras.slice(index, index + 100) }, { db: trx });

  for (const change of changed) {
    const subject = { kind: 'task' as const, id: change.id, label: taskRef(change.id) };
    const via = `jira:${instance.name}`;
    if (change.from !== change.to) await runtime.events.emit(trx, newEvent({ subject, type: 'task.state_changed', summary: `${subject.label} is now ${change.to} in Jira (was ${change.from})`, data: { from: change.from, to: change.to, by: via } }, now));
    if (change.row.criticalEpic && change.to === 'done' && change.from !== 'done') {
      await runtime.events.emit(trx, newEvent({ subject, type: 'task.epic_completed', priority: 1, controlIds: change.row.controls, summary: `Critical epic ${change.row.key} is done in Jira: ${change.row.title.slice(change.row.key.length + 1)}`, data: { by: via, issue: change.row.key, url: change.row.url } }, now));
    }
    if (change.assigneeTo && change.assigneeTo !== change.assigneeFrom) await runtime.events.emit(trx, newEvent({ subject, assigneeId: change.assigneeTo, type: 'task.assigned', summary: `${subject.label} assigned in Jira: ${change.title}` }, now));
  }
  await auditSync(trx, instance.name, now, { created: created.slice(0, 1000).map((row) => taskRef(row.id)), updated: known.slice(0, 1000).map((row) => taskRef(byTarget.get(row.target)!.id)), createdCount: created.length, updatedCount: known.length });
}

const TERMINAL: readonly TaskState[] = ['done', 'cancelled', 'approved', 'denied', 'expired'];

/**
 * Issues Jira no longer returns (deleted, or hidden from us): their open tasks are cancelled, so that no chat
 * message keeps offering work on them (`task.state_changed` re-renders each), with one audit row.
 */
export async function issuesGone(input: { trx: Kysely<Database>; instance: ConnectorInstance<JiraSettings>; externalIds: readonly string[]; runtime: ConnectorRuntime; now: Date }): Promise<void> {
  const { trx, instance, runtime, now } = input;
  const links = await trx.selectFrom('task_links').select(['task_id', 'target']).where('kind', '=', 'external').where('target', 'in', input.externalIds.map((id) => issueTarget(instance.name, id))).execute();
  if (links.length === 0) return;
  const issueOf = new Map(links.map((row) => [row.task_id, row.target.split(':').at(-1)]));
  const cancelled = await trx
    .updateTable('tasks')
    .set((eb) => ({ state: 'cancelled', version: eb('version', '+', 1), updated_at: now }))
    .where('id', 'in', [...issueOf.keys()])
    .where('state', 'not in', TERMINAL)
    .returning('id')
    .execute();
  if (cancelled.length === 0) return;
  for (const task of cancelled) {
    const subject = { kind: 'task' as const, id: task.id, label: taskRef(task.id) };
    await runtime.events.emit(trx, newEvent({ subject, type: 'task.state_changed', summary: `${subject.label} is now cancelled: its Jira issue ${issueOf.get(task.id) ?? ''} was deleted or is no longer visible to ProjectX`, data: { to: 'cancelled', by: `jira:${instance.name}`, reason: 'issue_gone' } }, now));
  }
  await auditSync(trx, instance.name, now, { cancelled: cancelled.map((task) => taskRef(task.id)), reason: 'issue_gone', issues: input.externalIds.slice(0, 1000) });
}

/** One audit row for what a sync did to tasks (a page's, or the issues found gone), by the instance. */
function auditSync(trx: Kysely<Database>, instanceName: string, now: Date, detail: Record<string, unknown>): Promise<void> {
  return appendAudit(trx, { actor: { ...SYSTEM_ACTOR, via: `jira:${instanceName}` }, action: 'task.sync', objectType: 'integration', objectId: `jira:${instanceName}`, outcome: 'success', at: now, detail });
}

/**
 * Tasks of this instance's issues that ended (done, cancelled…) since `since` and were posted to chat (Slack or
 * Teams): their messages may still show buttons if a re-render was lost, so reconciliation re-renders them.
 */
export async function staleTaskMessages(input: { db: Kysely<Database>; instance: ConnectorInstance<JiraSettings>; since: Date }): Promise<{ kind: 'task'; id: string }[]> {
  const rows = await input.db
    .selectFrom('tasks')
    .innerJoin('task_links', 'task_links.task_id', 'tasks.id')
    .select('tasks.id')
    .where('task_links.kind', '=', 'external')
    .where('task_links.target', 'like', `jira:${input.instance.name.replace(/[\\%_]/g, (ch) => `\\${ch}`)}:issue:%`)
    .where('tasks.state', 'in', TERMINAL)
    .where('tasks.updated_at', '>=', input.since)
    .where((eb) =>
      eb.or([
        eb.exists(eb.selectFrom('slack_messages').select('id').where('subject_kind', '=', 'task').whereRef('subject_id', '=', sql<string>`tasks.id::text`)),
        eb.exists(eb.selectFrom('teams_messages').select('id').where('subject_kind', '=', 'task').whereRef('subject_id', '=', sql<string>`tasks.id::text`)),
      ]),
    )
    .orderBy('tasks.id')
    .limit(1000)
    .execute();
  return rows.map((row) => ({ kind: 'task' as const, id: row.id }));
}
