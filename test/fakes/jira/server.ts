/**
 * A protocol-faithful fake of Jira (Cloud and Data Center) for tests: three real HTTP servers on 127.0.0.1
 * (node:http, no framework) standing for the site (`https://<site>.atlassian.net` or the DC base URL), the auth host
 * (`https://auth.atlassian.com`) and the API gateway (`https://api.atlassian.com`), over an in-memory store fast
 * enough to page through 100,000 issues.
 *
 *   const jira = await startFakeJira({ now: () => clock.now(), timeZone: 'America/Los_Angeles' });
 *   jira.createIssues(5000, (i) => ({ project: 'SEC', summary: `issue ${i}`, updated: new Date(t0 + i) }));
 *   await fetch(`${jira.url}/rest/api/3/search/jql?jql=${encodeURIComponent('project = SEC ORDER BY updated ASC')}`,
 *     { headers: { authorization: `Basic ${btoa('px-bot@example.com:api-token-secret')}` } });
 *   jira.failNext(1, { status: 429, reason: 'jira-burst-based' }, { pathPrefix: '/rest/api/3/search/jql' });
 *
 * API: ./types.ts. What each part serves and where its shapes come from is in the header of its module:
 * ./search.ts (search/jql, DC search, approximate-count, bulkfetch), ./jql.ts (the JQL subset), ./issues.ts (issue
 * reads and writes), ./meta.ts (/myself, /field, /status, /user/search), ./agile.ts, ./oauth.ts (3LO, the auth
 * host), ./webhooks.ts, ./render.ts (wire shapes), ./wire.ts (429 headers, per-issue limits, failures).
 *
 * Routing and authentication (notes A5, A8):
 * - Site, Cloud: Basic `email:apiToken`. A 3LO access token here → 401 (they only work through the gateway); any
 *   other Bearer → 403 `{"error":"Failed to parse Connect Session Auth Token"}` (measured by backlot); no or wrong
 *   credentials → 401 (GET: the bare sentence "Client must be authenticated to access this resource." with a media
 *   type following Accept, as measured; other methods: the JSON error body).
 * - Site, DC: `Authorization: Bearer <PAT>` only (Basic with the PAT is refused); /rest/api/2 and the agile API;
 *   /rest/api/3 and Cloud-only routes are 404 ("no endpoint").
 * - Gateway: `GET /oauth/token/accessible-resources` and every site route under `/ex/jira/{cloudId}`, Bearer 3LO
 *   only (Basic → 401), scopes checked (read:jira-work / read:jira-user for reads, write:jira-work for writes;
 *   otherwise 401 "Unauthorized; scope does not match"); a wrong cloud id → 404.
 * - Unknown paths under /rest: Jira's RFC 7807 `No endpoint GET /rest/…` 404; a method a route does not take: 405
 *   with Allow (both measured by backlot); outside /rest: Jira's HTML dead-link page.
 * - Cloud: `/rest/api/{2,3}/search` (GET/POST) and `search/id` → 410 with the CHANGE-2046 body, verbatim.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { agileApi } from './agile.ts';
import type { ApiContext, Settings } from './context.ts';
import {
  CHANGE_2046_BODY,
  CONNECT_TOKEN_UNREADABLE,
  ERROR_NOT_AUTHENTICATED,
  GATEWAY_SCOPE_MISMATCH,
  GATEWAY_UNAUTHORIZED,
  GATEWAY_UNKNOWN_SITE,
  JIRA_UNAUTHENTICATED_LINE,
} from './fixtures.ts';
import * as issues from './issues.ts';
import * as meta from './meta.ts';
import { basicCredentials, bearerToken, classifyAuth, createOAuth } from './oauth.ts';
import { addComment, applyPatch, newIssue, patchFromInput, viewOf } from './records.ts';
import type { RenderContext } from './render.ts';
import { approximateCount, bulkFetch, enhancedSearch, offsetSearch } from './search.ts';
import { JiraStore, type Project, type StoredIssue } from './store.ts';
import type { FakeJira, FakeJiraOptions, HostName, JiraUser, RecordedRequest } from './types.ts';
import { deliver, webhookBody } from './webhooks.ts';
import { type Answer, createFailures, failureAnswer, isObject, json, readBody, redactedQuery, write } from './wire.ts';

export type * from './types.ts';
export { hubSignature } from './webhooks.ts';

type Handler = (ctx: ApiContext, m: RegExpExecArray) => Answer | Promise<Answer>;
interface Route {
  /** Matched against the path after /rest/api/{v}. */
  pattern: RegExp;
  methods: Partial<Record<string, Handler>>;
  cloudOnly?: boolean;
  /** POSTs that only read (search, counts, bulkfetch): a read scope is enough. */
  readOnly?: boolean;
}
const gone: Handler = () => json(410, CHANGE_2046_BODY);
const ROUTES: Route[] = [
  { pattern: /^\/myself$/, methods: { GET: meta.myself } },
  { pattern: /^\/field$/, methods: { GET: meta.fields } },
  { pattern: /^\/status$/, methods: { GET: meta.statuses } },
  { pattern: /^\/user\/search$/, methods: { GET: meta.userSearch } },
  { pattern: /^\/search\/jql$/, methods: { GET: enhancedSearch, POST: enhancedSearch }, cloudOnly: true, readOnly: true },
  { pattern: /^\/search\/approximate-count$/, methods: { POST: approximateCount }, cloudOnly: true, readOnly: true },
  { pattern: /^\/search\/id$/, methods: { POST: gone }, cloudOnly: true, readOnly: true },
  { pattern: /^\/search$/, methods: { GET: offsetSearch, POST: offsetSearch }, readOnly: true },
  { pattern: /^\/issue$/, methods: { POST: issues.createIssue } },
  { pattern: /^\/issue\/bulkfetch$/, methods: { POST: bulkFetch }, cloudOnly: true, readOnly: true },
  { pattern: /^\/issue\/([^/]+)$/, methods: { GET: (c, m) => issues.getIssue(c, m[1]!), PUT: (c, m) => issues.editIssue(c, m[1]!) } },
  { pattern: /^\/issue\/([^/]+)\/transitions$/, methods: { GET: (c, m) => issues.getTransitions(c, m[1]!), POST: (c, m) => issues.doTransition(c, m[1]!) } },
  { pattern: /^\/issue\/([^/]+)\/assignee$/, methods: { PUT: (c, m) => issues.assign(c, m[1]!) } },
  { pattern: /^\/issue\/([^/]+)\/comment$/, methods: { GET: (c, m) => issues.listComments(c, m[1]!), POST: (c, m) => issues.postComment(c, m[1]!) } },
  { pattern: /^\/issue\/([^/]+)\/properties$/, methods: { GET: (c, m) => issues.listProperties(c, m[1]!) } },
  {
    pattern: /^\/issue\/([^/]+)\/properties\/([^/]+)$/,
    methods: { GET: (c, m) => issues.property(c, m[1]!, m[2]!), PUT: (c, m) => issues.property(c, m[1]!, m[2]!), DELETE: (c, m) => issues.property(c, m[1]!, m[2]!) },
  },
  { pattern: /^\/issue\/([^/]+)\/remotelink$/, methods: { GET: (c, m) => issues.remoteLinks(c, m[1]!), POST: (c, m) => issues.remoteLinks(c, m[1]!) } },
  { pattern: /^\/attachment\/content\/([^/]+)$/, methods: { GET: (c, m) => issues.attachmentContent(c, m[1]!) } },
];

const DEFAULT_PROJECTS: Project[] = [
  { key: 'SEC', id: '10000', name: 'Security' },
  { key: 'OPS', id: '10001', name: 'Operations' },
];
const PROBLEM_JSON = 'application/problem+json;charset=UTF-8';
const problem = (status: number, title: string, detail: string, instance: string, headers: Record<string, string> = {}): Answer =>
  ({ status, body: { type: 'about:blank', title, status, detail, instance }, contentType: PROBLEM_JSON, headers });
const DEAD_LINK: Answer = {
  status: 404, contentType: 'text/html;charset=utf-8',
  raw: "<!DOCTYPE html><html><head><title>Oops, you've found a dead link. - JIRA</title></head><body><h1>Oops, you've found a dead link.</h1></body></html>",
};

type Resolved =
  | { kind: 'route'; route: Route; handler: Handler; match: RegExpExecArray; version: '2' | '3'; rest: string }
  | { kind: 'agile'; rest: string }
  | { kind: 'refused'; answer: Answer };

export async function startFakeJira(options: FakeJiraOptions = {}): Promise<FakeJira> {
  const mode = options.mode ?? 'cloud';
  const now = options.now ?? ((): Date => new Date());
  const nowMs = (): number => now().getTime();
  const settings: Settings = {
    mode,
    timeZone: options.timeZone ?? 'UTC',
    maxResultsCap: options.maxResultsCap ?? 100,
    perIssueWriteLimits: options.perIssueWriteLimits ?? true,
    epochMinute: options.epochPrecision === 'minute',
    pageLatencyMs: options.pageLatencyMs ?? 0,
  };
  const email = options.email ?? 'px-bot@example.com';
  const apiToken = options.apiToken ?? 'api-token-secret';
  const pat = mode === 'dc' ? (options.pat ?? 'dc-pat-secret') : undefined;
  const cloudId = options.cloudId ?? 'b5a7d4e0-3c1f-4e2a-9d8b-6f0e1a2b3c4d';
  const projects = (options.projects ?? DEFAULT_PROJECTS).map((p, i) => ({ key: p.key.toUpperCase(), id: p.id ?? String(10000 + i), name: p.name ?? p.key }));
  const store = new JiraStore(projects);
  const requests: RecordedRequest[] = [];
  const failures = createFailures();
  const mediaKey = randomBytes(16);
  let userCount = 0;

  function addUser(input: { accountId?: string; emailAddress?: string | null; displayName: string; timeZone?: string }): JiraUser {
    const n = ++userCount;
    const accountId = input.accountId ?? `712020:00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
    if (store.users.has(accountId)) throw new Error(`fake Jira: user ${accountId} exists`);
    const emailAddress = input.emailAddress === undefined ? null : input.emailAddress;
    const name = (emailAddress?.split('@')[0] ?? input.displayName.toLowerCase().replace(/\s+/g, '.')) || `user${n}`;
    const user: JiraUser = {
      accountId, emailAddress, displayName: input.displayName, timeZone: input.timeZone ?? 'UTC', active: true, accountType: 'atlassian', name, key: `JIRAUSER${10000 + n}`,
    };
    store.users.set(accountId, user);
    return user;
  }
  const apiUser = addUser({ emailAddress: email, displayName: 'ProjectX Bot', timeZone: settings.timeZone });
  const oauth = createOAuth({
    clientId: options.oauth?.clientId ?? 'px-jira-client',
    clientSecret: options.oauth?.clientSecret ?? 'px-jira-client-secret',
    accessTtlSeconds: options.oauth?.accessTokenTtlSeconds ?? 3600,
    leewaySeconds: options.oauth?.refreshReuseLeewaySeconds ?? 600,
    now,
    accountId: apiUser.accountId,
  });
  const urls = { site: '', auth: '', api: '' };
  const mediaToken = (id: string): string => createHmac('sha256', mediaKey).update(id).digest('hex').slice(0, 32);
  const renderFor = (base: string, version: '2' | '3'): RenderContext => ({ base, version, zone: settings.timeZone, mode, store });

  /** The route for an API path, or the refusal Jira answers before looking at credentials. */
  function resolve(method: string, path: string): Resolved {
    const agile = /^\/rest\/agile\/1\.0(\/.*)$/.exec(path);
    if (agile) {
      return method === 'GET' ? { kind: 'agile', rest: agile[1]! } : { kind: 'refused', answer: problem(405, 'Method Not Allowed', `Method '${method}' is not supported.`, path) };
    }
    const api = /^\/rest\/api\/(2|3|latest)(\/.*)$/.exec(path);
    const noEndpoint = (): Answer => (mode === 'dc'
      ? json(404, { message: `null for uri: ${urls.site}${path}`, 'status-code': 404 }) // GUESS: DC's JAX-RS 404
      : problem(404, 'Not Found', `No endpoint ${method} ${path}.`, path));
    if (!api) return { kind: 'refused', answer: path.startsWith('/rest/') || path === '/rest' ? noEndpoint() : DEAD_LINK };
    const version = api[1] === '3' ? '3' : '2';
    if (mode === 'dc' && version === '3') return { kind: 'refused', answer: noEndpoint() };
    const rest = api[2]!;
    let allowed: string[] | undefined;
    for (const route of ROUTES) {
      if (route.cloudOnly && mode === 'dc') continue;
      const match = route.pattern.exec(rest);
      if (!match) continue;
      const handler = route.methods[method];
      if (handler) return { kind: 'route', route, handler: mode === 'cloud' && rest === '/search' ? gone : handler, match, version, rest };
      allowed ??= Object.keys(route.methods);
    }
    if (allowed) return { kind: 'refused', answer: problem(405, 'Method Not Allowed', `Method '${method}' is not supported.`, path, { Allow: allowed.join(', ') }) };
    return { kind: 'refused', answer: noEndpoint() };
  }

  async function dispatch(resolved: Exclude<Resolved, { kind: 'refused' }>, method: string, url: URL, body: Buffer, base: string): Promise<Answer> {
    const version = resolved.kind === 'route' ? resolved.version : '2';
    const ctx: ApiContext = {
      method, rest: resolved.rest, query: url.searchParams, body, render: renderFor(base, version), store, caller: apiUser, nowMs: nowMs(), settings,
      mediaUrl: (id) => `${urls.site}/fake-media/file/${id}/binary?token=${mediaToken(id)}`,
    };
    if (resolved.kind === 'agile') return agileApi(ctx) ?? problem(404, 'Not Found', `No endpoint ${method} ${url.pathname}.`, url.pathname);
    return resolved.handler(ctx, resolved.match);
  }

  /** The site's 401 for a request without credentials it accepts. */
  function unauthenticated(method: string, accept: string | undefined): Answer {
    if (mode === 'dc') return json(401, ERROR_NOT_AUTHENTICATED);
    const challenge = { 'WWW-Authenticate': `OAuth realm="${encodeURIComponent(urls.site)}"` };
    if (method !== 'GET' && method !== 'HEAD') return json(401, ERROR_NOT_AUTHENTICATED, challenge);
    const type = accept === undefined || accept === '' ? 'text/plain;charset=UTF-8' : accept.includes('application/json') ? 'application/json;charset=UTF-8' : 'text/html;charset=UTF-8';
    return { status: 401, raw: JIRA_UNAUTHENTICATED_LINE, contentType: type, headers: challenge };
  }

  async function site(req: IncomingMessage, method: string, url: URL, body: Buffer): Promise<Answer> {
    const media = /^\/fake-media\/file\/([^/]+)\/binary$/.exec(url.pathname);
    if (media) {
      const found = store.attachmentsById.get(media[1]!);
      if (!found || url.searchParams.get('token') !== mediaToken(media[1]!)) return json(403, { error: 'Forbidden' }); // GUESS: the media host's refusal
      return { status: 200, raw: found.attachment.content, contentType: found.attachment.mimeType };
    }
    const resolved = resolve(method, url.pathname);
    if (resolved.kind === 'refused') return resolved.answer;
    const header = req.headers.authorization;
    if (mode === 'dc') {
      if (bearerToken(header) !== pat) return unauthenticated(method, req.headers.accept);
    } else {
      const basic = basicCredentials(header);
      const bearer = bearerToken(header);
      if (bearer !== undefined && !oauth.isAccessToken(bearer)) return json(403, CONNECT_TOKEN_UNREADABLE);
      if (!basic || basic.user !== email || basic.password !== apiToken) return unauthenticated(method, req.headers.accept);
    }
    return dispatch(resolved, method, url, body, urls.site);
  }

  async function gateway(req: IncomingMessage, method: string, url: URL, body: Buffer): Promise<Answer> {
    if (mode === 'dc') return json(404, { code: 404, message: 'Not Found' });
    const token = oauth.accessToken(bearerToken(req.headers.authorization) ?? '');
    if (url.pathname === '/oauth/token/accessible-resources') {
      if (token.state !== 'valid') return json(401, GATEWAY_UNAUTHORIZED);
      return json(200, [{
        id: cloudId, name: 'px-fake', url: urls.site, scopes: token.scopes.filter((s) => s !== 'offline_access'),
        avatarUrl: 'https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png',
      }]);
    }
    const m = /^\/ex\/jira\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!m) return json(404, { code: 404, message: 'Not Found' }); // GUESS
    if (token.state !== 'valid') return json(401, GATEWAY_UNAUTHORIZED);
    if (m[1] !== cloudId) return json(404, GATEWAY_UNKNOWN_SITE);
    const path = m[2] ?? '/';
    const resolved = resolve(method, path);
    if (resolved.kind === 'refused') return resolved.answer;
    const reads = method === 'GET' || (resolved.kind === 'route' && resolved.route.readOnly === true);
    const scoped = reads ? token.scopes.some((s) => s.startsWith('read:')) : token.scopes.includes('write:jira-work');
    if (!scoped) return json(401, GATEWAY_SCOPE_MISMATCH);
    return dispatch(resolved, method, new URL(`${path}${url.search}`, 'http://x'), body, `${urls.api}/ex/jira/${cloudId}`);
  }

  function authHost(req: IncomingMessage, method: string, url: URL, body: Buffer): Answer {
    if (mode === 'dc') return json(404, { error: 'not_found' });
    if (url.pathname === '/authorize' && method === 'GET') return oauth.authorize(url.searchParams);
    if (url.pathname === '/oauth/token' && method === 'POST') return oauth.token(req.headers['content-type'] ?? '', body);
    return json(404, { error: 'not_found', error_description: 'Not Found' });
  }

  function jqlOf(url: URL, body: Buffer): string {
    const q = url.searchParams.get('jql');
    if (q !== null) return q;
    try {
      const parsed: unknown = body.length ? JSON.parse(body.toString('utf8')) : undefined;
      return isObject(parsed) && typeof parsed.jql === 'string' ? parsed.jql : '';
    } catch {
      return '';
    }
  }

  async function handle(host: HostName, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake-jira');
    const method = (req.method ?? 'GET').toUpperCase();
    const rec: RecordedRequest = {
      method, host, path: url.pathname, query: redactedQuery(url.searchParams), auth: classifyAuth(req.headers.authorization, { pat, oauth }), status: 0, at: new Date(nowMs()),
    };
    requests.push(rec);
    const body = await readBody(req);
    const apiPath = host === 'api' ? (/^\/ex\/jira\/[^/]+(\/.*)$/.exec(url.pathname)?.[1] ?? url.pathname) : url.pathname;
    const failure = failures.take({ method, host, path: apiPath, jql: jqlOf(url, body) });
    if (failure) {
      rec.failure = failure;
      if ('status' in failure) return write(res, rec, failureAnswer(failure, host, nowMs(), unauthenticated(method, req.headers.accept)));
      if (failure.kind === 'reset') return void req.socket.destroy();
      if (failure.kind === 'delay') await sleep(failure.ms);
    }
    const answer = host === 'auth' ? authHost(req, method, url, body) : host === 'api' ? await gateway(req, method, url, body) : await site(req, method, url, body);
    if (failure && 'kind' in failure && failure.kind === 'lose-answer') {
      rec.status = answer.status;
      return void req.socket.destroy();
    }
    write(res, rec, answer);
  }

  const servers: Server[] = [];
  async function listen(host: HostName): Promise<string> {
    const server = createServer((req, res) => {
      handle(host, req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(err instanceof Error ? err.stack : String(err));
      });
    });
    servers.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }
  urls.site = await listen('site');
  urls.auth = await listen('auth');
  urls.api = await listen('api');

  const live = (idOrKey: string): StoredIssue => store.get(idOrKey) ?? (() => {
    throw new Error(`fake Jira: no issue ${idOrKey}`);
  })();
  const actor = (by: string | undefined): string => (by === undefined ? apiUser.accountId : (store.user(by)?.accountId ?? by));
  const webhookDeps = () => ({ render: renderFor(urls.site, '2'), nowMs, apiUser });

  return {
    url: urls.site,
    authUrl: urls.auth,
    apiUrl: urls.api,
    cloudId,
    apiUser,
    requests,
    addUser,
    createIssue(input) {
      const created = input.created?.getTime() ?? nowMs();
      const issue = newIssue(store, input.project, patchFromInput(store, input), { created, updated: input.updated?.getTime() ?? created }, apiUser.accountId);
      store.add(issue);
      return viewOf(issue, store);
    },
    createIssues(count, make) {
      const at = nowMs();
      const made: StoredIssue[] = [];
      for (let i = 0; i < count; i++) {
        const input = make(i);
        const created = input.created?.getTime() ?? at;
        made.push(newIssue(store, input.project, patchFromInput(store, input), { created, updated: input.updated?.getTime() ?? created }, apiUser.accountId));
      }
      store.addMany(made);
    },
    updateIssue(idOrKey, patch, opts = {}) {
      const issue = live(idOrKey);
      applyPatch(store, issue, patchFromInput(store, patch), opts.at?.getTime() ?? nowMs(), actor(opts.by));
      return viewOf(issue, store);
    },
    deleteIssue: (idOrKey) => store.remove(live(idOrKey)),
    hideIssue(idOrKey, hidden = true) {
      live(idOrKey).hidden = hidden;
    },
    issue(idOrKey) {
      const issue = store.get(idOrKey);
      return issue ? viewOf(issue, store) : undefined;
    },
    addComment(idOrKey, text, opts = {}) {
      const issue = live(idOrKey);
      const at = opts.at?.getTime() ?? nowMs();
      const comment = addComment(store, issue, { text }, at, actor(opts.by));
      store.change(issue, (i) => {
        i.updated = Math.max(i.updated, at);
      });
      return { id: comment.id };
    },
    addAttachment(idOrKey, file, opts = {}) {
      const issue = live(idOrKey);
      const at = opts.at?.getTime() ?? nowMs();
      const attachment = { id: String(store.nextId()), filename: file.filename, mimeType: file.mimeType, content: file.content, author: actor(opts.by), created: at };
      issue.attachments.push(attachment);
      store.attachmentsById.set(attachment.id, { issue, attachment });
      store.change(issue, (i) => {
        i.updated = Math.max(i.updated, at);
      });
      return { id: attachment.id };
    },
    addBoard(input) {
      const project = store.project(input.projectKey);
      if (!project) throw new Error(`fake Jira: no project ${input.projectKey}`);
      const id = store.boards.length + 1;
      store.boards.push({ id, name: input.name, type: input.type ?? 'scrum', project });
      return { id };
    },
    addSprint(boardId, input) {
      if (!store.boards.some((b) => b.id === boardId)) throw new Error(`fake Jira: no board ${boardId}`);
      const id = store.sprints.length + 1;
      store.sprints.push({
        id, boardId, name: input.name, state: input.state,
        ...(input.startDate ? { startDate: input.startDate.getTime() } : {}), ...(input.endDate ? { endDate: input.endDate.getTime() } : {}),
        ...(input.completeDate ? { completeDate: input.completeDate.getTime() } : {}), ...(input.goal !== undefined ? { goal: input.goal } : {}),
        issues: (input.issues ?? []).map((k) => live(k).id),
      });
      return { id };
    },
    failNext: (count, failure, match) => failures.next(count, failure, match),
    failAlways: (failure, match) => failures.always(failure, match),
    writeCount: (idOrKey) => store.getAny(idOrKey)?.writes ?? 0,
    oauth: {
      grants: oauth.grants,
      expireAccessTokens: () => oauth.expireAll(),
      revokeRefreshTokens: () => oauth.revokeAll(),
    },
    sendWebhook: (target, event, opts) => deliver(target, webhookBody(webhookDeps(), event), opts),
    async close() {
      await Promise.all(servers.map((server) => new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      })));
    },
  };
}
