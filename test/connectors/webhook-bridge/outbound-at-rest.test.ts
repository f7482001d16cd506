/**
 * Subscription URLs written in plaintext before they were encrypted at rest: migration 20261207_1000 shows them as
 * origin plus hash at once, and a process that starts with the key encrypts them (a migration has no key to do it
 * with), after which no column of the table holds the URL's token. On a database of its own, migrated up to the
 * migration before and then on.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { Keyring, isEnvelope } from '../../../src/connectors/sdk/crypto.ts';
import { subscriptionSecretAad, subscriptionUrl } from '../../../src/connectors/webhook-bridge/outbound/subscriptions.ts';
import { migrateToLatest } from '../../../src/db/migrate.ts';
import { migrations } from '../../../src/db/migrations/index.ts';
import { startService } from '../../../src/main.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';

const MIGRATION = '20261207_1000_subscription_urls_email_bodies';
const KEY = randomBytes(32);
const keyring = new Keyring([{ id: 'k1', key: KEY }]);
const shown = (url: string) => `${new URL(url).origin}/…#${createHash('sha256').update(url).digest('hex').slice(0, 8)}`;

let tdb: TestDatabase;
beforeAll(async () => {
  tdb = await createTestDatabase({ empty: true });
});
afterAll(() => tdb?.drop());

describe('subscription URLs stored before encryption', () => {
  it('are shown as origin and hash after the migration, and encrypted when a process starts with the key', async () => {
    const names = Object.keys(migrations).sort();
    expect(names).toContain(MIGRATION);
    const result = await new Migrator({ db: tdb.db, provider: { getMigrations: () => Promise.resolve(migrations) } }).migrateTo(names[names.indexOf(MIGRATION) - 1]!);
    expect(result.error).toBeUndefined();

    const token = `tok_${randomBytes(12).toString('hex')}`;
    const url = `https://hooks.example.com/services/${token}`;
    const id = randomUUID();
    // As the code before this migration wrote it.
    await sql`insert into webhook_subscriptions (id, url, event_types, secret) values (${id}, ${url}, ${['task.*']}::text[], ${JSON.stringify(keyring.encrypt('whsec_x', subscriptionSecretAad(id)))}::jsonb)`.execute(tdb.db);

    await migrateToLatest(tdb.db);
    const migrated = await tdb.db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(migrated).toMatchObject({ url, url_encrypted: null, url_display: shown(url) });
    // Until then it still delivers.
    expect(subscriptionUrl(keyring, migrated)).toBe(url);

    const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', PROJECTX_ENCRYPTION_KEY: `k1:${KEY.toString('base64')}` });
    if (!config.ok) throw new Error(config.problems.join('; '));
    const logs = captureLogs({ level: 'info' });
    const service = await startService({ config: config.config, role: 'worker', logger: logs.logger });
    await service.stop();

    const sealed = await tdb.db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(sealed).toMatchObject({ url: null, url_display: shown(url) });
    expect(isEnvelope(sealed.url_encrypted)).toBe(true);
    expect(subscriptionUrl(keyring, sealed)).toBe(url);
    const dump = await sql<{ row: string }>`select t::text as row from webhook_subscriptions t`.execute(tdb.db);
    expect(dump.rows.map((row) => row.row).join('\n')).not.toContain(token);
    expect(logs.lines()).toContainEqual(expect.objectContaining({ msg: 'encrypted 1 subscription URL(s) stored in plaintext', encrypted: 1 }));
  });
});
