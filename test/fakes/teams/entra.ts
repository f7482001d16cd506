/**
 * A fake Entra ID (Azure AD) token endpoint: where the bot gets the bearer token for its outbound calls
 * (../shared/notes/teams.md §2–§4). It serves, over **https** on 127.0.0.1 with a self-signed certificate made
 * at start (MSAL refuses a plain-http authority), what MSAL's client-credentials flow calls:
 *
 * - `GET /{tenant}/v2.0/.well-known/openid-configuration` (MSAL rejects a document without
 *   `authorization_endpoint`, `token_endpoint`, `issuer` and `jwks_uri`), and the JWKS it names;
 * - `POST /{tenant}/oauth2/v2.0/token` (form: `grant_type=client_credentials`, `client_id`, `client_secret`,
 *   `scope=<resource>/.default`): an RS256 access token `{aud: <resource>, appid, iss:
 *   https://sts.windows.net/<tenant id>/, tid, exp}`, or the errors Entra gives (a wrong secret: 401
 *   `invalid_client`).
 *
 * `verify(token)` is the check a resource (the fake Bot Connector) makes on such a token.
 */
import { execFile } from 'node:child_process';
import { createSign, createVerify, generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** The `botframework.com` tenant's id, as the issuer of a MultiTenant bot's tokens names it. */
const BOTFRAMEWORK_TENANT_ID = 'd6d49420-f39b-4df7-a1dc-d59a935871db';

export interface EntraRequest {
  method: string;
  /** Without the query string (MSAL adds `client-request-id`). */
  path: string;
  /** The token request's form, `client_secret` replaced by `[secret]`. */
  form?: Record<string, string>;
  status: number;
}

export type EntraVerification = { ok: true; claims: EntraClaims } | { ok: false; reason: 'malformed' | 'unknown_key' | 'bad_signature' | 'expired' };

export interface EntraClaims {
  aud: string;
  iss: string;
  appid: string;
  tid: string;
  iat: number;
  nbf: number;
  exp: number;
  ver: string;
}

export interface FakeEntra {
  /** `https://127.0.0.1:<port>`: BOTFRAMEWORK_LOGIN_URL (the tenant is appended by the bot). */
  readonly loginUrl: string;
  /** The self-signed certificate (PEM) to trust. */
  readonly certPem: string;
  readonly requests: EntraRequest[];
  /** Registers an app (client id) with its secret; tokens are issued only to registered apps. */
  register(appId: string, secret: string): void;
  /** Checks a token's signature (by this fake's key) and expiry; the caller checks `aud` and `appid`. */
  verify(token: string): EntraVerification;
  /** Tokens issued, by app id. */
  issued(appId: string): number;
  close(): Promise<void>;
}

const run = promisify(execFile);

async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fake-entra-'));
  try {
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
    return { key: await readFile(join(dir, 'key.pem'), 'utf8'), cert: await readFile(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const base64url = (value: string) => Buffer.from(value).toString('base64url');

export async function startFakeEntra(): Promise<FakeEntra> {
  const tls = await selfSignedCertificate();
  const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `entra-${randomUUID()}`;
  const secrets = new Map<string, string>();
  const issuedCount = new Map<string, number>();
  const requests: EntraRequest[] = [];
  let origin = '';

  const sign = (claims: EntraClaims) => {
    const input = `${base64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid }))}.${base64url(JSON.stringify(claims))}`;
    return `${input}.${createSign('RSA-SHA256').update(input).sign(signing.privateKey).toString('base64url')}`;
  };

  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const answer = (status: number, body: unknown, form?: Record<string, string>) => {
        requests.push({ method: req.method ?? '', path, status, ...(form ? { form } : {}) });
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        res.end(JSON.stringify(body));
      };
      const metadata = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path);
      if (req.method === 'GET' && metadata) {
        const tenant = metadata[1]!;
        answer(200, {
          token_endpoint: `${origin}/${tenant}/oauth2/v2.0/token`,
          authorization_endpoint: `${origin}/${tenant}/oauth2/v2.0/authorize`,
          issuer: `${origin}/${tenant}/v2.0`,
          jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
          token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
          response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
          id_token_signing_alg_values_supported: ['RS256'],
          tenant_region_scope: 'EU',
        });
        return;
      }
      if (req.method === 'GET' && /^\/[^/]+\/discovery\/v2\.0\/keys$/.test(path)) {
        answer(200, { keys: [{ kty: 'RSA', use: 'sig', kid, ...(signing.publicKey.export({ format: 'jwk' }) as { n: string; e: string }) }] });
        return;
      }
      const token = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(path);
      if (req.method === 'POST' && token) {
        const form = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
        const recorded = { ...form, ...(form.client_secret === undefined ? {} : { client_secret: '[secret]' }) };
        const error = (status: number, code: string, description: string) => answer(status, { error: code, error_description: description, error_codes: [], timestamp: new Date().toISOString(), trace_id: randomUUID(), correlation_id: randomUUID() }, recorded);
        if (form.grant_type !== 'client_credentials') return error(400, 'unsupported_grant_type', 'AADSTS70003: The app requested an unsupported grant type.');
        const appId = form.client_id ?? '';
        const secret = secrets.get(appId);
        if (secret === undefined) return error(400, 'unauthorized_client', `AADSTS700016: Application with identifier '${appId}' was not found in the directory.`);
        if (form.client_secret !== secret) return error(401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.');
        const scope = form.scope ?? '';
        if (!scope.endsWith('/.default') || scope.includes(' ')) return error(400, 'invalid_scope', `AADSTS1002012: The provided value for scope ${scope} is not valid.`);
        const tenant = token[1]!;
        const now = Math.floor(Date.now() / 1000);
        const claims: EntraClaims = { aud: scope.slice(0, -'/.default'.length), iss: `https://sts.windows.net/${tenant === 'botframework.com' ? BOTFRAMEWORK_TENANT_ID : tenant}/`, appid: appId, tid: tenant === 'botframework.com' ? BOTFRAMEWORK_TENANT_ID : tenant, iat: now, nbf: now - 300, exp: now + 3600, ver: '1.0' };
        issuedCount.set(appId, (issuedCount.get(appId) ?? 0) + 1);
        answer(200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: sign(claims) }, recorded);
        return;
      }
      answer(404, { error: 'not_found', error_description: `no route ${req.method ?? ''} ${path}` });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    loginUrl: origin,
    certPem: tls.cert,
    requests,
    register(appId, secret) {
      secrets.set(appId, secret);
    },
    issued: (appId) => issuedCount.get(appId) ?? 0,
    verify(jwt) {
      const parts = jwt.split('.');
      if (parts.length !== 3) return { ok: false, reason: 'malformed' };
      const [header, payload, signature] = parts as [string, string, string];
      let head: { alg?: unknown; kid?: unknown };
      let claims: EntraClaims;
      try {
        head = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof head;
        claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as EntraClaims;
      } catch {
        return { ok: false, reason: 'malformed' };
      }
      if (head.alg !== 'RS256' || head.kid !== kid) return { ok: false, reason: 'unknown_key' };
      if (!createVerify('RSA-SHA256').update(`${header}.${payload}`).verify(signing.publicKey, Buffer.from(signature, 'base64url'))) return { ok: false, reason: 'bad_signature' };
      if (typeof claims.exp !== 'number' || claims.exp < Math.floor(Date.now() / 1000)) return { ok: false, reason: 'expired' };
      return { ok: true, claims };
    },
    close: () => new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((error) => (error ? reject(error) : resolve()));
    }),
  };
}
