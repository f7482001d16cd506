/**
 * Which bot token serves a workspace: its installation (multi-workspace installs, tokens decrypted on use;
 * org-wide installs by enterprise id), else the configured `SLACK_BOT_TOKEN`, else the only installation there
 * is. With several installations and no workspace to go by, the caller must say which: that is refused.
 */
import { WebClient } from '@slack/web-api';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import type { Db } from '../../db/database.ts';
import { findInstallation } from './installations.ts';

export class SlackTokenError extends Error {
  readonly code: 'slack_not_installed' | 'slack_workspace_ambiguous';
  constructor(code: SlackTokenError['code'], message: string) {
    super(message);
    this.name = 'SlackTokenError';
    this.code = code;
  }
}

export interface SlackTokens {
  tokenFor(tenant?: string): Promise<string>;
  /** A Web API client for a workspace (SDK retries on: for idempotent reads and view publishes only). */
  clientFor(tenant?: string): Promise<WebClient>;
}

export function createSlackTokens(deps: { db: Db; keyring: Keyring | undefined; botToken: string | undefined; apiUrl: string | undefined }): SlackTokens {
  const clients = new Map<string, WebClient>();
  const tokenFor = async (tenant?: string): Promise<string> => {
    if (deps.keyring && tenant) {
      const installation = (await findInstallation(deps.db, deps.keyring, { teamId: tenant })) ?? (await findInstallation(deps.db, deps.keyring, { enterpriseId: tenant }));
      if (installation) return installation.botToken;
    }
    if (deps.botToken) return deps.botToken;
    if (deps.keyring) {
      const active = await deps.db.selectFrom('slack_installations').select(['enterprise_id', 'team_id']).where('revoked_at', 'is', null).limit(2).execute();
      if (active.length === 1) {
        const only = await findInstallation(deps.db, deps.keyring, { enterpriseId: active[0]!.enterprise_id || undefined, teamId: active[0]!.team_id || undefined });
        if (only) return only.botToken;
      }
      if (active.length > 1) throw new SlackTokenError('slack_workspace_ambiguous', 'several Slack workspaces are installed and this message names none; set SLACK_BOT_TOKEN for the default one');
    }
    throw new SlackTokenError('slack_not_installed', 'no Slack token: set SLACK_BOT_TOKEN or install the app (GET /slack/install)');
  };
  return {
    tokenFor,
    async clientFor(tenant) {
      const token = await tokenFor(tenant);
      let client = clients.get(token);
      if (!client) {
        client = new WebClient(token, { ...(deps.apiUrl ? { slackApiUrl: deps.apiUrl } : {}), retryConfig: { retries: 2 }, rejectRateLimitedCalls: true });
        clients.set(token, client);
      }
      return client;
    },
  };
}
