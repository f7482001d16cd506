/**
 * Slack: installations per enterprise/team (tokens encrypted at rest), the messages we posted (so a retried
 * post is not posted twice, and every message showing a task or incident can be re-rendered), and the
 * per-channel pacing slot (Slack allows about one message per second per channel).
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('slack_installations')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    // '' when absent, so the unique key works for workspace and org-wide installs alike.
    .addColumn('enterprise_id', 'text', (col) => col.notNull().defaultTo(''))
    .addColumn('team_id', 'text', (col) => col.notNull().defaultTo(''))
    .addColumn('is_enterprise_install', 'boolean', (col) => col.notNull().defaultTo(false))
    .addColumn('app_id', 'text')
    .addColumn('bot_user_id', 'text')
    .addColumn('bot_id', 'text')
    .addColumn('scopes', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('bot_token', 'jsonb', (col) => col.notNull())
    .addColumn('refresh_token', 'jsonb')
    .addColumn('token_expires_at', 'timestamptz')
    .addColumn('installed_by', 'text')
    .addColumn('installed_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .addUniqueConstraint('slack_installations_enterprise_team_key', ['enterprise_id', 'team_id'])
    .execute();

  await db.schema
    .createTable('slack_messages')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('message_key', 'text', (col) => col.notNull())
    // The target as routed (an id, or a name like alerts-servicenow) and the id Slack answered with.
    .addColumn('channel', 'text', (col) => col.notNull())
    .addColumn('channel_id', 'text')
    .addColumn('ts', 'text')
    .addColumn('status', 'text', (col) => col.notNull().check(sql`status in ('posting', 'posted')`))
    .addColumn('subject_kind', 'text')
    .addColumn('subject_id', 'text')
    .addColumn('attempt_started_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('slack_messages_key_channel_key', ['message_key', 'channel'])
    .execute();
  await db.schema.createIndex('slack_messages_subject_idx').on('slack_messages').columns(['subject_kind', 'subject_id']).execute();

  // What a notification is about, so a surface can render it fresh and re-render it when it changes.
  await db.schema.alterTable('notifications').addColumn('subject_kind', 'text').execute();
  await db.schema.alterTable('notifications').addColumn('subject_id', 'text').execute();

  // Quieter defaults than 0200's, now that posted messages are re-rendered in place: the alerts channel gets new
  // P1/P2 incidents, the compliance channel approval requests and decisions (and evidence), not every change.
  await db.deleteFrom('notification_rules').where('target_kind', '=', 'channel').where('event_pattern', 'in', ['incident.*', 'task.*']).execute();
  await db
    .insertInto('notification_rules')
    .values([
      { event_pattern: 'incident.created', max_priority: 2, target_kind: 'channel', surface: 'slack', target: 'alerts-servicenow' },
      { event_pattern: 'task.approval_requested', target_kind: 'channel', surface: 'slack', target: 'compliance-delivery' },
      { event_pattern: 'task.decided', target_kind: 'channel', surface: 'slack', target: 'compliance-delivery' },
    ])
    .execute();

  await db.schema
    .createTable('slack_channel_pacing')
    .addColumn('channel', 'text', (col) => col.primaryKey())
    .addColumn('next_at', 'timestamptz', (col) => col.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('notifications').dropColumn('subject_kind').dropColumn('subject_id').execute();
  for (const table of ['slack_channel_pacing', 'slack_messages', 'slack_installations']) await db.schema.dropTable(table).ifExists().execute();
}
