import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { migrations } from '../../src/db/migrations/index.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';

describe('migrations', () => {
  let empty: TestDatabase;
  beforeAll(async () => {
    empty = await createTestDatabase({ empty: true });
  });
  afterAll(() => empty.drop());

  it('apply once under two concurrent migrators, and are idempotent after', async () => {
    const second = createDatabase({ connectionString: empty.url, max: 2 });
    try {
      const [a, b] = await Promise.all([migrateToLatest(empty.db), migrateToLatest(second)]);
      const all = Object.keys(migrations).sort();
      // Exactly one of the two applied each migration; the other found nothing to do.
      expect([...a.applied, ...b.applied].sort()).toEqual(all);
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(empty.db);
      expect(rows.map((row) => row.name)).toEqual(all);

      expect((await migrateToLatest(empty.db)).applied).toEqual([]);
      const again = await sql<{ count: string }>`select count(*) as count from kysely_migration`.execute(empty.db);
      expect(Number(again.rows[0]?.count)).toBe(all.length);
    } finally {
      await second.destroy();
    }
  });

  it('create the foundation tables', async () => {
    const { rows } = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = 'public' order by table_name`.execute(empty.db);
    expect(rows.map((row) => row.table_name)).toEqual(
      expect.arrayContaining([
        'inbound_events',
        'integration_configs',
        'integration_credentials_audit',
        'integration_events',
        'integration_health_metrics',
        'integration_runs',
      ]),
    );
  });

  it('keep inbound deliveries unique per source and delivery id', async () => {
    const row = { source: 'slack', delivery_id: 'Ev123', kind: 'event_callback', body: Buffer.from('{}') };
    await empty.db.insertInto('inbound_events').values(row).execute();
    await empty.db.insertInto('inbound_events').values({ ...row, source: 'webhook:acme' }).execute();
    await expect(empty.db.insertInto('inbound_events').values(row).execute()).rejects.toMatchObject({ code: '23505' });
  });

  it('each have a down that undoes them', () => {
    for (const [name, migration] of Object.entries(migrations)) expect(typeof migration.down, name).toBe('function');
  });
});
