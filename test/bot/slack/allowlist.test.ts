/**
 * Who may install the app and be served by it (multi-workspace): SLACK_ALLOWED_WORKSPACES, or a single-use
 * install link from `projectx slack install-link`. Through the real routes, the real Bolt app and the fake Slack:
 * `/slack/install` refuses without either; the callback refuses (stores nothing, uninstalls, audits) a workspace
 * not allowed; a link is consumed once; a workspace's requests run no listener once it is not allowed, and
 * those refusals are audited at most once an hour.
 */
import { createHash } from 'node:crypto';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAuthorize } from '../../../src/bot/slack/allowlist.ts';
import { slackVerb } from '../../../src/bot/slack/cli.ts';
import { createInstallLink } from '../../../src/bot/slack/install-links.ts';
import { findInstallation, saveInstallation } from '../../../src/bot/slack/installations.ts';
import { slackLinkByEmail } from '../../../src/bot/slack/link-by-email.ts';
import { createSlackSurface } from '../../../src/bot/slack/surface.ts';
import { loadConfig } from '../../../src/config.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { createApp } from '../../../src/http/app.ts';
import { createMetrics } from '../../../src/metrics.ts';
import type { OAuthGrant } from '../../fakes/slack/types.ts';
import { type FakeSlack, startFakeSlack } from '../../fakes/slack/server.ts';
import { type DomainFixture, auditRows, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { SIGNING_SECRET, signedRequest, slashCommandBody } from '../../support/slack.ts';

const CLIENT = { id: '1234.5678', secret: 'client-secret-abcdef012345' };
const PUBLIC_URL = 'https://projectx.example.com';
const REDIRECT = `${PUBLIC_URL}/oauth/callback/slack`;
const HOUR = 3_600_000;

describe('Slack workspaces allowed to install and to be served', () => {
  let fx: DomainFixture;
  let fake: FakeSlack;
  /** SLACK_ALLOWED_WORKSPACES=TLISTED,EGRID */
  let listed: Hono;
  /** No list: install links only. */
  let linksOnly: Hono;
  const keyring = new Keyring([{ id: 'k1', key: Buffer.alloc(32, 3) }]);
  const logs = captureLogs();
  const slackEnv = { SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_CLIENT_ID: CLIENT.id, SLACK_CLIENT_SECRET: CLIENT.secret, PUBLIC_URL };

  const surface = (env: Record<string, string>) => {
    const config = loadConfig({ ...slackEnv, SLACK_API_URL: fake.apiUrl, ...env });
    if (!config.ok) throw new Error(config.problems.join('; '));
    const web = createApp({ logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), readiness: [], bodyLimitBytes: 1 << 20 });
    createSlackSurface({ config: config.config, domain: fx.deps, jobs: fx.jobs, keyring, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), integrations: () => Promise.resolve([]) })!.mount(web);
    return web;
  };

  beforeAll(async () => {
    fx = await domainFixture();
    fx.clock.set(new Date());
    fake = await startFakeSlack();
    listed = surface({ SLACK_ALLOWED_WORKSPACES: 'TLISTED,EGRID' });
    linksOnly = surface({});
  });
  afterAll(async () => {
    await fake?.close();
    await fx?.close();
  });

  const grant = (team: string, overrides: Partial<OAuthGrant> = {}): OAuthGrant => ({ clientId: CLIENT.id, clientSecret: CLIENT.secret, team: { id: team, name: team }, accessToken: `xoxb-${team.toLowerCase()}-token`, redirectUri: REDIRECT, ...overrides });
  /** `GET /slack/install[?link=…]`, which must redirect to Slack: the state and this browser's cookie. */
  const begin = async (web: Hono, link?: string) => {
    const res = await web.request(`/slack/install${link === undefined ? '' : `?link=${encodeURIComponent(link)}`}`);
    expect(res.status).toBe(302);
    return { state: new URL(res.headers.get('location')!).searchParams.get('state')!, cookie: res.headers.get('set-cookie')!.split(';')[0]! };
  };
  const callback = (web: Hono, code: string, started: { state: string; cookie: string }, accept = 'application/json') =>
    web.request(`/oauth/callback/slack?code=${code}&state=${encodeURIComponent(started.state)}`, { headers: { cookie: started.cookie, accept } });
  /** Slack says yes to `code` for `team` (or the grant given), and the browser comes back with it. */
  const install = async (web: Hono, code: string, granted: OAuthGrant, link?: string) => {
    fake.oauth({ [code]: granted });
    return callback(web, code, await begin(web, link));
  };
  const installationOf = (team: string) => fx.tdb.db.selectFrom('slack_installations').selectAll().where('team_id', '=', team).executeTakeFirst();
  const newLink = async () => {
    const ctx = operatorContext(fx, { env: slackEnv });
    const run = await runOperator(ctx, slackVerb, ['install-link']);
    expect(run.code).toBe(0);
    return run.out[0]!;
  };
  const tokenOf = (url: string) => new URL(url).searchParams.get('link')!;
  /** A slash command from an unlinked user of a workspace outside Grid: when its listener runs, it queues the look-up of their email. */
  const command = async (web: Hono, team: string, user: string, trigger: string) => {
    const form = new URLSearchParams(slashCommandBody({ team_id: team, user_id: user, text: 'help', trigger_id: trigger }));
    form.delete('enterprise_id');
    form.delete('enterprise_name');
    const res = await web.request('/slack/events', signedRequest(form.toString(), { now: fx.clock.now() }));
    const lookups = await fx.jobs.boss.findJobs(slackLinkByEmail.name, { key: `${team}:${user}` });
    return { body: await res.text(), listenerRan: lookups.length > 0 };
  };

  it('reads SLACK_ALLOWED_WORKSPACES as team (T…) and enterprise (E…) ids, and refuses anything else', () => {
    const good = loadConfig({ SLACK_ALLOWED_WORKSPACES: ' T0123ABCD, E0456EFGH ,' });
    expect(good.ok && good.config.SLACK_ALLOWED_WORKSPACES).toEqual(['T0123ABCD', 'E0456EFGH']);
    for (const bad of ['t0123abcd', 'T0123ABCD,U0456EFGH', ' , ', 'T0123 ABCD']) {
      const result = loadConfig({ SLACK_ALLOWED_WORKSPACES: bad });
      expect(result.ok ? [] : result.problems, bad).toEqual([expect.stringMatching(/^SLACK_ALLOWED_WORKSPACES: must be comma-separated Slack team ids \(T…\) or enterprise ids \(E…\)/)]);
    }
  });

  describe('GET /slack/install', () => {
    it('answers 403 without a list or a link, saying to create a link or set the list (a page for a browser)', async () => {
      const res = await linksOnly.request('/slack/install');
      expect(res.status).toBe(403);
      expect(res.headers.get('set-cookie')).toBeNull();
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('slack_install_not_allowed');
      expect(body.error.message).toContain('projectx slack install-link');
      expect(body.error.message).toContain('SLACK_ALLOWED_WORKSPACES');

      const page = await linksOnly.request('/slack/install', { headers: { accept: 'text/html,application/xhtml+xml' } });
      expect(page.status).toBe(403);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(await page.text()).toMatch(/<h1>ProjectX cannot be installed<\/h1>.*projectx slack install-link/s);
    });

    it('answers 403 to a link that was never issued or has expired', async () => {
      const unknown = await linksOnly.request(`/slack/install?link=${'A'.repeat(43)}`);
      expect(unknown.status).toBe(403);
      expect(await unknown.json()).toMatchObject({ error: { code: 'slack_install_link_invalid' } });

      const { token } = await createInstallLink(fx.tdb.db, { createdBy: 'test', ttlMs: 60_000, now: fx.clock.now() });
      fx.clock.advance(61_000);
      const expired = await listed.request(`/slack/install?link=${token}`);
      expect(expired.status).toBe(403);
      expect(await expired.json()).toMatchObject({ error: { code: 'slack_install_link_invalid' } });
    });
  });

  describe('SLACK_ALLOWED_WORKSPACES', () => {
    it('installs a listed workspace, and refuses one not listed at the callback: nothing stored, the app removed, audited', async () => {
      expect((await install(listed, 'code-listed', grant('TLISTED'))).status).toBe(200);
      expect(await installationOf('TLISTED')).toMatchObject({ install_link_id: null, revoked_at: null });

      fake.oauth({ 'code-other': grant('TOTHER', { authedUser: { id: 'UOTHERADMIN' } }) });
      const res = await callback(listed, 'code-other', await begin(listed), 'text/html');
      expect(res.status).toBe(403);
      const page = await res.text();
      expect(page).toContain('<h1>ProjectX cannot be installed</h1>');
      expect(page).toContain('workspace TOTHER: it is not in SLACK_ALLOWED_WORKSPACES');
      expect(page).toContain('slack_workspace_not_allowed');
      expect(await installationOf('TOTHER')).toBeUndefined();
      expect(fake.callsTo('apps.uninstall').map((call) => ({ token: call.token, clientId: call.params.client_id }))).toEqual([{ token: 'xoxb-tother-token', clientId: CLIENT.id }]);
      expect(await auditRows(fx, 'TOTHER')).toMatchObject([{ action: 'slack.install', outcome: 'refused', detail: { code: 'slack_workspace_not_allowed', teamId: 'TOTHER', installedBy: 'UOTHERADMIN' } }]);
    });

    it('lets an enterprise id allow its workspaces and its org-wide install, and a team id no org-wide install', async () => {
      expect((await install(listed, 'code-grid-ws', grant('TGRID1', { enterprise: { id: 'EGRID', name: 'Grid' } }))).status).toBe(200);
      expect((await install(listed, 'code-grid-org', grant('TGRIDORG', { enterprise: { id: 'EGRID', name: 'Grid' }, isEnterpriseInstall: true }))).status).toBe(200);
      expect((await findInstallation(fx.tdb.db, keyring, { enterpriseId: 'EGRID', teamId: 'TANYGRIDWS' }))?.botToken).toBe('xoxb-tgridorg-token');

      const org = await install(listed, 'code-other-org', grant('TLISTED', { enterprise: { id: 'EOTHER', name: 'Other' }, isEnterpriseInstall: true, accessToken: 'xoxb-other-org' }));
      expect(org.status).toBe(403);
      expect(await org.json()).toMatchObject({ error: { code: 'slack_workspace_not_allowed', message: expect.stringContaining('organization EOTHER') as unknown } });
      expect(await fx.tdb.db.selectFrom('slack_installations').select('id').where('enterprise_id', '=', 'EOTHER').execute()).toEqual([]);
    });
  });

  describe('requests', () => {
    it('gives no token to a workspace no longer allowed: no listener runs, and the refusal is audited once an hour', async () => {
      // Installed while it was listed; the list no longer names it.
      await saveInstallation(fx.tdb.db, keyring, { teamId: 'TGONE', isEnterpriseInstall: false, scopes: ['commands'], botToken: 'xoxb-gone-token' }, fx.clock.now());
      await saveInstallation(fx.tdb.db, keyring, { teamId: 'TLISTED', isEnterpriseInstall: false, scopes: ['commands'], botToken: 'xoxb-tlisted-token' }, fx.clock.now());

      const allowed = await command(listed, 'TLISTED', 'WLISTED', 'trg-listed-1');
      expect(allowed.listenerRan).toBe(true);
      expect(allowed.body).toContain('/projectx');

      for (const trigger of ['trg-gone-1', 'trg-gone-2', 'trg-gone-3']) {
        const refused = await command(listed, 'TGONE', 'WGONE', trigger);
        expect(refused.listenerRan, trigger).toBe(false);
        expect(refused.body, trigger).not.toContain('/projectx');
      }
      const audited = async () => (await auditRows(fx, 'TGONE')).filter((row) => row.action === 'slack.request');
      expect(await audited()).toMatchObject([{ outcome: 'refused', actor: 'slack:TGONE/WGONE', detail: { code: 'slack_workspace_not_allowed', teamId: 'TGONE', refusedSinceLastAudit: 0 } }]);

      fx.clock.advance(HOUR + 60_000);
      expect((await command(listed, 'TGONE', 'WGONE', 'trg-gone-4')).listenerRan).toBe(false);
      expect((await audited()).map((row) => (row.detail as { refusedSinceLastAudit: number }).refusedSinceLastAudit)).toEqual([0, 2]);

      // What the receiver is told: a coded error, with no token.
      const authorize = createSlackAuthorize({ config: { SLACK_BOT_TOKEN: undefined, SLACK_CLIENT_ID: '1111.2222', SLACK_CLIENT_SECRET: 'client-secret-for-tests', SLACK_ALLOWED_WORKSPACES: ['TLISTED'] }, db: fx.tdb.db, keyring, clock: fx.clock, logger: logs.logger });
      await expect(authorize({ teamId: 'TGONE' })).rejects.toMatchObject({ code: 'slack_workspace_not_allowed', name: 'SlackWorkspaceNotAllowed' });
      await expect(authorize({ teamId: 'TLISTED' })).resolves.toMatchObject({ botToken: 'xoxb-tlisted-token', teamId: 'TLISTED' });

      // With SLACK_BOT_TOKEN as well, a workspace with no installation is not served by that token unless listed.
      const withToken = createSlackAuthorize({ config: { SLACK_BOT_TOKEN: 'xoxb-single-workspace', SLACK_CLIENT_ID: '1111.2222', SLACK_CLIENT_SECRET: 'client-secret-for-tests', SLACK_ALLOWED_WORKSPACES: ['TLISTED', 'TSINGLE'] }, db: fx.tdb.db, keyring, clock: fx.clock, logger: logs.logger });
      await expect(withToken({ teamId: 'TSTRANGER' })).rejects.toMatchObject({ code: 'slack_workspace_not_allowed' });
      await expect(withToken({ teamId: 'TSINGLE' })).resolves.toMatchObject({ botToken: 'xoxb-single-workspace', teamId: 'TSINGLE' });
      // Without a list (a single-workspace deployment), the token serves as before.
      const single = createSlackAuthorize({ config: { SLACK_BOT_TOKEN: 'xoxb-single-workspace' }, db: fx.tdb.db, keyring, clock: fx.clock, logger: logs.logger });
      await expect(single({ teamId: 'TANY' })).resolves.toMatchObject({ botToken: 'xoxb-single-workspace' });
    });
  });

  describe('install links', () => {
    it('projectx slack install-link prints a single-use link valid 24 h (or less), keeps only its hash, and audits it', async () => {
      const url = await newLink();
      expect(url).toMatch(/^https:\/\/projectx\.example\.com\/slack\/install\?link=[A-Za-z0-9_-]{43}$/);
      const hash = createHash('sha256').update(tokenOf(url)).digest('hex');
      const row = await fx.tdb.db.selectFrom('slack_install_links').selectAll().where('token_hash', '=', hash).executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain(tokenOf(url));
      expect(row).toMatchObject({ created_by: expect.stringMatching(/^cli/) as unknown, used_at: null, used_by_team: null });
      expect(row.expires_at.getTime() - row.created_at.getTime()).toBe(24 * HOUR);
      expect(await auditRows(fx, row.id)).toMatchObject([{ action: 'slack.install_link.create', outcome: 'success', surface: 'cli' }]);

      const ctx = operatorContext(fx, { env: slackEnv });
      const short = await runOperator(ctx, slackVerb, ['install-link', '--expires', '2h']);
      const shortRow = await fx.tdb.db.selectFrom('slack_install_links').selectAll().where('token_hash', '=', createHash('sha256').update(tokenOf(short.out[0]!)).digest('hex')).executeTakeFirstOrThrow();
      expect(shortRow.expires_at.getTime() - shortRow.created_at.getTime()).toBe(2 * HOUR);
      expect(short.err.join('\n')).toContain('single use');

      await expect(runOperator(ctx, slackVerb, ['install-link', '--expires', '25h'])).rejects.toThrow(/--expires takes minutes or hours, from 1m to 24h/);
      await expect(runOperator(operatorContext(fx, { env: { ...slackEnv, PUBLIC_URL: '' } }), slackVerb, ['install-link'])).rejects.toThrow(/set PUBLIC_URL/);
    });

    it('installs one unlisted workspace once, which is then served although the list does not name it', async () => {
      const token = tokenOf(await newLink());
      const res = await install(linksOnly, 'code-linked', grant('TLINKED', { authedUser: { id: 'ULINKADMIN' } }), token);
      expect(res.status).toBe(200);
      const link = await fx.tdb.db.selectFrom('slack_install_links').selectAll().where('token_hash', '=', createHash('sha256').update(token).digest('hex')).executeTakeFirstOrThrow();
      expect(link).toMatchObject({ used_at: fx.clock.now(), used_by_team: 'TLINKED', used_by_enterprise: null });
      expect(await installationOf('TLINKED')).toMatchObject({ install_link_id: link.id });
      expect(await auditRows(fx, link.id)).toMatchObject([{ action: 'slack.install_link.create' }, { action: 'slack.install_link.use', outcome: 'success', detail: { teamId: 'TLINKED', installedBy: 'ULINKADMIN' } }]);

      // Single use.
      const again = await linksOnly.request(`/slack/install?link=${token}`);
      expect(again.status).toBe(403);
      expect(await again.json()).toMatchObject({ error: { code: 'slack_install_link_invalid' } });

      // Served, through a surface whose list does not name it; a token refresh keeps what let it in.
      expect((await command(listed, 'TLINKED', 'WLINKED', 'trg-linked-1')).listenerRan).toBe(true);
      await saveInstallation(fx.tdb.db, keyring, { teamId: 'TLINKED', isEnterpriseInstall: false, scopes: ['commands'], botToken: 'xoxb-tlinked-refreshed' }, fx.clock.now());
      expect(await findInstallation(fx.tdb.db, keyring, { teamId: 'TLINKED' })).toMatchObject({ botToken: 'xoxb-tlinked-refreshed', installLinkId: link.id });
    });

    it('of two installs started with one link, stores only one: the other is refused and uninstalled', async () => {
      const token = tokenOf(await newLink());
      const first = await begin(linksOnly, token);
      const second = await begin(linksOnly, token);
      fake.oauth({ 'code-race-1': grant('TRACE1'), 'code-race-2': grant('TRACE2') });
      const answers = await Promise.all([callback(linksOnly, 'code-race-1', first), callback(linksOnly, 'code-race-2', second)]);
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 403]);
      const refused = answers.find((answer) => answer.status === 403)!;
      expect(await refused.json()).toMatchObject({ error: { code: 'slack_install_link_invalid' } });
      const stored = await fx.tdb.db.selectFrom('slack_installations').select('team_id').where('team_id', 'in', ['TRACE1', 'TRACE2']).execute();
      expect(stored).toHaveLength(1);
      const loser = stored[0]!.team_id === 'TRACE1' ? 'TRACE2' : 'TRACE1';
      expect(fake.callsTo('apps.uninstall').map((call) => call.token)).toContain(`xoxb-${loser.toLowerCase()}-token`);
      expect(await auditRows(fx, loser)).toMatchObject([{ action: 'slack.install', outcome: 'refused', detail: { code: 'slack_install_link_invalid' } }]);
    });
  });
});
