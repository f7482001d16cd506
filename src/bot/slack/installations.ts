/**
 * Slack installations for multi-workspace use: one per workspace, or one per organization for an org-wide
 * (Enterprise Grid) install, which then serves every workspace of that enterprise. Bot and refresh tokens are
 * stored only as AES-256-GCM envelopes (src/connectors/sdk/crypto.ts); the row never holds a token.
 */
import type { Db } from '../../db/database.ts';
import { type Keyring, isEnvelope } from '../../connectors/sdk/crypto.ts';

export interface InstallationGrant {
  enterpriseId?: string | undefined;
  teamId?: string | undefined;
  isEnterpriseInstall: boolean;
  appId?: string | undefined;
  botUserId?: string | undefined;
  botId?: string | undefined;
  scopes: string[];
  botToken: string;
  refreshToken?: string | undefined;
  expiresInSeconds?: number | undefined;
  installedBy?: string | undefined;
  /** Set by an install (the link it used, or null); left as stored when undefined (a token refresh). */
  installLinkId?: string | null | undefined;
}

export interface Installation {
  id: string;
  enterpriseId: string;
  teamId: string;
  botToken: string;
  botUserId: string | null;
  botId: string | null;
  refreshToken: string | undefined;
  tokenExpiresAt: Date | null;
  /** Installed through a single-use install link (src/bot/slack/install-links.ts): allowed without the list. */
  installLinkId: string | null;
}

/** What a stored token's encryption is bound to (also used by `projectx credentials rotate-key`). */
export const installationAad = (enterpriseId: string, teamId: string, field: string) => `slack:${enterpriseId}:${teamId}:${field}`;
const aad = installationAad;

export async function saveInstallation(db: Db, keyring: Keyring, grant: InstallationGrant, now: Date): Promise<string> {
  const enterpriseId = grant.enterpriseId ?? '';
  const teamId = grant.isEnterpriseInstall ? '' : (grant.teamId ?? '');
  const values = {
    enterprise_id: enterpriseId,
    team_id: teamId,
    is_enterprise_install: grant.isEnterpriseInstall,
    app_id: grant.appId ?? null,
    bot_user_id: grant.botUserId ?? null,
    bot_id: grant.botId ?? null,
    scopes: grant.scopes,
    bot_token: JSON.stringify(keyring.encrypt(grant.botToken, aad(enterpriseId, teamId, 'bot_token'))),
    refresh_token: grant.refreshToken ? JSON.stringify(keyring.encrypt(grant.refreshToken, aad(enterpriseId, teamId, 'refresh_token'))) : null,
    token_expires_at: grant.expiresInSeconds ? new Date(now.getTime() + grant.expiresInSeconds * 1000) : null,
    installed_by: grant.installedBy ?? null,
    updated_at: now,
    revoked_at: null,
    ...(grant.installLinkId !== undefined ? { install_link_id: grant.installLinkId } : {}),
  };
  const row = await db
    .insertInto('slack_installations')
    .values({ ...values, installed_at: now })
    .onConflict((oc) => oc.constraint('slack_installations_enterprise_team_key').doUpdateSet(values))
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}

/** The installation serving a workspace: its own, or its enterprise's org-wide one. */
export async function findInstallation(db: Db, keyring: Keyring, who: { enterpriseId?: string | undefined; teamId?: string | undefined }): Promise<Installation | undefined> {
  const candidates: [string, string][] = [];
  if (who.teamId) candidates.push([who.enterpriseId ?? '', who.teamId]);
  if (who.enterpriseId) candidates.push([who.enterpriseId, '']);
  for (const [enterpriseId, teamId] of candidates) {
    const row = await db.selectFrom('slack_installations').selectAll().where('enterprise_id', '=', enterpriseId).where('team_id', '=', teamId).where('revoked_at', 'is', null).executeTakeFirst();
    if (!row || !isEnvelope(row.bot_token)) continue;
    return {
      id: row.id,
      enterpriseId,
      teamId,
      botToken: keyring.decrypt(row.bot_token, aad(enterpriseId, teamId, 'bot_token')),
      botUserId: row.bot_user_id,
      botId: row.bot_id,
      refreshToken: isEnvelope(row.refresh_token) ? keyring.decrypt(row.refresh_token, aad(enterpriseId, teamId, 'refresh_token')) : undefined,
      tokenExpiresAt: row.token_expires_at,
      installLinkId: row.install_link_id,
    };
  }
  return undefined;
}

/** The installations that serve (not revoked), without their tokens: which workspaces the app is in. */
export async function listActiveInstallations(db: Db): Promise<{ enterpriseId: string; teamId: string; isEnterpriseInstall: boolean }[]> {
  const rows = await db.selectFrom('slack_installations').select(['enterprise_id', 'team_id', 'is_enterprise_install']).where('revoked_at', 'is', null).orderBy('installed_at').execute();
  return rows.map((row) => ({ enterpriseId: row.enterprise_id, teamId: row.team_id, isEnterpriseInstall: row.is_enterprise_install }));
}

/** app_uninstalled / tokens_revoked: the tokens are wiped and the installation no longer serves anyone. */
export async function revokeInstallation(db: Db, who: { enterpriseId?: string | undefined; teamId?: string | undefined; isEnterpriseInstall?: boolean | undefined }, now: Date): Promise<number> {
  const enterpriseId = who.enterpriseId ?? '';
  const teamId = who.isEnterpriseInstall ? '' : (who.teamId ?? '');
  const result = await db
    .updateTable('slack_installations')
    .set({ revoked_at: now, bot_token: JSON.stringify({}), refresh_token: null, updated_at: now })
    .where('enterprise_id', '=', enterpriseId)
    .where('team_id', '=', teamId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
