/**
 * The evidence pipeline's scan step: each evidence row says how it was scanned (`clean`, `unscanned` when no
 * scanner is configured, `released` when an operator let a quarantined file through), and a file that may not be
 * recorded yet (infected, the scanner unreachable or over its stream limit, a scan required and no scanner) waits
 * in `evidence_quarantine`, its bytes in `evidence_quarantine_chunks` (1 MiB rows: every process can retry or
 * release it, and memory stays flat), until it is recorded, released or deleted.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('evidence')
    .addColumn('scan_status', 'text', (col) => col.notNull().defaultTo('unscanned').check(sql`scan_status in ('clean', 'unscanned', 'released')`))
    .addColumn('scanned_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('evidence_quarantine')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('status', 'text', (col) => col.notNull().defaultTo('held').check(sql`status in ('held', 'recorded', 'deleted')`))
    .addColumn('reason', 'text', (col) => col.notNull().check(sql`reason in ('infected', 'scanner_unavailable', 'scan_limit_exceeded', 'scan_required', 'store_unavailable', 'store_quota_exceeded', 'store_access_denied', 'store_integrity_failed')`))
    .addColumn('signature', 'text')
    .addColumn('sha256', 'text', (col) => col.notNull().check(sql`sha256 ~ '^[0-9a-f]{64}$'`))
    .addColumn('size_bytes', 'bigint', (col) => col.notNull())
    .addColumn('media_type', 'text', (col) => col.notNull())
    .addColumn('original_name', 'text')
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('uploaded_by', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('uploader', 'text', (col) => col.notNull())
    .addColumn('control_ids', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'`))
    .addColumn('task_ids', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'`))
    .addColumn('retention_until', 'timestamptz')
    .addColumn('valid_until', 'timestamptz')
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addColumn('evidence_id', 'uuid', (col) => col.references('evidence.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull())
    .addColumn('resolved_at', 'timestamptz')
    .addColumn('resolved_by', 'text')
    .execute();
  await db.schema.createIndex('evidence_quarantine_due').on('evidence_quarantine').columns(['next_attempt_at']).where(sql.ref('status'), '=', 'held').execute();

  await db.schema
    .createTable('evidence_quarantine_chunks')
    .addColumn('quarantine_id', 'uuid', (col) => col.notNull().references('evidence_quarantine.id').onDelete('cascade'))
    .addColumn('seq', 'integer', (col) => col.notNull())
    .addColumn('data', 'bytea', (col) => col.notNull())
    .addPrimaryKeyConstraint('evidence_quarantine_chunks_pkey', ['quarantine_id', 'seq'])
    .execute();

  // A store that is out of space pauses ingestion into it until an operator resumes it or a retry succeeds.
  await db.schema
    .createTable('evidence_store_state')
    .addColumn('store', 'text', (col) => col.primaryKey())
    .addColumn('paused_at', 'timestamptz')
    .addColumn('reason', 'text')
    .addColumn('message', 'text')
    .addColumn('access_task_id', 'bigint', (col) => col.references('tasks.id').onDelete('set null'))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('evidence_store_state').execute();
  await db.schema.dropTable('evidence_quarantine_chunks').execute();
  await db.schema.dropTable('evidence_quarantine').execute();
  await db.schema.alterTable('evidence').dropColumn('scanned_at').dropColumn('scan_status').execute();
}
