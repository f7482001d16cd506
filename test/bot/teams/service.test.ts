/**
 * The Teams surface in the running service (role all), end to end over HTTP against the fakes: installs store
 * conversations and get a welcome card; every verb of the command language answered with a card, sent by a job
 * through the Bot Connector with a token from Entra ID; a redelivered activity has no second effect; activities
 * from a tenant that is not served are refused; an unlinked person is linked by the roster.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { upsertIncident } from '../../../src/domain/incidents.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { findUserByIdentity, redeemLinkCode } from '../../../src/domain/users.ts';
import type { BadSigning } from '../../fakes/teams/channel.ts';
import { captureLogs } from '../../support/logs.ts';
import { TEAMS_TENANT, type TeamsPerson, type TeamsService, startTeamsService } from '../../support/teams-service.ts';

describe('Teams in the running service', () => {
  let env: TeamsService;
  const logs = captureLogs({ level: 'info' });
  let megan: TeamsPerson;

  beforeAll(async () => {
    env = await startTeamsService(logs.logger);
    megan = await env.person({ email: 'megan@example.test', name: 'Megan Bowen', roles: ['approver', 'contributor', 'responder'] });
  });
  afterAll(() => env?.close());

  const textOf = (post: { body: { text?: string } }) => post.body.text ?? '';

  it('stores the conversation on install and posts a welcome card there', async () => {
    const channel = await env.installInChannel('Compliance');
    const row = await env.tdb.db.selectFrom('teams_conversations').selectAll().where('conversation_id', '=', channel).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ tenant_id: TEAMS_TENANT, kind: 'channel', channel_name: 'Compliance', active: true });
    await expect.poll(() => env.posted(channel).length, { timeout: 15_000 }).toBe(1);
    expect(textOf(env.posted(channel)[0]!)).toMatch(/@mention me/);
    expect(env.posted(channel)[0]!.body.attachments?.[0]).toMatchObject({ contentType: 'application/vnd.microsoft.card.adaptive', content: { type: 'AdaptiveCard' } });
  });

  it('answers a personal message with a card sent by a job, once even when the activity is delivered again', async () => {
    const chat = env.personalChat(megan);
    const activity = env.message(megan, 'help');
    expect((await env.post(activity)).status).toBe(200);
    await expect.poll(() => env.posted(chat).length, { timeout: 15_000 }).toBe(1);
    expect(textOf(env.posted(chat)[0]!)).toMatch(/ProjectX commands/);
    // The channel delivers it again (its answer was lost): recorded once, nothing staged again, answered once.
    const deliveryId = `message:${chat}:${activity.id as string}`;
    const before = await env.tdb.db.selectFrom('inbound_events').select(['status', 'processed_at']).where('source', '=', 'teams').where('delivery_id', '=', deliveryId).execute();
    expect((await env.post(activity)).status).toBe(200);
    expect(await env.tdb.db.selectFrom('inbound_events').select(['status', 'processed_at']).where('source', '=', 'teams').where('delivery_id', '=', deliveryId).execute()).toEqual(before);
    expect(before).toEqual([{ status: 'processed', processed_at: expect.any(Date) }]);
    expect(await env.tdb.db.selectFrom('inbound_job_outbox').select('id').execute()).toEqual([]);
    expect(env.posted(chat)).toHaveLength(1);
  });

  it('gives a redelivered click the answer the first delivery got, with no second effect', async () => {
    const task = await createTask(env.service.domain, CLI_ACTOR, { type: 'approval', title: 'Redelivered click', policy: { approverUserIds: [megan.userId!] } });
    if (!task.ok) throw new Error(task.refusal.message);
    const click = env.click(megan, 'approve', { value: task.value.id });
    const first = await env.post(click);
    const again = await env.post(click);
    expect([first.status, again.status]).toEqual([200, 200]);
    const [a, b] = [await first.json(), await again.json()];
    expect(b).toEqual(a);
    expect(JSON.stringify(a)).toMatch(/Approved by Megan Bowen/);
    expect(await env.tdb.db.selectFrom('approval_decisions').select('decision').where('task_id', '=', task.value.id).execute()).toEqual([{ decision: 'approve' }]);
    expect(await (await fetch(`${env.service.http.url}/metrics`)).text()).toMatch(/teams_duplicate_activities_total [1-9]/);
  });

  it('refuses every forged, expired or misaddressed token with 401 before anything is recorded or run', async () => {
    const cases: BadSigning[] = ['forged_signature', 'unknown_kid', 'hs256', 'alg_none', 'expired', 'wrong_audience', 'wrong_issuer', 'wrong_service_url', 'webchat_only_key', 'skill_token', 'not_yet_valid'];
    for (const bad of cases) {
      const activity = env.message(megan, 'approve T-1');
      const res = await env.post(activity, bad);
      expect(res.status, bad).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code, bad).toMatch(/^[a-z_]+$/);
      expect(await env.tdb.db.selectFrom('inbound_events').select('id').where('delivery_id', 'like', `%${activity.id as string}`).execute(), bad).toEqual([]);
    }
    const unsigned = await fetch(`${env.service.http.url}/api/messages`, { method: 'POST', body: JSON.stringify(env.message(megan, 'help')), headers: { 'content-type': 'application/json' } });
    expect([unsigned.status, ((await unsigned.json()) as { error: { code: string } }).error.code]).toEqual([401, 'missing_token']);
    const metrics = await (await fetch(`${env.service.http.url}/metrics`)).text();
    expect(metrics).toMatch(/teams_auth_failures_total\{reason="invalid_signature"\} [1-9]/);
    expect(logs.text()).not.toMatch(/eyJ[\w-]{10,}\./); // no token in any log line
  });

  it('refuses activities and installs from a tenant that is not served (TEAMS_ALLOWED_TENANTS, else the app\'s own)', async () => {
    const other = 'b28fdbfd-2b78-4f93-b0f8-8881793f0f8f';
    const foreign = (activity: Record<string, unknown>): Record<string, unknown> => ({ ...activity, conversation: { ...(activity.conversation as object), tenantId: other }, channelData: { tenant: { id: other } } });
    const message = foreign(env.message(megan, 'tasks'));
    const res = await env.post(message);
    expect([res.status, ((await res.json()) as { error: { code: string } }).error.code]).toEqual([403, 'tenant_not_allowed']);
    expect(await env.tdb.db.selectFrom('inbound_events').select(['status']).where('source', '=', 'teams').where('delivery_id', 'like', `%${message.id as string}`).execute()).toEqual([{ status: 'quarantined' }]);
    const install = foreign({ type: 'installationUpdate', action: 'add', id: `f:${randomUUID()}`, channelId: 'msteams', serviceUrl: env.connector.serviceUrl, from: { id: '29:x', aadObjectId: randomUUID() }, recipient: { id: `28:${env.appId}` }, conversation: { id: `a:${randomUUID()}`, conversationType: 'personal' } });
    expect((await env.post(install)).status).toBe(403);
    expect(await env.tdb.db.selectFrom('teams_conversations').select('conversation_id').where('tenant_id', '=', other).execute()).toEqual([]);
  });

  it('answers every verb, in a personal chat and @mentioned in a channel, from the same command layer', async () => {
    const channel = await env.installInChannel('Everything');
    const control = await createControl(env.tdb.db, { id: 'AC-2', title: 'Account management' });
    expect(control.ok).toBe(true);
    const task = await createTask(env.service.domain, CLI_ACTOR, { type: 'approval', title: 'Verb check', policy: { approverUserIds: [megan.userId!] } });
    if (!task.ok) throw new Error(task.refusal.message);
    await upsertIncident(env.service.domain, CLI_ACTOR, { sourceSystem: 'servicenow', externalId: 'verbs-1', number: 'INC0099001', priority: 2, state: 'new', shortDescription: 'Disk full' });
    const verbs: [string, RegExp][] = [
      ['help', /ProjectX commands/],
      ['tasks', /ProjectX for Megan Bowen|waiting for your decision/],
      [`task ${task.value.ref}`, new RegExp(task.value.ref)],
      ['incident INC0099001', /INC0099001/],
      ['evidence AC-2', /AC-2|personal chat|attach/i],
      ['status', /Microsoft Teams/],
      ['link', /linked to ProjectX as Megan Bowen/],
      ['ack INC0099001', /INC0099001/],
      [`deny ${task.value.ref} out of scope`, /Denied|denied/],
      [`approve ${task.value.ref}`, /already|denied/i],
    ];
    const chat = env.personalChat(megan);
    for (const [where, conversation] of [['personal', chat], ['channel', channel]] as const) {
      for (const [text, expected] of verbs) {
        const before = env.posted(conversation).length;
        const activity = where === 'personal' ? env.message(megan, text) : env.message(megan, text, { conversationId: channel, kind: 'channel' });
        expect((await env.post(activity)).status, text).toBe(200);
        await expect.poll(() => env.posted(conversation).length, { timeout: 20_000 }).toBe(before + 1);
        const reply = env.posted(conversation).at(-1)!;
        expect(reply.body.text, `${where}: ${text}`).toMatch(expected);
        expect(reply.body.attachments?.[0]?.content).toMatchObject({ type: 'AdaptiveCard', version: '1.5' });
      }
    }
    // The personal home: approvals with buttons, my tasks, incidents, health.
    const home = env.message(megan, 'tasks');
    await env.post(home);
    await expect.poll(() => env.posted(chat).at(-1)?.body.text, { timeout: 20_000 }).toBe('ProjectX for Megan Bowen');
    expect(JSON.stringify(env.posted(chat).at(-1)!.body.attachments)).toMatch(/Integrations/);
  });

  it('links an unlinked person by their roster email, and gives anyone else a link code', async () => {
    const nora = await env.person({ email: 'nora@example.test', name: 'Nora New', roles: ['viewer'], linked: false });
    const chat = env.personalChat(nora);
    await env.installPersonal(nora);
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(1); // welcome
    expect((await env.post(env.message(nora, 'tasks'))).status).toBe(200);
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(2);
    expect(env.posted(chat)[1]!.body.text).toMatch(/not linked/);
    // The roster lookup (GET members/{id}) found her verified address: linked, audited.
    await expect.poll(async () => (await findUserByIdentity(env.tdb.db, { surface: 'teams', tenant: TEAMS_TENANT, externalId: nora.aadObjectId }))?.email, { timeout: 20_000 }).toBe('nora@example.test');
    expect(env.connector.calls.some((call) => call.method === 'GET' && call.path === `/v3/conversations/${chat}/members/${nora.mri}`)).toBe(true);
    expect(await env.tdb.db.selectFrom('identity_links').select('verified_via').where('external_id', '=', nora.aadObjectId).execute()).toEqual([{ verified_via: 'teams_roster_email' }]);

    // Someone the roster cannot match (no ProjectX user with that address): `link` gives a code an admin redeems.
    const oscar: TeamsPerson = { aadObjectId: randomUUID(), mri: `29:${randomUUID()}`, name: 'Oscar Outside' };
    env.connector.addMember(env.personalChat(oscar), { id: oscar.mri, objectId: oscar.aadObjectId, email: 'oscar@elsewhere.test', tenantId: TEAMS_TENANT, userRole: 'user' });
    await env.installPersonal(oscar);
    await env.post(env.message(oscar, 'link'));
    await expect.poll(() => env.posted(env.personalChat(oscar)).find((post) => /code/.test(post.body.text ?? ''))?.body.text, { timeout: 20_000 }).toMatch(/\*\*?[A-Z0-9-]{6,}/);
    const text = env.posted(env.personalChat(oscar)).find((post) => /code/.test(post.body.text ?? ''))!.body.text!;
    const code = /\*([A-Z0-9-]{6,})\*/.exec(text)![1]!;
    const redeemed = await redeemLinkCode(env.tdb.db, code, megan.userId!, new Date());
    expect(redeemed).toMatchObject({ ok: true, value: { surface: 'teams', tenant: TEAMS_TENANT, externalId: oscar.aadObjectId } });
  });

  it('marks a conversation inactive when the bot is removed, and active again when it is added back', async () => {
    const channel = await env.installInChannel('Temporary');
    const removed = { ...env.message(megan, 'x', { conversationId: channel, kind: 'channel' }), type: 'conversationUpdate', text: undefined, membersRemoved: [{ id: `28:${env.appId}` }] };
    expect((await env.post(removed)).status).toBe(200);
    expect(await env.tdb.db.selectFrom('teams_conversations').select(['active']).where('conversation_id', '=', channel).executeTakeFirst()).toEqual({ active: false });
    const added = { ...removed, id: `f:${randomUUID()}`, membersRemoved: undefined, membersAdded: [{ id: `28:${env.appId}` }] };
    expect((await env.post(added)).status).toBe(200);
    expect(await env.tdb.db.selectFrom('teams_conversations').select(['active']).where('conversation_id', '=', channel).executeTakeFirst()).toEqual({ active: true });
    // Blocked (a 403 marked it inactive), then someone writes there again: active again, from the new service URL.
    await env.tdb.db.updateTable('teams_conversations').set({ active: false, inactive_reason: 'Teams answered 403 MessageWritesBlocked' }).where('conversation_id', '=', channel).execute();
    const moved = { ...env.message(megan, 'help', { conversationId: channel, kind: 'channel' }), serviceUrl: `${env.connector.serviceUrl}moved/` };
    expect((await env.post(moved)).status).toBe(200);
    const row = await env.tdb.db.selectFrom('teams_conversations').select(['active', 'reference']).where('conversation_id', '=', channel).executeTakeFirstOrThrow();
    expect([row.active, (row.reference as { serviceUrl: string }).serviceUrl]).toEqual([true, `${env.connector.serviceUrl}moved/`]);
  });
});
