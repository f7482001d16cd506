/**
 * Multi-workspace install: `GET /slack/install` sends the admin to Slack's authorize page with a `state` that
 * is signed, expires in 10 minutes, and is bound to this browser by a cookie (CSRF); `GET
 * /oauth/callback/slack` checks all three, exchanges the code (`oauth.v2.access`) and stores the installation
 * with its tokens encrypted. Token rotation (refresh tokens) is handled by a job.
 *
 * Only allowed workspaces install (allowlist.ts): `/slack/install` needs a valid single-use install link
 * (`?link=`, its id then signed into the state and consumed when the installation is stored) or
 * SLACK_ALLOWED_WORKSPACES, which the callback checks against the workspace Slack names. A workspace refused
 * there is audited, uninstalled again (`apps.uninstall`, best effort) and nothing of it is stored.
 */
import { WebClient } from '@slack/web-api';
import { type Context, Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Clock } from '../../clock.ts';
import type { Config } from '../../config.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import type { Db } from '../../db/database.ts';
import { appendAudit, auditRefusal } from '../../domain/audit.ts';
import { errorBody } from '../../http/errors.ts';
import { OAUTH_STATE_TTL_MS as STATE_TTL_MS, checkState, issueState, stateLink } from '../../http/oauth-state.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import type { Logger } from '../../logger.ts';
import { WORKSPACE_NOT_ALLOWED, describeWorkspace, isInstallListed } from './allowlist.ts';
import { slackDirectorySync } from './directory-sync.ts';
import { consumeInstallLink, findUsableInstallLink, linkOfActiveInstallation } from './install-links.ts';
import { SLACK_BOT_SCOPES } from './manifest.ts';
import { saveInstallation } from './installations.ts';

const STATE_COOKIE = 'projectx_slack_oauth';
export const SLACK_AUTHORIZE_URL = 'https://slack.com/oauth/v2/authorize';

export interface SlackOAuthDeps {
  config: Config;
  db: Db;
  keyring: Keyring | undefined;
  clock: Clock;
  logger: Logger;
  /** To link the new workspace's people right after the install (directory-sync.ts); without it, the daily run does. */
  jobs?: Pick<JobRuntime, 'enqueue'> | undefined;
}

export function createSlackOAuthApp(deps: SlackOAuthDeps): Hono {
  const { config } = deps;
  const app = new Hono();
  const redirectUri = config.PUBLIC_URL ? new URL('/oauth/callback/slack', config.PUBLIC_URL).href : undefined;
  const allowed = config.SLACK_ALLOWED_WORKSPACES;
  const unavailable = () => {
    if (!config.SLACK_CLIENT_ID || !config.SLACK_CLIENT_SECRET) return 'Slack installs need SLACK_CLIENT_ID and SLACK_CLIENT_SECRET';
    if (!deps.keyring) return 'Slack installs store tokens encrypted: set PROJECTX_ENCRYPTION_KEY';
    return undefined;
  };
  const noProof = 'Installing ProjectX in a Slack workspace needs an install link from a ProjectX admin (projectx slack install-link), or the workspace listed in SLACK_ALLOWED_WORKSPACES.';

  app.get('/slack/install', async (c) => {
    const problem = unavailable();
    if (problem) return c.json(errorBody('slack_install_unavailable', problem), 503);
    const now = deps.clock.now();
    const token = c.req.query('link');
    let linkId: string | undefined;
    if (token !== undefined) {
      const link = await findUsableInstallLink(deps.db, token, now);
      if (!link) return refuse(c, 403, 'slack_install_link_invalid', 'This install link cannot be used: it was used already, it expired, or it was never issued. Ask a ProjectX admin for a new one (projectx slack install-link).');
      linkId = link.id;
    } else if (!allowed) {
      return refuse(c, 403, 'slack_install_not_allowed', noProof);
    }
    const { state, nonce } = issueState(config.SLACK_CLIENT_SECRET!, now, linkId);
    setCookie(c, STATE_COOKIE, nonce, { httpOnly: true, sameSite: 'Lax', secure: config.PUBLIC_URL?.startsWith('https:') ?? false, maxAge: STATE_TTL_MS / 1000, path: '/oauth/callback/slack' });
    const url = new URL(SLACK_AUTHORIZE_URL);
    url.searchParams.set('client_id', config.SLACK_CLIENT_ID!);
    url.searchParams.set('scope', SLACK_BOT_SCOPES.join(','));
    url.searchParams.set('state', state);
    if (redirectUri) url.searchParams.set('redirect_uri', redirectUri);
    return c.redirect(url.href, 302);
  });

  app.get('/oauth/callback/slack', async (c) => {
    const problem = unavailable();
    if (problem) return c.json(errorBody('slack_install_unavailable', problem), 503);
    const error = c.req.query('error');
    if (error) return c.json(errorBody('slack_install_cancelled', `Slack did not grant the install (${error.slice(0, 60)})`), 400);
    const code = c.req.query('code');
    const state = c.req.query('state');
    if (!code || !state) return c.json(errorBody('bad_request', 'the callback needs code and state'), 400);
    const checked = checkState(config.SLACK_CLIENT_SECRET!, state, getCookie(c, STATE_COOKIE), deps.clock.now());
    if (checked !== 'ok') return c.json(errorBody(`state_${checked}`, 'this install link is not valid here; start again from /slack/install'), 400);
    const linkId = stateLink(state);

    const client = new WebClient(undefined, { ...(config.SLACK_API_URL ? { slackApiUrl: config.SLACK_API_URL } : {}), retryConfig: { retries: 1 } });
    let grant;
    try {
      grant = await client.oauth.v2.access({ client_id: config.SLACK_CLIENT_ID!, client_secret: config.SLACK_CLIENT_SECRET!, code, ...(redirectUri ? { redirect_uri: redirectUri } : {}) });
    } catch (failure) {
      const reason = (failure as { data?: { error?: string } }).data?.error ?? 'unreachable';
      deps.logger.warn({ reason }, 'slack oauth.v2.access failed');
      return c.json(errorBody('slack_install_failed', `Slack refused the install code (${reason})`), 400);
    }
    if (!grant.access_token) return c.json(errorBody('slack_install_failed', 'Slack returned no bot token'), 502);
    const botToken = grant.access_token;
    const now = deps.clock.now();
    const who = { enterpriseId: grant.enterprise?.id, teamId: grant.team?.id, isEnterpriseInstall: grant.is_enterprise_install === true };
    const installedBy = grant.authed_user?.id;

    /** Nothing is stored; the app Slack just installed there is uninstalled again, so no token stays valid. */
    const refuseInstall = async (code: string, message: string, detail: Record<string, unknown>) => {
      await auditRefusal(deps.db, { actor: { surface: 'slack', user: undefined }, action: 'slack.install', objectType: 'slack_installation', objectId: who.enterpriseId && who.isEnterpriseInstall ? who.enterpriseId : who.teamId, at: now, code, message, detail: { ...who, installedBy, ...detail } });
      deps.logger.warn({ ...who, code }, 'slack install refused');
      await client.apps.uninstall({ client_id: config.SLACK_CLIENT_ID!, client_secret: config.SLACK_CLIENT_SECRET!, token: botToken }).catch((failure: unknown) => deps.logger.warn({ err: failure, ...who }, 'could not uninstall the app from a refused workspace'));
      return refuse(c, 403, code, message);
    };
    const workspace = who.isEnterpriseInstall ? `organization ${who.enterpriseId ?? 'unknown'}` : `workspace ${describeWorkspace(who)}`;
    // Allowed without a link: listed, or already installed (and not revoked) through an earlier link.
    const earlierLink = await linkOfActiveInstallation(deps.db, who);
    const allowedAnyway = isInstallListed(allowed, who) || earlierLink !== undefined;
    if (!linkId && !allowedAnyway) {
      return refuseInstall(WORKSPACE_NOT_ALLOWED, `ProjectX may not be installed in Slack ${workspace}: it is not in SLACK_ALLOWED_WORKSPACES. Ask a ProjectX admin for an install link (projectx slack install-link). Nothing was stored, and the app was removed from the workspace again.`, { via: 'allowlist' });
    }

    const installed = await deps.db.transaction().execute(async (trx) => {
      // First, so that of two callbacks with one link only one stores an installation.
      const usedLink = linkId !== undefined && (await consumeInstallLink(trx, linkId, who, now));
      if (linkId && !usedLink && !allowedAnyway) return false;
      const installLinkId = usedLink ? linkId : (earlierLink ?? null);
      await saveInstallation(
        trx,
        deps.keyring!,
        {
          ...who,
          appId: grant.app_id,
          botUserId: grant.bot_user_id,
          scopes: (grant.scope ?? '').split(',').filter(Boolean),
          botToken,
          refreshToken: grant.refresh_token,
          expiresInSeconds: grant.expires_in,
          installedBy,
          installLinkId,
        },
        now,
      );
      const via = installLinkId ? { via: 'install_link', installLink: installLinkId } : { via: 'allowlist' };
      await trx.insertInto('integration_credentials_audit').values({ action: 'slack.installed', actor: `slack:${installedBy ?? 'unknown'}`, key_id: deps.keyring!.currentKeyId, detail: JSON.stringify({ ...who, ...via }), created_at: now }).execute();
      await appendAudit(trx, { actor: { surface: 'slack', user: undefined }, action: 'slack.install', objectType: 'slack_installation', objectId: who.enterpriseId ?? who.teamId, outcome: 'success', at: now, detail: { ...who, ...via } });
      if (usedLink) await appendAudit(trx, { actor: { surface: 'slack', user: undefined }, action: 'slack.install_link.use', objectType: 'slack_install_link', objectId: linkId, outcome: 'success', at: now, detail: { ...who, installedBy } });
      return true;
    });
    if (!installed) {
      return refuseInstall('slack_install_link_invalid', `This install link cannot be used any more (it was used by another install, or it expired during this one), so ProjectX was not installed in Slack ${workspace}. Ask a ProjectX admin for a new link (projectx slack install-link).`, { via: 'install_link', installLink: linkId });
    }
    deps.logger.info(who, 'slack app installed');
    // After the commit: a failed enqueue must not undo the install (the daily run links the workspace then).
    // Org-wide installs are left to later (users.list with an org token needs a workspace: auth.teams.list).
    const tenant = who.enterpriseId ?? who.teamId;
    if (deps.jobs && tenant && !who.isEnterpriseInstall) {
      await deps.jobs.enqueue(slackDirectorySync, { tenant }, { singletonKey: tenant }).catch((failure: unknown) => deps.logger.warn({ err: failure, tenant }, 'could not queue the directory sync of the new workspace; the daily run will do it'));
    }
    return c.html('<!doctype html><title>ProjectX installed</title><p>ProjectX is installed in Slack. You can close this tab and type <code>/projectx help</code> in Slack.</p>');
  });

  return app;
}

/** A refusal as a page for a browser (it asks for HTML), as the error envelope for anything else. */
function refuse(c: Context, status: ContentfulStatusCode, code: string, message: string): Response {
  if (!(c.req.header('accept') ?? '').includes('text/html')) return c.json(errorBody(code, message), status);
  return c.html(`<!doctype html><title>ProjectX cannot be installed</title><h1>ProjectX cannot be installed</h1><p>${escapeHtml(message)}</p><p><small>${escapeHtml(code)}</small></p>`, status);
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
