/**
 * Self-test of the fake ServiceNow (./servicenow/server.ts): real HTTP to it with fetch, its answers compared with
 * the real payloads in test/fixtures/servicenow/ (key by key), the encoded-query semantics, keyset paging over
 * 200,000 records, auth and OAuth, and the programmed failures.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DOCS_ATTACHMENT_EXAMPLE,
  ERROR_NO_RECORD,
  ERROR_NOT_AUTHENTICATED,
  FIXTURE_INCIDENT,
  FIXTURE_TOKEN_RESPONSE,
  OAUTH_ERROR,
} from './servicenow/fixtures.ts';
import {
  changeRequestFields,
  fieldValue,
  incidentFields,
  startFakeServiceNow,
  type FakeServiceNow,
  type FakeServiceNowOptions,
  type SnRecord,
} from './servicenow/server.ts';

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/servicenow/${name}`, import.meta.url), 'utf8');
const basic = (user = 'admin', password = 'admin'): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const CLIENT = { client_id: 'be3aeb583ace210011c15b24a43e25d8', client_secret: 'client_password' };
const T = (iso: string): Date => new Date(`${iso}Z`);

async function withFake(options: FakeServiceNowOptions, run: (sn: FakeServiceNow) => Promise<void>): Promise<void> {
  const sn = await startFakeServiceNow(options);
  try {
    await run(sn);
  } finally {
    await sn.close();
  }
}

interface Call {
  method?: string;
  auth?: string | null;
  body?: unknown;
}
async function call(sn: FakeServiceNow, path: string, init: Call = {}) {
  const headers: Record<string, string> = { accept: 'application/json' };
  const auth = init.auth === undefined ? basic() : init.auth;
  if (auth !== null) headers.authorization = auth;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${sn.url}${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: (text ? JSON.parse(text) : undefined) as unknown };
}
const list = async (sn: FakeServiceNow, table: string, params: Record<string, string>, auth?: string) => {
  const res = await call(sn, `/api/now/table/${table}?${new URLSearchParams(params).toString()}`, auth === undefined ? {} : { auth });
  expect(res.status).toBe(200);
  return { ...res, rows: (res.json as { result: SnRecord[] }).result };
};
const one = (json: unknown): SnRecord => (json as { result: SnRecord }).result;
async function token(sn: FakeServiceNow, form: Record<string, string>, contentType = 'application/x-www-form-urlencoded') {
  const res = await fetch(`${sn.url}/oauth_token.do`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: contentType.includes('json') ? JSON.stringify(form) : new URLSearchParams(form).toString(),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('fake ServiceNow: Table API shapes', () => {
  it('GET by sys_id answers a record with the incident fixture\'s keys and value types', () =>
    withFake({}, async (sn) => {
      const inserted = sn.insert('incident', incidentFields({}, sn.url), T('2026-01-02 03:04:05'));
      const res = await call(sn, `/api/now/table/incident/${fieldValue(inserted.sys_id)}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json;charset=UTF-8');
      const got = one(res.json);
      expect(Object.keys(got).sort()).toEqual(Object.keys(FIXTURE_INCIDENT).sort());
      for (const [key, want] of Object.entries(FIXTURE_INCIDENT)) {
        const value = got[key];
        if (typeof want === 'string') {
          expect(typeof value, key).toBe('string');
          continue;
        }
        expect(value, key).toEqual({ link: want.link.replace('https://instance.servicenow.com', sn.url), value: want.value });
      }
      expect(got).toMatchObject({ sys_created_on: '2026-01-02 03:04:05', sys_updated_on: '2026-01-02 03:04:05', sys_mod_count: '0' });
      expect(got.sys_id).toMatch(/^[0-9a-f]{32}$/);
      expect(got.number).toBe('INC0000001');
      expect(got.short_description).toBe(FIXTURE_INCIDENT.short_description);

      const change = sn.insert('change_request', changeRequestFields({ requested_by: '46c6f9efa9fe198101ddf5eed9adf6e7' }, sn.url));
      expect(change.number).toBe('CHG0000001');
      expect(change.requested_by).toEqual({ link: `${sn.url}/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7`, value: '46c6f9efa9fe198101ddf5eed9adf6e7' });
      expect(Object.values(change).every((v) => typeof v === 'string' || Object.keys(v).join() === 'link,value')).toBe(true);
    }));

  it('a list answers Link and X-Total-Count exactly like the captured answer', () =>
    withFake({}, async (sn) => {
      sn.insertMany('incident', 550, (i) => ({ short_description: `row ${i}` }));
      const capture = fixture('servicenow_table_get_response_headers_gist_capture.txt').split('\n');
      const header = (name: string): string => capture.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2) ?? '';
      const res = await list(sn, 'incident', { sysparm_limit: '1', sysparm_fields: 'number' });
      expect(res.headers.get('link')).toBe(header('Link').replaceAll('https://demo003.service-now.com', sn.url));
      expect(res.headers.get('x-total-count')).toBe(header('X-Total-Count'));
      expect(res.text).toBe(capture.find((l) => l.startsWith('{"result"')));

      const last = await list(sn, 'incident', { sysparm_limit: '100', sysparm_offset: '500' });
      expect(last.rows).toHaveLength(50);
      const rels = (last.headers.get('link') ?? '').split(',').map((l) => /rel="(\w+)"/.exec(l)?.[1]);
      expect(rels).toEqual(['first', 'prev', 'last']);
      expect(last.headers.get('link')).toContain('sysparm_offset=400>;rel="prev"');
      const empty = await list(sn, 'problem', {});
      expect(empty.text).toBe('{"result":[]}');
      expect(empty.headers.get('x-total-count')).toBe('0');
      expect((await list(sn, 'incident', { sysparm_no_count: 'true', sysparm_limit: '1' })).headers.has('x-total-count')).toBe(false);
    }));

  it('sysparm_fields trims the record; sysparm_exclude_reference_link gives plain values', () =>
    withFake({}, async (sn) => {
      sn.insert('incident', incidentFields({ assigned_to: '' }, sn.url));
      const trimmed = await list(sn, 'incident', { sysparm_fields: 'number, caller_id,no_such_field' });
      expect(trimmed.rows).toEqual([{ number: 'INC0000001', caller_id: { link: `${sn.url}/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7`, value: '46c6f9efa9fe198101ddf5eed9adf6e7' } }]);
      const plain = await list(sn, 'incident', { sysparm_fields: 'caller_id,assigned_to', sysparm_exclude_reference_link: 'true', sysparm_display_value: 'false' });
      expect(plain.rows).toEqual([{ caller_id: '46c6f9efa9fe198101ddf5eed9adf6e7', assigned_to: '' }]);
    }));

  it('referenceShape answers references as objects whatever sysparm_exclude_reference_link says', () =>
    withFake({ referenceShape: 'link' }, async (sn) => {
      const group = sn.insert('sys_user_group', { name: 'Service Desk' });
      sn.insert('incident', incidentFields({ assigned_to: '', assignment_group: fieldValue(group.sys_id) }, sn.url));
      const asked = { sysparm_fields: 'caller_id,assignment_group,assigned_to', sysparm_exclude_reference_link: 'true', sysparm_display_value: 'false' };
      const linked = await list(sn, 'incident', asked);
      expect(linked.rows).toEqual([
        {
          caller_id: { link: `${sn.url}/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7`, value: '46c6f9efa9fe198101ddf5eed9adf6e7' },
          assignment_group: { link: `${sn.url}/api/now/table/sys_user_group/${fieldValue(group.sys_id)}`, value: fieldValue(group.sys_id) },
          assigned_to: '',
        },
      ]);
      sn.setReferenceShape('display');
      const displayed = await list(sn, 'incident', asked);
      expect(displayed.rows[0]!.assignment_group).toEqual({ display_value: 'Service Desk', link: `${sn.url}/api/now/table/sys_user_group/${fieldValue(group.sys_id)}`, value: fieldValue(group.sys_id) });
      // A referenced record the fake does not have: its sys_id stands in for the display value.
      expect(displayed.rows[0]!.caller_id).toMatchObject({ display_value: '46c6f9efa9fe198101ddf5eed9adf6e7', value: '46c6f9efa9fe198101ddf5eed9adf6e7' });
      sn.setReferenceShape('as-requested');
      expect((await list(sn, 'incident', asked)).rows[0]!.caller_id).toBe('46c6f9efa9fe198101ddf5eed9adf6e7');
    }));

  it('404 for an unknown sys_id, 400 for an unknown table, in ServiceNow\'s error shape', () =>
    withFake({}, async (sn) => {
      const missing = await call(sn, '/api/now/table/incident/0123456789abcdef0123456789abcdef');
      expect(missing.status).toBe(404);
      expect(missing.json).toEqual(ERROR_NO_RECORD);
      expect(missing.json).toEqual({ error: { message: 'No Record found', detail: "Record doesn't exist or ACL restricts the record retrieval" }, status: 'failure' });
      const table = await call(sn, '/api/now/table/u_no_such_table');
      expect(table.status).toBe(400);
      expect(table.json).toEqual({ error: { message: 'Invalid table u_no_such_table', detail: null }, status: 'failure' });
    }));
});

describe('fake ServiceNow: encoded queries', () => {
  async function seeded(run: (names: (query: string) => Promise<string[]>, sn: FakeServiceNow) => Promise<void>) {
    await withFake({}, async (sn) => {
      const rows = [
        { name: 'alpha', priority: '1', category: 'network', x: '1', y: '1', z: '0', d: '2026-01-01 00:00:00' },
        { name: 'bravo', priority: '2', category: 'software', x: '1', y: '0', z: '1', d: '2026-01-02 00:00:00' },
        { name: 'charlie', priority: '10', category: '', x: '0', y: '0', z: '1', d: '2026-01-03 00:00:00' },
        { name: 'delta', priority: '9', category: 'network', x: '1', y: '0', z: '0', d: '' },
        { name: 'echo', priority: '2', category: 'hardware', x: '0', y: '1', z: '0', d: '2026-01-05 00:00:00' },
      ];
      for (const row of rows) sn.insert('task', row);
      await run(async (query) => (await list(sn, 'task', { sysparm_query: query, sysparm_fields: 'name' })).rows.map((r) => fieldValue(r.name)), sn);
    });
  }

  it('comparison, set, string and emptiness operators', () =>
    seeded(async (names) => {
      expect(await names('category=network')).toEqual(['alpha', 'delta']);
      expect(await names('category!=network')).toEqual(['bravo', 'echo']); // an empty value never matches != (KB0715430)
      expect(await names('priority>2')).toEqual(['charlie', 'delta']); // integers compare as numbers
      expect(await names('priority>=2')).toEqual(['bravo', 'charlie', 'delta', 'echo']);
      expect(await names('priority<2')).toEqual(['alpha']);
      expect(await names('priority<=2')).toEqual(['alpha', 'bravo', 'echo']);
      expect(await names('d>2026-01-02 00:00:00')).toEqual(['charlie', 'echo']);
      expect(await names("d<javascript:gs.dateGenerate('2026-01-02','00:00:00')")).toEqual(['alpha']);
      expect(await names('categoryINsoftware,hardware')).toEqual(['bravo', 'echo']);
      expect(await names('categoryNOT INsoftware,hardware')).toEqual(['alpha', 'delta']);
      expect(await names('nameSTARTSWITHch')).toEqual(['charlie']);
      expect(await names('nameENDSWITHo')).toEqual(['bravo', 'echo']);
      expect(await names('nameLIKEl')).toEqual(['alpha', 'charlie', 'delta']);
      expect(await names('nameLIKEL')).toEqual([]); // values are case-sensitive (Table API docs)
      expect(await names('categoryISEMPTY')).toEqual(['charlie']);
      expect(await names('categoryISNOTEMPTY')).toEqual(['alpha', 'bravo', 'delta', 'echo']);
    }));

  it('^OR binds tighter than ^; ^NQ ORs whole blocks', () =>
    seeded(async (names) => {
      // x=1 AND (y=1 OR z=1): charlie (z=1, x=0) is out, as it would not be for (x=1 AND y=1) OR z=1.
      expect(await names('x=1^y=1^ORz=1')).toEqual(['alpha', 'bravo']);
      expect(await names('x=1^y=1^NQz=1')).toEqual(['alpha', 'bravo', 'charlie']);
      expect(await names('category=hardware^ORcategory=software^priority=2')).toEqual(['bravo', 'echo']);
    }));

  it('ORDERBY / ORDERBYDESC apply in order; without them, insertion order; invalid terms are ignored', () =>
    seeded(async (names, sn) => {
      expect(await names('ORDERBYcategory^ORDERBYDESCname')).toEqual(['charlie', 'echo', 'delta', 'alpha', 'bravo']);
      expect(await names('ORDERBYDESCpriority')).toEqual(['charlie', 'delta', 'bravo', 'echo', 'alpha']);
      expect(await names('x=1')).toEqual(['alpha', 'bravo', 'delta']);
      expect(await names('x=1^no_such_field=3^ORDERBYDESCname')).toEqual(['delta', 'bravo', 'alpha']);
      expect(sn.requests.at(-1)?.ignoredQueryTerms).toEqual(['no_such_field=3']);
    }));

  it('glide.invalid_query.returns_no_rows: an invalid term matches nothing', () =>
    withFake({ invalidQueryReturnsNoRows: true }, async (sn) => {
      sn.insert('task', { name: 'alpha' });
      expect((await list(sn, 'task', { sysparm_query: 'name=alpha' })).rows).toHaveLength(1);
      expect((await list(sn, 'task', { sysparm_query: 'name=alpha^nmae=alpha' })).rows).toEqual([]);
    }));
});

describe('fake ServiceNow: keyset paging on (sys_updated_on, sys_id)', () => {
  /** Pages with `sys_updated_on=U^sys_id>I^ORDERBYsys_id`, then `sys_updated_on>U^ORDERBYsys_updated_on^ORDERBYsys_id`. */
  async function pageAll(sn: FakeServiceNow, limit: number): Promise<SnRecord[]> {
    const seen: SnRecord[] = [];
    let [u, id] = ['1970-01-01 00:00:00', ''];
    for (;;) {
      const params = { sysparm_limit: String(limit), sysparm_fields: 'sys_id,sys_updated_on' };
      let rows = id ? (await list(sn, 'incident', { ...params, sysparm_query: `sys_updated_on=${u}^sys_id>${id}^ORDERBYsys_id` })).rows : [];
      if (!rows.length) rows = (await list(sn, 'incident', { ...params, sysparm_query: `sys_updated_on>${u}^ORDERBYsys_updated_on^ORDERBYsys_id` })).rows;
      const last = rows.at(-1);
      if (!last) return seen;
      seen.push(...rows);
      [u, id] = [fieldValue(last.sys_updated_on), fieldValue(last.sys_id)];
    }
  }
  const key = (r: SnRecord): string => `${fieldValue(r.sys_updated_on)} ${fieldValue(r.sys_id)}`;

  it('1,000 records, 400 of them with one sys_updated_on across pages: each exactly once, in key order', () =>
    withFake({}, async (sn) => {
      sn.insertMany('incident', 1000, (i) => ({ short_description: `r${i}` }), (i) =>
        i < 300 ? T('2026-01-01 00:00:00') : i < 700 ? T('2026-01-01 00:00:01') : T('2026-01-01 00:00:02'));
      const seen = await pageAll(sn, 150);
      expect(seen).toHaveLength(1000);
      expect(new Set(seen.map((r) => r.sys_id)).size).toBe(1000);
      expect(seen.map(key)).toEqual(seen.map(key).sort());

      // The index answers like the plain filter + sort would (an ^OR forces that path).
      const tie = seen[450]!;
      for (const q of [`sys_updated_on=2026-01-01 00:00:01^sys_id>${fieldValue(tie.sys_id)}^ORDERBYsys_id`,
        'sys_updated_on>2026-01-01 00:00:00^sys_updated_on<=2026-01-01 00:00:01^ORDERBYDESCsys_updated_on^ORDERBYDESCsys_id',
        'sys_updated_on>=2026-01-01 00:00:00^short_descriptionSTARTSWITHr1^ORDERBYsys_updated_on^ORDERBYsys_id',
        // The keyset continuation in one request: the rest of the tie, then everything later (two ^NQ ranges).
        `sys_updated_on=2026-01-01 00:00:01^sys_id>${fieldValue(tie.sys_id)}^NQsys_updated_on>2026-01-01 00:00:01^ORDERBYsys_updated_on^ORDERBYsys_id`]) {
        const fast = await list(sn, 'incident', { sysparm_query: q, sysparm_fields: 'sys_id', sysparm_limit: '50', sysparm_offset: '20' });
        const slow = await list(sn, 'incident', { sysparm_query: q.replace('^ORDERBY', '^ORsys_id=none^ORDERBY'), sysparm_fields: 'sys_id', sysparm_limit: '50', sysparm_offset: '20' });
        expect(fast.rows).toEqual(slow.rows);
        expect(fast.headers.get('x-total-count')).toBe(slow.headers.get('x-total-count'));
      }
      const rest = await list(sn, 'incident', { sysparm_query: `sys_updated_on=2026-01-01 00:00:01^sys_id>${fieldValue(tie.sys_id)}^ORDERBYsys_id`, sysparm_limit: '1' });
      expect(rest.headers.get('x-total-count')).toBe('249');

      // update() moves a record to the end of the order; remove() takes it out.
      const moved = fieldValue(seen[0]?.sys_id);
      sn.update('incident', moved, { state: '2' }, T('2026-02-01 00:00:00'));
      const after = await pageAll(sn, 400);
      expect(after.at(-1)).toEqual({ sys_id: moved, sys_updated_on: '2026-02-01 00:00:00' });
      sn.remove('incident', moved);
      expect(await pageAll(sn, 400)).toHaveLength(999);
      expect(sn.count('incident')).toBe(999);
    }));

  it('200,000 records page through with the range queries (1,000 a page)', () =>
    withFake({}, async (sn) => {
      const start = T('2026-01-01 00:00:00').getTime();
      sn.insertMany('incident', 200_000, (i) => ({ short_description: `bulk ${i}`, state: '1' }), (i) => new Date(start + Math.floor(i / 7) * 1000));
      const first = await list(sn, 'incident', { sysparm_query: 'sys_updated_on>2026-01-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id', sysparm_limit: '1' });
      expect(first.headers.get('x-total-count')).toBe(String(200_000 - 7));
      const seen = await pageAll(sn, 1000);
      expect(seen).toHaveLength(200_000);
      const outOfOrder = seen.filter((r, i) => i > 0 && key(r) <= key(seen[i - 1]!)).length;
      expect(outOfOrder).toBe(0);
    }));
});

describe('fake ServiceNow: authentication', () => {
  it('401 without or with bad credentials; Basic with the configured user works; no secret is recorded', () =>
    withFake({ user: 'svc', password: 's3cret-pw' }, async (sn) => {
      const none = await call(sn, '/api/now/table/incident', { auth: null });
      expect(none.status).toBe(401);
      expect(none.json).toEqual(ERROR_NOT_AUTHENTICATED);
      expect(none.json).toEqual({ error: { message: 'User Not Authenticated', detail: 'Required to provide Auth information' }, status: 'failure' });
      expect((await call(sn, '/api/now/table/incident', { auth: basic('svc', 'wrong') })).status).toBe(401);
      expect((await call(sn, '/api/now/table/incident', { auth: 'Bearer not-a-token' })).status).toBe(401);
      expect((await call(sn, '/api/now/table/incident', { auth: basic('svc', 's3cret-pw') })).status).toBe(200);
      expect(sn.requests.map((r) => [r.auth, r.status])).toEqual([['none', 401], ['basic', 401], ['bearer', 401], ['basic', 200]]);
      expect(JSON.stringify(sn.requests)).not.toMatch(/s3cret-pw|not-a-token/);
    }));

  it('OAuth grants answer the docs\' token shape; tokens are unique and expire (expireTokens, the clock)', async () => {
    let now = T('2026-03-01 12:00:00');
    await withFake({ now: () => now, tokenTtlSeconds: 60 }, async (sn) => {
      const grant = await token(sn, { grant_type: 'client_credentials', ...CLIENT });
      expect(grant.status).toBe(200);
      expect(Object.keys(grant.json)).toEqual(Object.keys(FIXTURE_TOKEN_RESPONSE));
      for (const [k, v] of Object.entries(FIXTURE_TOKEN_RESPONSE)) expect(typeof grant.json[k], k).toBe(typeof v);
      expect(grant.json).toMatchObject({ scope: 'useraccount', token_type: 'Bearer', expires_in: 60 });
      expect(String(grant.json.access_token)).toHaveLength(FIXTURE_TOKEN_RESPONSE.access_token.length);
      const bearer = `Bearer ${String(grant.json.access_token)}`;
      expect((await call(sn, '/api/now/table/incident', { auth: bearer })).status).toBe(200);

      const password = await token(sn, { grant_type: 'password', ...CLIENT, username: 'admin', password: 'admin' });
      expect(password.json.access_token).not.toBe(grant.json.access_token);
      expect(sn.tokenRequests()).toBe(2);
      expect(await token(sn, { grant_type: 'password', ...CLIENT, username: 'admin', password: 'nope' })).toEqual({ status: 401, json: OAUTH_ERROR });
      expect(await token(sn, { grant_type: 'client_credentials', ...CLIENT, client_secret: 'wrong' })).toEqual({ status: 401, json: OAUTH_ERROR });
      expect((await token(sn, { grant_type: 'client_credentials', ...CLIENT }, 'application/json')).status).toBe(401);

      sn.expireTokens();
      expect((await call(sn, '/api/now/table/incident', { auth: bearer })).status).toBe(401);
      const refreshed = await token(sn, { grant_type: 'refresh_token', ...CLIENT, refresh_token: String(password.json.refresh_token) });
      expect(refreshed.json.refresh_token).toBe(password.json.refresh_token);
      const fresh = `Bearer ${String(refreshed.json.access_token)}`;
      now = new Date(now.getTime() + 59_000);
      expect((await call(sn, '/api/now/table/incident', { auth: fresh })).status).toBe(200);
      now = new Date(now.getTime() + 1_000);
      expect((await call(sn, '/api/now/table/incident', { auth: fresh })).status).toBe(401);
      expect(sn.tokenRequests()).toBe(3);
      expect(JSON.stringify(sn.requests)).not.toContain(String(refreshed.json.access_token));
    });
  });
});

describe('fake ServiceNow: programmed failures', () => {
  it('429 carries Retry-After, X-RateLimit-* and the docs\' body verbatim', () =>
    withFake({}, async (sn) => {
      sn.failNext(1, { status: 429, retryAfterSeconds: 7, rateLimitResetEpochSeconds: 1_800_000_000 });
      const limited = await call(sn, '/api/now/table/incident');
      expect(limited.status).toBe(429);
      expect(limited.text).toBe(fixture('servicenow_rate_limit_429_body_docs.json'));
      expect(limited.headers.get('retry-after')).toBe('7');
      expect(limited.headers.get('x-ratelimit-limit')).toBe('100');
      expect(limited.headers.get('x-ratelimit-reset')).toBe('1800000000');
      expect(limited.headers.get('x-ratelimit-rule')).toMatch(/^[0-9a-f]{32}$/);
      expect((await call(sn, '/api/now/table/incident')).status).toBe(200);
    }));

  it('5xx answers a ServiceNow error body; failAlways holds until cleared', () =>
    withFake({}, async (sn) => {
      sn.failNext(1, { status: 503 });
      const failed = await call(sn, '/api/now/table/incident');
      expect(failed.status).toBe(503);
      expect(failed.json).toMatchObject({ error: { message: 'Service Unavailable' }, status: 'failure' });
      sn.failAlways({ status: 500 }, { pathPrefix: '/api/now/attachment' });
      expect((await call(sn, '/api/now/attachment')).status).toBe(500);
      expect((await call(sn, '/api/now/attachment')).status).toBe(500);
      expect((await call(sn, '/api/now/table/incident')).status).toBe(200);
      sn.failAlways(undefined, { pathPrefix: '/api/now/attachment' });
      expect((await call(sn, '/api/now/attachment')).status).toBe(200);
    }));

  it('reset destroys the socket; delay answers late but normally', () =>
    withFake({}, async (sn) => {
      sn.failNext(1, { kind: 'reset' });
      await expect(call(sn, '/api/now/table/incident')).rejects.toThrow();
      sn.failNext(1, { kind: 'delay', ms: 20 });
      expect((await call(sn, '/api/now/table/incident')).status).toBe(200);
      expect(sn.requests.map((r) => r.status)).toEqual([0, 200]);
      expect(sn.requests[1]?.failure).toEqual({ kind: 'delay', ms: 20 });
    }));

  it('failNext counts only the requests its match selects', () =>
    withFake({}, async (sn) => {
      sn.failNext(2, { status: 502 }, { method: 'get', pathPrefix: '/api/now/table/incident' });
      expect((await call(sn, '/api/now/table/problem')).status).toBe(200);
      expect((await call(sn, '/api/now/table/incident', { method: 'POST', body: { short_description: 'x' } })).status).toBe(201);
      expect((await call(sn, '/api/now/table/incident')).status).toBe(502);
      expect((await call(sn, '/api/now/table/incident')).status).toBe(502);
      expect((await call(sn, '/api/now/table/incident')).status).toBe(200);
      sn.setPageLatency(5);
      expect((await call(sn, '/api/now/table/incident')).status).toBe(200);
    }));
});

describe('fake ServiceNow: writes, journal, attachments', () => {
  it('POST / PATCH / PUT write records; work_notes and comments become journal entries', async () => {
    let now = T('2026-04-01 08:00:00');
    await withFake({ now: () => now }, async (sn) => {
      const created = await call(sn, '/api/now/table/incident', {
        method: 'POST',
        body: { short_description: 'Disk full', caller_id: '46c6f9efa9fe198101ddf5eed9adf6e7', work_notes: 'first note', sys_mod_count: '99', urgency: 2 },
      });
      expect(created.status).toBe(201);
      const record = one(created.json);
      expect(record).toMatchObject({ short_description: 'Disk full', work_notes: '', sys_mod_count: '0', urgency: '2', sys_created_by: 'admin', sys_created_on: '2026-04-01 08:00:00' });
      expect(record.caller_id).toEqual({ link: `${sn.url}/api/now/table/sys_user/46c6f9efa9fe198101ddf5eed9adf6e7`, value: '46c6f9efa9fe198101ddf5eed9adf6e7' });
      const id = fieldValue(record.sys_id);

      now = T('2026-04-01 09:30:00');
      const grant = await token(sn, { grant_type: 'client_credentials', ...CLIENT });
      const patched = await call(sn, `/api/now/table/incident/${id}?sysparm_exclude_reference_link=true`, {
        method: 'PATCH', auth: `Bearer ${String(grant.json.access_token)}`, body: { state: '2', comments: 'seen by the customer' },
      });
      expect(patched.status).toBe(200);
      expect(one(patched.json)).toMatchObject({ state: '2', comments: '', sys_mod_count: '1', sys_updated_on: '2026-04-01 09:30:00', sys_updated_by: CLIENT.client_id, caller_id: '46c6f9efa9fe198101ddf5eed9adf6e7' });
      const put = await call(sn, `/api/now/table/incident/${id}`, { method: 'PUT', body: { work_notes: 'fixed', state: '6' } });
      expect(one(put.json)).toMatchObject({ state: '6', sys_mod_count: '2', sys_updated_by: 'admin' });
      expect(sn.journal('incident', id)).toEqual([
        { element: 'work_notes', value: 'first note', at: '2026-04-01 08:00:00', by: 'admin' },
        { element: 'comments', value: 'seen by the customer', at: '2026-04-01 09:30:00', by: CLIENT.client_id },
        { element: 'work_notes', value: 'fixed', at: '2026-04-01 09:30:00', by: 'admin' },
      ]);
      expect(sn.get('incident', id)).toMatchObject({ work_notes: '', comments: '', state: '6' });

      expect((await call(sn, '/api/now/table/incident/0123456789abcdef0123456789abcdef', { method: 'PATCH', body: { state: '2' } })).json).toEqual(ERROR_NO_RECORD);
      const bad = await fetch(`${sn.url}/api/now/table/incident`, { method: 'POST', headers: { authorization: basic(), 'content-type': 'application/json' }, body: '{nope' });
      expect(bad.status).toBe(400);
      expect((await call(sn, `/api/now/table/incident/${id}`, { method: 'DELETE' })).status).toBe(204);
      expect(sn.count('incident')).toBe(0);
    });
  });

  it('attachments: listed by table_name / table_sys_id in the docs\' shape, downloaded as bytes', () =>
    withFake({}, async (sn) => {
      const a = fieldValue(sn.insert('incident', { short_description: 'a' }).sys_id);
      const b = fieldValue(sn.insert('incident', { short_description: 'b' }).sys_id);
      const content = Buffer.from('%PDF-1.7 evidence');
      const { sysId } = sn.attach('incident', a, { fileName: 'evidence.pdf', contentType: 'application/pdf', content });
      sn.attach('incident', b, { fileName: 'other.txt', contentType: 'text/plain', content: Buffer.from('x') });

      const listed = await call(sn, `/api/now/attachment?sysparm_query=${encodeURIComponent(`table_name=incident^table_sys_id=${a}`)}`);
      const result = (listed.json as { result: Record<string, string>[] }).result;
      expect(result).toHaveLength(1);
      expect(Object.keys(result[0] ?? {})).toEqual(Object.keys(DOCS_ATTACHMENT_EXAMPLE));
      expect(result[0]).toMatchObject({ sys_id: sysId, file_name: 'evidence.pdf', content_type: 'application/pdf', size_bytes: String(content.length), table_name: 'incident', table_sys_id: a });
      const link = String(result[0]?.download_link);
      expect(link).toBe(`${sn.url}/api/now/attachment/${sysId}/file`);

      const file = await fetch(link, { headers: { authorization: basic() } });
      expect(file.status).toBe(200);
      expect(file.headers.get('content-type')).toBe('application/pdf');
      expect(Buffer.from(await file.arrayBuffer())).toEqual(content);
      expect(JSON.parse(file.headers.get('x-attachment-metadata') ?? '{}')).toMatchObject({ file_name: 'evidence.pdf' });
      expect((await fetch(link)).status).toBe(401);

      const upload = await fetch(`${sn.url}/api/now/attachment/file?table_name=incident&table_sys_id=${b}&file_name=log.txt`, {
        method: 'POST', headers: { authorization: basic(), 'content-type': 'text/plain' }, body: 'log lines',
      });
      expect(upload.status).toBe(201);
      const all = await call(sn, `/api/now/attachment?sysparm_query=${encodeURIComponent(`table_sys_id=${b}^ORDERBYfile_name`)}`);
      expect((all.json as { result: { file_name: string }[] }).result.map((r) => r.file_name)).toEqual(['log.txt', 'other.txt']);
      expect((await call(sn, '/api/now/attachment/0123456789abcdef0123456789abcdef/file')).status).toBe(404);
    }));
});
