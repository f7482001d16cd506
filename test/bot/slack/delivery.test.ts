/**
 * The whole service with Slack configured, against the fake Slack Web API: an approval request is posted to
 * the routed channel and to each approver's DM with buttons; an Approve click decides it and every posted
 * message is re-rendered without buttons; a 429 is honoured without a double post; a lost response is found
 * in the channel's history instead of being posted again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { createUser, linkIdentity } from '../../../src/domain/users.ts';
import type { Service } from '../../../src/main.ts';
import { type SlackService, startSlackService } from '../../support/slack-service.ts';
import type { FakeSlack } from '../../fakes/slack/server.ts';
import type { TestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { blockActionsBody, denySubmissionBody, signedRequest, slashCommandBody } from '../../support/slack.ts';
import { upsertIncident } from '../../../src/domain/incidents.ts';


describe('Slack delivery', () => {
  let tdb: TestDatabase;
  let fake: FakeSlack;
  let service: Service;
  const logs = captureLogs({ level: 'info' });
  let approverId: string;

  let env: SlackService;
  beforeAll(async () => {
    env = await startSlackService(logs.logger);
    ({ tdb, fake, service } = env);
    approverId = await env.linkedUser({ email: 'ann@example.test', name: 'Ann Approver', roles: ['approver'], slackId: 'WANN' });
  });
  afterAll(() => env?.close());

  const approvalTask = async (title: string) => {
    const task = await createTask(service.domain, CLI_ACTOR, { type: 'approval', title, policy: { approverUserIds: [approverId] } });
    if (!task.ok) throw new Error(task.refusal.message);
    return task.value;
  };
  const messagesAbout = (channel: string, ref: string) => fake.messages(channel).filter((message) => message.text.includes(ref));
  const dmChannel = async () => (await tdb.db.selectFrom('slack_messages').select('channel_id').where('channel', 'like', 'D%').executeTakeFirstOrThrow()).channel_id!;
  const buttonsOf = (message: { blocks?: unknown[] }) => JSON.stringify(message.blocks ?? []).match(/"action_id":"(approve|deny)"/g) ?? [];

  it('posts an approval request to the routed channel and the approver DM, then re-renders both when decided', async () => {
    const task = await approvalTask('Grant prod access');
    await expect.poll(() => messagesAbout('compliance-delivery', task.ref).length, { timeout: 15_000 }).toBe(1);
    await expect.poll(async () => (await tdb.db.selectFrom('slack_messages').select('id').where('subject_id', '=', task.id).execute()).length, { timeout: 15_000 }).toBe(2);
    const dm = await dmChannel();
    expect(buttonsOf(messagesAbout('compliance-delivery', task.ref)[0]!)).toHaveLength(2);
    expect(buttonsOf(messagesAbout(dm, task.ref)[0]!)).toHaveLength(2);

    const click = blockActionsBody({ actionId: 'approve', value: task.id, userId: 'WANN', teamId: fake.teamId, actionTs: '1700000001.000100', responseUrl: fake.responseUrl() });
    const res = await fetch(`${service.http.url}/slack/events`, signedRequest(click));
    expect(res.status).toBe(200);

    // Every message showing the task loses its buttons and says who approved it.
    await expect.poll(() => buttonsOf(messagesAbout('compliance-delivery', task.ref)[0]!).length, { timeout: 15_000 }).toBe(0);
    await expect.poll(() => buttonsOf(messagesAbout(dm, task.ref)[0]!).length, { timeout: 15_000 }).toBe(0);
    for (const message of [messagesAbout('compliance-delivery', task.ref)[0]!, messagesAbout(dm, task.ref)[0]!]) {
      expect(JSON.stringify(message.blocks)).toMatch(/Approved by Ann Approver at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
      expect(message.edited).toBeDefined();
    }
    expect(fake.callsTo('chat.update').length).toBeGreaterThanOrEqual(2);
  });

  it('answers a late click on a decided task with an ephemeral explanation through response_url, and audits it', async () => {
    const other = await createUser(tdb.db, { email: 'otto@example.test', displayName: 'Otto', roles: ['approver'] });
    if (!other.ok) throw new Error(other.refusal.message);
    await linkIdentity(tdb.db, other.value.id, { surface: 'slack', tenant: fake.teamId, externalId: 'WOTTO' }, 'test');
    const task = await createTask(service.domain, CLI_ACTOR, { type: 'approval', title: 'Late click', policy: { approverUserIds: [approverId, other.value.id] } });
    if (!task.ok) throw new Error(task.refusal.message);
    const first = fake.responseUrl();
    await fetch(`${service.http.url}/slack/events`, signedRequest(blockActionsBody({ actionId: 'approve', value: task.value.id, userId: 'WANN', teamId: fake.teamId, actionTs: '1700000002.000100', responseUrl: first })));
    await expect.poll(() => fake.responses(first).length, { timeout: 10_000 }).toBe(1);
    const late = fake.responseUrl();
    await fetch(`${service.http.url}/slack/events`, signedRequest(blockActionsBody({ actionId: 'approve', value: task.value.id, userId: 'WOTTO', teamId: fake.teamId, actionTs: '1700000003.000100', responseUrl: late })));
    await expect.poll(() => fake.responses(late).length, { timeout: 10_000 }).toBe(1);
    expect(fake.responses(late)[0]).toMatchObject({ response_type: 'ephemeral', replace_original: false, text: expect.stringMatching(new RegExp(`^${task.value.ref} was already approved by Ann Approver at `)) });
    const refusal = await tdb.db.selectFrom('audit_log').selectAll().where('actor', '=', `user:${other.value.id}`).executeTakeFirstOrThrow();
    expect(refusal).toMatchObject({ action: 'task.approve', outcome: 'refused', detail: { code: 'already_decided' } });
  });

  it('opens a reason form on Deny, refuses an empty reason inside the form, and denies with one', async () => {
    const task = await approvalTask('Deny me');
    const triggerCount = fake.callsTo('views.open').length;
    await fetch(`${service.http.url}/slack/events`, signedRequest(blockActionsBody({ actionId: 'deny', value: task.id, userId: 'WANN', teamId: fake.teamId, actionTs: '1700000004.000100' })));
    await expect.poll(() => fake.callsTo('views.open').length, { timeout: 10_000 }).toBe(triggerCount + 1);
    expect(fake.callsTo('views.open').at(-1)!.params.view).toMatchObject({ callback_id: 'deny_reason', private_metadata: task.id });

    const empty = await fetch(`${service.http.url}/slack/events`, signedRequest(denySubmissionBody({ userId: 'WANN', teamId: fake.teamId, taskId: task.id, reason: '  ', viewId: 'VDENY1' })));
    expect(await empty.json()).toEqual({ response_action: 'errors', errors: { reason: 'A denial needs a reason.' } });
    const denied = await fetch(`${service.http.url}/slack/events`, signedRequest(denySubmissionBody({ userId: 'WANN', teamId: fake.teamId, taskId: task.id, reason: 'no change ticket', viewId: 'VDENY2' })));
    expect(denied.status).toBe(200);
    expect(await denied.text()).toBe('');
    const decision = await tdb.db.selectFrom('approval_decisions').select(['decision', 'reason']).where('task_id', '=', task.id).executeTakeFirstOrThrow();
    expect(decision).toEqual({ decision: 'deny', reason: 'no change ticket' });
  });

  it('acknowledges an incident from /projectx ack and re-renders the alert posted about it', async () => {
    const responder = await createUser(tdb.db, { email: 'rae@example.test', displayName: 'Rae Responder', roles: ['responder'] });
    if (!responder.ok) throw new Error(responder.refusal.message);
    await linkIdentity(tdb.db, responder.value.id, { surface: 'slack', tenant: fake.teamId, externalId: 'WRAE' }, 'test');
    await upsertIncident(service.domain, CLI_ACTOR, { sourceSystem: 'servicenow', externalId: 'sys-1', number: 'INC0012345', priority: 1, state: 'new', shortDescription: 'Payments API down' });
    await expect.poll(() => messagesAbout('alerts-servicenow', 'INC0012345').length, { timeout: 15_000 }).toBe(1);
    expect(messagesAbout('alerts-servicenow', 'INC0012345')[0]!.text).toContain('not acknowledged');

    const res = await fetch(`${service.http.url}/slack/events`, signedRequest(slashCommandBody({ team_id: fake.teamId, enterprise_id: '', user_id: 'WRAE', text: 'ack INC0012345', trigger_id: 'trg-ack-1' })));
    expect(await res.json()).toMatchObject({ response_type: 'ephemeral', text: expect.stringContaining('You acknowledged INC0012345 (P1) Payments API down at') });
    await expect.poll(() => messagesAbout('alerts-servicenow', 'INC0012345')[0]!.text, { timeout: 15_000 }).toContain('acknowledged by Rae Responder');
  });

  it('honours a 429 with Retry-After: the message is posted once, after the wait', async () => {
    fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const task = await approvalTask('Rotate keys');
    await expect.poll(() => messagesAbout('compliance-delivery', task.ref).length, { timeout: 15_000 }).toBe(1);
    await expect.poll(async () => (await tdb.db.selectFrom('notifications').select('status').where('subject_id', '=', task.id).execute()).map((row) => row.status), { timeout: 15_000 }).toEqual(['sent', 'sent']);
    expect(messagesAbout('compliance-delivery', task.ref)).toHaveLength(1);
    const rateLimited = fake.calls.filter((call) => call.method === 'chat.postMessage' && call.injected);
    expect(rateLimited.length).toBe(1);
  });

  it('does not post twice when a response is lost: the retry finds the message in the channel history', async () => {
    fake.failNext('chat.postMessage', { dropResponse: true });
    const task = await approvalTask('Open firewall port');
    const statuses = async () => (await tdb.db.selectFrom('notifications').select('status').where('subject_id', '=', task.id).execute()).map((row) => row.status);
    await expect.poll(statuses, { timeout: 20_000 }).toEqual(['sent', 'sent']);
    const posted = [...messagesAbout('compliance-delivery', task.ref), ...messagesAbout(await dmChannel(), task.ref)];
    expect(posted).toHaveLength(2); // one per target, none doubled
    expect(fake.callsTo('conversations.history').length).toBeGreaterThanOrEqual(1);
    expect(logs.text()).toContain('an earlier post whose response was lost did arrive; not posting again');
  });
});
