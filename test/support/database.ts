/**
 * A database of this test file's own, cloned from the run's migrated template (see test/global-setup.ts).
 *
 * @example
 * const tdb = await createTestDatabase();
 * afterAll(() => tdb.drop());
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { type Db, createDatabase } from '../../src/db/database.ts';
import { databaseUrl } from './database-url.ts';

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  drop(): Promise<void>;
}

export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const { adminUrl, template, prefix } = inject('postgres');
  const name = `${prefix}${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    // CREATE DATABASE … TEMPLATE fails (55006) while another session copies the same template: take turns.
    await client.query('select pg_advisory_lock(hashtext($1))', [template]);
    await client.query(options.empty ? `create database "${name}"` : `create database "${name}" template "${template}"`);
    await client.query('select pg_advisory_unlock(hashtext($1))', [template]);
  } finally {
    await client.end();
  }
  const url = databaseUrl(adminUrl, name);
  const db = createDatabase({ connectionString: url, max: 5 });
  return {
    name,
    url,
    db,
    async drop() {
      await db.destroy();
      const dropper = new pg.Client({ connectionString: adminUrl });
      await dropper.connect();
      try {
        await dropper.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end();
      }
    },
  };
}
