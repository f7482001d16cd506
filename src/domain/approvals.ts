/**
 * Approval decisions, decided server-side. A decision counts only when the user is linked, allowed by the
 * task's policy (approver set, not the requester or assignee, reason on deny, before expiry), has not decided
 * this task already, and wins a compare-and-set on the task's version. A deny vetoes; approvals finalize the
 * task once they reach the policy's quorum. Every outcome, refusals included, is audited.
 *
 * Concurrency: each decision inserts its row and bumps the task's version in one transaction; a transaction
 * whose CAS fails rolls back (its decision row with it), reads the task again and, if it is still pending,
 * tries again; otherwise it answers who decided first. So N simultaneous clicks on a quorum-1 task produce
 * exactly one decision row.
 */
import { sql } from 'kysely';
import type { TaskState } from '../db/schema.ts';
import { type Actor, SYSTEM_ACTOR } from './actor.ts';
import { appendAudit, auditRefusal } from './audit.ts';
import type { DomainDeps } from './deps.ts';
import { newEvent } from './events.ts';
import { can } from './permissions.ts';
import { type Result, ok, refuse } from './result.ts';
import { type Task, controlIdsOf, eligibleApprovers, getTask, taskRef } from './tasks.ts';

export type Decision = 'approve' | 'deny';

export interface DecisionOutcome {
  task: Task;
  decision: Decision;
  /** True when this decision finalized the task (approved or denied). */
  final: boolean;
  approvals: number;
  quorum: number;
}

const MAX_ATTEMPTS = 5;

class LostRace extends Error {}

export async function decide(deps: DomainDeps, actor: Actor, taskId: string, decision: Decision, reason?: string): Promise<Result<DecisionOutcome>> {
  const action = `task.${decision}`;
  const trimmedReason = reason?.trim() || undefined;
  for (let attempt = 1; ; attempt++) {
    const now = deps.clock.now();
    const task = await getTask(deps.db, taskId);
    const refused = async (code: string, message: string) => {
      await auditRefusal(deps.db, {
        actor,
        action,
        objectType: 'task',
        objectId: task?.ref ?? taskRef(taskId),
        at: now,
        code,
        message,
        detail: trimmedReason ? { reason: trimmedReason } : {},
      });
      return refuse<DecisionOutcome>(code, message);
    };

    if (!actor.user) return refused('not_linked', 'link your chat account to ProjectX first: `/projectx link`');
    if (!task) return refused('task_not_found', `no task ${taskRef(taskId)}`);
    if (!can(actor.user, 'tasks.decide')) return refused('forbidden', `deciding tasks needs the approver role; you have ${actor.user.roles.join(', ') || 'no roles'}`);
    if (task.state === 'approved' || task.state === 'denied') return refused('already_decided', await whoDecided(deps, task));
    if (task.state !== 'pending_approval' || !task.policy) return refused('not_pending', `${task.ref} is ${task.state}, not waiting for a decision`);
    if (task.policy.expiresAt && Date.parse(task.policy.expiresAt) <= now.getTime()) {
      await expireTask(deps, task);
      return refused('approval_expired', `the approval window for ${task.ref} closed at ${formatTime(new Date(task.policy.expiresAt))}`);
    }
    if (actor.user.id === task.requesterId || actor.user.id === task.assigneeId) {
      return refused('self_approval', `you ${actor.user.id === task.requesterId ? 'requested' : 'are assigned to'} ${task.ref}; someone else must decide it (separation of duties)`);
    }
    const approvers = await eligibleApprovers(deps.db, task);
    if (!approvers.includes(actor.user.id)) return refused('not_an_approver', `you are not an approver of ${task.ref}`);
    if (decision === 'deny' && !trimmedReason) return refused('reason_required', `a denial needs a reason: \`/projectx deny ${task.ref} <reason>\``);

    try {
      const outcome = await deps.db.transaction().execute(async (trx) => {
        // One statement: the decision row, the count of approvals with it, and the compare-and-set of the task's
        // state and version (a deny vetoes; approvals finalize at the quorum). A lost race updates no row, and
        // the decision row goes with the rolled-back transaction.
        const quorum = task.policy!.quorum;
        const { rows } = await sql<{ version: number; state: TaskState; approvals: string }>`
          with inserted as (
            insert into approval_decisions (task_id, user_id, decision, reason, surface, decided_at)
            values (${task.id}, ${actor.user!.id}, ${decision}, ${trimmedReason ?? null}, ${actor.surface}, ${now})
            returning decision),
          tally as (
            select (select count(*) from approval_decisions where task_id = ${task.id} and decision = 'approve')
                 + (select count(*) from inserted where decision = 'approve') as approvals)
          update tasks
             set state = case when ${decision}::text = 'deny' then 'denied' when tally.approvals >= ${quorum} then 'approved' else 'pending_approval' end,
                 version = ${task.version + 1},
                 updated_at = ${now}
            from tally
           where tasks.id = ${task.id} and tasks.version = ${task.version}
          returning tasks.version, tasks.state, tally.approvals`.execute(trx);
        const row = rows[0];
        if (!row) throw new LostRace();
        const approvalCount = Number(row.approvals);
        const nextState = row.state;
        const final = nextState !== 'pending_approval';
        // The event, then the audit row: both commit with the decision (the audit row is chained at commit).
        const subject = { kind: 'task' as const, id: task.id, label: task.ref };
        const who = actor.user!.displayName;
        await deps.events.emit(
          trx,
          newEvent(
            final
              ? { subject, type: 'task.decided', controlIds: controlIdsOf(task), summary: `${task.ref} ${nextState} by ${who}${trimmedReason ? `: ${trimmedReason}` : ''}`, data: { state: nextState, by: actor.user!.id, reason: trimmedReason ?? null } }
              : { subject, type: 'task.approval_recorded', controlIds: controlIdsOf(task), summary: `${task.ref}: ${who} approved (${approvalCount} of ${quorum})`, data: { approvals: approvalCount, quorum } },
            now,
          ),
        );
        await appendAudit(trx, {
          actor,
          action,
          objectType: 'task',
          objectId: task.ref,
          outcome: 'success',
          at: now,
          detail: { approvals: approvalCount, quorum, final, state: nextState, ...(trimmedReason ? { reason: trimmedReason } : {}) },
        });
        return { task: { ...task, state: nextState, version: row.version, updatedAt: now }, decision, final, approvals: approvalCount, quorum };
      });
      return ok(outcome);
    } catch (error) {
      // Lost the compare-and-set, or this user has decided already (the unique (task, user) key): look again.
      const uniqueViolation = (error as { code?: string }).code === '23505';
      if (!(error instanceof LostRace) && !uniqueViolation) throw error;
      if (uniqueViolation) {
        const previous = await deps.db.selectFrom('approval_decisions').select(['decision', 'decided_at']).where('task_id', '=', task.id).where('user_id', '=', actor.user.id).executeTakeFirst();
        if (previous) return refused('already_voted', `you already ${previous.decision === 'approve' ? 'approved' : 'denied'} ${task.ref} at ${formatTime(previous.decided_at)}`);
      }
      if (attempt >= MAX_ATTEMPTS) return refused('conflict', `${task.ref} is being decided by others right now; look at it again`);
    }
  }
}

/** "T-42 was already approved by Alice Smith at 2026-11-22 14:02 UTC" */
async function whoDecided(deps: DomainDeps, task: Task): Promise<string> {
  const row = await deps.db
    .selectFrom('approval_decisions')
    .innerJoin('users', 'users.id', 'approval_decisions.user_id')
    .select(['users.display_name', 'approval_decisions.decided_at'])
    .where('approval_decisions.task_id', '=', task.id)
    .where('approval_decisions.decision', '=', task.state === 'approved' ? 'approve' : 'deny')
    .orderBy('approval_decisions.decided_at', 'desc')
    .orderBy('approval_decisions.id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ? `${task.ref} was already ${task.state} by ${row.display_name} at ${formatTime(row.decided_at)}` : `${task.ref} was already ${task.state}`;
}

/** Moves a pending task whose approval window has closed to expired (idempotent; loses quietly to a race). */
export async function expireTask(deps: DomainDeps, task: Task): Promise<boolean> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('tasks')
      .set({ state: 'expired', version: task.version + 1, updated_at: now })
      .where('id', '=', task.id)
      .where('version', '=', task.version)
      .where('state', '=', 'pending_approval')
      .returning('id')
      .executeTakeFirst();
    if (!row) return false;
    await appendAudit(trx, { actor: SYSTEM_ACTOR, action: 'task.expire', objectType: 'task', objectId: task.ref, outcome: 'success', at: now, detail: { expiresAt: task.policy?.expiresAt ?? null } });
    await deps.events.emit(trx, newEvent({ subject: { kind: 'task', id: task.id, label: task.ref }, type: 'task.decided', controlIds: controlIdsOf(task), summary: `${task.ref} expired without a decision`, data: { state: 'expired' } }, now));
    return true;
  });
}

export function formatTime(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
