/** Builders for signed Slack requests, shaped by the real payloads in test/fixtures/slack/. */
import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';
import { signSlackRequest } from '../../src/bot/slack/signature.ts';
import { type SlackSurface, createSlackSurface } from '../../src/bot/slack/surface.ts';
import { loadConfig } from '../../src/config.ts';
import type { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { createApp } from '../../src/http/app.ts';
import type { Logger } from '../../src/logger.ts';
import { type Metrics, createMetrics } from '../../src/metrics.ts';
import type { DomainFixture } from './domain.ts';

export const SIGNING_SECRET = 'test-signing-secret-0123456789abcdef';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/slack/${name}`, import.meta.url), 'utf8');

/** The real (percent-encoded) slash command body from Slack's docs, with our command, text and ids. */
export function slashCommandBody(overrides: Record<string, string> = {}): string {
  const form = new URLSearchParams(fixture('slack_slash_command_real_modified.txt'));
  form.set('command', '/projectx');
  for (const [key, value] of Object.entries(overrides)) form.set(key, value);
  return form.toString();
}

export function blockActionsBody(overrides: { actionId: string; value: string; userId?: string; teamId?: string; actionTs?: string; responseUrl?: string }): string {
  const payload = JSON.parse(fixture('slack_block_actions_docs_example.json')) as Record<string, unknown> & { actions: Record<string, unknown>[] };
  const teamId = overrides.teamId ?? 'T9TK3CUKW';
  payload.team = { id: teamId, domain: 'example' };
  payload.user = { id: overrides.userId ?? 'UA8RXUSPL', username: 'someone', team_id: teamId };
  payload.actions = [{ type: 'button', action_id: overrides.actionId, block_id: 'actions', value: overrides.value, text: { type: 'plain_text', text: overrides.actionId }, action_ts: overrides.actionTs ?? '1548426417.840180' }];
  if (overrides.responseUrl) payload.response_url = overrides.responseUrl;
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

export function jsonFixture(name: string): Record<string, unknown> {
  return JSON.parse(fixture(name)) as Record<string, unknown>;
}

export function signedRequest(body: string, options: { contentType?: string; now?: Date; secret?: string; headers?: Record<string, string> } = {}): RequestInit {
  const timestamp = Math.floor((options.now ?? new Date()).getTime() / 1000);
  return {
    method: 'POST',
    body,
    headers: {
      'content-type': options.contentType ?? 'application/x-www-form-urlencoded',
      ...signSlackRequest(options.secret ?? SIGNING_SECRET, body, timestamp),
      ...options.headers,
    },
  };
}

/**
 * A view_submission of our evidence modal. The envelope is Slack's SDK test payload
 * (test/fixtures/slack/slack_view_submission_sdk_test.json); the `file_input` state value has no verbatim
 * source, so it follows Slack's documented shape (`{ type: 'file_input', files: [file objects] }`).
 */
export function evidenceSubmissionBody(input: { userId: string; teamId: string; fileIds: string[]; controlId?: string; viewId?: string; hash?: string; privateMetadata?: string }): string {
  const payload = JSON.parse(fixture('slack_view_submission_sdk_test.json')) as Record<string, unknown> & { view: Record<string, unknown> };
  payload.team = { id: input.teamId, domain: 'example' };
  payload.user = { id: input.userId, username: 'uploader', name: 'uploader', team_id: input.teamId };
  payload.view = {
    ...payload.view,
    id: input.viewId ?? 'VEVIDENCE1',
    hash: input.hash ?? '1700000000.abcdef',
    callback_id: 'evidence_upload',
    private_metadata: input.privateMetadata ?? '{}',
    state: {
      values: {
        files: { files_input: { type: 'file_input', files: input.fileIds.map((id) => ({ id, name: `${id}.bin` })) } },
        control: { control_picker: { type: 'external_select', selected_option: input.controlId ? { text: { type: 'plain_text', text: input.controlId }, value: input.controlId } : null } },
        notes: { notes_input: { type: 'plain_text_input', value: null } },
      },
    },
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/** An app_home_opened event (Slack's SDK sample, test/fixtures/slack/slack_event_app_home_opened_sdk.json) for `userId`. */
export function appHomeOpenedBody(input: { userId: string; teamId: string; eventId: string }): string {
  const body = jsonFixture('slack_event_app_home_opened_sdk.json') as Record<string, unknown> & { event: Record<string, unknown> };
  body.team_id = input.teamId;
  body.event_id = input.eventId;
  body.event = { ...body.event, user: input.userId };
  return JSON.stringify(body);
}

/** A view_submission of the deny-reason modal (the SDK test envelope with our callback, metadata and value). */
export function denySubmissionBody(input: { userId: string; teamId: string; taskId: string; reason: string; viewId: string }): string {
  const payload = JSON.parse(fixture('slack_view_submission_sdk_test.json')) as Record<string, unknown> & { view: Record<string, unknown> };
  payload.team = { id: input.teamId, domain: 'example' };
  payload.user = { id: input.userId, username: 'decider', name: 'decider', team_id: input.teamId };
  payload.view = {
    ...payload.view,
    id: input.viewId,
    hash: `${input.viewId}.hash`,
    callback_id: 'deny_reason',
    private_metadata: input.taskId,
    state: { values: { reason: { reason_input: { type: 'plain_text_input', value: input.reason } } } },
  };
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

/**
 * The Slack surface alone on a web app (no service, no jobs worked), over a domain fixture's database: what the
 * receiver and listener tests post to. `env` adds to a single-workspace configuration (signing secret, bot
 * token, an API URL that refuses connections).
 */
export function slackWebApp(fx: DomainFixture, options: { logger: Logger; env?: Record<string, string>; keyring?: Keyring }): { web: Hono; surface: SlackSurface; metrics: Metrics } {
  const config = loadConfig({ SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token', SLACK_API_URL: 'http://127.0.0.1:9/api/', ...options.env });
  if (!config.ok) throw new Error(config.problems.join('; '));
  const metrics = createMetrics({ defaultMetrics: false });
  const web = createApp({ logger: options.logger, metrics, readiness: [], bodyLimitBytes: 1 << 20 });
  const surface = createSlackSurface({ config: config.config, domain: fx.deps, jobs: fx.jobs, keyring: options.keyring, logger: options.logger, metrics, integrations: () => Promise.resolve([]) });
  if (!surface) throw new Error('the Slack surface is not configured');
  surface.mount(web);
  return { web, surface, metrics };
}
