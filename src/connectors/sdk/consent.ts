/**
 * An admin's OAuth consent for a connector instance (authorization code with offline access; Jira's 3LO):
 *
 * 1. `projectx connectors authorize <connector> [--instance <name>]` prints a single-use link that expires
 *    (`<PUBLIC_URL>/oauth/start/<connector>?link=<token>`; only the token's SHA-256 is kept, in
 *    `integration_authorize_links`). The same link goes into the alert when the system refuses our refresh token.
 * 2. `GET /oauth/start/<connector>?link=…` checks the link, sets a cookie with a nonce and sends the browser to
 *    the system's consent page with a `state` signed with the instance's OAuth client secret, expiring in
 *    10 minutes, bound to that cookie and carrying the link's id (src/http/oauth-state.ts, as Slack's install).
 * 3. `GET /oauth/callback/<connector>?code&state` checks the state, the cookie and the link, consumes the link
 *    (one conditional UPDATE: two callbacks cannot both use it), and has the connector exchange the code and
 *    store what it gives, encrypted (`consent.complete`). Audited either way.
 *
 * Every refusal answers our error envelope with a specific code; nothing here logs a code, a token or a state.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import type { Kysely } from 'kysely';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import type { Database } from '../../db/schema.ts';
import { appendAudit } from '../../domain/audit.ts';
import { errorBody } from '../../http/errors.ts';
import { OAUTH_STATE_TTL_MS, checkState, issueState, stateLink } from '../../http/oauth-state.ts';
import type { Logger } from '../../logger.ts';
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime } from './contract.ts';
import type { Keyring } from './crypto.ts';
import { InstanceError, loadInstance } from './instances.ts';

/** How long a consent link lives by default, and at most. */
export const AUTHORIZE_LINK_DEFAULT_TTL_MS = 3_600_000;
export const AUTHORIZE_LINK_MAX_TTL_MS = 24 * 3_600_000;
export const CONSENT_START_PATH = '/oauth/start/:connector';
export const CONSENT_CALLBACK_PATH = '/oauth/callback/:connector';

const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
const cookieName = (connector: string) => `projectx_oauth_${connector}`;

/** `<publicUrl>/oauth/callback/<connector>` (a path prefix in PUBLIC_URL is kept). */
export const consentRedirectUri = (publicUrl: string, connector: string) => `${publicUrl.replace(/\/+$/, '')}/oauth/callback/${connector}`;

/** A new single-use link to the consent of one instance; its token is returned once and never stored. */
export async function createAuthorizeLink(db: Kysely<Database>, input: { connector: string; instanceId: string; publicUrl: string; createdBy: string; ttlMs: number; now: Date }): Promise<{ id: string; url: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(input.now.getTime() + Math.min(input.ttlMs, AUTHORIZE_LINK_MAX_TTL_MS));
  const row = await db
    .insertInto('integration_authorize_links')
    .values({ config_id: input.instanceId, token_hash: hashToken(token), created_by: input.createdBy, created_at: input.now, expires_at: expiresAt })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, url: `${input.publicUrl.replace(/\/+$/, '')}/oauth/start/${input.connector}?link=${token}`, expiresAt };
}

export interface ConsentDeps {
  db: Db;
  keyring: Keyring | undefined;
  clock: Clock;
  logger: Logger;
  runtime: ConnectorRuntime;
  connectors: readonly ConnectorDefinition[];
  publicUrl: string | undefined;
}

export function createConsentRoutes(deps: ConsentDeps): Hono {
  const app = new Hono();
  const connectorOf = (id: string) => deps.connectors.find((candidate) => candidate.id === id && candidate.consent);

  /** The link's instance, as this connector's: a link made for another connector's instance, or one whose settings or key no longer load, is refused. */
  const instanceOf = async (connector: ConnectorDefinition, id: string): Promise<{ ok: true; value: ConnectorInstance } | { ok: false; code: string; message: string }> => {
    try {
      return { ok: true, value: await loadInstance(deps.db, deps.keyring, connector, id) };
    } catch (failure) {
      if (failure instanceof InstanceError) return { ok: false, code: failure.code, message: failure.message };
      throw failure;
    }
  };
  // The database or the system away: the admin tries again later (never a 500).
  app.onError((error, c) => {
    deps.logger.error({ err: error }, 'connector consent could not be handled');
    c.header('Retry-After', '30');
    return c.json(errorBody('consent_unavailable', 'the consent cannot be handled right now; open the link again in a minute'), 503);
  });

  app.get(CONSENT_START_PATH, async (c) => {
    const connector = connectorOf(c.req.param('connector'));
    if (!connector || !deps.publicUrl || !deps.keyring) return c.json(errorBody('no_consent_flow', 'no connector takes an OAuth consent at this address (or PUBLIC_URL is not set)'), 404);
    const token = c.req.query('link') ?? '';
    const now = deps.clock.now();
    const link = TOKEN_FORMAT.test(token)
      ? await deps.db.selectFrom('integration_authorize_links').select(['id', 'config_id']).where('token_hash', '=', hashToken(token)).where('used_at', 'is', null).where('expires_at', '>', now).executeTakeFirst()
      : undefined;
    if (!link) return c.json(errorBody('link_invalid', 'this link is unknown, used or expired: ask for a new one (projectx connectors authorize)'), 400);
    const instance = await instanceOf(connector, link.config_id);
    if (!instance.ok) return c.json(errorBody(instance.code, instance.message), 409);
    const unavailable = connector.consent!.available(instance.value);
    const secret = instance.value.credential('client_secret');
    if (unavailable || !secret) return c.json(errorBody('consent_unavailable', unavailable ?? `${connector.title}'s OAuth client secret is not configured`), 409);
    const { state, nonce } = issueState(secret, now, link.id);
    setCookie(c, cookieName(connector.id), nonce, { httpOnly: true, sameSite: 'Lax', secure: deps.publicUrl.startsWith('https:'), maxAge: OAUTH_STATE_TTL_MS / 1000, path: `/oauth/callback/${connector.id}` });
    return c.redirect(connector.consent!.authorizeUrl({ instance: instance.value, state, redirectUri: consentRedirectUri(deps.publicUrl, connector.id) }), 302);
  });

  app.get(CONSENT_CALLBACK_PATH, async (c) => {
    const connector = connectorOf(c.req.param('connector'));
    if (!connector || !deps.publicUrl || !deps.keyring) return c.json(errorBody('no_consent_flow', 'no connector takes an OAuth consent at this address (or PUBLIC_URL is not set)'), 404);
    const now = deps.clock.now();
    const { code, state, error } = c.req.query();
    if (error) return c.json(errorBody('consent_refused', `${connector.title} did not grant access (${String(error).slice(0, 80)})`), 400);
    if (!code || !state) return c.json(errorBody('bad_request', 'the callback needs code and state'), 400);
    const linkId = stateLink(state);
    const link = linkId && /^[0-9a-f-]{36}$/.test(linkId) ? await deps.db.selectFrom('integration_authorize_links').select(['id', 'config_id', 'created_by']).where('id', '=', linkId).executeTakeFirst() : undefined;
    if (!link) return c.json(errorBody('state_invalid', 'this consent did not start here; open the link again'), 400);
    const loaded = await instanceOf(connector, link.config_id);
    if (!loaded.ok) return c.json(errorBody(loaded.code, loaded.message), 409);
    const instance = loaded.value;
    const secret = instance.credential('client_secret');
    const checked = secret ? checkState(secret, state, getCookie(c, cookieName(connector.id)), now) : 'invalid';
    if (checked !== 'ok') return c.json(errorBody(`state_${checked}`, 'this consent cannot be completed here; open the link again in the same browser'), 400);
    const consumed = await deps.db.updateTable('integration_authorize_links').set({ used_at: now }).where('id', '=', link.id).where('used_at', 'is', null).where('expires_at', '>', now).executeTakeFirst();
    if (Number(consumed.numUpdatedRows) !== 1) return c.json(errorBody('link_invalid', 'this link was used or expired meanwhile: ask for a new one (projectx connectors authorize)'), 400);
    const actor = `consent-link:${link.created_by}`;
    const result = await connector.consent!.complete({ instance, code, redirectUri: consentRedirectUri(deps.publicUrl, connector.id), runtime: { ...deps.runtime, keyring: deps.keyring }, actor });
    await appendAudit(deps.db, {
      actor: { surface: 'system', user: undefined, via: actor },
      action: 'integration.authorize',
      objectType: 'integration',
      objectId: `${connector.id}:${instance.name}`,
      outcome: result.ok ? 'success' : 'error',
      at: now,
      detail: result.ok ? result.detail : { code: result.code },
    });
    if (!result.ok) {
      deps.logger.warn({ connector: connector.id, instance: instance.name, code: result.code }, 'connector consent failed');
      return c.json(errorBody(result.code, result.message), 400);
    }
    deps.logger.info({ connector: connector.id, instance: instance.name }, 'connector authorized');
    return c.html(`<!doctype html><meta charset="utf-8"><title>ProjectX</title><p>${connector.title} (${escapeHtml(instance.name)}) is connected to ProjectX. You can close this tab.</p>`);
  });
  return app;
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
