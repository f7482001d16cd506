/**
 * Credentials a connector's HTTP client sends: OAuth 2.0 client-credentials tokens, cached and refreshed before
 * they expire, and basic auth.
 *
 * A token lives in `integration_tokens`, encrypted (AAD `integration:<instance>:access_token`), so every process
 * of an instance shares it. Getting a new one is single-flight across processes: the refresher takes a
 * transaction-scoped PostgreSQL advisory lock for the instance, reads the row again (another process may have
 * refreshed while it waited), and asks the token endpoint only if the token is still missing, expiring or the
 * one that was just refused. Within a process, concurrent callers share one promise. Each token obtained is
 * audited in `integration_credentials_audit` (when and until when, never the token).
 */
import { type Kysely, sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import type { Database } from '../../db/schema.ts';
import type { Logger } from '../../logger.ts';
import type { Clock } from '../../clock.ts';
import { type Keyring, isEnvelope } from './crypto.ts';
import { type AuthProvider, AuthUnavailable } from './http-client.ts';
import { credentialAad } from './instances.ts';

export interface GrantedToken {
  accessToken: string;
  expiresInSeconds: number;
}

export interface TokenSourceOptions {
  db: Db;
  keyring: Keyring;
  instanceId: string;
  clock: Clock;
  logger: Logger;
  /**
   * Asks the token endpoint; throws AuthUnavailable when refused or unreachable. Runs inside the refresh's
   * transaction (`trx`, holding the instance's refresh lock), so a grant that rotates something (a refresh
   * token) stores it in the same commit as the access token it came with.
   */
  grant: (input: { trx: Kysely<Database> }) => Promise<GrantedToken>;
  /** A token this close to its expiry is refreshed before use (default 60 s). */
  refreshMarginSeconds?: number;
}

/** Advisory lock key for an instance's token refresh (two int4 keys: a namespace and the instance). */
const LOCK_NAMESPACE = 0x50584f41; // "PXOA"

export function createTokenSource(options: TokenSourceOptions): AuthProvider & { current(): Promise<string> } {
  const margin = (options.refreshMarginSeconds ?? 60) * 1000;
  const aad = credentialAad(options.instanceId, 'access_token');
  let cached: { token: string; expiresAt: number } | undefined;
  let inFlight: Promise<string> | undefined;
  const fresh = (expiresAt: number) => expiresAt - margin > options.clock.now().getTime();

  const readStored = async (db: Db): Promise<{ token: string; expiresAt: number } | undefined> => {
    const row = await db.selectFrom('integration_tokens').select(['token', 'expires_at']).where('config_id', '=', options.instanceId).executeTakeFirst();
    if (!row || !isEnvelope(row.token)) return undefined;
    try {
      return { token: options.keyring.decrypt(row.token, aad), expiresAt: row.expires_at.getTime() };
    } catch {
      return undefined; // unreadable under the loaded keys: get a new one
    }
  };

  /** A usable token: the shared one if fresh and not `rejected`, else a new one (under the instance's lock). */
  const obtain = (rejected: string | undefined): Promise<string> =>
    (inFlight ??= (async () => {
      try {
        const shared = await readStored(options.db);
        if (shared && fresh(shared.expiresAt) && shared.token !== rejected) return remember(shared);
        return await options.db.transaction().execute(async (trx) => {
          await sql`select pg_advisory_xact_lock(${LOCK_NAMESPACE}, hashtext(${options.instanceId}))`.execute(trx);
          // Whoever held the lock before us may have refreshed it already.
          const again = await readStored(trx);
          if (again && fresh(again.expiresAt) && again.token !== rejected) return remember(again);
          const granted = await options.grant({ trx });
          const expiresAt = options.clock.now().getTime() + granted.expiresInSeconds * 1000;
          const envelope = JSON.stringify(options.keyring.encrypt(granted.accessToken, aad));
          await trx
            .insertInto('integration_tokens')
            .values({ config_id: options.instanceId, token: envelope, expires_at: new Date(expiresAt), updated_at: options.clock.now() })
            .onConflict((oc) => oc.column('config_id').doUpdateSet({ token: envelope, expires_at: new Date(expiresAt), updated_at: options.clock.now() }))
            .execute();
          await trx
            .insertInto('integration_credentials_audit')
            .values({ config_id: options.instanceId, action: 'token.refreshed', actor: 'system', key_id: options.keyring.currentKeyId, detail: JSON.stringify({ expires_at: new Date(expiresAt).toISOString(), after_rejection: rejected !== undefined }) })
            .execute();
          options.logger.info({ instance: options.instanceId, expiresAt: new Date(expiresAt).toISOString() }, 'access token refreshed');
          return remember({ token: granted.accessToken, expiresAt });
        });
      } finally {
        inFlight = undefined;
      }
    })());

  const remember = (token: { token: string; expiresAt: number }) => {
    cached = token;
    return token.token;
  };

  const current = async () => (cached && fresh(cached.expiresAt) ? cached.token : obtain(undefined));
  return {
    current,
    authorization: async () => `Bearer ${await current()}`,
    async refresh() {
      const rejected = cached?.token;
      cached = undefined;
      await obtain(rejected);
    },
  };
}

export function basicAuth(user: string, password: string): AuthProvider {
  const header = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
  return {
    authorization: () => Promise.resolve(header),
    // Nothing to refresh: a 401 with basic auth is the answer.
    refresh: () => Promise.reject(new AuthUnavailable('basic_auth_refused', 'the system refused the configured user and password')),
  };
}
