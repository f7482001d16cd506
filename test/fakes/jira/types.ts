/**
 * The public API of the fake Jira (./server.ts): options, the handle a test drives it with, the test-side view of
 * what it holds, programmed failures, webhooks and the request log. Wire shapes are built in ./render.ts from the
 * fixtures in test/fixtures/jira/ (see ./fixtures.ts).
 */

export type IssueTypeName = 'Task' | 'Bug' | 'Story' | 'Epic' | 'Sub-task';
export type PriorityName = 'Highest' | 'High' | 'Medium' | 'Low' | 'Lowest';
export type StatusCategoryKey = 'new' | 'indeterminate' | 'done';

export interface FakeJiraOptions {
  /** 'cloud' (default): Basic email:apiToken on the site, 3LO through the gateway, /rest/api/3 and /2, enhanced
   * search. 'dc': Bearer PAT only, /rest/api/2 and the agile API only, offset search; no OAuth, no gateway. */
  mode?: 'cloud' | 'dc';
  /** The fake's clock: created/updated stamps, token expiry and lifetimes, rate windows (default real time). */
  now?: () => Date;
  /** IANA zone of the API user's profile (default 'UTC'): /myself returns it, quoted JQL dates are read in it,
   * and timestamps in answers carry its offset (2021-01-17T04:34:00.000-0800). */
  timeZone?: string;
  /** Cloud Basic auth (default 'px-bot@example.com' / 'api-token-secret'). */
  email?: string;
  apiToken?: string;
  /** DC: `Authorization: Bearer <pat>` (default 'dc-pat-secret'); Basic with the PAT is refused. */
  pat?: string;
  oauth?: {
    /** Default 'px-jira-client' / 'px-jira-client-secret'. */
    clientId?: string;
    clientSecret?: string;
    /** expires_in of access tokens (default 3600). */
    accessTokenTtlSeconds?: number;
    /** How long a rotated refresh token still works after its first use (default 600: Atlassian's 10 minutes). */
    refreshReuseLeewaySeconds?: number;
  };
  /** Default 'b5a7d4e0-3c1f-4e2a-9d8b-6f0e1a2b3c4d'. */
  cloudId?: string;
  /** Default SEC ('Security', id 10000) and OPS ('Operations', id 10001). */
  projects?: { key: string; id?: string; name?: string }[];
  /** Added to every search page (search/jql and DC /rest/api/2/search). */
  pageLatencyMs?: number;
  /** How `updated >= <epoch ms>` compares: 'ms' (default) or 'minute' (the bound floored to its minute, the
   * unconfirmed alternative of open question 1 in the notes). */
  epochPrecision?: 'ms' | 'minute';
  /** search/jql page cap when fields other than id/key are asked (default 100); id/key only: 5000. */
  maxResultsCap?: number;
  /** Default true: more than 20 writes / 2 s or 100 / 30 s on one issue (fake clock) → 429 jira-per-issue-on-write. */
  perIssueWriteLimits?: boolean;
}

export interface IssueInput {
  /** Project key. */
  project: string;
  summary: string;
  /** Default 'Task'. */
  issuetype?: IssueTypeName;
  /** A status name (default 'To Do'). */
  status?: string;
  /** accountId (or DC user name); null / absent: unassigned. */
  assignee?: string | null;
  /** accountId; default the API user. */
  reporter?: string | null;
  labels?: string[];
  /** 'YYYY-MM-DD'. */
  duedate?: string | null;
  /** Default 'Medium'. */
  priority?: PriorityName;
  /** Plain text: served as an ADF document on v3, as a string on v2. */
  description?: string;
  /** Parent issue key (sub-tasks, epic children). */
  parent?: string;
  created?: Date;
  /** Default `created`. */
  updated?: Date;
  /** customfield_NNNNN → value, served as given. */
  customFields?: Record<string, unknown>;
}

export interface JiraUser {
  accountId: string;
  /** null: hidden by the user's privacy settings (never served). */
  emailAddress: string | null;
  displayName: string;
  timeZone: string;
  active: boolean;
  accountType: 'atlassian';
  /** DC identifiers (served in DC mode only). */
  name: string;
  key: string;
}

export interface ChangelogItem {
  field: string;
  fieldtype: string;
  fieldId?: string;
  from: string | null;
  fromString: string | null;
  to: string | null;
  toString: string | null;
}

export interface ChangelogEntryView {
  id: string;
  author: string;
  created: Date;
  items: ChangelogItem[];
}

export interface CommentView {
  id: string;
  /** Plain text (ADF given over v3 is kept in `adf` and its text here). */
  body: string;
  adf?: unknown;
  author: string;
  created: Date;
  updated: Date;
}

export interface AttachmentView {
  id: string;
  filename: string;
  mimeType: string;
  size: number;
  author: string;
  created: Date;
}

export interface RemoteLinkView {
  id: number;
  globalId?: string;
  application?: unknown;
  relationship?: string;
  object: Record<string, unknown>;
}

export interface TransitionView {
  id: string;
  name: string;
  from: string;
  to: string;
  at: Date;
  by: string;
}

/** Everything the fake holds about an issue (a copy; changing it changes nothing). */
export interface JiraIssueView {
  id: string;
  key: string;
  project: string;
  summary: string;
  issuetype: IssueTypeName;
  status: string;
  statusCategory: StatusCategoryKey;
  assignee: string | null;
  reporter: string | null;
  labels: string[];
  duedate: string | null;
  priority: PriorityName;
  description: string | null;
  /** The ADF document a v3 write gave, when one did. */
  descriptionAdf?: unknown;
  /** Parent key. */
  parent: string | null;
  created: Date;
  updated: Date;
  customFields: Record<string, unknown>;
  properties: Record<string, unknown>;
  remoteLinks: RemoteLinkView[];
  comments: CommentView[];
  attachments: AttachmentView[];
  /** Transitions applied over HTTP, in order. */
  transitions: TransitionView[];
  changelog: ChangelogEntryView[];
  /** Writes accepted over HTTP (edit, transition, assignee, comment, property, remote link). */
  writeCount: number;
  hidden: boolean;
}

/**
 * A programmed failure. 429 carries Atlassian's rate-limit headers (Retry-After 1 for burst, 1847 for quota unless
 * given; `omitRetryAfter` drops Retry-After and X-RateLimit-Reset, as gateway 429s reportedly do); 5xx may carry
 * Retry-After; 401/403/404/409 answer the host's error body; `reset` destroys the socket; `delay` answers normally
 * after `ms`.
 */
export type Failure =
  | { status: 429; reason: string; retryAfterSeconds?: number; omitRetryAfter?: boolean }
  | { status: 500 | 502 | 503 | 504; retryAfterSeconds?: number }
  | { status: 401 | 403 | 404 | 409 }
  | { kind: 'reset' }
  /** The request is applied, then the connection is dropped without an answer (a write whose answer was lost). */
  | { kind: 'lose-answer' }
  | { kind: 'delay'; ms: number };

export type HostName = 'site' | 'auth' | 'api';

/** Which requests a programmed failure applies to (all when omitted). */
export interface FailureMatch {
  method?: string;
  host?: HostName;
  /** Path prefix after any /ex/jira/{cloudId} prefix, e.g. '/rest/api/3/search/jql'. */
  pathPrefix?: string;
  /** Text the request's JQL (query `jql` or JSON body `jql`) contains. */
  jqlIncludes?: string;
}

/** How the request authenticated: the scheme and whether the fake recognised the credential's kind (a Basic
 * header is 'basic' whatever its password; a Bearer is 'pat' or 'oauth' when it is one the fake knows, even
 * expired, else 'invalid'). */
export type AuthKind = 'basic' | 'pat' | 'oauth' | 'none' | 'invalid';

/** One request as the fake saw it. No secret is kept: no headers, no bodies, and secret-looking query values
 * (code, token, client_secret, …) are replaced by '[redacted]'. */
export interface RecordedRequest {
  method: string;
  host: HostName;
  /** The path as received (with any /ex/jira/{cloudId} prefix). */
  path: string;
  query: Record<string, string>;
  auth: AuthKind;
  /** 0 while unanswered or when the socket was reset. */
  status: number;
  /** The fake's clock when the request arrived. */
  at: Date;
  failure?: Failure;
  /** RateLimit-Reason of a 429 answered (programmed or per-issue). */
  rateLimitReason?: string;
}

export interface WebhookEvent {
  webhookEvent: 'jira:issue_created' | 'jira:issue_updated' | 'jira:issue_deleted' | 'comment_created' | 'comment_updated' | 'sprint_closed' | (string & {});
  /** Issue key: the body carries the issue as the fake holds it (deleted ones too), REST v2 representation. */
  issue?: string;
  changelogItems?: { field: string; from?: string | null; fromString?: string | null; to?: string | null; toString?: string | null }[];
  commentId?: string;
  /** accountId of the acting user (default the API user). */
  user?: string;
  /** Sprint events: the sprint, as the agile API serves it (an addition to the brief's shape). */
  sprintId?: number;
  /** Send this exact body instead (a string as is, anything else as JSON). */
  body?: unknown;
}

export interface WebhookOptions {
  /** HMAC-SHA256 secret: adds `X-Hub-Signature: sha256=<hex>`. */
  secret?: string;
  /** X-Atlassian-Webhook-Identifier (default a random uuid); the same on every retry. */
  identifier?: string;
  /** Delay before each retry; its length is the number of retries (default [0,0,0,0,0]). Real time. */
  retryDelaysMs?: number[];
  /** Per-attempt timeout (default 20000, the reported response timeout). */
  timeoutMs?: number;
}

export interface WebhookResult {
  identifier: string;
  attempts: { status: number | 'error' }[];
}

export interface FakeJira {
  /** The site (https://<site>.atlassian.net, or the DC base URL): http://127.0.0.1:<p1> */
  readonly url: string;
  /** Stands for https://auth.atlassian.com: http://127.0.0.1:<p2> */
  readonly authUrl: string;
  /** Stands for https://api.atlassian.com: http://127.0.0.1:<p3> */
  readonly apiUrl: string;
  readonly cloudId: string;
  /** The API user (the Basic / PAT / 3LO caller). */
  readonly apiUser: JiraUser;
  addUser(user: { accountId?: string; emailAddress?: string | null; displayName: string; timeZone?: string }): JiraUser;
  createIssue(input: IssueInput): JiraIssueView;
  /** Bulk: one sort at the end (100,000 in about a second). */
  createIssues(count: number, make: (i: number) => IssueInput): void;
  /** Bumps `updated` (`at`, default the clock) and records changelog items by `by` (default the API user). */
  updateIssue(idOrKey: string, patch: Partial<IssueInput>, options?: { at?: Date; by?: string }): JiraIssueView;
  deleteIssue(idOrKey: string): void;
  /** The API user loses permission: absent from search and bulkfetch, 404 on GET, like a deleted one. */
  hideIssue(idOrKey: string, hidden?: boolean): void;
  issue(idOrKey: string): JiraIssueView | undefined;
  addComment(idOrKey: string, body: string, options?: { by?: string; at?: Date }): { id: string };
  addAttachment(idOrKey: string, file: { filename: string; mimeType: string; content: Buffer }, options?: { by?: string; at?: Date }): { id: string };
  addBoard(input: { name: string; projectKey: string; type?: 'scrum' | 'kanban' }): { id: number };
  addSprint(boardId: number, input: { name: string; state: 'future' | 'active' | 'closed'; startDate?: Date; endDate?: Date; completeDate?: Date; goal?: string; issues?: string[] }): { id: number };
  readonly requests: RecordedRequest[];
  failNext(count: number, failure: Failure, match?: FailureMatch): void;
  /** Every matching request fails until `failAlways(undefined, sameMatch)`; `failAlways(undefined)` clears all. */
  failAlways(failure: Failure | undefined, match?: FailureMatch): void;
  /** Writes the fake accepted over HTTP on that issue. */
  writeCount(idOrKey: string): number;
  readonly oauth: {
    readonly grants: { grant: 'authorization_code' | 'refresh_token'; at: Date; ok: boolean; error?: string }[];
    /** Every access token issued so far answers 401 from now on. */
    expireAccessTokens(): void;
    /** Every refresh token is refused (invalid_grant), like a password change. */
    revokeRefreshTokens(): void;
  };
  sendWebhook(target: string, event: WebhookEvent, options?: WebhookOptions): Promise<WebhookResult>;
  close(): Promise<void>;
}
