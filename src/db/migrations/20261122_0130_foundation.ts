/**
 * Foundation tables: the integration runbook's schema (INT-001) and the inbound delivery log.
 * Frozen in time: never import application code here, never edit after release; add a new migration instead.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('integration_configs')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('environment', 'text', (col) => col.notNull().defaultTo('production'))
    .addColumn('enabled', 'boolean', (col) => col.notNull().defaultTo(false))
    .addColumn('settings', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('credentials', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('scopes', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('schedules', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('version', 'integer', (col) => col.notNull().defaultTo(1))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('integration_configs_type_name_environment_key', ['type', 'name', 'environment'])
    .execute();

  await db.schema
    .createTable('integration_runs')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('config_id', 'uuid', (col) => col.references('integration_configs.id').onDelete('cascade'))
    .addColumn('model', 'text')
    .addColumn('trigger', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) =>
      col.notNull().check(sql`status in ('running', 'succeeded', 'partial', 'failed', 'cancelled')`),
    )
    .addColumn('started_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addColumn('counts', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('error_codes', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('latency_ms', 'integer')
    .addColumn('cursor_before', 'jsonb')
    .addColumn('cursor_after', 'jsonb')
    .addColumn('payload_hashes', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('correlation_id', 'text')
    .execute();
  await db.schema.createIndex('integration_runs_config_started_idx').on('integration_runs').columns(['config_id', 'started_at']).execute();

  await db.schema
    .createTable('integration_events')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('config_id', 'uuid', (col) => col.references('integration_configs.id').onDelete('set null'))
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('direction', 'text', (col) => col.notNull().check(sql`direction in ('inbound', 'outbound')`))
    .addColumn('event_type', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text')
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('payload', 'jsonb')
    .addColumn('result', 'jsonb')
    .addColumn('error', 'jsonb')
    .addColumn('correlation_id', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('processed_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('integration_events_source_created_idx').on('integration_events').columns(['source', 'created_at']).execute();

  await db.schema
    .createTable('integration_credentials_audit')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('config_id', 'uuid', (col) => col.references('integration_configs.id').onDelete('set null'))
    .addColumn('action', 'text', (col) => col.notNull())
    .addColumn('actor', 'text', (col) => col.notNull())
    .addColumn('key_id', 'text')
    .addColumn('detail', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('integration_health_metrics')
    .addColumn('config_id', 'uuid', (col) => col.primaryKey().references('integration_configs.id').onDelete('cascade'))
    .addColumn('status', 'text', (col) =>
      col.notNull().defaultTo('unknown').check(sql`status in ('unknown', 'healthy', 'degraded', 'down')`),
    )
    .addColumn('last_run_at', 'timestamptz')
    .addColumn('last_success_at', 'timestamptz')
    .addColumn('last_error_at', 'timestamptz')
    .addColumn('last_error_code', 'text')
    .addColumn('consecutive_failures', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('sync_lag_seconds', 'integer')
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('inbound_events')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('delivery_id', 'text', (col) => col.notNull())
    .addColumn('kind', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) =>
      col.notNull().defaultTo('received').check(sql`status in ('received', 'processed', 'failed', 'quarantined')`),
    )
    .addColumn('headers', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('body', 'bytea', (col) => col.notNull())
    .addColumn('result', 'jsonb')
    .addColumn('error', 'jsonb')
    .addColumn('correlation_id', 'text')
    .addColumn('received_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('processed_at', 'timestamptz')
    .addUniqueConstraint('inbound_events_source_delivery_id_key', ['source', 'delivery_id'])
    .execute();
  await db.schema.createIndex('inbound_events_received_at_idx').on('inbound_events').column('received_at').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'inbound_events',
    'integration_health_metrics',
    'integration_credentials_audit',
    'integration_events',
    'integration_runs',
    'integration_configs',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
