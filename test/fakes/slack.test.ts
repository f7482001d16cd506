/**
 * Self-test of the fake Slack Web API (test/fakes/slack/): drives it with the real `@slack/web-api` WebClient and
 * plain fetch, and checks its answers against the real payloads copied into test/fakes/slack/fixtures.ts.
 */
import {
  ErrorCode,
  LogLevel,
  WebAPIHTTPError,
  WebAPIPlatformError,
  WebAPIRateLimitedError,
  WebAPIRequestError,
  WebClient,
  type WebClientOptions,
} from '@slack/web-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FIXTURE_AUTH_TEST,
  FIXTURE_ERROR,
  FIXTURE_FILE_OBJECT,
  FIXTURE_POST_MESSAGE,
  FIXTURE_RATELIMITED,
  FIXTURE_VIEWS_OPEN,
  FIXTURE_VIEWS_OPEN_ERROR,
} from './slack/fixtures.ts';
import { startFakeSlack, type FakeSlack, type Json } from './slack/server.ts';

let fake: FakeSlack;
beforeEach(async () => {
  fake = await startFakeSlack();
});
afterEach(async () => {
  await fake.close();
});

const client = (token: string = fake.botToken, options: WebClientOptions = {}): WebClient =>
  new WebClient(token, { slackApiUrl: fake.apiUrl, logLevel: LogLevel.ERROR, retryConfig: { retries: 0 }, ...options });
/** A WebClient without a token (oauth.v2.access, or to see not_authed). */
const anonymous = (): WebClient => new WebClient(undefined, { slackApiUrl: fake.apiUrl, logLevel: LogLevel.ERROR, retryConfig: { retries: 0 } });

/** A raw Web API call, to see exactly what goes over the wire. */
async function raw(method: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Json }> {
  const res = await fetch(`${fake.apiUrl}${method}`, { method: 'POST', ...init });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Json };
}
const form = (args: Record<string, string>, token = fake.botToken): RequestInit => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${token}` },
  body: new URLSearchParams(args).toString(),
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the call to be rejected'),
    (err: unknown) => err,
  );
}

const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*Incident* INC-1 opened' } }];

describe('fake Slack Web API', () => {
  it('listens on 127.0.0.1 and hands WebClient an /api/ base URL', () => {
    expect(fake.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/$/);
  });

  it('chat.postMessage + chat.update round trip, with blocks JSON-decoded from the form body', async () => {
    const web = client();
    const posted = await web.chat.postMessage({ channel: 'C0INCIDENT', text: 'INC-1 opened', blocks });
    expect(posted.ok).toBe(true);
    expect(posted.channel).toBe('C0INCIDENT');
    expect(posted.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(posted.message).toMatchObject({ type: 'message', text: 'INC-1 opened', ts: posted.ts, blocks });
    // The fixture's message fields that modern bot posts still carry.
    for (const key of ['type', 'text', 'ts', 'bot_id']) expect(posted.message).toHaveProperty(key);

    const [call] = fake.callsTo('chat.postMessage');
    expect(call?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(call?.token).toBe(fake.botToken);
    expect(call?.params).toMatchObject({ channel: 'C0INCIDENT', text: 'INC-1 opened', blocks });
    expect(call?.params).not.toHaveProperty('token');

    const second = await web.chat.postMessage({ channel: 'C0INCIDENT', text: 'second' });
    expect(Number(second.ts)).toBeGreaterThan(Number(posted.ts));

    const updated = await web.chat.update({ channel: 'C0INCIDENT', ts: posted.ts ?? '', text: 'INC-1 resolved' });
    expect(updated).toMatchObject({ ok: true, channel: 'C0INCIDENT', ts: posted.ts, text: 'INC-1 resolved' });
    expect(updated.message).toMatchObject({ text: 'INC-1 resolved', blocks });
    expect(fake.messages('C0INCIDENT').map((m) => m.text)).toEqual(['INC-1 resolved', 'second']);
    expect(fake.messages('C0INCIDENT')[0]?.edited?.user).toBe('U0000BOT1');

    const missing = await rejection(web.chat.update({ channel: 'C0INCIDENT', ts: '1.000000', text: 'x' }));
    expect(missing).toBeInstanceOf(WebAPIPlatformError);
    expect((missing as WebAPIPlatformError).data.error).toBe('message_not_found');
  });

  it('answers in the fixtures\' shapes (postMessage, error, auth.test)', async () => {
    const posted = await raw('chat.postMessage', form({ channel: 'C1', text: 'hi' }));
    expect(posted.status).toBe(200);
    expect(posted.headers.get('content-type')).toMatch(/^application\/json/);
    expect(Object.keys(posted.body).sort()).toEqual(Object.keys(FIXTURE_POST_MESSAGE).sort());

    const error = await raw('chat.postMessage', form({ channel: 'C1' }));
    expect(Object.keys(error.body).sort()).toEqual(Object.keys(FIXTURE_ERROR).sort());
    expect(error.body).toEqual({ ok: false, error: 'no_text' });

    const auth = await raw('auth.test', form({}));
    expect(Object.keys(auth.body)).toEqual(expect.arrayContaining(Object.keys(FIXTURE_AUTH_TEST)));
    expect(auth.body).toMatchObject({ ok: true, team_id: fake.teamId, user_id: 'U0000BOT1' });
  });

  it('accepts application/json bodies with a bearer token, and a form `token` field', async () => {
    const json = await raw('chat.postMessage', {
      headers: { 'content-type': 'application/json; charset=utf-8', authorization: `Bearer ${fake.botToken}` },
      body: JSON.stringify({ channel: 'C2', text: 'json', blocks }),
    });
    expect(json.body).toMatchObject({ ok: true, channel: 'C2', message: { blocks } });

    const tokenField = await raw('chat.postMessage', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: fake.botToken, channel: 'C2', text: 'form' }).toString(),
    });
    expect(tokenField.body.ok).toBe(true);

    // Slack does not read `token` from JSON bodies.
    const jsonToken = await raw('chat.postMessage', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: fake.botToken, channel: 'C2', text: 'x' }),
    });
    expect(jsonToken.body).toEqual({ ok: false, error: 'not_authed' });
    expect(fake.messages('C2').map((m) => m.text)).toEqual(['json', 'form']);
  });

  it('429 with Retry-After surfaces as a rate-limited error carrying retryAfter', async () => {
    fake.failNext('chat.postMessage', { status: 429, retryAfter: 2 });
    const web = client(fake.botToken, { retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
    const err = await rejection(web.chat.postMessage({ channel: 'C3', text: 'hi' }));
    expect(err).toBeInstanceOf(WebAPIRateLimitedError);
    expect((err as WebAPIRateLimitedError).code).toBe(ErrorCode.RateLimitedError);
    expect((err as WebAPIRateLimitedError).retryAfter).toBe(2);
    expect(fake.messages('C3')).toEqual([]);
    expect(fake.callsTo('chat.postMessage')[0]?.injected).toEqual({ status: 429, retryAfter: 2 });

    // One-shot: the next call goes through.
    await expect(web.chat.postMessage({ channel: 'C3', text: 'hi' })).resolves.toMatchObject({ ok: true });

    // On the wire: the fixture's status, headers and body.
    fake.failNext('auth.test', { status: 429, retryAfter: 7 });
    const res = await fetch(`${fake.apiUrl}auth.test`, { method: 'POST', headers: { authorization: `Bearer ${fake.botToken}` } });
    expect(res.status).toBe(FIXTURE_RATELIMITED.status);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(res.headers.get('content-type')).toBe(FIXTURE_RATELIMITED.headers['content-type']);
    expect(await res.text()).toBe(FIXTURE_RATELIMITED.body);
  });

  it('a WebClient that honours Retry-After retries and succeeds once', async () => {
    fake.failNext('chat.postMessage', { retryAfter: 0 });
    const web = client(fake.botToken, { retryConfig: { retries: 1, minTimeout: 0, maxTimeout: 0 } });
    await expect(web.chat.postMessage({ channel: 'C4', text: 'hi' })).resolves.toMatchObject({ ok: true });
    expect(fake.callsTo('chat.postMessage')).toHaveLength(2);
    expect(fake.messages('C4')).toHaveLength(1);
  });

  it('error responses: programmed errors, auth errors, unknown methods, HTTP 500', async () => {
    const web = client();
    fake.failNext('chat.postMessage', { error: 'channel_not_found' });
    fake.failNext('chat.postMessage', { error: 'is_archived' });
    const first = await rejection(web.chat.postMessage({ channel: 'C5', text: 'a' }));
    const second = await rejection(web.chat.postMessage({ channel: 'C5', text: 'b' }));
    expect(first).toBeInstanceOf(WebAPIPlatformError);
    expect((first as WebAPIPlatformError).data).toMatchObject({ ok: false, error: 'channel_not_found' });
    expect((second as WebAPIPlatformError).data.error).toBe('is_archived');
    await expect(web.chat.postMessage({ channel: 'C5', text: 'c' })).resolves.toMatchObject({ ok: true });

    const noToken = await rejection(anonymous().auth.test());
    expect((noToken as WebAPIPlatformError).data.error).toBe('not_authed');
    const badToken = await rejection(client('xoxb-not-a-real-token').auth.test());
    expect((badToken as WebAPIPlatformError).data.error).toBe('invalid_auth');
    const unknown = await rejection(web.apiCall('chat.noSuchMethod', {}));
    expect((unknown as WebAPIPlatformError).data.error).toBe('unknown_method');

    fake.failNext('users.info', { status: 500 });
    const http = await rejection(web.users.info({ user: 'U1' }));
    expect(http).toBeInstanceOf(WebAPIHTTPError);
    expect((http as WebAPIHTTPError).statusCode).toBe(500);

    fake.failAlways('auth.test', { error: 'account_inactive' });
    await expect(web.auth.test()).rejects.toBeInstanceOf(WebAPIPlatformError);
    await expect(web.auth.test()).rejects.toBeInstanceOf(WebAPIPlatformError);
    fake.reset();
    expect(fake.calls).toEqual([]);
    expect(fake.messages('C5')).toEqual([]);
    await expect(web.auth.test()).resolves.toMatchObject({ ok: true });
  });

  it('dropResponse: the call is processed (the message is posted) but the answer is lost', async () => {
    fake.failNext('chat.postMessage', { dropResponse: true });
    const err = await rejection(client().chat.postMessage({ channel: 'C6', text: 'lost answer' }));
    expect(err).toBeInstanceOf(WebAPIRequestError);
    expect(fake.messages('C6').map((m) => m.text)).toEqual(['lost answer']);
    expect(fake.callsTo('chat.postMessage')).toHaveLength(1);
  });

  it('files.info in the file object\'s shape; url_private_download needs the bot token', async () => {
    const content = Buffer.from('%PDF-1.7 evidence bytes');
    fake.addFile({ id: 'F0EVIDENCE1', name: 'report.pdf', mimetype: 'application/pdf', content, channels: ['C7'] });
    const info = await client().files.info({ file: 'F0EVIDENCE1' });
    const file = info.file as unknown as Json;
    const imageOnly = /^(thumb_|image_exif|original_|deanimate|pjpeg)/;
    expect(Object.keys(file).sort()).toEqual(Object.keys(FIXTURE_FILE_OBJECT).filter((k) => !imageOnly.test(k)).sort());
    expect(file).toMatchObject({ id: 'F0EVIDENCE1', name: 'report.pdf', mimetype: 'application/pdf', size: content.length });
    const downloadUrl = String(file.url_private_download);
    expect(downloadUrl).toBe(`${fake.origin}/files-pri/${fake.teamId}-F0EVIDENCE1/download/report.pdf`);
    expect(String(file.url_private)).toBe(`${fake.origin}/files-pri/${fake.teamId}-F0EVIDENCE1/report.pdf`);

    const ok = await fetch(downloadUrl, { headers: { authorization: `Bearer ${fake.botToken}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('application/pdf');
    expect(Buffer.from(await ok.arrayBuffer())).toEqual(content);

    const refused = await fetch(downloadUrl, { redirect: 'manual' });
    expect(refused.status).toBe(302);
    expect(refused.headers.get('location')).toMatch(new RegExp(`^${fake.origin}/\\?redirect=`));
    // A client that follows the redirect gets the sign-in page, not the file.
    const followed = await fetch(downloadUrl, { headers: { authorization: 'Bearer xoxb-wrong' } });
    expect(followed.headers.get('content-type')).toMatch(/^text\/html/);
    expect(fake.downloads.map((d) => d.authorized)).toEqual([true, false, false]);

    const missing = await rejection(client().files.info({ file: 'F0NOPE' }));
    expect((missing as WebAPIPlatformError).data.error).toBe('file_not_found');
  });

  it('users.info serves added users with profile.email; user_not_found otherwise', async () => {
    fake.addUser({ id: 'U0ALICE', teamId: fake.teamId, email: 'alice@example.com', realName: 'Alice Example' });
    const res = await client().users.info({ user: 'U0ALICE' });
    expect(res.user).toMatchObject({ id: 'U0ALICE', team_id: fake.teamId, real_name: 'Alice Example' });
    expect(res.user?.profile?.email).toBe('alice@example.com');
    const missing = await rejection(client().users.info({ user: 'U0BOB' }));
    expect((missing as WebAPIPlatformError).data.error).toBe('user_not_found');
  });

  it('users.list pages the whole directory with cursors, members in the users.info shape', async () => {
    for (let i = 0; i < 5; i++) fake.addUser({ id: `U0LIST${i}`, teamId: fake.teamId, realName: `Member ${i}`, email: `m${i}@example.com` });
    fake.addUser({ id: 'U0UNCONF', teamId: fake.teamId, realName: 'Unconfirmed', email: 'u@example.com', emailConfirmed: false });
    fake.addUser({ id: 'U0GONE', teamId: fake.teamId, realName: 'Gone', email: 'gone@example.com', deleted: true });
    fake.addUser({ id: 'W0GRID', teamId: 'T0OTHER', realName: 'Grid', email: 'g@example.com', enterpriseId: 'E0GRID' });
    const web = client();
    const ids: string[] = [];
    const sizes: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await web.users.list({ limit: 4, ...(cursor ? { cursor } : {}) });
      sizes.push(page.members?.length ?? 0);
      ids.push(...(page.members ?? []).map((member) => member.id ?? ''));
      cursor = page.response_metadata?.next_cursor;
      // Slack's cursors: base64 of "user:<id>", the last page's is an empty string.
      if (cursor) expect(Buffer.from(cursor, 'base64').toString()).toMatch(/^user:[A-Z0-9]+$/);
    } while (cursor);
    expect(cursor).toBe('');
    expect(sizes).toEqual([4, 4, 2]);
    expect(ids).toEqual(['USLACKBOT', 'U0000BOT1', 'U0LIST0', 'U0LIST1', 'U0LIST2', 'U0LIST3', 'U0LIST4', 'U0UNCONF', 'U0GONE', 'W0GRID']);
    expect(fake.callsTo('users.list').map((call) => call.params.limit)).toEqual(['4', '4', '4']);

    // No limit: everything at once, as Slack attempts; the members are users.info's user objects.
    const all = await raw('users.list', form({}));
    expect(Object.keys(all.body).sort()).toEqual(['cache_ts', 'members', 'ok', 'response_metadata']);
    expect(all.body.response_metadata).toEqual({ next_cursor: '' });
    const members = new Map((all.body.members as Json[]).map((member) => [member.id, member]));
    expect(members.size).toBe(10);
    expect(members.get('U0LIST0')).toEqual((await web.users.info({ user: 'U0LIST0' })).user);
    expect(members.get('U0LIST0')).toMatchObject({ team_id: fake.teamId, is_bot: false, deleted: false, is_email_confirmed: true, profile: { email: 'm0@example.com' } });
    expect(members.get('USLACKBOT')).toMatchObject({ is_bot: false, is_email_confirmed: false });
    expect(members.get('USLACKBOT')?.profile).not.toHaveProperty('email');
    expect(members.get('U0000BOT1')).toMatchObject({ is_bot: true });
    expect(members.get('U0UNCONF')).toMatchObject({ is_email_confirmed: false, profile: { email: 'u@example.com' } });
    expect(members.get('U0GONE')).toMatchObject({ deleted: true });
    expect(members.get('W0GRID')).toMatchObject({ team_id: 'T0OTHER', enterprise_user: { enterprise_id: 'E0GRID', teams: ['T0OTHER'] } });

    const stale = await rejection(web.users.list({ limit: 4, cursor: Buffer.from('user:U0NOBODY').toString('base64') }));
    expect((stale as WebAPIPlatformError).data.error).toBe('invalid_cursor');
  });

  it('users.list: emails only with users:read.email, missing_scope without users:read, and a programmable 429', async () => {
    fake.addUser({ id: 'U0ALICE', teamId: fake.teamId, email: 'alice@example.com', realName: 'Alice Example' });
    fake.oauth({
      'code-read': { clientId: 'c', clientSecret: 's', team: { id: fake.teamId, name: 'Fake' }, scope: 'chat:write,users:read' },
      'code-none': { clientId: 'c', clientSecret: 's', team: { id: fake.teamId, name: 'Fake' }, scope: 'chat:write' },
    });
    const readOnly = await anonymous().oauth.v2.access({ client_id: 'c', client_secret: 's', code: 'code-read' });
    const listed = await client(readOnly.access_token).users.list({ limit: 200 });
    expect(listed.members?.find((member) => member.id === 'U0ALICE')?.profile).not.toHaveProperty('email');
    const none = await anonymous().oauth.v2.access({ client_id: 'c', client_secret: 's', code: 'code-none' });
    const refused = await rejection(client(none.access_token).users.list({ limit: 200 }));
    expect((refused as WebAPIPlatformError).data).toMatchObject({ ok: false, error: 'missing_scope', needed: 'users:read' });

    // The second call is rate-limited (`skip` lets the first through), then the listing goes on.
    fake.failNext('users.list', { status: 429, retryAfter: 30, skip: 1 });
    const web = client(fake.botToken, { rejectRateLimitedCalls: true });
    const first = await web.users.list({ limit: 2 });
    const limited = await rejection(web.users.list({ limit: 2, cursor: first.response_metadata?.next_cursor ?? '' }));
    expect(limited).toBeInstanceOf(WebAPIRateLimitedError);
    expect((limited as WebAPIRateLimitedError).retryAfter).toBe(30);
    await expect(web.users.list({ limit: 2, cursor: first.response_metadata?.next_cursor ?? '' })).resolves.toMatchObject({ ok: true });
    expect(fake.callsTo('users.list').slice(-3).map((call) => call.injected)).toEqual([undefined, { status: 429, retryAfter: 30 }, undefined]);
  });

  it('oauth.v2.access exchanges a registered code once; the issued token works', async () => {
    fake.oauth({
      'code-1': { clientId: '111.222', clientSecret: 's3cret', team: { id: 'T0ACME', name: 'Acme' }, authedUser: { id: 'U0INSTALLER' } },
    });
    const web = anonymous();
    const wrongSecret = await rejection(web.oauth.v2.access({ client_id: '111.222', client_secret: 'nope', code: 'code-1' }));
    expect((wrongSecret as WebAPIPlatformError).data.error).toBe('bad_client_secret');
    const wrongClient = await rejection(web.oauth.v2.access({ client_id: '999', client_secret: 's3cret', code: 'code-1' }));
    expect((wrongClient as WebAPIPlatformError).data.error).toBe('invalid_client_id');

    const grant = await web.oauth.v2.access({ client_id: '111.222', client_secret: 's3cret', code: 'code-1' });
    expect(grant).toMatchObject({
      ok: true,
      token_type: 'bot',
      team: { id: 'T0ACME', name: 'Acme' },
      enterprise: null,
      authed_user: { id: 'U0INSTALLER' },
      is_enterprise_install: false,
    });
    expect(grant.access_token).toMatch(/^xoxb-/);
    expect(grant).toHaveProperty('scope');
    expect(grant).toHaveProperty('bot_user_id');
    expect(grant).toHaveProperty('app_id');
    expect(grant).not.toHaveProperty('refresh_token');
    await expect(client(grant.access_token).auth.test()).resolves.toMatchObject({ team_id: 'T0ACME' });

    const reused = await rejection(web.oauth.v2.access({ client_id: '111.222', client_secret: 's3cret', code: 'code-1' }));
    expect((reused as WebAPIPlatformError).data.error).toBe('invalid_code');
  });

  it('oauth.v2.access with token rotation: refresh_token + expires_in, then grant_type=refresh_token', async () => {
    const enterprise = { id: 'E0GRID', name: 'Grid' };
    fake.oauth({
      'code-r': { clientId: 'c', clientSecret: 's', team: { id: 'T0R', name: 'R' }, enterprise, tokenRotation: true },
    });
    const web = anonymous();
    const first = await web.oauth.v2.access({ client_id: 'c', client_secret: 's', code: 'code-r' });
    expect(first).toMatchObject({ ok: true, expires_in: 43200, enterprise });
    expect(first.access_token).toMatch(/^xoxe\.xoxb-1-/);
    expect(first.refresh_token).toMatch(/^xoxe-1-/);

    const refresh = { client_id: 'c', client_secret: 's', grant_type: 'refresh_token' as const, refresh_token: first.refresh_token ?? '' };
    const second = await web.oauth.v2.access(refresh);
    expect(second.access_token).not.toBe(first.access_token);
    expect(second.refresh_token).not.toBe(first.refresh_token);
    await expect(client(second.access_token).auth.test()).resolves.toMatchObject({ team_id: 'T0R' });
    const replay = await rejection(web.oauth.v2.access(refresh));
    expect((replay as WebAPIPlatformError).data.error).toBe('invalid_refresh_token');
  });

  it('views.open / views.update / views.publish are stored and recorded', async () => {
    const web = client();
    const plain = (text: string) => ({ type: 'plain_text' as const, text });
    const modal = { type: 'modal' as const, callback_id: 'evidence', title: plain('Evidence'), submit: plain('Attach'), blocks };
    const opened = await web.views.open({ trigger_id: '123.456.abc', view: modal });
    const view = opened.view as unknown as Json;
    expect(Object.keys(view)).toEqual(expect.arrayContaining(Object.keys(FIXTURE_VIEWS_OPEN.view)));
    expect(view).toMatchObject({ type: 'modal', callback_id: 'evidence', blocks, state: { values: {} } });
    expect(String(view.id)).toMatch(/^V[0-9A-Z]+$/);
    expect(String(view.hash)).toMatch(/^\d+\.\d+$/);
    expect(fake.callsTo('views.open')[0]?.params).toMatchObject({ trigger_id: '123.456.abc', view: modal });

    const updated = await web.views.update({ view_id: String(view.id), hash: String(view.hash), view: { ...modal, callback_id: 'v2' } });
    expect(updated.view).toMatchObject({ id: view.id, callback_id: 'v2' });
    expect(updated.view?.hash).not.toBe(view.hash);
    const stale = await rejection(web.views.update({ view_id: String(view.id), hash: String(view.hash), view: modal }));
    expect((stale as WebAPIPlatformError).data.error).toBe('hash_conflict');

    const noTrigger = await raw('views.open', form({ view: JSON.stringify(modal) }));
    expect(noTrigger.body).toEqual(FIXTURE_VIEWS_OPEN_ERROR);

    const home = { type: 'home' as const, blocks };
    const published = await web.views.publish({ user_id: 'U0ALICE', view: home });
    expect(published.view).toMatchObject({ type: 'home', blocks });
    expect(fake.publishedHome('U0ALICE')).toMatchObject({ id: published.view?.id, type: 'home', blocks });
    const republished = await web.views.publish({ user_id: 'U0ALICE', view: { ...home, blocks: [] } });
    expect(republished.view?.id).toBe(published.view?.id);
    expect(fake.publishedHome('U0ALICE')?.blocks).toEqual([]);
    expect(fake.callsTo('views.publish').map((c) => c.params.user_id)).toEqual(['U0ALICE', 'U0ALICE']);
  });

  it('chat.postEphemeral and conversations.open', async () => {
    const web = client();
    const eph = await web.chat.postEphemeral({ channel: 'C8', user: 'U0ALICE', text: 'only you' });
    expect(eph.message_ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(fake.ephemerals('C8')).toMatchObject([{ user: 'U0ALICE', message: { text: 'only you' } }]);
    expect(fake.messages('C8')).toEqual([]);

    const dm = await web.conversations.open({ users: 'U0ALICE' });
    expect(dm.channel?.id).toMatch(/^D/);
    const again = await web.conversations.open({ users: 'U0ALICE' });
    expect(again).toMatchObject({ channel: { id: dm.channel?.id }, already_open: true });
  });

  it('response_url: fresh URLs on this server; POSTs are recorded and answered ok', async () => {
    const url = fake.responseUrl();
    expect(url.startsWith(`${fake.origin}/actions/`)).toBe(true);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ replace_original: true, text: 'Done' }),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(fake.responses(url)).toEqual([{ replace_original: true, text: 'Done' }]);
    expect(fake.responses(fake.responseUrl())).toEqual([]);
    expect(fake.callsTo('response_url')).toHaveLength(1);

    fake.failNext('response_url', { status: 500 });
    const failed = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"text":"x"}' });
    expect(failed.status).toBe(500);
    expect(fake.responses(url)).toHaveLength(1);
  });
});
