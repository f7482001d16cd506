/**
 * Microsoft Teams: the conversations the bot may write to (a conversation reference stored on install, on the
 * bot being added, or on any activity), the messages it posted (idempotent by message key and conversation,
 * with the activity id that later updates use), the Teams user ids (MRIs, `29:…`) seen for Entra users (a card's
 * `refresh.userIds` names approvers by them), and a short log of sends per conversation for pacing (Teams
 * allows a bot 7 messages a second and 60 in 30 seconds per conversation).
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('teams_conversations')
    .addColumn('conversation_id', 'text', (col) => col.primaryKey())
    .addColumn('tenant_id', 'text', (col) => col.notNull())
    .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('personal', 'groupChat', 'channel')`))
    // The team (channels), its channel's name when Teams said it, and the person of a personal chat.
    .addColumn('team_id', 'text')
    .addColumn('channel_name', 'text')
    .addColumn('user_aad_object_id', 'text')
    .addColumn('reference', 'jsonb', (col) => col.notNull())
    .addColumn('active', 'boolean', (col) => col.notNull().defaultTo(true))
    .addColumn('inactive_reason', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('teams_conversations_personal_idx').on('teams_conversations').columns(['tenant_id', 'user_aad_object_id']).where(sql.ref('kind'), '=', 'personal').execute();
  await db.schema
    .createTable('teams_messages')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('message_key', 'text', (col) => col.notNull())
    .addColumn('conversation_id', 'text', (col) => col.notNull())
    // posting: an attempt is under way or was cut off before Teams answered; unknown: Teams' answer was lost.
    .addColumn('status', 'text', (col) => col.notNull().check(sql`status in ('posting', 'posted', 'unknown')`))
    .addColumn('activity_id', 'text')
    .addColumn('subject_kind', 'text')
    .addColumn('subject_id', 'text')
    .addColumn('attempt_started_at', 'timestamptz', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('teams_messages_key_conversation_key', ['message_key', 'conversation_id'])
    .execute();
  await db.schema.createIndex('teams_messages_subject_idx').on('teams_messages').columns(['subject_kind', 'subject_id']).execute();
  await db.schema
    .createTable('teams_users')
    .addColumn('tenant_id', 'text', (col) => col.notNull())
    .addColumn('aad_object_id', 'text', (col) => col.notNull())
    .addColumn('mri', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('teams_users_pkey', ['tenant_id', 'aad_object_id'])
    .execute();
  await db.schema
    .createTable('teams_send_log')
    .addColumn('conversation_id', 'text', (col) => col.notNull())
    .addColumn('sent_at', 'timestamptz', (col) => col.notNull())
    .execute();
  await db.schema.createIndex('teams_send_log_conversation_idx').on('teams_send_log').columns(['conversation_id', 'sent_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('teams_send_log').execute();
  await db.schema.dropTable('teams_users').execute();
  await db.schema.dropTable('teams_messages').execute();
  await db.schema.dropTable('teams_conversations').execute();
}
