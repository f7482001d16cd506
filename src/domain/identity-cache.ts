/**
 * Who is behind a chat identity, answered from memory on the chat request path (every Slack command and click
 * needs it before its ack; a query each time was the largest cost of an ack). A statement-level trigger on
 * `users` and `identity_links` (migration 0600) notifies every process of any change (role change,
 * deactivation, link, unlink), so a revoked role is stale no longer than a notification takes to arrive; the
 * rules of that cache are in src/db/notified-cache.ts.
 *
 * Only linked, active users are cached; an unknown identity is looked up every time (it is about to be linked).
 */
import type { Db } from '../db/database.ts';
import { createNotifiedCache } from '../db/notified-cache.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { ChatIdentity } from './actor.ts';
import { type User, findUserByIdentity } from './users.ts';

export const IDENTITY_CHANNEL = 'projectx_identity';

export interface IdentityDirectory {
  /** The active user linked to this chat identity, if any. */
  resolve(identity: ChatIdentity): Promise<User | undefined>;
  close(): Promise<void>;
}

export interface IdentityCacheOptions {
  db: Db;
  /** The database to LISTEN on (a dedicated connection). */
  connectionString: string;
  logger: Logger;
  metrics?: Metrics;
  ttlMs?: number;
  /** The lookup behind the cache; the domain's query unless a test needs to hold one in flight. */
  load?: (db: Db, identity: ChatIdentity) => Promise<User | undefined>;
  onInvalidate?: (payload: string) => void;
  reconnectAfterMs?: number;
  ping?: { intervalMs: number; timeoutMs: number };
}

export async function createIdentityCache(options: IdentityCacheOptions): Promise<IdentityDirectory> {
  const load = options.load ?? findUserByIdentity;
  const cache = await createNotifiedCache<User>({
    connectionString: options.connectionString,
    channel: IDENTITY_CHANNEL,
    name: 'identity',
    logger: options.logger,
    metrics: options.metrics,
    ...(options.ttlMs !== undefined ? { ttlMs: options.ttlMs } : {}),
    ...(options.onInvalidate ? { onInvalidate: options.onInvalidate } : {}),
    ...(options.reconnectAfterMs !== undefined ? { reconnectAfterMs: options.reconnectAfterMs } : {}),
    ...(options.ping ? { ping: options.ping } : {}),
  });
  return {
    resolve(identity) {
      const externalId = identity.surface === 'email' ? identity.externalId.toLowerCase() : identity.externalId;
      return cache.get(`${identity.surface}\u0000${identity.tenant}\u0000${externalId}`, async () => {
        const user = await load(options.db, identity);
        // Frozen: every caller shares the cached object, so a mutation would be a bug that must fail loudly.
        return user ? Object.freeze({ ...user, roles: Object.freeze([...user.roles]) as User['roles'] }) : undefined;
      });
    },
    close: () => cache.close(),
  };
}
