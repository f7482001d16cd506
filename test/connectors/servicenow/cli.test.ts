/**
 * `projectx sync servicenow` and `projectx credentials rotate-key` (ServiceNow's credentials and token, and a
 * webhook subscription's secret and URL), run as the real binary against a real database and the fake ServiceNow.
 */
import { randomBytes } from 'node:crypto';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { addSubscription, subscriptionUrl } from '../../../src/connectors/webhook-bridge/outbound/subscriptions.ts';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeServiceNow, changeRequestFields, incidentFields, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { killAll, spawnCli } from '../../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';

let tdb: TestDatabase;
let sn: FakeServiceNow;
const K1 = `k1:${randomBytes(32).toString('base64')}`;
const K2 = `k2:${randomBytes(32).toString('base64')}`;
const keyringOf = (entry: string) => new Keyring([{ id: entry.split(':')[0]!, key: Buffer.from(entry.slice(entry.indexOf(':') + 1), 'base64') }]);
const at = (seconds: number) => new Date(Date.parse('2026-11-01T00:00:00Z') + seconds * 1000);

beforeAll(async () => {
  tdb = await createTestDatabase();
  sn = await startFakeServiceNow();
  sn.insertMany('incident', 120, (i) => incidentFields({ number: `INC${String(1_000_000 + i)}`, priority: '3', state: '2' }, sn.url), (i) => at(i));
  sn.insertMany('change_request', 30, (i) => changeRequestFields({ number: `CHG${String(1_000_000 + i)}`, state: '-5' }, sn.url), (i) => at(i));
});
afterEach(() => killAll());
afterAll(async () => {
  await sn.close();
  await tdb.drop();
});

const env = (keys = K1): Record<string, string> => ({
  DATABASE_URL: tdb.url,
  PROJECTX_ENCRYPTION_KEY: keys,
  SERVICENOW_BASE_URL: sn.url,
  SERVICENOW_OAUTH_CLIENT_ID: 'be3aeb583ace210011c15b24a43e25d8',
  SERVICENOW_OAUTH_CLIENT_SECRET: 'client_password',
  LOG_LEVEL: 'warn',
  PATH: process.env.PATH ?? '',
});

async function cli(args: string[], keys = K1) {
  const run = spawnCli(args, { env: env(keys) });
  const { code } = await run.exited;
  return { code, out: run.stdout(), err: run.stderr(), json: run.stdout().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('projectx sync', () => {
  it('runs a sync of every model now and prints each run summary as JSON', async () => {
    const first = await cli(['sync', 'servicenow', '--wait']);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    expect(first.json).toHaveLength(2);
    const byModel = Object.fromEntries(first.json.map((summary) => [summary.model, summary]));
    expect(byModel.incident).toMatchObject({ connector: 'servicenow', instance: 'default', status: 'succeeded', pages: 1, seen: 120, created: 120, updated: 0, unchanged: 0, rejected: 0 });
    expect(byModel.change_request).toMatchObject({ status: 'succeeded', seen: 30, created: 30 });
    expect(byModel.incident!.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof byModel.incident!.durationMs).toBe('number');

    const full = await cli(['sync', 'servicenow', '--full', '--wait', '--model', 'incident']);
    expect(full.code).toBe(0);
    expect(full.json).toEqual([expect.objectContaining({ model: 'incident', status: 'succeeded', seen: 120, created: 0, updated: 0, unchanged: 120 })]);

    // Without --wait it only queues, and says so.
    const queued = await cli(['sync', 'servicenow', '--model', 'incident']);
    expect(queued.json).toEqual([expect.objectContaining({ status: 'queued', model: 'incident' })]);
  });

  it('answers bad input with a message and a non-zero exit', async () => {
    const unknown = await cli(['sync', 'nope']);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toBe('error: unknown connector "nope" (connectors: servicenow, jira)\nUsage: projectx sync <connector> [--full] [--wait] [--model <name>]... [--instance <name>] [--timeout <seconds>]\n');
    const model = await cli(['sync', 'servicenow', '--model', 'problem']);
    expect(model.code).toBe(2);
    expect(model.err).toContain('has no model "problem"');
    const instance = await cli(['sync', 'servicenow', '--instance', 'other']);
    expect(instance.code).toBe(1);
    expect(instance.err).toContain('no enabled ServiceNow instance named other');
  });
});

describe('projectx credentials rotate-key', () => {
  it('re-encrypts every stored secret under the new key, after which the old key can go', async () => {
    await cli(['sync', 'servicenow', '--wait', '--model', 'incident']); // the instance, and a token, exist
    // A subscription: its signing secret and its URL (which holds the receiver's token) are encrypted too.
    const hook = `https://hooks.example.com/services/${randomBytes(8).toString('hex')}`;
    const added = await addSubscription(tdb.db, keyringOf(K1), { url: hook, eventTypes: ['task.*'] }, new Date());
    if (!added.ok) throw new Error(added.refusal.message);
    const subscription = added.value.subscription.id;
    const rotated = await cli(['credentials', 'rotate-key'], `${K2},${K1}`);
    expect(rotated.err).toBe('');
    expect(rotated.code).toBe(0);
    // Not at a terminal: the result as JSON.
    expect(JSON.parse(rotated.out)).toEqual({ keyId: 'k2', reencrypted: 4, byKind: { integration_credential: 1, integration_token: 1, webhook_subscription_secret: 1, webhook_subscription_url: 1 }, alreadyCurrent: 0 });
    const stored = await tdb.db.selectFrom('integration_configs').select('credentials').where('type', '=', 'servicenow').executeTakeFirstOrThrow();
    expect((stored.credentials as Record<string, { kid: string }>).client_secret!.kid).toBe('k2');
    const row = await tdb.db.selectFrom('webhook_subscriptions').select(['id', 'url', 'url_encrypted']).where('id', '=', subscription).executeTakeFirstOrThrow();
    expect((row.url_encrypted as { kid: string }).kid).toBe('k2');
    expect(subscriptionUrl(keyringOf(K2), row)).toBe(hook);
    const audit = await tdb.db.selectFrom('integration_credentials_audit').select(['action', 'key_id']).where('action', 'like', '%rotate_key').execute();
    expect(audit).toEqual(expect.arrayContaining([{ action: 'credentials.rotate_key', key_id: 'k2' }, { action: 'keyring.rotate_key', key_id: 'k2' }]));

    // The old key is gone: everything still reads.
    const after = await cli(['sync', 'servicenow', '--wait', '--model', 'incident'], K2);
    expect(after.code).toBe(0);
    expect(after.json[0]).toMatchObject({ status: 'succeeded' });
    expect(JSON.parse((await cli(['credentials', 'rotate-key'], K2)).out)).toEqual({ keyId: 'k2', reencrypted: 0, byKind: {}, alreadyCurrent: 4 });
  });

  it('changes nothing when a secret cannot be read with the loaded keys', async () => {
    const K3 = `k3:${randomBytes(32).toString('base64')}`;
    const refused = await cli(['credentials', 'rotate-key'], K3);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/cannot be decrypted with the loaded keys .*integration_credential:.*nothing was changed/);
    const stored = await tdb.db.selectFrom('integration_configs').select('credentials').where('type', '=', 'servicenow').executeTakeFirstOrThrow();
    expect((stored.credentials as Record<string, { kid: string }>).client_secret!.kid).toBe('k2');
  });
});
