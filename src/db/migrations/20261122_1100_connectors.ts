/**
 * The connector framework's state (src/connectors/sdk): where each (instance, model) sync stands, the ledger
 * of every record synced (content hash, so an unchanged record makes no write and no noise), the circuit
 * breaker per (instance, direction) that every worker reads, and cached OAuth tokens (encrypted).
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('integration_sync_state')
    .addColumn('config_id', 'uuid', (col) => col.notNull().references('integration_configs.id').onDelete('cascade'))
    .addColumn('model', 'text', (col) => col.notNull())
    .addColumn('cursor', 'jsonb')
    .addColumn('run_id', 'uuid')
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('integration_sync_state_pkey', ['config_id', 'model'])
    .execute();

  await db.schema
    .createTable('external_records')
    .addColumn('config_id', 'uuid', (col) => col.notNull().references('integration_configs.id').onDelete('cascade'))
    .addColumn('model', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('number', 'text')
    .addColumn('content_hash', 'text', (col) => col.notNull())
    .addColumn('source_updated_at', 'text')
    .addColumn('data', 'jsonb', (col) => col.notNull())
    .addColumn('first_seen_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('missing_since', 'timestamptz')
    .addPrimaryKeyConstraint('external_records_pkey', ['config_id', 'model', 'external_id'])
    .execute();

  await db.schema
    .createTable('integration_circuits')
    .addColumn('config_id', 'uuid', (col) => col.notNull().references('integration_configs.id').onDelete('cascade'))
    .addColumn('direction', 'text', (col) => col.notNull().check(sql`direction in ('read', 'write')`))
    .addColumn('state', 'text', (col) => col.notNull().defaultTo('closed').check(sql`state in ('closed', 'open', 'half_open')`))
    .addColumn('failures', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('opened_at', 'timestamptz')
    .addColumn('probe_at', 'timestamptz')
    .addColumn('last_error_code', 'text')
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('integration_circuits_pkey', ['config_id', 'direction'])
    .execute();

  await db.schema
    .createTable('integration_tokens')
    .addColumn('config_id', 'uuid', (col) => col.primaryKey().references('integration_configs.id').onDelete('cascade'))
    .addColumn('token', 'jsonb', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['integration_tokens', 'integration_circuits', 'external_records', 'integration_sync_state']) await db.schema.dropTable(table).ifExists().execute();
}
