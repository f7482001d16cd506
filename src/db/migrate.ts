/**
 * Applies our migrations with kysely's Migrator. Kysely takes a PostgreSQL advisory lock around the run, so
 * several processes starting at once against one database migrate once, not twice (shown by a test).
 */
import type { Kysely } from 'kysely';
import { type MigrationResultSet, Migrator } from 'kysely/migration';
import { migrations } from './migrations/index.ts';

export interface MigrationSummary {
  applied: string[];
}

export class MigrationError extends Error {
  readonly code = 'migration_failed';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

export async function migrateToLatest(db: Kysely<any>): Promise<MigrationSummary> {
  const migrator = new Migrator({ db, provider: { getMigrations: () => Promise.resolve(migrations) } });
  const result: MigrationResultSet = await migrator.migrateToLatest();
  if (result.error !== undefined) {
    const failed = result.results?.find((entry) => entry.status === 'Error')?.migrationName;
    const message = result.error instanceof Error ? result.error.message : JSON.stringify(result.error);
    throw new MigrationError(`migration ${failed ?? '(setup)'} failed: ${message}`, { cause: result.error });
  }
  return { applied: (result.results ?? []).filter((entry) => entry.status === 'Success').map((entry) => entry.migrationName) };
}
