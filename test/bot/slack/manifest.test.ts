/**
 * The Slack app manifest (manifests/slack-app.yaml), rendered for a PUBLIC_URL: valid against Slack's official
 * manifest JSON Schema (test/fixtures/slack/slack_app_manifest_v1_schema.json), pointing Slack only at our
 * routes, and in step with what the code declares in src/bot/slack/manifest.ts. Each declared command, the
 * options menu and each subscribed event is then sent, signed, through the real Slack surface at the path the
 * manifest gives, to show the app answers there.
 *
 * Bolt offers no way to list an app's listeners, so "what the surface registers" is SLACK_COMMANDS, proved
 * handled by a real request (an undeclared command gets no answer, which shows the check can fail).
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_PLACEHOLDER_URL, SLACK_BOT_EVENTS, SLACK_BOT_SCOPES, SLACK_COMMANDS, SLACK_PATHS, readManifestTemplate, renderManifest } from '../../../src/bot/slack/manifest.ts';
import { linkIdentity } from '../../../src/domain/users.ts';
import { createSlackSurface } from '../../../src/bot/slack/surface.ts';
import { loadConfig } from '../../../src/config.ts';
import { createApp } from '../../../src/http/app.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { SIGNING_SECRET, jsonFixture, signedRequest, slashCommandBody } from '../../support/slack.ts';

type Json = Record<string, unknown>;

const schema = JSON.parse(readFileSync(new URL('../../fixtures/slack/slack_app_manifest_v1_schema.json', import.meta.url), 'utf8')) as Json & {
  definitions: Record<string, { properties?: Record<string, { regex?: string }> }>;
};

/** Slack's schema (draft-07) with its two non-standard annotations; `uri` is only the format of `$schema`, which we do not set. */
function manifestValidator(): ValidateFunction {
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, formats: { uri: true } });
  ajv.addVocabulary(['regex', '_note']);
  return ajv.compile(schema);
}

const PUBLIC_URL = 'https://projectx.acme.test';

function configured(env: Record<string, string>) {
  const config = loadConfig({ SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token', SLACK_API_URL: 'http://127.0.0.1:9/api/', ...env });
  if (!config.ok) throw new Error(config.problems.join('; '));
  return config.config;
}

// Typed views of the parts of the manifest the checks read (the schema test proves the shape).
interface Manifest {
  display_information: { name: string; background_color?: string };
  features: { slash_commands: { command: string; url?: string; description: string; usage_hint?: string }[]; app_home: Json; bot_user: Json };
  oauth_config: { redirect_urls: string[]; scopes: { bot: string[]; user?: string[] } };
  settings: {
    event_subscriptions: { request_url: string; bot_events: string[]; user_events?: string[] };
    interactivity: { is_enabled: boolean; request_url: string; message_menu_options_url: string };
    socket_mode_enabled: boolean;
  };
}
const view = (manifest: Json) => manifest as unknown as Manifest;

/** Every string in the manifest that is an http(s) URL, with where it is. */
function urlsIn(value: unknown, at = ''): { at: string; url: string }[] {
  if (typeof value === 'string') return /^https?:\/\//.test(value) ? [{ at, url: value }] : [];
  if (Array.isArray(value)) return value.flatMap((item, index) => urlsIn(item, `${at}[${index}]`));
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => urlsIn(item, at ? `${at}.${key}` : key));
  return [];
}

const sorted = (values: readonly string[]) => [...values].sort();

describe('what the docs say about the Slack app', () => {
  const manifestReadme = readFileSync(new URL('../../../manifests/README.md', import.meta.url), 'utf8');
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const template = view(readManifestTemplate()) as Manifest & { settings: { token_rotation_enabled?: boolean } };
  const row = (name: string) => manifestReadme.split('\n').find((line) => line.startsWith(`| ${name} |`)) ?? '';
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx.close());

  it('manifests/README.md lists exactly the bot scopes of the manifest', () => {
    const listed = [...row('bot scopes').split('|')[2]!.split('(why')[0]!.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);
    expect(sorted(listed)).toEqual(sorted(SLACK_BOT_SCOPES));
  });

  it('names every channel the default routing rules post to, for the bot to be invited to', async () => {
    const step = manifestReadme.slice(manifestReadme.indexOf('4. Invite the bot'), manifestReadme.indexOf('Slack verifies the events Request URL'));
    const named = [...step.matchAll(/`#([a-z0-9_-]+)`/g)].map((match) => match[1]!);
    const seeded = await fx.tdb.db.selectFrom('notification_rules').select('target').distinct().where('surface', '=', 'slack').where('target_kind', '=', 'channel').execute();
    expect(sorted(named)).toEqual(sorted(seeded.map((rule) => rule.target!)));
  });

  it('says token rotation is what the manifest sets, and the README defers to manifests/README.md', () => {
    expect(template.settings.token_rotation_enabled).toBe(false);
    expect(row('token rotation')).toMatch(/^\| token rotation \| off /);
    // One place lists scopes and channels: the README points there instead of keeping a copy that drifts.
    expect(readme).toContain('manifests/README.md');
    for (const scope of SLACK_BOT_SCOPES.filter((scope) => scope !== 'commands')) expect(readme, scope).not.toContain(scope);
    // Wherever the README speaks of token rotation, it says it is off in the manifest.
    const sentences = readme.replace(/\s+/g, ' ').split(/(?<=[.;])\s/).filter((sentence) => /token rotation/i.test(sentence));
    expect(sentences.length).toBeGreaterThan(0);
    for (const sentence of sentences) expect(sentence).toMatch(/\boff\b/);
  });
});

describe('the Slack app manifest', () => {
  const validate = manifestValidator();
  const config = configured({ PUBLIC_URL });
  const manifest = renderManifest(config.PUBLIC_URL!);
  const m = view(manifest);

  it('is valid against the official manifest schema, as written and as rendered', () => {
    for (const candidate of [readManifestTemplate(), manifest]) {
      const ok = validate(candidate);
      expect(validate.errors ?? []).toEqual([]);
      expect(ok).toBe(true);
    }
    // The validator does refuse what the schema forbids.
    expect(validate({ ...manifest, settings: { ...m.settings, socket_mode: false } })).toBe(false);
    expect(validate({ features: m.features })).toBe(false);
    // `regex` is an annotation to ajv, so check the background colour against it here.
    const colour = schema.definitions['app-manifests.v1.display_information.schema']?.properties?.background_color?.regex;
    expect(colour).toBeDefined();
    expect(m.display_information.background_color).toMatch(new RegExp(colour!));
  });

  it('declares exactly the slash commands the code registers, each described, with a usage hint', () => {
    expect(sorted(m.features.slash_commands.map((command) => command.command))).toEqual(sorted(SLACK_COMMANDS));
    for (const command of m.features.slash_commands) {
      expect(command.description.length).toBeGreaterThan(0);
      expect(command.usage_hint?.length).toBeGreaterThan(0);
    }
  });

  it('asks for exactly the bot scopes the code declares, and no user scopes', () => {
    expect(sorted(m.oauth_config.scopes.bot)).toEqual(sorted(SLACK_BOT_SCOPES));
    expect(new Set(m.oauth_config.scopes.bot).size).toBe(m.oauth_config.scopes.bot.length);
    expect(m.oauth_config.scopes.user ?? []).toEqual([]);
    // Posting goes to channels the bot was invited to (see the comment in the YAML).
    expect(m.oauth_config.scopes.bot).not.toContain('chat:write.public');
  });

  it('subscribes to exactly the bot events the code declares, over HTTP with interactivity on', () => {
    expect(sorted(m.settings.event_subscriptions.bot_events)).toEqual(sorted(SLACK_BOT_EVENTS));
    expect(m.settings.event_subscriptions.user_events ?? []).toEqual([]);
    expect(m.settings.interactivity.is_enabled).toBe(true);
    expect(m.settings.socket_mode_enabled).toBe(false);
    expect(m.features.app_home).toMatchObject({ home_tab_enabled: true });
    expect(m.features.bot_user).toMatchObject({ always_online: true });
  });

  it.each([
    ['a bare origin', 'https://projectx.acme.test', 'https://projectx.acme.test'],
    ['a trailing slash', 'https://projectx.acme.test/', 'https://projectx.acme.test'],
    ['a path prefix', 'https://gateway.acme.test/projectx/', 'https://gateway.acme.test/projectx'],
  ])('points every URL at PUBLIC_URL with %s, and only at /slack/events or /oauth/callback/slack', (_label, publicUrl, base) => {
    const rendered = renderManifest(configured({ PUBLIC_URL: publicUrl }).PUBLIC_URL!);
    const r = view(rendered);
    const urls = urlsIn(rendered);
    expect(urls.length).toBeGreaterThanOrEqual(5);
    for (const { at, url } of urls) {
      expect(url, at).toMatch(new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(${SLACK_PATHS.events}|${SLACK_PATHS.oauthCallback})$`));
    }
    expect(JSON.stringify(rendered)).not.toContain(new URL(MANIFEST_PLACEHOLDER_URL).host);
    const events = `${base}${SLACK_PATHS.events}`;
    expect(r.settings.event_subscriptions.request_url).toBe(events);
    expect(r.settings.interactivity.request_url).toBe(events);
    expect(r.settings.interactivity.message_menu_options_url).toBe(events);
    expect(r.features.slash_commands.map((command) => command.url)).toEqual(r.features.slash_commands.map(() => events));
    expect(r.oauth_config.redirect_urls).toEqual([`${base}${SLACK_PATHS.oauthCallback}`]);
  });

  it.each([['not a URL'], ['ftp://projectx.acme.test'], ['https://projectx.acme.test/?env=prod'], ['https://user:pw@projectx.acme.test']])(
    'refuses to render for %s',
    (publicUrl) => {
      expect(() => renderManifest(publicUrl)).toThrow(/public URL/);
    },
  );

  describe('through the real Slack surface, at the paths the manifest gives', () => {
    let fx: DomainFixture;
    let web: Hono;
    const logs = captureLogs({ secrets: [SIGNING_SECRET] });
    const pathOf = (url: string) => new URL(url).pathname;

    beforeAll(async () => {
      fx = await domainFixture();
      fx.clock.set(new Date());
      web = createApp({ logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), readiness: [], bodyLimitBytes: 1 << 20 });
      createSlackSurface({ config, domain: fx.deps, jobs: fx.jobs, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), integrations: () => Promise.resolve([]) })!.mount(web);
    });
    afterAll(() => fx.close());

    const post = (path: string, body: string, contentType?: string) =>
      web.request(path, signedRequest(body, { now: fx.clock.now(), ...(contentType ? { contentType } : {}) }));

    it.each(m.features.slash_commands.map((command) => [command.command, command.url!] as const))('answers %s at its URL in the ack', async (command, url) => {
      const res = await post(pathOf(url), slashCommandBody({ command, text: 'help', user_id: 'UMANIFEST1', trigger_id: `trg-manifest-${command}` }));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ response_type: 'ephemeral', text: expect.stringContaining('/projectx') });
    });

    it('gives no answer to a command the code does not register (so the check above can fail)', async () => {
      const res = await post(SLACK_PATHS.events, slashCommandBody({ command: '/not-declared', text: 'help', user_id: 'UMANIFEST1', trigger_id: 'trg-manifest-undeclared' }));
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('');
    });

    it('answers the control_picker options at the options load URL (to people who may upload evidence only)', async () => {
      const control = await fx.control({ title: 'Manifest options check' });
      const uploader = await fx.user({ roles: ['contributor'] });
      await linkIdentity(fx.tdb.db, uploader.id, { surface: 'slack', tenant: 'T0MANIFEST', externalId: 'UMANIFEST1' }, 'test');
      const payload = {
        type: 'block_suggestion',
        action_id: 'control_picker',
        block_id: 'control',
        value: 'Manifest options',
        api_app_id: 'A0MANIFEST',
        team: { id: 'T0MANIFEST', domain: 'acme' },
        user: { id: 'UMANIFEST1', team_id: 'T0MANIFEST' },
        container: { type: 'view', view_id: 'V0MANIFEST' },
        view: { id: 'V0MANIFEST', type: 'modal', callback_id: 'evidence_upload', private_metadata: '{}', state: { values: {} } },
      };
      const res = await post(pathOf(m.settings.interactivity.message_menu_options_url), new URLSearchParams({ payload: JSON.stringify(payload) }).toString());
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ options: [{ text: { type: 'plain_text', text: `${control} Manifest options check` }, value: control }] });
      const stranger = { ...payload, user: { id: 'USTRANGER', team_id: 'T0MANIFEST' } };
      const refused = await post(pathOf(m.settings.interactivity.message_menu_options_url), new URLSearchParams({ payload: JSON.stringify(stranger) }).toString());
      expect(await refused.json()).toEqual({ options: [] });
    });

    it.each(m.settings.event_subscriptions.bot_events)('accepts and records a signed %s event at the events Request URL', async (type) => {
      const inner: Record<string, Json> = {
        app_home_opened: jsonFixture('slack_event_app_home_opened_sdk.json').event as Json,
        app_uninstalled: { type: 'app_uninstalled' },
        tokens_revoked: { type: 'tokens_revoked', tokens: { oauth: [], bot: ['UBOT00001'] } },
      };
      expect(inner[type], `no sample event for ${type}`).toBeDefined();
      const eventId = `EvManifest${type}`;
      const envelope = { ...jsonFixture('slack_event_app_home_opened_sdk.json'), event: inner[type], event_id: eventId };
      const res = await post(pathOf(m.settings.event_subscriptions.request_url), JSON.stringify(envelope), 'application/json');
      expect(res.status).toBe(200);
      await expect
        .poll(async () => (await fx.tdb.db.selectFrom('inbound_events').select(['kind', 'status']).where('delivery_id', '=', `event:${eventId}`).executeTakeFirst()) ?? null)
        .toEqual({ kind: 'event_callback', status: 'processed' });
    });
  });
});
