/**
 * The whole service (role all by default) with Microsoft Teams configured against the fakes of test/fakes/teams
 * (a Bot Framework channel that signs activities, Entra ID over https whose certificate is trusted through
 * NODE_EXTRA_CA_CERTS, a Bot Connector that records what the bot sends) and Slack against the fake Slack, jobs
 * polling every 0.5 s. Activities are built from the verbatim fixtures in test/fixtures/teams, addressed to this
 * app, its tenant and the fake connector, and posted signed to `POST /api/messages`.
 *
 * Every service gets a fresh app id: botbuilder caches tokens and signing keys process-wide.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from '../../src/config.ts';
import type { Role } from '../../src/db/schema.ts';
import { createUser, linkIdentity } from '../../src/domain/users.ts';
import type { Logger } from '../../src/logger.ts';
import { type Service, startService } from '../../src/main.ts';
import { type FakeSlack, startFakeSlack } from '../fakes/slack/server.ts';
import { type BadSigning, type FakeChannel, startFakeChannel } from '../fakes/teams/channel.ts';
import { type FakeConnector, startFakeConnector } from '../fakes/teams/connector.ts';
import { type FakeEntra, startFakeEntra } from '../fakes/teams/entra.ts';
import { type TestDatabase, createTestDatabase } from './database.ts';
import { SIGNING_SECRET } from './slack.ts';
import { fastJobs } from './slack-service.ts';
import { tempPath } from './temp.ts';

export const TEAMS_TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const TEAMS_SCOPE = 'https://api.botframework.com';
const APP_PASSWORD = 'teams-app-password-for-tests';

type Activity = Record<string, unknown>;

export const teamsFixture = (name: string): Activity => JSON.parse(readFileSync(new URL(`../fixtures/teams/${name}`, import.meta.url), 'utf8')) as Activity;

/** A Teams person: their Entra object id and Teams id (MRI), and the ProjectX user linked to them, if any. */
export interface TeamsPerson {
  aadObjectId: string;
  mri: string;
  name: string;
  userId?: string;
}

export interface TeamsService {
  tdb: TestDatabase;
  slack: FakeSlack;
  channel: FakeChannel;
  entra: FakeEntra;
  connector: FakeConnector;
  service: Service;
  appId: string;
  /** Posts an activity to `/api/messages`, signed by the fake channel (or wrongly, as asked). */
  post(activity: Activity, bad?: BadSigning): Promise<Response>;
  /** A ProjectX user with roles, linked to a new Teams person (and to Slack user `slackId` when given). */
  person(input: { email: string; name: string; roles: Role[]; slackId?: string; linked?: boolean }): Promise<TeamsPerson>;
  /** A message from `from` in a personal chat (its own, per person) or in `conversation`. */
  message(from: TeamsPerson, text: string, where?: { conversationId: string; kind: 'channel' | 'groupChat' }): Activity;
  /** An `Action.Execute` click (an `adaptiveCard/action` invoke) by `from` on a card in `conversationId`. */
  click(from: TeamsPerson, verb: string, data: Record<string, unknown>, conversationId?: string, trigger?: 'manual' | 'automatic'): Activity;
  /** The bot installed in a team channel (`installationUpdate` add): the channel's conversation id. */
  installInChannel(name: string): Promise<string>;
  /** The personal chat of a person with the bot (installed there): its conversation id. */
  installPersonal(person: TeamsPerson): Promise<string>;
  /** The id of a person's personal chat with the bot. */
  personalChat(person: TeamsPerson): string;
  /** What the bot posted (not updated) to a conversation, in order. */
  posted(conversationId: string): { id: string; body: { text?: string; attachments?: { content?: unknown }[] } }[];
  /** The last card content the bot sent or put (update) for activity `id` in a conversation. */
  latestCard(conversationId: string, id: string): unknown;
  close(): Promise<void>;
}

export async function startTeamsService(logger: Logger, options: { env?: Record<string, string>; role?: 'all' | 'web' | 'worker' } = {}): Promise<TeamsService> {
  const tdb = await createTestDatabase();
  const slack = await startFakeSlack();
  const entra = await startFakeEntra();
  const connector = await startFakeConnector({ entra, scope: TEAMS_SCOPE });
  const appId = randomUUID();
  entra.register(appId, APP_PASSWORD);
  connector.trust(appId);
  const channel = await startFakeChannel({ appId });
  // MSAL's agent trusts the fake Entra ID's certificate through NODE_EXTRA_CA_CERTS (src/bot/teams/module.ts).
  const caFile = tempPath('fake-entra-ca', '.pem');
  writeFileSync(caFile, entra.certPem);
  process.env.NODE_EXTRA_CA_CERTS = caFile;
  const config = loadConfig({
    DATABASE_URL: tdb.url,
    HOST: '127.0.0.1',
    PORT: '0',
    PROJECTX_DATA_DIR: tempPath('teams-service-data'),
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_BOT_TOKEN: slack.botToken,
    SLACK_API_URL: slack.apiUrl,
    // Files' download addresses are kept sealed (src/bot/teams/sealing.ts).
    PROJECTX_ENCRYPTION_KEY: `k1:${randomBytes(32).toString('base64')}`,
    MICROSOFT_APP_ID: appId,
    MICROSOFT_APP_PASSWORD: APP_PASSWORD,
    MICROSOFT_APP_TENANT_ID: TEAMS_TENANT,
    BOTFRAMEWORK_OPENID_METADATA_URL: channel.openIdMetadataUrl,
    BOTFRAMEWORK_LOGIN_URL: entra.loginUrl,
    ...options.env,
  });
  if (!config.ok) throw new Error(config.problems.join('; '));
  const service = await startService({ config: config.config, role: options.role ?? 'all', logger, jobs: fastJobs });
  const bot = { id: `28:${appId}`, name: 'ProjectX' };

  const personalChat = (person: TeamsPerson) => `a:personal-${person.aadObjectId}`;
  const address = (activity: Activity, from: TeamsPerson, conversation: Record<string, unknown>): Activity => ({
    ...activity,
    id: `${Date.now()}${Math.floor(Math.random() * 1e6)}`,
    serviceUrl: connector.serviceUrl,
    from: { id: from.mri, name: from.name, aadObjectId: from.aadObjectId },
    recipient: bot,
    conversation: { tenantId: TEAMS_TENANT, ...conversation },
    channelData: { ...(activity.channelData as object | undefined), tenant: { id: TEAMS_TENANT } },
  });
  const where = (from: TeamsPerson, place?: { conversationId: string; kind: 'channel' | 'groupChat' }) =>
    place ? { id: place.conversationId, conversationType: place.kind, isGroup: true } : { id: personalChat(from), conversationType: 'personal' };

  const post = (activity: Activity, bad?: BadSigning) =>
    fetch(`${service.http.url}/api/messages`, { method: 'POST', body: JSON.stringify(activity), headers: { 'content-type': 'application/json', authorization: channel.authorization(activity, bad) } });

  const env: TeamsService = {
    tdb,
    slack,
    channel,
    entra,
    connector,
    service,
    appId,
    post,
    async person({ email, name, roles, slackId, linked = true }) {
      const aadObjectId = randomUUID();
      const mri = `29:${randomUUID()}`;
      const person: TeamsPerson = { aadObjectId, mri, name };
      const user = await createUser(tdb.db, { email, displayName: name, roles });
      if (!user.ok) throw new Error(user.refusal.message);
      if (linked) {
        await linkIdentity(tdb.db, user.value.id, { surface: 'teams', tenant: TEAMS_TENANT, externalId: aadObjectId }, 'test');
        person.userId = user.value.id;
      }
      if (slackId) {
        slack.addUser({ id: slackId, teamId: slack.teamId, realName: name, email });
        await linkIdentity(tdb.db, user.value.id, { surface: 'slack', tenant: slack.teamId, externalId: slackId }, 'test');
      }
      // Teams' roster knows them (getMember), in their personal chat.
      connector.addMember(personalChat(person), { id: mri, name, objectId: aadObjectId, email, userPrincipalName: email, tenantId: TEAMS_TENANT, userRole: 'user' });
      return person;
    },
    message(from, text, place) {
      const base = place ? teamsFixture('teams_message_channel_mention_docs.json') : teamsFixture('teams_message_personal_docs.json');
      const activity = address(base, from, where(from, place));
      if (place) {
        const mention = `<at>${bot.name}</at>`;
        return { ...activity, text: `${mention} ${text}`, entities: [{ type: 'mention', text: mention, mentioned: bot }], attachments: [] };
      }
      return { ...activity, text, attachments: [] };
    },
    click(from, verb, data, conversationId, trigger = 'manual') {
      const invoke = teamsFixture('teams_invoke_adaptiveCard_action_sdk_test.json');
      const conversation = conversationId ? { id: conversationId, conversationType: conversationId.startsWith('a:') ? 'personal' : 'channel' } : where(from);
      return { ...address(invoke, from, conversation), replyToId: `1:card`, value: { action: { type: 'Action.Execute', verb, data, id: randomUUID() }, trigger } };
    },
    async installInChannel(name) {
      const added = teamsFixture('teams_conversationUpdate_bot_added_to_team_docs.json');
      const conversationId = `19:${randomUUID().replace(/-/g, '')}@thread.tacv2`;
      const installer: TeamsPerson = { aadObjectId: randomUUID(), mri: `29:${randomUUID()}`, name: 'Installer' };
      const activity = { ...address(added, installer, { ...(added.conversation as object), id: conversationId, name }), membersAdded: [bot] };
      const res = await post(activity);
      if (res.status !== 200) throw new Error(`installing in ${name} answered ${res.status}: ${await res.text()}`);
      return conversationId;
    },
    async installPersonal(person) {
      const activity = { ...address({ type: 'installationUpdate', action: 'add', channelId: 'msteams', channelData: { source: { name: 'message' } } }, person, where(person)) };
      const res = await post(activity);
      if (res.status !== 200) throw new Error(`installing for ${person.name} answered ${res.status}: ${await res.text()}`);
      return personalChat(person);
    },
    personalChat,
    posted: (conversationId) => connector.posted.filter((post) => post.conversationId === conversationId) as ReturnType<TeamsService['posted']>,
    latestCard(conversationId, id) {
      const calls = connector.calls.filter((call) => call.status >= 200 && call.status < 300 && call.path.startsWith(`/v3/conversations/${conversationId}/activities`));
      const sent = connector.posted.find((post) => post.conversationId === conversationId && post.id === id);
      const updates = calls.filter((call) => call.method === 'PUT' && call.path.endsWith(`/activities/${id}`));
      const body = (updates.at(-1)?.body ?? sent?.body) as { attachments?: { content?: unknown }[] } | undefined;
      return body?.attachments?.[0]?.content;
    },
    async close() {
      await service.stop();
      await channel.close();
      await connector.close();
      await entra.close();
      await slack.close();
      await tdb.drop();
      delete process.env.NODE_EXTRA_CA_CERTS;
    },
  };
  return env;
}
