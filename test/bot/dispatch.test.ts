import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/bot/commands/context.ts';
import { runAction, runCommand } from '../../src/bot/commands/dispatch.ts';
import { USAGE } from '../../src/bot/commands/parse.ts';
import type { Reply } from '../../src/bot/message.ts';
import type { Role } from '../../src/db/schema.ts';
import type { ChatIdentity } from '../../src/domain/actor.ts';
import { getTask } from '../../src/domain/tasks.ts';
import { type User, findUserByIdentity, redeemLinkCode } from '../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';

describe('runCommand / runAction', () => {
  let fixture: DomainFixture;
  beforeAll(async () => {
    fixture = await domainFixture();
  });
  afterAll(async () => {
    await fixture.close();
  });

  const slack = (externalId: string): ChatIdentity => ({ surface: 'slack', tenant: 'T1', externalId });
  const contextFor = (user: User | undefined, identity: ChatIdentity = slack('U1')): CommandContext => ({
    domain: fixture.deps,
    actor: { surface: 'slack', user, identity },
    integrations: () => Promise.resolve([]),
  });
  const userWith = (...roles: Role[]) => fixture.user({ roles });
  const refusals = (actor: string, action: string) =>
    fixture.tdb.db.selectFrom('audit_log').selectAll().where('actor', '=', actor).where('action', '=', action).where('outcome', '=', 'refused').orderBy('seq').execute();
  const decisionsFor = (taskId: string) => fixture.tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', taskId).execute();
  const pendingTaskFor = (approver: User) => fixture.task({ type: 'approval', title: 'Grant prod access', policy: { approverUserIds: [approver.id], quorum: 1 } });
  const helpLines = (reply: Reply) => reply.message.text.split('\n');

  describe('an unlinked chat identity', () => {
    it('can read help, which only offers help and link', async () => {
      const reply = await runCommand(contextFor(undefined), 'help');
      expect(reply.outcome).toBe('ok');
      expect(reply.message.text).toContain('not linked');
      expect(helpLines(reply).filter((line) => line.startsWith('`'))).toEqual([
        expect.stringContaining(`\`${USAGE.help}\``),
        expect.stringContaining(`\`${USAGE.link}\``),
      ]);
    });

    it.each(['tasks', 'tasks --all', 'task T-1', 'approve T-1', 'deny T-1 no', 'ack INC0012345', 'incident INC0012345', 'evidence', 'status'])(
      'is refused `%s` with not_linked, and the refusal is audited under its chat identity',
      async (text) => {
        const verb = text.split(' ')[0]!;
        const before = (await refusals('slack:T1/U1', `command.${verb}`)).length;
        const reply = await runCommand(contextFor(undefined), text);
        expect(reply).toMatchObject({ outcome: 'refused', code: 'not_linked' });
        expect(reply.message.text).toContain('/projectx link');
        const rows = await refusals('slack:T1/U1', `command.${verb}`);
        expect(rows).toHaveLength(before + 1);
        expect(rows.at(-1)).toMatchObject({ surface: 'slack', object_type: 'command', object_id: verb, detail: { code: 'not_linked' } });
      },
    );

    it('gets a one-time 8-character link code that links the identity when redeemed', async () => {
      const identity = slack('U-LINK-1');
      expect(await findUserByIdentity(fixture.tdb.db, identity)).toBeUndefined();
      const reply = await runCommand(contextFor(undefined, identity), 'link');
      expect(reply.outcome).toBe('ok');
      const code = /\*([A-Z2-9]{8})\*/.exec(reply.message.text)?.[1];
      expect(code, reply.message.text).toBeDefined();
      expect(reply.message.text).toContain(`projectx users link-code ${code}`);

      const user = await userWith('viewer');
      const redeemed = await redeemLinkCode(fixture.tdb.db, code!, user.id, fixture.clock.now());
      expect(redeemed).toEqual({ ok: true, value: identity });
      expect(await redeemLinkCode(fixture.tdb.db, code!, user.id, fixture.clock.now())).toMatchObject({ ok: false, refusal: { code: 'link_code_invalid' } });
      expect((await findUserByIdentity(fixture.tdb.db, identity))?.id).toBe(user.id);

      const linked = await runCommand(contextFor(user, identity), 'link');
      expect(linked.message.text).toContain(`linked to ProjectX as ${user.displayName}`);
    });

    it('cannot redeem a link code after it expires', async () => {
      const identity = slack('U-LINK-2');
      const reply = await runCommand(contextFor(undefined, identity), 'link');
      const code = /\*([A-Z2-9]{8})\*/.exec(reply.message.text)![1]!;
      const user = await userWith('viewer');
      const late = new Date(fixture.clock.now().getTime() + 16 * 60_000);
      expect(await redeemLinkCode(fixture.tdb.db, code, user.id, late)).toMatchObject({ ok: false, refusal: { code: 'link_code_invalid' } });
      expect(await findUserByIdentity(fixture.tdb.db, identity)).toBeUndefined();
    });
  });

  describe('help by role', () => {
    const line = (verb: keyof typeof USAGE) => `\`${USAGE[verb]}\``;
    const has = (reply: Reply, verb: keyof typeof USAGE) => helpLines(reply).some((text) => text.startsWith(line(verb)));

    it('shows a viewer only what a viewer may run', async () => {
      const viewer = await userWith('viewer');
      const reply = await runCommand(contextFor(viewer), 'help');
      expect(reply.message.text).toContain(`for ${viewer.displayName} (viewer)`);
      for (const verb of ['help', 'tasks', 'task', 'incident', 'status', 'link'] as const) expect(has(reply, verb), verb).toBe(true);
      for (const verb of ['approve', 'deny', 'ack', 'evidence'] as const) expect(has(reply, verb), verb).toBe(false);
    });

    it('adds approve, deny and evidence for an approver, but not ack', async () => {
      const reply = await runCommand(contextFor(await userWith('approver')), 'help');
      for (const verb of ['approve', 'deny', 'evidence', 'tasks'] as const) expect(has(reply, verb), verb).toBe(true);
      expect(has(reply, 'ack')).toBe(false);
    });

    it('shows an admin every command', async () => {
      const reply = await runCommand(contextFor(await userWith('admin')), 'help');
      for (const verb of Object.keys(USAGE) as (keyof typeof USAGE)[]) expect(has(reply, verb), verb).toBe(true);
    });
  });

  it('refuses a viewer `ack` as forbidden, naming the usage and their role, and audits it', async () => {
    const viewer = await userWith('viewer');
    const reply = await runCommand(contextFor(viewer), 'ack INC0012345');
    expect(reply).toMatchObject({ outcome: 'refused', code: 'forbidden' });
    expect(reply.message.text).toContain(USAGE.ack);
    expect(reply.message.text).toContain('viewer');
    const [row] = await refusals(`user:${viewer.id}`, 'command.ack');
    expect(row).toMatchObject({ object_id: 'ack', detail: { code: 'forbidden' } });
  });

  it('answers a parse error as a refusal with its code', async () => {
    const reply = await runCommand(contextFor(await userWith('viewer')), 'aprove T-1');
    expect(reply).toMatchObject({ outcome: 'refused', code: 'unknown_command' });
    expect(reply.message.text).toContain(USAGE.approve);
  });

  // BUG (src/bot/commands/parse.ts:74): parseCommand returns undefined for Object.prototype keys, so this throws.
  it('answers `constructor` as an unknown command instead of throwing', async () => {
    await expect(runCommand(contextFor(await userWith('viewer')), 'constructor')).resolves.toMatchObject({ outcome: 'refused', code: 'unknown_command' });
  });

  it('reports integration health from the surface for status', async () => {
    const ctx: CommandContext = { ...contextFor(await userWith('viewer')), integrations: () => Promise.resolve([{ id: 'sn', title: 'ServiceNow', configured: true, status: 'degraded', detail: 'slow' }]) };
    const reply = await runCommand(ctx, 'status');
    expect(reply.message.text).toBe('◐ ServiceNow: degraded (slow)');
  });

  describe('buttons', () => {
    it('Approve decides the task like `approve`', async () => {
      const approver = await userWith('approver');
      const task = await pendingTaskFor(approver);
      const reply = await runAction(contextFor(approver), 'approve', task.id);
      expect(reply).toMatchObject({ outcome: 'ok' });
      expect(reply.message.text).toBe(`You approved ${task.ref}: it is now approved (1 of 1).`);
      expect((await getTask(fixture.tdb.db, task.id))?.state).toBe('approved');
      expect(await decisionsFor(task.id)).toEqual([expect.objectContaining({ user_id: approver.id, decision: 'approve', reason: null, surface: 'slack' })]);
    });

    it('Deny asks for a reason first and decides nothing', async () => {
      const approver = await userWith('approver');
      const task = await pendingTaskFor(approver);
      const reply = await runAction(contextFor(approver), 'deny', task.id);
      expect(reply.outcome).toBe('ok');
      expect(reply.modal).toEqual({ kind: 'deny_reason', taskId: task.id, taskRef: task.ref });
      expect(reply.message.text).toContain(`Why are you denying ${task.ref}?`);
      expect(await decisionsFor(task.id)).toEqual([]);
      expect((await getTask(fixture.tdb.db, task.id))?.state).toBe('pending_approval');
    });

    it('Deny by someone who may not decide is refused without opening the reason form', async () => {
      const approver = await userWith('approver');
      const task = await pendingTaskFor(approver);
      const reply = await runAction(contextFor(await userWith('viewer')), 'deny', task.id);
      expect(reply).toMatchObject({ outcome: 'refused', code: 'forbidden' });
      expect(reply.modal).toBeUndefined();
      const unlinked = await runAction(contextFor(undefined, slack('U-BTN')), 'approve', task.id);
      expect(unlinked).toMatchObject({ outcome: 'refused', code: 'not_linked' });
      expect(await decisionsFor(task.id)).toEqual([]);
    });

    it('refuses and audits an unknown action id', async () => {
      const approver = await userWith('approver');
      const task = await pendingTaskFor(approver);
      const reply = await runAction(contextFor(approver), 'escalate', task.id);
      expect(reply).toMatchObject({ outcome: 'refused', code: 'unknown_action' });
      expect(reply.message.text).toMatch(/not recognised/);
      const [row] = await refusals(`user:${approver.id}`, 'action.unknown');
      expect(row).toMatchObject({ object_type: 'action', object_id: 'escalate', detail: { code: 'unknown_action' } });
      expect(await decisionsFor(task.id)).toEqual([]);
    });
  });
});
