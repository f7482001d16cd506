/**
 * Who is behind a chat identity, answered from memory on the chat request path (every Slack command and click
 * needs it before its ack; a query each time was the largest cost of an ack). It is safe only because it is
 * never stale for longer than a notification takes to arrive:
 *
 * - A statement-level trigger on `users` and `identity_links` (migration 0600) sends `NOTIFY projectx_identity`
 *   on every change (role change, deactivation, link, unlink), from the committing transaction. Each process
 *   listens (src/db/listen.ts) and drops its whole cache when one arrives; changes are rare, so a full clear
 *   costs nothing worth measuring.
 * - While the LISTEN connection is down, nothing is cached or served from cache: every lookup queries.
 * - A lookup that was in flight when a notification arrived is not cached (it may have read the old rows).
 * - Entries also expire after `ttlMs` (default 60 s), in case the listening connection hangs silently.
 *
 * Only linked, active users are cached; an unknown identity is looked up every time (it is about to be linked).
 */
import { Counter } from 'prom-client';
import type { Db } from '../db/database.ts';
import { type Listener, listen } from '../db/listen.ts';
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
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number;
  /** The lookup behind the cache; the domain's query unless a test needs to hold one in flight. */
  load?: (db: Db, identity: ChatIdentity) => Promise<User | undefined>;
  now?: () => number;
  /** Called after each clear with the notification's payload (the table that changed), or '' on a connection change. */
  onInvalidate?: (payload: string) => void;
  /** How soon to try again when the LISTEN connection is lost (doubles up to 30 s). */
  reconnectAfterMs?: number;
}

export async function createIdentityCache(options: IdentityCacheOptions): Promise<IdentityDirectory> {
  const ttlMs = options.ttlMs ?? 60_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const load = options.load ?? findUserByIdentity;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { user: User; expiresAt: number }>();
  /** Bumped by every invalidation; a lookup caches its answer only if none happened while it ran. */
  let generation = 0;
  const lookups = options.metrics
    ? new Counter({ name: 'identity_cache_lookups_total', help: 'Chat identity lookups by result (hit, miss, bypass: not listening)', labelNames: ['result'], registers: [options.metrics.registry] })
    : undefined;

  const invalidations = options.metrics
    ? new Counter({ name: 'identity_cache_invalidations_total', help: 'Identity cache clears: a user or link changed, or the listening connection went down or came back', registers: [options.metrics.registry] })
    : undefined;

  const invalidate = (payload: string) => {
    generation++;
    entries.clear();
    invalidations?.inc();
    options.onInvalidate?.(payload);
  };
  const listener: Listener = await listen({
    connectionString: options.connectionString,
    channel: IDENTITY_CHANNEL,
    applicationName: 'projectx-identity-cache',
    ...(options.reconnectAfterMs !== undefined ? { minBackoffMs: options.reconnectAfterMs } : {}),
    logger: options.logger,
    onNotify: invalidate,
    onState: () => invalidate(''),
  });

  return {
    async resolve(identity) {
      if (!listener.listening) {
        lookups?.inc({ result: 'bypass' });
        return load(options.db, identity);
      }
      const key = `${identity.surface}\u0000${identity.tenant}\u0000${identity.surface === 'email' ? identity.externalId.toLowerCase() : identity.externalId}`;
      const cached = entries.get(key);
      if (cached && cached.expiresAt > now()) {
        lookups?.inc({ result: 'hit' });
        return cached.user;
      }
      lookups?.inc({ result: 'miss' });
      const started = generation;
      const user = await load(options.db, identity);
      if (user && generation === started && listener.listening) {
        entries.delete(key);
        // Frozen: every caller shares this object, so a mutation would be a bug that must fail loudly.
        entries.set(key, { user: Object.freeze({ ...user, roles: Object.freeze([...user.roles]) as User['roles'] }), expiresAt: now() + ttlMs });
        if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
      }
      return user;
    },
    close: () => listener.close(),
  };
}
