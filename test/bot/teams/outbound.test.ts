/**
 * Outbound Teams traffic, for real and offline (../shared/notes/teams.md §2–§4): botbuilder's CloudAdapter gets
 * its bearer token from a fake Entra ID over https (MSAL's client-credentials flow, `knownAuthorities` so no
 * instance discovery at Microsoft, the fake's self-signed certificate trusted for that authority only) and sends
 * to a fake Bot Connector that accepts only tokens the fake Entra ID signed for our app and the Bot Framework
 * scope. Inbound activities are signed by the fake channel, as in auth.test.ts.
 *
 * botbuilder caches app tokens process-wide by app id + scope (`AppCredentials.cache`), so every test uses a
 * fresh app id (and with it a fresh channel, whose tokens name that app as audience).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TeamsConversationReference, createTeamsAdapter, referenceOf, teamsAuthSettings } from '../../../src/bot/teams/adapter.ts';
import { createTeamsRoute } from '../../../src/bot/teams/route.ts';
import { loadConfig } from '../../../src/config.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type FakeChannel, startFakeChannel } from '../../fakes/teams/channel.ts';
import { type FakeConnector, startFakeConnector } from '../../fakes/teams/connector.ts';
import { type FakeEntra, startFakeEntra } from '../../fakes/teams/entra.ts';
import { captureLogs } from '../../support/logs.ts';

const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const SCOPE = 'https://api.botframework.com';
const SECRET = 'the-right-app-password';

type PersonalMessage = Record<string, unknown> & { id: string; serviceUrl: string; from: { id: string; name: string; aadObjectId: string }; conversation: { id: string; conversationType: string } };

describe('Teams: outbound tokens from Entra ID and sends to the Bot Connector', () => {
  let entra: FakeEntra;
  let connector: FakeConnector;
  const channels: FakeChannel[] = [];
  const logs = captureLogs({ level: 'info' });

  beforeAll(async () => {
    entra = await startFakeEntra();
    connector = await startFakeConnector({ entra, scope: SCOPE });
  });
  afterEach(async () => {
    await Promise.all(channels.splice(0).map((channel) => channel.close()));
  });
  afterAll(async () => {
    await connector?.close();
    await entra?.close();
  });

  /** A fresh app registered with the fake Entra ID (secret SECRET) and trusted by the connector; the bot configured with `password`. */
  async function bot(password: string) {
    const appId = randomUUID();
    entra.register(appId, SECRET);
    connector.trust(appId);
    const channel = await startFakeChannel({ appId });
    channels.push(channel);
    const config = loadConfig({
      MICROSOFT_APP_ID: appId,
      MICROSOFT_APP_PASSWORD: password,
      MICROSOFT_APP_TENANT_ID: TENANT_ID,
      BOTFRAMEWORK_OPENID_METADATA_URL: channel.openIdMetadataUrl,
      BOTFRAMEWORK_LOGIN_URL: entra.loginUrl,
    });
    if (!config.ok) throw new Error(config.problems.join('; '));
    const adapter = createTeamsAdapter(teamsAuthSettings(config.config)!, { outboundCa: entra.certPem });
    const activity = personalMessage(appId);
    return { appId, channel, adapter, activity, authorization: channel.authorization(activity) };
  }

  /** Microsoft's documented personal-chat message, addressed to this app and sent from the fake connector's service URL. */
  function personalMessage(appId: string): PersonalMessage {
    const activity = JSON.parse(readFileSync(new URL('../../fixtures/teams/teams_message_personal_docs.json', import.meta.url), 'utf8')) as PersonalMessage;
    return { ...activity, id: `act-${randomUUID()}`, serviceUrl: connector.serviceUrl, recipient: { id: `28:${appId}`, name: 'ProjectX' }, conversation: { ...activity.conversation, id: `a:${randomUUID()}` } };
  }

  const callsFor = (conversationId: string) => connector.calls.filter((call) => call.path.startsWith(`/v3/conversations/${conversationId}/`));

  it('replies to an authenticated activity with a token the fake Entra ID issued for our app (MSAL over https, no discovery)', async () => {
    const { appId, adapter, activity, authorization } = await bot(SECRET);
    const web = new Hono();
    web.route('/', createTeamsRoute({ adapter, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), logic: async (received) => {
        await adapter.send(referenceOf(received), { text: 'pong', attachments: [] });
        return { status: 200 };
      } }));

    const res = await web.request('/api/messages', { method: 'POST', body: JSON.stringify(activity), headers: { 'content-type': 'application/json', authorization } });

    expect(res.status).toBe(200);
    const calls = callsFor(activity.conversation.id);
    expect(calls).toHaveLength(1);
    // A send continues the conversation (botbuilder addresses it as a reply to its continuation activity).
    expect(calls[0]).toMatchObject({ method: 'POST', path: expect.stringMatching(new RegExp(`^/v3/conversations/${activity.conversation.id}/activities(/[^/]+)?$`)), status: 201, appId, body: { type: 'message', text: 'pong' } });
    // MSAL read the tenant's metadata from the fake (knownAuthorities: no instance discovery) and asked for the Bot Framework scope.
    expect(entra.requests).toContainEqual(expect.objectContaining({ method: 'GET', path: `/${TENANT_ID}/v2.0/.well-known/openid-configuration`, status: 200 }));
    const tokenRequests = entra.requests.filter((request) => request.form?.client_id === appId);
    expect(tokenRequests).toEqual([expect.objectContaining({ method: 'POST', path: `/${TENANT_ID}/oauth2/v2.0/token`, status: 200, form: expect.objectContaining({ grant_type: 'client_credentials', scope: `${SCOPE}/.default`, client_secret: '[secret]' }) })]);
    expect(entra.issued(appId)).toBe(1);
  });

  it('fails the reply with a coded error when Entra ID refuses the app password, and nothing reaches the connector', async () => {
    const { appId, adapter, activity, authorization } = await bot('a-wrong-app-password');

    const failure = adapter.process(authorization, activity, (received) => adapter.send(referenceOf(received), { text: 'pong', attachments: [] }));

    await expect(failure).rejects.toMatchObject({ name: 'TeamsOutboundError', code: 'teams_token_refused', message: expect.stringContaining('invalid_client') });
    expect(entra.requests.filter((request) => request.form?.client_id === appId)).toEqual([expect.objectContaining({ status: 401 })]);
    expect(entra.issued(appId)).toBe(0);
    expect(callsFor(activity.conversation.id)).toEqual([]);
    expect(connector.calls.filter((call) => call.appId === appId)).toEqual([]);
  });

  it('sends proactively to a stored conversation, outside any turn', async () => {
    const { appId, adapter, activity } = await bot(SECRET);
    const reference: TeamsConversationReference = {
      channelId: 'msteams',
      serviceUrl: connector.serviceUrl,
      conversation: { ...activity.conversation, isGroup: false, name: '' },
      user: activity.from,
      bot: { id: `28:${appId}`, name: 'ProjectX' },
      locale: 'en-US',
    };

    await adapter.continueConversation(reference, async (turn) => {
      await turn.sendActivity('a task needs your decision');
    });

    // botbuilder gives the continuation activity a fresh id and addresses the message as a reply to it
    // (`POST …/activities/{that id}`), as it does against the real service.
    expect(callsFor(activity.conversation.id)).toEqual([expect.objectContaining({ method: 'POST', path: expect.stringMatching(new RegExp(`^/v3/conversations/${activity.conversation.id}/activities(/[^/]+)?$`)), status: 201, appId, body: expect.objectContaining({ type: 'message', text: 'a task needs your decision' }) })]);
    expect(entra.issued(appId)).toBe(1);
  });

  it('send, update and roster lookups: one request each, refusals as TeamsSendError with status, code and Retry-After (the SDK does not retry)', async () => {
    const { appId, adapter, activity } = await bot(SECRET);
    const reference = referenceOf({ ...activity, recipient: { id: `28:${appId}`, name: 'ProjectX' } });
    const message = { text: 'T-1 needs a decision', attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: { type: 'AdaptiveCard', version: '1.5', body: [] } }] };
    const conversation = activity.conversation.id;

    const sent = await adapter.send(reference, message);
    expect(connector.posted.filter((post) => post.conversationId === conversation).map((post) => post.id)).toEqual([sent.id]);
    await adapter.update(reference, sent.id, { ...message, text: 'T-1 approved' });
    expect(callsFor(conversation).at(-1)).toMatchObject({ method: 'PUT', path: `/v3/conversations/${conversation}/activities/${sent.id}`, status: 200, body: { type: 'message', text: 'T-1 approved', id: sent.id } });

    connector.addMember(conversation, { id: '29:megan', objectId: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8', email: 'megan@contoso.example', userPrincipalName: 'megan@contoso.example', tenantId: TENANT_ID, userRole: 'user' });
    expect(await adapter.member(reference, '29:megan')).toEqual({ id: '29:megan', objectId: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8', email: 'megan@contoso.example', userPrincipalName: 'megan@contoso.example', userRole: 'user', tenantId: TENANT_ID });
    expect(await adapter.member(reference, '29:nobody')).toBeUndefined();

    const before = callsFor(conversation).length;
    connector.failNext(1, { status: 429, retryAfterSeconds: 3 });
    await expect(adapter.send(reference, message)).rejects.toMatchObject({ name: 'TeamsSendError', status: 429, code: 'TooManyRequests', retryAfterSeconds: 3 });
    connector.failNext(1, { status: 403 });
    await expect(adapter.send(reference, message)).rejects.toMatchObject({ name: 'TeamsSendError', status: 403, code: 'MessageWritesBlocked' });
    connector.failNext(1, { status: 502 });
    await expect(adapter.update(reference, sent.id, message)).rejects.toMatchObject({ name: 'TeamsSendError', status: 502 });
    connector.failNext(1, { lost: true });
    await expect(adapter.send(reference, message)).rejects.toMatchObject({ name: 'TeamsSendError', status: undefined });
    // Each failure was one request: botbuilder's pipeline would have retried the 429 (it has Retry-After), the 502 and the lost one.
    expect(callsFor(conversation).slice(before).map((call) => call.status)).toEqual([429, 403, 502, -1]);
    // The lost one did arrive: the caller must not post it again blindly (src/bot/teams/sender.ts).
    expect(connector.posted.filter((post) => post.conversationId === conversation)).toHaveLength(2);
  });

  it('the fake connector takes only tokens the fake Entra ID signed for a trusted app and the scope, and injects faults', async () => {
    const { appId } = await bot(SECRET);
    const untrusted = randomUUID();
    entra.register(untrusted, SECRET);
    const send = (authorization?: string) => fetch(`${connector.serviceUrl}v3/conversations/a:x/activities`, { method: 'POST', body: JSON.stringify({ type: 'message', text: 'x' }), headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } });
    const bearer = async (clientId: string, scope = `${SCOPE}/.default`) => `Bearer ${(await entraToken(entra, clientId, scope)).access_token}`;

    expect((await send()).status).toBe(401);
    expect((await send('Bearer not.a.token')).status).toBe(401);
    expect((await send(await bearer(untrusted))).status).toBe(401);
    expect((await send(await bearer(appId, 'https://graph.microsoft.com/.default'))).status).toBe(401);
    const good = await bearer(appId);
    expect((await send(good)).status).toBe(201);

    connector.failNext(1, { status: 429, retryAfterSeconds: 2 });
    connector.failNext(1, { status: 403 });
    const throttled = await send(good);
    expect([throttled.status, throttled.headers.get('retry-after')]).toEqual([429, '2']);
    const blocked = await send(good);
    expect([blocked.status, await blocked.json()]).toEqual([403, { error: { code: 'MessageWritesBlocked', message: expect.any(String) } }]);
    expect((await send(good)).status).toBe(201);

    // The rest of the surface the bot will use: update, roster, new conversation; an activity needs a type.
    const call = (method: string, path: string, body?: unknown) => fetch(`${connector.serviceUrl}${path}`, { method, headers: { authorization: good, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    expect(await (await call('PUT', 'v3/conversations/a:x/activities/1:abc', { type: 'message', text: 'updated' })).json()).toEqual({ id: '1:abc' });
    expect((await call('POST', 'v3/conversations/a:x/activities', { text: 'no type' })).status).toBe(400);
    connector.addMember('a:x', { id: '29:megan', objectId: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8', email: 'megan@contoso.example', userPrincipalName: 'megan@contoso.example' });
    expect(await (await call('GET', `v3/conversations/a:x/members/${encodeURIComponent('29:megan')}`)).json()).toMatchObject({ objectId: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8', email: 'megan@contoso.example' });
    expect((await call('GET', 'v3/conversations/a:x/members/29:nobody')).status).toBe(404);
    const created = await call('POST', 'v3/conversations', { isGroup: false, bot: { id: `28:${appId}` }, members: [{ id: '29:megan' }], tenantId: TENANT_ID });
    expect([created.status, await created.json()]).toEqual([201, { id: expect.stringMatching(/^a:/), serviceUrl: connector.serviceUrl }]);
    expect(connector.calls.at(-1)).toMatchObject({ method: 'POST', path: '/v3/conversations', appId, body: { members: [{ id: '29:megan' }] } });
  });
});

/** A token straight from the fake Entra ID (trusting its certificate for this request only). */
function entraToken(entra: FakeEntra, clientId: string, scope: string): Promise<{ access_token: string }> {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: SECRET, scope }).toString();
  return new Promise((resolve, reject) => {
    const req = request(`${entra.loginUrl}/${TENANT_ID}/oauth2/v2.0/token`, { method: 'POST', ca: entra.certPem, headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { access_token: string }) : reject(new Error(`token: ${res.statusCode ?? 0}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}
