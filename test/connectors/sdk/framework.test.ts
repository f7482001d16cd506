/**
 * The connector framework's shared state on a real database: instances and their encrypted credentials,
 * OAuth tokens shared and refreshed single-flight across processes, and the circuit breaker every worker sees.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import { createBreaker } from '../../../src/connectors/sdk/breaker.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { AuthUnavailable } from '../../../src/connectors/sdk/http-client.ts';
import { credentialAad, ensureInstanceFromEnv, loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { createTokenSource } from '../../../src/connectors/sdk/oauth.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';

let fx: DomainFixture;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const described = (secret = 'client-secret-value-1', password = 'basic-password-value-1') => ({
  name: 'default',
  settings: { baseUrl: 'http://127.0.0.1:9', clientId: 'projectx', user: 'svc.projectx' },
  credentials: { client_secret: secret, password },
});

beforeAll(async () => {
  fx = await domainFixture();
});
afterAll(() => fx.close());

async function newInstance(name: string): Promise<string> {
  const id = await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { ...described(), name });
  return id!;
}

describe('connector instances', () => {
  it('stores each credential encrypted, bound to its instance and field, and reads it back', async () => {
    const id = (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, described()))!;
    const row = await fx.tdb.db.selectFrom('integration_configs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ type: 'servicenow', name: 'default', enabled: true });
    expect(JSON.stringify(row.credentials)).not.toContain('client-secret-value-1');
    expect(JSON.stringify(row.credentials)).not.toContain('basic-password-value-1');
    expect((row.credentials as Record<string, { kid: string }>).client_secret!.kid).toBe('k1');

    const instance = await loadInstance(fx.tdb.db, keyring, servicenow, id);
    expect(instance.credential('client_secret')).toBe('client-secret-value-1');
    expect(instance.credential('password')).toBe('basic-password-value-1');
    expect(instance.credential('nothing')).toBeUndefined();
    expect(instance.settings).toMatchObject({ baseUrl: 'http://127.0.0.1:9', pageSize: 500, overlapSeconds: 60 });

    // A ciphertext moved to another field (or row) does not decrypt: the AAD names instance and field.
    const credentials = row.credentials;
    expect(() => keyring.decrypt(credentials.client_secret as never, credentialAad(id, 'password'))).toThrow(/could not be decrypted/);
  });

  it('audits credential changes from the environment, not restarts, and never re-enables what an operator disabled', async () => {
    const id = await newInstance('audited');
    await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { ...described(), name: 'audited' });
    const audit = () => fx.tdb.db.selectFrom('integration_credentials_audit').select(['action', 'actor', 'detail']).where('config_id', '=', id).orderBy('id').execute();
    expect((await audit()).map((row) => row.action)).toEqual(['credentials.created']);

    await fx.tdb.db.updateTable('integration_configs').set({ enabled: false }).where('id', '=', id).execute();
    await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { ...described('client-secret-value-2'), name: 'audited' });
    expect((await audit()).map((row) => row.action)).toEqual(['credentials.created', 'credentials.updated']);
    expect(JSON.stringify(await audit())).not.toContain('client-secret-value');
    const instance = await loadInstance(fx.tdb.db, keyring, servicenow, id);
    expect(instance.enabled).toBe(false);
    expect(instance.credential('client_secret')).toBe('client-secret-value-2');
  });

  it('is created once when several processes start together (a first deploy of web and workers)', async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, () => ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { ...described(), name: 'first-deploy' })));
    expect(new Set(ids).size).toBe(1);
    const audit = await fx.tdb.db.selectFrom('integration_credentials_audit').select('action').where('config_id', '=', ids[0]!).execute();
    expect(audit).toEqual([{ action: 'credentials.created' }]);
    expect((await loadInstance(fx.tdb.db, keyring, servicenow, ids[0]!)).credential('client_secret')).toBe('client-secret-value-1');
  });

  it('refuses to store credentials without an encryption key, saying what to set', async () => {
    await expect(ensureInstanceFromEnv(fx.tdb.db, undefined, servicenow, described())).rejects.toThrow(/PROJECTX_ENCRYPTION_KEY/);
  });
});

describe('OAuth tokens', () => {
  const source = (instanceId: string, grant: () => Promise<{ accessToken: string; expiresInSeconds: number }>) =>
    createTokenSource({ db: fx.tdb.db, keyring, instanceId, clock: fx.clock, logger: captureLogs().logger, grant });

  it('is fetched once for several processes at once, stored encrypted, and reused until it nears expiry', async () => {
    const id = await newInstance('tokens');
    let grants = 0;
    const grant = async () => {
      grants++;
      await new Promise((resolve) => setImmediate(resolve)); // let the other callers pile up behind the lock
      return { accessToken: `token-${grants}`, expiresInSeconds: 1800 };
    };
    // Three "processes" (separate caches) and several callers in each, all at once.
    const processes = [source(id, grant), source(id, grant), source(id, grant)];
    const tokens = await Promise.all(processes.flatMap((process) => [process.authorization(), process.authorization()]));
    expect(grants).toBe(1);
    expect(new Set(tokens)).toEqual(new Set(['Bearer token-1']));
    const stored = await fx.tdb.db.selectFrom('integration_tokens').selectAll().where('config_id', '=', id).executeTakeFirstOrThrow();
    expect(JSON.stringify(stored.token)).not.toContain('token-1');

    // 28 minutes later it is still fresh; at 29.5 (inside the 60 s margin) one process refreshes it for all.
    fx.clock.advance(28 * 60_000);
    expect(await processes[0]!.authorization()).toBe('Bearer token-1');
    fx.clock.advance(90_000);
    expect(await Promise.all(processes.map((process) => process.authorization()))).toEqual(['Bearer token-2', 'Bearer token-2', 'Bearer token-2']);
    expect(grants).toBe(2);
    const audit = await fx.tdb.db.selectFrom('integration_credentials_audit').select(['action', 'detail']).where('config_id', '=', id).where('action', '=', 'token.refreshed').execute();
    expect(audit).toHaveLength(2);
    expect(JSON.stringify(audit)).not.toContain('token-');
  });

  it('after a 401, gets a new token unless another process already did', async () => {
    const id = await newInstance('rejected');
    let grants = 0;
    const grant = () => Promise.resolve({ accessToken: `t${++grants}`, expiresInSeconds: 1800 });
    const a = source(id, grant);
    const b = source(id, grant);
    expect(await a.authorization()).toBe('Bearer t1');
    expect(await b.authorization()).toBe('Bearer t1');
    await a.refresh(); // t1 was refused: a new one
    expect(await a.authorization()).toBe('Bearer t2');
    await b.refresh(); // b saw t1 refused too, but a already replaced it: no third grant
    expect(await b.authorization()).toBe('Bearer t2');
    expect(grants).toBe(2);
  });

  it('passes a refusal of the token endpoint on as AuthUnavailable, and tries again next time', async () => {
    const id = await newInstance('refused');
    let refuse = true;
    const tokens = source(id, () => (refuse ? Promise.reject(new AuthUnavailable('oauth_client_refused', 'refused')) : Promise.resolve({ accessToken: 'ok', expiresInSeconds: 60 * 30 })));
    await expect(tokens.authorization()).rejects.toMatchObject({ code: 'oauth_client_refused' });
    refuse = false;
    expect(await tokens.authorization()).toBe('Bearer ok');
  });
});

describe('circuit breaker', () => {
  const breaker = (instanceId: string, name: string) =>
    createBreaker({ db: fx.tdb.db, events: fx.deps.events, clock: fx.clock, logger: captureLogs().logger, instance: { id: instanceId, name }, connector: servicenow, direction: 'write', threshold: 3, cooldownMs: 60_000 });
  const circuitEvents = async (instanceId: string) =>
    (await fx.jobs.boss.findJobs<{ payload: { type: string; summary: string } }>('domain.event', { data: { payload: { subject: { id: instanceId } } } })).map((job) => job.data.payload);

  it('opens after repeated failures, lets exactly one probe through after the cooldown, and closes on its success', async () => {
    const id = await newInstance('breaker');
    const worker1 = breaker(id, 'breaker');
    const worker2 = breaker(id, 'breaker'); // another process: shares the state through the database
    expect(await worker1.admit()).toEqual({ allowed: true, probe: false });
    await worker1.failed('upstream_error');
    await worker2.failed('upstream_error');
    expect(await worker2.state()).toBe('closed');
    await worker1.failed('upstream_error');
    expect(await worker2.state()).toBe('open');
    expect(await worker2.admit()).toMatchObject({ allowed: false, state: 'open', retryAt: new Date(fx.clock.now().getTime() + 60_000) });
    const degraded = await circuitEvents(id);
    expect(degraded.map((event) => event.type)).toEqual(['integration.degraded']);
    expect(degraded[0]!.summary).toContain('RB-002');

    fx.clock.advance(60_000);
    const admissions = await Promise.all([worker1.admit(), worker2.admit(), worker1.admit()]);
    expect(admissions.filter((admission) => admission.allowed)).toEqual([{ allowed: true, probe: true }]);
    expect(await worker1.state()).toBe('half_open');

    // The probe fails: open again, and no second "degraded" announcement.
    await worker1.failed('upstream_error');
    expect(await worker1.state()).toBe('open');
    expect((await circuitEvents(id)).map((event) => event.type)).toEqual(['integration.degraded']);

    fx.clock.advance(60_000);
    expect(await worker2.admit()).toEqual({ allowed: true, probe: true });
    await worker2.succeeded();
    expect(await worker1.state()).toBe('closed');
    expect(await worker1.admit()).toEqual({ allowed: true, probe: false });
    expect((await circuitEvents(id)).map((event) => event.type).sort()).toEqual(['integration.degraded', 'integration.recovered']);
  });

  it('supersedes a probe that never reported back (its process died) after another cooldown', async () => {
    const id = await newInstance('lost-probe');
    const worker = breaker(id, 'lost-probe');
    for (let i = 0; i < 3; i++) await worker.failed('network_error');
    fx.clock.advance(60_000);
    expect(await worker.admit()).toEqual({ allowed: true, probe: true });
    expect(await worker.admit()).toMatchObject({ allowed: false, state: 'half_open' });
    fx.clock.advance(60_000);
    expect(await worker.admit()).toEqual({ allowed: true, probe: true });
  });
});
