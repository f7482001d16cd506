/**
 * POST /slack/events through the real Hono app and Bolt, on a real database: signatures, url_verification,
 * slash commands answered through the command layer in the ack, button clicks, and redelivery dedupe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { sql } from 'kysely';
import { SIGNATURE_FAILURES } from '../../../src/http/signature-failures.ts';
import type { Metrics } from '../../../src/metrics.ts';
import { linkIdentity } from '../../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { SIGNING_SECRET, blockActionsBody, denySubmissionBody, jsonFixture, signedRequest, slackWebApp, slashCommandBody } from '../../support/slack.ts';

describe('POST /slack/events', () => {
  let fx: DomainFixture;
  let web: Hono;
  let metrics: Metrics;
  const logs = captureLogs({ secrets: [SIGNING_SECRET] });

  beforeAll(async () => {
    fx = await domainFixture();
    fx.clock.set(new Date());
    ({ web, metrics } = slackWebApp(fx, { logger: logs.logger }));
  });
  afterAll(() => fx.close());

  const post = (body: string, options?: Parameters<typeof signedRequest>[1]) => web.request('/slack/events', signedRequest(body, { now: fx.clock.now(), ...options }));
  const linked = async (roles: Parameters<DomainFixture['user']>[0] = {}, slackUser = `U${Math.random().toString(36).slice(2, 10).toUpperCase()}`) => {
    const user = await fx.user(roles);
    await linkIdentity(fx.tdb.db, user.id, { surface: 'slack', tenant: 'E111', externalId: slackUser }, 'test');
    return { user, slackUser };
  };

  it('answers url_verification with the challenge', async () => {
    const body = JSON.stringify(jsonFixture('slack_url_verification_docs.json'));
    const res = await post(body, { contentType: 'application/json' });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' });
  });

  it.each([
    ['a bad signature', { secret: 'not-the-signing-secret' }, 'invalid_signature'],
    ['a stale timestamp', { now: new Date(Date.now() - 10 * 60_000) }, 'stale_timestamp'],
  ] as const)('refuses %s with 401 and its code, counts it under that code, and logs no signature', async (_label, options, code) => {
    const res = await post(slashCommandBody({ text: 'help' }), options);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ error: { code, message: SIGNATURE_FAILURES[code] } });
    expect(await metrics.registry.getSingleMetricAsString('slack_signature_failures_total')).toContain(`reason="${code}"`);
    expect(logs.text()).not.toMatch(/v0=[0-9a-f]{64}/);
  });

  it('refuses a request with no signature headers, and a malformed signed body with 400', async () => {
    const res = await web.request('/slack/events', { method: 'POST', body: slashCommandBody(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: 'missing_signature' } });
    const malformed = await post('{not json', { contentType: 'application/json' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: 'malformed_body' } });
  });

  it('answers a slash command ephemerally in the ack, through the command layer, for a linked user', async () => {
    const { slackUser } = await linked({ roles: ['approver'], name: 'Avery' });
    const res = await post(slashCommandBody({ user_id: slackUser, text: 'help', trigger_id: `trg-${slackUser}` }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { response_type: string; text: string; blocks: { type: string; text?: { text: string } }[] };
    expect(body.response_type).toBe('ephemeral');
    expect(body.text).toContain('ProjectX commands for Avery (approver)');
    // Slack's control characters are escaped in everything we send (no <!channel>, no spoofed <url|links>).
    expect(body.text).toContain('/projectx approve &lt;id&gt; [reason]');
    expect(body.blocks[0]).toMatchObject({ type: 'section', text: { type: 'mrkdwn' } });
  });

  it('tells an unlinked Slack user how to link, and audits the refusal under the Slack identity', async () => {
    const res = await post(slashCommandBody({ user_id: 'WUNLINKED', text: 'tasks', trigger_id: 'trg-unlinked' }));
    expect(await res.json()).toMatchObject({ response_type: 'ephemeral', text: expect.stringContaining('/projectx link') });
    const refusal = await fx.tdb.db.selectFrom('audit_log').selectAll().where('actor', '=', 'slack:E111/WUNLINKED').executeTakeFirst();
    expect(refusal).toMatchObject({ action: 'command.tasks', outcome: 'refused' });
  });

  it('approves a task from a slash command, and a repeated delivery of the same command changes nothing', async () => {
    const { slackUser } = await linked({ roles: ['approver'] });
    const approver = await fx.tdb.db.selectFrom('identity_links').select('user_id').where('external_id', '=', slackUser).executeTakeFirstOrThrow();
    const task = await fx.task({ type: 'approval', policy: { approverUserIds: [approver.user_id] } });
    const body = slashCommandBody({ user_id: slackUser, text: `approve ${task.ref}`, trigger_id: `trg-approve-${task.id}` });
    const first = await post(body);
    expect(await first.json()).toMatchObject({ text: `You approved ${task.ref}: it is now approved (1 of 1).` });
    const again = await post(body, { headers: { 'x-slack-retry-num': '1', 'x-slack-retry-reason': 'http_timeout' } });
    expect(again.status).toBe(200);
    expect(await again.text()).toBe('');
    const decisions = await fx.tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', task.id).execute();
    expect(decisions).toHaveLength(1);
    // The outcome is recorded just after the response, off the request path: wait for it.
    const inbound = () => fx.tdb.db.selectFrom('inbound_events').select(['source', 'kind', 'status']).where('delivery_id', '=', `command:trg-approve-${task.id}`).execute();
    await expect.poll(inbound, { timeout: 5000 }).toEqual([{ source: 'slack', kind: 'slash_command', status: 'processed' }]);
    expect(await metrics.registry.getSingleMetricAsString('slack_duplicate_deliveries_total')).toContain('kind="slash_command"} 1');
  });

  it('records a burst of concurrent commands once each, and every one ends processed (outcomes ride along with later records)', async () => {
    const { slackUser } = await linked({ roles: ['viewer'] });
    const triggers = Array.from({ length: 60 }, (_, i) => `trg-burst-${slackUser}-${i}`);
    const answers = await Promise.all(triggers.map(async (trigger) => post(slashCommandBody({ user_id: slackUser, text: 'help', trigger_id: trigger }))));
    expect(answers.map((res) => res.status)).toEqual(triggers.map(() => 200));
    const statuses = () =>
      fx.tdb.db
        .selectFrom('inbound_events')
        .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
        .where('delivery_id', 'in', triggers.map((trigger) => `command:${trigger}`))
        .groupBy('status')
        .execute();
    await expect.poll(statuses, { timeout: 5000 }).toEqual([{ status: 'processed', n: '60' }]);
  });

  it.each([
    ['help', /ProjectX commands for/],
    ['tasks', /open assigned to you/],
    ['tasks --all', /`--all` needs the approver role/],
    ['task T-999999', /There is no task T-999999/],
    ['incident INC0404040', /There is no incident INC0404040/],
    ['ack INC0404040', /no incident INC0404040/],
    ['evidence ZZ-1', /There is no control ZZ-1/],
    ['status', /No integrations are known to this service/],
    ['link', /You are linked to ProjectX as/],
    ['deny T-1', /A denial needs a reason/],
    ['frobnicate', /I don't know "frobnicate"/],
  ])('answers `/projectx %s` ephemerally', async (text, expected) => {
    const { slackUser } = await linked({ roles: ['responder', 'contributor'] });
    const res = await post(slashCommandBody({ user_id: slackUser, text, trigger_id: `trg-verb-${slackUser}` }));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { response_type: string; text: string };
    expect(body.response_type).toBe('ephemeral');
    expect(body.text).toMatch(expected);
  });

  it('escapes Slack control sequences in text that people wrote (no @channel ping, no spoofed link)', async () => {
    const { slackUser } = await linked({ roles: ['approver'] });
    const approver = await fx.tdb.db.selectFrom('identity_links').select('user_id').where('external_id', '=', slackUser).executeTakeFirstOrThrow();
    const task = await fx.task({ type: 'approval', title: '<!channel> <https://evil.example|Re-approve here>', policy: { approverUserIds: [approver.user_id] } });
    const res = await post(slashCommandBody({ user_id: slackUser, text: `task ${task.ref}`, trigger_id: `trg-inject-${task.id}` }));
    const body = (await res.json()) as { text: string; blocks: unknown[] };
    // Everything Slack formats (the fallback text and every mrkdwn element; plain_text is never formatted).
    const formatted = [body.text, ...JSON.stringify(body.blocks).matchAll(/"type":"mrkdwn","text":"((?:[^"\\]|\\.)*)"/g)].map((match) => (typeof match === 'string' ? match : match[1]!));
    expect(formatted.join('\n')).not.toContain('<!channel>');
    expect(formatted.join('\n')).not.toContain('<https://evil.example|');
    expect(formatted.join('\n')).toContain('&lt;!channel&gt;');
  });

  it('refuses a malformed interaction with 400 before any listener, and records why', async () => {
    const { slackUser } = await linked({ roles: ['approver'] });
    // A view submission whose state is not an object: the deny-reason listener would throw on it.
    const payload = { type: 'view_submission', team: { id: 'E111' }, user: { id: slackUser, team_id: 'E111' }, view: { id: 'VBROKEN', hash: 'h1', callback_id: 'deny_reason', private_metadata: '1', state: null } };
    const res = await post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: 'malformed_payload', message: 'the view_submission is malformed: missing or malformed: view.state' } });
    const recorded = await fx.tdb.db.selectFrom('inbound_events').select(['status', 'kind', 'error']).where('delivery_id', 'like', 'view:VBROKEN:h1:view_submission:%').executeTakeFirstOrThrow();
    expect(recorded).toEqual({ status: 'quarantined', kind: 'view_submission', error: { code: 'malformed_payload', message: 'the view_submission is malformed: missing or malformed: view.state' } });
    expect(await metrics.registry.getSingleMetricAsString('slack_refused_deliveries_total')).toContain('kind="view_submission",code="malformed_payload"} 1');
  });

  it('answers a listener failure with 400 (never 500), leaves the delivery failed, and lets the redelivery take it over', async () => {
    const { user, slackUser } = await linked({ roles: ['approver'] });
    const task = await fx.task({ type: 'approval', policy: { approverUserIds: [user.id] } });
    // A fault in the database (not in the request): recording this decision fails, as a broken trigger would.
    await sql`create or replace function test_fail_decision() returns trigger language plpgsql as $$ begin if new.reason = 'fault injected' then raise exception 'decision store broken'; end if; return new; end $$`.execute(fx.tdb.db);
    await sql`create trigger test_fail_decision before insert on approval_decisions for each row execute function test_fail_decision()`.execute(fx.tdb.db);
    try {
      const body = denySubmissionBody({ userId: slackUser, teamId: 'E111', taskId: task.id, reason: 'fault injected', viewId: 'VFAULT' });
      const first = await post(body);
      expect(first.status).toBe(400);
      expect(await first.json()).toEqual({ error: { code: 'processing_failed', message: expect.stringMatching(/^ProjectX could not process this request; it was recorded for an operator \(reference [0-9a-f-]{36}\)\.$/) } });
      const recorded = () => fx.tdb.db.selectFrom('inbound_events').select(['status', 'error']).where('delivery_id', 'like', 'view:VFAULT:VFAULT.hash:view_submission:%').executeTakeFirst();
      await expect.poll(async () => (await recorded())?.status, { timeout: 5000 }).toBe('failed');
      expect((await recorded())?.error).toEqual({ code: 'processing_failed', message: 'decision store broken' });
      // The same delivery again is not refused as a duplicate: it is processed (and fails) again.
      expect((await post(body)).status).toBe(400);
    } finally {
      await sql`drop trigger test_fail_decision on approval_decisions`.execute(fx.tdb.db);
    }
  });

  it('takes a form corrected after an error as a new submission, while Slack\'s retry of the same one stays a repeat', async () => {
    const { user, slackUser } = await linked({ roles: ['approver'] });
    const task = await fx.task({ type: 'approval', policy: { approverUserIds: [user.id] } });
    // The first submission has no reason: answered with the field's error, the modal stays open.
    const empty = await post(denySubmissionBody({ userId: slackUser, teamId: 'E111', taskId: task.id, reason: '', viewId: 'VCORRECT' }));
    expect(await empty.json()).toEqual({ response_action: 'errors', errors: { reason: 'A denial needs a reason.' } });
    // The same view (same id and hash) submitted again with a reason is a new delivery, and decides the task.
    const corrected = denySubmissionBody({ userId: slackUser, teamId: 'E111', taskId: task.id, reason: 'not in scope', viewId: 'VCORRECT' });
    expect((await post(corrected)).status).toBe(200);
    expect((await post(corrected)).status).toBe(200);
    const decisions = await fx.tdb.db.selectFrom('approval_decisions').select(['decision', 'reason']).where('task_id', '=', task.id).execute();
    expect(decisions).toEqual([{ decision: 'deny', reason: 'not in scope' }]);
  });

  it('answers shapes that once reached a TypeError or an unstorable error without a 5xx', async () => {
    const { slackUser } = await linked({ roles: ['approver'] });
    const view = (callbackId: string) => ({ type: 'view_submission', team: { id: 'E111' }, user: { id: slackUser, team_id: 'E111' }, view: { id: `V${callbackId.length}`, hash: 'h', callback_id: callbackId, private_metadata: '', state: { values: {} } } });
    const bodies = [
      // A callback id that names a property of every object.
      ...['constructor', '__proto__', 'toString', 'hasOwnProperty'].map((callbackId) => new URLSearchParams({ payload: JSON.stringify(view(callbackId)) }).toString()),
      // A type whose 40th character is half of an emoji (a cut there would leave a lone surrogate).
      new URLSearchParams({ payload: JSON.stringify({ type: `${'x'.repeat(39)}😀` }) }).toString(),
      // A state key whose 80-character path ends inside an emoji.
      new URLSearchParams({ payload: JSON.stringify({ ...view('evidence_upload'), view: { ...view('evidence_upload').view, state: { values: { files: { files_input: { files: 'nope' } }, [`${'k'.repeat(70)}😀😀😀`]: null } } } }) }).toString(),
      // An event nested far past anything Slack sends.
      `{"type":"event_callback","event_id":"EvDeep","team_id":"E111","event":{"type":"message"},"deep":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    ];
    for (const body of bodies) {
      const res = await post(body, body.startsWith('{') ? { contentType: 'application/json' } : undefined);
      expect(res.status, await res.clone().text()).toBeLessThan(500);
    }
  });

  it('refuses a self-approval from Slack with the reason, and audits it', async () => {
    const { user, slackUser } = await linked({ roles: ['approver'] });
    const task = await fx.task({ type: 'approval', requesterId: user.id, policy: { approverUserIds: [user.id] } });
    const res = await post(slashCommandBody({ user_id: slackUser, text: `approve ${task.ref}`, trigger_id: `trg-self-${task.id}` }));
    expect(await res.json()).toMatchObject({ text: `you requested ${task.ref}; someone else must decide it (separation of duties)` });
    expect(await fx.tdb.db.selectFrom('audit_log').select(['outcome', 'action']).where('actor', '=', `user:${user.id}`).execute()).toEqual([{ outcome: 'refused', action: 'task.approve' }]);
  });

  it('decides on an Approve click once, however often the same click is delivered', async () => {
    const { slackUser } = await linked({ roles: ['approver'] });
    const approver = await fx.tdb.db.selectFrom('identity_links').select('user_id').where('external_id', '=', slackUser).executeTakeFirstOrThrow();
    const task = await fx.task({ type: 'approval', policy: { approverUserIds: [approver.user_id] } });
    const click = blockActionsBody({ actionId: 'approve', value: task.id, userId: slackUser, teamId: 'E111', actionTs: `1700000000.${task.id}` });
    const results = await Promise.all([post(click), post(click), post(click)]);
    expect(results.map((res) => res.status)).toEqual([200, 200, 200]);
    // Bolt acks first; the decision happens in the listener after the ack. Wait for its durable outcome.
    await expect.poll(async () => (await fx.tdb.db.selectFrom('tasks').select('state').where('id', '=', task.id).executeTakeFirstOrThrow()).state, { timeout: 10_000 }).toBe('approved');
    const decisions = await fx.tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', task.id).execute();
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({ surface: 'slack', user_id: approver.user_id });
  });
});
