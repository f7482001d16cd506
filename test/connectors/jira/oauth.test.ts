/**
 * Jira over OAuth 2.0 (3LO), against the fake Atlassian (auth host, API gateway, site: three servers on
 * 127.0.0.1) and a real database: an admin's consent from `projectx connectors authorize jira` (a single-use,
 * expiring link; a state signed and bound to the browser), the code exchanged and the cloud id found, tokens
 * stored encrypted; requests through the gateway; ROTATING refresh tokens refreshed once across two processes
 * racing (no invalid_grant), and a refused refresh token marking the instance for consent with one alert
 * carrying a new link.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { type ServerType, serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jira } from '../../../src/connectors/jira/index.ts';
import type { JiraSettings } from '../../../src/connectors/jira/client.ts';
import { createBreaker } from '../../../src/connectors/sdk/breaker.ts';
import { connectorsVerb } from '../../../src/connectors/sdk/cli.ts';
import { createConsentRoutes } from '../../../src/connectors/sdk/consent.ts';
import type { ConnectorRuntime } from '../../../src/connectors/sdk/contract.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv, loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { runSync } from '../../../src/connectors/sdk/sync.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type FakeJira, startFakeJira } from '../../fakes/jira/server.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { serviceConnectors as connectors } from '../../support/jobs.ts';
import { captureLogs } from '../../support/logs.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const CLIENT = { clientId: 'px-oauth-client', clientSecret: 'px-oauth-client-secret' };
let fx: DomainFixture;
let fake: FakeJira;
let runtime: ConnectorRuntime;
let server: ServerType;
let publicUrl: string;
let instanceId: string;

beforeAll(async () => {
  fx = await domainFixture();
  // No reuse leeway: a refresh token spent twice is refused at once, so a race that spent it twice would show.
  fake = await startFakeJira({ now: () => fx.clock.now(), oauth: { ...CLIENT, refreshReuseLeewaySeconds: 0, accessTokenTtlSeconds: 3600 } });
  runtime = { db: fx.tdb.db, logger: captureLogs().logger, clock: fx.clock, metrics: createMetrics({ defaultMetrics: false }), events: fx.deps.events };
  // The consent routes read PUBLIC_URL at request time: set once the server has its port.
  const consentDeps = { db: fx.tdb.db, keyring, clock: fx.clock, logger: captureLogs().logger, runtime, connectors, publicUrl: undefined as string | undefined };
  const app = createConsentRoutes(consentDeps);
  server = await new Promise<ServerType>((resolve) => {
    const started = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(started));
  });
  publicUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  consentDeps.publicUrl = publicUrl;
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, {
    name: 'default',
    settings: settings(),
    credentials: { client_secret: CLIENT.clientSecret },
  }))!;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await fake.close();
  await fx.close();
});

function settings(): JiraSettings {
  return jira.settings.parse({ baseUrl: fake.url, deployment: 'cloud', authMode: 'oauth', oauth: { clientId: CLIENT.clientId, authUrl: fake.authUrl, apiUrl: fake.apiUrl, publicUrl }, projectKeys: ['SEC'] });
}

/** A browser: follows redirects itself, keeping cookies per host, and stops at our callback's answer. */
async function consent(link: string, options: { cookies?: boolean } = {}): Promise<Response> {
  const jar = new Map<string, string>();
  let url = link;
  for (let hop = 0; hop < 5; hop++) {
    const host = new URL(url).host;
    const response = await fetch(url, { redirect: 'manual', headers: options.cookies === false || !jar.has(host) ? {} : { cookie: jar.get(host)! } });
    const cookie = response.headers.get('set-cookie');
    if (cookie) jar.set(host, cookie.split(';')[0]!);
    const location = response.headers.get('location');
    if (response.status !== 302 || !location) return response;
    url = new URL(location, url).toString();
  }
  throw new Error('too many redirects');
}

async function authorizeLink(): Promise<string> {
  const ctx = operatorContext(fx, { keyring, env: { PUBLIC_URL: publicUrl } });
  const printed = await runOperator(ctx, connectorsVerb, ['authorize', 'jira']);
  expect(printed.code).toBe(0);
  const link = /(http:\/\/\S+\/oauth\/start\/jira\?link=[A-Za-z0-9_-]{43})/.exec(printed.out.join('\n'))?.[1];
  expect(link).toBeDefined();
  return link!;
}

async function syncOnce(): Promise<Awaited<ReturnType<typeof runSync>>> {
  const instance = await loadInstance(fx.tdb.db, keyring, jira, instanceId);
  const client = jira.createClient(instance, { ...runtime, keyring });
  try {
    return await runSync({ runtime, connector: jira, instance, client, breaker: createBreaker({ ...runtime, instance, connector: jira, direction: 'read' }), request: { runId: randomUUID(), model: 'issue', full: true, trigger: 'manual' }, finalAttempt: true, signal: new AbortController().signal });
  } finally {
    await client.close();
  }
}

const refreshGrants = () => fake.oauth.grants.filter((grant) => grant.grant === 'refresh_token');

describe('Jira OAuth 2.0 (3LO)', () => {
  it('is not authorized until an admin consents: a sync fails with a clear code', async () => {
    const summary = await syncOnce();
    expect(summary).toMatchObject({ status: 'failed', errorCodes: ['authorization_required'] });
  });

  it('takes an admin\'s consent through a single-use link, stores the tokens encrypted, and syncs through the gateway', async () => {
    const link = await authorizeLink();
    // Another browser (no cookie) cannot complete a consent started here.
    const elsewhere = await consent(link, { cookies: false });
    expect(elsewhere.status).toBe(400);
    expect(await elsewhere.json()).toMatchObject({ error: { code: 'state_wrong_browser' } });
    // That attempt did not spend the link (it was refused before), so the admin's own browser still can.
    const done = await consent(link);
    expect(done.status).toBe(200);
    expect(await done.text()).toContain('Jira (default) is connected to ProjectX');
    const used = await consent(link);
    expect(used.status).toBe(400);
    expect(await used.json()).toMatchObject({ error: { code: 'link_invalid' } });

    const stored = await fx.tdb.db.selectFrom('integration_authorizations').selectAll().where('config_id', '=', instanceId).executeTakeFirstOrThrow();
    expect(stored).toMatchObject({ resource_id: fake.cloudId, resource_url: fake.url, authorized_by: 'consent-link:cli', needs_reauth_since: null });
    expect(JSON.stringify(stored.refresh_token)).not.toMatch(/refresh/i);
    expect(stored.refresh_token).toMatchObject({ v: 1, kid: 'k1', ct: expect.any(String) });

    fake.createIssue({ project: 'SEC', summary: 'Rotate the HSM keys' });
    const summary = await syncOnce();
    expect(summary).toMatchObject({ status: 'succeeded', counts: { created: 1 } });
    const searches = fake.requests.filter((request) => request.path.endsWith('/rest/api/3/search/jql') && request.status === 200);
    expect(searches.at(-1)).toMatchObject({ host: 'api', auth: 'oauth' });
    expect(searches.at(-1)!.path).toBe(`/ex/jira/${fake.cloudId}/rest/api/3/search/jql`);
  });

  it('refreshes a rotating refresh token once when two processes need a token at the same moment', async () => {
    fx.clock.advance(2 * 3_600_000); // the access token has expired
    fake.oauth.expireAccessTokens();
    const before = refreshGrants().length;
    const results = await Promise.all([syncOnce(), syncOnce()]);
    expect(results.map((result) => result.status)).toEqual(['succeeded', 'succeeded']);
    expect(refreshGrants().slice(before)).toEqual([expect.objectContaining({ ok: true })]);
    // The successor was stored: the next refresh uses it (the spent one would be refused).
    fx.clock.advance(2 * 3_600_000);
    fake.oauth.expireAccessTokens();
    expect((await syncOnce()).status).toBe('succeeded');
    expect(refreshGrants().slice(before).map((grant) => grant.ok)).toEqual([true, true]);
  });

  it('marks the instance for consent when Jira refuses the refresh token, alerts once with a new link, and stops asking', async () => {
    fx.clock.advance(2 * 3_600_000);
    fake.oauth.expireAccessTokens();
    fake.oauth.revokeRefreshTokens();
    const before = refreshGrants().length;
    const failed = await syncOnce();
    expect(failed).toMatchObject({ status: 'failed', errorCodes: ['reauthorization_required'] });
    expect(refreshGrants().slice(before)).toEqual([expect.objectContaining({ ok: false, error: 'invalid_grant' })]);
    const row = await fx.tdb.db.selectFrom('integration_authorizations').select(['needs_reauth_since', 'reauth_reason']).where('config_id', '=', instanceId).executeTakeFirstOrThrow();
    expect(row.needs_reauth_since).not.toBeNull();
    const alerts = await fx.jobs.boss.findJobs<{ payload: { type: string; summary: string; data: { authorizeUrl?: string; runbookId: string } } }>('domain.event', { data: { payload: { type: 'integration.auth_failing' } } });
    expect(alerts).toHaveLength(1);
    const alert = alerts[0]!.data.payload;
    expect(alert.data.runbookId).toBe('RB-003');
    expect(alert.data.authorizeUrl).toMatch(new RegExp(`^${publicUrl}/oauth/start/jira\\?link=`));
    expect(alert.summary).toContain(alert.data.authorizeUrl!);

    // Until an admin consents again, no refresh is attempted and no second alert is raised.
    expect((await syncOnce()).errorCodes).toEqual(['reauthorization_required']);
    expect(refreshGrants()).toHaveLength(before + 1);
    expect(await fx.jobs.boss.findJobs('domain.event', { data: { payload: { type: 'integration.auth_failing' } } })).toHaveLength(1);

    // The link in the alert works: consent again, and syncs resume.
    expect((await consent(alert.data.authorizeUrl!)).status).toBe(200);
    expect((await syncOnce()).status).toBe('succeeded');
  });

  it('refuses to print a link for an instance that does not use OAuth, or without PUBLIC_URL', async () => {
    const ctx = operatorContext(fx, { keyring });
    await expect(runOperator(ctx, connectorsVerb, ['authorize', 'jira'])).rejects.toThrow('PUBLIC_URL is not set');
    await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, { name: 'dc', settings: { baseUrl: fake.url, deployment: 'datacenter', authMode: 'pat', projectKeys: ['SEC'] }, credentials: { api_token: 'dc-pat-secret' } });
    const withUrl = operatorContext(fx, { keyring, env: { PUBLIC_URL: publicUrl } });
    await expect(runOperator(withUrl, connectorsVerb, ['authorize', 'jira', '--instance', 'dc'])).rejects.toThrow('does not use OAuth');
    await expect(runOperator(withUrl, connectorsVerb, ['authorize', 'jira', '--ttl', '0'])).rejects.toThrow('--ttl takes whole minutes');

    // A link whose instance no longer loads (its settings broken meanwhile) is refused with why, not a 500.
    const link = await authorizeLink();
    const good = await fx.tdb.db.selectFrom('integration_configs').select('settings').where('id', '=', instanceId).executeTakeFirstOrThrow();
    await fx.tdb.db.updateTable('integration_configs').set({ settings: JSON.stringify({ baseUrl: 'not a url' }) }).where('id', '=', instanceId).execute();
    const broken = await consent(link);
    expect(broken.status).toBe(409);
    expect(await broken.json()).toMatchObject({ error: { code: 'invalid_settings' } });
    await fx.tdb.db.updateTable('integration_configs').set({ settings: JSON.stringify(good.settings) }).where('id', '=', instanceId).execute();
  });
});
