/**
 * Bot Framework authentication of `POST /api/messages`, for real: botbuilder's CloudAdapter against a fake
 * channel that publishes OpenID metadata and a JWKS on 127.0.0.1 and signs activities, rightly and in every
 * wrong way the notes list (../shared/notes/teams.md §1). Only a rightly signed activity reaches the bot; every
 * refusal is a 401 in our envelope with its reason (botbuilder alone answers 500 to a forged signature, HS256
 * and `alg: none`), counted, and logged without the token.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { createTeamsAdapter, teamsAuthSettings } from '../../../src/bot/teams/adapter.ts';
import { createTeamsRoute } from '../../../src/bot/teams/route.ts';
import { createMetrics, type Metrics } from '../../../src/metrics.ts';
import { type BadSigning, type FakeChannel, startFakeChannel } from '../../fakes/teams/channel.ts';
import { captureLogs } from '../../support/logs.ts';

const APP_ID = randomUUID();
const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
/** The channel's service URL the activity names (nothing calls it in these tests: the logic sends nothing). */
const SERVICE_URL = 'http://127.0.0.1:9/teams/';

/** Microsoft's documented personal-chat message (test/fixtures), addressed to our app and service URL. */
function personalMessage(): Record<string, unknown> {
  const activity = JSON.parse(readFileSync(new URL('../../fixtures/teams/teams_message_personal_docs.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  return { ...activity, id: `act-${randomUUID()}`, serviceUrl: SERVICE_URL, recipient: { id: `28:${APP_ID}`, name: 'ProjectX' } };
}

describe('Teams: Bot Framework authentication of POST /api/messages', () => {
  let channel: FakeChannel;
  let web: Hono;
  let metrics: Metrics;
  const reached: Record<string, unknown>[] = [];
  const logs = captureLogs({ level: 'info' });

  beforeAll(async () => {
    channel = await startFakeChannel({ appId: APP_ID });
    const config = loadConfig({ MICROSOFT_APP_ID: APP_ID, MICROSOFT_APP_PASSWORD: 'app-password-for-tests', MICROSOFT_APP_TENANT_ID: TENANT_ID, BOTFRAMEWORK_OPENID_METADATA_URL: channel.openIdMetadataUrl });
    if (!config.ok) throw new Error(config.problems.join('; '));
    const settings = teamsAuthSettings(config.config)!;
    metrics = createMetrics({ defaultMetrics: false });
    web = new Hono();
    web.route('/', createTeamsRoute({ adapter: createTeamsAdapter(settings), logger: logs.logger, metrics, logic: (activity) => {
        reached.push(activity);
        return Promise.resolve({ status: 200 });
      } }));
  });
  afterAll(() => channel?.close());

  const post = (activity: Record<string, unknown>, authorization: string | undefined) =>
    web.request('/api/messages', { method: 'POST', body: JSON.stringify(activity), headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) } });

  it('takes the public cloud\'s endpoints where none are configured, and needs an app id', () => {
    const config = loadConfig({ MICROSOFT_APP_ID: APP_ID });
    if (!config.ok) throw new Error(config.problems.join('; '));
    expect(teamsAuthSettings(config.config)).toEqual({
      appId: APP_ID,
      appPassword: undefined,
      appType: 'SingleTenant',
      tenantId: undefined,
      openIdMetadataUrl: 'https://login.botframework.com/v1/.well-known/openidconfiguration',
      tokenIssuer: 'https://api.botframework.com',
      loginUrl: 'https://login.microsoftonline.com',
      oauthScope: 'https://api.botframework.com',
    });
    const none = loadConfig({});
    expect(none.ok && teamsAuthSettings(none.config)).toBeUndefined();
    expect(loadConfig({ MICROSOFT_APP_TYPE: 'Personal', TEAMS_ALLOWED_TENANTS: 'contoso' })).toEqual({
      ok: false,
      problems: ['MICROSOFT_APP_TYPE: must be one of SingleTenant, MultiTenant, UserAssignedMSI (got "Personal")', 'TEAMS_ALLOWED_TENANTS: must be comma-separated Entra tenant ids (GUIDs) (got "contoso")'],
    });
  });

  it('lets a rightly signed activity through to the bot', async () => {
    const activity = personalMessage();
    const res = await post(activity, channel.authorization(activity));
    expect(res.status).toBe(200);
    expect(reached.map((seen) => seen.id)).toContain(activity.id);
    expect(channel.fetches.keys).toBeGreaterThanOrEqual(1);
  });

  it.each<[BadSigning | 'no_header' | 'empty_header', string]>([
    ['no_header', 'missing_token'],
    ['empty_header', 'missing_token'],
    ['forged_signature', 'invalid_signature'],
    ['hs256', 'invalid_algorithm'],
    ['alg_none', 'unsigned_token'],
    ['expired', 'expired_token'],
    ['not_yet_valid', 'token_not_yet_valid'],
    ['wrong_audience', 'wrong_audience'],
    ['wrong_issuer', 'wrong_issuer'],
    ['wrong_service_url', 'service_url_mismatch'],
    ['webchat_only_key', 'not_endorsed'],
    ['unknown_kid', 'unknown_signing_key'],
    ['skill_token', 'skill_token'],
  ])('refuses %s with 401 and reason %s, counts it, runs nothing and logs no token', async (bad, reason) => {
    const activity = personalMessage();
    const authorization = bad === 'no_header' ? undefined : bad === 'empty_header' ? '' : channel.authorization(activity, bad);
    const res = await post(activity, authorization);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(reason);
    expect(body.error.message).toMatch(/token|skill/);
    expect(reached.map((seen) => seen.id)).not.toContain(activity.id);
    expect(await metrics.registry.getSingleMetricAsString('teams_auth_failures_total')).toMatch(new RegExp(`reason="${reason}"} [1-9]`));
    const token = authorization?.replace(/^Bearer /, '') ?? '';
    if (token) {
      expect(logs.text()).not.toContain(token);
      expect(logs.text()).not.toContain(token.split('.')[2] || token.split('.')[1]);
    }
  });

  it('answers a body that is not an activity with 400, before any authentication', async () => {
    for (const body of ['not json', '[]', '{"text":"no type"}']) {
      const res = await web.request('/api/messages', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/^malformed_(body|activity)$/);
    }
  });
});
