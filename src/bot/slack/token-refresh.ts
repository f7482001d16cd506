/**
 * Token rotation for installs with refresh tokens: every 10 minutes, tokens expiring within the hour are
 * refreshed (`oauth.v2.access`, grant_type refresh_token). Single-flight across processes: each refresh holds a
 * PostgreSQL advisory lock on its installation and re-reads the row after taking it, so two workers never
 * spend the same refresh token (Slack revokes a refresh token once used).
 */
import { WebClient } from '@slack/web-api';
import { sql } from 'kysely';
import { z } from 'zod';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { SlackJobDeps } from './job-deps.ts';
import { findInstallation, saveInstallation } from './installations.ts';

export const slackRefreshTokens = defineJob({
  name: 'slack.refresh-tokens',
  schema: z.object({}),
  policy: { queuePolicy: 'singleton', batchSize: 1, retryLimit: 2 },
  schedule: { cron: '*/10 * * * *', payload: {} },
  handler: async (_payload, { deps, logger }: JobContext<SlackJobDeps>) => {
    const { keyring, config } = deps;
    if (!keyring || !config.SLACK_CLIENT_ID || !config.SLACK_CLIENT_SECRET) return { skipped: 'no installs to refresh' };
    const soon = new Date(deps.clock.now().getTime() + 3_600_000);
    const due = await deps.db
      .selectFrom('slack_installations')
      .select(['id', 'enterprise_id', 'team_id'])
      .where('revoked_at', 'is', null)
      .where('refresh_token', 'is not', null)
      .where('token_expires_at', '<', soon)
      .execute();
    let refreshed = 0;
    for (const row of due) {
      await deps.db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtextextended(${`slack-refresh:${row.id}`}, 0))`.execute(trx);
        const current = await findInstallation(trx, keyring, { enterpriseId: row.enterprise_id || undefined, teamId: row.team_id || undefined });
        if (!current?.refreshToken || (current.tokenExpiresAt && current.tokenExpiresAt >= soon)) return; // done by another worker
        const client = new WebClient(undefined, { ...(config.SLACK_API_URL ? { slackApiUrl: config.SLACK_API_URL } : {}), retryConfig: { retries: 1 } });
        const grant = await client.oauth.v2.access({ client_id: config.SLACK_CLIENT_ID!, client_secret: config.SLACK_CLIENT_SECRET!, grant_type: 'refresh_token', refresh_token: current.refreshToken });
        if (!grant.access_token) throw Object.assign(new Error('Slack returned no token on refresh'), { code: 'slack_refresh_failed' });
        const installation = await trx.selectFrom('slack_installations').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
        await saveInstallation(
          trx,
          keyring,
          {
            enterpriseId: row.enterprise_id || undefined,
            teamId: row.team_id || undefined,
            isEnterpriseInstall: installation.is_enterprise_install,
            appId: installation.app_id ?? undefined,
            botUserId: installation.bot_user_id ?? undefined,
            botId: installation.bot_id ?? undefined,
            scopes: installation.scopes,
            botToken: grant.access_token,
            refreshToken: grant.refresh_token ?? current.refreshToken,
            expiresInSeconds: grant.expires_in,
            installedBy: installation.installed_by ?? undefined,
          },
          deps.clock.now(),
        );
        await trx
          .insertInto('integration_credentials_audit')
          .values({ action: 'slack.token_refreshed', actor: 'system', key_id: keyring.currentKeyId, detail: JSON.stringify({ enterpriseId: row.enterprise_id, teamId: row.team_id }), created_at: deps.clock.now() })
          .execute();
        refreshed++;
      });
    }
    if (refreshed > 0) logger.info({ refreshed }, 'refreshed Slack tokens');
    return { due: due.length, refreshed };
  },
});
