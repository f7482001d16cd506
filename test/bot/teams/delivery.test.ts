/**
 * Teams and Slack together in the running service, against the fakes: approval requests and incident alerts
 * routed to a Teams channel (a shared card, refreshed per approver) and to DMs on both surfaces; decisions and
 * acknowledgements taken in either surface re-render the messages in both; the domain policy decides every click
 * (unauthorized, self-approval, double click, two approvers at once); Deny asks for a reason.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { upsertIncident } from '../../../src/domain/incidents.ts';
import { addRule } from '../../../src/domain/routing.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { captureLogs } from '../../support/logs.ts';
import { blockActionsBody, signedRequest } from '../../support/slack.ts';
import { type TeamsPerson, type TeamsService, startTeamsService } from '../../support/teams-service.ts';

type Card = { body?: unknown[]; actions?: unknown[]; refresh?: { userIds: string[]; action: { verb: string; data: unknown } } };

/** The verbs of the Action.Execute buttons anywhere in a card. */
const verbsIn = (card: unknown): string[] => [...JSON.stringify(card ?? {}).matchAll(/"type":"Action\.Execute","title":"[^"]*","verb":"([a-z_]+)"/g)].map((match) => match[1]!);

describe('Teams and Slack: one decision, every message re-rendered', () => {
  let env: TeamsService;
  const logs = captureLogs({ level: 'info' });
  let ann: TeamsPerson;
  let bob: TeamsPerson;
  let rita: TeamsPerson;
  let vic: TeamsPerson;
  let channel: string;

  beforeAll(async () => {
    env = await startTeamsService(logs.logger);
    ann = await env.person({ email: 'ann@example.test', name: 'Ann Approver', roles: ['approver', 'responder'], slackId: 'WANN' });
    bob = await env.person({ email: 'bob@example.test', name: 'Bob Approver', roles: ['approver'], slackId: 'WBOB' });
    rita = await env.person({ email: 'rita@example.test', name: 'Rita Requester', roles: ['contributor', 'approver'], slackId: 'WRITA' });
    vic = await env.person({ email: 'vic@example.test', name: 'Vic Viewer', roles: ['viewer'] });
    // The approvers installed the app (their personal chats are where their DMs go, and Teams knows their ids).
    for (const person of [ann, bob, rita]) await env.installPersonal(person);
    channel = await env.installInChannel('Compliance');
    const db = env.tdb.db;
    for (const rule of [
      { eventPattern: 'task.approval_requested', surface: 'teams' as const, targetKind: 'channel' as const, target: 'Compliance' },
      { eventPattern: 'task.approval_requested', surface: 'teams' as const, targetKind: 'approvers_dm' as const },
      { eventPattern: 'incident.created', surface: 'teams' as const, targetKind: 'channel' as const, target: channel, maxPriority: 2 },
    ]) {
      const added = await addRule(db, rule);
      if (!added.ok) throw new Error(added.refusal.message);
    }
  });
  afterAll(() => env?.close());

  const approval = async (title: string, approvers: TeamsPerson[], requester = rita) => {
    const task = await createTask(env.service.domain, CLI_ACTOR, { type: 'approval', title, requesterId: requester.userId, policy: { approverUserIds: approvers.map((person) => person.userId!) } });
    if (!task.ok) throw new Error(task.refusal.message);
    return task.value;
  };
  /** The Teams message about a subject in a conversation (posted by the notifier), once it is there. */
  const teamsMessage = async (conversationId: string, subjectId: string) => {
    await expect.poll(async () => (await env.tdb.db.selectFrom('teams_messages').select('activity_id').where('conversation_id', '=', conversationId).where('subject_id', '=', subjectId).where('status', '=', 'posted').execute()).length, { timeout: 20_000 }).toBe(1);
    const row = await env.tdb.db.selectFrom('teams_messages').select('activity_id').where('conversation_id', '=', conversationId).where('subject_id', '=', subjectId).executeTakeFirstOrThrow();
    return row.activity_id!;
  };
  const slackMessage = (channelName: string, text: string) => env.slack.messages(channelName).find((message) => message.text.includes(text));
  const slackButtons = (message: { blocks?: unknown[] } | undefined) => JSON.stringify(message?.blocks ?? []).match(/"action_id":"(approve|deny|ack)"/g) ?? [];
  const clickAnswer = async (activity: Record<string, unknown>) => {
    const res = await env.post(activity);
    expect(res.status).toBe(200);
    return (await res.json()) as { statusCode: number; type: string; value: unknown };
  };

  it('posts an approval to the Teams channel as a shared card refreshed for the approvers, and to their personal chats with buttons', async () => {
    const task = await approval('Grant prod access', [ann, bob]);
    const shared = await teamsMessage(channel, task.id);
    const card = env.latestCard(channel, shared) as Card;
    expect(verbsIn({ body: card.body })).toEqual([]);
    expect(card.refresh).toEqual({ action: { type: 'Action.Execute', verb: 'refresh', data: { kind: 'task', id: task.id } }, userIds: expect.arrayContaining([ann.mri, bob.mri]) as unknown });
    expect(card.refresh!.userIds).toHaveLength(2);
    const dm = await teamsMessage(env.personalChat(ann), task.id);
    expect(verbsIn(env.latestCard(env.personalChat(ann), dm))).toEqual(['approve', 'deny']);

    // Teams asks for each viewer's own version: the approver gets the buttons, anyone else the status.
    const own = await clickAnswer(env.click(ann, 'refresh', { kind: 'task', id: task.id }, channel, 'automatic'));
    expect(own.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(verbsIn(own.value)).toEqual(expect.arrayContaining(['approve', 'deny']));
    const theirs = await clickAnswer(env.click(vic, 'refresh', { kind: 'task', id: task.id }, channel, 'automatic'));
    expect(verbsIn((theirs.value as Card).body)).toEqual([]);
  });

  it('an Approve click in Teams decides by the domain policy and re-renders every Teams card and Slack message', async () => {
    const task = await approval('Rotate the signing key', [ann]);
    const shared = await teamsMessage(channel, task.id);
    const dm = await teamsMessage(env.personalChat(ann), task.id);
    await expect.poll(() => slackButtons(slackMessage('compliance-delivery', task.ref)).length, { timeout: 20_000 }).toBe(2);

    // Not an approver (a viewer), and the requester: refused with a message, nothing decided, audited.
    const refusedViewer = await clickAnswer(env.click(vic, 'approve', { value: task.id }, channel));
    expect(refusedViewer).toMatchObject({ type: 'application/vnd.microsoft.activity.message', value: expect.stringMatching(/needs a role/) });
    const self = await clickAnswer(env.click(rita, 'approve', { value: task.id }, channel));
    expect(self.type).toBe('application/vnd.microsoft.activity.message');
    expect(await env.tdb.db.selectFrom('approval_decisions').select('id').where('task_id', '=', task.id).execute()).toEqual([]);
    const audited = await env.tdb.db.selectFrom('audit_log').select(['actor', 'action']).where('surface', '=', 'teams').where('outcome', '=', 'refused').where('at', '>=', task.createdAt).execute();
    expect(audited).toEqual(expect.arrayContaining([expect.objectContaining({ actor: `user:${vic.userId!}` }), expect.objectContaining({ actor: `user:${rita.userId!}` })]));

    // Ann approves from the channel card: her card is replaced by the decided task.
    const approved = await clickAnswer(env.click(ann, 'approve', { value: task.id }, channel));
    expect(approved.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(JSON.stringify(approved.value)).toMatch(/Approved by Ann Approver/);
    expect(await env.tdb.db.selectFrom('approval_decisions').select(['decision', 'surface']).where('task_id', '=', task.id).execute()).toEqual([{ decision: 'approve', surface: 'teams' }]);
    // A second click: already decided, said to the clicker.
    const again = await clickAnswer(env.click(ann, 'approve', { value: task.id }, channel));
    expect(again).toMatchObject({ type: 'application/vnd.microsoft.activity.message' });

    // Every card in Teams (channel and DM) and the Slack message lose their buttons and say who decided.
    for (const [conversation, id] of [[channel, shared], [env.personalChat(ann), dm]] as const) {
      await expect.poll(() => JSON.stringify(env.latestCard(conversation, id)), { timeout: 20_000 }).toMatch(/Approved by Ann Approver/);
      expect(verbsIn(env.latestCard(conversation, id))).toEqual([]);
    }
    await expect.poll(() => slackButtons(slackMessage('compliance-delivery', task.ref)).length, { timeout: 20_000 }).toBe(0);
    expect(JSON.stringify(slackMessage('compliance-delivery', task.ref)!.blocks)).toMatch(/Approved by Ann Approver/);
  });

  it('a decision taken in Slack re-renders the Teams cards', async () => {
    const task = await approval('Open the firewall for the audit', [bob]);
    const shared = await teamsMessage(channel, task.id);
    await expect.poll(() => slackButtons(slackMessage('compliance-delivery', task.ref)).length, { timeout: 20_000 }).toBe(2);
    const click = blockActionsBody({ actionId: 'approve', value: task.id, userId: 'WBOB', teamId: env.slack.teamId, actionTs: '1700000002.000100', responseUrl: env.slack.responseUrl() });
    expect((await fetch(`${env.service.http.url}/slack/events`, signedRequest(click))).status).toBe(200);
    await expect.poll(() => JSON.stringify(env.latestCard(channel, shared)), { timeout: 20_000 }).toMatch(/Approved by Bob Approver/);
    expect(await env.tdb.db.selectFrom('approval_decisions').select('surface').where('task_id', '=', task.id).execute()).toEqual([{ surface: 'slack' }]);
  });

  it('Deny asks for a reason (required) and denies with it; two approvers clicking at once decide once', async () => {
    const denied = await approval('Disable MFA for a service account', [ann]);
    const asked = await clickAnswer(env.click(ann, 'deny', { value: denied.id }, env.personalChat(ann)));
    expect(JSON.stringify(asked.value)).toMatch(/"type":"Input.Text","id":"reason","label":"Reason","isRequired":true/);
    const withReason = await clickAnswer(env.click(ann, 'deny_with_reason', { taskId: denied.id, reason: 'no compensating control' }, env.personalChat(ann)));
    expect(JSON.stringify(withReason.value)).toMatch(/Denied by Ann Approver/);
    expect(await env.tdb.db.selectFrom('approval_decisions').select(['decision', 'reason']).where('task_id', '=', denied.id).execute()).toEqual([{ decision: 'deny', reason: 'no compensating control' }]);

    const contested = await approval('Share the audit folder', [ann, bob]);
    const answers = await Promise.all([clickAnswer(env.click(ann, 'approve', { value: contested.id }, channel)), clickAnswer(env.click(bob, 'approve', { value: contested.id }, channel))]);
    expect(answers.filter((answer) => answer.type === 'application/vnd.microsoft.card.adaptive')).toHaveLength(1);
    expect(await env.tdb.db.selectFrom('approval_decisions').select('decision').where('task_id', '=', contested.id).execute()).toEqual([{ decision: 'approve' }]);
  });

  it('an incident alert carries Acknowledge; ack from Teams re-renders the Slack alert, and the Teams card', async () => {
    const created = await upsertIncident(env.service.domain, CLI_ACTOR, { sourceSystem: 'servicenow', externalId: 'sys-1', number: 'INC0012345', priority: 1, state: 'new', shortDescription: 'Payments API down' });
    if (!created.ok) throw new Error(created.refusal.message);
    const incident = created.value.incident;
    const card = await teamsMessage(channel, incident.id);
    expect(verbsIn(env.latestCard(channel, card))).toEqual(['ack']);
    await expect.poll(() => slackButtons(slackMessage('alerts-servicenow', 'INC0012345')).length, { timeout: 20_000 }).toBe(1);

    const acked = await clickAnswer(env.click(ann, 'ack', { value: 'INC0012345' }, channel));
    expect(JSON.stringify(acked.value)).toMatch(/acknowledged by Ann Approver/);
    await expect.poll(() => JSON.stringify(slackMessage('alerts-servicenow', 'INC0012345')?.blocks), { timeout: 20_000 }).toMatch(/acknowledged by Ann Approver/);
    expect(slackButtons(slackMessage('alerts-servicenow', 'INC0012345'))).toEqual([]);
    await expect.poll(() => verbsIn(env.latestCard(channel, card)), { timeout: 20_000 }).toEqual([]);
  });

  it('ack from Slack re-renders the Teams alert card', async () => {
    const created = await upsertIncident(env.service.domain, CLI_ACTOR, { sourceSystem: 'servicenow', externalId: 'sys-2', number: 'INC0012346', priority: 2, state: 'new', shortDescription: 'Login latency' });
    if (!created.ok) throw new Error(created.refusal.message);
    const card = await teamsMessage(channel, created.value.incident.id);
    expect(verbsIn(env.latestCard(channel, card))).toEqual(['ack']);
    const click = blockActionsBody({ actionId: 'ack', value: 'INC0012346', userId: 'WANN', teamId: env.slack.teamId, actionTs: '1700000003.000100', responseUrl: env.slack.responseUrl() });
    expect((await fetch(`${env.service.http.url}/slack/events`, signedRequest(click))).status).toBe(200);
    await expect.poll(() => JSON.stringify(env.latestCard(channel, card)), { timeout: 20_000 }).toMatch(/acknowledged by Ann Approver/);
    expect(verbsIn(env.latestCard(channel, card))).toEqual([]);
  });
});
