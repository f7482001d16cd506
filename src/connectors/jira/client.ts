/**
 * Jira over HTTP, through the connectors' one HTTP client: Cloud (REST v3, enhanced search) or Data Center
 * (REST v2, `startAt` search), with one of three credentials:
 *
 * - `oauth` (Cloud): OAuth 2.0 3LO. Requests go through Atlassian's API gateway, `<api>/ex/jira/<cloud id>/…`,
 *   with an access token from the instance's rotating refresh token (./oauth.ts). A 3LO token sent to the site
 *   itself is refused, so the site URL is only used to find the cloud id at consent.
 * - `pat` with an email (Cloud): basic auth, email + API token, against the site.
 * - `pat` without an email (Data Center): `Authorization: Bearer <personal access token>` against the base URL
 *   (Data Center refuses a PAT in basic auth).
 */
import { z } from 'zod';
import type { ConnectorInstance, ConnectorRuntime } from '../sdk/contract.ts';
import type { Keyring } from '../sdk/crypto.ts';
import { type AuthProvider, AuthUnavailable, type HttpClient, type UpstreamRequest, type UpstreamResult, createHttpClient } from '../sdk/http-client.ts';
import { basicAuth } from '../sdk/oauth.ts';
import { REMEDIATION_STATES } from './mapper.ts';
import { cloudIdOf, createJiraTokenSource } from './oauth.ts';

const projectKey = z.string().regex(/^[A-Z][A-Z0-9_]{0,254}$/, 'must be a Jira project key like SEC');

/** Scopes asked at consent: read and write issues, users by email, webhooks, the boards' sprints, and a refresh token. */
export const JIRA_SCOPES = ['read:jira-work', 'write:jira-work', 'read:jira-user', 'manage:jira-webhook', 'read:sprint:jira-software', 'read:board-scope:jira-software', 'read:project:jira', 'offline_access'] as const;

export const jiraSettings = z.object({
  /** The site (Cloud: https://<site>.atlassian.net) or the Data Center base URL. */
  baseUrl: z.url({ protocol: /^https?$/ }),
  deployment: z.enum(['cloud', 'datacenter']),
  authMode: z.enum(['oauth', 'pat']),
  /** Cloud API-token user (basic auth); absent with a PAT: Data Center. */
  email: z.email().optional(),
  /** OAuth 2.0 (3LO): the client (its secret is the `client_secret` credential) and Atlassian's hosts. */
  oauth: z
    .object({
      clientId: z.string().min(1),
      authUrl: z.url({ protocol: /^https?$/ }).default('https://auth.atlassian.com'),
      apiUrl: z.url({ protocol: /^https?$/ }).default('https://api.atlassian.com'),
      scopes: z.array(z.string().min(1)).default([...JIRA_SCOPES]),
      /** The service's public URL (PUBLIC_URL): consent links and the callback <publicUrl>/oauth/callback/jira. */
      publicUrl: z.url({ protocol: /^https?$/ }).optional(),
    })
    .optional(),
  projectKeys: z.array(projectKey).min(1, 'name at least one project'),
  /** More JQL, ANDed to the projects' scope. */
  jqlFilter: z.string().min(1).max(2000).optional(),
  pageSize: z.number().int().min(1).max(1000).default(100),
  /** Each incremental run starts this far before its checkpoint: Jira's search index lags behind its writes. */
  overlapSeconds: z.number().int().min(0).max(86_400).default(600),
  timeoutMs: z.number().int().min(100).max(120_000).default(15_000),
  /** Status name or category key (new, indeterminate, done) → task state, per project key or `*`. */
  stateMapping: z.record(z.string(), z.record(z.string(), z.enum(REMEDIATION_STATES))).default({}),
  /** A label naming a control: a regular expression whose first group (or whole match) is the control id. */
  controlLabelPattern: z
    .string()
    .refine((source) => {
      try {
        new RegExp(source, 'i');
        return true;
      } catch {
        return false;
      }
    }, 'must be a regular expression')
    .default('^control[:_-](.+)$'),
  /** A field naming the control (`customfield_10050`): a text, a select option or a list of them. */
  controlField: z
    .string()
    .regex(/^customfield_\d+$/, 'must be a custom field id like customfield_10050')
    .optional(),
  /** Priorities (names) that make an epic critical: one moving to Done is announced (`task.epic_completed`). */
  criticalPriorities: z.array(z.string().min(1)).default(['Highest', 'Critical', 'Blocker']),
  /** Epic key → ProjectX programme id: the epic's task and those of its child issues belong to that programme. */
  epicPrograms: z.record(z.string().regex(/^[A-Z][A-Z0-9_]*-\d+$/, 'must be an epic key like SEC-100'), z.string().min(1)).default({}),
  /** Scrum boards whose closed sprints are read, each with the programme whose owners hear of a sprint's close. */
  boards: z.array(z.object({ id: z.number().int().positive(), program: z.string().min(1).optional() })).default([]),
  /** Nightly reconciliation (ENABLE_JIRA_DELTA_RECON). */
  reconcile: z.boolean().default(true),
  /**
   * Remediation tasks created in ProjectX become issues of this project (default: the first of projectKeys), of
   * this issue type; `false`: none are pushed.
   */
  push: z
    .union([z.literal(false), z.object({ projectKey: projectKey.optional(), issueType: z.string().min(1).default('Task') })])
    .default({ issueType: 'Task' }),
  /** Seconds between incremental syncs (JIRA_SYNC_INTERVAL_SECONDS). */
  syncEverySeconds: z.number().int().min(60).max(86_400).default(300),
});
export type JiraSettings = z.infer<typeof jiraSettings>;

/** One page of a search, Cloud's or Data Center's, as the sync reads it. */
export interface SearchPage {
  issues: unknown[];
  /** Cloud: the token of the next page (absent or null on the last); Data Center: undefined. */
  nextPageToken: string | undefined;
  isLast: boolean;
  /** Data Center: the offset paging's total. */
  total: number | undefined;
}

export interface JiraClient {
  http: HttpClient;
  deployment: JiraSettings['deployment'];
  /**
   * A request to a REST resource, named by its path below the API version (`/issue/SEC-1`, `/search/jql`) or
   * below the site (`/rest/agile/1.0/board` when it starts with `/rest/`): routed to the right version, host and
   * prefix for the instance's deployment and credential.
   */
  send<T = unknown>(request: UpstreamRequest): Promise<UpstreamResult<T>>;
  search(input: { jql: string; fields: readonly string[]; maxResults: number; nextPageToken?: string | undefined; startAt?: number | undefined }): Promise<UpstreamResult<SearchPage>>;
  close(): Promise<void>;
}

/** `RateLimit-Reason`s that deny every call until the reset (Atlassian's rate-limiting docs). */
const QUOTA_REASONS: ReadonlySet<string> = new Set(['jira-quota-global-based', 'jira-quota-tenant-based']);

const cloudPage = z.object({ issues: z.array(z.unknown()), isLast: z.boolean().optional(), nextPageToken: z.string().nullable().optional() });
const dcPage = z.object({ issues: z.array(z.unknown()), startAt: z.number(), maxResults: z.number(), total: z.number() });

export function createJiraClient(instance: ConnectorInstance<JiraSettings>, runtime: ConnectorRuntime & { keyring: Keyring }): JiraClient {
  const { settings } = instance;
  const base = { connector: 'jira', metrics: runtime.metrics, timeoutMs: settings.timeoutMs, now: () => runtime.clock.now().getTime() };
  const version = settings.deployment === 'cloud' ? '/rest/api/3' : '/rest/api/2';
  let auth: AuthProvider;
  let prefix: () => Promise<string | undefined> = () => Promise.resolve('');
  let tokenHttp: HttpClient | undefined;
  let apiBase = settings.baseUrl;
  if (settings.authMode === 'oauth') {
    if (!settings.oauth) throw new Error('an oauth Jira instance needs its OAuth client in settings.oauth');
    tokenHttp = createHttpClient({ ...base, baseUrl: settings.oauth.authUrl });
    auth = createJiraTokenSource({ instance, runtime, tokenHttp });
    apiBase = settings.oauth.apiUrl;
    let cloudId: string | undefined;
    prefix = async () => {
      cloudId ??= await cloudIdOf(runtime.db, instance.id);
      return cloudId === undefined ? undefined : `/ex/jira/${encodeURIComponent(cloudId)}`;
    };
  } else {
    const token = instance.credential('api_token');
    if (!token) throw new Error('a pat Jira instance needs its api_token credential');
    auth = settings.email ? basicAuth(settings.email, token) : bearer(token);
  }
  const http = createHttpClient({ ...base, baseUrl: apiBase, auth });

  // Jira's quota limits (global, per tenant) refuse every call until their reset: the first call to meet one
  // records the time for the instance, and every call of any job or process waits for it instead of calling.
  // Burst limits slow only the call that met them (its Retry-After); per-issue limits only that issue (push.ts).
  let quotaUntil: number | undefined;
  let quotaRead = false;
  const send = async <T>(request: UpstreamRequest): Promise<UpstreamResult<T>> => {
    if (!quotaRead) {
      quotaRead = true;
      const row = await runtime.db.selectFrom('integration_rate_limits').select('until').where('config_id', '=', instance.id).executeTakeFirst();
      quotaUntil = row?.until.getTime();
    }
    const now = runtime.clock.now().getTime();
    if (quotaUntil !== undefined && quotaUntil > now) return { ok: false, failure: { kind: 'deferred', code: 'rate_limited', status: 429, retryAt: new Date(quotaUntil), attempts: 0, reason: 'quota' } };
    const root = await prefix();
    if (root === undefined) return { ok: false, failure: { kind: 'auth', code: 'authorization_required', attempts: 0 } };
    const path = request.path.startsWith('/rest/') ? request.path : `${version}${request.path}`;
    const answer = await http.send<T>({ ...request, path: `${root}${path}` });
    if (!answer.ok && answer.failure.kind === 'deferred' && answer.failure.reason && QUOTA_REASONS.has(answer.failure.reason)) {
      quotaUntil = answer.failure.retryAt.getTime();
      const until = answer.failure.retryAt;
      const reason = answer.failure.reason;
      await runtime.db
        .insertInto('integration_rate_limits')
        .values({ config_id: instance.id, until, reason, updated_at: runtime.clock.now() })
        .onConflict((oc) => oc.column('config_id').doUpdateSet({ until, reason, updated_at: runtime.clock.now() }))
        .execute();
      runtime.logger.warn({ connector: 'jira', instance: instance.name, reason, until: until.toISOString() }, 'Jira quota exhausted: every call of this instance waits for the reset');
    }
    return answer;
  };

  return {
    http,
    deployment: settings.deployment,
    send,
    async search(input) {
      if (settings.deployment === 'cloud') {
        // POST: a long JQL (many projects, a filter) does not fit a URL.
        const answer = await send<unknown>({ method: 'POST', path: '/search/jql', json: { jql: input.jql, fields: input.fields, maxResults: input.maxResults, ...(input.nextPageToken ? { nextPageToken: input.nextPageToken } : {}) }, idempotent: true });
        if (!answer.ok) return answer;
        const page = cloudPage.safeParse(answer.value.body);
        if (!page.success) return invalid(answer.value.status, answer.value.attempts);
        const token = page.data.nextPageToken ?? undefined;
        return { ok: true, value: { ...answer.value, body: { issues: page.data.issues, nextPageToken: token, isLast: page.data.isLast ?? token === undefined, total: undefined } } };
      }
      const answer = await send<unknown>({ method: 'POST', path: '/search', json: { jql: input.jql, fields: input.fields, maxResults: input.maxResults, startAt: input.startAt ?? 0 }, idempotent: true });
      if (!answer.ok) return answer;
      const page = dcPage.safeParse(answer.value.body);
      if (!page.success) return invalid(answer.value.status, answer.value.attempts);
      const isLast = page.data.issues.length === 0 || page.data.startAt + page.data.issues.length >= page.data.total;
      return { ok: true, value: { ...answer.value, body: { issues: page.data.issues, nextPageToken: undefined, isLast, total: page.data.total } } };
    },
    close: async () => {
      await Promise.all([http.close(), tokenHttp?.close()]);
    },
  };
}

function invalid(status: number, attempts: number): { ok: false; failure: { kind: 'http'; code: 'invalid_response'; status: number; body: undefined; attempts: number } } {
  return { ok: false, failure: { kind: 'http', code: 'invalid_response', status, body: undefined, attempts } };
}

/** Data Center's personal access token: a bearer token, nothing to refresh (a 401 is the answer). */
function bearer(token: string): AuthProvider {
  const header = `Bearer ${token}`;
  return {
    authorization: () => Promise.resolve(header),
    refresh: () => Promise.reject(new AuthUnavailable('token_refused', 'Jira refused the configured personal access token')),
  };
}
