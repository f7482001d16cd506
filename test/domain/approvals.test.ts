/**
 * The approval policy, decided server-side: approver set (users, roles, control owners), separation of
 * duties, quorum, expiry, reason on deny, one decision per person, and races between simultaneous clicks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/domain/actor.ts';
import { decide } from '../../src/domain/approvals.ts';
import { type CreateTaskInput, getTask } from '../../src/domain/tasks.ts';
import type { User } from '../../src/domain/users.ts';
import { type DomainFixture, auditRows, domainFixture, eventsFor } from '../support/domain.ts';

const as = (user: User): Actor => ({ surface: 'slack', user });

describe('approvals', () => {
  let fx: DomainFixture;
  let requester: User;
  let assignee: User;
  beforeAll(async () => {
    fx = await domainFixture();
    requester = await fx.user({ roles: ['approver'], name: 'Rita Requester' });
    assignee = await fx.user({ roles: ['approver'], name: 'Sam Assignee' });
  });
  afterAll(() => fx.close());

  const approvalTask = (policy: CreateTaskInput['policy'], extra: Partial<CreateTaskInput> = {}) =>
    fx.task({ type: 'approval', requesterId: requester.id, assigneeId: assignee.id, policy, ...extra });

  it('lets a named approver approve, and records the decision, its audit row and its event', async () => {
    const ann = await fx.user({ roles: ['approver'], name: 'Ann' });
    const task = await approvalTask({ approverUserIds: [ann.id] });
    const result = await decide(fx.deps, as(ann), task.id, 'approve', 'fine');
    expect(result).toMatchObject({ ok: true, value: { final: true, approvals: 1, quorum: 1, task: { state: 'approved' } } });
    const rows = await fx.tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', task.id).execute();
    expect(rows).toMatchObject([{ user_id: ann.id, decision: 'approve', reason: 'fine', surface: 'slack' }]);
    expect((await auditRows(fx, task.ref)).at(-1)).toMatchObject({ action: 'task.approve', outcome: 'success', actor: `user:${ann.id}` });
    expect(await eventsFor(fx, task.id)).toContain('task.decided');
  });

  it.each([
    ['a user outside the approver set', async () => (await fx.user({ roles: ['approver'] })), 'not_an_approver'],
    ['the requester', () => Promise.resolve(requester), 'self_approval'],
    ['the assignee', () => Promise.resolve(assignee), 'self_approval'],
    ['a viewer', async () => (await fx.user({ roles: ['viewer'] })), 'forbidden'],
  ] as const)('refuses %s, audits it, and leaves the task pending', async (_label, who, code) => {
    const ann = await fx.user({ roles: ['approver'] });
    const user = await who();
    const task = await approvalTask({ approverUserIds: [ann.id, requester.id, assignee.id] });
    const result = await decide(fx.deps, as(user), task.id, 'approve');
    expect(result).toMatchObject({ ok: false, refusal: { code } });
    expect((await getTask(fx.tdb.db, task.id))?.state).toBe('pending_approval');
    expect((await auditRows(fx, task.ref)).at(-1)).toMatchObject({ action: 'task.approve', outcome: 'refused', detail: { code } });
  });

  it('refuses an unlinked chat user with how to link', async () => {
    const task = await approvalTask({ approverRoles: ['approver'] });
    const result = await decide(fx.deps, { surface: 'slack', user: undefined, identity: { surface: 'slack', tenant: 'T1', externalId: 'U9' } }, task.id, 'approve');
    expect(result).toMatchObject({ ok: false, refusal: { code: 'not_linked', message: expect.stringContaining('/projectx link') } });
    expect((await auditRows(fx, task.ref)).at(-1)).toMatchObject({ actor: 'slack:T1/U9', outcome: 'refused' });
  });

  it('accepts approvers by role and by control ownership', async () => {
    const byRole = await fx.user({ roles: ['approver'] });
    const roleTask = await approvalTask({ approverRoles: ['approver'] });
    expect(await decide(fx.deps, as(byRole), roleTask.id, 'approve')).toMatchObject({ ok: true });

    const owner = await fx.user({ roles: ['approver'] });
    const other = await fx.user({ roles: ['approver'] });
    const control = await fx.control({ ownerId: owner.id });
    const ownerTask = await approvalTask({ controlOwners: true }, { controlIds: [control] });
    expect(await decide(fx.deps, as(other), ownerTask.id, 'approve')).toMatchObject({ ok: false, refusal: { code: 'not_an_approver' } });
    expect(await decide(fx.deps, as(owner), ownerTask.id, 'approve')).toMatchObject({ ok: true, value: { final: true } });
  });

  it('requires a reason to deny, and a deny decides the task', async () => {
    const ann = await fx.user({ roles: ['approver'] });
    const task = await approvalTask({ approverUserIds: [ann.id] });
    expect(await decide(fx.deps, as(ann), task.id, 'deny', '   ')).toMatchObject({ ok: false, refusal: { code: 'reason_required' } });
    expect(await decide(fx.deps, as(ann), task.id, 'deny', 'no ticket')).toMatchObject({ ok: true, value: { final: true, task: { state: 'denied' } } });
  });

  it('needs 2 of 3 approvers for quorum 2; the third hears it was already approved, by whom and when', async () => {
    const [a, b, c] = [await fx.user({ roles: ['approver'], name: 'Alpha' }), await fx.user({ roles: ['approver'], name: 'Bravo' }), await fx.user({ roles: ['approver'], name: 'Charlie' })];
    const task = await approvalTask({ approverUserIds: [a.id, b.id, c.id], quorum: 2 });
    expect(await decide(fx.deps, as(a), task.id, 'approve')).toMatchObject({ ok: true, value: { final: false, approvals: 1, task: { state: 'pending_approval' } } });
    expect(await decide(fx.deps, as(a), task.id, 'approve')).toMatchObject({ ok: false, refusal: { code: 'already_voted' } });
    fx.clock.advance(60_000);
    expect(await decide(fx.deps, as(b), task.id, 'approve')).toMatchObject({ ok: true, value: { final: true, approvals: 2, task: { state: 'approved' } } });
    const late = await decide(fx.deps, as(c), task.id, 'approve');
    expect(late).toMatchObject({ ok: false, refusal: { code: 'already_decided', message: `${task.ref} was already approved by Bravo at ${fx.clock.now().toISOString().slice(0, 16).replace('T', ' ')} UTC` } });
    expect(await eventsFor(fx, task.id)).toEqual(expect.arrayContaining(['task.approval_recorded', 'task.decided']));
  });

  it('refuses a decision after the approval window and expires the task', async () => {
    const ann = await fx.user({ roles: ['approver'] });
    const task = await approvalTask({ approverUserIds: [ann.id], expiresAt: new Date(fx.clock.now().getTime() + 3_600_000).toISOString() });
    fx.clock.advance(3_600_001);
    expect(await decide(fx.deps, as(ann), task.id, 'approve')).toMatchObject({ ok: false, refusal: { code: 'approval_expired' } });
    expect((await getTask(fx.tdb.db, task.id))?.state).toBe('expired');
    expect((await auditRows(fx, task.ref)).map((row) => `${row.action}:${row.outcome}`)).toEqual(expect.arrayContaining(['task.expire:success', 'task.approve:refused']));
  });

  it('20 simultaneous approve/deny clicks on one task make exactly one decision; 19 hear who decided', async () => {
    const approvers = await Promise.all(Array.from({ length: 20 }, (_, i) => fx.user({ roles: ['approver'], name: `Approver ${i}` })));
    const task = await approvalTask({ approverUserIds: approvers.map((user) => user.id) });
    const results = await Promise.all(approvers.map((user, i) => decide(fx.deps, as(user), task.id, i % 2 === 0 ? 'approve' : 'deny', `reason ${i}`)));
    const winners = results.filter((result) => result.ok);
    expect(winners).toHaveLength(1);
    const losers = results.filter((result) => !result.ok);
    expect(losers).toHaveLength(19);
    for (const loser of losers) expect(loser).toMatchObject({ ok: false, refusal: { code: 'already_decided', message: expect.stringMatching(new RegExp(`^${task.ref} was already (approved|denied) by Approver \\d+ at `)) } });
    const decisions = await fx.tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', task.id).execute();
    expect(decisions).toHaveLength(1);
    const final = await getTask(fx.tdb.db, task.id);
    expect(final?.state).toBe(decisions[0]!.decision === 'approve' ? 'approved' : 'denied');
    // Losers rolled back their decision rows and their events: exactly one task.decided event exists.
    expect((await eventsFor(fx, task.id)).filter((type) => type === 'task.decided')).toHaveLength(1);
    const audit = await auditRows(fx, task.ref);
    expect(audit.filter((row) => row.outcome === 'success' && row.action !== 'task.create')).toHaveLength(1);
    expect(audit.filter((row) => row.outcome === 'refused')).toHaveLength(19);
  });
});
