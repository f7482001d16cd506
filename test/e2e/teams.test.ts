/**
 * Teams through the real binary (`projectx start`), as a web and a worker process on one database, configured
 * only through the environment as an operator would: the Bot Framework endpoints pointed at the fake channel and
 * the fake Entra ID (whose certificate is trusted through NODE_EXTRA_CA_CERTS, as a private CA would be), no
 * Microsoft server involved. The bot is installed in a personal chat (welcome card), answers `tasks`, and an
 * Approve click on the card of an approval request decides the task; the worker re-renders the card.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser, linkIdentity } from '../../src/domain/users.ts';
import { type FakeChannel, startFakeChannel } from '../fakes/teams/channel.ts';
import { type FakeConnector, startFakeConnector } from '../fakes/teams/connector.ts';
import { type FakeEntra, startFakeEntra } from '../fakes/teams/entra.ts';
import { killAll, spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { type FleetMember, fleetMember } from '../support/fleet.ts';
import { TEAMS_SCOPE, TEAMS_TENANT, teamsFixture } from '../support/teams-service.ts';
import { tempPath } from '../support/temp.ts';

describe('Teams through the real binary (web + worker)', () => {
  let tdb: TestDatabase;
  let entra: FakeEntra;
  let connector: FakeConnector;
  let channel: FakeChannel;
  let web: FleetMember;
  let worker: FleetMember;
  const appId = randomUUID();
  const secret = 'e2e-app-password';
  const ann = { aadObjectId: randomUUID(), mri: `29:${randomUUID()}`, name: 'Ann Approver' };
  const chat = `a:e2e-${randomUUID()}`;
  let env: Record<string, string>;
  let cwd: string;

  beforeAll(async () => {
    tdb = await createTestDatabase({ empty: true });
    entra = await startFakeEntra();
    connector = await startFakeConnector({ entra, scope: TEAMS_SCOPE });
    entra.register(appId, secret);
    connector.trust(appId);
    channel = await startFakeChannel({ appId });
    cwd = tempPath('teams-e2e');
    await mkdir(cwd, { recursive: true });
    const ca = `${cwd}/entra-ca.pem`;
    await writeFile(ca, entra.certPem);
    env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATABASE_URL: tdb.url,
      MICROSOFT_APP_ID: appId,
      MICROSOFT_APP_PASSWORD: secret,
      MICROSOFT_APP_TENANT_ID: TEAMS_TENANT,
      BOTFRAMEWORK_OPENID_METADATA_URL: channel.openIdMetadataUrl,
      BOTFRAMEWORK_LOGIN_URL: entra.loginUrl,
      NODE_EXTRA_CA_CERTS: ca,
    };
    web = await fleetMember({ name: 'web', role: 'web', env, cwd });
    worker = await fleetMember({ name: 'worker', role: 'worker', env, cwd });
    await web.start();
    await worker.start();
    const user = await createUser(tdb.db, { email: 'ann@example.test', displayName: ann.name, roles: ['approver'] });
    if (!user.ok) throw new Error(user.refusal.message);
    await linkIdentity(tdb.db, user.value.id, { surface: 'teams', tenant: TEAMS_TENANT, externalId: ann.aadObjectId }, 'test');
  }, 120_000);
  afterAll(async () => {
    killAll();
    await channel?.close();
    await connector?.close();
    await entra?.close();
    await tdb?.drop();
  });

  const post = (activity: Record<string, unknown>) =>
    fetch(`${web.url}/api/messages`, { method: 'POST', body: JSON.stringify(activity), headers: { 'content-type': 'application/json', authorization: channel.authorization(activity) } });
  const from = (activity: Record<string, unknown>): Record<string, unknown> => ({
    ...activity,
    id: randomUUID(),
    serviceUrl: connector.serviceUrl,
    from: { id: ann.mri, name: ann.name, aadObjectId: ann.aadObjectId },
    recipient: { id: `28:${appId}`, name: 'ProjectX' },
    conversation: { id: chat, conversationType: 'personal', tenantId: TEAMS_TENANT },
    channelData: { tenant: { id: TEAMS_TENANT } },
  });
  const posted = () => connector.posted.filter((post) => post.conversationId === chat) as { id: string; body: { text?: string } }[];

  it('installs, answers and decides with no Microsoft server: tokens from the fake Entra ID, sends to the fake connector', async () => {
    expect((await post(from({ type: 'installationUpdate', action: 'add', channelId: 'msteams' }))).status).toBe(200);
    await expect.poll(() => posted().length, { timeout: 30_000 }).toBe(1);
    expect(posted()[0]!.body.text).toMatch(/Welcome|Hi, I am ProjectX/);
    expect(entra.issued(appId)).toBeGreaterThanOrEqual(1);

    expect((await post(from({ ...teamsFixture('teams_message_personal_docs.json'), text: 'tasks', attachments: [] }))).status).toBe(200);
    await expect.poll(() => posted().length, { timeout: 30_000 }).toBe(2);
    expect(posted()[1]!.body.text).toBe('ProjectX for Ann Approver');

    // An operator routes approval requests to the approvers' Teams chats and creates one, with the CLI.
    for (const args of [
      ['routing', 'add', '--event', 'task.approval_requested', '--approvers-dm', '--surface', 'teams'],
      ['tasks', 'create', '--type', 'approval', '--title', 'E2E access', '--approver', 'ann@example.test'],
    ]) {
      const run = spawnCli(args, { env, cwd });
      const { code } = await run.exited;
      expect(code, `${args.join(' ')}: ${run.stdout()} ${run.stderr()}`).toBe(0);
    }
    await expect.poll(() => posted().length, { timeout: 30_000 }).toBe(3);
    const card = posted()[2]!;
    expect(card.body.text).toMatch(/E2E access/);
    const task = await tdb.db.selectFrom('tasks').select(['id', 'state']).where('title', '=', 'E2E access').executeTakeFirstOrThrow();

    const click = from({ ...teamsFixture('teams_invoke_adaptiveCard_action_sdk_test.json'), replyToId: card.id, value: { action: { type: 'Action.Execute', verb: 'approve', data: { value: task.id } }, trigger: 'manual' } });
    const answer = await post(click);
    expect(answer.status).toBe(200);
    expect(JSON.stringify(await answer.json())).toMatch(/Approved by Ann Approver/);
    expect((await tdb.db.selectFrom('tasks').select('state').where('id', '=', task.id).executeTakeFirstOrThrow()).state).toBe('approved');
    // The worker updates the card it posted (PUT …/activities/{id}).
    await expect.poll(() => connector.calls.some((call) => call.method === 'PUT' && call.path === `/v3/conversations/${chat}/activities/${card.id}` && JSON.stringify(call.body).includes('Approved by Ann Approver')), { timeout: 30_000 }).toBe(true);
  });
});
