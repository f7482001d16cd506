/**
 * Writes to connected systems, waiting their turn (src/connectors/sdk/push.ts): one row per change to send,
 * sent strictly in order per instance; while an instance's write circuit is open they wait here (degraded
 * mode), none lost. A domain event makes at most one push per operation (the unique index), however often its
 * routing job runs. Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('integration_pushes')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('config_id', 'uuid', (col) => col.notNull().references('integration_configs.id').onDelete('cascade'))
    .addColumn('operation', 'text', (col) => col.notNull())
    .addColumn('record_key', 'text', (col) => col.notNull())
    .addColumn('payload', 'jsonb', (col) => col.notNull())
    .addColumn('source_event_id', 'text')
    .addColumn('status', 'text', (col) => col.notNull().defaultTo('pending').check(sql`status in ('pending', 'sent', 'failed')`))
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('last_error', 'jsonb')
    .addColumn('result', 'jsonb')
    .addColumn('correlation_id', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('integration_pushes_pending_idx').on('integration_pushes').columns(['config_id', 'id']).where(sql.ref('status'), '=', 'pending').execute();
  await sql`create unique index integration_pushes_event_operation_key on integration_pushes (config_id, source_event_id, operation) where source_event_id is not null`.execute(db);
  // The runbook: credentials refused twice in a row page the on-call route (change it with `projectx routing`).
  await db.insertInto('notification_rules').values({ event_pattern: 'integration.auth_failing', target_kind: 'channel', surface: 'slack', target: 'oncall' }).execute();
  // One review task per P1 incident of a connected system, however often its event is routed.
  await sql`create unique index task_links_connector_review_key on task_links (target) where kind = 'external' and target like 'servicenow-review:%'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists task_links_connector_review_key`.execute(db);
  await db.deleteFrom('notification_rules').where('event_pattern', '=', 'integration.auth_failing').execute();
  await db.schema.dropTable('integration_pushes').execute();
}
