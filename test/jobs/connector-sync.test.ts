/**
 * The `connector.sync` job around the sync runner: schedules per enabled (instance, model), a scheduled tick
 * becoming a run of its own within its jitter, a deferral re-enqueued for the time ServiceNow gave, a failed
 * attempt handed to the queue's retry, and instances that are disabled or gone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config.ts';
import { jira } from '../../src/connectors/jira/index.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../src/connectors/sdk/instances.ts';
import { servicenow } from '../../src/connectors/servicenow/index.ts';
import { type SyncJobPayload, connectorSync, installConnectorSchedules, scheduleCron, syncKey } from '../../src/jobs/connector-sync.ts';
import type { JobDeps } from '../../src/jobs/job-deps.ts';
import { type FakeServiceNow, incidentFields, startFakeServiceNow } from '../fakes/servicenow/server.ts';
import { type DomainFixture, domainFixture, fixtureJobDeps } from '../support/domain.ts';
import { serviceConnectors } from '../support/jobs.ts';

let fx: DomainFixture;
let sn: FakeServiceNow;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const enqueued: { payload: SyncJobPayload; startAfter: unknown; singletonKey: unknown }[] = [];
let deps: JobDeps;

beforeAll(async () => {
  fx = await domainFixture();
  sn = await startFakeServiceNow();
  deps = fixtureJobDeps(fx, {
    keyring,
    jobs: {
      enqueue: (job, payload, options) => {
        enqueued.push({ payload: payload as SyncJobPayload, startAfter: options?.startAfter, singletonKey: options?.singletonKey });
        return fx.jobs.enqueue(job, payload, options);
      },
    },
  });
});
afterAll(async () => {
  await sn.close();
  await fx.close();
});

const instance = async (name: string) =>
  (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name, settings: { baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8', pageSize: 50 }, credentials: { client_secret: 'client_password' } }))!;
const run = (payload: SyncJobPayload, retryCount = 0) =>
  connectorSync.handler(connectorSync.schema.parse(payload), { deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name: connectorSync.name, retryCount } });

describe('connector.sync', () => {
  it('installs one schedule per enabled instance and model, and removes those of disabled instances', async () => {
    const a = await instance('sched-a');
    const b = await instance('sched-b');
    await fx.tdb.db.updateTable('integration_configs').set({ enabled: false }).where('type', '=', 'servicenow').where('id', 'not in', [a, b]).execute();
    await fx.tdb.db.updateTable('integration_configs').set({ schedules: JSON.stringify([{ model: 'incident', everySeconds: 120, jitterSeconds: 5 }]) }).where('id', '=', b).execute();
    expect(await installConnectorSchedules(fx.jobs.boss, fx.tdb.db, deps.logger, serviceConnectors)).toBe(4);
    const schedules = async () => Object.fromEntries((await fx.jobs.boss.getSchedules(connectorSync.name)).map((schedule) => [schedule.key, schedule.cron]));
    expect(await schedules()).toEqual({
      [syncKey(a, 'incident')]: '*/5 * * * *',
      [syncKey(a, 'change_request')]: '*/15 * * * *',
      [syncKey(b, 'incident')]: '*/2 * * * *',
      [syncKey(b, 'change_request')]: '*/15 * * * *',
    });
    const reconciles = async () => Object.fromEntries((await fx.jobs.boss.getSchedules('connector.reconcile')).map((schedule) => [schedule.key, schedule.cron]));
    expect(await reconciles()).toEqual({ [syncKey(a, 'incident')]: '17 2 * * *', [syncKey(a, 'change_request')]: '17 2 * * *', [syncKey(b, 'incident')]: '17 2 * * *', [syncKey(b, 'change_request')]: '17 2 * * *' });
    await fx.tdb.db.updateTable('integration_configs').set({ enabled: false }).where('id', '=', b).execute();
    await installConnectorSchedules(fx.jobs.boss, fx.tdb.db, deps.logger, serviceConnectors);
    expect(Object.keys(await schedules()).sort()).toEqual([syncKey(a, 'change_request'), syncKey(a, 'incident')].sort());
    expect(Object.keys(await reconciles()).sort()).toEqual([syncKey(a, 'change_request'), syncKey(a, 'incident')].sort());
    expect(scheduleCron({ everySeconds: 7200, jitterSeconds: 0 })).toBe('0 */2 * * *');
  });

  it('takes a Jira instance\'s interval and reconciliation switch from its settings (JIRA_SYNC_INTERVAL_SECONDS, ENABLE_JIRA_DELTA_RECON)', async () => {
    const env = (extra: Record<string, string>) => {
      const loaded = loadConfig({ JIRA_BASE_URL: 'http://127.0.0.1:9', JIRA_PROJECT_KEYS: 'SEC', JIRA_PAT: 'jira-api-token', JIRA_USER_EMAIL: 'px-bot@example.com', ...extra });
      if (!loaded.ok) throw new Error(loaded.problems.join('; '));
      return jira.fromEnv(loaded.config)!;
    };
    const every = await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, { ...env({ JIRA_SYNC_INTERVAL_SECONDS: '120' }), name: 'jira-every' });
    const quiet = await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, { ...env({ ENABLE_JIRA_DELTA_RECON: 'false' }), name: 'jira-quiet' });
    await installConnectorSchedules(fx.jobs.boss, fx.tdb.db, deps.logger, serviceConnectors);
    const schedules = Object.fromEntries((await fx.jobs.boss.getSchedules(connectorSync.name)).map((schedule) => [schedule.key, schedule.cron]));
    expect(schedules).toMatchObject({ [syncKey(every!, 'issue')]: '*/2 * * * *', [syncKey(quiet!, 'issue')]: '*/5 * * * *', [syncKey(every!, 'sprint')]: '*/15 * * * *' });
    const reconciles = Object.keys(Object.fromEntries((await fx.jobs.boss.getSchedules('connector.reconcile')).map((schedule) => [schedule.key, schedule.cron])));
    expect(reconciles).toContain(syncKey(every!, 'issue'));
    expect(reconciles).not.toContain(syncKey(quiet!, 'issue'));
    await fx.tdb.db.updateTable('integration_configs').set({ enabled: false }).where('type', '=', 'jira').execute();
  });

  it('turns a scheduled tick into a run of its own, started within the jitter', async () => {
    const id = await instance('tick');
    const tickRun = randomUUID();
    enqueued.length = 0;
    expect(await run({ connector: 'servicenow', instanceId: id, model: 'incident', runId: tickRun, trigger: 'schedule', jitterSeconds: 30 })).toMatchObject({ jitteredSeconds: expect.any(Number) });
    expect(enqueued).toHaveLength(1);
    const next = enqueued[0]!;
    expect(next.payload).toMatchObject({ trigger: 'schedule', jittered: true, instanceId: id });
    expect(next.payload.runId).not.toBe(tickRun);
    expect(next.singletonKey).toBe(syncKey(id, 'incident'));
    const delay = (next.startAfter as Date).getTime() - fx.clock.now().getTime();
    expect(delay).toBeGreaterThanOrEqual(0);
    expect(delay).toBeLessThan(30_000);
  });

  it('re-enqueues a deferred run for the time ServiceNow gave, same run id', async () => {
    const id = await instance('deferred');
    sn.insert('incident', incidentFields({ number: 'INC9000001', priority: '3', state: '1' }, sn.url));
    sn.failNext(1, { status: 429, retryAfterSeconds: 300 }, { pathPrefix: '/api/now/table/incident' });
    enqueued.length = 0;
    const runId = randomUUID();
    const summary = await run({ connector: 'servicenow', instanceId: id, model: 'incident', runId, trigger: 'manual' });
    expect(summary).toMatchObject({ status: 'deferred', errorCodes: ['rate_limited'] });
    expect(enqueued).toEqual([{ payload: expect.objectContaining({ runId, trigger: 'manual' }), startAfter: new Date((summary as { retryAt: string }).retryAt), singletonKey: syncKey(id, 'incident') }]);
    expect((enqueued[0]!.startAfter as Date).getTime() - fx.clock.now().getTime()).toBe(300_000);
    // The queue delivers it then: the same run completes.
    expect(await run(enqueued[0]!.payload)).toMatchObject({ runId, status: 'succeeded', counts: { created: 1 } });
  });

  it('hands a failed attempt to the queue to retry, and records the run failed on the last one', async () => {
    const id = await instance('failing');
    sn.failAlways({ status: 500 }, { pathPrefix: '/api/now/table/incident' });
    const runId = randomUUID();
    const payload = { connector: 'servicenow', instanceId: id, model: 'incident', runId, trigger: 'manual' } as const;
    await expect(run(payload, 0)).rejects.toMatchObject({ code: 'upstream_error' });
    const status = async () => (await fx.tdb.db.selectFrom('integration_runs').select('status').where('id', '=', runId).executeTakeFirstOrThrow()).status;
    expect(await status()).toBe('running');
    expect(await run(payload, 4)).toMatchObject({ status: 'failed', errorCodes: ['upstream_error'] });
    expect(await status()).toBe('failed');
    sn.failAlways(undefined);
    const health = await fx.tdb.db.selectFrom('integration_health_metrics').selectAll().where('config_id', '=', id).executeTakeFirstOrThrow();
    expect(health).toMatchObject({ status: 'degraded', last_error_code: 'upstream_error' });
  });

  it('does nothing for a disabled or deleted instance', async () => {
    const id = await instance('disabled');
    await fx.tdb.db.updateTable('integration_configs').set({ enabled: false }).where('id', '=', id).execute();
    expect(await run({ connector: 'servicenow', instanceId: id, model: 'incident', runId: randomUUID(), trigger: 'manual' })).toEqual({ skipped: 'disabled' });
    expect(await run({ connector: 'servicenow', instanceId: randomUUID(), model: 'incident', runId: randomUUID(), trigger: 'manual' })).toEqual({ skipped: 'instance_not_found' });
  });
});
