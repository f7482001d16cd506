/**
 * Jira's OAuth 2.0 (3LO) with offline access: the admin's consent, and access tokens from a ROTATING refresh
 * token (Atlassian's docs, oauth-2-3lo-apps: every refresh answers a new refresh token and disables the one
 * used, after a reuse leeway of 10 minutes; a refused one answers 403 `invalid_grant`).
 *
 * - Consent (`consent` of the connector, driven by src/connectors/sdk/consent.ts): the authorize URL, then the
 *   code exchanged at `<auth>/oauth/token`, the cloud id found among `<api>/oauth/token/accessible-resources`
 *   by the site's URL, and the refresh token stored encrypted (`integration_authorizations`) with the first
 *   access token (`integration_tokens`), in one transaction.
 * - Refresh (`createJiraTokenSource`): inside the framework's single-flight refresh (a transaction holding the
 *   instance's advisory lock, src/connectors/sdk/oauth.ts), the refresh token is read from the database (another
 *   process may have rotated it), spent, and its successor stored in the same commit as the new access token,
 *   before anyone uses that access token. If that commit is lost, the spent token still works during the
 *   leeway, so the next attempt recovers.
 * - A refusal (`invalid_grant`: expired after 90 days idle, revoked, the user's password changed) marks the
 *   instance as needing consent again, and raises one alert with a fresh single-use consent link (RB-003). Until
 *   an admin consents again, no refresh is attempted.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Db } from '../../db/database.ts';
import type { Database } from '../../db/schema.ts';
import { newEvent } from '../../domain/events.ts';
import { createAuthorizeLink } from '../sdk/consent.ts';
import type { ConnectorConsent, ConnectorInstance, ConnectorRuntime } from '../sdk/contract.ts';
import type { Keyring } from '../sdk/crypto.ts';
import { type AuthProvider, AuthUnavailable, type HttpClient, type UpstreamFailure, createHttpClient } from '../sdk/http-client.ts';
import { credentialAad } from '../sdk/instances.ts';
import { createTokenSource } from '../sdk/oauth.ts';
import type { JiraSettings } from './client.ts';

const tokenAnswer = z.object({ access_token: z.string().min(1), expires_in: z.coerce.number().int().positive(), refresh_token: z.string().min(1).optional(), scope: z.string().optional() });
const resources = z.array(z.object({ id: z.string().min(1), url: z.string(), name: z.string().optional(), scopes: z.array(z.string()).optional() }));

const REFRESH_AAD_FIELD = 'refresh_token';
const REAUTH_LINK_TTL_MS = 24 * 3_600_000;

/** The cloud id the instance's consent opened, if it has one that still works. */
export async function cloudIdOf(db: Db, instanceId: string): Promise<string | undefined> {
  const row = await db.selectFrom('integration_authorizations').select('resource_id').where('config_id', '=', instanceId).executeTakeFirst();
  return row?.resource_id;
}

/** `https://acme.atlassian.net/` and `https://acme.atlassian.net` are one site. */
const sameSite = (a: string, b: string) => a.replace(/\/+$/, '').toLowerCase() === b.replace(/\/+$/, '').toLowerCase();

/** Why the token endpoint said no, in our codes. */
function refusal(failure: UpstreamFailure): 'reauthorization_required' | 'oauth_client_refused' | 'token_endpoint_unavailable' {
  if (failure.kind !== 'http' || failure.status < 400 || failure.status >= 500 || failure.status === 404 || failure.status === 408) return 'token_endpoint_unavailable';
  const error = (failure.body as { error?: unknown } | undefined)?.error;
  return error === 'invalid_grant' ? 'reauthorization_required' : 'oauth_client_refused';
}

export function createJiraTokenSource(input: { instance: ConnectorInstance<JiraSettings>; runtime: ConnectorRuntime & { keyring: Keyring }; tokenHttp: HttpClient }): AuthProvider {
  const { instance, runtime, tokenHttp } = input;
  const oauth = instance.settings.oauth!;
  const aad = credentialAad(instance.id, REFRESH_AAD_FIELD);
  return createTokenSource({
    db: runtime.db,
    keyring: runtime.keyring,
    instanceId: instance.id,
    clock: runtime.clock,
    logger: runtime.logger,
    grant: async ({ trx }) => {
      const row = await trx.selectFrom('integration_authorizations').select(['refresh_token', 'needs_reauth_since']).where('config_id', '=', instance.id).executeTakeFirst();
      if (!row) throw new AuthUnavailable('authorization_required', 'Jira is not authorized yet: an admin runs projectx connectors authorize jira');
      if (row.needs_reauth_since) throw new AuthUnavailable('reauthorization_required', 'Jira refused the refresh token: an admin must authorize again (projectx connectors authorize jira)');
      const clientSecret = instance.credential('client_secret');
      if (!clientSecret) throw new AuthUnavailable('oauth_client_refused', 'the Jira OAuth client has no secret configured');
      const refreshToken = runtime.keyring.decrypt(row.refresh_token as never, aad);
      const answer = await tokenHttp.send<unknown>({
        method: 'POST',
        path: '/oauth/token',
        json: { grant_type: 'refresh_token', client_id: oauth.clientId, client_secret: clientSecret, refresh_token: refreshToken },
        anonymous: true,
        // Not repeated after a lost answer: it may have rotated the token. The spent one works for 10 minutes
        // more, so the next refresh recovers.
        idempotent: false,
      });
      if (!answer.ok) {
        const code = refusal(answer.failure);
        if (code === 'reauthorization_required') await needsReauthorization(runtime, instance, 'the refresh token was refused (invalid_grant)');
        throw new AuthUnavailable(code, code === 'reauthorization_required' ? 'Jira refused the refresh token: an admin must authorize again' : 'Jira did not issue an access token', answer.failure);
      }
      const token = tokenAnswer.safeParse(answer.value.body);
      if (!token.success) throw new AuthUnavailable('invalid_token_response', 'Atlassian answered the refresh without a usable token');
      const now = runtime.clock.now();
      if (token.data.refresh_token) {
        // The successor, stored in this transaction with the access token: committed before the token is used.
        await trx
          .updateTable('integration_authorizations')
          .set({ refresh_token: JSON.stringify(runtime.keyring.encrypt(token.data.refresh_token, aad)), refreshed_at: now })
          .where('config_id', '=', instance.id)
          .execute();
      }
      return { accessToken: token.data.access_token, expiresInSeconds: token.data.expires_in };
    },
  });
}

/**
 * Marks the instance as needing consent (once) and raises the alert with a fresh consent link. Its own
 * transaction: the refresh's is rolled back by the refusal.
 */
async function needsReauthorization(runtime: ConnectorRuntime, instance: ConnectorInstance<JiraSettings>, reason: string): Promise<void> {
  const now = runtime.clock.now();
  await runtime.db.transaction().execute(async (trx) => {
    const marked = await trx.updateTable('integration_authorizations').set({ needs_reauth_since: now, reauth_reason: reason }).where('config_id', '=', instance.id).where('needs_reauth_since', 'is', null).returning('config_id').executeTakeFirst();
    if (!marked) return;
    const publicUrl = instance.settings.oauth?.publicUrl;
    const link = publicUrl ? await createAuthorizeLink(trx, { connector: 'jira', instanceId: instance.id, publicUrl, createdBy: 'system', ttlMs: REAUTH_LINK_TTL_MS, now }) : undefined;
    runtime.logger.warn({ connector: 'jira', instance: instance.name }, 'Jira refused the refresh token: the instance needs an admin to authorize it again');
    await runtime.events.emit(
      trx,
      newEvent(
        {
          type: 'integration.auth_failing',
          subject: { kind: 'integration', id: instance.id, label: `jira:${instance.name}` },
          summary: `Jira (${instance.name}) refused our refresh token (${reason}): syncs and writes are stopped until an admin authorizes ProjectX again. ${link ? `Open ${link.url} (single use, until ${link.expiresAt.toISOString()})` : 'Run projectx connectors authorize jira'} with a Jira account that can see the synced projects. Runbook RB-003.`,
          priority: 1,
          data: { connector: 'jira', instance: instance.id, errorCode: 'reauthorization_required', failure: 'refused', runbookId: 'RB-003', ...(link ? { authorizeUrl: link.url } : {}) },
        },
        now,
      ),
    );
  });
}

/** The consent: Atlassian's authorize URL, and what its code gives. */
export const jiraConsent: ConnectorConsent<JiraSettings> = {
  available(instance) {
    if (instance.settings.authMode !== 'oauth' || !instance.settings.oauth) return 'this Jira instance does not use OAuth (JIRA_AUTH_MODE=pat)';
    if (!instance.settings.oauth.publicUrl) return 'PUBLIC_URL is not set: Atlassian needs a callback URL (<PUBLIC_URL>/oauth/callback/jira)';
    return undefined;
  },
  authorizeUrl({ instance, state, redirectUri }) {
    const oauth = instance.settings.oauth!;
    const url = new URL('/authorize', oauth.authUrl);
    url.searchParams.set('audience', 'api.atlassian.com');
    url.searchParams.set('client_id', oauth.clientId);
    url.searchParams.set('scope', oauth.scopes.join(' '));
    url.searchParams.set('redirect_uri', redirectUri);
    url.searchParams.set('state', state);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('prompt', 'consent');
    return url.toString();
  },
  async complete({ instance, code, redirectUri, runtime, actor }) {
    const oauth = instance.settings.oauth!;
    const clientSecret = instance.credential('client_secret');
    if (!clientSecret) return { ok: false, code: 'oauth_client_missing', message: 'the Jira OAuth client secret is not configured' };
    const base = { connector: 'jira', metrics: runtime.metrics, timeoutMs: instance.settings.timeoutMs, now: () => runtime.clock.now().getTime() };
    const auth = createHttpClient({ ...base, baseUrl: oauth.authUrl });
    const api = createHttpClient({ ...base, baseUrl: oauth.apiUrl });
    try {
      const exchanged = await auth.send<unknown>({ method: 'POST', path: '/oauth/token', json: { grant_type: 'authorization_code', client_id: oauth.clientId, client_secret: clientSecret, code, redirect_uri: redirectUri }, anonymous: true, idempotent: false });
      if (!exchanged.ok) return { ok: false, code: 'code_exchange_failed', message: `Atlassian did not exchange the code (${exchanged.failure.code})` };
      const token = tokenAnswer.safeParse(exchanged.value.body);
      if (!token.success) return { ok: false, code: 'invalid_token_response', message: 'Atlassian answered the code exchange without a usable token' };
      if (!token.data.refresh_token) return { ok: false, code: 'no_refresh_token', message: 'Atlassian gave no refresh token: the consent must include offline_access' };
      const listed = await api.send<unknown>({ method: 'GET', path: '/oauth/token/accessible-resources', headers: { authorization: `Bearer ${token.data.access_token}` }, anonymous: true });
      if (!listed.ok) return { ok: false, code: 'resources_unavailable', message: `Atlassian did not list the sites this consent opens (${listed.failure.code})` };
      const sites = resources.safeParse(listed.value.body);
      const site = sites.success ? sites.data.find((resource) => sameSite(resource.url, instance.settings.baseUrl)) : undefined;
      if (!site) return { ok: false, code: 'site_not_granted', message: `the consent does not open ${instance.settings.baseUrl}: choose that site on Atlassian's consent page` };
      const now = runtime.clock.now();
      const refresh = JSON.stringify(runtime.keyring.encrypt(token.data.refresh_token, credentialAad(instance.id, REFRESH_AAD_FIELD)));
      const access = JSON.stringify(runtime.keyring.encrypt(token.data.access_token, credentialAad(instance.id, 'access_token')));
      const expiresAt = new Date(now.getTime() + token.data.expires_in * 1000);
      await runtime.db.transaction().execute(async (trx: Kysely<Database>) => {
        const values = { refresh_token: refresh, resource_id: site.id, resource_url: site.url, scopes: token.data.scope ?? oauth.scopes.join(' '), authorized_by: actor, authorized_at: now, refreshed_at: null, needs_reauth_since: null, reauth_reason: null };
        await trx.insertInto('integration_authorizations').values({ config_id: instance.id, ...values }).onConflict((oc) => oc.column('config_id').doUpdateSet(values)).execute();
        await trx.insertInto('integration_tokens').values({ config_id: instance.id, token: access, expires_at: expiresAt, updated_at: now }).onConflict((oc) => oc.column('config_id').doUpdateSet({ token: access, expires_at: expiresAt, updated_at: now })).execute();
        await trx.insertInto('integration_credentials_audit').values({ config_id: instance.id, action: 'oauth.authorized', actor, key_id: runtime.keyring.currentKeyId, detail: JSON.stringify({ site: site.url, scopes: token.data.scope ?? null }) }).execute();
      });
      return { ok: true, detail: { site: site.url, cloudId: site.id } };
    } finally {
      await Promise.all([auth.close(), api.close()]);
    }
  },
};
