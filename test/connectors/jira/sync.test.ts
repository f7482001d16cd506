/**
 * Jira issue sync, end to end against the fake Jira (real HTTP on 127.0.0.1) and a real database: the sync
 * runner, the `(updated, id)` pull over enhanced search (Cloud) and `startAt` search (Data Center), the ledger,
 * and the remediation tasks the issues become. Each test has a Jira and an instance of its own.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JiraSettings } from '../../../src/connectors/jira/client.ts';
import { jira } from '../../../src/connectors/jira/index.ts';
import { incrementalJql } from '../../../src/connectors/jira/sync.ts';
import { issueTarget } from '../../../src/connectors/jira/mapper.ts';
import { createBreaker } from '../../../src/connectors/sdk/breaker.ts';
import type { ConnectorInstance, ConnectorRuntime } from '../../../src/connectors/sdk/contract.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv, loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { type RunSummary, runSync } from '../../../src/connectors/sdk/sync.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { routeEvent } from '../../../src/domain/routing.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { renderTask } from '../../../src/bot/render.ts';
import { getTask } from '../../../src/domain/tasks.ts';
import { type FakeJira, type FakeJiraOptions, startFakeJira } from '../../fakes/jira/server.ts';
import { type DomainFixture, domainFixture, eventsFor } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';

let fx: DomainFixture;
let runtime: ConnectorRuntime;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const EMAIL = 'px-bot@example.com';
const API_TOKEN = 'api-token-secret';
const T0 = Date.parse('2026-11-02T08:00:00Z');

const fakes: FakeJira[] = [];
beforeAll(async () => {
  fx = await domainFixture();
  runtime = { db: fx.tdb.db, logger: captureLogs().logger, clock: fx.clock, metrics: createMetrics({ defaultMetrics: false }), events: fx.deps.events };
});
afterAll(async () => {
  await Promise.all(fakes.map((fake) => fake.close()));
  await fx.close();
});

async function fakeJira(options: FakeJiraOptions = {}): Promise<FakeJira> {
  const fake = await startFakeJira({ email: EMAIL, apiToken: API_TOKEN, ...options });
  fakes.push(fake);
  return fake;
}

/** A Jira instance of its own: Cloud with an API token unless the settings say otherwise. */
async function instanceFor(fake: FakeJira, settings: Partial<JiraSettings> = {}, credentials: Record<string, string> = { api_token: API_TOKEN }): Promise<ConnectorInstance<JiraSettings>> {
  const name = `t${randomBytes(3).toString('hex')}`;
  const id = await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, {
    name,
    settings: { baseUrl: fake.url, deployment: 'cloud', authMode: 'pat', email: EMAIL, projectKeys: ['SEC', 'OPS'], pageSize: 100, ...settings },
    credentials,
  });
  return loadInstance(fx.tdb.db, keyring, jira, id!);
}

async function sync(instance: ConnectorInstance<JiraSettings>, options: { runId?: string; signal?: AbortSignal; finalAttempt?: boolean; full?: boolean } = {}): Promise<RunSummary> {
  const client = jira.createClient(instance, { ...runtime, keyring });
  try {
    return await runSync({
      runtime,
      connector: jira,
      instance,
      client,
      breaker: createBreaker({ ...runtime, instance, connector: jira, direction: 'read' }),
      request: { runId: options.runId ?? crypto.randomUUID(), model: 'issue', full: options.full ?? false, trigger: 'manual' },
      finalAttempt: options.finalAttempt ?? true,
      signal: options.signal ?? new AbortController().signal,
    });
  } finally {
    await client.close();
  }
}

/** The instance's tasks by issue id: every linked task, so a duplicate would show as two. */
async function tasksOf(instance: ConnectorInstance) {
  const rows = await fx.tdb.db
    .selectFrom('task_links')
    .innerJoin('tasks', 'tasks.id', 'task_links.task_id')
    .select(['task_links.target', 'task_links.url', 'tasks.id', 'tasks.title', 'tasks.state', 'tasks.type', 'tasks.labels', 'tasks.due_at', 'tasks.priority', 'tasks.assignee_id', 'tasks.external_assignee'])
    .where('task_links.kind', '=', 'external')
    .where('task_links.target', 'like', `jira:${instance.name}:issue:%`)
    .execute();
  return rows;
}

describe('Jira issue sync (Cloud, API token)', () => {
  it('bounds each run by epoch milliseconds and orders by (updated, id), never a quoted local time', () => {
    const settings = { projectKeys: ['SEC', 'OPS'], jqlFilter: 'labels = "compliance"' };
    expect(incrementalJql(settings, undefined)).toBe('project in ("SEC", "OPS") AND (labels = "compliance") ORDER BY updated ASC, id ASC');
    expect(incrementalJql(settings, 1_764_000_123_456)).toBe('project in ("SEC", "OPS") AND (labels = "compliance") AND updated >= 1764000123456 ORDER BY updated ASC, id ASC');
  });

  it('imports 5,000 issues (1,000 in one minute, across pages; a user west of UTC) once each, then only the 200 updated', async () => {
    const fake = await fakeJira({ timeZone: 'America/Los_Angeles', now: () => new Date(T0 + 10 * 86_400_000) });
    const shared = T0 + 3 * 3_600_000; // one minute shared by issues 2000..2999: 500 at the same millisecond, 500 within the minute
    fake.createIssues(5000, (i) => ({
      project: i % 2 ? 'SEC' : 'OPS',
      summary: `Remediate finding ${i}`,
      labels: i % 7 === 0 ? ['control:AC-2', 'pentest'] : [],
      priority: i % 3 === 0 ? 'High' : 'Medium',
      updated: new Date(i >= 2000 && i < 3000 ? shared + (i < 2500 ? 0 : (i % 60) * 1000) : T0 + i * 1000),
    }));
    const instance = await instanceFor(fake);
    const first = await sync(instance);
    expect(first).toMatchObject({ status: 'succeeded', counts: { seen: 5000, created: 5000, updated: 0, unchanged: 0, rejected: 0, pages: 50 } });
    let tasks = await tasksOf(instance);
    expect(tasks).toHaveLength(5000);
    expect(new Set(tasks.map((task) => task.target)).size).toBe(5000);
    expect(new Set(tasks.map((task) => task.id)).size).toBe(5000);
    const sample = tasks.find((task) => task.title.endsWith('Remediate finding 7'))!;
    expect(sample).toMatchObject({ type: 'remediation', state: 'open', labels: ['control:AC-2', 'pentest'], priority: 'normal' });
    expect(sample.url).toMatch(new RegExp(`^${fake.url}/browse/SEC-\\d+$`));

    // 200 updates later, 100 of them inside the shared minute's block, 50 moved to Done.
    // An hour after the last issue of the first run: a bound written as local time in a zone west of UTC
    // (read by Jira in the user's zone, 8 hours later) would miss them all.
    const later = T0 + 4 * 3_600_000;
    const updatedIds: string[] = [];
    const keys = tasks.map((task) => task.target.split(':').at(-1)!).sort((a, b) => Number(a) - Number(b));
    for (let n = 0; n < 200; n++) {
      const id = keys[n < 100 ? 2000 + n * 9 : 3000 + (n - 100) * 19]!;
      updatedIds.push(id);
      fake.updateIssue(id, { summary: `Remediate finding (edited ${n})`, ...(n % 4 === 0 ? { status: 'Done' } : {}) }, { at: new Date(later + Math.floor(n / 10) * 1000) });
    }
    const second = await sync(instance);
    expect(second).toMatchObject({ status: 'succeeded', counts: { created: 0, updated: 200, rejected: 0 } });
    expect(second.counts.unchanged).toBe(second.counts.seen - 200);
    tasks = await tasksOf(instance);
    expect(tasks).toHaveLength(5000);
    const edited = tasks.filter((task) => updatedIds.includes(task.target.split(':').at(-1)!));
    expect(edited).toHaveLength(200);
    expect(edited.every((task) => task.title.includes('(edited '))).toBe(true);
    expect(edited.filter((task) => task.state === 'done')).toHaveLength(50);

    // Nothing changed since: a third run stores nothing.
    const third = await sync(instance);
    expect(third).toMatchObject({ status: 'succeeded', counts: { created: 0, updated: 0 } });
  });

  it('resumes a run stopped between pages from its own checkpoint, storing every issue once', async () => {
    const fake = await fakeJira({ pageLatencyMs: 2 });
    fake.createIssues(1200, (i) => ({ project: 'SEC', summary: `Finding ${i}`, updated: new Date(T0 + Math.floor(i / 300) * 60_000) }));
    const instance = await instanceFor(fake);
    const runId = crypto.randomUUID();
    const stop = new AbortController();
    const searches = () => fake.requests.filter((request) => request.path.endsWith('/search/jql')).length;
    const running = sync(instance, { runId, signal: stop.signal, finalAttempt: false });
    while (searches() < 4) await tick();
    stop.abort();
    const stopped = await running;
    expect(stopped.status).toBe('deferred');
    expect(stopped.counts.created).toBeGreaterThan(0);
    expect(stopped.counts.created).toBeLessThan(1200);
    const resumed = await sync(instance, { runId });
    expect(resumed).toMatchObject({ status: 'succeeded', counts: { created: 1200, rejected: 0 } });
    expect(resumed.counts.seen).toBe(1200);
    expect(await tasksOf(instance)).toHaveLength(1200);
  });

  it('maps assignees by email (unknown ones kept as text), due dates, and the control a label names', async () => {
    const fake = await fakeJira();
    const known = await fx.user({ roles: ['viewer'] });
    const alice = fake.addUser({ displayName: 'Alice Known', emailAddress: known.email.toUpperCase() });
    const bob = fake.addUser({ displayName: 'Bob Outside', emailAddress: 'bob@vendor.example' });
    const hidden = fake.addUser({ displayName: 'Private Person', emailAddress: null });
    await fx.tdb.db.insertInto('controls').values({ id: 'AC-7', title: 'Unsuccessful logon attempts', created_at: new Date() }).onConflict((oc) => oc.doNothing()).execute();
    const a = fake.createIssue({ project: 'SEC', summary: 'Known', assignee: alice.accountId, duedate: '2026-12-31', labels: ['control-ac-7'], priority: 'Highest' });
    const b = fake.createIssue({ project: 'SEC', summary: 'Outside', assignee: bob.accountId });
    const c = fake.createIssue({ project: 'OPS', summary: 'Private', assignee: hidden.accountId, status: 'In Progress', priority: 'Low' });
    const instance = await instanceFor(fake);
    expect((await sync(instance)).counts.created).toBe(3);
    const byIssue = new Map((await tasksOf(instance)).map((task) => [task.target, task]));
    const taskA = byIssue.get(issueTarget(instance.name, a.id))!;
    expect(taskA).toMatchObject({ assignee_id: known.id, external_assignee: null, priority: 'high' });
    expect(taskA.due_at?.toISOString()).toBe('2026-12-31T23:59:59.999Z');
    const links = await fx.tdb.db.selectFrom('task_links').select(['kind', 'target']).where('task_id', '=', taskA.id).where('kind', '=', 'control').execute();
    expect(links).toEqual([{ kind: 'control', target: 'AC-7' }]);
    expect(byIssue.get(issueTarget(instance.name, b.id))).toMatchObject({ assignee_id: null, external_assignee: 'bob@vendor.example' });
    expect(byIssue.get(issueTarget(instance.name, c.id))).toMatchObject({ assignee_id: null, external_assignee: 'Private Person', state: 'in_progress', priority: 'low' });
  });

  it('maps statuses per project when configured, and re-renders chat when a task moves (task.state_changed)', async () => {
    const fake = await fakeJira();
    const issue = fake.createIssue({ project: 'OPS', summary: 'Rotate keys' });
    const instance = await instanceFor(fake, { stateMapping: { OPS: { "Won't Do": 'cancelled' } } });
    await sync(instance);
    fake.updateIssue(issue.id, { status: "Won't Do" });
    expect((await sync(instance)).counts.updated).toBe(1);
    const [task] = await tasksOf(instance);
    expect(task!.state).toBe('cancelled');
    expect(await eventsFor(fx, task!.id)).toEqual(['task.state_changed']);
  });
});

describe('Jira failures', () => {
  it('waits out a quota 429 until Jira says (the run is deferred), retries a burst 429 at once, and pages on refused credentials with what to do', async () => {
    const fake = await fakeJira({ now: () => fx.clock.now() });
    fake.createIssues(30, (i) => ({ project: 'SEC', summary: `Issue ${i}` }));
    const instance = await instanceFor(fake);
    fake.failNext(1, { status: 429, reason: 'jira-quota-tenant-based' }, { pathPrefix: '/rest/api/3/search/jql' });
    const quota = await sync(instance, { finalAttempt: false });
    expect(quota).toMatchObject({ status: 'deferred', errorCodes: ['rate_limited'] });
    expect(Date.parse(quota.retryAt!) - fx.clock.now().getTime()).toBe(1847 * 1000);
    const limited = fake.requests.find((request) => request.rateLimitReason === 'jira-quota-tenant-based');
    expect(limited?.status).toBe(429);
    // The quota holds for every call of the instance: another run (another client, as another job or process
    // would have) waits for the same reset without calling Jira.
    const calls = fake.requests.length;
    const waiting = await sync(instance, { finalAttempt: false });
    expect(waiting).toMatchObject({ status: 'deferred', errorCodes: ['rate_limited'], retryAt: quota.retryAt });
    expect(fake.requests.length).toBe(calls);
    fx.clock.advance(1847 * 1000);

    fake.failNext(1, { status: 429, reason: 'jira-burst-based' }, { pathPrefix: '/rest/api/3/search/jql' });
    expect(await sync(instance)).toMatchObject({ status: 'succeeded', counts: { created: 30 } });
    expect(fake.requests.filter((request) => request.rateLimitReason === 'jira-burst-based')).toHaveLength(1);

    fake.failAlways({ status: 403 }, { pathPrefix: '/rest/api/3/search/jql' });
    await sync(instance);
    await sync(instance);
    fake.failAlways(undefined);
    const alerts = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.auth_failing', subject: { id: instance.id } } } });
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.payload.summary).toMatch(/Jira \(t[0-9a-f]{6}\) refused our credentials twice in a row: HTTP 403 \(forbidden\), after a token refresh\. Check the API token of JIRA_USER_EMAIL .* Runbook RB-003\./);
  });
});

describe('Jira epics', () => {
  it('announces a critical epic moving to Done to #compliance-delivery (a routing rule), not a minor one', async () => {
    const fake = await fakeJira();
    const critical = fake.createIssue({ project: 'SEC', summary: 'SOC 2 remediation programme', issuetype: 'Epic', priority: 'Highest' });
    const minor = fake.createIssue({ project: 'SEC', summary: 'Tidy the wiki', issuetype: 'Epic', priority: 'Low' });
    const instance = await instanceFor(fake);
    await sync(instance);
    fake.updateIssue(critical.id, { status: 'Done' });
    fake.updateIssue(minor.id, { status: 'Done' });
    expect((await sync(instance)).counts.updated).toBe(2);
    const byIssue = new Map((await tasksOf(instance)).map((task) => [task.target, task.id]));
    expect(await eventsFor(fx, byIssue.get(issueTarget(instance.name, critical.id))!)).toEqual(['task.epic_completed', 'task.state_changed']);
    expect(await eventsFor(fx, byIssue.get(issueTarget(instance.name, minor.id))!)).toEqual(['task.state_changed']);
    const [job] = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'task.epic_completed', subject: { id: byIssue.get(issueTarget(instance.name, critical.id))! } } } });
    expect(job!.data.payload.summary).toBe(`Critical epic ${critical.key} is done in Jira: SOC 2 remediation programme`);
    expect(await routeEvent(fx.tdb.db, job!.data.payload)).toContainEqual({ surface: 'slack', kind: 'channel', target: 'compliance-delivery' });
  });
});

describe('Jira epics mapped to programmes, and the task card', () => {
  it('puts an epic mapped to a programme, and its child issues, in that programme; the card names the issue key and the Jira assignee', async () => {
    const fake = await fakeJira();
    await fx.tdb.db.insertInto('programs').values({ id: 'ISO27001', name: 'ISO 27001' }).onConflict((oc) => oc.doNothing()).execute();
    const epic = fake.createIssue({ project: 'SEC', summary: 'ISO 27001 Annex A gaps', issuetype: 'Epic' });
    const outside = fake.addUser({ displayName: 'Olga Outside', emailAddress: 'olga@contractor.example' });
    const child = fake.createIssue({ project: 'SEC', summary: 'A.8.2 privileged access review', parent: epic.key, assignee: outside.accountId, labels: ['iso', 'access'] });
    const other = fake.createIssue({ project: 'SEC', summary: 'Unrelated' });
    const instance = await instanceFor(fake, { epicPrograms: { [epic.key]: 'ISO27001', 'SEC-999': 'NO-SUCH-PROGRAMME' } });
    await sync(instance);
    const byIssue = new Map((await tasksOf(instance)).map((task) => [task.target, task.id]));
    const programmeOf = async (issueId: string) => (await fx.tdb.db.selectFrom('task_links').select('target').where('task_id', '=', byIssue.get(issueTarget(instance.name, issueId))!).where('kind', '=', 'program').execute()).map((row) => row.target);
    expect(await programmeOf(epic.id)).toEqual(['ISO27001']);
    expect(await programmeOf(child.id)).toEqual(['ISO27001']);
    expect(await programmeOf(other.id)).toEqual([]);

    const card = renderTask((await getTask(fx.tdb.db, byIssue.get(issueTarget(instance.name, child.id))!))!);
    const text = JSON.stringify(card);
    expect(text).toContain(`Open ${child.key} in Jira`);
    expect(text).toContain('programme ISO27001');
    expect(text).toContain('olga@contractor.example');
    expect(text).toContain('access, iso');
  });
});

describe('Jira sprints', () => {
  it('tells the programme owners which remediation tasks a sprint closed with left open; history found by the first sync is quiet', async () => {
    const fake = await fakeJira({ now: () => new Date(T0) });
    const owner = await fx.user({ roles: ['viewer'] });
    await fx.tdb.db.insertInto('programs').values({ id: 'SOC2', name: 'SOC 2 Type II' }).onConflict((oc) => oc.doNothing()).execute();
    await fx.tdb.db.insertInto('controls').values({ id: 'CC6-1', title: 'Logical access', owner_id: owner.id, program_id: 'SOC2', created_at: new Date() }).onConflict((oc) => oc.doNothing()).execute();
    const board = fake.addBoard({ name: 'SEC board', projectKey: 'SEC' });
    const done = fake.createIssue({ project: 'SEC', summary: 'Finished work', status: 'Done' });
    const open = fake.createIssue({ project: 'SEC', summary: 'Unfinished work' });
    fake.addSprint(board.id, { name: 'Sprint 1', state: 'closed', startDate: new Date(T0 - 20 * 86_400_000), completeDate: new Date(T0 - 6 * 86_400_000), issues: [done.key, open.key] });
    const instance = await instanceFor(fake, { boards: [{ id: board.id, program: 'SOC2' }] });
    await sync(instance);
    const first = await runSprints(instance);
    expect(first).toMatchObject({ status: 'succeeded', counts: { created: 1 } });
    expect(await sprintEvents(instance)).toEqual([]);

    fake.addSprint(board.id, { name: 'Sprint 2', state: 'closed', startDate: new Date(T0 - 5 * 86_400_000), completeDate: new Date(T0 - 3_600_000), issues: [done.key, open.key] });
    expect(await runSprints(instance)).toMatchObject({ status: 'succeeded', counts: { created: 1, unchanged: 0 } });
    const events = await sprintEvents(instance);
    expect(events).toHaveLength(1);
    const openTask = (await tasksOf(instance)).find((task) => task.target === issueTarget(instance.name, open.id))!;
    expect(events[0]).toMatchObject({ approverIds: [owner.id], data: { sprint: expect.any(Number), outstanding: [`T-${openTask.id}`], outstandingCount: 1, program: 'SOC2' } });
    expect(events[0]!.summary).toContain(`Sprint 2 closed in Jira with 1 remediation task still open: T-${openTask.id}`);
    expect(await routeEvent(fx.tdb.db, events[0]!)).toContainEqual({ surface: 'slack', kind: 'approvers_dm', target: `user:${owner.id}` });
    // Read again: nothing new, nothing said again.
    expect(await runSprints(instance)).toMatchObject({ counts: { created: 0 } });
    expect(await sprintEvents(instance)).toHaveLength(1);
  });
});

async function runSprints(instance: ConnectorInstance<JiraSettings>): Promise<RunSummary> {
  const client = jira.createClient(instance, { ...runtime, keyring });
  try {
    return await runSync({ runtime, connector: jira, instance, client, breaker: createBreaker({ ...runtime, instance, connector: jira, direction: 'read' }), request: { runId: crypto.randomUUID(), model: 'sprint', full: false, trigger: 'manual' }, finalAttempt: true, signal: new AbortController().signal });
  } finally {
    await client.close();
  }
}
async function sprintEvents(instance: ConnectorInstance): Promise<DomainEvent[]> {
  const jobs = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.sprint_closed', subject: { id: instance.id } } } });
  return jobs.map((job) => job.data.payload);
}

describe('Jira issue sync (Data Center, personal access token)', () => {
  it('pages /rest/api/2/search by startAt with a Bearer PAT', async () => {
    const fake = await fakeJira({ mode: 'dc', pat: 'dc-pat-secret' });
    fake.createIssues(250, (i) => ({ project: i % 2 ? 'SEC' : 'OPS', summary: `DC finding ${i}`, description: `Line one\nLine two ${i}`, updated: new Date(T0 + (i % 50) * 1000) }));
    const instance = await instanceFor(fake, { deployment: 'datacenter', email: undefined }, { api_token: 'dc-pat-secret' });
    const summary = await sync(instance);
    expect(summary).toMatchObject({ status: 'succeeded', counts: { seen: 250, created: 250, rejected: 0, pages: 3 } });
    const searches = fake.requests.filter((request) => request.path === '/rest/api/2/search');
    expect(searches.length).toBe(3);
    expect(searches.every((request) => request.auth === 'pat' && request.status === 200)).toBe(true);
    expect(fake.requests.some((request) => request.path.startsWith('/rest/api/3/'))).toBe(false);
    const tasks = await fx.tdb.db.selectFrom('tasks').innerJoin('task_links', 'task_links.task_id', 'tasks.id').select(['tasks.description']).where('task_links.target', 'like', `jira:${instance.name}:%`).execute();
    expect(tasks).toHaveLength(250);
    expect(tasks.every((task) => task.description?.startsWith('Line one\nLine two'))).toBe(true);

    // A wrong PAT: refused, counted as an auth failure on the instance's health.
    const wrong = await instanceFor(fake, { deployment: 'datacenter', email: undefined }, { api_token: 'not-the-pat' });
    const refused = await sync(wrong);
    expect(refused).toMatchObject({ status: 'failed', errorCodes: ['token_refused'] });
  });
});
