/**
 * A protocol-faithful fake of a ServiceNow instance for tests: a real HTTP server on 127.0.0.1 (node:http, no
 * framework) serving the Table API, the Attachment API and /oauth_token.do, with an in-memory store fast enough to
 * page through 200,000 incidents.
 *
 *   const sn = await startFakeServiceNow({ now: () => clock.now() });
 *   const inc = sn.insert('incident', incidentFields({ short_description: 'Printer on fire' }, sn.url));
 *   await fetch(`${sn.url}/api/now/table/incident/${fieldValue(inc.sys_id)}`, { headers: { authorization: 'Basic …' } });
 *   sn.failNext(2, { status: 429, retryAfterSeconds: 3 }, { method: 'GET', pathPrefix: '/api/now/table/incident' });
 *
 * API (types in ./types.ts): `url`; `insert` / `insertMany` / `update` / `remove` / `get` / `count` (records in the
 * Table API's JSON shape); `journal` (work_notes / comments written); `attach`; `requests` (method, path, query,
 * auth kind, status, time; never a secret); `tokenRequests()`; `expireTokens()`; `failNext(count, failure, match?)`;
 * `failAlways(failure | undefined, match?)`; `setPageLatency(ms)`; `close()`. Builders are in ./fixtures.ts.
 *
 * Protocol rules it keeps, with their sources (fixtures: test/fixtures/servicenow/, copies of /work/shared/fixtures;
 * docs: ServiceNow/ServiceNowDocs @ cb48b5c):
 * - Table API (docs c_TableAPI.md): GET list with sysparm_query (./query.ts), sysparm_limit (default 10000),
 *   sysparm_offset, sysparm_fields (unknown names ignored), sysparm_exclude_reference_link, name=value filters when
 *   there is no sysparm_query, sysparm_suppress_pagination_header, sysparm_no_count (no X-Total-Count);
 *   sysparm_display_value is accepted and ignored
 *   (values are always the database values, i.e. `false`); `referenceShape` makes every reference an object
 *   (`{ link, value }`, or `{ display_value, link, value }` as sysparm_display_value=all answers) whatever the
 *   request says, as some instances do. Answers `{"result": [...]}` with X-Total-Count and Link
 *   (./wire.ts, shaped like the gist capture fixture). GET / PATCH / PUT / DELETE by sys_id; POST answers 201.
 *   Records look like the incident fixture: string values, references as `{ link, value }` (./records.ts).
 * - Errors: 401 "User Not Authenticated" (docs), 404 "No Record found", 400 "Invalid table" (third-party captures),
 *   all `{"error":{"message","detail"},"status":"failure"}` (docs' error format).
 * - Attachment API (docs c_AttachmentAPI.md): GET /api/now/attachment (sysparm_query over sys_attachment fields,
 *   sysparm_limit default 1000), GET /api/now/attachment/{sys_id}, GET …/{sys_id}/file (bytes, Content-Type,
 *   X-Attachment-Metadata), POST /api/now/attachment/file, DELETE; metadata shaped like the docs' example.
 * - Auth and /oauth_token.do: ./oauth.ts. Programmed failures and 429 headers (docs inbound-REST-API-rate-limiting.md,
 *   429 body fixture verbatim): ./wire.ts.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { attachmentApi, createAttachments } from './attachments.ts';
import { ERROR_BAD_JSON, ERROR_BAD_URI, ERROR_NOT_AUTHENTICATED, ERROR_NO_RECORD, errorInvalidTable, OAUTH_ERROR } from './fixtures.ts';
import { authKind, createOAuth } from './oauth.ts';
import { parseQuery } from './query.ts';
import { createJournal, createRow, formatTime, patchRow, type WriteContext } from './records.ts';
import { type Row, TableStore, type WireReferences } from './store.ts';
import type { FakeServiceNow, FakeServiceNowOptions, RecordedRequest } from './types.ts';
import { createFailures, linkHeader, readBody, redactedQuery, send, sendFailure } from './wire.ts';

export type * from './types.ts';
export { changeRequestFields, fieldValue, incidentFields } from './fixtures.ts';

const DEFAULT_TABLES = ['incident', 'change_request', 'problem', 'task', 'sys_user', 'sys_user_group', 'cmdb_ci'];
const TABLE_PATH = /^\/api\/now\/(?:v\d+\/)?table\/([^/]+)(?:\/([^/]+))?\/?$/;
const ATTACHMENT_PATH = /^\/api\/now\/(?:v\d+\/)?attachment(?:\/([^/]+))?(?:\/(file))?\/?$/;

const intParam = (value: string | null, fallback: number, min: number): number => {
  const n = value === null ? NaN : Number.parseInt(value, 10);
  return Number.isFinite(n) && n >= min ? n : fallback;
};
function jsonObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export async function startFakeServiceNow(options: FakeServiceNowOptions = {}): Promise<FakeServiceNow> {
  const now = options.now ?? ((): Date => new Date());
  // Defaults are the docs' own examples (r_OAuthAPIRequestParameters.md: client_id be3aeb58…, admin / admin).
  const user = options.user ?? 'admin';
  let pageLatency = options.pageLatencyMs ?? 0;
  let referenceShape = options.referenceShape ?? 'as-requested';
  const tables = new Map((options.tables ?? DEFAULT_TABLES).map((t) => [t, new TableStore(t)]));
  const storeOf = (table: string): TableStore => tables.get(table) ?? tables.set(table, new TableStore(table)).get(table)!;
  /** A reference's display value: the referenced record's name or number when there is one here, else its sys_id. */
  const displayOf = (table: string, sysId: string): string => {
    const row = tables.get(table)?.byId.get(sysId);
    return row?.name || row?.number || sysId;
  };
  const journal = createJournal();
  const attachments = createAttachments();
  const failures = createFailures();
  const requests: RecordedRequest[] = [];
  const oauth = createOAuth({
    clientId: options.clientId ?? 'be3aeb583ace210011c15b24a43e25d8',
    clientSecret: options.clientSecret ?? 'client_password',
    user,
    password: options.password ?? 'admin',
    ttlSeconds: () => options.tokenTtlSeconds ?? 1800,
    now,
  });
  let url = '';
  const testWrite = (at: Date | undefined): WriteContext => ({ journal, at: formatTime(at ?? now()), by: user, via: 'test' });

  async function tableApi(req: IncomingMessage, res: ServerResponse, rec: RecordedRequest, by: string, path: RegExpExecArray, body: Buffer): Promise<void> {
    const [, table = '', sysId] = path;
    const store = tables.get(table);
    if (!store) return send(res, rec, 400, errorInvalidTable(table));
    const params = new URL(req.url ?? '/', url).searchParams;
    const fields = params.get('sysparm_fields')?.split(',').map((f) => f.trim()).filter((f) => f !== '');
    const origin = `http://${req.headers.host ?? url.slice(7)}`;
    const excludeLinks = params.get('sysparm_exclude_reference_link') === 'true';
    const references: WireReferences = referenceShape === 'as-requested' ? (excludeLinks ? 'value' : 'link') : referenceShape;
    const wire = (row: Row) => store.toWire(row, origin, references, fields, displayOf);
    const write: WriteContext = { journal, at: formatTime(now()), by, via: 'http' };
    const method = rec.method;

    if (sysId === undefined && method === 'GET') {
      const limit = intParam(params.get('sysparm_limit'), 10000, 1); // 0, negative or junk: the default
      const offset = intParam(params.get('sysparm_offset'), 0, 0);
      const pairs = [...params].filter(([key]) => !key.startsWith('sysparm_')).map(([key, value]) => `${key}=${value}`);
      const query = parseQuery(params.get('sysparm_query') ?? pairs.join('^'), (f) => store.has(f));
      if (query.ignored.length) rec.ignoredQueryTerms = query.ignored;
      const noRows = options.invalidQueryReturnsNoRows === true && query.ignored.length > 0;
      const { total, rows } = noRows ? { total: 0, rows: [] } : store.select(query, offset, limit);
      const result = rows.map(wire);
      if (pageLatency > 0) await sleep(pageLatency);
      const paging = params.get('sysparm_suppress_pagination_header') === 'true'
        ? {} : { Link: linkHeader(origin, rec.path, params, offset, limit, total) };
      const count = params.get('sysparm_no_count') === 'true' ? {} : { 'X-Total-Count': String(total) };
      return send(res, rec, 200, { result }, { ...paging, ...count });
    }
    if (sysId === undefined && method === 'POST') {
      const fieldsIn = jsonObject(body);
      if (!fieldsIn) return send(res, rec, 400, ERROR_BAD_JSON);
      if (typeof fieldsIn.sys_id === 'string' && store.byId.has(fieldsIn.sys_id)) {
        // A taken sys_id: the wording third-party clients match on ("Error during insert of"); not in the docs.
        return send(res, rec, 403, { error: { message: 'Operation Failed', detail: `Error during insert of ${table}` }, status: 'failure' });
      }
      const row = createRow(store, fieldsIn, write);
      store.add(row);
      return send(res, rec, 201, { result: wire(row) });
    }
    const row = sysId === undefined ? undefined : store.byId.get(sysId);
    if (sysId === undefined || !['GET', 'PATCH', 'PUT', 'DELETE'].includes(method)) {
      return send(res, rec, 405, { error: { message: 'Method not Supported', detail: null }, status: 'failure' });
    }
    if (!row) return send(res, rec, 404, ERROR_NO_RECORD);
    if (method === 'GET') return send(res, rec, 200, { result: wire(row) });
    if (method === 'DELETE') {
      store.remove(row);
      return send(res, rec, 204, undefined);
    }
    const patch = jsonObject(body);
    if (!patch) return send(res, rec, 400, ERROR_BAD_JSON);
    patchRow(store, row, patch, write);
    return send(res, rec, 200, { result: wire(row) });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = new URL(req.url ?? '/', url);
    const method = (req.method ?? 'GET').toUpperCase();
    const path = target.pathname;
    const rec: RecordedRequest = { method, path, query: redactedQuery(target.searchParams), auth: authKind(req.headers.authorization), status: 0, at: new Date(now().getTime()) };
    requests.push(rec);
    const body = await readBody(req);
    const failure = failures.take(method, path, target.searchParams.get('sysparm_query') ?? '');
    if (failure) {
      rec.failure = failure;
      if ('status' in failure) return sendFailure(res, rec, failure, now().getTime());
      if (failure.kind === 'reset') return void req.socket.destroy();
      if (failure.kind === 'hibernating') {
        rec.status = 200;
        res.writeHead(200, { 'content-type': 'text/html;charset=UTF-8' });
        return void res.end('<html><head><title>Instance Hibernating page</title></head><body>Your instance is hibernating.</body></html>');
      }
      await sleep(failure.ms);
    }
    if (path === '/oauth_token.do') {
      if (method !== 'POST') return send(res, rec, 401, OAUTH_ERROR);
      const answer = oauth.grant(req.headers['content-type'] ?? '', body.toString('utf8'));
      return send(res, rec, answer.status, answer.body);
    }
    const table = TABLE_PATH.exec(path);
    const attachment = ATTACHMENT_PATH.exec(path);
    if (!table && !attachment) return send(res, rec, 400, ERROR_BAD_URI);
    const principal = oauth.authenticate(req.headers.authorization);
    if (principal.name === undefined) return send(res, rec, 401, ERROR_NOT_AUTHENTICATED);
    if (table) return tableApi(req, res, rec, principal.name, table, body);
    if (attachment) {
      const ctx = { journal, at: formatTime(now()), by: principal.name, via: 'http' as const };
      return attachmentApi(attachments, { req, res, rec, body, origin: `http://${req.headers.host ?? url.slice(7)}`, ctx, match: attachment });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(err instanceof Error ? err.stack : String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    requests,
    insert(table, fields = {}, at) {
      const store = storeOf(table);
      const row = createRow(store, fields, testWrite(at));
      store.add(row);
      return store.toWire(row, url, 'link');
    },
    insertMany(table, count, make, at) {
      const store = storeOf(table);
      const ids = randomBytes(16 * count).toString('hex');
      const fixed = at instanceof Date || at === undefined ? testWrite(at) : undefined;
      const rows = Array.from({ length: count }, (_, i) =>
        createRow(store, make(i), fixed ?? testWrite((at as (i: number) => Date)(i)), ids.slice(32 * i, 32 * i + 32)));
      store.addMany(rows);
    },
    update(table, sysId, patch, at) {
      const store = storeOf(table);
      const row = store.byId.get(sysId);
      if (!row) throw new Error(`fake ServiceNow: no ${table} record ${sysId}`);
      patchRow(store, row, patch, testWrite(at));
      return store.toWire(row, url, 'link');
    },
    remove(table, sysId) {
      const store = storeOf(table);
      const row = store.byId.get(sysId);
      if (row) store.remove(row);
    },
    get(table, sysId) {
      const store = tables.get(table);
      const row = store?.byId.get(sysId);
      return row && store ? store.toWire(row, url, 'link') : undefined;
    },
    count: (table) => tables.get(table)?.byId.size ?? 0,
    journal: (table, sysId) => journal.list(table, sysId),
    attach: (table, sysId, file) => ({ sysId: attachments.add(table, sysId, file, testWrite(undefined)).sys_id }),
    tokenRequests: () => oauth.issued(),
    expireTokens: () => oauth.expireAll(),
    failNext: (count, failure, match) => failures.next(count, failure, match),
    failAlways: (failure, match) => failures.always(failure, match),
    setPageLatency(ms) {
      pageLatency = ms;
    },
    setReferenceShape(shape) {
      referenceShape = shape;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
