/**
 * The identity cache on the chat request path: answers from memory, and is never staler than a NOTIFY. Role
 * changes, deactivation and unlinking take effect once the notification arrives; while the LISTEN connection
 * is down every lookup goes to the database; a lookup that raced a change is not kept.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import type { ChatIdentity } from '../../src/domain/actor.ts';
import { IDENTITY_CHANNEL, type IdentityDirectory, createIdentityCache } from '../../src/domain/identity-cache.ts';
import { type User, findUserByIdentity, linkIdentity, setRoles } from '../../src/domain/users.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { captureLogs } from '../support/logs.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

describe('identity cache', () => {
  let fx: DomainFixture;
  let metrics: Metrics;
  let cache: IdentityDirectory;
  /** Lookups held until released (for the race test); all others pass straight through. */
  const held = new Map<string, () => void>();
  let loads = 0;
  const load = async (db: Db, identity: ChatIdentity): Promise<User | undefined> => {
    loads++;
    const user = await findUserByIdentity(db, identity);
    const gate = held.get(identity.externalId);
    if (gate) await new Promise<void>((resolve) => held.set(identity.externalId, resolve)).then(() => undefined, gate);
    return user;
  };

  const counter = async (name: string, labels: Record<string, string> = {}) => {
    const metric = await metrics.registry.getSingleMetric(name)?.get();
    return (metric?.values ?? []).filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value)).reduce((sum, v) => sum + v.value, 0);
  };
  const lookups = (result: string) => counter('identity_cache_lookups_total', { result });

  let n = 0;
  async function linkedUser(roles: User['roles'] = ['approver']): Promise<{ user: User; identity: ChatIdentity }> {
    const user = await fx.user({ roles });
    const identity: ChatIdentity = { surface: 'slack', tenant: 'T-CACHE', externalId: `UCACHE${n++}` };
    const linked = await linkIdentity(fx.tdb.db, user.id, identity, 'test');
    if (!linked.ok) throw new Error(linked.refusal.message);
    return { user, identity };
  }

  /** Waits until every notification sent so far has been handled: they arrive in order, so a marker sent last. */
  const seen: string[] = [];
  async function settleNotifications() {
    const marker = `marker-${n++}`;
    await sql`select pg_notify(${IDENTITY_CHANNEL}, ${marker})`.execute(fx.tdb.db);
    await expect.poll(() => seen.includes(marker), { timeout: 10_000 }).toBe(true);
  }

  beforeAll(async () => {
    fx = await domainFixture();
    metrics = createMetrics({ defaultMetrics: false });
    cache = await createIdentityCache({ db: fx.tdb.db, connectionString: fx.tdb.url, logger: captureLogs().logger, metrics, load, reconnectAfterMs: 50, onInvalidate: (payload) => seen.push(payload) });
  });
  afterAll(async () => {
    await cache.close();
    await fx.close();
  });

  it('answers a repeated lookup from memory, without a query', async () => {
    const { user, identity } = await linkedUser();
    await settleNotifications();
    const [hitsBefore, loadsBefore] = [await lookups('hit'), loads];
    expect((await cache.resolve(identity))?.id).toBe(user.id);
    expect((await cache.resolve(identity))?.id).toBe(user.id);
    expect((await cache.resolve(identity))?.roles).toEqual(['approver']);
    expect(loads - loadsBefore).toBe(1);
    expect((await lookups('hit')) - hitsBefore).toBe(2);
  });

  it('sees a revoked role, a deactivated user and an unlinked identity as soon as the change is notified', async () => {
    const { user, identity } = await linkedUser(['approver']);
    await settleNotifications();
    expect((await cache.resolve(identity))?.roles).toEqual(['approver']);

    await setRoles(fx.tdb.db, user.id, ['viewer']);
    await expect.poll(async () => (await cache.resolve(identity))?.roles, { timeout: 10_000 }).toEqual(['viewer']);

    await fx.tdb.db.updateTable('users').set({ active: false }).where('id', '=', user.id).execute();
    await expect.poll(() => cache.resolve(identity), { timeout: 10_000 }).toBeUndefined();

    const other = await linkedUser();
    expect(await cache.resolve(other.identity)).toBeDefined();
    await fx.tdb.db.deleteFrom('identity_links').where('external_id', '=', other.identity.externalId).execute();
    await expect.poll(() => cache.resolve(other.identity), { timeout: 10_000 }).toBeUndefined();
  });

  it('does not keep an answer read before a change that was notified while the lookup ran', async () => {
    const { user, identity } = await linkedUser(['approver']);
    await settleNotifications();
    const placeholder = () => undefined;
    held.set(identity.externalId, placeholder);
    const inFlight = cache.resolve(identity); // reads the old roles, then waits
    // The load replaces the placeholder with its own release once it has read.
    await expect.poll(() => held.get(identity.externalId) !== placeholder).toBe(true);
    await setRoles(fx.tdb.db, user.id, ['viewer']);
    await settleNotifications();
    held.get(identity.externalId)?.();
    held.delete(identity.externalId);
    expect((await inFlight)?.roles).toEqual(['approver']); // it read before the change: that answer is for its own request only
    expect((await cache.resolve(identity))?.roles).toEqual(['viewer']);
  });

  it('queries every time while the LISTEN connection is down, and caches again once it is back', async () => {
    const { user, identity } = await linkedUser(['approver']);
    await settleNotifications();
    await cache.resolve(identity);
    const bypassBefore = await lookups('bypass');
    const admin = new pg.Client({ connectionString: fx.tdb.url });
    await admin.connect();
    try {
      const killed = await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'projectx-identity-cache' and datname = current_database()");
      expect(killed.rowCount).toBe(1);
      // The loss is noticed, the cache is cleared, and lookups bypass it until LISTEN is back.
      await expect.poll(async () => (await cache.resolve(identity), (await lookups('bypass')) > bypassBefore), { timeout: 10_000 }).toBe(true);
      await expect.poll(async () => (await admin.query("select count(*)::int as n from pg_stat_activity where application_name = 'projectx-identity-cache' and datname = current_database() and state = 'idle' and query ilike 'listen%'")).rows[0].n, { timeout: 10_000 }).toBe(1);
      await setRoles(fx.tdb.db, user.id, ['responder']);
      await settleNotifications(); // listening again, and the change seen
      expect((await cache.resolve(identity))?.roles).toEqual(['responder']);
      const hitsBefore = await lookups('hit');
      await cache.resolve(identity);
      expect(await lookups('hit')).toBe(hitsBefore + 1);
    } finally {
      await admin.end();
    }
  });

  it('hands out frozen users, so no caller can change what others are served', async () => {
    const { identity } = await linkedUser(['approver']);
    await settleNotifications();
    await cache.resolve(identity);
    const cached = await cache.resolve(identity);
    expect(() => cached!.roles.push('admin')).toThrow(TypeError);
    expect((await cache.resolve(identity))?.roles).toEqual(['approver']);
  });

  it('treats a LISTEN connection that stops answering (half-open) as lost: lookups query until it is back', async () => {
    const direct = new URL(fx.tdb.url);
    const proxy = await startTcpProxy({ host: direct.hostname, port: Number(direct.port) });
    const viaProxy = new URL(fx.tdb.url);
    viaProxy.port = String(proxy.port);
    const own = createMetrics({ defaultMetrics: false });
    const guarded = await createIdentityCache({ db: fx.tdb.db, connectionString: viaProxy.toString(), logger: captureLogs().logger, metrics: own, ping: { intervalMs: 100, timeoutMs: 300 }, reconnectAfterMs: 50 });
    const count = async (result: string) => ((await own.registry.getSingleMetric('identity_cache_lookups_total')?.get())?.values ?? []).filter((v) => v.labels.result === result).reduce((sum, v) => sum + v.value, 0);
    try {
      const { identity } = await linkedUser();
      await expect.poll(async () => (await guarded.resolve(identity), count('hit')), { timeout: 10_000 }).toBeGreaterThan(0);
      proxy.freeze(); // no error, no end, no notifications: only the ping notices
      await expect.poll(async () => (await guarded.resolve(identity), count('bypass')), { timeout: 10_000 }).toBeGreaterThan(0);
      // It reconnects (a new connection through the proxy flows) and serves from memory again.
      const hits = await count('hit');
      await expect.poll(async () => (await guarded.resolve(identity), count('hit')), { timeout: 10_000 }).toBeGreaterThan(hits);
    } finally {
      await guarded.close();
      await proxy.close();
    }
  });
});

