/**
 * Authentication for the fake ServiceNow: `POST /oauth_token.do` and the check every /api/now request passes.
 *
 * From the docs (ServiceNow/ServiceNowDocs @ cb48b5c, r_OAuthAPIRequestParameters.md, r_OAuthAPIResponseParameters.md,
 * client-credentials-grant-workflow.md): the body must be application/x-www-form-urlencoded ("a content-type of
 * application/json results in an unspecified error": here the OAuth refusal below); grant_type password (client_id,
 * client_secret, username, password), refresh_token (client_id, client_secret, refresh_token) or client_credentials
 * (client_id, client_secret); the answer is `{ scope: 'useraccount', token_type: 'Bearer', expires_in, refresh_token,
 * access_token }` like servicenow_oauth_token_response_docs.json. A refresh grant answers a new access token and the
 * same refresh token.
 * Choices: every grant issues a new random access token (the docs say a password grant within the token's lifetime
 * answers the current one); every refusal is 401 with OAUTH_ERROR (the docs give no error example); client
 * credentials are read from the body only (the documented way), not from a Basic header. API requests accept
 * `Authorization: Bearer <unexpired token>` or Basic with the configured user.
 */
import { randomBytes } from 'node:crypto';
import { FIXTURE_TOKEN_RESPONSE, OAUTH_ERROR } from './fixtures.ts';
import type { AuthKind } from './types.ts';

export interface OAuthConfig {
  clientId: string;
  clientSecret: string;
  user: string;
  password: string;
  ttlSeconds: () => number;
  now: () => Date;
}
export interface Principal {
  kind: AuthKind;
  /** Who is calling (user name, or client id for client_credentials); undefined when not authenticated. */
  name: string | undefined;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Tokens as long as the docs' example ones, from the same alphabet. */
function token(length: number): string {
  return [...randomBytes(length)].map((b) => ALPHABET[b % ALPHABET.length]).join('');
}

export function authKind(header: string | undefined): AuthKind {
  if (/^Bearer\s/i.test(header ?? '')) return 'bearer';
  return /^Basic\s/i.test(header ?? '') ? 'basic' : 'none';
}

export function createOAuth(config: OAuthConfig) {
  const access = new Map<string, { name: string; expiresAt: number }>();
  const refresh = new Map<string, string>();
  let issued = 0;

  function issue(name: string, refreshToken: string): object {
    const accessToken = token(FIXTURE_TOKEN_RESPONSE.access_token.length);
    const ttl = config.ttlSeconds();
    access.set(accessToken, { name, expiresAt: config.now().getTime() + ttl * 1000 });
    refresh.set(refreshToken, name);
    issued++;
    return { scope: 'useraccount', token_type: 'Bearer', expires_in: ttl, refresh_token: refreshToken, access_token: accessToken };
  }

  return {
    issued: (): number => issued,
    expireAll: (): void => access.clear(),

    /** The /oauth_token.do answer for a request body. */
    grant(contentType: string, body: string): { status: number; body: object } {
      const refused = { status: 401, body: { ...OAUTH_ERROR } };
      if (!contentType.toLowerCase().startsWith('application/x-www-form-urlencoded')) return refused;
      const form = new URLSearchParams(body);
      if (form.get('client_id') !== config.clientId || form.get('client_secret') !== config.clientSecret) return refused;
      const newRefresh = (): string => token(FIXTURE_TOKEN_RESPONSE.refresh_token.length);
      switch (form.get('grant_type')) {
        case 'client_credentials':
          return { status: 200, body: issue(config.clientId, newRefresh()) };
        case 'password':
          if (form.get('username') !== config.user || form.get('password') !== config.password) return refused;
          return { status: 200, body: issue(config.user, newRefresh()) };
        case 'refresh_token': {
          const presented = form.get('refresh_token') ?? '';
          const name = refresh.get(presented);
          return name === undefined ? refused : { status: 200, body: issue(name, presented) };
        }
        default:
          return refused;
      }
    },

    /** Who an Authorization header authenticates (an expired or unknown token authenticates nobody). */
    authenticate(header: string | undefined): Principal {
      const kind = authKind(header);
      const credentials = (header ?? '').replace(/^\S+\s+/, '');
      if (kind === 'bearer') {
        const grant = access.get(credentials);
        const valid = grant !== undefined && config.now().getTime() < grant.expiresAt;
        return { kind, name: valid ? grant.name : undefined };
      }
      if (kind === 'basic') {
        const decoded = Buffer.from(credentials, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        const ok = colon > 0 && decoded.slice(0, colon) === config.user && decoded.slice(colon + 1) === config.password;
        return { kind, name: ok ? config.user : undefined };
      }
      return { kind, name: undefined };
    },
  };
}
export type OAuth = ReturnType<typeof createOAuth>;
