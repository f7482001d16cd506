/**
 * Tasks: review, remediation, approval and evidence-request work items with a state machine, links to
 * controls, incidents and external records, and a `version` that every change compare-and-sets.
 *
 *   open ──► in_progress ──► pending_approval ──► approved ──► done
 *     │           │                 ├──► denied
 *     │           │                 ├──► expired
 *     └───────────┴──► done         └──► cancelled   (open and in_progress can be cancelled too)
 *
 * Approved and denied are reached only by decisions (src/domain/approvals.ts); a task with an approval policy
 * reaches done only through approved.
 */
import { type Kysely, type Selectable, sql } from 'kysely';
import { jsonArrayFrom } from 'kysely/helpers/postgres';
import { z } from 'zod';
import type { Database, Role, TaskPriority, TaskState, TaskType, TasksTable } from '../db/schema.ts';
import { type Actor, actorLabel, isOperator } from './actor.ts';
import { appendAudit, auditRefusal } from './audit.ts';
import type { DomainDeps } from './deps.ts';
import { newEvent } from './events.ts';
import { can } from './permissions.ts';
import { type Result, ok, refuse } from './result.ts';
import { ROLES } from './users.ts';

export const TASK_TYPES: readonly TaskType[] = ['review', 'remediation', 'approval', 'evidence_request'];
export const TASK_STATES: readonly TaskState[] = ['open', 'in_progress', 'pending_approval', 'approved', 'denied', 'cancelled', 'expired', 'done'];

/** Every allowed move. Anything else is refused with the list of what is allowed from the current state. */
export const TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  open: ['in_progress', 'pending_approval', 'done', 'cancelled'],
  in_progress: ['open', 'pending_approval', 'done', 'cancelled'],
  pending_approval: ['approved', 'denied', 'expired', 'cancelled'],
  approved: ['done'],
  denied: [],
  cancelled: [],
  expired: [],
  done: [],
};

/** Targets that only the approval flow may set. */
const DECISION_STATES: readonly TaskState[] = ['approved', 'denied', 'expired'];

export const approvalPolicySchema = z
  .object({
    approverUserIds: z.array(z.uuid()).default([]),
    approverRoles: z.array(z.enum(ROLES as [Role, ...Role[]])).default([]),
    /** The owners of the task's linked controls may approve. */
    controlOwners: z.boolean().default(false),
    quorum: z.number().int().min(1).max(20).default(1),
    expiresAt: z.iso.datetime().nullable().default(null),
  })
  .refine((policy) => policy.approverUserIds.length > 0 || policy.approverRoles.length > 0 || policy.controlOwners, {
    message: 'an approval policy needs at least one approver (users, roles or control owners)',
  });
export type ApprovalPolicy = z.output<typeof approvalPolicySchema>;

export interface TaskLink {
  kind: 'control' | 'incident' | 'external' | 'program';
  target: string;
  url: string | null;
}

export interface Task {
  id: string;
  /** How people refer to it: `T-42`. */
  ref: string;
  type: TaskType;
  title: string;
  description: string | null;
  state: TaskState;
  priority: TaskPriority;
  requesterId: string | null;
  assigneeId: string | null;
  dueAt: Date | null;
  policy: ApprovalPolicy | null;
  version: number;
  labels: string[];
  /** Assigned in a connected system to someone who is no ProjectX user (email or name). */
  externalAssignee: string | null;
  createdAt: Date;
  updatedAt: Date;
  links: TaskLink[];
}

export const taskRef = (id: string) => `T-${id}`;

/** Accepts `42`, `T-42`, `t42`, `#42`. */
export function parseTaskRef(text: string): string | undefined {
  const match = /^(?:#|t-?)?(\d{1,15})$/i.exec(text.trim());
  return match?.[1] === undefined ? undefined : String(BigInt(match[1]));
}

function toTask(row: Selectable<TasksTable>, links: TaskLink[]): Task {
  const parsed = row.approval_policy === null ? null : approvalPolicySchema.safeParse(row.approval_policy);
  return {
    id: row.id,
    ref: taskRef(row.id),
    type: row.type,
    title: row.title,
    description: row.description,
    state: row.state,
    priority: row.priority,
    requesterId: row.requester_id,
    assigneeId: row.assignee_id,
    dueAt: row.due_at,
    policy: parsed?.success ? parsed.data : null,
    version: row.version,
    labels: row.labels ?? [],
    externalAssignee: row.external_assignee ?? null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    links,
  };
}

/** A task and its links, in one round trip. */
export async function getTask(db: Kysely<Database>, id: string): Promise<Task | undefined> {
  const row = await db
    .selectFrom('tasks')
    .selectAll()
    .select((eb) => jsonArrayFrom(eb.selectFrom('task_links').select(['kind', 'target', 'url']).whereRef('task_links.task_id', '=', 'tasks.id').orderBy('kind').orderBy('target')).as('links'))
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  const { links, ...task } = row;
  return toTask(task, links);
}

/**
 * Tasks, newest first. `mayBeDecidedBy`: of those, only the ones whose approval policy could name this user
 * (listed, or the policy names roles or control owners), checked in PostgreSQL: a superset, cheap to read, of
 * what `eligibleApprovers` decides. The limit still counts all the tasks considered (the newest `limit`).
 */
export async function listTasks(
  db: Kysely<Database>,
  filter: { assigneeId?: string; states?: readonly TaskState[]; limit?: number; mayBeDecidedBy?: string },
): Promise<Task[]> {
  let query = db.selectFrom('tasks').selectAll().orderBy('id', 'desc').limit(filter.limit ?? 25);
  if (filter.assigneeId) query = query.where('assignee_id', '=', filter.assigneeId);
  if (filter.states && filter.states.length > 0) query = query.where('state', 'in', filter.states);
  if (filter.mayBeDecidedBy) {
    // A subquery with a LIMIT is not flattened: the newest `limit` are read by the index first, then filtered.
    const { rows } = await sql<Selectable<TasksTable>>`
      select * from (${query}) as considered
       where approval_policy -> 'approverUserIds' ? ${filter.mayBeDecidedBy} or approval_policy -> 'approverRoles' <> '[]'::jsonb or approval_policy -> 'controlOwners' = 'true'::jsonb
       order by id desc`.execute(db);
    return withLinks(db, rows);
  }
  return withLinks(db, await query.execute());
}

async function withLinks(db: Kysely<Database>, rows: Selectable<TasksTable>[]): Promise<Task[]> {
  if (rows.length === 0) return [];
  const links = await db.selectFrom('task_links').selectAll().where('task_id', 'in', rows.map((row) => row.id)).execute();
  return rows.map((row) => toTask(row, links.filter((link) => link.task_id === row.id).map(({ kind, target, url }) => ({ kind, target, url }))));
}

/** Ids of the users who may decide `task` under its policy (explicit users, role members, control owners). */
export async function eligibleApprovers(db: Kysely<Database>, task: Pick<Task, 'policy' | 'links'>): Promise<string[]> {
  const policy = task.policy;
  if (!policy) return [];
  const ids = new Set(policy.approverUserIds);
  if (policy.approverRoles.length > 0) {
    const members = await db.selectFrom('users').select('id').where('active', '=', true).where(sql<boolean>`roles && ${policy.approverRoles}::text[]`).execute();
    for (const { id } of members) ids.add(id);
  }
  if (policy.controlOwners) {
    const controls = task.links.filter((link) => link.kind === 'control').map((link) => link.target);
    if (controls.length > 0) {
      const owners = await db.selectFrom('controls').select('owner_id').where('id', 'in', controls).where('owner_id', 'is not', null).execute();
      for (const { owner_id } of owners) if (owner_id) ids.add(owner_id);
    }
  }
  return [...ids];
}

export interface CreateTaskInput {
  type: TaskType;
  title: string;
  description?: string | undefined;
  priority?: TaskPriority | undefined;
  assigneeId?: string | undefined;
  requesterId?: string | undefined;
  dueAt?: Date | undefined;
  policy?: z.input<typeof approvalPolicySchema> | undefined;
  controlIds?: readonly string[] | undefined;
  incidentIds?: readonly string[] | undefined;
  external?: readonly { system: string; id: string; url?: string }[] | undefined;
}

/**
 * Creates a task; one with an approval policy goes straight to pending_approval. Audited, and its events
 * (created, assigned, approval requested) are emitted in the same transaction.
 */
export async function createTask(deps: DomainDeps, actor: Actor, input: CreateTaskInput): Promise<Result<Task>> {
  const now = deps.clock.now();
  if (!isOperator(actor) && !can(actor.user, 'tasks.manage')) {
    await auditRefusal(deps.db, { actor, action: 'task.create', objectType: 'task', at: now, code: 'forbidden', message: 'creating tasks needs the admin role' });
    return refuse('forbidden', 'creating tasks needs the admin role');
  }
  const title = input.title.trim();
  if (!title) return refuse('invalid_task', 'a task needs a title');
  if (input.type === 'approval' && !input.policy) return refuse('invalid_task', 'an approval task needs an approval policy (approvers)');
  let policy: ApprovalPolicy | null = null;
  if (input.policy) {
    const parsed = approvalPolicySchema.safeParse(input.policy);
    if (!parsed.success) return refuse('invalid_policy', parsed.error.issues.map((issue) => issue.message).join('; '));
    policy = parsed.data;
  }
  const controlIds = [...new Set((input.controlIds ?? []).map((id) => id.trim().toUpperCase()))];
  if (controlIds.length > 0) {
    const found = await deps.db.selectFrom('controls').select('id').where('id', 'in', controlIds).execute();
    const missing = controlIds.filter((id) => !found.some((row) => row.id === id));
    if (missing.length > 0) return refuse('unknown_control', `no control ${missing.join(', ')}`);
  }

  const task = await deps.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('tasks')
      .values({
        type: input.type,
        title,
        description: input.description?.trim() || null,
        priority: input.priority ?? 'normal',
        state: policy ? 'pending_approval' : 'open',
        requester_id: input.requesterId ?? actor.user?.id ?? null,
        assignee_id: input.assigneeId ?? null,
        due_at: input.dueAt ?? null,
        approval_policy: policy ? JSON.stringify(policy) : null,
        created_at: now,
        updated_at: now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const links: TaskLink[] = [
      ...controlIds.map((target) => ({ kind: 'control' as const, target, url: null })),
      ...(input.incidentIds ?? []).map((target) => ({ kind: 'incident' as const, target, url: null })),
      ...(input.external ?? []).map((ref) => ({ kind: 'external' as const, target: `${ref.system}:${ref.id}`, url: ref.url ?? null })),
    ];
    if (links.length > 0) await trx.insertInto('task_links').values(links.map((link) => ({ task_id: row.id, ...link }))).onConflict((oc) => oc.doNothing()).execute();
    const created = toTask(row, links);
    await appendAudit(trx, { actor, action: 'task.create', objectType: 'task', objectId: created.ref, outcome: 'success', at: now, detail: { type: created.type, state: created.state } });
    const subject = { kind: 'task' as const, id: created.id, label: created.ref };
    const base = { subject, controlIds, ...(created.assigneeId ? { assigneeId: created.assigneeId } : {}) };
    await deps.events.emit(trx, newEvent({ ...base, type: 'task.created', summary: `${created.ref} created: ${created.title}` }, now));
    if (created.assigneeId) await deps.events.emit(trx, newEvent({ ...base, type: 'task.assigned', summary: `${created.ref} assigned: ${created.title}` }, now));
    if (policy) {
      const approverIds = await eligibleApprovers(trx, created);
      await deps.events.emit(trx, newEvent({ ...base, approverIds, type: 'task.approval_requested', summary: `${created.ref} needs a decision: ${created.title}` }, now));
    }
    return created;
  });
  return ok(task);
}

/**
 * Moves a task along the state machine (not into approved/denied/expired: those are decisions). The actor
 * must be an admin, or the assignee (start, submit, complete), or the requester (cancel).
 */
export async function transitionTask(deps: DomainDeps, actor: Actor, taskId: string, to: TaskState, note?: string): Promise<Result<Task>> {
  const now = deps.clock.now();
  const task = await getTask(deps.db, taskId);
  const action = `task.transition.${to}`;
  const refused = async (code: string, message: string) => {
    await auditRefusal(deps.db, { actor, action, objectType: 'task', objectId: task?.ref ?? taskRef(taskId), at: now, code, message, detail: { from: task?.state ?? null, to } });
    return refuse<Task>(code, message);
  };
  if (!task) return refused('task_not_found', `no task ${taskRef(taskId)}`);
  if (DECISION_STATES.includes(to)) return refused('invalid_transition', `${task.ref} becomes ${to} only through approval decisions`);
  if (!TRANSITIONS[task.state].includes(to)) {
    const allowed = TRANSITIONS[task.state].filter((state) => !DECISION_STATES.includes(state));
    return refused('invalid_transition', `${task.ref} is ${task.state}; it cannot become ${to}${allowed.length ? ` (it can become ${allowed.join(', ')})` : ' (that is final)'}`);
  }
  if (to === 'done' && task.policy && task.state !== 'approved') return refused('approval_required', `${task.ref} needs an approval before it can be done`);
  if (to === 'pending_approval' && !task.policy) return refused('no_approval_policy', `${task.ref} has no approval policy to request a decision under`);
  const userId = actor.user?.id;
  const isAdmin = can(actor.user, 'tasks.manage') || isOperator(actor);
  const allowedByRole =
    isAdmin || (to === 'cancelled' ? userId !== undefined && userId === task.requesterId : userId !== undefined && userId === task.assigneeId);
  if (!allowedByRole) return refused('forbidden', `only ${to === 'cancelled' ? 'the requester' : 'the assignee'} or an admin can move ${task.ref} to ${to}`);

  const updated = await deps.db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('tasks')
      .set({ state: to, version: task.version + 1, updated_at: now })
      .where('id', '=', task.id)
      .where('version', '=', task.version)
      .returningAll()
      .executeTakeFirst();
    if (!row) return undefined;
    const next = toTask(row, task.links);
    await appendAudit(trx, { actor, action, objectType: 'task', objectId: task.ref, outcome: 'success', at: now, detail: { from: task.state, to, ...(note ? { note } : {}) } });
    const event = { subject: { kind: 'task' as const, id: task.id, label: task.ref }, controlIds: controlIdsOf(task), summary: `${task.ref} is now ${to} (was ${task.state})`, data: { from: task.state, to, by: actorLabel(actor) } };
    await deps.events.emit(trx, newEvent({ ...event, type: 'task.state_changed' }, now));
    if (to === 'pending_approval') {
      const approverIds = await eligibleApprovers(trx, task);
      await deps.events.emit(trx, newEvent({ ...event, approverIds, type: 'task.approval_requested', summary: `${task.ref} needs a decision: ${task.title}` }, now));
    }
    return next;
  });
  if (!updated) return refused('conflict', `${task.ref} was changed by someone else just now; look at it again and retry`);
  return ok(updated);
}

/**
 * Reassigns a task (or unassigns it: `assigneeId` null): admins only. Audited, and announced as `task.assigned`
 * (with the new assignee, who is notified; a task linked to a connected system's record is reassigned there).
 */
export async function assignTask(deps: DomainDeps, actor: Actor, taskId: string, assigneeId: string | null): Promise<Result<Task>> {
  const now = deps.clock.now();
  const task = await getTask(deps.db, taskId);
  const refused = async (code: string, message: string) => {
    await auditRefusal(deps.db, { actor, action: 'task.assign', objectType: 'task', objectId: task?.ref ?? taskRef(taskId), at: now, code, message });
    return refuse<Task>(code, message);
  };
  if (!task) return refused('task_not_found', `no task ${taskRef(taskId)}`);
  if (!isOperator(actor) && !can(actor.user, 'tasks.manage')) return refused('forbidden', 'reassigning tasks needs the admin role');
  if (assigneeId !== null && !(await deps.db.selectFrom('users').select('id').where('id', '=', assigneeId).where('active', '=', true).executeTakeFirst())) return refused('unknown_user', 'no active user to assign it to');
  if (task.assigneeId === assigneeId) return ok(task);
  const updated = await deps.db.transaction().execute(async (trx) => {
    const row = await trx.updateTable('tasks').set({ assignee_id: assigneeId, external_assignee: null, version: task.version + 1, updated_at: now }).where('id', '=', task.id).where('version', '=', task.version).returningAll().executeTakeFirst();
    if (!row) return undefined;
    await appendAudit(trx, { actor, action: 'task.assign', objectType: 'task', objectId: task.ref, outcome: 'success', at: now, detail: { from: task.assigneeId, to: assigneeId } });
    const subject = { kind: 'task' as const, id: task.id, label: task.ref };
    await deps.events.emit(trx, newEvent({ subject, controlIds: controlIdsOf(task), ...(assigneeId ? { assigneeId } : {}), type: 'task.assigned', summary: assigneeId ? `${task.ref} assigned: ${task.title}` : `${task.ref} unassigned: ${task.title}`, data: { from: task.assigneeId, to: assigneeId, by: actorLabel(actor) } }, now));
    return toTask(row, task.links);
  });
  if (!updated) return refused('conflict', `${task.ref} was changed by someone else just now; look at it again and retry`);
  return ok(updated);
}

/**
 * Adds a comment to a task: kept in the audit log (the task's history) and announced as `task.commented`.
 * `source` names where it came from (a partner webhook delivery) so that a retried delivery adds it once.
 */
export async function commentOnTask(deps: DomainDeps, actor: Actor, taskId: string, text: string, source?: string): Promise<Result<{ task: Task; added: boolean }>> {
  const now = deps.clock.now();
  const task = await getTask(deps.db, taskId);
  if (!task) return refuse('unknown_task', `no task ${taskRef(taskId)}`);
  const body = text.trim();
  if (!body) return refuse('invalid_comment', 'a comment needs text');
  if (!isOperator(actor) && !can(actor.user, 'tasks.manage') && actor.user?.id !== task.assigneeId && actor.user?.id !== task.requesterId) {
    await auditRefusal(deps.db, { actor, action: 'task.comment', objectType: 'task', objectId: task.ref, at: now, code: 'forbidden', message: 'only the assignee, the requester or an admin may comment' });
    return refuse('forbidden', 'only the assignee, the requester or an admin may comment on this task');
  }
  const added = await deps.db.transaction().execute(async (trx) => {
    if (source) {
      // Serialised per source, so two runs of one delivery cannot both add the comment.
      await sql`select pg_advisory_xact_lock(hashtext(${`task.comment:${source}`}))`.execute(trx);
      const seen = await trx
        .selectFrom('audit_log')
        .select('id')
        .where('action', '=', 'task.comment')
        .where('object_id', '=', task.ref)
        .where(sql<boolean>`detail->>'source' = ${source}`)
        .executeTakeFirst();
      if (seen) return false;
    }
    await appendAudit(trx, { actor, action: 'task.comment', objectType: 'task', objectId: task.ref, outcome: 'success', at: now, detail: { text: body.slice(0, 4000), ...(source ? { source } : {}) } });
    const subject = { kind: 'task' as const, id: task.id, label: task.ref };
    await deps.events.emit(trx, newEvent({ subject, controlIds: controlIdsOf(task), type: 'task.commented', summary: `${task.ref} comment: ${body.slice(0, 200)}`, data: { text: body.slice(0, 4000), by: actorLabel(actor), ...(source ? { source } : {}) } }, now));
    return true;
  });
  return ok({ task, added });
}

export const controlIdsOf = (task: Pick<Task, 'links'>) => task.links.filter((link) => link.kind === 'control').map((link) => link.target);
