/**
 * An in-process cache of rows the database owns, never staler than a NOTIFY takes to arrive. A trigger on the
 * source tables sends `NOTIFY <channel>` from every committing change; each process LISTENs (src/db/listen.ts)
 * and drops its whole cache when one arrives (the sources change rarely, so a full clear costs nothing worth
 * measuring). While the LISTEN connection is down nothing is cached or served from cache; a lookup that was in
 * flight when a notification arrived is not kept (it may have read the old rows); entries also expire after
 * `ttlMs` (default 15 s). A listening connection that hangs silently (half-open after a network fault) is
 * noticed by a ping within about 20 s (src/db/listen.ts); the TTL bounds staleness until then.
 *
 * Used for the chat identity → user lookup (src/domain/identity-cache.ts) and webhook partners
 * (src/connectors/webhook-bridge/partners.ts), both on hot request paths.
 */
import { Counter } from 'prom-client';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { type Listener, listen } from './listen.ts';

export interface NotifiedCache<V> {
  /** The cached value, or `load()`'s (kept when it is not undefined and nothing changed meanwhile). */
  get(key: string, load: () => Promise<V | undefined>): Promise<V | undefined>;
  close(): Promise<void>;
}

export interface NotifiedCacheOptions {
  connectionString: string;
  /** The NOTIFY channel the source tables' trigger sends on. */
  channel: string;
  /** Names the metrics (`<name>_cache_lookups_total`, `<name>_cache_invalidations_total`) and the connection. */
  name: string;
  logger: Logger;
  metrics?: Metrics | undefined;
  ttlMs?: number;
  /** Entries kept at most; the oldest go first. */
  maxEntries?: number;
  now?: () => number;
  /** Called after each clear with the notification's payload, or '' when the connection went down or came back. */
  onInvalidate?: (payload: string) => void;
  /** How soon to try again when the LISTEN connection is lost (doubles up to 30 s). */
  reconnectAfterMs?: number;
  /** Liveness ping of the LISTEN connection (src/db/listen.ts); for tests. */
  ping?: { intervalMs: number; timeoutMs: number };
}

export async function createNotifiedCache<V>(options: NotifiedCacheOptions): Promise<NotifiedCache<V>> {
  const ttlMs = options.ttlMs ?? 15_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  const entries = new Map<string, { value: V; expiresAt: number }>();
  /** Bumped by every invalidation; a lookup keeps its answer only if none happened while it ran. */
  let generation = 0;
  const registers = options.metrics ? [options.metrics.registry] : [];
  const lookups = new Counter({ name: `${options.name}_cache_lookups_total`, help: `${options.name} cache lookups by result (hit, miss, bypass: not listening)`, labelNames: ['result'], registers });
  const invalidations = new Counter({ name: `${options.name}_cache_invalidations_total`, help: `${options.name} cache clears: a source row changed, or the listening connection went down or came back`, registers });

  const invalidate = (payload: string) => {
    generation++;
    entries.clear();
    invalidations.inc();
    options.onInvalidate?.(payload);
  };
  const listener: Listener = await listen({
    connectionString: options.connectionString,
    channel: options.channel,
    applicationName: `projectx-${options.name}-cache`,
    logger: options.logger,
    onNotify: invalidate,
    onState: () => invalidate(''),
    ...(options.reconnectAfterMs !== undefined ? { minBackoffMs: options.reconnectAfterMs } : {}),
    ...(options.ping ? { pingIntervalMs: options.ping.intervalMs, pingTimeoutMs: options.ping.timeoutMs } : {}),
  });

  return {
    async get(key, load) {
      if (!listener.listening) {
        lookups.inc({ result: 'bypass' });
        return load();
      }
      const cached = entries.get(key);
      if (cached && cached.expiresAt > now()) {
        lookups.inc({ result: 'hit' });
        return cached.value;
      }
      lookups.inc({ result: 'miss' });
      const started = generation;
      const value = await load();
      if (value !== undefined && generation === started && listener.listening) {
        entries.delete(key);
        entries.set(key, { value, expiresAt: now() + ttlMs });
        if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
      }
      return value;
    },
    close: () => listener.close(),
  };
}
