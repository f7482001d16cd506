/**
 * Atlassian's OAuth 2.0 (3LO) for the fake Jira: the auth host (stands for https://auth.atlassian.com) and the
 * checks the API gateway makes, plus how every Authorization header is classified for the request log.
 *
 * From the notes (A5, Atlassian's `oauth-2-3lo-apps/` docs):
 * - `GET /authorize?audience=api.atlassian.com&client_id&scope&redirect_uri&state&response_type=code&prompt=consent`
 *   stands for the consent page: bad parameters answer a 400 HTML page; otherwise 302 to
 *   `redirect_uri?code=…&state=…`. Test hook (not Atlassian's): `&consent=deny` answers
 *   `redirect_uri?error=access_denied&error_description=…&state=…`, as a user pressing Cancel.
 * - `POST /oauth/token`, JSON or form-urlencoded (Airbyte sends the latter), grant_type `authorization_code`
 *   (code single use, 10 minutes, redirect_uri equal to the authorize one) or `refresh_token` →
 *   `{access_token, expires_in, scope, refresh_token, token_type: 'Bearer'}`; a refresh token only when the scope
 *   had `offline_access`.
 * - Rotating refresh tokens: each refresh answers a new one; the presented one keeps working for the reuse leeway
 *   (10 minutes) after its first use, then `403 {"error":"invalid_grant","error_description":"Unknown or invalid
 *   refresh token."}`; the same for unknown, revoked (password change) and 90-days-unused tokens.
 * Choices (GUESS; Atlassian publishes no error examples, and auth.atlassian.com answers like Auth0, which it runs
 * on): a bad client → 401 `{"error":"access_denied","error_description":"Unauthorized"}`; a bad or used code →
 * 403 invalid_grant "Invalid authorization code"; a missing grant_type → 400 invalid_request; another grant type →
 * 403 unsupported_grant_type. Access tokens look like JWTs (real ones are), with a random signature.
 */
import { randomBytes } from 'node:crypto';
import {
  OAUTH_BAD_CLIENT,
  OAUTH_BAD_CODE,
  OAUTH_BAD_REDIRECT,
  OAUTH_BAD_REFRESH,
} from './fixtures.ts';
import type { AuthKind } from './types.ts';
import { type Answer, isObject, json } from './wire.ts';

export interface OAuthConfig {
  clientId: string;
  clientSecret: string;
  accessTtlSeconds: number;
  leewaySeconds: number;
  now: () => Date;
  /** accountId the tokens act as (the consenting user: the API user here). */
  accountId: string;
}
export interface GrantRecord {
  grant: 'authorization_code' | 'refresh_token';
  at: Date;
  ok: boolean;
  error?: string;
}
interface AccessGrant {
  expiresAt: number;
  scopes: string[];
}
interface RefreshGrant {
  clientId: string;
  scopes: string[];
  issuedAt: number;
  lastUsedAt: number;
  firstUsedAt?: number;
  revoked: boolean;
}

const CODE_TTL_MS = 10 * 60_000;
const REFRESH_INACTIVITY_MS = 90 * 86_400_000;
const b64url = (v: string | Buffer): string => Buffer.from(v).toString('base64url');
const random = (bytes: number): string => randomBytes(bytes).toString('base64url');

function errorPage(reason: string): Answer {
  return {
    status: 400,
    contentType: 'text/html;charset=utf-8',
    raw: `<!DOCTYPE html><html><head><title>Something went wrong</title></head><body><h1>Something went wrong</h1><p>${reason}</p></body></html>`,
  };
}

export function createOAuth(config: OAuthConfig) {
  const codes = new Map<string, { clientId: string; redirectUri: string; scopes: string[]; expiresAt: number; used: boolean }>();
  const access = new Map<string, AccessGrant>();
  const refresh = new Map<string, RefreshGrant>();
  const grants: GrantRecord[] = [];
  const nowMs = (): number => config.now().getTime();

  function issue(scopes: string[], clientId: string): Record<string, unknown> {
    const now = nowMs();
    const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'fake-jira' }));
    const payload = b64url(JSON.stringify({
      sub: config.accountId, aud: 'api.atlassian.com', iss: 'https://auth.atlassian.com', 'https://id.atlassian.com/atlassianAccountId': config.accountId,
      iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + config.accessTtlSeconds, scope: scopes.join(' '), jti: random(12),
    }));
    const accessToken = `${header}.${payload}.${random(32)}`;
    access.set(accessToken, { expiresAt: now + config.accessTtlSeconds * 1000, scopes });
    const body: Record<string, unknown> = { access_token: accessToken, expires_in: config.accessTtlSeconds, scope: scopes.join(' ') };
    if (scopes.includes('offline_access')) {
      const refreshToken = random(48);
      refresh.set(refreshToken, { clientId, scopes, issuedAt: now, lastUsedAt: now, revoked: false });
      body.refresh_token = refreshToken;
    }
    body.token_type = 'Bearer';
    return body;
  }

  function record(grant: GrantRecord['grant'], ok: boolean, error?: string): void {
    grants.push({ grant, at: new Date(nowMs()), ok, ...(error !== undefined ? { error } : {}) });
  }

  return {
    grants,
    expireAll(): void {
      for (const grant of access.values()) grant.expiresAt = Math.min(grant.expiresAt, nowMs());
    },
    revokeAll(): void {
      for (const grant of refresh.values()) grant.revoked = true;
    },

    /** GET /authorize. */
    authorize(q: URLSearchParams): Answer {
      const redirectUri = q.get('redirect_uri');
      if (q.get('client_id') !== config.clientId) return errorPage('Invalid client_id: this app does not exist.');
      if (q.get('audience') !== 'api.atlassian.com') return errorPage('Invalid audience: it must be api.atlassian.com.');
      if (q.get('response_type') !== 'code') return errorPage('Unsupported response_type: it must be code.');
      if (!redirectUri || !/^https?:\/\//.test(redirectUri)) return errorPage('Missing or invalid redirect_uri.');
      const state = q.get('state');
      if (!state) return errorPage('Missing state.');
      const scopes = (q.get('scope') ?? '').split(/\s+/).filter((s) => s !== '');
      if (scopes.length === 0) return errorPage('Missing scope.');
      const target = new URL(redirectUri);
      if (q.get('consent') === 'deny') {
        target.searchParams.set('error', 'access_denied');
        target.searchParams.set('error_description', 'User did not authorize the request');
      } else {
        const code = random(24);
        codes.set(code, { clientId: config.clientId, redirectUri, scopes, expiresAt: nowMs() + CODE_TTL_MS, used: false });
        target.searchParams.set('code', code);
      }
      target.searchParams.set('state', state);
      return { status: 302, headers: { Location: target.toString() } };
    },

    /** POST /oauth/token (JSON or form-urlencoded). */
    token(contentType: string, body: Buffer): Answer {
      let params: Record<string, string | undefined>;
      if (contentType.toLowerCase().includes('json')) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          return json(400, { error: 'invalid_request', error_description: 'Invalid JSON body' });
        }
        if (!isObject(parsed)) return json(400, { error: 'invalid_request', error_description: 'Invalid JSON body' });
        params = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]));
      } else {
        params = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
      }
      const grant = params.grant_type;
      if (!grant) return json(400, { error: 'invalid_request', error_description: 'Missing required parameter: grant_type' });
      if (grant !== 'authorization_code' && grant !== 'refresh_token') {
        return json(403, { error: 'unsupported_grant_type', error_description: `Grant type '${grant}' not allowed for the client.` });
      }
      if (params.client_id !== config.clientId || params.client_secret !== config.clientSecret) {
        record(grant, false, 'access_denied');
        return json(401, OAUTH_BAD_CLIENT);
      }
      const now = nowMs();
      if (grant === 'authorization_code') {
        const code = codes.get(params.code ?? '');
        if (!code || code.used || now > code.expiresAt || code.clientId !== params.client_id) {
          record(grant, false, 'invalid_grant');
          return json(403, OAUTH_BAD_CODE);
        }
        if (params.redirect_uri !== code.redirectUri) {
          record(grant, false, 'invalid_grant');
          return json(403, OAUTH_BAD_REDIRECT);
        }
        code.used = true;
        record(grant, true);
        return json(200, issue(code.scopes, code.clientId));
      }
      const presented = refresh.get(params.refresh_token ?? '');
      const stale = presented !== undefined && (
        presented.revoked || presented.clientId !== params.client_id || now - presented.lastUsedAt > REFRESH_INACTIVITY_MS ||
        (presented.firstUsedAt !== undefined && now > presented.firstUsedAt + config.leewaySeconds * 1000)
      );
      if (!presented || stale) {
        record(grant, false, 'invalid_grant');
        return json(403, OAUTH_BAD_REFRESH);
      }
      presented.firstUsedAt ??= now;
      presented.lastUsedAt = now;
      record(grant, true);
      return json(200, issue(presented.scopes, presented.clientId));
    },

    /** An access token's state and scopes. */
    accessToken(token: string): { state: 'valid' | 'expired' | 'unknown'; scopes: string[] } {
      const grant = access.get(token);
      if (!grant) return { state: 'unknown', scopes: [] };
      return { state: nowMs() < grant.expiresAt ? 'valid' : 'expired', scopes: grant.scopes };
    },
    isAccessToken: (token: string): boolean => access.has(token),
  };
}
export type OAuth = ReturnType<typeof createOAuth>;

/** The request log's view of an Authorization header. */
export function classifyAuth(header: string | undefined, known: { pat: string | undefined; oauth: OAuth }): AuthKind {
  if (header === undefined || header.trim() === '') return 'none';
  const [scheme = '', credential = ''] = header.trim().split(/\s+/, 2);
  if (/^basic$/i.test(scheme)) return 'basic';
  if (!/^bearer$/i.test(scheme)) return 'invalid';
  if (known.pat !== undefined && credential === known.pat) return 'pat';
  return known.oauth.isAccessToken(credential) ? 'oauth' : 'invalid';
}

/** The user:password of a Basic header, if it is one. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^basic\s+(\S+)$/i.exec(header?.trim() ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
export const bearerToken = (header: string | undefined): string | undefined => /^bearer\s+(\S+)$/i.exec(header?.trim() ?? '')?.[1];
