/**
 * A fresh database for one benchmark run: on the server in `DATABASE_URL` when set (dropped afterwards), else
 * on an embedded PostgreSQL in a temp dir with durable settings (fsync on, synchronous commit), migrated and
 * seeded by the caller. Shared by the benchmarks that need PostgreSQL.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type Db, createDatabase } from '../../src/db/database.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import type { Logger } from '../../src/logger.ts';

export interface BenchDatabase {
  url: string;
  /** Where it lives, for the table's heading. */
  where: string;
  close(): Promise<void>;
}

export async function benchDatabase(input: { name: string; logger: Logger; seed?: (db: Db) => Promise<void> }): Promise<BenchDatabase> {
  let adminUrl = process.env.DATABASE_URL;
  let where = 'DATABASE_URL';
  let stopEmbedded = async () => {};
  if (!adminUrl) {
    const dir = await mkdtemp(path.join(tmpdir(), 'projectx-bench-pg-'));
    await chmod(dir, 0o755);
    const embedded = await startEmbeddedPostgres({ dataDir: dir, logger: input.logger, unsafeFast: false, database: 'postgres' });
    adminUrl = embedded.adminUrl;
    where = 'embedded PostgreSQL in a temp dir';
    stopEmbedded = async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }
  await withClient(adminUrl, (client) => client.query(`create database "${input.name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${input.name}`;
  const db = createDatabase({ connectionString: url.toString(), max: 2 });
  try {
    await migrateToLatest(db);
    await input.seed?.(db);
  } finally {
    await db.destroy();
  }
  return {
    url: url.toString(),
    where,
    async close() {
      if (process.env.DATABASE_URL) await withClient(adminUrl, (client) => client.query(`drop database if exists "${input.name}" with (force)`));
      await stopEmbedded();
    },
  };
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** PostgreSQL's durability settings, for the table's notes. */
export async function durabilitySettings(url: string): Promise<string> {
  const settings = await withClient(url, (client) =>
    client.query<{ name: string; setting: string }>("select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes') order by name"),
  );
  return settings.rows.map((s) => `${s.name}=${s.setting}`).join(', ');
}
