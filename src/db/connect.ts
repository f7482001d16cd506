/** Which PostgreSQL the process uses: `DATABASE_URL`, or the embedded server under `PROJECTX_DATA_DIR` when it is unset. */
import pg from 'pg';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded.ts';

export interface DatabaseHandle {
  url: string;
  /** The embedded server, when `DATABASE_URL` is unset; stop it only when this process started it (not `adopted`). */
  embedded: EmbeddedPostgres | undefined;
}

export async function resolveDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) {
    await probeDatabase(config.DATABASE_URL);
    return { url: config.DATABASE_URL, embedded: undefined };
  }
  logger.info({ dataDir: config.PROJECTX_DATA_DIR }, 'DATABASE_URL is not set: using the embedded PostgreSQL server');
  const embedded = await startEmbeddedPostgres({ dataDir: config.PROJECTX_DATA_DIR, logger });
  return { url: embedded.url, embedded };
}

/** Stops the embedded server if this process started it. */
export async function releaseDatabase(database: DatabaseHandle): Promise<void> {
  if (database.embedded && !database.embedded.adopted) await database.embedded.stop();
}

/** The database named by `DATABASE_URL` cannot be used: unreachable, or it refused us. Names the variable, never the password. */
export class DatabaseUnavailable extends Error {
  readonly code = 'database_unavailable';
}

/** `postgres://user:****@host:port/db`: a connection string fit for a message (the password masked). */
export function redactDatabaseUrl(url: string): string {
  if (!URL.canParse(url)) return '(not a URL)';
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '****';
  for (const key of [...parsed.searchParams.keys()]) if (/pass|secret|key/i.test(key)) parsed.searchParams.set(key, '****');
  return parsed.toString();
}

/**
 * One connection to `url` before anything else uses it, so that a wrong host, port, password or database name
 * fails start-up with a message that names `DATABASE_URL` and says which of those it is, instead of the first
 * query's bare "ECONNREFUSED" deep inside the migrations.
 */
export async function probeDatabase(url: string, timeoutMs = 10_000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  // An error after connecting (the server going away) must not crash the process while we close.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const detail = error instanceof Error ? error.message : String(error);
    const where = `the database named by DATABASE_URL (${redactDatabaseUrl(url)})`;
    // 28P01/28000: credentials refused; 3D000: no such database; anything else: not reachable.
    const what = code === '28P01' || code === '28000' ? `${where} refused the credentials in DATABASE_URL` : code === '3D000' ? `${where} does not exist on that server` : `cannot reach ${where}`;
    throw new DatabaseUnavailable(`${what}: ${detail}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A failure that says nothing about the request: the database or the queue is unavailable, a serialization
 * conflict or deadlock, a full write queue. The request may succeed when retried.
 */
export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return /^(08|53|57P|40001|40P01)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'batcher_full'].includes(code);
}
