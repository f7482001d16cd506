/**
 * Which Slack workspaces a multi-workspace install serves. A workspace may install, and is served, when
 * SLACK_ALLOWED_WORKSPACES lists its team id or its enterprise id, or when it installed through a single-use
 * install link (src/bot/slack/install-links.ts). Bolt's `authorize` (built here) gives a token only to those:
 * an installation of a workspace since taken off the list gets none, and Bolt runs no listener for it.
 *
 * Refused requests are audited, but once per workspace per hour per process (`REFUSAL_AUDIT_INTERVAL_MS`), with
 * the number of refusals left out since the last row, so a flood from one workspace cannot flood the audit
 * chain. The single-workspace token (SLACK_BOT_TOKEN) is untouched: its workspace needs no listing.
 */
import type { AuthorizeResult } from '@slack/bolt';
import type { Clock } from '../../clock.ts';
import type { Config } from '../../config.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import type { Db } from '../../db/database.ts';
import { auditRefusal } from '../../domain/audit.ts';
import type { Logger } from '../../logger.ts';
import { findInstallation } from './installations.ts';

export const WORKSPACE_NOT_ALLOWED = 'slack_workspace_not_allowed';
/** At most one audit row per refused workspace in this interval (per process). */
export const REFUSAL_AUDIT_INTERVAL_MS = 3_600_000;
/** Workspaces remembered for the interval; beyond this, the oldest is forgotten (and may be audited again). */
const REMEMBERED = 10_000;

export interface WorkspaceIds {
  enterpriseId?: string | undefined;
  teamId?: string | undefined;
}

/** A workspace (or enterprise) that is neither listed nor installed through a link: it gets no token. */
export class SlackWorkspaceNotAllowed extends Error {
  readonly code = WORKSPACE_NOT_ALLOWED;
  readonly workspace: WorkspaceIds;
  constructor(workspace: WorkspaceIds) {
    super(`Slack workspace ${describeWorkspace(workspace)} is not allowed (not in SLACK_ALLOWED_WORKSPACES, not installed through an install link)`);
    this.name = 'SlackWorkspaceNotAllowed';
    this.workspace = workspace;
  }
}

/** `T123` or `T123 (enterprise E456)`, for messages. */
export function describeWorkspace(who: WorkspaceIds): string {
  const team = who.teamId || undefined;
  const enterprise = who.enterpriseId || undefined;
  if (team && enterprise) return `${team} (enterprise ${enterprise})`;
  return team ?? (enterprise ? `enterprise ${enterprise}` : 'unknown');
}

/** The workspace, or its enterprise, is in SLACK_ALLOWED_WORKSPACES. */
export function isListed(allowed: readonly string[] | undefined, who: WorkspaceIds): boolean {
  if (!allowed) return false;
  return (!!who.teamId && allowed.includes(who.teamId)) || (!!who.enterpriseId && allowed.includes(who.enterpriseId));
}

/** An install the list permits: a workspace install by its team or enterprise id, an org-wide one by its enterprise id only. */
export function isInstallListed(allowed: readonly string[] | undefined, who: WorkspaceIds & { isEnterpriseInstall: boolean }): boolean {
  return who.isEnterpriseInstall ? isListed(allowed, { enterpriseId: who.enterpriseId }) : isListed(allowed, who);
}

export interface SlackAuthorizeDeps {
  config: Pick<Config, 'SLACK_BOT_TOKEN' | 'SLACK_ALLOWED_WORKSPACES' | 'SLACK_CLIENT_ID' | 'SLACK_CLIENT_SECRET'>;
  db: Db;
  keyring: Keyring | undefined;
  clock: Clock;
  logger: Logger;
}

/**
 * Bolt's `authorize`: the installation serving the workspace (its own, or its enterprise's org-wide one) if the
 * workspace is allowed; else the single-workspace token (when SLACK_ALLOWED_WORKSPACES is set, for listed
 * workspaces only); else nothing. Never calls Slack. Installations are
 * looked up only when multi-workspace installs are configured (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET).
 *
 * @example
 * new App({ receiver, authorize: createSlackAuthorize({ config, db, keyring, clock, logger }) });
 */
export function createSlackAuthorize(deps: SlackAuthorizeDeps): (source: WorkspaceIds & { userId?: string | undefined }) => Promise<AuthorizeResult> {
  const refusals = refusalAuditor(deps);
  return async (source) => {
    const ids = { ...(source.teamId ? { teamId: source.teamId } : {}), ...(source.enterpriseId ? { enterpriseId: source.enterpriseId } : {}) };
    // Installations exist only where workspaces can install (the OAuth settings): a single-workspace deployment
    // does not look one up on every request (bench/slack-ack: that lookup was ~40% of a command's CPU).
    const installs = deps.keyring && deps.config.SLACK_CLIENT_ID && deps.config.SLACK_CLIENT_SECRET ? deps.keyring : undefined;
    const installation = installs ? await findInstallation(deps.db, installs, { enterpriseId: source.enterpriseId, teamId: source.teamId }) : undefined;
    const refuse = async (): Promise<never> => {
      const refusal = new SlackWorkspaceNotAllowed(ids);
      await refusals.record(ids, source.userId, refusal.message);
      throw refusal;
    };
    if (installation) {
      if (installation.installLinkId === null && !isListed(deps.config.SLACK_ALLOWED_WORKSPACES, source)) return refuse();
      return { botToken: installation.botToken, ...(installation.botUserId ? { botUserId: installation.botUserId } : {}), ...ids };
    }
    // With a list, the single-workspace token serves listed workspaces only: another workspace's request would
    // otherwise run our listeners under it (commands are answered from the database, not with the token).
    if (deps.config.SLACK_ALLOWED_WORKSPACES && !isListed(deps.config.SLACK_ALLOWED_WORKSPACES, source)) return refuse();
    if (deps.config.SLACK_BOT_TOKEN) return { botToken: deps.config.SLACK_BOT_TOKEN, ...ids };
    throw new Error(`no Slack installation for ${source.enterpriseId ?? source.teamId ?? 'this workspace'}`);
  };
}

/** Audits a refused workspace at most once per interval, counting the refusals in between. */
function refusalAuditor(deps: Pick<SlackAuthorizeDeps, 'db' | 'clock' | 'logger'>) {
  const seen = new Map<string, { auditedAt: number; skipped: number }>();
  return {
    async record(who: WorkspaceIds, userId: string | undefined, message: string): Promise<void> {
      const key = `${who.enterpriseId ?? ''}:${who.teamId ?? ''}`;
      const now = deps.clock.now();
      const last = seen.get(key);
      if (last && now.getTime() - last.auditedAt < REFUSAL_AUDIT_INTERVAL_MS) {
        last.skipped += 1;
        deps.logger.debug({ ...who }, 'slack request from a workspace that is not allowed');
        return;
      }
      seen.delete(key);
      if (seen.size >= REMEMBERED) seen.delete(seen.keys().next().value!);
      seen.set(key, { auditedAt: now.getTime(), skipped: 0 });
      deps.logger.warn({ ...who, refusedSinceLastAudit: last?.skipped ?? 0 }, 'slack request refused: the workspace is not allowed');
      const identity = userId ? { identity: { surface: 'slack' as const, tenant: who.enterpriseId ?? who.teamId ?? '', externalId: userId } } : {};
      await auditRefusal(deps.db, {
        actor: { surface: 'slack', user: undefined, ...identity },
        action: 'slack.request',
        objectType: 'slack_workspace',
        objectId: who.teamId ?? who.enterpriseId ?? 'unknown',
        at: now,
        code: WORKSPACE_NOT_ALLOWED,
        message,
        detail: { ...who, refusedSinceLastAudit: last?.skipped ?? 0, auditedAtMostEveryMs: REFUSAL_AUDIT_INTERVAL_MS },
      }).catch((failure: unknown) => deps.logger.error({ err: failure, ...who }, 'could not audit a refused slack request'));
    },
  };
}
