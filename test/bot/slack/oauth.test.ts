/**
 * Multi-workspace install through the real routes and the fake Slack: a signed, expiring, browser-bound
 * state; the code exchange; the installation stored with its token encrypted (no plaintext in the row); events
 * authorized with the stored token (org-wide installs by enterprise id); app_uninstalled revokes it.
 */
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackSurface } from '../../../src/bot/slack/surface.ts';
import { checkState, issueState } from '../../../src/http/oauth-state.ts';
import { findInstallation } from '../../../src/bot/slack/installations.ts';
import { slackRefreshTokens } from '../../../src/bot/slack/token-refresh.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { loadConfig } from '../../../src/config.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { linkIdentity } from '../../../src/domain/users.ts';
import { createApp } from '../../../src/http/app.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type FakeSlack, startFakeSlack } from '../../fakes/slack/server.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { SIGNING_SECRET, signedRequest, slashCommandBody } from '../../support/slack.ts';

const CLIENT = { id: '1234.5678', secret: 'client-secret-abcdef012345' };

describe('Slack installs', () => {
  let fx: DomainFixture;
  let fake: FakeSlack;
  let web: Hono;
  const keyring = new Keyring([{ id: 'k1', key: Buffer.alloc(32, 9) }]);
  const logs = captureLogs({ secrets: [CLIENT.secret] });

  beforeAll(async () => {
    fx = await domainFixture();
    fx.clock.set(new Date());
    fake = await startFakeSlack();
    const config = loadConfig({ SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_CLIENT_ID: CLIENT.id, SLACK_CLIENT_SECRET: CLIENT.secret, SLACK_ALLOWED_WORKSPACES: 'TWS1,EORG,TROT', SLACK_API_URL: fake.apiUrl, PUBLIC_URL: 'https://projectx.example.com' });
    if (!config.ok) throw new Error(config.problems.join('; '));
    web = createApp({ logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), readiness: [], bodyLimitBytes: 1 << 20 });
    createSlackSurface({ config: config.config, domain: fx.deps, jobs: fx.jobs, keyring, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), integrations: () => Promise.resolve([]) })!.mount(web);
  });
  afterAll(async () => {
    await fake.close();
    await fx.close();
  });

  /** Starts an install and returns the state and the browser's cookie. */
  const begin = async () => {
    const res = await web.request('/slack/install');
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    return { location, state: location.searchParams.get('state')!, cookie };
  };
  const callback = (query: string, cookie?: string) => web.request(`/oauth/callback/slack?${query}`, cookie ? { headers: { cookie } } : {});

  it('redirects to Slack with the client id, the scopes and a signed state bound by cookie', async () => {
    const { location, cookie } = await begin();
    expect(`${location.origin}${location.pathname}`).toBe('https://slack.com/oauth/v2/authorize');
    expect(location.searchParams.get('client_id')).toBe(CLIENT.id);
    expect(location.searchParams.get('scope')).toContain('chat:write');
    expect(location.searchParams.get('redirect_uri')).toBe('https://projectx.example.com/oauth/callback/slack');
    expect(cookie).toMatch(/^projectx_slack_oauth=/);
  });

  it('stores a workspace install with its tokens encrypted, and serves that workspace with them', async () => {
    fake.oauth({ 'code-ws': { clientId: CLIENT.id, clientSecret: CLIENT.secret, team: { id: 'TWS1', name: 'Workspace' }, accessToken: 'xoxb-workspace-token-0001', redirectUri: 'https://projectx.example.com/oauth/callback/slack', tokenRotation: false } });
    const { state, cookie } = await begin();
    const res = await callback(`code=code-ws&state=${encodeURIComponent(state)}`, cookie);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('ProjectX is installed in Slack');
    const row = await fx.tdb.db.selectFrom('slack_installations').selectAll().where('team_id', '=', 'TWS1').executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain('xoxb-workspace-token-0001');
    expect(row.bot_token).toMatchObject({ v: 1, kid: 'k1' });
    expect((await findInstallation(fx.tdb.db, keyring, { teamId: 'TWS1' }))?.botToken).toBe('xoxb-workspace-token-0001');
    expect(await fx.tdb.db.selectFrom('integration_credentials_audit').select('action').execute()).toEqual(expect.arrayContaining([{ action: 'slack.installed' }]));

    // A command from that workspace is served with the stored token (views.open uses it).
    const user = await fx.user({ roles: ['contributor'] });
    await linkIdentity(fx.tdb.db, user.id, { surface: 'slack', tenant: 'TWS1', externalId: 'WWS1' }, 'test');
    await fx.control({ id: 'AC-9' });
    await web.request('/slack/events', signedRequest(slashCommandBody({ team_id: 'TWS1', enterprise_id: '', user_id: 'WWS1', text: 'evidence AC-9', trigger_id: 'trg-ws-1' }), { now: fx.clock.now() }));
    await expect.poll(() => fake.callsTo('views.open').at(-1)?.token, { timeout: 5000 }).toBe('xoxb-workspace-token-0001');
  });

  it('resolves an org-wide (Enterprise Grid) install by enterprise id, for any of its workspaces', async () => {
    fake.oauth({ 'code-org': { clientId: CLIENT.id, clientSecret: CLIENT.secret, team: { id: 'TORG', name: 'Org' }, enterprise: { id: 'EORG', name: 'Org' }, isEnterpriseInstall: true, accessToken: 'xoxb-org-token-0002', redirectUri: 'https://projectx.example.com/oauth/callback/slack' } });
    const { state, cookie } = await begin();
    expect((await callback(`code=code-org&state=${encodeURIComponent(state)}`, cookie)).status).toBe(200);
    expect((await findInstallation(fx.tdb.db, keyring, { enterpriseId: 'EORG', teamId: 'TANYWORKSPACE' }))?.botToken).toBe('xoxb-org-token-0002');
  });

  it.each([
    ['a tampered state', (state: string) => `${state.slice(0, -2)}xx`, true, 'state_invalid'],
    ['another browser (no cookie)', (state: string) => state, false, 'state_wrong_browser'],
  ] as const)('refuses %s with 400', async (_label, mangle, withCookie, code) => {
    const { state, cookie } = await begin();
    const res = await callback(`code=whatever&state=${encodeURIComponent(mangle(state))}`, withCookie ? cookie : undefined);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code } });
  });

  it('refuses an expired state and an unknown code, and never logs the client secret', async () => {
    const now = new Date();
    const { state, nonce } = issueState(CLIENT.secret, now);
    expect(checkState(CLIENT.secret, state, nonce, new Date(now.getTime() + 11 * 60_000))).toBe('expired');
    const fresh = await begin();
    const res = await callback(`code=never-issued&state=${encodeURIComponent(fresh.state)}`, fresh.cookie);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: 'slack_install_failed', message: 'Slack refused the install code (invalid_code)' } });
    expect(logs.text()).not.toContain(CLIENT.secret);
  });

  it('refreshes rotating tokens before they expire, once, even with two workers at the same time', async () => {
    fake.oauth({ 'code-rot': { clientId: CLIENT.id, clientSecret: CLIENT.secret, team: { id: 'TROT', name: 'Rotating' }, redirectUri: 'https://projectx.example.com/oauth/callback/slack', tokenRotation: true } });
    const { state, cookie } = await begin();
    expect((await callback(`code=code-rot&state=${encodeURIComponent(state)}`, cookie)).status).toBe(200);
    const before = await findInstallation(fx.tdb.db, keyring, { teamId: 'TROT' });
    expect(before?.refreshToken).toBeDefined();
    // Pretend the 12-hour token is 10 minutes from expiry.
    await fx.tdb.db.updateTable('slack_installations').set({ token_expires_at: new Date(fx.clock.now().getTime() + 10 * 60_000) }).where('team_id', '=', 'TROT').execute();
    const config = loadConfig({ SLACK_CLIENT_ID: CLIENT.id, SLACK_CLIENT_SECRET: CLIENT.secret, SLACK_API_URL: fake.apiUrl });
    if (!config.ok) throw new Error('config');
    const deps = { db: fx.tdb.db, clock: fx.clock, config: config.config, keyring, logger: logs.logger } as unknown as JobDeps;
    const context = { deps, logger: logs.logger, signal: new AbortController().signal, job: { id: 'j', name: slackRefreshTokens.name, retryCount: 0 } };
    const results = await Promise.all([slackRefreshTokens.handler({}, context), slackRefreshTokens.handler({}, context)]);
    expect(results.map((result) => (result as { refreshed: number }).refreshed).sort()).toEqual([0, 1]);
    const after = await findInstallation(fx.tdb.db, keyring, { teamId: 'TROT' });
    expect(after?.botToken).not.toBe(before?.botToken);
    expect(after?.tokenExpiresAt?.getTime()).toBeGreaterThan(fx.clock.now().getTime() + 11 * 3_600_000);
    expect(fake.callsTo('oauth.v2.access').filter((call) => call.params.grant_type === 'refresh_token')).toHaveLength(1);
  });

  it('revokes the installation on app_uninstalled: its tokens are wiped', async () => {
    const event = { token: 'x', team_id: 'TWS1', api_app_id: 'A1', type: 'event_callback', event_id: 'EvUNINSTALL1', event_time: 1, event: { type: 'app_uninstalled' }, authorizations: [{ enterprise_id: null, team_id: 'TWS1', user_id: 'U1', is_bot: true, is_enterprise_install: false }] };
    const res = await web.request('/slack/events', signedRequest(JSON.stringify(event), { contentType: 'application/json', now: fx.clock.now() }));
    expect(res.status).toBe(200);
    await expect.poll(async () => (await fx.tdb.db.selectFrom('slack_installations').select(['revoked_at', 'bot_token']).where('team_id', '=', 'TWS1').executeTakeFirstOrThrow()).bot_token, { timeout: 5000 }).toEqual({});
    expect(await findInstallation(fx.tdb.db, keyring, { teamId: 'TWS1' })).toBeUndefined();
  });
});
