/**
 * The kysely instance over a pg pool. Built once by the composition root and passed to whoever needs it;
 * nothing imports a database singleton.
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from '../logger.ts';
import type { Database } from './schema.ts';

export type Db = Kysely<Database>;

export interface DatabaseOptions {
  connectionString: string;
  /** Pool size; the web role's request path and the worker's handlers share it. */
  max?: number;
  applicationName?: string;
  logger?: Logger;
}

// int8 (bigserial ids, count(*)) as string is pg's safe default; keep it, but parse numeric counts explicitly.
export function createDatabase(options: DatabaseOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'projectx',
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  // An idle client losing its connection (server restart, network) must not crash the process.
  pool.on('error', (error) => options.logger?.warn({ err: error }, 'idle database connection failed'));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}
