/**
 * The Slack directory sync (src/bot/slack/directory-sync.ts) against the fake Slack Web API: a workspace's people
 * are linked by their confirmed email before they type anything, so a first /projectx through the running service
 * is answered as a linked user; users.list is read 200 at a time by cursor; members who cannot be linked are
 * counted and logged with a reason (never their email); a 429 and a spent page budget continue as a queued job at
 * the cursor (nothing sleeps); an install queues its workspace's sync, and the daily job one per workspace.
 *
 * The first test goes through the running service (its worker runs the job); the others run the handlers with
 * JobDeps, to drive pagination, rate limits and refusals exactly.
 */
import type { Hono } from 'hono';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DIRECTORY_PAGE_SIZE,
  DIRECTORY_SECONDS_PER_CALL,
  PAGES_PER_RUN,
  enqueueDirectorySyncAtStart,
  slackDirectorySync,
  slackDirectorySyncAll,
} from '../../../src/bot/slack/directory-sync.ts';
import { saveInstallation } from '../../../src/bot/slack/installations.ts';
import type { SlackJobDeps } from '../../../src/bot/slack/job-deps.ts';
import { slackLinkByEmail } from '../../../src/bot/slack/link-by-email.ts';
import { createSlackDelivery } from '../../../src/bot/slack/notifier.ts';
import { createSlackSurface } from '../../../src/bot/slack/surface.ts';
import { createSlackTokens } from '../../../src/bot/slack/tokens.ts';
import { loadConfig } from '../../../src/config.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { createUser, findUserByIdentity, linkIdentity } from '../../../src/domain/users.ts';
import { createApp } from '../../../src/http/app.ts';
import type { AnyJob } from '../../../src/jobs/runtime.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import type { Logger } from '../../../src/logger.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type FakeSlack, startFakeSlack } from '../../fakes/slack/server.ts';
import { type DomainFixture, domainFixture, fixtureJobDeps } from '../../support/domain.ts';
import { type CapturedLogs, captureLogs } from '../../support/logs.ts';
import { SIGNING_SECRET, signedRequest, slashCommandBody } from '../../support/slack.ts';
import { type SlackService, startSlackService } from '../../support/slack-service.ts';

const config = (env: Record<string, string>) => {
  const loaded = loadConfig(env);
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  return loaded.config;
};

/** Runs a job's handler as the runtime would (payload through its schema), without a worker. */
const run = (job: AnyJob, payload: unknown, deps: SlackJobDeps, logger: Logger) =>
  job.handler(job.schema.parse(payload), { deps, logger, signal: new AbortController().signal, job: { id: 'test', name: job.name, retryCount: 0 } }) as Promise<Record<string, unknown>>;

/** Slack for jobs as the worker builds it (createSlackDelivery), on the bot token of `fake`. */
const slackFor = (fake: FakeSlack, deps: { db: JobDeps['db']; clock: JobDeps['clock']; logger: Logger }): NonNullable<SlackJobDeps['slack']> => {
  const delivery = createSlackDelivery({ ...deps, botToken: fake.botToken, apiUrl: fake.apiUrl, keyring: undefined });
  if (!delivery) throw new Error('no Slack delivery');
  return { sender: delivery.sender, tokens: delivery.tokens };
};

describe('Slack directory sync through the running service', () => {
  let env: SlackService;
  const logs = captureLogs({ level: 'info' });
  beforeAll(async () => {
    env = await startSlackService(logs.logger);
  });
  afterAll(async () => {
    await env?.close();
  });

  it('links a member before they ever type: their first /projectx is answered as a linked user', async () => {
    const { tdb, fake, service } = env;
    const dora = await createUser(tdb.db, { email: 'dora@example.test', displayName: 'Dora', roles: ['viewer'] });
    if (!dora.ok) throw new Error(dora.refusal.message);
    fake.addUser({ id: 'WDORA', teamId: fake.teamId, realName: 'Dora', email: 'Dora@Example.test' });
    // What the daily schedule sends; the service's own worker runs it, with the Slack module's client.
    await service.jobs.enqueue(slackDirectorySyncAll, {});
    await expect.poll(() => findUserByIdentity(tdb.db, { surface: 'slack', tenant: fake.teamId, externalId: 'WDORA' }), { timeout: 15_000 }).toMatchObject({ email: 'dora@example.test' });

    const first = await fetch(`${service.http.url}/slack/events`, signedRequest(slashCommandBody({ team_id: fake.teamId, enterprise_id: '', user_id: 'WDORA', text: 'tasks', trigger_id: 'trg-dora-1' })));
    const reply = (await first.json()) as { text: string };
    expect(reply.text).toContain('open assigned to you');
    expect(reply.text).not.toContain('/projectx link');
    // Linked by the directory, not by the first-contact lookup.
    expect(fake.callsTo('users.info')).toEqual([]);
    const audit = await tdb.db.selectFrom('audit_log').selectAll().where('action', '=', 'identity.link').where('object_id', '=', 'dora@example.test').execute();
    expect(audit).toMatchObject([{ outcome: 'success', detail: { surface: 'slack', tenant: fake.teamId, externalId: 'WDORA', via: 'slack_directory' } }]);
  });
});

describe('Slack directory sync', () => {
  let fx: DomainFixture;
  let fake: FakeSlack | undefined;
  let logs: CapturedLogs;
  const keyring = new Keyring([{ id: 'k1', key: Buffer.alloc(32, 7) }]);

  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx?.close());
  beforeEach(() => {
    logs = captureLogs({ level: 'debug' });
  });
  afterEach(async () => {
    await fake?.close();
    fake = undefined;
  });

  /** A fresh fake Slack whose bot token belongs to workspace `teamId` (Slackbot and the bot are its first two members). */
  const workspace = async (teamId: string) => (fake = await startFakeSlack({ teamId }));
  const depsFor = (slack: FakeSlack, overrides: Partial<SlackJobDeps> = {}): SlackJobDeps => {
    const { slack: client, ...rest } = overrides;
    return {
      ...fixtureJobDeps(fx, { logger: logs.logger, config: config({ SLACK_BOT_TOKEN: slack.botToken, SLACK_API_URL: slack.apiUrl }), ...rest }),
      slack: client ?? slackFor(slack, { db: fx.tdb.db, clock: fx.clock, logger: logs.logger }),
    };
  };
  const linkedTo = async (tenant: string, slackUserId: string) => (await findUserByIdentity(fx.tdb.db, { surface: 'slack', tenant, externalId: slackUserId }))?.email;
  /** Directory-sync jobs waiting in the queue for a workspace. */
  const queued = async (tenant: string) =>
    (await fx.jobs.boss.findJobs<{ payload: Record<string, unknown> }>(slackDirectorySync.name, { key: tenant })).filter((job) => job.state === 'created');

  it('reads users.list 200 at a time, following next_cursor to the end', async () => {
    const slack = await workspace('TPAGES');
    // 2 + 448 members: pages of 200, 200 and 50, with one ProjectX user on each.
    const onPage = new Map([[0, 'pam@example.test'], [250, 'paul@example.test'], [447, 'pia@example.test']]);
    for (let i = 0; i < 448; i++) {
      const email = onPage.get(i);
      if (email) await fx.user({ email });
      slack.addUser({ id: `WP${String(i).padStart(4, '0')}`, teamId: 'TPAGES', realName: `Member ${i}`, ...(email ? { email } : {}) });
    }
    const result = await run(slackDirectorySync, { tenant: 'TPAGES' }, depsFor(slack), logs.logger);
    expect(result).toEqual({ pages: 3, members: 450, linked: 3, alreadyLinked: 0, skipped: { bot: 2, no_confirmed_email: 445 }, done: true });
    const calls = slack.callsTo('users.list');
    expect(calls.map((call) => call.params.limit)).toEqual([String(DIRECTORY_PAGE_SIZE), String(DIRECTORY_PAGE_SIZE), String(DIRECTORY_PAGE_SIZE)]);
    expect(calls[0]!.params.cursor).toBeUndefined();
    expect(new Set(calls.slice(1).map((call) => call.params.cursor)).size).toBe(2);
    expect(await linkedTo('TPAGES', 'WP0000')).toBe('pam@example.test');
    expect(await linkedTo('TPAGES', 'WP0250')).toBe('paul@example.test');
    expect(await linkedTo('TPAGES', 'WP0447')).toBe('pia@example.test');
    expect(await queued('TPAGES')).toEqual([]);
  });

  it('counts and logs why members are not linked (never their email), and leaves an already-linked member as it is', async () => {
    const slack = await workspace('TWHY');
    const px = async (name: string) => (await fx.user({ email: `${name}@example.test`, name })).id;
    const emails = ['ok', 'unconf', 'bot', 'slackbot', 'gone', 'other', 'twin', 'alpha', 'beta', 'charlie', 'delta'];
    const ids = Object.fromEntries(await Promise.all(emails.map(async (name) => [name, await px(name)] as const)));
    const email = (name: string) => `${name}@example.test`;
    await linkIdentity(fx.tdb.db, ids.twin!, { surface: 'slack', tenant: 'TWHY', externalId: 'WTWINOLD' }, 'link_code');
    await linkIdentity(fx.tdb.db, ids.alpha!, { surface: 'slack', tenant: 'TWHY', externalId: 'WALREADY' }, 'link_code');
    // WTAKEN is linked to a ProjectX user who has since been deactivated.
    await linkIdentity(fx.tdb.db, ids.charlie!, { surface: 'slack', tenant: 'TWHY', externalId: 'WTAKEN' }, 'link_code');
    await fx.tdb.db.updateTable('users').set({ active: false }).where('id', '=', ids.charlie!).execute();

    slack.addUser({ id: 'USLACKBOT', teamId: 'TWHY', realName: 'Slackbot', email: email('slackbot') });
    slack.addUser({ id: 'WOK', teamId: 'TWHY', realName: 'Ok', email: email('ok') });
    slack.addUser({ id: 'WUNCONF', teamId: 'TWHY', realName: 'Unconfirmed', email: email('unconf'), emailConfirmed: false });
    slack.addUser({ id: 'WNOMAIL', teamId: 'TWHY', realName: 'No mail' });
    slack.addUser({ id: 'WBOT', teamId: 'TWHY', realName: 'A bot', email: email('bot'), isBot: true });
    slack.addUser({ id: 'WGONE', teamId: 'TWHY', realName: 'Gone', email: email('gone'), deleted: true });
    slack.addUser({ id: 'WOTHER', teamId: 'TOTHER', realName: 'Other team', email: email('other') });
    slack.addUser({ id: 'WSTRANGER', teamId: 'TWHY', realName: 'Stranger', email: 'stranger@example.test' });
    slack.addUser({ id: 'WTWIN', teamId: 'TWHY', realName: 'Twin', email: email('twin') });
    slack.addUser({ id: 'WALREADY', teamId: 'TWHY', realName: 'Already', email: email('beta') });
    slack.addUser({ id: 'WTAKEN', teamId: 'TWHY', realName: 'Taken', email: email('delta') });

    const result = await run(slackDirectorySync, { tenant: 'TWHY' }, depsFor(slack), logs.logger);
    expect(result).toEqual({
      pages: 1,
      members: 12,
      linked: 1,
      alreadyLinked: 1,
      skipped: { bot: 3, no_confirmed_email: 2, deleted: 1, other_tenant: 1, no_projectx_user: 1, user_linked_elsewhere: 1, identity_taken: 1 },
      done: true,
    });
    expect(await linkedTo('TWHY', 'WOK')).toBe(email('ok'));
    for (const id of ['USLACKBOT', 'WUNCONF', 'WNOMAIL', 'WBOT', 'WGONE', 'WSTRANGER', 'WTWIN', 'WTAKEN']) expect(await linkedTo('TWHY', id)).toBeUndefined();
    expect(await linkedTo('TOTHER', 'WOTHER')).toBeUndefined();
    // Left as it was: still alpha's (linked by code), not beta's, whose email the Slack profile shows.
    const already = await fx.tdb.db.selectFrom('identity_links').select(['user_id', 'verified_via']).where('external_id', '=', 'WALREADY').execute();
    expect(already).toEqual([{ user_id: ids.alpha, verified_via: 'link_code' }]);
    expect(await fx.tdb.db.selectFrom('identity_links').select('id').where('user_id', '=', ids.beta!).where('surface', '=', 'slack').execute()).toEqual([]);
    const linkAudits = await fx.tdb.db.selectFrom('audit_log').select('object_id').where('action', '=', 'identity.link').where('object_id', 'like', '%@example.test').execute();
    expect(linkAudits.map((row) => row.object_id)).toContain(email('ok'));
    expect(linkAudits.map((row) => row.object_id)).not.toContain(email('beta'));

    const reasons = Object.fromEntries(logs.lines().filter((line) => line.tenant === 'TWHY' && line.reason).map((line) => [line.slackUserId, [line.reason, line.level]]));
    expect(reasons).toEqual({
      USLACKBOT: ['bot', 'debug'],
      U0000BOT1: ['bot', 'debug'],
      WBOT: ['bot', 'debug'],
      WUNCONF: ['no_confirmed_email', 'debug'],
      WNOMAIL: ['no_confirmed_email', 'debug'],
      WGONE: ['deleted', 'debug'],
      WOTHER: ['other_tenant', 'debug'],
      WSTRANGER: ['no_projectx_user', 'debug'],
      WTWIN: ['user_linked_elsewhere', 'warn'],
      WTAKEN: ['identity_taken', 'warn'],
    });
    expect(logs.lines().find((line) => line.msg === 'slack directory sync finished')).toMatchObject({ level: 'info', tenant: 'TWHY', linked: 1 });
    expect(logs.text()).not.toContain('@example.test');
  });

  it('slack.link-by-email says why at info (a warning when an admin must act), with the same reasons', async () => {
    const slack = await workspace('TFIRST');
    await fx.user({ email: 'fay@example.test' });
    const gus = await fx.user({ email: 'gus@example.test' });
    await linkIdentity(fx.tdb.db, gus.id, { surface: 'slack', tenant: 'TFIRST', externalId: 'WGUSOLD' }, 'link_code');
    slack.addUser({ id: 'WFAY', teamId: 'TFIRST', realName: 'Fay', email: 'fay@example.test', emailConfirmed: false });
    slack.addUser({ id: 'WGUS', teamId: 'TFIRST', realName: 'Gus', email: 'gus@example.test' });
    const deps = depsFor(slack);
    expect(await run(slackLinkByEmail, { tenant: 'TFIRST', slackUserId: 'WFAY' }, deps, logs.logger)).toEqual({ linked: false, reason: 'no_confirmed_email' });
    expect(await run(slackLinkByEmail, { tenant: 'TFIRST', slackUserId: 'WGUS' }, deps, logs.logger)).toEqual({ linked: false, reason: 'user_linked_elsewhere' });
    const lines = logs.lines().filter((line) => line.tenant === 'TFIRST');
    expect(lines.map((line) => [line.slackUserId, line.reason, line.level])).toEqual([
      ['WFAY', 'no_confirmed_email', 'info'],
      ['WGUS', 'user_linked_elsewhere', 'warn'],
    ]);
    expect(lines[1]).toMatchObject({ userId: gus.id });
    expect(logs.text()).not.toContain('@example.test');
  });

  it('links an Enterprise Grid member of another workspace of the same organization (tenant = enterprise id)', async () => {
    const slack = await workspace('TGRIDA');
    await fx.user({ email: 'gina@example.test' });
    slack.addUser({ id: 'WGINA', teamId: 'TGRIDB', enterpriseId: 'EGRID', realName: 'Gina', email: 'gina@example.test' });
    const result = await run(slackDirectorySync, { tenant: 'EGRID' }, depsFor(slack), logs.logger);
    expect(result).toMatchObject({ linked: 1, skipped: { bot: 2 } });
    expect(await linkedTo('EGRID', 'WGINA')).toBe('gina@example.test');
  });

  it('on a 429 queues the rest at the cursor for after Retry-After, and the continuation finishes the run', async () => {
    const slack = await workspace('T429');
    await fx.user({ email: 'quinn@example.test' });
    for (let i = 0; i < 448; i++) slack.addUser({ id: `WQ${String(i).padStart(4, '0')}`, teamId: 'T429', realName: `Member ${i}`, ...(i === 300 ? { email: 'quinn@example.test' } : {}) });
    slack.failNext('users.list', { status: 429, retryAfter: 42, skip: 1 });
    const deps = depsFor(slack);

    const first = await run(slackDirectorySync, { tenant: 'T429' }, deps, logs.logger);
    expect(first).toMatchObject({ pages: 1, members: 200, continuesInSeconds: 42, why: 'rate_limited' });
    // The 429 was not retried in the job (no sleeping): two calls, the second one refused.
    const calls = slack.callsTo('users.list');
    expect(calls.map((call) => call.injected?.status)).toEqual([undefined, 429]);
    const [next, ...others] = await queued('T429');
    expect(others).toEqual([]);
    expect(next!.singletonKey).toBe('T429');
    expect(next!.startAfter).toEqual(new Date(fx.clock.now().getTime() + 42_000));
    expect(next!.data.payload).toEqual({ tenant: 'T429', cursor: calls[1]!.params.cursor, counts: { pages: 1, members: 200, linked: 0, alreadyLinked: 0, skipped: { bot: 2, no_confirmed_email: 198 } } });
    expect(await linkedTo('T429', 'WQ0300')).toBeUndefined();

    const rest = await run(slackDirectorySync, next!.data.payload, deps, logs.logger);
    expect(rest).toEqual({ pages: 3, members: 450, linked: 1, alreadyLinked: 0, skipped: { bot: 2, no_confirmed_email: 447 }, done: true });
    expect(slack.callsTo('users.list').slice(2).map((call) => call.params.cursor)).toEqual([calls[1]!.params.cursor, expect.any(String)]);
    expect(await linkedTo('T429', 'WQ0300')).toBe('quinn@example.test');
  });

  it(`reads at most ${PAGES_PER_RUN} pages a run, then continues as a job paced for Tier 2`, async () => {
    const slack = await workspace('TLONG');
    await fx.user({ email: 'lena@example.test' });
    // Deactivated accounts fill ten pages without a query each; Lena is on the eleventh.
    const filler = PAGES_PER_RUN * DIRECTORY_PAGE_SIZE;
    for (let i = 0; i < filler; i++) slack.addUser({ id: `WL${String(i).padStart(5, '0')}`, teamId: 'TLONG', realName: `Former ${i}`, deleted: true });
    slack.addUser({ id: 'WLENA', teamId: 'TLONG', realName: 'Lena', email: 'lena@example.test' });
    const deps = depsFor(slack);

    const first = await run(slackDirectorySync, { tenant: 'TLONG' }, deps, logs.logger);
    const seconds = PAGES_PER_RUN * DIRECTORY_SECONDS_PER_CALL;
    expect(first).toMatchObject({ pages: PAGES_PER_RUN, members: filler, continuesInSeconds: seconds, why: 'paced' });
    expect(slack.callsTo('users.list')).toHaveLength(PAGES_PER_RUN);
    const [next] = await queued('TLONG');
    expect(next!.startAfter).toEqual(new Date(fx.clock.now().getTime() + seconds * 1000));
    expect(next!.data.payload).toMatchObject({ tenant: 'TLONG', cursor: expect.any(String), counts: { pages: PAGES_PER_RUN } });
    expect(await linkedTo('TLONG', 'WLENA')).toBeUndefined();

    const rest = await run(slackDirectorySync, next!.data.payload, deps, logs.logger);
    expect(rest).toMatchObject({ pages: PAGES_PER_RUN + 1, members: filler + 3, linked: 1, done: true });
    expect(await linkedTo('TLONG', 'WLENA')).toBe('lena@example.test');
  });

  it('stops without retrying when the token may not list users (missing_scope)', async () => {
    const slack = await workspace('TSCOPE');
    slack.failNext('users.list', { error: 'missing_scope' });
    const result = await run(slackDirectorySync, { tenant: 'TSCOPE' }, depsFor(slack), logs.logger);
    expect(result).toMatchObject({ pages: 0, stopped: 'slack_missing_scope' });
    expect(await queued('TSCOPE')).toEqual([]);
    expect(logs.lines().find((line) => line.code === 'slack_missing_scope')).toMatchObject({ level: 'warn', tenant: 'TSCOPE' });
  });

  it('daily: queues one sync per installed workspace and the SLACK_BOT_TOKEN one, once each; worker start queues the bot token\'s', async () => {
    const slack = await workspace('TBOT');
    await fx.tdb.db.deleteFrom('slack_installations').execute();
    const now = fx.clock.now();
    let installed = 0;
    const install = (who: { teamId?: string; enterpriseId?: string; isEnterpriseInstall?: boolean }) =>
      saveInstallation(fx.tdb.db, keyring, { isEnterpriseInstall: false, ...who, scopes: ['users:read'], botToken: `xoxb-${who.teamId ?? who.enterpriseId}` }, new Date(now.getTime() + ++installed));
    await install({ teamId: 'TALL1' });
    await install({ teamId: 'TALL2' });
    await install({ teamId: 'TGRIDWS', enterpriseId: 'EALL' });
    await install({ enterpriseId: 'EORGWIDE', isEnterpriseInstall: true });
    await install({ teamId: 'TGONE' });
    await fx.tdb.db.updateTable('slack_installations').set({ revoked_at: now }).where('team_id', '=', 'TGONE').execute();
    const deps = depsFor(slack, { keyring });

    const daily = await run(slackDirectorySyncAll, slackDirectorySyncAll.schedule!.payload, deps, logs.logger);
    expect(daily).toEqual({ tenants: ['TALL1', 'TALL2', 'EALL', 'TBOT'], queued: 4, skipped: [{ tenant: 'EORGWIDE', reason: 'org_wide_install' }] });
    for (const tenant of ['TALL1', 'TALL2', 'EALL', 'TBOT']) expect((await queued(tenant)).map((job) => job.data.payload)).toEqual([{ tenant }]);
    expect(slack.callsTo('auth.test')).toHaveLength(1);
    // A second run while those wait adds none (one queued run per workspace).
    expect(await run(slackDirectorySyncAll, {}, deps, logs.logger)).toMatchObject({ queued: 0 });

    // Worker start: only the bot token's workspace, and at most once an hour however often workers restart.
    const started = await enqueueDirectorySyncAtStart(fx.jobs, { SLACK_BOT_TOKEN: slack.botToken });
    expect(started).toEqual(expect.any(String));
    expect(await enqueueDirectorySyncAtStart(fx.jobs, { SLACK_BOT_TOKEN: slack.botToken })).toBeNull();
    expect(await enqueueDirectorySyncAtStart(fx.jobs, { SLACK_BOT_TOKEN: undefined })).toBeNull();
    const [atStart] = await fx.jobs.boss.findJobs<{ payload: unknown }>(slackDirectorySyncAll.name, { id: started! });
    expect(atStart!.data.payload).toEqual({ workspaces: 'bot_token' });
    expect(await run(slackDirectorySyncAll, atStart!.data.payload, depsFor(slack, { keyring }), logs.logger)).toMatchObject({ tenants: ['TBOT'] });
  });

  describe('after an install', () => {
    const CLIENT = { id: '1234.5678', secret: 'client-secret-abcdef012345' };
    let web: Hono;
    beforeEach(async () => {
      const slack = await workspace('T00000001');
      fx.clock.set(new Date());
      const surfaceConfig = config({ SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_CLIENT_ID: CLIENT.id, SLACK_CLIENT_SECRET: CLIENT.secret, SLACK_ALLOWED_WORKSPACES: 'TINST', SLACK_API_URL: slack.apiUrl, PUBLIC_URL: 'https://projectx.example.com' });
      web = createApp({ logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), readiness: [], bodyLimitBytes: 1 << 20 });
      createSlackSurface({ config: surfaceConfig, domain: fx.deps, jobs: fx.jobs, keyring, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), integrations: () => Promise.resolve([]) })!.mount(web);
    });

    it('queues the new workspace\'s directory sync, which links its people with the installed token', async () => {
      const slack = fake!;
      slack.oauth({ 'code-dir': { clientId: CLIENT.id, clientSecret: CLIENT.secret, team: { id: 'TINST', name: 'Installed' }, accessToken: 'xoxb-installed-token-0001', redirectUri: 'https://projectx.example.com/oauth/callback/slack' } });
      const begin = await web.request('/slack/install');
      const state = new URL(begin.headers.get('location')!).searchParams.get('state')!;
      const cookie = begin.headers.get('set-cookie')!.split(';')[0]!;
      const callback = await web.request(`/oauth/callback/slack?code=code-dir&state=${encodeURIComponent(state)}`, { headers: { cookie } });
      expect(callback.status).toBe(200);

      const [job, ...others] = await queued('TINST');
      expect(others).toEqual([]);
      expect(job!.data.payload).toEqual({ tenant: 'TINST' });

      await fx.user({ email: 'ian@example.test' });
      slack.addUser({ id: 'WIAN', teamId: 'TINST', realName: 'Ian', email: 'ian@example.test' });
      const tokens = createSlackTokens({ db: fx.tdb.db, keyring, botToken: undefined, apiUrl: slack.apiUrl });
      const deps = depsFor(slack, { keyring, config: config({ SLACK_API_URL: slack.apiUrl }), slack: { sender: slackFor(slack, { db: fx.tdb.db, clock: fx.clock, logger: logs.logger }).sender, tokens } });
      expect(await run(slackDirectorySync, job!.data.payload, deps, logs.logger)).toMatchObject({ linked: 1, done: true });
      expect(slack.callsTo('users.list').map((call) => call.token)).toEqual(['xoxb-installed-token-0001']);
      expect(await linkedTo('TINST', 'WIAN')).toBe('ian@example.test');
    });
  });
});
