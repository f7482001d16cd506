/**
 * A fake Bot Framework channel: what Teams' side of `POST /api/messages` looks like to the bot. It publishes the
 * OpenID metadata and JWKS the real service does (../shared/notes/teams.md §1, §4: `GET
 * /v1/.well-known/openidconfiguration`, `GET /v1/.well-known/keys`, keys with an `endorsements` list) on
 * 127.0.0.1, and signs activities as the channel does: RS256 with a `kid`, claims `iss`, `aud` (the bot's app
 * id), `serviceurl` (the activity's), `nbf`, `exp`.
 *
 * It can also sign wrongly, which is what it is for: another key under a known `kid` (a forged signature), an
 * unknown `kid`, HS256 with the public key as secret, `alg: none`, expired, the wrong audience, issuer or service
 * URL, a key endorsed only for `webchat`, a skill-shaped token. The JWTs are put together here with node:crypto
 * (a dozen lines) rather than a JWT library, because a library refuses to make most of these.
 */
import { type KeyObject, createHmac, createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export const CHANNEL_ISSUER = 'https://api.botframework.com';

export type BadSigning =
  | 'forged_signature'
  | 'unknown_kid'
  | 'hs256'
  | 'alg_none'
  | 'expired'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'wrong_service_url'
  | 'webchat_only_key'
  | 'skill_token'
  | 'not_yet_valid';

export interface FakeChannel {
  /** `http://127.0.0.1:<port>/v1/.well-known/openidconfiguration`: BOTFRAMEWORK_OPENID_METADATA_URL. */
  readonly openIdMetadataUrl: string;
  /** `Bearer <jwt>` for this activity, signed as the channel does, or wrongly as asked. */
  authorization(activity: { serviceUrl?: string }, bad?: BadSigning): string;
  /** How often the metadata and the keys were fetched. */
  readonly fetches: { metadata: number; keys: number };
  close(): Promise<void>;
}

const base64url = (value: Buffer | string) => Buffer.from(value).toString('base64url');

function jwt(header: Record<string, unknown>, claims: Record<string, unknown>, sign: (input: string) => string): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${input}.${sign(input)}`;
}

const rs256 = (key: KeyObject) => (input: string) => createSign('RSA-SHA256').update(input).sign(key).toString('base64url');

export async function startFakeChannel(options: { appId: string }): Promise<FakeChannel> {
  const channelKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const webchatKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forger = generateKeyPairSync('rsa', { modulusLength: 2048 });
  // Fresh ids per fake: botbuilder caches keys per metadata URL for the whole process.
  const kid = `fake-${randomUUID()}`;
  const webchatKid = `fake-webchat-${randomUUID()}`;
  const fetches = { metadata: 0, keys: 0 };
  const jwk = (key: KeyObject, id: string, endorsements: string[]) => ({ kty: 'RSA', use: 'sig', kid: id, ...(key.export({ format: 'jwk' }) as { n: string; e: string }), endorsements });

  let origin = '';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    res.setHeader('content-type', 'application/json');
    if (req.method === 'GET' && path === '/v1/.well-known/openidconfiguration') {
      fetches.metadata++;
      res.end(JSON.stringify({ issuer: CHANNEL_ISSUER, authorization_endpoint: 'https://invalid.botframework.com', jwks_uri: `${origin}/v1/.well-known/keys`, id_token_signing_alg_values_supported: ['RS256'], token_endpoint_auth_methods_supported: ['private_key_jwt'] }));
      return;
    }
    if (req.method === 'GET' && path === '/v1/.well-known/keys') {
      fetches.keys++;
      res.end(JSON.stringify({ keys: [jwk(channelKey.publicKey, kid, ['msteams', 'skype']), jwk(webchatKey.publicKey, webchatKid, ['webchat'])] }));
      return;
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ error: 'not found' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    openIdMetadataUrl: `${origin}/v1/.well-known/openidconfiguration`,
    fetches,
    authorization(activity, bad) {
      const now = Math.floor(Date.now() / 1000);
      const claims: Record<string, unknown> = {
        iss: bad === 'wrong_issuer' ? 'https://evil.example.com' : CHANNEL_ISSUER,
        aud: bad === 'wrong_audience' ? randomUUID() : options.appId,
        serviceurl: bad === 'wrong_service_url' ? 'https://evil.example.com/teams/' : activity.serviceUrl,
        nbf: bad === 'not_yet_valid' ? now + 3600 : now - 60,
        iat: now - 60,
        exp: bad === 'expired' ? now - 3600 : now + 3600,
        // A skill token carries `ver` and an `appid` other than its audience.
        ...(bad === 'skill_token' ? { ver: '1.0', appid: randomUUID() } : {}),
      };
      const header = { typ: 'JWT', alg: 'RS256', kid: bad === 'unknown_kid' ? `unknown-${randomUUID()}` : bad === 'webchat_only_key' ? webchatKid : kid };
      let token: string;
      if (bad === 'forged_signature') token = jwt(header, claims, rs256(forger.privateKey));
      else if (bad === 'webchat_only_key') token = jwt(header, claims, rs256(webchatKey.privateKey));
      else if (bad === 'hs256') token = jwt({ ...header, alg: 'HS256' }, claims, (input) => createHmac('sha256', channelKey.publicKey.export({ format: 'pem', type: 'spki' })).update(input).digest('base64url'));
      else if (bad === 'alg_none') token = jwt({ typ: 'JWT', alg: 'none', kid }, claims, () => '');
      else token = jwt(header, claims, rs256(channelKey.privateKey));
      return `Bearer ${token}`;
    },
    close: () => new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}
