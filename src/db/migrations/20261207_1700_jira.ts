/**
 * Jira (issue 15): what a remediation task keeps of the issue it mirrors, and the connector's own state.
 *
 * - `tasks.labels`: the issue's labels (any task may carry labels; Jira's are mirrored as they are).
 * - `tasks.external_assignee`: who the connected system says is assigned when that person is no ProjectX user
 *   (an email or a display name), kept as text; `assignee_id` stays null then.
 * - `task_links` for an issue: kind `external`, target `jira:<instance name>:issue:<issue id>`, unique, so that two
 *   runs (or a pull and a push's answer) cannot link one issue to two tasks.
 * - `task_links` kind `program`: the programme a task belongs to (a Jira epic mapped to a programme).
 * - `integration_authorizations`: what an admin's OAuth consent (authorization code, 3LO) gave an instance: the
 *   refresh token (a Keyring envelope: it rotates at every refresh), the resource it opens (Jira's cloud id and
 *   site), the scopes, and since when it needs the consent again (a refused refresh).
 * - `integration_authorize_links`: single-use links an admin opens to give that consent
 *   (`projectx connectors authorize <connector>`); only the SHA-256 of a link's token is kept.
 * - `integration_rate_limits`: until when a connected system refuses every call of an instance (Jira's quota
 *   limits), so that every job and process of the instance waits instead of calling.
 * - Routing defaults: a critical epic done (`task.epic_completed`) to #compliance-delivery; a sprint closed with
 *   remediation left open (`integration.sprint_closed`) to its programme owners' DMs (the event names them as
 *   `approverIds`). Other surfaces (Teams,
 *   email) by `projectx routing add`.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('tasks')
    .addColumn('labels', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('external_assignee', 'text')
    .execute();
  await sql`alter table task_links drop constraint task_links_kind_check`.execute(db);
  await sql`alter table task_links add constraint task_links_kind_check check (kind in ('control', 'incident', 'external', 'program'))`.execute(db);
  await sql`create unique index task_links_jira_issue_key on task_links (target) where kind = 'external' and target like 'jira:%'`.execute(db);
  await db.schema
    .createTable('integration_authorizations')
    .addColumn('config_id', 'uuid', (col) => col.primaryKey().references('integration_configs.id').onDelete('cascade'))
    .addColumn('refresh_token', 'jsonb', (col) => col.notNull())
    .addColumn('resource_id', 'text', (col) => col.notNull())
    .addColumn('resource_url', 'text', (col) => col.notNull())
    .addColumn('scopes', 'text', (col) => col.notNull())
    .addColumn('authorized_by', 'text', (col) => col.notNull())
    .addColumn('authorized_at', 'timestamptz', (col) => col.notNull())
    .addColumn('refreshed_at', 'timestamptz')
    .addColumn('needs_reauth_since', 'timestamptz')
    .addColumn('reauth_reason', 'text')
    .execute();
  await db.schema
    .createTable('integration_authorize_links')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('config_id', 'uuid', (col) => col.notNull().references('integration_configs.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (col) => col.notNull().unique())
    .addColumn('created_by', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz')
    .execute();
  await db.schema
    .createTable('integration_rate_limits')
    .addColumn('config_id', 'uuid', (col) => col.primaryKey().references('integration_configs.id').onDelete('cascade'))
    .addColumn('until', 'timestamptz', (col) => col.notNull())
    .addColumn('reason', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db
    .insertInto('notification_rules')
    .values([
      { event_pattern: 'task.epic_completed', target_kind: 'channel', surface: 'slack', target: 'compliance-delivery' },
      { event_pattern: 'integration.sprint_closed', target_kind: 'approvers_dm', surface: 'slack', target: null },
    ])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('notification_rules').where('event_pattern', 'in', ['task.epic_completed', 'integration.sprint_closed']).execute();
  await db.schema.dropTable('integration_rate_limits').execute();
  await db.schema.dropTable('integration_authorize_links').execute();
  await db.schema.dropTable('integration_authorizations').execute();
  await sql`drop index if exists task_links_jira_issue_key`.execute(db);
  await sql`delete from task_links where kind = 'program'`.execute(db);
  await sql`alter table task_links drop constraint task_links_kind_check`.execute(db);
  await sql`alter table task_links add constraint task_links_kind_check check (kind in ('control', 'incident', 'external'))`.execute(db);
  await db.schema.alterTable('tasks').dropColumn('labels').dropColumn('external_assignee').execute();
}
