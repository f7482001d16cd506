/**
 * oauth.v2.access: code exchange and, with token rotation, `grant_type=refresh_token`. No fixture: built from the
 * documented shape (docs.slack.dev/reference/methods/oauth.v2.access; @slack/web-api OauthV2AccessResponse;
 * @slack/oauth OAuthV2TokenRefreshResponse for the refresh answer). Client credentials come from HTTP Basic auth
 * (what the docs recommend) or the `client_id` / `client_secret` fields (what WebClient sends).
 * Errors: invalid_client_id, invalid_grant_type, invalid_code, invalid_refresh_token, bad_client_secret,
 * bad_redirect_uri.
 */
import type { Json } from './fixtures.ts';
import type { OAuthGrant, TokenInfo } from './types.ts';
import { fail, rand, str } from './wire.ts';

export interface FakeOAuth {
  register(grants: Record<string, OAuthGrant>): void;
  access(p: Json, authorization: string | undefined): Json;
}

/** Issued tokens are added to `tokens`, so they authenticate later Web API calls and file downloads. */
export function createOAuth(tokens: Map<string, TokenInfo>, defaults: TokenInfo): FakeOAuth {
  const codes = new Map<string, OAuthGrant>();
  const refreshTokens = new Map<string, OAuthGrant>();
  const clients = new Set<string>();
  let issued = 0;

  function access(p: Json, authorization: string | undefined): Json {
    let clientId = str(p, 'client_id');
    let secret = str(p, 'client_secret');
    const basic = /^Basic\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (basic !== undefined) [clientId, secret] = Buffer.from(basic, 'base64').toString('utf8').split(/:(.*)/s);
    if (clientId === undefined || !clients.has(clientId)) return fail('invalid_client_id');
    const grantType = str(p, 'grant_type') ?? 'authorization_code';
    if (grantType !== 'refresh_token' && grantType !== 'authorization_code') return fail('invalid_grant_type');
    const presented = grantType === 'refresh_token' ? str(p, 'refresh_token') : str(p, 'code');
    const store = grantType === 'refresh_token' ? refreshTokens : codes;
    const grant = store.get(presented ?? '');
    if (!grant || grant.clientId !== clientId) {
      return fail(grantType === 'refresh_token' ? 'invalid_refresh_token' : 'invalid_code');
    }
    if (grant.clientSecret !== secret) return fail('bad_client_secret');
    const redirect = grantType === 'authorization_code' ? grant.redirectUri : undefined;
    if (redirect !== undefined && str(p, 'redirect_uri') !== redirect) return fail('bad_redirect_uri');
    // Codes are single-use; a used refresh token is revoked and replaced (docs: "Using token rotation").
    store.delete(presented ?? '');
    const rotation = grant.tokenRotation === true;
    const generated = rotation ? `xoxe.xoxb-1-${rand(24)}` : `xoxb-${++issued}-${rand(12)}`;
    const botToken = grantType === 'authorization_code' ? (grant.accessToken ?? generated) : generated;
    const info: TokenInfo = {
      teamId: grant.team.id,
      teamName: grant.team.name,
      userId: grant.botUserId ?? defaults.userId,
      userName: defaults.userName,
      botId: grant.botId ?? defaults.botId,
      appId: grant.appId ?? defaults.appId,
      scope: grant.scope ?? defaults.scope,
      isEnterpriseInstall: grant.isEnterpriseInstall ?? false,
    };
    tokens.set(botToken, info);
    const refresh = rotation ? `xoxe-1-${rand(24)}` : undefined;
    if (refresh !== undefined) refreshTokens.set(refresh, grant);
    const authed = grant.authedUser ?? { id: 'U0000INST1' };
    const userToken = authed.accessToken;
    if (userToken !== undefined) tokens.set(userToken, { ...info, userId: authed.id, userName: authed.id });
    const userGrant = userToken === undefined ? {} : { scope: authed.scope ?? '', access_token: userToken, token_type: 'user' };
    return {
      ok: true,
      app_id: info.appId,
      // The token-refresh answer has no authed_user (@slack/oauth OAuthV2TokenRefreshResponse).
      ...(grantType === 'authorization_code' ? { authed_user: { id: authed.id, ...userGrant } } : {}),
      scope: info.scope,
      token_type: 'bot',
      access_token: botToken,
      bot_user_id: info.userId,
      ...(refresh !== undefined ? { refresh_token: refresh, expires_in: 43200 } : {}),
      team: grant.team,
      enterprise: grant.enterprise ?? null,
      is_enterprise_install: info.isEnterpriseInstall,
    };
  }

  return {
    register(grants) {
      for (const [code, grant] of Object.entries(grants)) {
        codes.set(code, grant);
        clients.add(grant.clientId);
      }
    },
    access,
  };
}
