/**
 * An audit append is one statement (src/domain/audit.ts): the tenant's head row moves to the new row's
 * sequence number and hash, computed from the head as it is (ON CONFLICT DO UPDATE sees the newest committed
 * head), and the row is inserted from what that returns. PostgreSQL 15 cannot return a row's old values from
 * an UPDATE, so the head keeps the hash it replaced (`prev_hash`), which becomes the new row's link.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('audit_heads').addColumn('prev_hash', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('audit_heads').dropColumn('prev_hash').execute();
}
