import { renderText } from '../../src/bot/console/render.ts';
import { renderTask } from '../../src/bot/render.ts';
import { toBlocks } from '../../src/bot/slack/block-kit.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleSession } from '../../src/bot/console/session.ts';
import type { Role } from '../../src/db/schema.ts';
import { type Task, getTask } from '../../src/domain/tasks.ts';
import type { User } from '../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';

describe('ConsoleSession', () => {
  let fixture: DomainFixture;
  beforeAll(async () => {
    fixture = await domainFixture();
  });
  afterAll(async () => {
    await fixture.close();
  });

  const sessionFor = (user: User) => new ConsoleSession({ domain: fixture.deps, actor: { surface: 'console', user }, integrations: () => Promise.resolve([]) });
  const userWith = (...roles: Role[]) => fixture.user({ roles });
  const decisionsFor = (taskId: string) => fixture.tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', taskId).execute();
  const stateOf = async (task: Task) => (await getTask(fixture.tdb.db, task.id))?.state;

  /** An approver with one task waiting for their decision, and a session whose last message lists it. */
  async function approverWithPendingTask() {
    const approver = await userWith('approver');
    const task = await fixture.task({ type: 'approval', title: 'Rotate the SSO signing key', policy: { approverUserIds: [approver.id], quorum: 1 } });
    const session = sessionFor(approver);
    const listing = await session.handle('tasks');
    return { approver, task, session, listing };
  }

  it('renders a listing as plain text with numbered buttons', async () => {
    const { task, listing } = await approverWithPendingTask();
    expect(listing.refused).toBe(false);
    const lines = listing.text.split('\n');
    expect(lines).toContain('== Waiting for your decision (1) ==');
    expect(lines).toContain(`${task.ref} Rotate the SSO signing key · pending approval`);
    expect(lines).toContain('[1] Approve   [2] Deny');
    expect(lines).toContain('== Your open tasks (0) ==');
    expect(lines).toContain('  (Nothing open.)');
    expect(listing.text).not.toMatch(/[*`]/);
  });

  it('starts at the plain prompt, and a fresh session has no buttons to press', async () => {
    const session = sessionFor(await userWith('viewer'));
    expect(session.prompt).toBe('projectx> ');
    expect(await session.handle('press 1')).toEqual({ text: 'The last message has no buttons.', refused: true });
  });

  it('accepts a leading /projectx like the slash command', async () => {
    const out = await sessionFor(await userWith('viewer')).handle('/projectx link');
    expect(out.refused).toBe(false);
    expect(out.text).toContain('You are linked to ProjectX as');
  });

  it('`press 1` on a listing approves the task', async () => {
    const { approver, task, session } = await approverWithPendingTask();
    const out = await session.handle('press 1');
    expect(out).toEqual({ text: `You approved ${task.ref}: it is now approved (1 of 1).`, refused: false });
    expect(await stateOf(task)).toBe('approved');
    expect(await decisionsFor(task.id)).toEqual([expect.objectContaining({ user_id: approver.id, decision: 'approve', surface: 'console' })]);
  });

  it('`press 2` (Deny) asks for a reason; the next line is the reason and denies the task', async () => {
    const { approver, task, session } = await approverWithPendingTask();
    const asked = await session.handle('PRESS 2');
    expect(asked.refused).toBe(false);
    expect(asked.text).toBe(`Why are you denying ${task.ref}?`);
    expect(session.prompt).toBe(`reason for denying ${task.ref}> `);
    expect(await decisionsFor(task.id)).toEqual([]);

    const denied = await session.handle('  vendor has not sent the SOC 2 report  ');
    expect(denied).toEqual({ text: `You denied ${task.ref}: it is now denied.`, refused: false });
    expect(session.prompt).toBe('projectx> ');
    expect(await stateOf(task)).toBe('denied');
    expect(await decisionsFor(task.id)).toEqual([
      expect.objectContaining({ user_id: approver.id, decision: 'deny', reason: 'vendor has not sent the SOC 2 report', surface: 'console' }),
    ]);
  });

  it('treats a reason line as text, not as a command or a button press', async () => {
    const { task, session } = await approverWithPendingTask();
    await session.handle('press 2');
    await session.handle('press 1');
    expect(await stateOf(task)).toBe('denied');
    expect((await decisionsFor(task.id))[0]).toMatchObject({ decision: 'deny', reason: 'press 1' });
  });

  it('cancels the deny when the reason is empty, leaving the task pending', async () => {
    const { task, session } = await approverWithPendingTask();
    await session.handle('press 2');
    const cancelled = await session.handle('   ');
    expect(cancelled).toEqual({ text: 'Deny cancelled (no reason given).', refused: true });
    expect(session.prompt).toBe('projectx> ');
    expect(await stateOf(task)).toBe('pending_approval');
    expect(await decisionsFor(task.id)).toEqual([]);
    // The next line is an ordinary command again.
    const again = await session.handle('tasks');
    expect(again.text).toContain('[1] Approve   [2] Deny');
  });

  it('refuses `press 9` when the last message has no ninth button, and keeps the buttons', async () => {
    const { task, session } = await approverWithPendingTask();
    expect(await session.handle('press 9')).toEqual({ text: 'There is no button 9; the last message has 2.', refused: true });
    expect(await session.handle('press 0')).toMatchObject({ refused: true, text: expect.stringContaining('no button 0') });
    expect(await stateOf(task)).toBe('pending_approval');
    expect((await session.handle('press 1')).text).toContain(`You approved ${task.ref}`);
  });

  it('marks refusals, and a refusal replaces the buttons of the previous message', async () => {
    const { task, session } = await approverWithPendingTask();
    const refused = await session.handle('aprove');
    expect(refused.refused).toBe(true);
    expect(refused.text).toContain('Did you mean /projectx approve <id> [reason]?');
    expect(await session.handle('press 1')).toEqual({ text: 'The last message has no buttons.', refused: true });
    expect(await stateOf(task)).toBe('pending_approval');
  });

  it('points the evidence verb at `projectx evidence add`', async () => {
    const contributor = await userWith('contributor');
    const session = sessionFor(contributor);
    const any = await session.handle('evidence');
    expect(any.refused).toBe(false);
    expect(any.text).toContain('Opening the evidence upload form for a control or task you choose.');
    expect(any.text).toContain('projectx evidence add --as <you> --control <id> <file>');

    const control = await fixture.control({ ownerId: contributor.id });
    const forControl = await session.handle(`evidence ${control.toLowerCase()}`);
    expect(forControl.text).toContain(`projectx evidence add --as <you> --control ${control} <file>`);

    const task = await fixture.task({ title: 'Collect access reviews' });
    const forTask = await session.handle(`evidence ${task.ref}`);
    expect(forTask.text).toContain(`projectx evidence add --as <you> --task ${task.id} <file>`);

    const missing = await session.handle('evidence AC-999999');
    expect(missing).toEqual({ text: 'There is no control AC-999999.', refused: true });
    expect(missing.text).not.toContain('evidence add');
  });

  it('refuses the evidence verb for a viewer without the upload hint', async () => {
    const out = await sessionFor(await userWith('viewer')).handle('evidence');
    expect(out.refused).toBe(true);
    expect(out.text).not.toContain('projectx evidence add');
  });
});

describe('deep links', () => {
  it('renders a task linked to an external record with its URL, in Block Kit and on the console', () => {
    const task = {
      id: '7', ref: 'T-7', type: 'remediation' as const, title: 'Patch host', description: null, state: 'open' as const, priority: 'high' as const,
      requesterId: null, assigneeId: null, dueAt: null, policy: null, version: 1, labels: [], externalAssignee: null, createdAt: new Date(), updatedAt: new Date(),
      links: [{ kind: 'external' as const, target: 'servicenow:INC0012345', url: 'https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=abc|x' }],
    };
    const message = renderTask(task);
    expect(JSON.stringify(toBlocks(message))).toContain('<https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=abc%7Cx|Open servicenow:INC0012345>');
    expect(renderText(message).text).toContain('Open servicenow:INC0012345: https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=abc|x');
  });
});
