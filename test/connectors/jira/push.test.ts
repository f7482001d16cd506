/**
 * Writes back to Jira through the push queue, against the fake Jira and a real database: a remediation task
 * created in ProjectX becomes one issue even when the create's answer is lost; a state change becomes a
 * transition and a comment a comment, each recorded as Jira answered (our own change is no change to the next
 * pull, someone else's edit is); Jira's per-issue write limit is never exceeded, and its 429 is waited out.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jira } from '../../../src/connectors/jira/index.ts';
import { markerLabel } from '../../../src/connectors/jira/push.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../../src/connectors/sdk/instances.ts';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { assignTask, commentOnTask, createTask, getTask, transitionTask } from '../../../src/domain/tasks.ts';
import { connectorPush } from '../../../src/jobs/connector-push.ts';
import { connectorSync } from '../../../src/jobs/connector-sync.ts';
import { routeDomainEvent } from '../../../src/jobs/domain-events.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { type FakeJira, startFakeJira } from '../../fakes/jira/server.ts';
import { type DomainFixture, domainFixture, eventsFor, fixtureJobDeps } from '../../support/domain.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
let fx: DomainFixture;
let fake: FakeJira;
let deps: JobDeps;
let instanceId: string;
const jobContext = (name: string) => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name, retryCount: 0 } });

beforeAll(async () => {
  fx = await domainFixture();
  fake = await startFakeJira({ email: 'px-bot@example.com', apiToken: 'api-token-secret', now: () => fx.clock.now() });
  deps = fixtureJobDeps(fx, { keyring });
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, {
    name: 'default',
    settings: { baseUrl: fake.url, deployment: 'cloud', authMode: 'pat', email: 'px-bot@example.com', projectKeys: ['SEC', 'OPS'] },
    credentials: { api_token: 'api-token-secret' },
  }))!;
});
afterAll(async () => {
  await fake.close();
  await fx.close();
});

const routed = new Set<string>();
/** Routes every queued domain event not routed yet, as the domain.event job would (that records the writes). */
async function route(): Promise<void> {
  const jobs = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event');
  // In the order they were emitted, as one worker would take them.
  jobs.sort((a, b) => a.createdOn.getTime() - b.createdOn.getTime() || a.id.localeCompare(b.id));
  for (const job of jobs) {
    if (routed.has(job.data.payload.id)) continue;
    routed.add(job.data.payload.id);
    await routeDomainEvent.handler(routeDomainEvent.schema.parse(job.data.payload), jobContext(routeDomainEvent.name));
  }
}
const drain = () => connectorPush.handler({ connector: 'jira', instanceId }, jobContext(connectorPush.name)) as Promise<{ sent: number; failed: number; waiting?: string; next?: Date }>;
const sync = () => connectorSync.handler(connectorSync.schema.parse({ connector: 'jira', instanceId, model: 'issue', runId: randomUUID(), trigger: 'manual' }), jobContext(connectorSync.name)) as Promise<{ counts: Record<string, number> }>;
const pushes = () => fx.tdb.db.selectFrom('integration_pushes').select(['id', 'operation', 'record_key', 'status', 'attempts', 'last_error']).where('config_id', '=', instanceId).orderBy('id').execute();
/** The fake's issues carrying a label (its ids start at 10000; these tests make a few). */
function findIssues(label: string) {
  const found = [];
  for (let id = 10_000; id < 10_200; id++) {
    const issue = fake.issue(String(id));
    if (issue?.labels.includes(label)) found.push(issue);
  }
  return found;
}

async function newRemediation(title: string): Promise<string> {
  const created = await createTask(fx.deps, CLI_ACTOR, { type: 'remediation', title, description: 'Found in the Q4 pen test.\nFix before the audit.', priority: 'high' });
  if (!created.ok) throw new Error(created.refusal.message);
  await route();
  return created.value.id;
}

describe('Jira writes', () => {
  it('creates the issue for a task exactly once when the answer to the create is lost', async () => {
    const taskId = await newRemediation('Enforce MFA on the admin VPN');
    expect(await pushes()).toEqual([expect.objectContaining({ operation: 'issue.create', record_key: `task/${taskId}`, status: 'pending' })]);
    fake.failNext(1, { kind: 'lose-answer' }, { method: 'POST', pathPrefix: '/rest/api/3/issue' });
    const first = await drain();
    expect(first).toMatchObject({ sent: 0, waiting: 'retry' });
    expect(findIssues(markerLabel(taskId))).toHaveLength(1); // Jira made it; we did not hear
    fx.clock.advance(60_000);
    expect(await drain()).toMatchObject({ sent: 1 });
    const made = findIssues(markerLabel(taskId));
    expect(made).toHaveLength(1);
    expect(made[0]).toMatchObject({ project: 'SEC', summary: 'Enforce MFA on the admin VPN', priority: 'High', properties: { projectx: { taskId } } });
    expect(made[0]!.description).toMatch(/^Found in the Q4 pen test\.\n+Fix before the audit\.$/);
    const task = (await getTask(fx.tdb.db, taskId))!;
    expect(task.links).toContainEqual({ kind: 'external', target: `jira:default:issue:${made[0]!.id}`, url: `${fake.url}/browse/${made[0]!.key}` });
    expect((await pushes())[0]).toMatchObject({ status: 'sent', attempts: 2 });
    // The next pull reads it back as ours: no change, no second task.
    expect((await sync()).counts).toMatchObject({ created: 0, updated: 0 });
  });

  it('sends a state change as a transition, and does not read it back as a change; someone else\'s edit is one', async () => {
    const taskId = await newRemediation('Patch OpenSSL on the edge proxies');
    await drain();
    await sync();
    const issueId = (await getTask(fx.tdb.db, taskId))!.links.find((link) => link.target.startsWith('jira:'))!.target.split(':').at(-1)!;
    const moved = await transitionTask(fx.deps, CLI_ACTOR, taskId, 'in_progress');
    expect(moved.ok).toBe(true);
    await route();
    expect(await drain()).toMatchObject({ sent: 1 });
    expect(fake.issue(issueId)).toMatchObject({ status: 'In Progress', statusCategory: 'indeterminate' });
    expect(fake.issue(issueId)!.transitions.at(-1)).toMatchObject({ to: 'In Progress' });
    const eventsBefore = await eventsFor(fx, taskId);
    expect((await sync()).counts).toMatchObject({ created: 0, updated: 0 });
    expect(await eventsFor(fx, taskId)).toEqual(eventsBefore); // no task.state_changed came back from Jira

    fake.updateIssue(issueId, { summary: 'Patch OpenSSL on the edge proxies (3.0.15)' });
    expect((await sync()).counts).toMatchObject({ updated: 1 });
    expect((await getTask(fx.tdb.db, taskId))!.title).toContain('(3.0.15)');

    // Done in ProjectX: the transition to Done.
    await transitionTask(fx.deps, CLI_ACTOR, taskId, 'done');
    await route();
    await drain();
    expect(fake.issue(issueId)).toMatchObject({ status: 'Done' });
    // A change Jira made is not sent back to it.
    fake.updateIssue(issueId, { status: 'In Progress' });
    await sync();
    await route();
    expect((await pushes()).filter((push) => push.record_key === `issue/${issueId}` && push.status === 'pending')).toEqual([]);
  });

  it('sends a reassignment made in ProjectX (by the Jira account with the user\'s email), and an unassignment', async () => {
    const rita = await fx.user({ email: 'rita.remediator@example.test', roles: ['contributor'] });
    const account = fake.addUser({ displayName: 'Rita Remediator', emailAddress: 'rita.remediator@example.test' });
    const taskId = await newRemediation('Remove stale admin accounts');
    await drain();
    const issueId = (await getTask(fx.tdb.db, taskId))!.links.find((link) => link.target.startsWith('jira:'))!.target.split(':').at(-1)!;
    expect((await assignTask(fx.deps, CLI_ACTOR, taskId, rita.id)).ok).toBe(true);
    await route();
    expect(await drain()).toMatchObject({ sent: 1 });
    expect(fake.issue(issueId)!.assignee).toBe(account.accountId);
    expect((await sync()).counts).toMatchObject({ updated: 0 }); // our own change
    expect((await getTask(fx.tdb.db, taskId))!.assigneeId).toBe(rita.id);
    expect((await assignTask(fx.deps, CLI_ACTOR, taskId, null)).ok).toBe(true);
    await route();
    await drain();
    expect(fake.issue(issueId)!.assignee).toBeNull();
  });

  it('sends comments, never more than Jira\'s per-issue write rate, and waits out Jira\'s own 429', async () => {
    const taskId = await newRemediation('Review firewall rule exceptions');
    await drain();
    const issueId = (await getTask(fx.tdb.db, taskId))!.links.find((link) => link.target.startsWith('jira:'))!.target.split(':').at(-1)!;
    for (let n = 0; n < 25; n++) expect((await commentOnTask(fx.deps, CLI_ACTOR, taskId, `Exception ${n} reviewed`)).ok).toBe(true);
    await route();
    const first = await drain();
    expect(first).toMatchObject({ sent: 20, waiting: 'retry' });
    expect(fake.issue(issueId)!.comments).toHaveLength(20);
    expect(fake.requests.filter((request) => request.rateLimitReason === 'jira-per-issue-on-write')).toEqual([]);
    fx.clock.advance(2_001);
    expect(await drain()).toMatchObject({ sent: 5 });
    const comments = fake.issue(issueId)!.comments;
    expect(comments).toHaveLength(25);
    expect(comments[0]!.body).toContain('Exception 0 reviewed');

    // Jira says no (another client used the issue's budget): the write waits, spending no attempt.
    fx.clock.advance(60_000);
    fake.failNext(1, { status: 429, reason: 'jira-per-issue-on-write', retryAfterSeconds: 3 }, { method: 'POST', pathPrefix: `/rest/api/3/issue/${issueId}/comment` });
    await commentOnTask(fx.deps, CLI_ACTOR, taskId, 'One more');
    await route();
    const limited = await drain();
    expect(limited).toMatchObject({ sent: 0, waiting: 'retry' });
    expect((await pushes()).at(-1)).toMatchObject({ status: 'pending', attempts: 0 });
    fx.clock.advance(3_001);
    expect(await drain()).toMatchObject({ sent: 1 });
    expect(fake.issue(issueId)!.comments).toHaveLength(26);
  });
});
