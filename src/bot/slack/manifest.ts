/**
 * The Slack app manifest (manifests/slack-app.yaml) rendered for one deployment, and the lists of what the code
 * relies on: the slash commands it registers, the bot scopes its Web API calls need, and the events it
 * subscribes to. test/bot/slack/manifest.test.ts checks the manifest against Slack's JSON Schema and against
 * these lists, and proves each command is answered by the real Slack surface.
 *
 * The YAML's URLs start with a placeholder base; `renderManifest(PUBLIC_URL)` puts the deployment's base in
 * its place, so the pasted manifest points Slack at `POST /slack/events` and `GET /oauth/callback/slack`.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/** Where the manifest lives, relative to this file (src/bot/slack/ → repository root). */
export const SLACK_MANIFEST_FILE = new URL('../../../manifests/slack-app.yaml', import.meta.url);

/** The base URL every URL in the YAML starts with, replaced by `renderManifest`. */
export const MANIFEST_PLACEHOLDER_URL = 'https://projectx.example.com';

/** The routes Slack is pointed at: one Request URL for everything, and the OAuth redirect. */
export const SLACK_PATHS = {
  events: '/slack/events',
  oauthCallback: '/oauth/callback/slack',
} as const;

/** Slash commands the surface registers (surface.ts: `app.command('/projectx', …)`). */
export const SLACK_COMMANDS = ['/projectx'] as const;

/** Bot scopes, each for a Web API method the service calls (views.open/update/publish need none). */
export const SLACK_BOT_SCOPES = [
  'commands', // the slash command
  'chat:write', // chat.postMessage, chat.update, chat.postEphemeral
  'im:write', // conversations.open (DMs to approvers and uploaders)
  'users:read', // users.info, and users.list (the directory sync links a workspace's people ahead of time)
  'users:read.email', // the profile email in users.info and users.list, for identity linking
  'files:read', // files.info and downloading evidence files
  // conversations.history, only to find our own message (metadata key) after a lost response: no double posts
  'channels:history',
  'groups:history',
  'im:history',
  'mpim:history',
] as const;

/** Events API subscriptions (none of them needs a scope). */
export const SLACK_BOT_EVENTS = ['app_home_opened', 'app_uninstalled', 'tokens_revoked'] as const;

/**
 * The manifest with `publicUrl` (the service's PUBLIC_URL; a trailing slash is dropped, a path prefix kept) as
 * the base of every URL. Throws if `publicUrl` is not an http(s) URL without query, fragment or credentials.
 */
export function renderManifest(publicUrl: string): Record<string, unknown> {
  const base = manifestBaseUrl(publicUrl);
  const manifest = substitute(readManifestTemplate(), base);
  if (!isRecord(manifest)) throw new Error(`${SLACK_MANIFEST_FILE.pathname} is not a YAML mapping`);
  return manifest;
}

/** The manifest as written, placeholder URLs included. */
export function readManifestTemplate(): Record<string, unknown> {
  const parsed: unknown = parse(readFileSync(SLACK_MANIFEST_FILE, 'utf8'));
  if (!isRecord(parsed)) throw new Error(`${SLACK_MANIFEST_FILE.pathname} is not a YAML mapping`);
  return parsed;
}

function manifestBaseUrl(publicUrl: string): string {
  if (!URL.canParse(publicUrl)) throw new Error('the public URL must be an absolute http(s) URL');
  const url = new URL(publicUrl);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('the public URL must use http or https');
  if (url.search || url.hash || url.username || url.password) throw new Error('the public URL must not have a query, a fragment or credentials');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** A copy of `value` with the placeholder base replaced in every string that starts with it. */
function substitute(value: unknown, base: string): unknown {
  if (typeof value === 'string') {
    return value === MANIFEST_PLACEHOLDER_URL || value.startsWith(`${MANIFEST_PLACEHOLDER_URL}/`) ? base + value.slice(MANIFEST_PLACEHOLDER_URL.length) : value;
  }
  if (Array.isArray(value)) return value.map((item: unknown) => substitute(item, base));
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, substitute(item, base)]));
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
