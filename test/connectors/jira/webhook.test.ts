/**
 * Jira's admin webhooks and nightly reconciliation, against the fake Jira (its webhook emitter posting to our
 * route served on 127.0.0.1) and a real database: X-Hub-Signature over the raw body, the delivery identifier as
 * dedupe key (a replay does nothing), the issues named fetched by id and stored like synced records, deletions
 * flagged and their tasks cancelled, unknown events ignored, failures retried then failed, listed and replayed by
 * an operator; reconciliation (ids only, confirmed by a bulk fetch) flags what disappeared.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jira } from '../../../src/connectors/jira/index.ts';
import { issueTarget } from '../../../src/connectors/jira/mapper.ts';
import { connectorsVerb } from '../../../src/connectors/sdk/cli.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../../src/connectors/sdk/instances.ts';
import { createConnectorWebhooks } from '../../../src/connectors/sdk/webhook.ts';
import { DELIVERY_RETRY_LIMIT, connectorDeliveries } from '../../../src/jobs/connector-deliveries.ts';
import { connectorReconcile, connectorSync } from '../../../src/jobs/connector-sync.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type FakeJira, hubSignature, startFakeJira } from '../../fakes/jira/server.ts';
import { type DomainFixture, domainFixture, eventsFor, fixtureJobDeps } from '../../support/domain.ts';
import { serviceConnectors as connectors } from '../../support/jobs.ts';
import { captureLogs } from '../../support/logs.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const SECRET = 'jira-webhook-secret-1';
let fx: DomainFixture;
let fake: FakeJira;
let deps: JobDeps;
let server: ServerType;
let hookUrl: string;
let instanceId: string;
const context = (name: string, retryCount = 0) => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name, retryCount } });

beforeAll(async () => {
  fx = await domainFixture();
  fake = await startFakeJira({ email: 'px-bot@example.com', apiToken: 'api-token-secret', now: () => fx.clock.now() });
  deps = fixtureJobDeps(fx, { keyring });
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, {
    name: 'default',
    settings: { baseUrl: fake.url, deployment: 'cloud', authMode: 'pat', email: 'px-bot@example.com', projectKeys: ['SEC'] },
    credentials: { api_token: 'api-token-secret', webhook_secret: SECRET },
  }))!;
  const app = createConnectorWebhooks({ db: fx.tdb.db, keyring, jobs: fx.jobs, clock: fx.clock, logger: captureLogs().logger, metrics: createMetrics({ defaultMetrics: false }), connectors });
  server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(started));
  });
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/integrations/jira/webhook`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await fake.close();
  await fx.close();
});

const deliveries = () => fx.tdb.db.selectFrom('inbound_events').select(['id', 'delivery_id', 'kind', 'status', 'result', 'error']).where('source', '=', 'jira:default').orderBy('received_at').execute();
const deliveryJobs = () => fx.jobs.boss.findJobs('connector.deliveries', { data: { payload: { instanceId } } });
const handle = (retryCount = 0) => connectorDeliveries.handler({ connector: 'jira', instanceId }, context(connectorDeliveries.name, retryCount)) as Promise<Record<string, unknown>>;
const taskOf = (issueId: string) =>
  fx.tdb.db.selectFrom('task_links').innerJoin('tasks', 'tasks.id', 'task_links.task_id').select(['tasks.id', 'tasks.title', 'tasks.state']).where('task_links.target', '=', issueTarget('default', issueId)).executeTakeFirst();
/** A body signed by hand, for what Jira would not send. */
const post = (body: string, headers: Record<string, string>) => fetch(hookUrl, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });

describe('Jira webhooks', () => {
  it('records a signed delivery, fetches the issue it names at the window\'s end, and ignores its replay', async () => {
    const issue = fake.createIssue({ project: 'SEC', summary: 'Patch the VPN concentrator', updated: fx.clock.now() });
    const sent = await fake.sendWebhook(hookUrl, { webhookEvent: 'jira:issue_created', issue: issue.key }, { secret: SECRET });
    expect(sent.attempts.map((attempt) => attempt.status)).toEqual([202]);
    const [delivery] = await deliveries();
    expect(delivery).toMatchObject({ delivery_id: sent.identifier, kind: 'sync.issue', status: 'received', result: { model: 'issue', externalId: issue.id, fetch: 'queued' } });
    expect(await deliveryJobs()).toHaveLength(1);

    // Jira sends it again (a retry after a lost answer): the same identifier, answered 200, nothing new.
    const again = await fake.sendWebhook(hookUrl, { webhookEvent: 'jira:issue_created', issue: issue.key }, { secret: SECRET, identifier: sent.identifier });
    expect(again.attempts.map((attempt) => attempt.status)).toEqual([200]);
    expect(await deliveries()).toHaveLength(1);

    expect(await handle()).toMatchObject({ deliveries: 1, models: { issue: { fetched: 1, changed: 1, missing: [] } } });
    expect(await taskOf(issue.id)).toMatchObject({ title: `${issue.key} Patch the VPN concentrator`, state: 'open' });
    expect((await deliveries())[0]).toMatchObject({ status: 'processed' });
    expect(fake.requests.filter((request) => request.path === '/rest/api/3/issue/bulkfetch')).toHaveLength(1);

    // An update (and a comment) on it: one fetch for both; our task follows.
    fake.updateIssue(issue.id, { summary: 'Patch the VPN concentrator (firmware 9.1)', status: 'In Progress' });
    await fake.sendWebhook(hookUrl, { webhookEvent: 'jira:issue_updated', issue: issue.key }, { secret: SECRET });
    const comment = fake.addComment(issue.id, 'Firmware 9.1 staged for the window');
    await fake.sendWebhook(hookUrl, { webhookEvent: 'comment_created', issue: issue.key, commentId: comment.id }, { secret: SECRET });
    expect(await handle()).toMatchObject({ deliveries: 2, models: { issue: { fetched: 1, changed: 1 } } });
    expect(await taskOf(issue.id)).toMatchObject({ title: `${issue.key} Patch the VPN concentrator (firmware 9.1)`, state: 'in_progress' });
  });

  it('flags a deleted issue and cancels its task (its chat messages re-render)', async () => {
    const issue = fake.createIssue({ project: 'SEC', summary: 'Decommission legacy FTP', updated: fx.clock.now() });
    await fake.sendWebhook(hookUrl, { webhookEvent: 'jira:issue_created', issue: issue.key }, { secret: SECRET });
    await handle();
    const task = (await taskOf(issue.id))!;
    const body = JSON.stringify({ timestamp: fx.clock.now().getTime(), webhookEvent: 'jira:issue_deleted', user: { accountId: fake.apiUser.accountId }, issue: { id: issue.id, key: issue.key, fields: { summary: 'Decommission legacy FTP' } } });
    fake.deleteIssue(issue.id);
    const response = await post(body, { 'x-hub-signature': hubSignature(SECRET, body), 'x-atlassian-webhook-identifier': randomUUID() });
    expect(response.status).toBe(202);
    expect(await handle()).toMatchObject({ deliveries: 1, models: { issue: { fetched: 0, missing: [issue.id] } } });
    expect(await taskOf(issue.id)).toMatchObject({ state: 'cancelled' });
    expect(await eventsFor(fx, task.id)).toContain('task.state_changed');
    const ledger = await fx.tdb.db.selectFrom('external_records').select('missing_since').where('config_id', '=', instanceId).where('external_id', '=', issue.id).executeTakeFirstOrThrow();
    expect(ledger.missing_since).not.toBeNull();
  });

  it('answers what it does not act on 202 and ignores it; refuses bad signatures, missing ids, stale and malformed bodies', async () => {
    const sprint = await fake.sendWebhook(hookUrl, { webhookEvent: 'sprint_started', sprintId: 1 }, { secret: SECRET });
    expect(sprint.attempts.map((attempt) => attempt.status)).toEqual([202]);
    expect((await deliveries()).find((row) => row.delivery_id === sprint.identifier)).toMatchObject({ kind: 'ignored', status: 'processed', result: { ignored: 'sprint_started' } });

    const body = JSON.stringify({ timestamp: fx.clock.now().getTime(), webhookEvent: 'jira:issue_updated', issue: { id: '10000' } });
    const wrong = await post(body, { 'x-hub-signature': hubSignature('another-secret-1', body), 'x-atlassian-webhook-identifier': randomUUID() });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ error: { code: 'invalid_signature' } });
    const sha1 = await post(body, { 'x-hub-signature': `sha1=${'0'.repeat(40)}`, 'x-atlassian-webhook-identifier': randomUUID() });
    expect(await sha1.json()).toMatchObject({ error: { code: 'malformed_signature' } });
    const noId = await post(body, { 'x-hub-signature': hubSignature(SECRET, body) });
    expect(noId.status).toBe(401);
    expect(await noId.json()).toMatchObject({ error: { code: 'missing_signature' } });

    const old = JSON.stringify({ timestamp: fx.clock.now().getTime() - 2 * 3_600_000, webhookEvent: 'jira:issue_updated', issue: { id: '10000' } });
    const stale = await post(old, { 'x-hub-signature': hubSignature(SECRET, old), 'x-atlassian-webhook-identifier': randomUUID() });
    expect(stale.status).toBe(422);
    expect(await stale.json()).toMatchObject({ error: { code: 'stale_delivery' } });
    const noIssue = JSON.stringify({ timestamp: fx.clock.now().getTime(), webhookEvent: 'jira:issue_updated' });
    const malformed = await post(noIssue, { 'x-hub-signature': hubSignature(SECRET, noIssue), 'x-atlassian-webhook-identifier': randomUUID() });
    expect(malformed.status).toBe(422);
    expect(await malformed.json()).toMatchObject({ error: { code: 'invalid_payload' } });
    const notJson = await post('{', { 'x-hub-signature': hubSignature(SECRET, '{'), 'x-atlassian-webhook-identifier': randomUUID() });
    expect(notJson.status).toBe(422);
  });

  it('retries a failing fetch, then fails the deliveries for an operator, who lists and replays them', async () => {
    const issue = fake.createIssue({ project: 'SEC', summary: 'Rotate the TLS keys', updated: fx.clock.now() });
    const sent = await fake.sendWebhook(hookUrl, { webhookEvent: 'jira:issue_updated', issue: issue.key }, { secret: SECRET });
    fake.failAlways({ status: 500 }, { pathPrefix: '/rest/api/3/issue/bulkfetch' });
    await expect(handle(0)).rejects.toThrow(/upstream_error/);
    const waiting = (await deliveries()).find((row) => row.delivery_id === sent.identifier)!;
    expect(waiting.status).toBe('received'); // the queue retries it
    await expect(handle(DELIVERY_RETRY_LIMIT)).rejects.toThrow(/upstream_error/);
    expect((await deliveries()).find((row) => row.id === waiting.id)).toMatchObject({ status: 'failed', error: { code: 'upstream_error', attempts: DELIVERY_RETRY_LIMIT + 1 } });

    const ctx = operatorContext(fx, { keyring });
    const listed = await runOperator(ctx, connectorsVerb, ['deliveries', '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.out.join(''))).toEqual([expect.objectContaining({ id: waiting.id, source: 'jira:default', kind: 'sync.issue' })]);
    fake.failAlways(undefined);
    const replayed = await runOperator(ctx, connectorsVerb, ['redeliver', waiting.id]);
    expect(replayed).toMatchObject({ code: 0 });
    expect(await handle()).toMatchObject({ deliveries: 1, models: { issue: { fetched: 1 } } });
    expect(await taskOf(issue.id)).toMatchObject({ title: `${issue.key} Rotate the TLS keys` });
    await expect(runOperator(ctx, connectorsVerb, ['redeliver', waiting.id])).rejects.toThrow('is processed, not failed');
  });
});

describe('Jira reconciliation', () => {
  it('flags the issues that disappeared (deleted, or hidden from us), confirmed by a bulk fetch, and cancels their tasks', async () => {
    const kept = fake.createIssue({ project: 'SEC', summary: 'Keep me', updated: fx.clock.now() });
    const deleted = fake.createIssue({ project: 'SEC', summary: 'Delete me', updated: fx.clock.now() });
    const hidden = fake.createIssue({ project: 'SEC', summary: 'Hide me', updated: fx.clock.now() });
    await connectorSync.handler(connectorSync.schema.parse({ connector: 'jira', instanceId, model: 'issue', runId: randomUUID(), trigger: 'manual', full: true }), context(connectorSync.name));
    // The deleted issue's task was posted to Slack: its message must not keep offering work on it.
    const posted = (await taskOf(deleted.id))!;
    await fx.tdb.db.insertInto('slack_messages').values({ message_key: `task:${posted.id}`, channel: 'compliance-delivery', status: 'posted', subject_kind: 'task', subject_id: posted.id, ts: '1700000000.000100', attempt_started_at: fx.clock.now(), created_at: fx.clock.now() }).execute();
    fake.deleteIssue(deleted.id);
    fake.hideIssue(hidden.id);
    const summary = (await connectorReconcile.handler({ connector: 'jira', instanceId, model: 'issue' }, context(connectorReconcile.name))) as { missing: number; orphans: number; status: string };
    expect(summary).toMatchObject({ status: 'succeeded', missing: 2, orphans: 0 });
    expect(await taskOf(deleted.id)).toMatchObject({ state: 'cancelled' });
    expect(await taskOf(hidden.id)).toMatchObject({ state: 'cancelled' });
    expect(await taskOf(kept.id)).toMatchObject({ state: 'open' });
    expect(fake.requests.some((request) => request.path === '/rest/api/3/issue/bulkfetch')).toBe(true);
    const rerenders = await fx.jobs.boss.findJobs<{ payload: { kind: string; id: string } }>('subject.rerender', { data: { payload: { kind: 'task', id: posted.id } } });
    expect(rerenders).toHaveLength(1);
  });
});
