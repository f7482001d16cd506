/**
 * Multi-workspace install: `GET /slack/install` sends the admin to Slack's authorize page with a `state` that
 * is signed, expires in 10 minutes, and is bound to this browser by a cookie (CSRF); `GET
 * /oauth/callback/slack` checks all three, exchanges the code (`oauth.v2.access`) and stores the installation
 * with its tokens encrypted. Token rotation (refresh tokens) is handled by a job.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { WebClient } from '@slack/web-api';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import type { Clock } from '../../clock.ts';
import type { Config } from '../../config.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import type { Db } from '../../db/database.ts';
import { appendAudit } from '../../domain/audit.ts';
import { errorBody } from '../../http/errors.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import type { Logger } from '../../logger.ts';
import { slackDirectorySync } from './directory-sync.ts';
import { SLACK_BOT_SCOPES } from './manifest.ts';
import { saveInstallation } from './installations.ts';

const STATE_COOKIE = 'projectx_slack_oauth';
const STATE_TTL_MS = 10 * 60_000;
export const SLACK_AUTHORIZE_URL = 'https://slack.com/oauth/v2/authorize';

function sign(secret: string, payload: string): string {
  return createHmac('sha256', secret).update(payload).digest('base64url');
}

export function issueState(secret: string, now: Date): { state: string; nonce: string } {
  const nonce = randomBytes(16).toString('base64url');
  const payload = `${nonce}.${now.getTime() + STATE_TTL_MS}`;
  return { state: `${payload}.${sign(secret, payload)}`, nonce };
}

export function checkState(secret: string, state: string, cookieNonce: string | undefined, now: Date): 'ok' | 'invalid' | 'expired' | 'wrong_browser' {
  const [nonce, expires, signature] = state.split('.');
  if (!nonce || !expires || !signature) return 'invalid';
  const expected = Buffer.from(sign(secret, `${nonce}.${expires}`));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
  if (Number(expires) < now.getTime()) return 'expired';
  if (!cookieNonce || cookieNonce !== nonce) return 'wrong_browser';
  return 'ok';
}

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
  const unavailable = () => {
    if (!config.SLACK_CLIENT_ID || !config.SLACK_CLIENT_SECRET) return 'Slack installs need SLACK_CLIENT_ID and SLACK_CLIENT_SECRET';
    if (!deps.keyring) return 'Slack installs store tokens encrypted: set PROJECTX_ENCRYPTION_KEY';
    return undefined;
  };

  app.get('/slack/install', (c) => {
    const problem = unavailable();
    if (problem) return c.json(errorBody('slack_install_unavailable', problem), 503);
    const { state, nonce } = issueState(config.SLACK_CLIENT_SECRET!, deps.clock.now());
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
    const now = deps.clock.now();
    const who = { enterpriseId: grant.enterprise?.id, teamId: grant.team?.id, isEnterpriseInstall: grant.is_enterprise_install === true };
    await deps.db.transaction().execute(async (trx) => {
      await saveInstallation(
        trx,
        deps.keyring!,
        {
          ...who,
          appId: grant.app_id,
          botUserId: grant.bot_user_id,
          scopes: (grant.scope ?? '').split(',').filter(Boolean),
          botToken: grant.access_token!,
          refreshToken: grant.refresh_token,
          expiresInSeconds: grant.expires_in,
          installedBy: grant.authed_user?.id,
        },
        now,
      );
      await trx.insertInto('integration_credentials_audit').values({ action: 'slack.installed', actor: `slack:${grant.authed_user?.id ?? 'unknown'}`, key_id: deps.keyring!.currentKeyId, detail: JSON.stringify(who), created_at: now }).execute();
      await appendAudit(trx, { actor: { surface: 'slack', user: undefined }, action: 'slack.install', objectType: 'slack_installation', objectId: who.enterpriseId ?? who.teamId, outcome: 'success', at: now, detail: who });
    });
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
