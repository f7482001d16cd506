/**
 * Socket Mode: with SLACK_APP_LEVEL_TOKEN the service opens a WebSocket to (the fake) Slack instead of
 * exposing a Request URL, and the same handlers answer: a slash command's ephemeral reply comes back in the
 * envelope's ack, and a redelivered envelope has no second effect.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { createUser, linkIdentity } from '../../../src/domain/users.ts';
import { type Service, startService } from '../../../src/main.ts';
import { type FakeSlack, startFakeSlack } from '../../fakes/slack/server.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { slashCommandBody } from '../../support/slack.ts';

describe('Slack over Socket Mode', () => {
  let tdb: TestDatabase;
  let fake: FakeSlack;
  let service: Service;
  let approverId: string;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    fake = await startFakeSlack();
    const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', SLACK_APP_LEVEL_TOKEN: fake.socketMode().appToken, SLACK_BOT_TOKEN: fake.botToken, SLACK_API_URL: fake.apiUrl });
    if (!config.ok) throw new Error(config.problems.join('; '));
    service = await startService({ config: config.config, role: 'web', logger: captureLogs().logger });
    await fake.socketMode().connected();
    const approver = await createUser(tdb.db, { email: 'sam@example.test', displayName: 'Sam', roles: ['approver'] });
    if (!approver.ok) throw new Error(approver.refusal.message);
    approverId = approver.value.id;
    await linkIdentity(tdb.db, approverId, { surface: 'slack', tenant: fake.teamId, externalId: 'WSAM' }, 'test');
  });
  afterAll(async () => {
    await service?.stop();
    await fake?.close();
    await tdb?.drop();
  });

  it('answers a slash command in the envelope ack, once however often it is redelivered', async () => {
    const task = await createTask(service.domain, CLI_ACTOR, { type: 'approval', title: 'Socket approval', policy: { approverUserIds: [approverId] } });
    if (!task.ok) throw new Error(task.refusal.message);
    const payload = Object.fromEntries(new URLSearchParams(slashCommandBody({ team_id: fake.teamId, enterprise_id: '', user_id: 'WSAM', text: `approve ${task.value.ref}`, trigger_id: 'trg-socket-1' })));
    const ack = await fake.socketMode().send('slash_commands', payload);
    expect(ack).toMatchObject({ response_type: 'ephemeral', text: `You approved ${task.value.ref}: it is now approved (1 of 1).` });
    const again = await fake.socketMode().send('slash_commands', payload, { retryAttempt: 1, retryReason: 'timeout' });
    expect(again).toEqual({});
    expect(await tdb.db.selectFrom('approval_decisions').selectAll().where('task_id', '=', task.value.id).execute()).toHaveLength(1);
  });

  it('exposes no signed Request URL when only Socket Mode is configured', async () => {
    expect((await fetch(`${service.http.url}/slack/events`, { method: 'POST', body: '{}' })).status).toBe(404);
  });
});
