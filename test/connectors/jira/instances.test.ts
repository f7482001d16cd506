/**
 * Several Jira sites, each an instance configured through `projectx connectors` (settings from a file,
 * credentials on stdin, encrypted), synced apart: their tasks, checkpoints and credentials do not mix. And the
 * control a custom field names.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jira } from '../../../src/connectors/jira/index.ts';
import { fetchIssues } from '../../../src/connectors/jira/sync.ts';
import { loadConfig } from '../../../src/config.ts';
import { connectorsVerb } from '../../../src/connectors/sdk/cli.ts';
import { ensureInstanceFromEnv, loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { connectorSync } from '../../../src/jobs/connector-sync.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { type FakeJira, startFakeJira } from '../../fakes/jira/server.ts';
import { type DomainFixture, domainFixture, fixtureJobDeps } from '../../support/domain.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
let fx: DomainFixture;
let deps: JobDeps;
let cloud: FakeJira;
let datacenter: FakeJira;
let dir: string;

beforeAll(async () => {
  fx = await domainFixture();
  deps = fixtureJobDeps(fx, { keyring });
  cloud = await startFakeJira({ email: 'px-bot@example.com', apiToken: 'cloud-api-token' });
  datacenter = await startFakeJira({ mode: 'dc', pat: 'dc-personal-token' });
  dir = await mkdtemp(path.join(tmpdir(), 'jira-instances-'));
});
afterAll(async () => {
  await Promise.all([cloud.close(), datacenter.close(), rm(dir, { recursive: true, force: true })]);
  await fx.close();
});

async function configure(name: string, settings: unknown, credentials: Record<string, string>): Promise<string> {
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(settings));
  const ctx = operatorContext(fx, { keyring });
  expect(await runOperator(ctx, connectorsVerb, ['configure', 'jira', '--instance', name, '--settings-file', file, '--credentials-stdin'], JSON.stringify(credentials))).toMatchObject({ code: 0 });
  expect(await runOperator(ctx, connectorsVerb, ['enable', 'jira', '--instance', name])).toMatchObject({ code: 0 });
  return (await fx.tdb.db.selectFrom('integration_configs').select('id').where('type', '=', 'jira').where('name', '=', name).executeTakeFirstOrThrow()).id;
}

const sync = (instanceId: string) => connectorSync.handler(connectorSync.schema.parse({ connector: 'jira', instanceId, model: 'issue', runId: randomUUID(), trigger: 'manual' }), { deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name: connectorSync.name, retryCount: 0 } }) as Promise<{ counts: Record<string, number> }>;

describe('several Jira sites', () => {
  it('configures each through projectx connectors and syncs them apart; a custom field can name the control', async () => {
    await fx.tdb.db.insertInto('controls').values({ id: 'A.5.15', title: 'Access control', created_at: new Date() }).onConflict((oc) => oc.doNothing()).execute();
    const onCloud = cloud.createIssue({ project: 'SEC', summary: 'Cloud finding', customFields: { customfield_10050: { value: 'A.5.15' } } });
    datacenter.createIssue({ project: 'OPS', summary: 'Data Center finding' });
    const cloudId = await configure('cloud', { baseUrl: cloud.url, deployment: 'cloud', authMode: 'pat', email: 'px-bot@example.com', projectKeys: ['SEC'], controlField: 'customfield_10050' }, { api_token: 'cloud-api-token' });
    const dcId = await configure('dc', { baseUrl: datacenter.url, deployment: 'datacenter', authMode: 'pat', projectKeys: ['OPS'] }, { api_token: 'dc-personal-token' });

    const stored = await fx.tdb.db.selectFrom('integration_configs').select('credentials').where('id', '=', dcId).executeTakeFirstOrThrow();
    expect(JSON.stringify(stored.credentials)).not.toContain('dc-personal-token');

    expect((await sync(cloudId)).counts).toMatchObject({ created: 1 });
    expect((await sync(dcId)).counts).toMatchObject({ created: 1 });
    const tasks = await fx.tdb.db.selectFrom('task_links').innerJoin('tasks', 'tasks.id', 'task_links.task_id').select(['task_links.target', 'tasks.title', 'tasks.id']).where('task_links.target', 'like', 'jira:%').orderBy('task_links.target').execute();
    expect(tasks.map((task) => [task.target.split(':').slice(0, 2).join(':'), task.title])).toEqual([
      ['jira:cloud', `${onCloud.key} Cloud finding`],
      ['jira:dc', 'OPS-1 Data Center finding'],
    ]);
    const control = await fx.tdb.db.selectFrom('task_links').select('target').where('task_id', '=', tasks[0]!.id).where('kind', '=', 'control').execute();
    expect(control).toEqual([{ target: 'A.5.15' }]);
    expect(cloud.requests.every((request) => request.auth === 'basic')).toBe(true);
    expect(datacenter.requests.every((request) => request.auth === 'pat')).toBe(true);

    // What a webhook names is fetched by id, but only what the instance's scope holds comes back: another project,
    // or an issue its JQL filter leaves out, is neither stored nor taken for gone.
    const scoped = await configure('scoped', { baseUrl: cloud.url, deployment: 'cloud', authMode: 'pat', email: 'px-bot@example.com', projectKeys: ['SEC'], jqlFilter: 'labels = "compliance"' }, { api_token: 'cloud-api-token' });
    const inScope = cloud.createIssue({ project: 'SEC', summary: 'In scope', labels: ['compliance'] });
    const filteredOut = cloud.createIssue({ project: 'SEC', summary: 'Filtered out' });
    const otherProject = cloud.createIssue({ project: 'OPS', summary: 'Another project', labels: ['compliance'] });
    const instance = await loadInstance(fx.tdb.db, keyring, jira, scoped);
    const client = jira.createClient(instance, { db: fx.tdb.db, logger: deps.logger, clock: fx.clock, metrics: deps.metrics, events: fx.deps.events, keyring });
    try {
      const fetched = await fetchIssues({ client, settings: instance.settings, ids: [inScope.id, filteredOut.id, otherProject.id, '99999'] });
      expect(fetched.ok && fetched.records.map((record) => (record as { id: string }).id)).toEqual([inScope.id]);
      expect(fetched.ok && fetched.missing).toEqual(['99999']);
    } finally {
      await client.close();
    }

    // Bad settings are refused with what is wrong, and nothing is stored.
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ baseUrl: 'not a url', deployment: 'cloud', authMode: 'pat', projectKeys: [] }));
    await expect(runOperator(operatorContext(fx, { keyring }), connectorsVerb, ['configure', 'jira', '--instance', 'bad', '--settings-file', file])).rejects.toThrow(/invalid Jira settings: baseUrl: .*projectKeys: name at least one project/);
  });
});

describe('the instance the environment describes', () => {
  it('follows the environment for what it owns, and keeps what an operator configured beyond it across restarts', async () => {
    const env = (extra: Record<string, string>) => {
      const loaded = loadConfig({ JIRA_BASE_URL: cloud.url, JIRA_PROJECT_KEYS: 'SEC', JIRA_PAT: 'cloud-api-token', JIRA_USER_EMAIL: 'px-bot@example.com', ...extra });
      if (!loaded.ok) throw new Error(loaded.problems.join('; '));
      return { ...jira.fromEnv(loaded.config)!, name: 'from-env' };
    };
    const id = (await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, env({ JIRA_JQL_FILTER: 'labels = "compliance"' })))!;
    // The operator adds boards and a status mapping (settings from a file replace them whole).
    const file = path.join(dir, 'from-env.json');
    const current = (await loadInstance(fx.tdb.db, keyring, jira, id)).settings;
    await writeFile(file, JSON.stringify({ ...current, boards: [{ id: 7, program: 'SOC2' }], stateMapping: { SEC: { "Won't Do": 'cancelled' } } }));
    expect(await runOperator(operatorContext(fx, { keyring }), connectorsVerb, ['configure', 'jira', '--instance', 'from-env', '--settings-file', file])).toMatchObject({ code: 0 });

    // A restart with other projects and no filter: the environment's part changes, the operator's stays.
    await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, env({ JIRA_PROJECT_KEYS: 'SEC,OPS' }));
    const after = (await loadInstance(fx.tdb.db, keyring, jira, id)).settings;
    expect(after).toMatchObject({ projectKeys: ['SEC', 'OPS'], boards: [{ id: 7, program: 'SOC2' }], stateMapping: { SEC: { "Won't Do": 'cancelled' } } });
    expect(after.jqlFilter).toBeUndefined();
  });
});

