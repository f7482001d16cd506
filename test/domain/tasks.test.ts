/**
 * The task state machine: every allowed move succeeds (and is audited, and emits its event); every other move
 * is refused with a reason, audited as a refusal, and changes nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TaskState } from '../../src/db/schema.ts';
import { CLI_ACTOR, type Actor } from '../../src/domain/actor.ts';
import { TASK_STATES, TRANSITIONS, assignTask, createTask, getTask, transitionTask } from '../../src/domain/tasks.ts';
import { tasksVerb } from '../../src/cli/verbs/tasks.ts';
import { type DomainFixture, auditRows, domainFixture, eventsFor } from '../support/domain.ts';
import { operatorContext, runOperator } from '../support/operator.ts';

describe('task state machine', () => {
  let fx: DomainFixture;
  let admin: Actor;
  beforeAll(async () => {
    fx = await domainFixture();
    admin = { surface: 'console', user: await fx.user({ roles: ['admin'] }) };
  });
  afterAll(() => fx.close());

  const DECISIONS: readonly TaskState[] = ['approved', 'denied', 'expired'];

  /** A task in `state`, with an approval policy when the state needs one. */
  async function taskIn(state: TaskState, withPolicy: boolean) {
    const approver = await fx.user({ roles: ['approver'] });
    const task = await fx.task(withPolicy ? { type: 'approval', policy: { approverUserIds: [approver.id] } } : {});
    await fx.tdb.db.updateTable('tasks').set({ state }).where('id', '=', task.id).execute();
    return (await getTask(fx.tdb.db, task.id))!;
  }

  const pairs = TASK_STATES.flatMap((from) => TASK_STATES.map((to) => [from, to] as const));

  it.each(pairs)('%s -> %s', async (from, to) => {
    // States that only exist under an approval policy get one; so does the move into pending_approval.
    const withPolicy = ['pending_approval', 'approved', 'denied', 'expired'].includes(from) || to === 'pending_approval';
    const task = await taskIn(from, withPolicy);
    const result = await transitionTask(fx.deps, admin, task.id, to, 'test');
    const allowed = TRANSITIONS[from].includes(to) && !DECISIONS.includes(to) && !(to === 'done' && withPolicy && from !== 'approved');
    const after = (await getTask(fx.tdb.db, task.id))!;
    const audit = await auditRows(fx, task.ref);
    const last = audit.at(-1)!;
    if (allowed) {
      expect(result).toMatchObject({ ok: true, value: { state: to, version: task.version + 1 } });
      expect(after.state).toBe(to);
      expect(last).toMatchObject({ action: `task.transition.${to}`, outcome: 'success', detail: { from, to, note: 'test' } });
      expect(await eventsFor(fx, task.id)).toContain('task.state_changed');
    } else {
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(['invalid_transition', 'approval_required']).toContain(result.refusal.code);
      expect(result.refusal.message).toContain(task.ref);
      expect(after.state).toBe(from);
      expect(after.version).toBe(task.version);
      expect(last).toMatchObject({ action: `task.transition.${to}`, outcome: 'refused', detail: { code: result.refusal.code } });
    }
  });

  it('lets the assignee start and finish, the requester cancel, and refuses everyone else', async () => {
    const assignee = { surface: 'console' as const, user: await fx.user({ roles: ['contributor'] }) };
    const requester = { surface: 'console' as const, user: await fx.user({ roles: ['contributor'] }) };
    const stranger = { surface: 'console' as const, user: await fx.user({ roles: ['contributor'] }) };
    const task = await fx.task({ assigneeId: assignee.user.id, requesterId: requester.user.id });
    const refused = await transitionTask(fx.deps, stranger, task.id, 'in_progress');
    expect(refused).toMatchObject({ ok: false, refusal: { code: 'forbidden' } });
    expect(await transitionTask(fx.deps, assignee, task.id, 'in_progress')).toMatchObject({ ok: true, value: { state: 'in_progress' } });
    expect(await transitionTask(fx.deps, assignee, task.id, 'cancelled')).toMatchObject({ ok: false, refusal: { code: 'forbidden' } });
    expect(await transitionTask(fx.deps, requester, task.id, 'cancelled')).toMatchObject({ ok: true, value: { state: 'cancelled' } });
    expect((await auditRows(fx, task.ref)).filter((row) => row.outcome === 'refused')).toHaveLength(2);
  });

  it('reassigns a task for an admin (audited, task.assigned to the new assignee), and refuses others, unknown users and tasks', async () => {
    const first = await fx.user({ roles: ['contributor'] });
    const second = await fx.user({ roles: ['contributor'] });
    const task = await fx.task({ assigneeId: first.id });
    const moved = await assignTask(fx.deps, admin, task.id, second.id);
    expect(moved).toMatchObject({ ok: true, value: { assigneeId: second.id, version: task.version + 1 } });
    expect((await auditRows(fx, task.ref)).at(-1)).toMatchObject({ action: 'task.assign', outcome: 'success', detail: { from: first.id, to: second.id } });
    expect(await eventsFor(fx, task.id)).toContain('task.assigned');
    expect(await assignTask(fx.deps, { surface: 'console', user: first }, task.id, first.id)).toMatchObject({ ok: false, refusal: { code: 'forbidden' } });
    expect(await assignTask(fx.deps, CLI_ACTOR, task.id, '00000000-0000-4000-8000-000000000000')).toMatchObject({ ok: false, refusal: { code: 'unknown_user' } });
    expect(await assignTask(fx.deps, CLI_ACTOR, '999999999', null)).toMatchObject({ ok: false, refusal: { code: 'task_not_found' } });
    expect(await assignTask(fx.deps, CLI_ACTOR, task.id, null)).toMatchObject({ ok: true, value: { assigneeId: null } });

    // The operator's verb: `projectx tasks assign T-n <email> | --none`.
    const ctx = operatorContext(fx);
    expect(await runOperator(ctx, tasksVerb, ['assign', task.ref, first.email])).toMatchObject({ code: 0, out: [`${task.ref} assigned to ${first.email}`] });
    expect((await getTask(fx.tdb.db, task.id))!.assigneeId).toBe(first.id);
    expect(await runOperator(ctx, tasksVerb, ['assign', task.ref, '--none'])).toMatchObject({ code: 0, out: [`${task.ref} unassigned`] });
    await expect(runOperator(ctx, tasksVerb, ['assign', task.ref])).rejects.toThrow("give the assignee's email, or --none");
  });

  it('lets exactly one of two simultaneous moves win, and refuses an unknown task', async () => {
    const task = await fx.task();
    const results = await Promise.all([transitionTask(fx.deps, admin, task.id, 'in_progress'), transitionTask(fx.deps, admin, task.id, 'in_progress')]);
    expect(results.filter((result) => result.ok)).toHaveLength(1);
    // The loser either lost the compare-and-set or, arriving second, found the task already in progress.
    const loser = results.find((result) => !result.ok);
    expect(loser && !loser.ok && ['conflict', 'invalid_transition'].includes(loser.refusal.code)).toBe(true);
    expect((await getTask(fx.tdb.db, task.id))?.version).toBe(task.version + 1);
    expect(await transitionTask(fx.deps, admin, '999999', 'done')).toMatchObject({ ok: false, refusal: { code: 'task_not_found' } });
  });

  it('creates approval tasks straight into pending_approval and emits created, assigned and approval requested', async () => {
    const approver = await fx.user({ roles: ['approver'] });
    const assignee = await fx.user({ roles: ['contributor'] });
    const control = await fx.control({ ownerId: approver.id });
    const result = await createTask(fx.deps, CLI_ACTOR, {
      type: 'approval',
      title: 'Grant access',
      assigneeId: assignee.id,
      controlIds: [control],
      policy: { controlOwners: true },
    });
    expect(result).toMatchObject({ ok: true, value: { state: 'pending_approval', links: [{ kind: 'control', target: control }] } });
    if (!result.ok) return;
    expect(await eventsFor(fx, result.value.id)).toEqual(['task.approval_requested', 'task.assigned', 'task.created']);
    const [requested] = await fx.jobs.boss.findJobs<{ payload: { approverIds: string[] } }>('domain.event', { data: { payload: { type: 'task.approval_requested', subject: { id: result.value.id } } } });
    expect(requested?.data.payload.approverIds).toEqual([approver.id]);
  });

  it('refuses invalid tasks: no approvers for an approval, an unknown control, a non-admin creator', async () => {
    expect(await createTask(fx.deps, CLI_ACTOR, { type: 'approval', title: 'x' })).toMatchObject({ ok: false, refusal: { code: 'invalid_task' } });
    expect(await createTask(fx.deps, CLI_ACTOR, { type: 'approval', title: 'x', policy: { quorum: 1 } })).toMatchObject({ ok: false, refusal: { code: 'invalid_policy' } });
    expect(await createTask(fx.deps, CLI_ACTOR, { type: 'review', title: 'x', controlIds: ['NO-1'] })).toMatchObject({ ok: false, refusal: { code: 'unknown_control' } });
    const viewer = { surface: 'console' as const, user: await fx.user({ roles: ['viewer'] }) };
    expect(await createTask(fx.deps, viewer, { type: 'review', title: 'x' })).toMatchObject({ ok: false, refusal: { code: 'forbidden' } });
  });
});
