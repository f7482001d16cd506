/**
 * Single-use install links: an admin's proof (`projectx slack install-link`) that one Slack workspace may install
 * the app although SLACK_ALLOWED_WORKSPACES does not list it. The token (32 random bytes, base64url) is shown
 * once and kept only as its SHA-256; `GET /slack/install?link=…` checks it and binds the link's id into the OAuth
 * state, and the callback consumes it (one conditional UPDATE, so two callbacks cannot both use it) in the
 * transaction that stores the installation.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from '../../db/database.ts';

/** How long a link lives by default, and at most. */
export const INSTALL_LINK_MAX_TTL_MS = 24 * 3_600_000;

const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;

export const hashInstallToken = (token: string) => createHash('sha256').update(token).digest('hex');

/** The address an admin sends: `<PUBLIC_URL>/slack/install?link=<token>` (a path prefix in PUBLIC_URL is kept). */
export function installLinkUrl(publicUrl: string, token: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/slack/install?link=${token}`;
}

/** A new link; its token is returned once and never stored. */
export async function createInstallLink(db: Db, input: { createdBy: string; ttlMs: number; now: Date }): Promise<{ id: string; token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(input.now.getTime() + Math.min(input.ttlMs, INSTALL_LINK_MAX_TTL_MS));
  const row = await db
    .insertInto('slack_install_links')
    .values({ token_hash: hashInstallToken(token), created_by: input.createdBy, created_at: input.now, expires_at: expiresAt })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, token, expiresAt };
}

/** The link a token names, if it is unused and unexpired (`GET /slack/install`); it is not consumed here. */
export async function findUsableInstallLink(db: Db, token: string, now: Date): Promise<{ id: string; expiresAt: Date } | undefined> {
  if (!TOKEN_FORMAT.test(token)) return undefined;
  const row = await db
    .selectFrom('slack_install_links')
    .select(['id', 'expires_at'])
    .where('token_hash', '=', hashInstallToken(token))
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return row ? { id: row.id, expiresAt: row.expires_at } : undefined;
}

/**
 * Marks the link used by this workspace, if it still is unused and unexpired; false otherwise (used by another
 * callback meanwhile, or expired during the install). Run it in the transaction that stores the installation.
 */
export async function consumeInstallLink(db: Db, id: string, who: { enterpriseId?: string | undefined; teamId?: string | undefined; isEnterpriseInstall: boolean }, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('slack_install_links')
    .set({ used_at: now, used_by_team: who.isEnterpriseInstall ? null : (who.teamId ?? null), used_by_enterprise: who.enterpriseId ?? null })
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * The link through which the workspace's current installation (not revoked) was made, if any: such a
 * workspace may install again (new scopes, a new token) without a new link, as it may use the app.
 */
export async function linkOfActiveInstallation(db: Db, who: { enterpriseId?: string | undefined; teamId?: string | undefined; isEnterpriseInstall: boolean }): Promise<string | undefined> {
  const row = await db
    .selectFrom('slack_installations')
    .select('install_link_id')
    .where('enterprise_id', '=', who.enterpriseId ?? '')
    .where('team_id', '=', who.isEnterpriseInstall ? '' : (who.teamId ?? ''))
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return row?.install_link_id ?? undefined;
}
