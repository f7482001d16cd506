/**
 * The Teams surface in the running service (role all), end to end over HTTP against the fakes: installs store
 * conversations and get a welcome card; every verb of the command language answered with a card, sent by a job
 * through the Bot Connector with a token from Entra ID; a redelivered activity has no second effect; activities
 * from a tenant that is not served are refused; an unlinked person is linked by the roster.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captureLogs } from '../../support/logs.ts';
import { TEAMS_TENANT, type TeamsPerson, type TeamsService, startTeamsService } from '../../support/teams-service.ts';

describe('Teams in the running service', () => {
  let env: TeamsService;
  const logs = captureLogs({ level: 'info' });
  let megan: TeamsPerson;

  beforeAll(async () => {
    env = await startTeamsService(logs.logger);
    megan = await env.person({ email: 'megan@example.test', name: 'Megan Bowen', roles: ['approver', 'contributor', 'responder'] });
  });
  afterAll(() => env?.close());

  const textOf = (post: { body: { text?: string } }) => post.body.text ?? '';

  it('stores the conversation on install and posts a welcome card there', async () => {
    const channel = await env.installInChannel('Compliance');
    const row = await env.tdb.db.selectFrom('teams_conversations').selectAll().where('conversation_id', '=', channel).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ tenant_id: TEAMS_TENANT, kind: 'channel', channel_name: 'Compliance', active: true });
    await expect.poll(() => env.posted(channel).length, { timeout: 15_000 }).toBe(1);
    expect(textOf(env.posted(channel)[0]!)).toMatch(/@mention me/);
    expect(env.posted(channel)[0]!.body.attachments?.[0]).toMatchObject({ contentType: 'application/vnd.microsoft.card.adaptive', content: { type: 'AdaptiveCard' } });
  });

  it('answers a personal message with a card sent by a job, once even when the activity is delivered again', async () => {
    const chat = env.personalChat(megan);
    const activity = env.message(megan, 'help');
    expect((await env.post(activity)).status).toBe(200);
    await expect.poll(() => env.posted(chat).length, { timeout: 15_000 }).toBe(1);
    expect(textOf(env.posted(chat)[0]!)).toMatch(/ProjectX commands/);
    // The channel delivers it again (its answer was lost): recorded once, nothing staged again, answered once.
    const deliveryId = `message:${chat}:${activity.id as string}`;
    const before = await env.tdb.db.selectFrom('inbound_events').select(['status', 'processed_at']).where('source', '=', 'teams').where('delivery_id', '=', deliveryId).execute();
    expect((await env.post(activity)).status).toBe(200);
    expect(await env.tdb.db.selectFrom('inbound_events').select(['status', 'processed_at']).where('source', '=', 'teams').where('delivery_id', '=', deliveryId).execute()).toEqual(before);
    expect(before).toEqual([{ status: 'processed', processed_at: expect.any(Date) }]);
    expect(await env.tdb.db.selectFrom('inbound_job_outbox').select('id').execute()).toEqual([]);
    expect(env.posted(chat)).toHaveLength(1);
  });
});
