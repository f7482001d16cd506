/**
 * Slack as a module. Web role: the Bolt app behind our receiver (`POST /slack/events`), the install routes and,
 * with `SLACK_APP_LEVEL_TOKEN`, Socket Mode. Worker role: delivery (notifier, re-renderer) and Slack's jobs
 * (evidence uploads, App Home, linking people by their verified email, token refresh), which get the Slack
 * client as their `slack` dependency. Installation tokens are secrets at rest.
 */
import { defineModule } from '../../module.ts';
import { slackVerb } from './cli.ts';
import { enqueueDirectorySyncAtStart, slackDirectoryJobs } from './directory-sync.ts';
import { slackEvidenceSubmissions, slackEvidenceUpload } from './evidence-upload.ts';
import { slackPublishHome } from './home.ts';
import { installationAad } from './installations.ts';
import { slackLinkByEmail } from './link-by-email.ts';
import { createSlackDelivery } from './notifier.ts';
import { SLACK_EVENTS_PATH, createSlackSurface } from './surface.ts';
import { slackRefreshTokens } from './token-refresh.ts';

export const slackModule = defineModule({
  id: 'slack',
  title: 'Slack',
  kind: 'surface',
  configuredBy: [
    ['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN'],
    ['SLACK_SIGNING_SECRET', 'SLACK_CLIENT_ID', 'SLACK_CLIENT_SECRET'],
    ['SLACK_APP_LEVEL_TOKEN', 'SLACK_BOT_TOKEN'],
  ],
  routes: [
    { method: 'POST', path: SLACK_EVENTS_PATH },
    { method: 'GET', path: '/slack/install' },
    { method: 'GET', path: '/oauth/callback/slack' },
  ],
  jobs: [slackEvidenceSubmissions, slackEvidenceUpload, slackPublishHome, slackLinkByEmail, slackRefreshTokens, ...slackDirectoryJobs],
  verbs: [slackVerb],
  stagedJobs: [slackEvidenceSubmissions],
  metrics: ['slack_signature_failures_total', 'slack_duplicate_deliveries_total', 'slack_refused_deliveries_total', 'slack_redeliveries_total'],
  readiness: ['slack_socket_mode'],
  secrets: [
    {
      title: 'Slack installation tokens',
      async rotate(trx, { again }) {
        for (const row of await trx.selectFrom('slack_installations').select(['id', 'enterprise_id', 'team_id', 'bot_token', 'refresh_token']).forUpdate().execute()) {
          const bot = again('slack_bot_token', row.id, row.bot_token, installationAad(row.enterprise_id, row.team_id, 'bot_token'));
          const refresh = again('slack_refresh_token', row.id, row.refresh_token, installationAad(row.enterprise_id, row.team_id, 'refresh_token'));
          if (bot || refresh) await trx.updateTable('slack_installations').set({ ...(bot ? { bot_token: JSON.stringify(bot) } : {}), ...(refresh ? { refresh_token: JSON.stringify(refresh) } : {}) }).where('id', '=', row.id).execute();
        }
      },
    },
  ],
  async start(ctx) {
    const { config, logger } = ctx;
    const delivery = ctx.worker ? createSlackDelivery({ db: ctx.db, clock: ctx.clock, logger, botToken: config.SLACK_BOT_TOKEN, apiUrl: config.SLACK_API_URL, keyring: ctx.keyring }) : undefined;
    // A single workspace's people are linked by their verified email before their first command.
    if (delivery) await enqueueDirectorySyncAtStart(ctx.jobs, config);
    const surface = ctx.web ? createSlackSurface({ config, domain: ctx.domain, jobs: ctx.jobs, keyring: ctx.keyring, identities: ctx.identities, logger, metrics: ctx.metrics, integrations: ctx.integrations, outbox: ctx.outbox }) : undefined;
    await surface?.start();
    return {
      ...(surface ? { routes: surface.routes } : {}),
      notifiers: delivery ? [delivery.notifier] : [],
      rerenderers: delivery ? [delivery.rerenderer] : [],
      jobDeps: { slack: delivery ? { sender: delivery.sender, tokens: delivery.tokens } : undefined },
      readiness:
        surface && config.SLACK_APP_LEVEL_TOKEN
          ? [
              {
                name: 'slack_socket_mode',
                check: () => (surface.connected ? Promise.resolve() : Promise.reject(new Error('not connected to Slack over Socket Mode (reconnecting)'))),
              },
            ]
          : [],
      stop: async () => surface?.stop(),
    };
  },
});
