/**
 * Multi-workspace delivery: with no SLACK_BOT_TOKEN, only an installation stored (encrypted) by the OAuth
 * flow, an approval request still reaches the approver's DM and the routed channel, with that workspace's token.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveInstallation } from '../../../src/bot/slack/installations.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { type SlackService, startSlackService } from '../../support/slack-service.ts';
import { captureLogs } from '../../support/logs.ts';

const KEY = Buffer.alloc(32, 5);

describe('Slack delivery with installations only', () => {
  let env: SlackService;
  beforeAll(async () => {
    // A multi-workspace configuration (the install settings; the fake's workspace listed), with no bot token.
    env = await startSlackService(captureLogs().logger, {
      SLACK_BOT_TOKEN: '',
      SLACK_CLIENT_ID: '1111.2222',
      SLACK_CLIENT_SECRET: 'client-secret-for-tests',
      SLACK_ALLOWED_WORKSPACES: 'T00000001',
      PUBLIC_URL: 'http://127.0.0.1:9',
      PROJECTX_ENCRYPTION_KEY: `k5:${KEY.toString('base64')}`,
    });
    // The fake accepts its own bot token; store it as the workspace's installation, as the OAuth callback would.
    await saveInstallation(env.tdb.db, new Keyring([{ id: 'k5', key: KEY }]), { teamId: env.fake.teamId, isEnterpriseInstall: false, scopes: ['chat:write'], botToken: env.fake.botToken }, new Date());
  });
  afterAll(() => env?.close());

  it('posts with the installation token, to the DM and the channel', async () => {
    const approverId = await env.linkedUser({ email: 'ivy@example.test', name: 'Ivy', roles: ['approver'], slackId: 'WIVY' });
    const task = await createTask(env.service.domain, CLI_ACTOR, { type: 'approval', title: 'Multi-workspace', policy: { approverUserIds: [approverId] } });
    if (!task.ok) throw new Error(task.refusal.message);
    const statuses = async () => (await env.tdb.db.selectFrom('notifications').select('status').where('subject_id', '=', task.value.id).execute()).map((row) => row.status);
    await expect.poll(statuses, { timeout: 15_000 }).toEqual(['sent', 'sent']);
    const posts = env.fake.callsTo('chat.postMessage');
    expect(posts.length).toBe(2);
    for (const post of posts) expect(post.token).toBe(env.fake.botToken);
    expect(await env.tdb.db.selectFrom('slack_messages').select('team').where('channel', 'like', 'D%').executeTakeFirstOrThrow()).toEqual({ team: env.fake.teamId });
  });
});
