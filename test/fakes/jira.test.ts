/**
 * Self-test of the fake Jira (./jira/server.ts): real HTTP to its three hosts with fetch, answers compared with the
 * payloads in test/fixtures/jira/ key by key, keyset paging over thousands of issues, JQL dates in a west-of-UTC
 * zone, Data Center mode, 3LO with rotating refresh tokens, the gateway, per-issue write limits, programmed
 * failures, writes, bulkfetch, agile, and the webhook emitter (signature test vector, retries).
 */
import { describe, expect, it } from 'vitest';
import { manualClock } from '../support/clock.ts';
import {
  CHANGE_2046_BODY,
  FIXTURE_SEARCH_JQL,
  FIXTURE_SEARCH_LEGACY,
  FIXTURE_SEARCH_SCHEMA,
  FIXTURE_WEBHOOK_UPDATED,
} from './jira/fixtures.ts';
import { hubSignature, startFakeJira, type FakeJira, type FakeJiraOptions } from './jira/server.ts';
import { startWebhookReceiver } from './webhook-receiver.ts';

type Json = Record<string, any>;
const BASIC = `Basic ${Buffer.from('px-bot@example.com:api-token-secret').toString('base64')}`;
const T = (iso: string): Date => new Date(iso);
const keys = (o: unknown): string[] => Object.keys(o as object).sort();

async function withFake(options: FakeJiraOptions, run: (jira: FakeJira) => Promise<void>): Promise<void> {
  const jira = await startFakeJira(options);
  try {
    await run(jira);
  } finally {
    await jira.close();
  }
}

interface Call {
  method?: string;
  auth?: string | null;
  body?: unknown;
  base?: string;
  headers?: Record<string, string>;
  form?: Record<string, string>;
}
async function call(jira: FakeJira, path: string, init: Call = {}) {
  const headers: Record<string, string> = { ...init.headers };
  const auth = init.auth === undefined ? BASIC : init.auth;
  if (auth !== null) headers.authorization = auth;
  let body: string | undefined;
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(init.form).toString();
  } else if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
  }
  const res = await fetch(`${init.base ?? jira.url}${path}`, { method: init.method ?? 'GET', headers, redirect: 'manual', ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let parsed: any;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: parsed as Json };
}
const q = (params: Record<string, string | number>): string => new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)])).toString();
async function search(jira: FakeJira, params: Record<string, string | number>, init: Call = {}) {
  return call(jira, `/rest/api/3/search/jql?${q(params)}`, init);
}
/** Every page of a search/jql query: the issues in order, and how many pages it took. */
async function pageAll(jira: FakeJira, params: Record<string, string | number>, between?: (page: number) => void) {
  const issues: Json[] = [];
  let token: string | undefined;
  let pages = 0;
  for (;;) {
    const res = await search(jira, { ...params, ...(token ? { nextPageToken: token } : {}) });
    expect(res.status, res.text).toBe(200);
    pages++;
    issues.push(...(res.json.issues as Json[]));
    expect('total' in res.json).toBe(false);
    if (res.json.isLast) {
      expect('nextPageToken' in res.json).toBe(false);
      return { issues, pages };
    }
    token = res.json.nextPageToken as string;
    between?.(pages);
  }
}

describe('fake Jira: wire shapes', () => {
  it('search/jql issues have the fixture\'s envelope and field shapes; the default fields are id only', () =>
    withFake({}, async (jira) => {
      const lead = jira.addUser({ emailAddress: 'mia@example.com', displayName: 'Mia Krystof' });
      const epic = jira.createIssue({ project: 'SEC', summary: 'Epic', issuetype: 'Epic' });
      const issue = jira.createIssue({
        project: 'SEC', summary: 'Main order flow broken', description: 'Main order flow broken', parent: epic.key, assignee: lead.accountId,
        labels: ['px'], duedate: '2026-12-01', priority: 'High', created: T('2021-01-17T12:34:00Z'), customFields: { customfield_10016: 5 },
      });
      jira.addComment(issue.key, 'Lorem ipsum', { by: lead.accountId });
      jira.addAttachment(issue.key, { filename: 'debuglog.txt', mimeType: 'text/plain', content: Buffer.from('log') });

      const ids = await search(jira, { jql: `key = ${issue.key}` });
      expect(ids.json).toEqual({ issues: [{ id: issue.id }], isLast: true });
      expect(ids.headers.get('content-type')).toBe('application/json;charset=UTF-8');

      const res = await search(jira, { jql: `key = ${issue.key}`, fields: '*all' });
      for (const key of Object.keys(res.json)) expect(Object.keys(FIXTURE_SEARCH_SCHEMA.SearchAndReconcileResults.properties)).toContain(key);
      const fixture = FIXTURE_SEARCH_JQL.issues[0]!;
      const legacy = FIXTURE_SEARCH_LEGACY.issues[0]!;
      const got = res.json.issues[0] as Json;
      expect(keys(got)).toEqual(keys(fixture));
      expect(Object.keys(got)).toEqual(Object.keys(legacy)); // the real answer's key order
      expect(got.self).toBe(`${jira.url}/rest/api/3/issue/${issue.id}`);
      const f = got.fields as Json;
      const ff = fixture.fields as Json;
      // project: every fixture key the fake models (not insight / projectCategory / style), avatar sizes identical
      for (const k of ['avatarUrls', 'id', 'key', 'name', 'self', 'simplified']) expect(f.project).toHaveProperty(k);
      expect(keys(f.project.avatarUrls)).toEqual(keys(ff.project.avatarUrls));
      expect(f.project.avatarUrls['48x48']).toBe(`${jira.url}/secure/projectavatar?size=large&pid=10000`);
      // attachment: the fixture's keys (author without the DC-only key/name the example carries empty)
      expect(keys(f.attachment[0])).toEqual(keys(ff.attachment[0]));
      expect(keys(f.attachment[0].author)).toEqual(keys(ff.attachment[0].author).filter((k) => k !== 'key' && k !== 'name').concat('emailAddress', 'timeZone').sort());
      expect(f.attachment[0].content).toBe(`${jira.url}/rest/api/3/attachment/content/${f.attachment[0].id}`);
      // comment: the page object; each comment has the fixture comment's keys (no visibility set) plus jsdPublic
      expect(keys(f.comment)).toEqual(['comments', 'maxResults', 'self', 'startAt', 'total']);
      expect(keys(f.comment.comments[0])).toEqual([...keys(ff.comment[0]).filter((k) => k !== 'visibility'), 'jsdPublic'].sort());
      expect(f.comment.comments[0].body).toEqual({ type: 'doc', version: 1, content: [{ type: 'paragraph', content: [{ type: 'text', text: 'Lorem ipsum' }] }] });
      // description: the legacy example's ADF document, with our text
      expect(f.description).toEqual({ ...(legacy.fields as Json).description, content: [{ type: 'paragraph', content: [{ type: 'text', text: 'Main order flow broken' }] }] });
      expect(f.created).toBe('2021-01-17T12:34:00.000+0000');
      expect(f.updated).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$/);
      expect(f.status).toEqual({
        self: `${jira.url}/rest/api/3/status/10000`, description: '', iconUrl: `${jira.url}/`, name: 'To Do', id: '10000',
        statusCategory: { self: `${jira.url}/rest/api/3/statuscategory/2`, id: 2, key: 'new', colorName: 'blue-gray', name: 'To Do' },
      });
      expect(f.assignee).toMatchObject({ accountId: lead.accountId, emailAddress: 'mia@example.com', displayName: 'Mia Krystof', active: true, accountType: 'atlassian', timeZone: 'UTC' });
      expect(keys(f.assignee.avatarUrls)).toEqual(keys(ff.attachment[0].author.avatarUrls));
      expect(f.priority).toEqual({ self: `${jira.url}/rest/api/3/priority/2`, iconUrl: `${jira.url}/images/icons/priorities/high.svg`, name: 'High', id: '2' });
      expect(f.issuetype).toMatchObject({ name: 'Task', subtask: false, hierarchyLevel: 0 });
      expect(f.parent).toMatchObject({ id: epic.id, key: epic.key, fields: { summary: 'Epic', issuetype: { name: 'Epic', hierarchyLevel: 1 } } });
      expect(f).toMatchObject({ labels: ['px'], duedate: '2026-12-01', customfield_10016: 5, summary: 'Main order flow broken' });

      const v2 = await call(jira, `/rest/api/2/search/jql?${q({ jql: `key = ${issue.key}`, fields: 'description,comment,-comment,summary' })}`);
      expect(v2.json.issues[0].fields).toEqual({ description: 'Main order flow broken', summary: 'Main order flow broken' });
      const one = await call(jira, `/rest/api/3/issue/${issue.key.toLowerCase()}?fields=summary,status`);
      expect(Object.keys(one.json.fields)).toEqual(['summary', 'status']);
      const hidden = jira.addUser({ emailAddress: null, displayName: 'Private Person' });
      jira.updateIssue(issue.key, { assignee: hidden.accountId });
      expect((await call(jira, `/rest/api/3/issue/${issue.key}?fields=assignee`)).json.fields.assignee).not.toHaveProperty('emailAddress');
    }));

  it('myself, field, status, user search', () =>
    withFake({ timeZone: 'Australia/Sydney' }, async (jira) => {
      const me = await call(jira, '/rest/api/3/myself');
      expect(me.json).toMatchObject({ accountId: jira.apiUser.accountId, emailAddress: 'px-bot@example.com', timeZone: 'Australia/Sydney', accountType: 'atlassian' });
      const fields = (await call(jira, '/rest/api/3/field')).json as unknown as Json[];
      expect(fields.find((x) => x.id === 'customfield_10016')).toMatchObject({ name: 'Story point estimate', custom: true, schema: { type: 'number' } });
      expect(((await call(jira, '/rest/api/3/status')).json as unknown as Json[]).map((s) => s.name)).toEqual(['To Do', 'In Progress', 'In Review', 'Done', "Won't Do"]);
      jira.addUser({ emailAddress: 'ann@example.com', displayName: 'Ann Lee' });
      const found = (await call(jira, '/rest/api/3/user/search?query=ann%40example.com')).json as unknown as Json[];
      expect(found.map((u) => u.displayName)).toEqual(['Ann Lee']);
    }));
});

describe('fake Jira: search/jql paging', () => {
  it('5,000 issues, 1,000 sharing one updated ms: every issue once, in (updated, id) order, both directions', () =>
    withFake({}, async (jira) => {
      const t0 = T('2026-01-01T00:00:00Z').getTime();
      const at = (i: number): number => (i < 2000 ? t0 + i : i < 3000 ? t0 + 5000 : t0 + 5000 + i);
      jira.createIssues(5000, (i) => ({ project: i % 2 ? 'SEC' : 'OPS', summary: `issue ${i}`, updated: new Date(at(i)) }));
      const expected = Array.from({ length: 5000 }, (_, i) => i).sort((a, b) => at(a) - at(b) || a - b).map((i) => String(10000 + i));

      const asc = await pageAll(jira, { jql: `project in (SEC, OPS) AND updated >= ${t0} ORDER BY updated ASC, id ASC`, fields: 'updated', maxResults: 100 });
      expect(asc.pages).toBe(50);
      expect(asc.issues.map((i) => i.id)).toEqual(expected);

      const byId = await pageAll(jira, { jql: `updated >= ${t0} ORDER BY updated ASC`, maxResults: 777 });
      expect(byId.issues.map((i) => i.id)).toEqual(expected);
      // updated DESC with the id ASC tie-break; and the created fallback path agrees with a plain sort
      const desc = await pageAll(jira, { jql: `updated >= ${t0} ORDER BY updated DESC`, maxResults: 333 });
      expect(desc.issues.map((i) => i.id)).toEqual(Array.from({ length: 5000 }, (_, i) => i).sort((a, b) => at(b) - at(a) || a - b).map((i) => String(10000 + i)));
      const created = await pageAll(jira, { jql: `project = SEC ORDER BY created DESC, key DESC`, maxResults: 999 });
      expect(created.issues.map((i) => i.id)).toEqual(expected.filter((id) => Number(id) % 2 === 1).sort((a, b) => Number(b) - Number(a)));

      // caps: 100 a page with fields, 5000 with ids only; 1-5000 accepted
      expect((await search(jira, { jql: 'project = SEC', fields: 'summary', maxResults: 1000 })).json.issues).toHaveLength(100);
      expect((await search(jira, { jql: 'project = SEC', fields: 'id,key', maxResults: 5000 })).json.issues).toHaveLength(2500);
      expect((await search(jira, { jql: 'project = SEC', maxResults: 5001 })).status).toBe(400);
      expect((await search(jira, { jql: 'project = SEC', maxResults: 'x' })).json).toMatchObject({ title: 'Bad Request', detail: "Failed to convert 'maxResults' with value: 'x'" });
      const count = await call(jira, '/rest/api/3/search/approximate-count', { method: 'POST', body: { jql: `project = SEC AND updated >= ${t0 + 5000}` } });
      expect(count.json).toEqual({ count: 1500 });
    }));

  it('an issue changed between pages moves in the order; the others are still served exactly once', () =>
    withFake({}, async (jira) => {
      const t0 = T('2026-01-01T00:00:00Z').getTime();
      jira.createIssues(300, (i) => ({ project: 'SEC', summary: `s${i}`, updated: new Date(t0 + Math.floor(i / 3)) }));
      const jql = `project = SEC AND updated >= ${t0} ORDER BY updated ASC, id ASC`;
      const { issues } = await pageAll(jira, { jql, maxResults: 100 }, (page) => {
        if (page === 1) {
          jira.updateIssue('SEC-10', { summary: 'served, then changed' }, { at: new Date(t0 + 10_000) });
          jira.updateIssue('SEC-250', { summary: 'not served yet, changed' }, { at: new Date(t0 + 20_000) });
        }
      });
      const ids = issues.map((i) => i.id);
      expect(ids).toHaveLength(301);
      expect(new Set(ids).size).toBe(300);
      expect(ids.filter((id) => id === '10009')).toHaveLength(2); // SEC-10: once before, once after its change
      expect(ids.slice(-2)).toEqual(['10009', '10249']);
    }));

  it('tokens: bound to their JQL, expire after 7 days, unreadable ones refused', async () => {
    const clock = manualClock('2026-03-01T00:00:00Z');
    await withFake({ now: () => clock.now() }, async (jira) => {
      jira.createIssues(10, (i) => ({ project: 'SEC', summary: `s${i}` }));
      const first = await search(jira, { jql: 'project = SEC ORDER BY id ASC', maxResults: 3 });
      const token = first.json.nextPageToken as string;
      expect(first.json.isLast).toBe(false);
      expect((await search(jira, { jql: 'project = OPS ORDER BY id ASC', nextPageToken: token })).status).toBe(400);
      expect((await search(jira, { jql: 'project = SEC ORDER BY id ASC', nextPageToken: 'garbage' })).status).toBe(400);
      const post = await call(jira, '/rest/api/3/search/jql', { method: 'POST', body: { jql: 'project = SEC ORDER BY id ASC', nextPageToken: token, maxResults: 3, fields: ['summary'] } });
      expect(post.json.issues.map((i: Json) => i.key)).toEqual(['SEC-4', 'SEC-5', 'SEC-6']);
      clock.advance(7 * 86_400_000 + 1);
      expect((await search(jira, { jql: 'project = SEC ORDER BY id ASC', nextPageToken: token })).status).toBe(400);
    });
  });

  it('100,000 issues: bulk created fast, paged 5,000 ids at a time', () =>
    withFake({}, async (jira) => {
      const t0 = T('2026-01-01T00:00:00Z').getTime();
      const started = performance.now();
      jira.createIssues(100_000, (i) => ({ project: 'SEC', summary: `bulk ${i}`, labels: ['bulk'], updated: new Date(t0 + Math.floor(i / 7) * 1000) }));
      expect(performance.now() - started).toBeLessThan(3000);
      const { issues, pages } = await pageAll(jira, { jql: `project = SEC AND updated >= ${t0} ORDER BY updated ASC, id ASC`, maxResults: 5000 });
      expect(pages).toBe(20);
      expect(new Set(issues.map((i) => i.id)).size).toBe(100_000);
    }));
});

describe('fake Jira: JQL', () => {
  it('refuses unbounded JQL, unknown fields and values, bad syntax, as Jira words them', () =>
    withFake({}, async (jira) => {
      const unbounded = await search(jira, { jql: 'order by key desc' });
      expect(unbounded.status).toBe(400);
      expect(unbounded.text).toBe('{"errorMessages":["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."],"errors":{}}');
      expect((await search(jira, {})).json).toEqual(unbounded.json);
      expect((await search(jira, { jql: 'colour = red' })).json).toEqual({ errorMessages: ["Field 'colour' does not exist or you do not have permission to view it."], errors: {} });
      expect((await search(jira, { jql: 'project = NOPE' })).json.errorMessages).toEqual(["The value 'NOPE' does not exist for the field 'project'."]);
      expect((await search(jira, { jql: 'project = SEC AND (status = Done' })).json.errorMessages).toEqual(["Error in the JQL Query: Expecting ')' before the end of the query."]);
      expect((await search(jira, { jql: 'updated >= "yesterday"' })).json.errorMessages[0]).toMatch(/^Date value 'yesterday' for field 'updated' is invalid/);
      expect((await search(jira, { jql: 'key = SEC-999' })).json.errorMessages).toEqual(["An issue with key 'SEC-999' does not exist for field 'key'."]);
    }));

  it('clauses: project, status, statusCategory, type, labels, assignee, keys and ids, AND / OR / NOT', () =>
    withFake({}, async (jira) => {
      const ann = jira.addUser({ emailAddress: 'ann@example.com', displayName: 'Ann' });
      jira.createIssue({ project: 'SEC', summary: 'a', labels: ['x'], status: 'In Progress', assignee: ann.accountId });
      jira.createIssue({ project: 'SEC', summary: 'b', labels: ['y'], status: 'Done', issuetype: 'Epic' });
      jira.createIssue({ project: 'OPS', summary: 'c', status: "Won't Do", issuetype: 'Bug', assignee: ann.accountId });
      jira.createIssue({ project: 'OPS', summary: 'd', labels: ['x', 'y'] });
      const keysOf = async (jql: string): Promise<string[]> => ((await search(jira, { jql: `${jql} ORDER BY key ASC`, fields: 'key' })).json.issues as Json[]).map((i) => i.key as string);
      expect(await keysOf('project = OPS')).toEqual(['OPS-1', 'OPS-2']);
      expect(await keysOf('PROJECT in (sec, Operations)')).toEqual(['SEC-1', 'SEC-2', 'OPS-1', 'OPS-2']); // key order is id order
      expect(await keysOf('statusCategory = Done')).toEqual(['SEC-2', 'OPS-1']);
      expect(await keysOf('statusCategory in ("In Progress", new)')).toEqual(['SEC-1', 'OPS-2']);
      expect(await keysOf('status = "in progress" OR type = Epic')).toEqual(['SEC-1', 'SEC-2']);
      expect(await keysOf('labels = x AND NOT labels = y')).toEqual(['SEC-1']);
      expect(await keysOf('labels != x')).toEqual(['SEC-2']); // an empty field never matches !=
      expect(await keysOf('labels is EMPTY')).toEqual(['OPS-1']);
      expect(await keysOf(`assignee = ${ann.accountId} AND issuetype = Bug`)).toEqual(['OPS-1']);
      expect(await keysOf('assignee is EMPTY and project = SEC')).toEqual(['SEC-2']);
      expect(await keysOf('key in (SEC-2, OPS-2) or id = 10000')).toEqual(['SEC-1', 'SEC-2', 'OPS-2']);
      expect(await keysOf('issuekey > SEC-2')).toEqual(['OPS-1', 'OPS-2']);
      expect(await keysOf('summary ~ "B" or priority in (High, 1)')).toEqual(['SEC-2']);
      expect(await keysOf('project = SEC and text !~ a')).toEqual(['SEC-2']);
      expect((await search(jira, { jql: 'resolution is EMPTY' })).json.errorMessages[0]).toMatch(/^The fake Jira does not model the JQL field 'resolution'/);
      expect((await search(jira, { jql: 'summary = b' })).json.errorMessages).toEqual(["The operator '=' is not supported by the 'summary' field."]);
    }));

  it('quoted dates are minutes in the user\'s zone (America/Los_Angeles); epoch ms are exact; timestamps carry the offset', async () => {
    const clock = manualClock('2021-01-17T13:00:00Z');
    const stamps = ['2021-01-17T12:33:59.999Z', '2021-01-17T12:34:00.000Z', '2021-01-17T12:34:30.000Z', '2021-01-17T12:35:00.000Z'];
    const run = async (options: FakeJiraOptions, check: (ids: (jql: string) => Promise<string[]>, jira: FakeJira) => Promise<void>) =>
      withFake({ now: () => clock.now(), timeZone: 'America/Los_Angeles', ...options }, async (jira) => {
        for (const [i, s] of stamps.entries()) jira.createIssue({ project: 'SEC', summary: `t${i}`, updated: T(s), created: T(s) });
        await check(async (jql) => ((await search(jira, { jql: `${jql} ORDER BY updated ASC`, fields: 'summary' })).json.issues as Json[]).map((i) => i.fields.summary as string), jira);
      });
    await run({}, async (ids, jira) => {
      expect(await ids('updated >= "2021/01/17 04:34"')).toEqual(['t1', 't2', 't3']);
      expect(await ids('updated >= "2021-01-17 04:35"')).toEqual(['t3']);
      expect(await ids('updated = "2021/01/17 04:34"')).toEqual(['t1', 't2']);
      expect(await ids('updated >= "2021/01/17 12:34"')).toEqual([]); // read in the zone, not UTC
      expect(await ids('updated < "2021-01-17"')).toEqual([]);
      expect(await ids('created >= "2021-01-17"')).toEqual(['t0', 't1', 't2', 't3']);
      expect(await ids(`updated >= ${T(stamps[1]!).getTime()}`)).toEqual(['t1', 't2', 't3']);
      expect(await ids(`updated > ${T(stamps[1]!).getTime()}`)).toEqual(['t2', 't3']);
      expect(await ids(`updated >= ${T(stamps[2]!).getTime()}`)).toEqual(['t2', 't3']);
      expect(await ids('updated >= -26m')).toEqual(['t1', 't2', 't3']);
      const one = await search(jira, { jql: 'project = SEC ORDER BY updated ASC', fields: 'updated,created', maxResults: 1 });
      expect(one.json.issues[0].fields.updated).toBe('2021-01-17T04:33:59.999-0800');
      expect((await call(jira, '/rest/api/3/myself')).json.timeZone).toBe('America/Los_Angeles');
    });
    await run({ epochPrecision: 'minute' }, async (ids) => {
      expect(await ids(`updated >= ${T(stamps[2]!).getTime()}`)).toEqual(['t1', 't2', 't3']);
    });
  });
});

describe('fake Jira: removed endpoints and Data Center', () => {
  it('Cloud answers the old search endpoints 410 with the CHANGE-2046 body, verbatim', () =>
    withFake({}, async (jira) => {
      const text = JSON.stringify(CHANGE_2046_BODY);
      for (const [method, path] of [['GET', '/rest/api/3/search?jql=project=SEC'], ['POST', '/rest/api/3/search'], ['GET', '/rest/api/2/search'], ['POST', '/rest/api/2/search'], ['POST', '/rest/api/3/search/id']] as const) {
        const res = await call(jira, path, { method, ...(method === 'POST' ? { body: { jql: 'project = SEC' } } : {}) });
        expect([path, res.status, res.text]).toEqual([path, 410, text]);
      }
      expect(text).toContain('https://developer.atlassian.com/changelog/#CHANGE-2046');
      const none = await call(jira, '/rest/api/3/nope');
      expect(none.status).toBe(404);
      expect(none.json).toEqual({ type: 'about:blank', title: 'Not Found', status: 404, detail: 'No endpoint GET /rest/api/3/nope.', instance: '/rest/api/3/nope' });
      expect((await call(jira, '/rest/api/3/myself', { method: 'DELETE' })).headers.get('allow')).toBe('GET');
    }));

  it('DC: Bearer PAT only, /rest/api/2/search with startAt and total (legacy fixture envelope), no v3', () =>
    withFake({ mode: 'dc' }, async (jira) => {
      const pat = { auth: 'Bearer dc-pat-secret' };
      jira.createIssues(120, (i) => ({ project: 'SEC', summary: `dc ${i}`, description: `d${i}` }));
      const res = await call(jira, `/rest/api/2/search?${q({ jql: 'project = SEC ORDER BY key ASC', startAt: 100, maxResults: 50, fields: 'summary,description' })}`, pat);
      expect(res.status).toBe(200);
      expect(Object.keys(res.json)).toEqual(Object.keys(FIXTURE_SEARCH_LEGACY).filter((k) => k !== 'warningMessages'));
      expect(res.json).toMatchObject({ startAt: 100, maxResults: 50, total: 120 });
      expect(res.json.issues).toHaveLength(20);
      expect(res.json.issues[0]).toMatchObject({ key: 'SEC-101', self: `${jira.url}/rest/api/2/issue/10100`, fields: { summary: 'dc 100', description: 'd100' } });
      expect(Object.keys(res.json.issues[0])).toEqual(Object.keys(FIXTURE_SEARCH_LEGACY.issues[0]!));
      const post = await call(jira, '/rest/api/2/search', { method: 'POST', body: { jql: '', maxResults: 5000 }, ...pat });
      expect(post.json).toMatchObject({ maxResults: 1000, total: 120 });
      expect((await call(jira, '/rest/api/2/search', { auth: `Basic ${Buffer.from('px-bot:dc-pat-secret').toString('base64')}` })).status).toBe(401);
      expect((await call(jira, '/rest/api/3/search/jql?jql=project=SEC', pat)).status).toBe(404);
      expect((await call(jira, '/rest/api/2/search/jql?jql=project=SEC', pat)).status).toBe(404);
      const me = await call(jira, '/rest/api/2/myself', pat);
      expect(me.json).toMatchObject({ name: 'px-bot', key: 'JIRAUSER10001', emailAddress: 'px-bot@example.com' });
      expect(me.json).not.toHaveProperty('accountId');
      expect(jira.requests.map((r) => r.auth)).toEqual(['pat', 'pat', 'basic', 'pat', 'pat', 'pat']);
    }));
});

describe('fake Jira: authentication, 3LO and the gateway', () => {
  it('Cloud site: 401 without or with wrong credentials; an unknown Bearer is a Connect-token 403; no secret is logged', () =>
    withFake({}, async (jira) => {
      const none = await call(jira, '/rest/api/3/myself', { auth: null, headers: { accept: 'application/json' } });
      expect([none.status, none.text]).toEqual([401, 'Client must be authenticated to access this resource.']);
      const post = await call(jira, '/rest/api/3/issue', { method: 'POST', auth: `Basic ${Buffer.from('px-bot@example.com:wrong').toString('base64')}`, body: {} });
      expect(post.json).toEqual({ errorMessages: ['You are not authenticated. Authentication required to perform this operation.'], errors: {} });
      const bearer = await call(jira, '/rest/api/3/myself', { auth: 'Bearer not-a-token' });
      expect([bearer.status, bearer.json]).toEqual([403, { error: 'Failed to parse Connect Session Auth Token' }]);
      expect(jira.requests.map((r) => r.auth)).toEqual(['none', 'basic', 'invalid']);
      expect(JSON.stringify(jira.requests)).not.toMatch(/api-token-secret|wrong|not-a-token/);
    }));

  it('3LO: consent, code exchange (JSON), rotating refresh (form), leeway, revocation, bad client', async () => {
    const clock = manualClock('2026-05-01T10:00:00Z');
    await withFake({ now: () => clock.now(), oauth: { accessTokenTtlSeconds: 3600 } }, async (jira) => {
      const client = { client_id: 'px-jira-client', client_secret: 'px-jira-client-secret' };
      const redirect = 'https://projectx.example/oauth/jira/callback';
      const authorize = (extra: Record<string, string> = {}) => call(jira, `/authorize?${q({
        audience: 'api.atlassian.com', client_id: client.client_id, scope: 'read:jira-work write:jira-work read:jira-user offline_access',
        redirect_uri: redirect, state: 's-123', response_type: 'code', prompt: 'consent', ...extra,
      })}`, { base: jira.authUrl, auth: null });
      const consent = await authorize();
      expect(consent.status).toBe(302);
      const location = new URL(consent.headers.get('location') ?? '');
      expect(`${location.origin}${location.pathname}`).toBe(redirect);
      expect(location.searchParams.get('state')).toBe('s-123');
      const code = location.searchParams.get('code') ?? '';
      expect((await authorize({ audience: 'elsewhere' })).status).toBe(400);
      expect((await authorize({ client_id: 'nope' })).status).toBe(400);
      expect(new URL((await authorize({ consent: 'deny' })).headers.get('location') ?? '').searchParams.get('error')).toBe('access_denied');

      const token = (body: Record<string, string>, form = false) => call(jira, '/oauth/token', { method: 'POST', base: jira.authUrl, auth: null, ...(form ? { form: body } : { body }) });
      expect((await token({ grant_type: 'authorization_code', ...client, code, redirect_uri: 'https://other.example/cb' })).status).toBe(403);
      const exchanged = await token({ grant_type: 'authorization_code', ...client, code, redirect_uri: redirect });
      expect(exchanged.status).toBe(200);
      expect(keys(exchanged.json)).toEqual(['access_token', 'expires_in', 'refresh_token', 'scope', 'token_type']);
      expect(exchanged.json).toMatchObject({ expires_in: 3600, token_type: 'Bearer', scope: 'read:jira-work write:jira-work read:jira-user offline_access' });
      expect((await token({ grant_type: 'authorization_code', ...client, code, redirect_uri: redirect })).json).toEqual({ error: 'invalid_grant', error_description: 'Invalid authorization code' });

      const r1 = exchanged.json.refresh_token as string;
      const refreshed = await token({ grant_type: 'refresh_token', ...client, refresh_token: r1 }, true);
      const r2 = refreshed.json.refresh_token as string;
      expect(r2).not.toBe(r1);
      clock.advance(9 * 60_000);
      expect((await token({ grant_type: 'refresh_token', ...client, refresh_token: r1 }, true)).status).toBe(200); // inside the 10-minute leeway
      clock.advance(61_000);
      const late = await token({ grant_type: 'refresh_token', ...client, refresh_token: r1 }, true);
      expect([late.status, late.text]).toEqual([403, '{"error":"invalid_grant","error_description":"Unknown or invalid refresh token."}']);
      const r3 = (await token({ grant_type: 'refresh_token', ...client, refresh_token: r2 })).json.refresh_token as string;
      expect((await token({ grant_type: 'refresh_token', ...client, client_secret: 'wrong', refresh_token: r3 })).json).toEqual({ error: 'access_denied', error_description: 'Unauthorized' });
      jira.oauth.revokeRefreshTokens();
      expect((await token({ grant_type: 'refresh_token', ...client, refresh_token: r3 })).status).toBe(403);
      expect(jira.oauth.grants.map((g) => [g.grant, g.ok])).toEqual([
        ['authorization_code', false], ['authorization_code', true], ['authorization_code', false], ['refresh_token', true], ['refresh_token', true],
        ['refresh_token', false], ['refresh_token', true], ['refresh_token', false], ['refresh_token', false],
      ]);
      const secrets = [code, r1, r2, r3, exchanged.json.access_token as string, client.client_secret];
      const log = JSON.stringify(jira.requests);
      for (const s of secrets) expect(log).not.toContain(s);

      const noOffline = await authorize({ scope: 'read:jira-work' });
      const plain = await token({ grant_type: 'authorization_code', ...client, code: new URL(noOffline.headers.get('location') ?? '').searchParams.get('code') ?? '', redirect_uri: redirect });
      expect(plain.json).not.toHaveProperty('refresh_token');
    });
  });

  it('gateway: accessible-resources, /ex/jira/{cloudId} routing and scopes; 3LO tokens are refused on the site', () =>
    withFake({}, async (jira) => {
      const grant = async (scope: string): Promise<string> => {
        const consent = await call(jira, `/authorize?${q({ audience: 'api.atlassian.com', client_id: 'px-jira-client', scope, redirect_uri: 'http://127.0.0.1/cb', state: 's', response_type: 'code' })}`, { base: jira.authUrl, auth: null });
        const code = new URL(consent.headers.get('location') ?? '').searchParams.get('code') ?? '';
        const res = await call(jira, '/oauth/token', { method: 'POST', base: jira.authUrl, auth: null, body: { grant_type: 'authorization_code', client_id: 'px-jira-client', client_secret: 'px-jira-client-secret', code, redirect_uri: 'http://127.0.0.1/cb' } });
        return `Bearer ${res.json.access_token as string}`;
      };
      const bearer = await grant('read:jira-work read:jira-user write:jira-work');
      const resources = await call(jira, '/oauth/token/accessible-resources', { base: jira.apiUrl, auth: bearer });
      expect(resources.json).toEqual([{ id: jira.cloudId, name: 'px-fake', url: jira.url, scopes: ['read:jira-work', 'read:jira-user', 'write:jira-work'], avatarUrl: expect.any(String) }]);
      const gw = `/ex/jira/${jira.cloudId}`;
      const issue = jira.createIssue({ project: 'SEC', summary: 'via gateway' });
      const got = await call(jira, `${gw}/rest/api/3/issue/${issue.key}?fields=summary`, { base: jira.apiUrl, auth: bearer });
      expect(got.json).toMatchObject({ self: `${jira.apiUrl}${gw}/rest/api/3/issue/${issue.id}`, fields: { summary: 'via gateway' } });
      expect((await call(jira, `${gw}/rest/agile/1.0/board`, { base: jira.apiUrl, auth: bearer })).status).toBe(200);
      expect((await call(jira, `/ex/jira/00000000-0000-0000-0000-000000000000/rest/api/3/myself`, { base: jira.apiUrl, auth: bearer })).status).toBe(404);
      expect((await call(jira, `${gw}/rest/api/3/myself`, { base: jira.apiUrl })).json).toEqual({ code: 401, message: 'Unauthorized' });
      expect((await call(jira, '/rest/api/3/myself', { auth: bearer })).status).toBe(401);

      const readOnly = await grant('read:jira-work');
      expect((await call(jira, `${gw}/rest/api/3/search/jql`, { method: 'POST', base: jira.apiUrl, auth: readOnly, body: { jql: 'project = SEC' } })).status).toBe(200);
      const denied = await call(jira, `${gw}/rest/api/3/issue/${issue.key}/comment`, { method: 'POST', base: jira.apiUrl, auth: readOnly, body: { body: 'x' } });
      expect([denied.status, denied.json]).toEqual([401, { code: 401, message: 'Unauthorized; scope does not match' }]);
      jira.oauth.expireAccessTokens();
      expect((await call(jira, `${gw}/rest/api/3/myself`, { base: jira.apiUrl, auth: bearer })).status).toBe(401);
      expect(jira.requests.filter((r) => r.host === 'api').every((r) => r.auth === 'oauth' || r.auth === 'basic')).toBe(true);
    }));
});

describe('fake Jira: rate limits and programmed failures', () => {
  it('per-issue writes: the 21st in 2 s and the 101st in 30 s are refused with Atlassian\'s headers and change nothing', async () => {
    const clock = manualClock('2026-06-01T08:00:00Z');
    await withFake({ now: () => clock.now() }, async (jira) => {
      const issue = jira.createIssue({ project: 'SEC', summary: 'hot' });
      const edit = (n: number) => call(jira, `/rest/api/3/issue/${issue.key}`, { method: 'PUT', body: { fields: { summary: `v${n}` } } });
      for (let n = 1; n <= 20; n++) expect((await edit(n)).status).toBe(204);
      const refused = await edit(21);
      expect(refused.status).toBe(429);
      expect(Object.fromEntries(['retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit-reason'].map((h) => [h, refused.headers.get(h)]))).toEqual({
        'retry-after': '2', 'x-ratelimit-limit': '20', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2026-06-01T08:00Z', 'ratelimit-reason': 'jira-per-issue-on-write',
      });
      expect(refused.json.errorMessages).toHaveLength(1);
      expect(jira.issue(issue.key)).toMatchObject({ summary: 'v20', writeCount: 20 });
      expect(jira.requests.at(-1)?.rateLimitReason).toBe('jira-per-issue-on-write');
      for (let round = 0; round < 4; round++) {
        clock.advance(2_001);
        for (let n = 0; n < 20; n++) expect((await call(jira, `/rest/api/3/issue/${issue.key}/comment`, { method: 'POST', body: { body: { type: 'doc', version: 1, content: [] } } })).status).not.toBe(429);
      }
      expect(jira.writeCount(issue.key)).toBe(20); // empty ADF bodies are refused (400) and do not count
      const body = { body: { type: 'doc', version: 1, content: [{ type: 'paragraph', content: [{ type: 'text', text: 'hi' }] }] } };
      clock.set('2026-06-01T08:01:00Z');
      for (let n = 0; n < 80; n++) {
        if (n % 20 === 0) clock.advance(2_001);
        expect((await call(jira, `/rest/api/3/issue/${issue.key}/comment`, { method: 'POST', body })).status).toBe(201);
      }
      clock.advance(2_001);
      for (let n = 0; n < 20; n++) expect((await edit(100 + n)).status).toBe(204);
      clock.advance(2_001);
      const window = await edit(999);
      expect([window.status, window.headers.get('x-ratelimit-limit')]).toEqual([429, '100']);
      expect(jira.writeCount(issue.key)).toBe(120);
    });
  });

  it('programmed 429s carry Retry-After, X-RateLimit-* and RateLimit-Reason; 5xx, reset, delay; matches by host, path and JQL', async () => {
    const clock = manualClock('2026-06-01T08:00:30Z');
    await withFake({ now: () => clock.now() }, async (jira) => {
      jira.createIssue({ project: 'SEC', summary: 'x' });
      jira.failNext(1, { status: 429, reason: 'jira-burst-based' }, { pathPrefix: '/rest/api/3/search/jql' });
      const burst = await search(jira, { jql: 'project = SEC' });
      expect([burst.status, burst.headers.get('retry-after'), burst.headers.get('x-ratelimit-limit'), burst.headers.get('x-ratelimit-reset'), burst.headers.get('ratelimit-reason')])
        .toEqual([429, '1', '350', '2026-06-01T08:00Z', 'jira-burst-based']);
      jira.failNext(1, { status: 429, reason: 'jira-quota-tenant-based' }, { jqlIncludes: 'OPS' });
      expect((await search(jira, { jql: 'project = SEC' })).status).toBe(200);
      const quota = await call(jira, '/rest/api/3/search/jql', { method: 'POST', body: { jql: 'project = OPS' } });
      expect([quota.headers.get('retry-after'), quota.headers.get('x-ratelimit-limit'), quota.headers.get('x-ratelimit-reset')]).toEqual(['1847', '100000', '2026-06-01T08:31Z']);
      jira.failNext(1, { status: 429, reason: 'jira-quota-global-based', omitRetryAfter: true });
      const bare = await call(jira, '/rest/api/3/myself');
      expect([bare.status, bare.headers.has('retry-after'), bare.headers.has('x-ratelimit-reset')]).toEqual([429, false, false]);
      jira.failNext(1, { status: 503, retryAfterSeconds: 5 });
      const unavailable = await call(jira, '/rest/api/3/myself');
      expect([unavailable.status, unavailable.headers.get('retry-after'), unavailable.json.errorMessages.length]).toEqual([503, '5', 1]);
      jira.failNext(1, { kind: 'reset' }, { host: 'auth' });
      expect((await call(jira, '/rest/api/3/myself')).status).toBe(200);
      await expect(call(jira, '/oauth/token', { method: 'POST', base: jira.authUrl, body: {} })).rejects.toThrow();
      jira.failAlways({ status: 404 }, { method: 'get', pathPrefix: '/rest/api/3/issue/' });
      expect((await call(jira, '/rest/api/3/issue/SEC-1')).status).toBe(404);
      jira.failAlways(undefined);
      jira.failNext(1, { kind: 'delay', ms: 20 });
      expect((await call(jira, '/rest/api/3/issue/SEC-1')).status).toBe(200);
      expect(jira.requests.map((r) => [r.status, r.rateLimitReason ?? '-'])).toEqual([
        [429, 'jira-burst-based'], [200, '-'], [429, 'jira-quota-tenant-based'], [429, 'jira-quota-global-based'], [503, '-'], [200, '-'], [0, '-'], [404, '-'], [200, '-'],
      ]);
    });
  });
});

describe('fake Jira: writes', () => {
  it('create, edit with update verbs, transitions, assignee, comments, properties; changelog and write counts', () =>
    withFake({}, async (jira) => {
      const ann = jira.addUser({ emailAddress: 'ann@example.com', displayName: 'Ann' });
      const adf = (text: string) => ({ type: 'doc', version: 1, content: [{ type: 'paragraph', content: [{ type: 'text', text }] }] });
      const missing = await call(jira, '/rest/api/3/issue', { method: 'POST', body: { fields: { project: { key: 'SEC' }, issuetype: { name: 'Task' } } } });
      expect([missing.status, missing.json]).toEqual([400, { errorMessages: [], errors: { summary: 'You must specify a summary of the issue.' } }]);
      expect((await call(jira, '/rest/api/3/issue', { method: 'POST', body: { fields: { project: { key: 'SEC' }, issuetype: { id: '10001' }, summary: 's', description: 'plain' } } })).json.errors)
        .toEqual({ description: 'Operation value must be an Atlassian Document (see the Atlassian Document Format)' });
      const created = await call(jira, '/rest/api/3/issue', {
        method: 'POST',
        body: { fields: { project: { key: 'SEC' }, issuetype: { name: 'Bug' }, summary: 'Disk full', description: adf('details'), labels: ['px-42'], priority: { name: 'High' } }, properties: [{ key: 'projectx', value: { taskId: 42 } }] },
      });
      expect(created.status).toBe(201);
      expect(created.json).toEqual({ id: '10000', key: 'SEC-1', self: `${jira.url}/rest/api/3/issue/10000` });
      expect(jira.issue('SEC-1')).toMatchObject({ issuetype: 'Bug', description: 'details', properties: { projectx: { taskId: 42 } }, writeCount: 0 });

      const put = await call(jira, '/rest/api/3/issue/SEC-1', { method: 'PUT', body: { fields: { summary: 'Disk full on db-1' }, update: { labels: [{ add: 'sev1' }, { remove: 'px-42' }], comment: [{ add: { body: adf('on it') } }] } } });
      expect(put.status).toBe(204);
      expect((await call(jira, '/rest/api/3/issue/SEC-1', { method: 'PUT', body: { fields: { colour: 'red' } } })).json.errors)
        .toEqual({ colour: "Field 'colour' cannot be set. It is not on the appropriate screen, or unknown." });
      const transitions = await call(jira, '/rest/api/3/issue/SEC-1/transitions');
      expect(transitions.json.transitions.map((t: Json) => [t.id, t.name])).toEqual([['21', 'In Progress'], ['31', 'In Review'], ['41', 'Done'], ['51', "Won't Do"]]);
      expect(keys(transitions.json.transitions[0])).toEqual(['hasScreen', 'id', 'isAvailable', 'isConditional', 'isGlobal', 'isInitial', 'isLooped', 'name', 'to']);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/transitions', { method: 'POST', body: { transition: { id: '11' } } })).json).toEqual({ errorMessages: ["Transition id '11' is not valid for this issue."], errors: {} });
      expect((await call(jira, '/rest/api/3/issue/SEC-1/transitions', { method: 'POST', body: { transition: { id: '41' } } })).status).toBe(204);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/assignee', { method: 'PUT', body: { accountId: ann.accountId } })).status).toBe(204);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/assignee', { method: 'PUT', body: { accountId: 'nobody' } })).json.errors).toEqual({ assignee: "User 'nobody' cannot be assigned issues." });
      const comment = await call(jira, '/rest/api/2/issue/SEC-1/comment', { method: 'POST', body: { body: 'wiki *text*' } });
      expect(comment.status).toBe(201);
      expect(comment.json).toMatchObject({ body: 'wiki *text*', self: `${jira.url}/rest/api/2/issue/10000/comment/${comment.json.id as string}` });
      const comments = await call(jira, '/rest/api/3/issue/SEC-1/comment?startAt=1&maxResults=5');
      expect(comments.json).toMatchObject({ startAt: 1, maxResults: 5, total: 2 });
      expect(comments.json.comments[0].body).toEqual(adf('wiki *text*'));

      expect((await call(jira, '/rest/api/3/issue/SEC-1/properties/px.sync', { method: 'PUT', body: { v: 1 } })).status).toBe(201);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/properties/px.sync', { method: 'PUT', body: { v: 2 } })).status).toBe(200);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/properties/px.sync')).json).toEqual({ key: 'px.sync', value: { v: 2 } });
      expect((await call(jira, '/rest/api/3/issue/SEC-1/properties/px.sync', { method: 'PUT', body: { v: 'x'.repeat(32_800) } })).status).toBe(400);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/properties/px.sync', { method: 'DELETE' })).status).toBe(204);
      expect((await call(jira, '/rest/api/3/issue/SEC-1/properties/px.sync')).status).toBe(404);
      const withProps = await search(jira, { jql: 'key = SEC-1', fields: 'summary', properties: 'projectx' });
      expect(withProps.json.issues[0].properties).toEqual({ projectx: { taskId: 42 } });

      const view = jira.issue('SEC-1')!;
      expect(view).toMatchObject({ summary: 'Disk full on db-1', labels: ['sev1'], status: 'Done', statusCategory: 'done', assignee: ann.accountId, writeCount: 7 });
      expect(jira.writeCount('SEC-1')).toBe(7);
      expect(view.transitions).toEqual([expect.objectContaining({ id: '41', from: 'To Do', to: 'Done' })]);
      expect(view.changelog.flatMap((c) => c.items.map((i) => i.field))).toEqual(['summary', 'labels', 'status', 'assignee']);
      expect(view.changelog[1]!.items[0]).toEqual({ field: 'status', fieldtype: 'jira', fieldId: 'status', from: '10000', fromString: 'To Do', to: '10002', toString: 'Done' });
      expect(view.comments.map((c) => c.body)).toEqual(['on it', 'wiki *text*']);
    }));

  it('remote links upsert by globalId (201 then 200, same id); attachments 303 to the bytes or 200 with redirect=false', () =>
    withFake({}, async (jira) => {
      jira.createIssue({ project: 'SEC', summary: 'linked' });
      const link = { globalId: 'system=projectx&id=task-7', application: { type: 'projectx', name: 'ProjectX' }, relationship: 'tracked by', object: { url: 'https://px.example/t/7', title: 'Task 7' } };
      const first = await call(jira, '/rest/api/3/issue/SEC-1/remotelink', { method: 'POST', body: link });
      const second = await call(jira, '/rest/api/3/issue/SEC-1/remotelink', { method: 'POST', body: { ...link, object: { url: 'https://px.example/t/7', title: 'Task 7 (done)' } } });
      expect([first.status, second.status, second.json.id]).toEqual([201, 200, first.json.id]);
      expect(second.json.self).toBe(`${jira.url}/rest/api/3/issue/SEC-1/remotelink/${first.json.id as number}`);
      const byGlobal = await call(jira, `/rest/api/3/issue/SEC-1/remotelink?globalId=${encodeURIComponent(link.globalId)}`);
      expect(byGlobal.json).toMatchObject({ id: first.json.id, globalId: link.globalId, object: { title: 'Task 7 (done)' } });
      expect((await call(jira, '/rest/api/3/issue/SEC-1/remotelink')).json).toHaveLength(1);
      expect(jira.writeCount('SEC-1')).toBe(2);

      const { id } = jira.addAttachment('SEC-1', { filename: 'evidence.pdf', mimeType: 'application/pdf', content: Buffer.from('%PDF-1.7') });
      const redirect = await call(jira, `/rest/api/3/attachment/content/${id}`);
      expect(redirect.status).toBe(303);
      const media = await fetch(redirect.headers.get('location') ?? '');
      expect([media.status, media.headers.get('content-type'), Buffer.from(await media.arrayBuffer()).toString()]).toEqual([200, 'application/pdf', '%PDF-1.7']);
      const direct = await call(jira, `/rest/api/3/attachment/content/${id}?redirect=false`);
      expect([direct.status, direct.headers.get('content-type'), direct.text]).toEqual([200, 'application/pdf', '%PDF-1.7']);
      expect((await call(jira, `/rest/api/3/attachment/content/${id}`, { auth: null })).status).toBe(401);
    }));

  it('bulkfetch: deleted and hidden issues are in neither list; hidden ones are 404 and absent from search', () =>
    withFake({}, async (jira) => {
      for (const s of ['a', 'b', 'c']) jira.createIssue({ project: 'SEC', summary: s });
      jira.deleteIssue('SEC-2');
      jira.hideIssue('SEC-3');
      const res = await call(jira, '/rest/api/3/issue/bulkfetch', { method: 'POST', body: { issueIdsOrKeys: ['SEC-1', 'SEC-2', '10002', 'not a key!'], fields: ['summary'] } });
      expect(res.json.issues.map((i: Json) => i.key)).toEqual(['SEC-1']);
      expect(res.json.issueErrors).toEqual([{ id: 'not a key!', errorMessage: 'Invalid issue id or key: not a key!' }]);
      expect((await call(jira, '/rest/api/3/issue/SEC-3')).json).toEqual({ errorMessages: ['Issue does not exist or you do not have permission to see it.'], errors: {} });
      expect((await call(jira, '/rest/api/3/issue/SEC-2')).status).toBe(404);
      expect((await search(jira, { jql: 'project = SEC' })).json.issues).toEqual([{ id: '10000' }]);
      jira.hideIssue('SEC-3', false);
      expect((await search(jira, { jql: 'project = SEC' })).json.issues).toHaveLength(2);
      expect(jira.issue('SEC-2')).toBeUndefined();
    }));
});

describe('fake Jira: agile', () => {
  it('boards, sprints (state filter, completeDate only when closed), sprint issues, board configuration', () =>
    withFake({ timeZone: 'Australia/Sydney' }, async (jira) => {
      for (const s of ['a', 'b', 'c']) jira.createIssue({ project: 'SEC', summary: s, customFields: { customfield_10016: 3 } });
      const board = jira.addBoard({ name: 'SEC board', projectKey: 'SEC' });
      jira.addBoard({ name: 'OPS flow', projectKey: 'OPS', type: 'kanban' });
      const day = (d: number): Date => new Date(Date.UTC(2015, 3, d, 5, 22));
      const closed = jira.addSprint(board.id, { name: 'S1', state: 'closed', startDate: day(1), endDate: day(11), completeDate: day(11), goal: 'ship', issues: ['SEC-1', 'SEC-2'] });
      jira.addSprint(board.id, { name: 'S2', state: 'active', startDate: day(11), endDate: day(25), completeDate: day(30), issues: ['SEC-2', 'SEC-3'] });
      jira.addSprint(board.id, { name: 'S3', state: 'future' });
      const agile = (path: string) => call(jira, `/rest/agile/1.0${path}`);

      const boards = await agile('/board?type=scrum&projectKeyOrId=SEC');
      expect(boards.json).toMatchObject({ maxResults: 50, startAt: 0, total: 1, isLast: true, values: [{ id: board.id, name: 'SEC board', type: 'scrum', location: { projectKey: 'SEC' } }] });
      const sprints = await agile(`/board/${board.id}/sprint?state=closed,active&maxResults=1`);
      expect(sprints.json).toMatchObject({ maxResults: 1, startAt: 0, total: 2, isLast: false });
      expect(sprints.json.values[0]).toEqual({
        id: closed.id, self: `${jira.url}/rest/agile/1.0/sprint/${closed.id}`, state: 'closed', name: 'S1',
        startDate: '2015-04-01T16:22:00.000+11:00', endDate: '2015-04-11T15:22:00.000+10:00', completeDate: '2015-04-11T15:22:00.000+10:00', originBoardId: board.id, goal: 'ship',
      });
      const active = (await agile(`/board/${board.id}/sprint?state=active`)).json.values[0] as Json;
      expect(active).not.toHaveProperty('completeDate');
      expect((await agile('/board/2/sprint')).json.errorMessages).toEqual(['The board does not support sprints']);
      const issues = await agile(`/sprint/${closed.id + 1}/issue?fields=summary,sprint,closedSprints,customfield_10016`);
      expect(issues.json).toMatchObject({ startAt: 0, maxResults: 50, total: 2 });
      expect(issues.json.issues.map((i: Json) => i.key)).toEqual(['SEC-2', 'SEC-3']);
      expect(issues.json.issues[0].fields).toMatchObject({ summary: 'b', customfield_10016: 3, sprint: { name: 'S2' }, closedSprints: [{ name: 'S1' }] });
      const config = await agile(`/board/${board.id}/configuration`);
      expect(config.json.estimation).toEqual({ type: 'field', field: { fieldId: 'customfield_10016', displayName: 'Story point estimate' } });
      expect((await agile('/board/99')).status).toBe(404);
    }));
});

describe('fake Jira: webhooks', () => {
  it('X-Hub-Signature reproduces the notes\' test vector', async () => {
    expect(hubSignature("It's a Secret to Everybody", 'Hello World!')).toBe('sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9');
    const receiver = await startWebhookReceiver();
    try {
      await withFake({}, async (jira) => {
        const result = await jira.sendWebhook(receiver.url, { webhookEvent: 'jira:issue_updated', body: 'Hello World!' }, { secret: "It's a Secret to Everybody" });
        expect(result.attempts).toEqual([{ status: 204 }]);
        expect(receiver.received[0]).toMatchObject({
          body: 'Hello World!',
          headers: { 'x-hub-signature': 'sha256=a4771c39fbe90f317c7824e83ddef3caae9cb3d976c214ace1f2937e133263c9', 'x-atlassian-webhook-flow': 'Primary', 'content-type': 'application/json' },
        });
        expect(receiver.received[0]!.headers).not.toHaveProperty('x-atlassian-webhook-retry');
      });
    } finally {
      await receiver.close();
    }
  });

  it('bodies: issue_updated like the docs example, issue_deleted like the capture, issue_created and comment_created; retries keep the identifier', async () => {
    const receiver = await startWebhookReceiver();
    const clock = manualClock('2026-07-01T12:00:00Z');
    try {
      await withFake({ now: () => clock.now() }, async (jira) => {
        const issue = jira.createIssue({ project: 'SEC', summary: 'What is going on here?????', description: 'Make the issue nav load 10x faster', labels: ['UI'] });
        jira.updateIssue(issue.key, { summary: 'A new summary.' });
        receiver.answer(500, 429, 200);
        const updated = await jira.sendWebhook(receiver.url, { webhookEvent: 'jira:issue_updated', issue: issue.key }, { identifier: 'wh-1', secret: 's3' });
        expect(updated).toEqual({ identifier: 'wh-1', attempts: [{ status: 500 }, { status: 429 }, { status: 200 }] });
        expect(receiver.received.map((r) => [r.headers['x-atlassian-webhook-identifier'], r.headers['x-atlassian-webhook-retry'] ?? '-'])).toEqual([['wh-1', '-'], ['wh-1', '1'], ['wh-1', '2']]);
        const body = JSON.parse(receiver.received[0]!.body) as Json;
        expect(receiver.received[0]!.headers['x-hub-signature']).toBe(hubSignature('s3', receiver.received[0]!.body));
        expect(keys(body)).toEqual(keys(FIXTURE_WEBHOOK_UPDATED));
        expect(keys(body.changelog)).toEqual(keys(FIXTURE_WEBHOOK_UPDATED.changelog));
        expect(keys(body.changelog.items[0])).toEqual(keys((FIXTURE_WEBHOOK_UPDATED.changelog as Json).items[0]));
        expect(body.changelog.items).toEqual([{ field: 'summary', fieldtype: 'jira', from: null, fromString: 'What is going on here?????', to: null, toString: 'A new summary.' }]);
        expect(typeof body.changelog.id).toBe('number');
        expect(body).toMatchObject({ timestamp: clock.now().getTime(), webhookEvent: 'jira:issue_updated', issue_event_type_name: 'issue_generic', user: { accountId: jira.apiUser.accountId, active: true } });
        expect(keys(body.issue)).toEqual(keys((FIXTURE_WEBHOOK_UPDATED.issue as Json)));
        expect(body.issue).toMatchObject({ self: `${jira.url}/rest/api/2/issue/${issue.id}`, fields: { description: 'Make the issue nav load 10x faster', labels: ['UI'], priority: { name: 'Medium' } } });
        expect(body.user).not.toHaveProperty('emailAddress');

        receiver.answer(400);
        expect((await jira.sendWebhook(receiver.url, { webhookEvent: 'jira:issue_created', issue: issue.key })).attempts).toEqual([{ status: 400 }]);
        const created = JSON.parse(receiver.received.at(-1)!.body) as Json;
        expect(keys(created)).toEqual(['issue', 'issue_event_type_name', 'timestamp', 'user', 'webhookEvent']);

        jira.deleteIssue(issue.key);
        await jira.sendWebhook(receiver.url, { webhookEvent: 'jira:issue_deleted', issue: issue.key });
        const deleted = JSON.parse(receiver.received.at(-1)!.body) as Json;
        expect(keys(deleted)).toEqual(['issue', 'timestamp', 'user', 'webhookEvent']);
        expect(deleted.issue).toMatchObject({ id: issue.id, key: issue.key, fields: { summary: 'A new summary.' } });

        const other = jira.createIssue({ project: 'SEC', summary: 'commented' });
        const { id } = jira.addComment(other.key, 'first!');
        await jira.sendWebhook(receiver.url, { webhookEvent: 'comment_created', issue: other.key, commentId: id });
        const comment = JSON.parse(receiver.received.at(-1)!.body) as Json;
        expect(keys(comment)).toEqual(['comment', 'issue', 'timestamp', 'webhookEvent']);
        expect(comment.comment).toMatchObject({ id, body: 'first!', author: { accountId: jira.apiUser.accountId } });
        expect(keys(comment.issue.fields)).toEqual(['assignee', 'issuetype', 'priority', 'status', 'summary']);

        receiver.answer('hang', 503);
        const retried = await jira.sendWebhook(receiver.url, { webhookEvent: 'jira:issue_updated', body: {} }, { timeoutMs: 200, retryDelaysMs: [0, 0] });
        expect(retried.attempts).toEqual([{ status: 'error' }, { status: 503 }, { status: 204 }]);
        const none = await jira.sendWebhook('http://127.0.0.1:9/closed', { webhookEvent: 'x', body: {} }, { retryDelaysMs: [0, 0, 0, 0, 0] });
        expect(none.attempts).toHaveLength(6);
        expect(none.attempts.every((a) => a.status === 'error')).toBe(true);
      });
    } finally {
      await receiver.close();
    }
  });
});
