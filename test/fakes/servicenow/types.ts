/**
 * The public API of the fake ServiceNow (./server.ts): options, the handle a test drives it with, programmed
 * failures and the request log. Wire shapes (records, references, attachments) are in ./fixtures.ts.
 */

/** A field as the Table API returns it: a string, or `{ link, value }` for a reference field (all values strings),
 * or `{ display_value, link, value }` (sysparm_display_value=all; `referenceShape: 'display'`). */
export type SnValue = string | { link: string; value: string; display_value?: string };

/**
 * How the fake answers reference fields. `as-requested` (the default): `{ link, value }`, or the plain sys_id when
 * the request says `sysparm_exclude_reference_link=true`. The others answer every reference as an object whatever
 * the request says, as instances do depending on the query options and their settings (ServiceNow names the
 * display value with sysparm_display_value=all): `link` as `{ link, value }`, `display` as
 * `{ display_value, link, value }`, the display value being the referenced record's name or number when the fake
 * has it, else its sys_id.
 */
export type ReferenceShape = 'as-requested' | 'link' | 'display';
/** A record in the Table API's JSON shape (`sysparm_exclude_reference_link=false`, `sysparm_display_value=false`). */
export type SnRecord = Record<string, SnValue>;

/**
 * A programmed failure. 429 carries ServiceNow's rate-limit headers and the docs' 429 body; 5xx, 401 and 403 answer
 * ServiceNow-shaped error bodies; `reset` destroys the socket without an answer (a network error); `delay` answers
 * normally after `ms`; `hibernating` answers 200 with an HTML page, as a sleeping developer instance does.
 */
export type Failure =
  | { status: 429; retryAfterSeconds?: number; rateLimitResetEpochSeconds?: number }
  | { status: 500 | 502 | 503 | 504 }
  | { status: 401 | 403 }
  | { kind: 'reset' }
  | { kind: 'delay'; ms: number }
  /** A hibernating developer instance: 200 with an HTML page instead of JSON. */
  | { kind: 'hibernating' };

/** Which requests a programmed failure applies to (all when omitted). */
export interface FailureMatch {
  /** HTTP method, e.g. 'GET' (case-insensitive). */
  method?: string;
  /** Request path prefix, e.g. '/api/now/table/incident' or '/oauth_token.do'. */
  pathPrefix?: string;
  /** Text the request's (decoded) `sysparm_query` contains, e.g. one page's keyset position. */
  queryIncludes?: string;
}

export type AuthKind = 'bearer' | 'basic' | 'none';

/** One request as the fake saw it. Secrets are never kept: no headers, no bodies, and secret-looking query values
 * (`*secret*`, `*password*`, `*token*`) are replaced by `[redacted]`. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  auth: AuthKind;
  /** The status answered; 0 while unanswered or when the socket was reset. */
  status: number;
  /** The fake's clock (`options.now`) when the request arrived. */
  at: Date;
  /** The programmed failure this request consumed, if any. */
  failure?: Failure;
  /** Encoded-query terms ServiceNow would ignore (unknown field, unknown operator), for debugging a client. */
  ignoredQueryTerms?: string[];
}

export interface JournalEntry {
  element: 'work_notes' | 'comments';
  value: string;
  /** sys_updated_on of the write that added it ('YYYY-MM-DD HH:mm:ss', UTC). */
  at: string;
  /** The user (basic auth, password grant) or OAuth client id (client_credentials) that wrote it. */
  by: string;
}

export interface AttachmentFile {
  fileName: string;
  contentType: string;
  content: Buffer;
}

export interface FakeServiceNowOptions {
  /** OAuth client accepted by /oauth_token.do; defaults are the docs' example values
   * ('be3aeb583ace210011c15b24a43e25d8' / 'client_password', r_OAuthAPIRequestParameters.md). */
  clientId?: string;
  clientSecret?: string;
  /** Basic-auth user (and password-grant user); default 'admin' / 'admin', as in the same docs example. */
  user?: string;
  password?: string;
  /** expires_in of issued access tokens, seconds (default 1800, as in the docs' example). */
  tokenTtlSeconds?: number;
  /** Added delay on every Table API GET list (default 0). */
  pageLatencyMs?: number;
  /** The fake's clock: sys_created_on / sys_updated_on of writes and token expiry (default real time). */
  now?: () => Date;
  /** Tables that exist before anything is inserted (default: incident, change_request, problem, task, sys_user,
   * sys_user_group, cmdb_ci). Any table `insert` writes to exists too; others answer 400 "Invalid table". */
  tables?: string[];
  /** ServiceNow's glide.invalid_query.returns_no_rows: an encoded query with an invalid term matches nothing
   * (default false: invalid terms are ignored, as the Table API docs describe). */
  invalidQueryReturnsNoRows?: boolean;
  /** How the Table API answers reference fields (default `as-requested`); see ReferenceShape. */
  referenceShape?: ReferenceShape;
}

export interface FakeServiceNow {
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** Adds a record: sys_id (32 hex), number (INC/CHG/PRB/TASK… + 7 digits, per table) unless given,
   * sys_created_on / sys_updated_on (`at`, default the clock; second resolution), sys_mod_count '0',
   * sys_created_by / sys_updated_by (the configured user) unless given. Values: strings (numbers and booleans are
   * stringified), `{ link, value }` or `{ value }` for references. work_notes / comments become journal entries. */
  insert(table: string, fields?: Record<string, unknown>, at?: Date): SnRecord;
  /** Bulk load (200,000 records in well under a second or two): same rules as insert, one sort at the end. */
  insertMany(table: string, count: number, make: (i: number) => Record<string, unknown>, at?: Date | ((i: number) => Date)): void;
  /** Applies a patch: bumps sys_updated_on (`at`, default the clock) and sys_mod_count. Throws for unknown records. */
  update(table: string, sysId: string, patch: Record<string, unknown>, at?: Date): SnRecord;
  remove(table: string, sysId: string): void;
  get(table: string, sysId: string): SnRecord | undefined;
  count(table: string): number;
  journal(table: string, sysId: string): JournalEntry[];
  attach(table: string, sysId: string, file: AttachmentFile): { sysId: string };
  readonly requests: RecordedRequest[];
  /** How many access tokens /oauth_token.do issued. */
  tokenRequests(): number;
  /** Every access token issued so far stops working (refresh tokens keep working). */
  expireTokens(): void;
  /** The next `count` requests that match fail with `failure`. Queued failures are used before standing ones. */
  failNext(count: number, failure: Failure, match?: FailureMatch): void;
  /** Every matching request fails until cleared with `failAlways(undefined, sameMatch)`; `failAlways(undefined)`
   * clears all standing failures. */
  failAlways(failure: Failure | undefined, match?: FailureMatch): void;
  setPageLatency(ms: number): void;
  /** From now on, answers reference fields this way (see ReferenceShape). */
  setReferenceShape(shape: ReferenceShape): void;
  close(): Promise<void>;
}
