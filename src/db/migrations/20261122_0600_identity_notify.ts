/**
 * Processes cache "which user is this chat identity" (src/domain/identity-cache.ts). Any change to users or
 * identity links notifies them, from the committing transaction, so a revoked role or an unlink takes effect
 * as soon as the notification arrives. Statement-level: one notification per statement, however many rows.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create function projectx_identity_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('projectx_identity', tg_table_name);
      return null;
    end $$`.execute(db);
  for (const table of ['users', 'identity_links']) {
    await sql`create trigger ${sql.raw(`${table}_identity_notify`)} after insert or update or delete or truncate on ${sql.table(table)} for each statement execute function projectx_identity_changed()`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['users', 'identity_links']) await sql`drop trigger if exists ${sql.raw(`${table}_identity_notify`)} on ${sql.table(table)}`.execute(db);
  await sql`drop function if exists projectx_identity_changed()`.execute(db);
}
