/**
 * `POST /api/integrations/servicenow/webhook`: signed with the instance's Standard Webhooks secret, recorded
 * with its sync job in one transaction, debounced, replay-safe; every bad input gets its status and code.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook } from 'standardwebhooks';
import { serviceConnectors as connectors } from '../../support/jobs.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../../src/connectors/sdk/instances.ts';
import { createConnectorWebhooks } from '../../../src/connectors/sdk/webhook.ts';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import { newWebhookSecret } from '../../../src/connectors/webhook-bridge/signatures.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { createDatabase } from '../../../src/db/database.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';

let fx: DomainFixture;
let app: ReturnType<typeof createConnectorWebhooks>;
let instanceId: string;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const secret = newWebhookSecret();
const logs = captureLogs();
const SYS_ID = 'a'.repeat(32);

beforeAll(async () => {
  fx = await domainFixture();
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: 'default', settings: { baseUrl: 'http://127.0.0.1:9', clientId: 'id' }, credentials: { client_secret: 'client-secret-1', webhook_secret: secret } }))!;
  await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: 'nosecret', settings: { baseUrl: 'http://127.0.0.1:9', clientId: 'id' }, credentials: { client_secret: 'client-secret-1' } });
  app = createConnectorWebhooks({ db: fx.tdb.db, keyring, jobs: fx.jobs, clock: fx.clock, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), connectors });
});
afterAll(() => fx.close());

function post(body: unknown, options: { id?: string; secret?: string; at?: number; path?: string; raw?: string } = {}) {
  const text = options.raw ?? JSON.stringify(body);
  const id = options.id ?? `msg_${randomUUID().replaceAll('-', '')}`;
  const at = new Date(options.at ?? fx.clock.now().getTime());
  const signature = new Webhook(options.secret ?? secret).sign(id, at, text);
  return app.request(options.path ?? '/api/integrations/servicenow/webhook', { method: 'POST', body: text, headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature } });
}
const syncJobs = () => fx.jobs.boss.findJobs<{ payload: { trigger: string; model: string; runId: string } }>('connector.sync', { data: { payload: { instanceId, trigger: 'webhook' } } });

describe('ServiceNow webhook', () => {
  it('records a signed change and queues one sync of its model, debounced; a repeat does nothing again', async () => {
    const id = `msg_${randomUUID().replaceAll('-', '')}`;
    const first = await post({ table: 'incident', sys_id: SYS_ID }, { id });
    expect(first.status).toBe(202);
    const body = (await first.json()) as { id: string; result: { sync: string; model: string; externalId: string } };
    expect(body.result).toMatchObject({ model: 'incident', externalId: SYS_ID, sync: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    const stored = await fx.tdb.db.selectFrom('inbound_events').select(['source', 'kind', 'status', 'delivery_id']).where('id', '=', body.id).executeTakeFirstOrThrow();
    expect(stored).toEqual({ source: 'servicenow:default', kind: 'sync.incident', status: 'processed', delivery_id: id });
    expect((await syncJobs()).map((job) => job.data.payload.runId)).toEqual([body.result.sync]);

    const again = await post({ table: 'incident', sys_id: SYS_ID }, { id });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ id: body.id, duplicate: true, result: body.result });
    expect(await syncJobs()).toHaveLength(1);

    // More changes in the same window: one more run at the window's end, then nothing more to queue.
    const second = (await (await post({ table: 'incident', sys_id: 'b'.repeat(32) })).json()) as { result: { sync: string } };
    const third = (await (await post({ table: 'incident', sys_id: 'c'.repeat(32) })).json()) as { result: { sync: string } };
    expect(second.result.sync).toMatch(/^[0-9a-f-]{36}$/);
    expect(third.result.sync).toBe('already_queued');
    const jobs = await syncJobs();
    expect(jobs).toHaveLength(2);
    const later = jobs.find((job) => job.data.payload.runId === second.result.sync)!;
    expect(later.startAfter.getTime()).toBeGreaterThan(Date.now());
  });

  it('answers bad input with its status and code, and stores nothing', async () => {
    const count = async () => Number((await fx.tdb.db.selectFrom('inbound_events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    const before = await count();
    const cases: [Response | Promise<Response>, number, string][] = [
      [post({ table: 'incident', sys_id: SYS_ID }, { secret: newWebhookSecret() }), 401, 'invalid_signature'],
      [post({ table: 'incident', sys_id: SYS_ID }, { at: fx.clock.now().getTime() - 10 * 60_000 }), 401, 'stale_timestamp'],
      [app.request('/api/integrations/servicenow/webhook', { method: 'POST', body: '{}' }), 401, 'missing_signature'],
      [post(undefined, { raw: 'not json' }), 422, 'invalid_payload'],
      [post({ table: 'sys_user', sys_id: SYS_ID }), 422, 'invalid_payload'],
      [post({ table: 'incident', sys_id: 'nope' }), 422, 'invalid_payload'],
      [post({ table: 'incident', sys_id: SYS_ID }, { path: '/api/integrations/nope/webhook' }), 404, 'unknown_webhook'],
      [post({ table: 'incident', sys_id: SYS_ID }, { path: '/api/integrations/servicenow/webhook?instance=other' }), 404, 'unknown_instance'],
      [post({ table: 'incident', sys_id: SYS_ID }, { path: '/api/integrations/servicenow/webhook?instance=nosecret' }), 404, 'webhook_not_configured'],
    ];
    for (const [response, status, code] of cases) {
      const answer = await response;
      expect({ status: answer.status, code: ((await answer.json()) as { error: { code: string } }).error.code }).toEqual({ status, code });
    }
    expect(await count()).toBe(before);
    expect(logs.text()).not.toContain(secret.slice(6));
  });

  it('answers 503 with Retry-After when the database cannot be reached, never a 500', async () => {
    const away = createDatabase({ connectionString: 'postgres://postgres@127.0.0.1:1/none', max: 1 });
    try {
      const down = createConnectorWebhooks({ db: away, keyring, jobs: fx.jobs, clock: fx.clock, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), connectors });
      const answer = await down.request('/api/integrations/servicenow/webhook', { method: 'POST', body: '{}' });
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBe('30');
      expect(((await answer.json()) as { error: { code: string } }).error.code).toBe('webhook_unavailable');
    } finally {
      await away.destroy();
    }
  });
});
