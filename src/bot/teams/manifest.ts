/**
 * The Teams app manifest (manifests/teams/manifest.json) rendered for one deployment, and its bot command list
 * generated from the command registry. test/bot/teams/manifest.test.ts validates it against Microsoft's own
 * JSON Schema (bundled by `@microsoft/app-manifest`) and against the commands the code registers.
 *
 * The committed manifest carries placeholders that are still schema-valid (the nil GUID for the app id, the
 * Slack manifest's example host): `renderTeamsManifest` puts MICROSOFT_APP_ID and PUBLIC_URL's host in their
 * place and regenerates `commandLists`, so a sideload package never carries a stale command list.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { COMMANDS } from '../commands/registry.ts';

/** Where the manifest lives, relative to this file (src/bot/teams/ → repository root). */
export const TEAMS_MANIFEST_DIR = new URL('../../../manifests/teams/', import.meta.url);
export const TEAMS_MANIFEST_FILE = new URL('manifest.json', TEAMS_MANIFEST_DIR);

/** Manifest schema version; the newest `@microsoft/app-manifest` 1.1.2 bundles (build/json-schemas/teams/). */
export const TEAMS_MANIFEST_VERSION = '1.30';

/** Stands for MICROSOFT_APP_ID in the committed manifest (a GUID, so the file itself validates). */
export const APP_ID_PLACEHOLDER = '00000000-0000-0000-0000-000000000000';
/** Stands for PUBLIC_URL's host (the same example host as manifests/slack-app.yaml). */
export const HOST_PLACEHOLDER = 'projectx.example.com';
/** The bot is offered in every conversation kind the command layer serves. */
export const TEAMS_BOT_SCOPES = ['personal', 'team', 'groupChat'] as const;

export interface TeamsCommand {
  title: string;
  description: string;
}

/**
 * One command per registered verb, in registry order: the verb as typed after @mentioning the bot, and its
 * syntax with what `/projectx help` says of it (no Markdown: Teams shows the description as plain text). One
 * list for all three scopes: the commands are the same in each.
 */
export function teamsCommandLists(commands: readonly { verb: string; usage: string; summary: string }[] = COMMANDS) {
  return [
    {
      scopes: [...TEAMS_BOT_SCOPES],
      commands: commands.map((command): TeamsCommand => ({ title: command.verb, description: `${command.usage.replace(/^\/projectx /, '')}: ${command.summary.replaceAll('`', '')}` })),
    },
  ];
}

const GUID = /^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$/;

/** What packaging reads from the environment; every problem is named by its variable, no value is echoed. */
export const teamsPackageEnv = z.object({
  MICROSOFT_APP_ID: z
    .string({ error: 'MICROSOFT_APP_ID is missing (the bot\'s Microsoft App ID, a GUID)' })
    .trim()
    .regex(GUID, 'MICROSOFT_APP_ID must be a GUID (the bot\'s Microsoft App ID)')
    .refine((id) => id !== APP_ID_PLACEHOLDER, 'MICROSOFT_APP_ID is the placeholder nil GUID'),
  PUBLIC_URL: z
    .string({ error: 'PUBLIC_URL is missing (the public https address Teams reaches the service at)' })
    .trim()
    .refine((value) => URL.canParse(value) && new URL(value).protocol === 'https:', 'PUBLIC_URL must be an https URL (Teams only calls https)'),
});
export type TeamsPackageEnv = z.infer<typeof teamsPackageEnv>;

export type ParsedEnv = { ok: true; env: TeamsPackageEnv } | { ok: false; problems: string[] };

export function parseTeamsPackageEnv(env: Record<string, string | undefined>): ParsedEnv {
  const parsed = teamsPackageEnv.safeParse({ MICROSOFT_APP_ID: env.MICROSOFT_APP_ID || undefined, PUBLIC_URL: env.PUBLIC_URL || undefined });
  if (parsed.success) return { ok: true, env: parsed.data };
  return { ok: false, problems: parsed.error.issues.map((issue) => issue.message) };
}

/** The manifest as committed, placeholders included. */
export function readTeamsManifestTemplate(): Record<string, unknown> {
  const parsed: unknown = JSON.parse(readFileSync(TEAMS_MANIFEST_FILE, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${TEAMS_MANIFEST_FILE.pathname} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * The manifest for one deployment: every placeholder app id (app, bot, webApplicationInfo) becomes `appId`,
 * the placeholder host becomes PUBLIC_URL's hostname (validDomains, developer URLs, the SSO resource), and the
 * bot's `commandLists` are regenerated from the registry.
 */
export function renderTeamsManifest(env: TeamsPackageEnv, template = readTeamsManifestTemplate()): Record<string, unknown> {
  const url = new URL(env.PUBLIC_URL);
  const base = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  const text = JSON.stringify(template)
    .replaceAll(APP_ID_PLACEHOLDER, env.MICROSOFT_APP_ID.toLowerCase())
    .replaceAll(`https://${HOST_PLACEHOLDER}`, base)
    .replaceAll(HOST_PLACEHOLDER, url.hostname);
  const manifest = JSON.parse(text) as Record<string, unknown> & { bots?: Record<string, unknown>[] };
  for (const bot of manifest.bots ?? []) bot.commandLists = teamsCommandLists();
  return manifest;
}
