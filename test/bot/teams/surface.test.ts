/**
 * The Teams turn logic on the real command layer and database: a message runs the command language and is
 * answered with a card; an Approve click (an `adaptiveCard/action` invoke shaped as Teams sends it) decides the
 * task by the same policy as Slack; Deny asks for a reason with a required input and denies with it; an
 * unlinked person is told to link; the Action.Submit fallback works as a message.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AdaptiveCard } from '../../../src/bot/teams/cards.ts';
import { activityTenant } from '../../../src/bot/teams/inbound.ts';
import { DENY_WITH_REASON, handleTeamsTurn } from '../../../src/bot/teams/surface.ts';
import { linkIdentity } from '../../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/teams/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;

describe('Teams turns on the command layer', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx?.close());

  const deps = () => ({ domain: fx.deps, integrations: () => Promise.resolve([]) });
  /** Runs a turn: the invoke's answer, and the reply a job would send. */
  const run = (activity: Record<string, unknown>) => handleTeamsTurn(deps(), activity, tenant);
  const answer = async (activity: Record<string, unknown>) => (await run(activity)).invoke;
  const personal = fixture('teams_message_personal_docs.json');
  const tenant = activityTenant(personal)!;
  const as = (objectId: string, extra: Record<string, unknown>) => ({ ...personal, from: { id: `29:${objectId}`, name: 'Someone', aadObjectId: objectId }, ...extra });
  const clickFrom = (objectId: string, verb: string, data: Record<string, unknown>) => {
    const invoke = fixture('teams_invoke_adaptiveCard_action_sdk_test.json');
    return { ...invoke, from: { id: `29:${objectId}`, aadObjectId: objectId }, channelData: { tenant: { id: tenant } }, conversation: { ...(invoke.conversation as object), tenantId: tenant }, value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' } };
  };
  const linked = async (roles: Parameters<DomainFixture['user']>[0]) => {
    const user = await fx.user(roles);
    const objectId = crypto.randomUUID();
    await linkIdentity(fx.tdb.db, user.id, { surface: 'teams', tenant, externalId: objectId }, 'test');
    return { user, objectId };
  };

  it('answers a message with a card from the message model, and tells an unlinked person how to link', async () => {
    const { objectId } = await linked({ roles: ['viewer'] });
    const outcome = await run(as(objectId, { text: 'help' }));
    expect(outcome.invoke).toBeUndefined();
    expect(outcome.reply!.card.type).toBe('AdaptiveCard');
    expect(outcome.reply!.text).toMatch(/ProjectX commands/);
    const stranger = await run(as(crypto.randomUUID(), { text: 'tasks' }));
    expect(stranger).toMatchObject({ unlinked: true, reply: { text: expect.stringMatching(/not linked/) } });
  });

  it('decides an approval from an Approve click by the domain policy, and refuses a second decision with a message', async () => {
    const requester = await linked({ roles: ['contributor'] });
    const approver = await linked({ roles: ['approver'] });
    const task = await fx.task({ type: 'approval', requesterId: requester.user.id, policy: { approverUserIds: [approver.user.id] } });
    const approved = await answer(clickFrom(approver.objectId, 'approve', { value: task.id }));
    expect(approved).toMatchObject({ status: 200, body: { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive' } });
    const decisions = await fx.tdb.db.selectFrom('approval_decisions').select(['decision', 'user_id', 'surface']).where('task_id', '=', task.id).execute();
    expect(decisions).toEqual([{ decision: 'approve', user_id: approver.user.id, surface: 'teams' }]);
    // The requester cannot approve their own task: a message, audited by the command layer.
    const self = await answer(clickFrom(requester.objectId, 'approve', { value: task.id }));
    expect(self).toMatchObject({ status: 200, body: { type: 'application/vnd.microsoft.activity.message', value: expect.any(String) } });
  });

  it('asks for a reason on Deny with a required input, and denies with the reason given', async () => {
    const approver = await linked({ roles: ['approver'] });
    const task = await fx.task({ type: 'approval', policy: { approverUserIds: [approver.user.id] } });
    const asked = await answer(clickFrom(approver.objectId, 'deny', { value: task.id }));
    const card = asked!.body.value as AdaptiveCard;
    expect(card.body).toContainEqual(expect.objectContaining({ type: 'Input.Text', id: 'reason', isRequired: true }));
    expect(card.actions).toEqual([{ type: 'Action.Execute', title: 'Deny', verb: DENY_WITH_REASON, data: { taskId: task.id }, style: 'destructive' }]);
    // Teams sends the card's data with the inputs' values merged in.
    const empty = await answer(clickFrom(approver.objectId, DENY_WITH_REASON, { taskId: task.id, reason: '  ' }));
    expect(JSON.stringify(empty!.body.value)).toContain('A denial needs a reason.');
    await answer(clickFrom(approver.objectId, DENY_WITH_REASON, { taskId: task.id, reason: 'not in scope' }));
    const decisions = await fx.tdb.db.selectFrom('approval_decisions').select(['decision', 'reason']).where('task_id', '=', task.id).execute();
    expect(decisions).toEqual([{ decision: 'deny', reason: 'not in scope' }]);
  });

  it('takes the Action.Submit fallback (a message with the button\'s data) like the click, and refuses other invoke actions', async () => {
    const approver = await linked({ roles: ['approver'] });
    const task = await fx.task({ type: 'approval', policy: { approverUserIds: [approver.user.id] } });
    const outcome = await run(as(approver.objectId, { text: undefined, value: { verb: 'approve', value: task.id } }));
    expect(outcome.reply?.card.type).toBe('AdaptiveCard');
    expect(await fx.tdb.db.selectFrom('approval_decisions').select('decision').where('task_id', '=', task.id).execute()).toEqual([{ decision: 'approve' }]);
    const submit = clickFrom(approver.objectId, 'approve', {});
    (submit.value as { action: { type: string } }).action.type = 'Action.Submit';
    expect(await answer(submit)).toMatchObject({ status: 400, body: { value: { code: 'NotSupported' } } });
  });

  it('refuses evidence files when the service cannot keep their download addresses sealed (no encryption key)', async () => {
    const { objectId } = await linked({ roles: ['contributor'] });
    const file = { contentType: 'application/vnd.microsoft.teams.file.download.info', name: 'policy.pdf', content: { downloadUrl: 'https://contoso.sharepoint.com/personal/x/_layouts/download.aspx?tempauth=secret', uniqueId: 'u1', fileType: 'pdf' } };
    const outcome = await run(as(objectId, { text: 'evidence AC-2', attachments: [file] }));
    expect(outcome.reply?.text).toMatch(/PROJECTX_ENCRYPTION_KEY/);
    expect(outcome.evidence).toBeUndefined();
  });
});
