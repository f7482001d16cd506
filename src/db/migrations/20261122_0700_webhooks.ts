/**
 * The webhook bridge: partners who post signed webhooks to us (their secrets encrypted, several valid at once
 * during a rotation, and the mapping from their event types to our actions), and subscribers we deliver our
 * domain events to (Standard Webhooks, with every attempt logged). Deliveries we receive live in
 * `inbound_events` (source `webhook:<partner>`), like Slack's.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('webhook_partners')
    .addColumn('key', 'text', (col) => col.primaryKey().check(sql`key ~ '^[a-z0-9][a-z0-9_-]{0,62}$'`))
    .addColumn('scheme', 'text', (col) => col.notNull().check(sql`scheme in ('standard', 'github', 'jira')`))
    .addColumn('mapping', 'jsonb', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable('webhook_partner_secrets')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('partner_key', 'text', (col) => col.notNull().references('webhook_partners.key').onDelete('cascade'))
    .addColumn('secret', 'jsonb', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('webhook_partner_secrets_partner_idx').on('webhook_partner_secrets').column('partner_key').execute();

  await db.schema
    .createTable('webhook_subscriptions')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('url', 'text', (col) => col.notNull())
    .addColumn('event_types', sql`text[]`, (col) => col.notNull())
    .addColumn('secret', 'jsonb', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('enabled', 'boolean', (col) => col.notNull().defaultTo(true))
    .addColumn('disabled_reason', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('subscription_id', 'uuid', (col) => col.notNull().references('webhook_subscriptions.id').onDelete('cascade'))
    .addColumn('message_id', 'text', (col) => col.notNull())
    .addColumn('event_type', 'text', (col) => col.notNull())
    .addColumn('payload', 'jsonb', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull().defaultTo('pending').check(sql`status in ('pending', 'delivered', 'failed', 'abandoned')`))
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz')
    .addColumn('last_status', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addUniqueConstraint('webhook_deliveries_subscription_message_key', ['subscription_id', 'message_id'])
    .execute();
  await db.schema
    .createTable('webhook_delivery_attempts')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('delivery_id', 'uuid', (col) => col.notNull().references('webhook_deliveries.id').onDelete('cascade'))
    .addColumn('attempt', 'integer', (col) => col.notNull())
    .addColumn('attempted_at', 'timestamptz', (col) => col.notNull())
    .addColumn('duration_ms', 'integer', (col) => col.notNull())
    .addColumn('http_status', 'integer')
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('webhook_delivery_attempts_delivery_idx').on('webhook_delivery_attempts').column('delivery_id').execute();

  // Alerts raised by partners (the `notify` action) and about them (repeated signature failures).
  await db
    .insertInto('notification_rules')
    .values([
      { event_pattern: 'partner.alert', target_kind: 'channel', surface: 'slack', target: 'integration-alerts' },
      { event_pattern: 'security.*', target_kind: 'channel', surface: 'slack', target: 'security-alerts' },
    ])
    .execute();

  // Partners are cached by every web process (src/connectors/webhook-bridge/partners.ts): tell them of changes.
  await sql`
    create function projectx_webhook_partners_changed() returns trigger language plpgsql as $$
    begin
      perform pg_notify('projectx_webhook_partners', tg_table_name);
      return null;
    end $$`.execute(db);
  for (const table of ['webhook_partners', 'webhook_partner_secrets']) {
    await sql`create trigger ${sql.raw(`${table}_notify`)} after insert or update or delete or truncate on ${sql.table(table)} for each statement execute function projectx_webhook_partners_changed()`.execute(db);
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('notification_rules').where('event_pattern', 'in', ['partner.alert', 'security.*']).execute();
  for (const table of ['webhook_delivery_attempts', 'webhook_deliveries', 'webhook_subscriptions', 'webhook_partner_secrets', 'webhook_partners']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
  await sql`drop function if exists projectx_webhook_partners_changed()`.execute(db);
}
