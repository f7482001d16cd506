/** Which PostgreSQL the process uses: `DATABASE_URL`, or the embedded server under `PROJECTX_DATA_DIR` when it is unset. */
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './embedded.ts';

export interface DatabaseHandle {
  url: string;
  /** The embedded server, when `DATABASE_URL` is unset; stop it only when this process started it (not `adopted`). */
  embedded: EmbeddedPostgres | undefined;
}

export async function resolveDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, embedded: undefined };
  logger.info({ dataDir: config.PROJECTX_DATA_DIR }, 'DATABASE_URL is not set: using the embedded PostgreSQL server');
  const embedded = await startEmbeddedPostgres({ dataDir: config.PROJECTX_DATA_DIR, logger });
  return { url: embedded.url, embedded };
}

/** Stops the embedded server if this process started it. */
export async function releaseDatabase(database: DatabaseHandle): Promise<void> {
  if (database.embedded && !database.embedded.adopted) await database.embedded.stop();
}
