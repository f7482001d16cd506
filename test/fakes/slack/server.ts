/**
 * A protocol-faithful fake of the Slack Web API for tests: a real HTTP server on 127.0.0.1 that `@slack/web-api`'s
 * WebClient (or plain fetch) talks to through `slackApiUrl: fake.apiUrl`. Answers are shaped from the real payloads
 * in ./fixtures.ts; methods without a fixture follow Slack's documented response shape (see each handler).
 *
 * Protocol rules it keeps: every Web API answer is HTTP 200 with `{ ok, ... }` (errors too), except 429 rate limits;
 * bodies are `application/x-www-form-urlencoded` (object/array args JSON-encoded strings) or `application/json`;
 * the token comes from `Authorization: Bearer` or, for form bodies only, a `token` field (Slack ignores `token` in
 * JSON bodies); missing token -> `not_authed`, unknown token -> `invalid_auth`.
 */
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  FIXTURE_RATELIMITED,
  FIXTURE_VIEWS_OPEN_ERROR,
  fileObject,
  slackbotUser,
  userObject,
  viewObject,
  type FakeFile,
  type FakeUser,
  type Json,
  type SlackMessage,
  type SlackView,
} from './fixtures.ts';
import { createOAuth } from './oauth.ts';
import type { FailureSpec, FakeSlack, FakeSlackOptions, FileDownload, RecordedCall, TokenInfo } from './types.ts';
import { type FakeSocketMode, attachSocketMode } from './socket.ts';
import { bearer, fail, isObj, parseArgs, rand, readBody, str } from './wire.ts';

export type { FakeFile, FakeUser, Json, SlackMessage, SlackView } from './fixtures.ts';
export type * from './types.ts';

type Handler = (p: Json, t: TokenInfo) => Json;

export async function startFakeSlack(options: FakeSlackOptions = {}): Promise<FakeSlack> {
  const botToken = options.botToken ?? 'xoxb-0000000001-0000000002-fakeslackbottoken';
  const bot: TokenInfo = {
    teamId: options.teamId ?? 'T00000001',
    teamName: options.teamName ?? 'Fake Workspace',
    userId: options.botUserId ?? 'U0000BOT1',
    userName: 'fakebot',
    botId: options.botId ?? 'B00000001',
    appId: options.appId ?? 'A00000001',
    scope: options.scope ?? 'chat:write,commands,files:read,im:write,users:read,users:read.email',
    isEnterpriseInstall: false,
  };
  const tokens = new Map<string, TokenInfo>([[botToken, bot]]);
  const calls: RecordedCall[] = [];
  const downloads: FileDownload[] = [];
  const nextFailures = new Map<string, { spec: FailureSpec; skip: number }[]>();
  const alwaysFailures = new Map<string, FailureSpec>();
  const channels = new Map<string, SlackMessage[]>();
  const ephemeral = new Map<string, { user: string; message: SlackMessage }[]>();
  const views = new Map<string, SlackView>();
  const homes = new Map<string, SlackView>();
  const ims = new Map<string, string>();
  // Every workspace lists Slackbot and the app's own bot user.
  const users = new Map<string, FakeUser>([
    ['USLACKBOT', slackbotUser(bot.teamId)],
    [bot.userId, { id: bot.userId, teamId: bot.teamId, realName: bot.userName, name: bot.userName, isBot: true }],
  ]);
  const files = new Map<string, FakeFile>();
  const oauth = createOAuth(tokens, bot);
  let socketMode: FakeSocketMode | undefined;
  const responseUrls = new Map<string, unknown[]>();
  let counter = 0;
  let origin = '';

  /**
   * Message timestamps as Slack makes them: the current epoch seconds and a sequence, strictly increasing
   * (code that asks conversations.history for messages `oldest` than some real time must find them).
   */
  let lastTsMicros = 0;
  const nextTs = (): string => {
    ++counter;
    lastTsMicros = Math.max(lastTsMicros + 100, Date.now() * 1000);
    return `${Math.floor(lastTsMicros / 1e6)}.${String(lastTsMicros % 1e6).padStart(6, '0')}`;
  };
  const nextId = (prefix: string): string => `${prefix}${(++counter).toString(36).toUpperCase().padStart(8, '0')}`;
  const channelOf = <T>(map: Map<string, T[]>, key: string): T[] => map.get(key) ?? map.set(key, []).get(key) ?? [];
  /**
   * The failure programmed for this call: queued ones first (exact method, then '*'; one still letting `skip` calls
   * through lets this one pass), then standing ones.
   */
  const takeFailure = (method: string): FailureSpec | undefined => {
    const keys = method === 'response_url' ? [method] : [method, '*'];
    const queue = keys.map((k) => nextFailures.get(k)).find((q) => q?.length);
    const head = queue?.[0];
    if (head && head.skip > 0) head.skip--;
    else if (head) return queue?.shift()?.spec;
    return keys.map((k) => alwaysFailures.get(k)).find((spec) => spec !== undefined);
  };
  /** users.info / users.list need users:read; the profile email is there only with users:read.email (docs: "Email addresses"). */
  const scopes = (t: TokenInfo): Set<string> => new Set(t.scope.split(','));
  const missingScope = (t: TokenInfo, needed: string): Json => ({ ok: false, error: 'missing_scope', needed, provided: t.scope });
  const visibleUser = (u: FakeUser, t: TokenInfo): Json => {
    const user = userObject(u);
    if (!scopes(t).has('users:read.email')) delete (user.profile as Json).email;
    return user;
  };
  /** users.list cursors look like Slack's (`dXNlcjpVMDYxTkZUVDI=` is base64 "user:U061NFTT2"): the next member's id. */
  const userCursor = (id: string): string => Buffer.from(`user:${id}`).toString('base64');

  /** text/blocks/attachments of chat.postMessage / update / postEphemeral, or Slack's error for them. */
  function content(p: Json, update: boolean): Partial<SlackMessage> | string {
    const { blocks, attachments } = p;
    if (blocks !== undefined && !Array.isArray(blocks)) return 'invalid_blocks_format';
    if (attachments !== undefined && !Array.isArray(attachments)) return 'invalid_attachments';
    const text = str(p, 'text');
    if (text === undefined && !(update ? (blocks ?? attachments) : blocks?.length || attachments?.length)) return 'no_text';
    // Message metadata (event_type + event_payload), documented for chat.postMessage/update; kept on the message.
    const metadata = isObj(p.metadata) ? { metadata: p.metadata } : {};
    return {
      ...(text !== undefined || !update ? { text: text ?? '' } : {}),
      ...(blocks ? { blocks } : {}),
      ...(attachments ? { attachments } : {}),
      ...metadata,
    };
  }
  function message(c: Partial<SlackMessage>, t: TokenInfo, threadTs: string | undefined): SlackMessage {
    const base = { type: 'message', text: '', user: t.userId, bot_id: t.botId, app_id: t.appId, team: t.teamId } as const;
    return { ...base, ...c, ts: nextTs(), ...(threadTs !== undefined ? { thread_ts: threadTs } : {}) };
  }
  /** Slack's answer to an unusable view argument (cf. FIXTURE_VIEWS_OPEN_ERROR), or undefined when it is fine. */
  function badView(v: unknown, type?: string): Json | undefined {
    const problem = !isObj(v)
      ? 'missing required field: view'
      : type && v.type !== type
        ? `view type must be ${type}`
        : v.type === 'modal' && v.title === undefined
          ? 'missing required field: title [json-pointer:/view]'
          : undefined;
    if (problem === undefined) return undefined;
    return { ok: false, error: 'invalid_arguments', response_metadata: { messages: [`[ERROR] ${problem}`] } };
  }
  function writeView(p: Json, t: TokenInfo, prev: SlackView | undefined): SlackView | string {
    const expected = str(p, 'hash');
    if (prev && expected !== undefined && expected !== prev.hash) return 'hash_conflict';
    const id = prev?.id ?? nextId('V');
    const hash = `${Math.floor(Date.now() / 1000)}.${1000000 + ++counter}`;
    const view = viewObject(p.view as Json, t, { id, rootId: prev?.root_view_id ?? id, hash });
    views.set(view.id, view);
    return view;
  }

  const methods: Record<string, Handler> = {
    // Shape: FIXTURE_AUTH_TEST, plus `bot_id` / `is_enterprise_install`, which Slack adds for bot tokens (documented).
    'auth.test': (_p, t) => ({
      ok: true, url: `https://${t.teamName.toLowerCase().replace(/[^a-z0-9]+/g, '-')}.slack.com/`, team: t.teamName,
      user: t.userName, team_id: t.teamId, user_id: t.userId, bot_id: t.botId, is_enterprise_install: t.isEnterpriseInstall,
    }),
    // Shape: FIXTURE_POST_MESSAGE (message fields as modern bot-token posts carry them, see fixtures.ts).
    'chat.postMessage': (p, t) => {
      const channel = str(p, 'channel');
      if (channel === undefined) return fail('channel_not_found');
      const c = content(p, false);
      if (typeof c === 'string') return fail(c);
      const msg = message(c, t, str(p, 'thread_ts'));
      channelOf(channels, channel).push(msg);
      return { ok: true, channel, ts: msg.ts, message: msg };
    },
    // No fixture: documented shape { ok, channel, ts, text, message }. Omitted blocks/attachments are kept, as documented.
    'chat.update': (p, t) => {
      const channel = str(p, 'channel');
      if (channel === undefined) return fail('channel_not_found');
      const msg = channels.get(channel)?.find((m) => m.ts === str(p, 'ts'));
      if (!msg) return fail('message_not_found');
      const c = content(p, true);
      if (typeof c === 'string') return fail(c);
      Object.assign(msg, c, { edited: { user: t.userId, ts: nextTs() } });
      return { ok: true, channel, ts: msg.ts, text: msg.text, message: msg };
    },
    // No fixture: documented shape { ok, message_ts }.
    'chat.postEphemeral': (p, t) => {
      const channel = str(p, 'channel');
      const user = str(p, 'user');
      if (channel === undefined) return fail('channel_not_found');
      if (user === undefined) return fail('user_not_in_channel');
      const c = content(p, false);
      if (typeof c === 'string') return fail(c);
      const msg = message(c, t, str(p, 'thread_ts'));
      channelOf(ephemeral, channel).push({ user, message: msg });
      return { ok: true, message_ts: msg.ts };
    },
    // No fixture: documented shape { ok, channel: { id } } (+ no_op / already_open when the DM already exists).
    'conversations.open': (p) => {
      const channel = str(p, 'channel');
      if (channel !== undefined) return { ok: true, channel: { id: channel } };
      const key = str(p, 'users')?.split(',').map((u) => u.trim()).sort().join(',');
      if (key === undefined) return fail('users_list_not_supplied');
      const existing = ims.get(key);
      if (existing) return { ok: true, no_op: true, already_open: true, channel: { id: existing } };
      const id = nextId(key.includes(',') ? 'G' : 'D');
      ims.set(key, id);
      return { ok: true, channel: { id } };
    },
    // Shape: FIXTURE_VIEWS_OPEN; a missing trigger_id answers FIXTURE_VIEWS_OPEN_ERROR. trigger_id expiry is not modelled.
    'views.open': (p, t) => {
      if (str(p, 'trigger_id') === undefined) return structuredClone(FIXTURE_VIEWS_OPEN_ERROR);
      const bad = badView(p.view);
      if (bad) return bad;
      return { ok: true, view: writeView(p, t, undefined) };
    },
    // No fixture: documented shape { ok, view } (view as in views.open); errors not_found / hash_conflict.
    'views.update': (p, t) => {
      const bad = badView(p.view);
      if (bad) return bad;
      const id = str(p, 'view_id');
      const ext = str(p, 'external_id');
      const prev = id !== undefined ? views.get(id) : [...views.values()].find((v) => ext && v.external_id === ext);
      if (!prev) return fail('not_found');
      const view = writeView(p, t, prev);
      return typeof view === 'string' ? fail(view) : { ok: true, view };
    },
    // No fixture: documented shape { ok, view }; one home view per user, its id stable across publishes.
    'views.publish': (p, t) => {
      const user = str(p, 'user_id');
      if (user === undefined) return fail('invalid_arguments');
      const bad = badView(p.view, 'home');
      if (bad) return bad;
      const view = writeView(p, t, homes.get(user));
      if (typeof view === 'string') return fail(view);
      homes.set(user, view);
      return { ok: true, view };
    },
    // No fixture: documented shape { ok, messages (newest first), has_more }; `metadata` only with include_all_metadata.
    'conversations.history': (p) => {
      const channel = str(p, 'channel');
      if (channel === undefined) return fail('channel_not_found');
      const oldest = Number(str(p, 'oldest') ?? '0');
      const limit = Math.min(Number(str(p, 'limit') ?? '100') || 100, 999);
      const withMetadata = str(p, 'include_all_metadata') === 'true' || p.include_all_metadata === true;
      const found = [...(channels.get(channel) ?? [])]
        .filter((m) => Number(m.ts) > oldest)
        .reverse()
        .slice(0, limit)
        .map((m) => (withMetadata ? m : Object.fromEntries(Object.entries(m).filter(([key]) => key !== 'metadata'))));
      return { ok: true, messages: found, has_more: false, pin_count: 0, response_metadata: { next_cursor: '' } };
    },
    // No fixture: documented shape { ok: true }; the app's client_id and client_secret go with the bot token.
    'apps.uninstall': (p) => (str(p, 'client_id') === undefined || str(p, 'client_secret') === undefined ? fail('invalid_arguments') : { ok: true }),
    // No fixture: documented shape { ok, user } (see userObject).
    'users.info': (p, t) => {
      if (!scopes(t).has('users:read')) return missingScope(t, 'users:read');
      const user = users.get(str(p, 'user') ?? '');
      return user ? { ok: true, user: visibleUser(user, t) } : fail('user_not_found');
    },
    // No fixture: documented shape { ok, members, cache_ts, response_metadata: { next_cursor } } (users.list example).
    // The fake keeps one directory: every added user is listed, in the order added, after Slackbot and the app's bot
    // (a test adds members of other teams, deleted ones and bots to see them refused). `limit` is capped at 1000; no
    // limit (or 0) answers everything, as Slack attempts to; `next_cursor` is "" on the last page; a cursor the fake
    // did not issue is `invalid_cursor`. `team_id` matters only for org tokens, which the fake does not issue.
    'users.list': (p, t) => {
      if (!scopes(t).has('users:read')) return missingScope(t, 'users:read');
      const all = [...users.values()];
      const cursor = str(p, 'cursor');
      let from = 0;
      if (cursor !== undefined) {
        const id = /^user:(.+)$/.exec(Buffer.from(cursor, 'base64').toString('utf8'))?.[1];
        from = id === undefined ? -1 : all.findIndex((u) => u.id === id);
        if (from < 0) return fail('invalid_cursor');
      }
      const limit = Math.min(Math.max(Number(str(p, 'limit') ?? '0') || 0, 0), 1000) || all.length;
      const next = all[from + limit];
      return {
        ok: true,
        members: all.slice(from, from + limit).map((u) => visibleUser(u, t)),
        cache_ts: Math.floor(Date.now() / 1000),
        response_metadata: { next_cursor: next ? userCursor(next.id) : '' },
      };
    },
    // Shape: slack_files_info_response_openapi.json ({ ok, file, comments, response_metadata }).
    'files.info': (p) => {
      const file = files.get(str(p, 'file') ?? '');
      if (!file) return fail('file_not_found');
      const fileJson = fileObject(file, file.teamId ?? bot.teamId, origin);
      return { ok: true, file: fileJson, comments: [], response_metadata: { next_cursor: '' } };
    },
  };

  function sendJson(res: ServerResponse, status: number, body: unknown, scope?: string): void {
    const scopes = scope !== undefined ? { 'x-oauth-scopes': scope } : {};
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...scopes }).end(JSON.stringify(body));
  }
  function sendFailure(res: ServerResponse, spec: FailureSpec, textBody = false): void {
    const status = spec.status ?? (spec.retryAfter !== undefined ? 429 : 200);
    const retryAfter = { 'retry-after': String(spec.retryAfter ?? 1) };
    if (status === 429 && !textBody) {
      res.writeHead(429, { ...FIXTURE_RATELIMITED.headers, ...retryAfter }).end(FIXTURE_RATELIMITED.body);
    } else if (spec.error !== undefined && !textBody) sendJson(res, status, fail(spec.error));
    else {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...(status === 429 ? retryAfter : {}) });
      res.end(spec.error ?? STATUS_CODES[status] ?? 'error');
    }
  }

  async function api(method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parsed = parseArgs(req.headers['content-type'] ?? '', await readBody(req), url.searchParams);
    const all: Json = typeof parsed === 'string' ? {} : parsed.params;
    const { token: bodyToken, ...params } = all;
    const formToken = typeof parsed !== 'string' && parsed.form && typeof bodyToken === 'string' ? bodyToken : undefined;
    const token = bearer(req) ?? formToken;
    const injected = takeFailure(method);
    calls.push({ method, params, token, headers: req.headers, at: new Date(), ...(injected ? { injected } : {}) });
    if (injected && !injected.dropResponse) return sendFailure(res, injected);
    const handler = methods[method];
    const info = token === undefined ? undefined : tokens.get(token);
    const body = typeof parsed === 'string' ? fail(parsed)
      : method === 'oauth.v2.access' ? oauth.access(params, req.headers.authorization)
      : method === 'apps.connections.open' ? (socketMode && token === socketMode.appToken ? socketMode.open(origin) : fail(token === undefined ? 'not_authed' : 'invalid_auth'))
      : !handler ? fail('unknown_method')
      : token === undefined ? fail('not_authed')
      : !info ? fail('invalid_auth')
      : handler(params, info);
    if (injected?.dropResponse) {
      req.socket.destroy();
      return;
    }
    sendJson(res, 200, body, info?.scope);
  }

  /** url_private(_download). Without a valid bearer token Slack's file host answers like a browser session that is
   * not signed in: 302 to the workspace sign-in page (an HTML 200), which is what a naive fetch ends up parsing. */
  function download(path: string, req: IncomingMessage, res: ServerResponse): void {
    const m = /^\/files-pri\/([A-Z0-9]+)-([A-Z0-9]+)\/(download\/)?([^/]+)$/.exec(path);
    const file = m ? files.get(m[2] ?? '') : undefined;
    if (!m || !file || (file.teamId ?? bot.teamId) !== m[1] || encodeURIComponent(file.name) !== m[4]) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
      return;
    }
    const token = bearer(req);
    const authorized = token !== undefined && tokens.has(token);
    downloads.push({ fileId: file.id, authorized, at: new Date() });
    if (!authorized) {
      res.writeHead(302, { location: `${origin}/?redirect=${encodeURIComponent(path)}` }).end();
      return;
    }
    res.writeHead(200, {
      'content-type': file.mimetype,
      'content-length': file.content.length,
      ...(m[3] ? { 'content-disposition': `attachment; filename="${file.name}"` } : {}),
    });
    res.end(file.content);
  }

  /** response_url: JSON bodies are recorded and answered `ok` (text), like Slack's hooks endpoint. */
  async function responseUrlPost(path: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const list = responseUrls.get(path);
    if (!list) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('no_service');
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      return void res.writeHead(400, { 'content-type': 'text/plain' }).end('invalid_payload');
    }
    const injected = takeFailure('response_url');
    const params = isObj(body) ? body : { body };
    const at = new Date();
    calls.push({ method: 'response_url', params, token: undefined, headers: req.headers, at, ...(injected ? { injected } : {}) });
    if (injected && !injected.dropResponse) return sendFailure(res, injected, true);
    list.push(body);
    if (injected?.dropResponse) return void req.socket.destroy();
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    if (path.startsWith('/api/')) return api(path.slice(5), url, req, res);
    if (path.startsWith('/files-pri/') && req.method === 'GET') return download(path, req, res);
    if (path.startsWith('/actions/') && req.method === 'POST') return responseUrlPost(path, req, res);
    if (path !== '/') return void res.writeHead(404, { 'content-type': 'text/plain' }).end('Not Found');
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!DOCTYPE html><html><head><title>Sign in | Slack</title></head><body>Sign in to your workspace</body></html>');
  }
  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
    socketMode = attachSocketMode(server);
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    apiUrl: `${origin}/api/`,
    botToken,
    teamId: bot.teamId,
    calls,
    downloads,
    callsTo: (method) => calls.filter((c) => c.method === method),
    failNext(method, { skip = 0, ...spec }) {
      channelOf(nextFailures, method).push({ spec, skip });
    },
    failAlways: (method, spec) => void (spec ? alwaysFailures.set(method, spec) : alwaysFailures.delete(method)),
    reset() {
      calls.length = 0;
      downloads.length = 0;
      for (const map of [nextFailures, alwaysFailures, channels, ephemeral, views, homes, ims]) map.clear();
      for (const list of responseUrls.values()) list.length = 0;
    },
    messages: (channel) => [...(channels.get(channel) ?? [])],
    ephemerals: (channel) => [...(ephemeral.get(channel) ?? [])],
    view: (id) => views.get(id),
    publishedHome: (userId) => homes.get(userId),
    addUser: (user) => void users.set(user.id, user),
    addFile(file) {
      files.set(file.id, file);
      return fileObject(file, file.teamId ?? bot.teamId, origin);
    },
    oauth: (grants) => oauth.register(grants),
    responseUrl() {
      const path = `/actions/${bot.teamId}/${++counter}/${rand(12)}`;
      responseUrls.set(path, []);
      return `${origin}${path}`;
    },
    responses: (url) => responseUrls.get(new URL(url).pathname) ?? [],
    socketMode: () => socketMode!,
    async close() {
      socketMode?.close();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
