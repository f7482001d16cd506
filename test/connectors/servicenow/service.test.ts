/**
 * ServiceNow through the whole service (role all, real jobs, on its own database) against the fake ServiceNow:
 * configured from SERVICENOW_*, scheduled, a signed webhook leads to a sync run by the worker, and /metrics
 * shows the connector's health, records, upstream requests, circuits and waiting writes.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { newWebhookSecret } from '../../../src/connectors/webhook-bridge/signatures.ts';
import { loadConfig } from '../../../src/config.ts';
import { type Service, startService } from '../../../src/main.ts';
import { type FakeServiceNow, incidentFields, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { fastJobs } from '../../support/slack-service.ts';

describe('ServiceNow in the service', () => {
  let tdb: TestDatabase;
  let sn: FakeServiceNow;
  let service: Service;
  const secret = newWebhookSecret();
  const logs = captureLogs({ level: 'info' });

  beforeAll(async () => {
    tdb = await createTestDatabase();
    sn = await startFakeServiceNow();
    sn.insertMany('incident', 40, (i) => incidentFields({ number: `INC${String(5_500_000 + i)}`, priority: '3', state: '1' }, sn.url));
    const config = loadConfig({
      DATABASE_URL: tdb.url,
      HOST: '127.0.0.1',
      PORT: '0',
      PROJECTX_ENCRYPTION_KEY: `k1:${randomBytes(32).toString('base64')}`,
      SERVICENOW_BASE_URL: sn.url,
      SERVICENOW_OAUTH_CLIENT_ID: 'be3aeb583ace210011c15b24a43e25d8',
      SERVICENOW_OAUTH_CLIENT_SECRET: 'client_password',
      SERVICENOW_WEBHOOK_SECRET: secret,
    });
    if (!config.ok) throw new Error(config.problems.join('; '));
    service = await startService({ config: config.config, role: 'all', logger: logs.logger, jobs: fastJobs });
  });
  afterAll(async () => {
    await service.stop();
    await sn.close();
    await tdb.drop();
  });

  const metric = async (line: string) => (await (await fetch(`${service.http.url}/metrics`)).text()).split('\n').find((row) => row.startsWith(line));

  it('is configured from the environment, scheduled, synced on a signed webhook, and watched in /metrics', async () => {
    const instance = await tdb.db.selectFrom('integration_configs').select(['id', 'enabled', 'credentials']).where('type', '=', 'servicenow').executeTakeFirstOrThrow();
    expect(instance.enabled).toBe(true);
    expect(JSON.stringify(instance.credentials)).not.toContain('client_password');
    expect((await service.jobs.boss.getSchedules('connector.sync')).map((schedule) => schedule.cron).sort()).toEqual(['*/15 * * * *', '*/5 * * * *']);
    expect(await metric('integration_status{connector="servicenow",instance="default",status="unknown"}')).toMatch(/ 1$/);

    const body = JSON.stringify({ table: 'incident', sys_id: 'a'.repeat(32) });
    const id = `msg_${randomUUID().replaceAll('-', '')}`;
    const now = new Date();
    const response = await fetch(`${service.http.url}/api/integrations/servicenow/webhook`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(id, now, body) },
    });
    expect(response.status).toBe(202);
    const { result } = (await response.json()) as { result: { sync: string } };
    const run = () => tdb.db.selectFrom('integration_runs').select(['status', 'counts', 'trigger']).where('id', '=', result.sync).executeTakeFirst();
    await expect.poll(async () => (await run())?.status, { timeout: 30_000, interval: 100 }).toBe('succeeded');
    expect(await run()).toMatchObject({ trigger: 'webhook', counts: { created: 40 } });

    expect(await metric('integration_status{connector="servicenow",instance="default",status="healthy"}')).toMatch(/ 1$/);
    expect(await metric('sync_records_total{connector="servicenow",model="incident",outcome="created"}')).toMatch(/ 40$/);
    expect(await metric('upstream_requests_total{connector="servicenow",status="200"}')).toBeDefined();
    expect(await metric('circuit_state{connector="servicenow",direction="read"}')).toMatch(/ 0$/);
    expect(await metric('circuit_state{connector="servicenow",direction="write"}')).toMatch(/ 0$/);
    expect(await metric('sync_latency_seconds_count{connector="servicenow",model="incident",status="succeeded"}')).toMatch(/ 1$/);
    expect(await metric('connector_webhooks_total{connector="servicenow",outcome="accepted"}')).toMatch(/ 1$/);
    expect(logs.text()).not.toContain('client_password');
    expect(logs.text()).not.toContain(secret.slice(6));
  });
});
