/**
 * The domain model: users and identity links, programs and controls, tasks with approval policies and
 * decisions, incidents, evidence (content-addressed) and its links, notification routing and the notification
 * outbox, and the hash-chained audit log. Frozen in time: add a new migration instead of editing this one.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('users')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('display_name', 'text', (col) => col.notNull())
    .addColumn('roles', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'::text[]`))
    .addColumn('active', 'boolean', (col) => col.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('users_roles_check', sql`roles <@ array['admin', 'approver', 'responder', 'contributor', 'viewer']::text[]`)
    .execute();
  await sql`create unique index users_email_key on users (lower(email))`.execute(db);

  await db.schema
    .createTable('identity_links')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('user_id', 'uuid', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('surface', 'text', (col) => col.notNull().check(sql`surface in ('slack', 'teams', 'email')`))
    // Slack: enterprise id (Grid) or team id; Teams: AAD tenant id; email: ''.
    .addColumn('tenant', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('verified_via', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('identity_links_surface_tenant_external_key', ['surface', 'tenant', 'external_id'])
    .execute();

  await db.schema
    .createTable('link_codes')
    .addColumn('code_hash', 'text', (col) => col.primaryKey())
    .addColumn('surface', 'text', (col) => col.notNull())
    .addColumn('tenant', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('programs')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('controls')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('title', 'text', (col) => col.notNull())
    .addColumn('owner_id', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('program_id', 'text', (col) => col.references('programs.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('incidents')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('source_system', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('number', 'text', (col) => col.notNull())
    .addColumn('priority', 'integer', (col) => col.notNull().check(sql`priority between 1 and 5`))
    .addColumn('state', 'text', (col) => col.notNull())
    .addColumn('short_description', 'text', (col) => col.notNull())
    .addColumn('acknowledged_by', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('acknowledged_at', 'timestamptz')
    .addColumn('content_hash', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('incidents_source_external_key', ['source_system', 'external_id'])
    .addUniqueConstraint('incidents_source_number_key', ['source_system', 'number'])
    .execute();

  await db.schema
    .createTable('tasks')
    .addColumn('id', 'bigint', (col) => col.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('type', 'text', (col) => col.notNull().check(sql`type in ('review', 'remediation', 'approval', 'evidence_request')`))
    .addColumn('title', 'text', (col) => col.notNull())
    .addColumn('description', 'text')
    .addColumn('state', 'text', (col) =>
      col.notNull().defaultTo('open').check(sql`state in ('open', 'in_progress', 'pending_approval', 'approved', 'denied', 'cancelled', 'expired', 'done')`),
    )
    .addColumn('priority', 'text', (col) => col.notNull().defaultTo('normal').check(sql`priority in ('low', 'normal', 'high')`))
    .addColumn('requester_id', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('assignee_id', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('due_at', 'timestamptz')
    .addColumn('approval_policy', 'jsonb')
    .addColumn('version', 'integer', (col) => col.notNull().defaultTo(1))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('tasks_assignee_state_idx').on('tasks').columns(['assignee_id', 'state']).execute();
  await db.schema.createIndex('tasks_state_idx').on('tasks').column('state').execute();

  await db.schema
    .createTable('task_links')
    .addColumn('task_id', 'bigint', (col) => col.notNull().references('tasks.id').onDelete('cascade'))
    .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('control', 'incident', 'external')`))
    // control id, incident id, or `<system>:<external id>`
    .addColumn('target', 'text', (col) => col.notNull())
    .addColumn('url', 'text')
    .addPrimaryKeyConstraint('task_links_pkey', ['task_id', 'kind', 'target'])
    .execute();
  await db.schema.createIndex('task_links_target_idx').on('task_links').columns(['kind', 'target']).execute();

  await db.schema
    .createTable('approval_decisions')
    .addColumn('id', 'bigint', (col) => col.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('task_id', 'bigint', (col) => col.notNull().references('tasks.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (col) => col.notNull().references('users.id'))
    .addColumn('decision', 'text', (col) => col.notNull().check(sql`decision in ('approve', 'deny')`))
    .addColumn('reason', 'text')
    .addColumn('surface', 'text', (col) => col.notNull())
    .addColumn('decided_at', 'timestamptz', (col) => col.notNull())
    .addUniqueConstraint('approval_decisions_task_user_key', ['task_id', 'user_id'])
    .execute();

  await db.schema
    .createTable('evidence')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('sha256', 'text', (col) => col.notNull().unique().check(sql`sha256 ~ '^[0-9a-f]{64}$'`))
    .addColumn('size_bytes', 'bigint', (col) => col.notNull())
    .addColumn('media_type', 'text', (col) => col.notNull())
    .addColumn('storage_uri', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('original_name', 'text')
    .addColumn('uploaded_by', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('retention_until', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('evidence_links')
    .addColumn('evidence_id', 'uuid', (col) => col.notNull().references('evidence.id').onDelete('cascade'))
    .addColumn('kind', 'text', (col) => col.notNull().check(sql`kind in ('control', 'task')`))
    .addColumn('target', 'text', (col) => col.notNull())
    .addColumn('linked_by', 'uuid', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('evidence_links_pkey', ['evidence_id', 'kind', 'target'])
    .execute();

  await db.schema
    .createTable('notification_rules')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    // an event type, or a prefix ending in '*' (e.g. 'incident.*')
    .addColumn('event_pattern', 'text', (col) => col.notNull())
    .addColumn('max_priority', 'integer')
    .addColumn('control_id', 'text')
    .addColumn('target_kind', 'text', (col) => col.notNull().check(sql`target_kind in ('channel', 'assignee_dm', 'approvers_dm', 'email')`))
    .addColumn('surface', 'text', (col) => col.notNull().check(sql`surface in ('slack', 'teams', 'email')`))
    .addColumn('target', 'text')
    .addColumn('enabled', 'boolean', (col) => col.notNull().defaultTo(true))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  // The runbook's default channels; operators change them with `projectx routing`.
  await db
    .insertInto('notification_rules')
    .values([
      { event_pattern: 'incident.*', target_kind: 'channel', surface: 'slack', target: 'alerts-servicenow' },
      { event_pattern: 'integration.*', target_kind: 'channel', surface: 'slack', target: 'alerts-servicenow' },
      { event_pattern: 'task.*', target_kind: 'channel', surface: 'slack', target: 'compliance-delivery' },
      { event_pattern: 'evidence.*', target_kind: 'channel', surface: 'slack', target: 'compliance-delivery' },
      { event_pattern: 'task.assigned', target_kind: 'assignee_dm', surface: 'slack', target: null },
      { event_pattern: 'task.approval_requested', target_kind: 'approvers_dm', surface: 'slack', target: null },
    ])
    .execute();

  await db.schema
    .createTable('notifications')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('event_id', 'text', (col) => col.notNull())
    .addColumn('event_type', 'text', (col) => col.notNull())
    .addColumn('surface', 'text', (col) => col.notNull())
    .addColumn('target_kind', 'text', (col) => col.notNull())
    .addColumn('target', 'text', (col) => col.notNull())
    .addColumn('message', 'jsonb', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull().defaultTo('pending').check(sql`status in ('pending', 'sent', 'failed', 'undeliverable')`))
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .addUniqueConstraint('notifications_event_target_key', ['event_id', 'surface', 'target_kind', 'target'])
    .execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'bigint', (col) => col.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('tenant', 'text', (col) => col.notNull())
    .addColumn('seq', 'bigint', (col) => col.notNull())
    .addColumn('at', 'timestamptz', (col) => col.notNull())
    .addColumn('actor', 'text', (col) => col.notNull())
    .addColumn('surface', 'text', (col) => col.notNull())
    .addColumn('action', 'text', (col) => col.notNull())
    .addColumn('object_type', 'text', (col) => col.notNull())
    .addColumn('object_id', 'text')
    .addColumn('outcome', 'text', (col) => col.notNull().check(sql`outcome in ('success', 'refused', 'error')`))
    .addColumn('detail', 'jsonb', (col) => col.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('correlation_id', 'text')
    .addColumn('prev_hash', 'text', (col) => col.notNull())
    .addColumn('hash', 'text', (col) => col.notNull())
    .addUniqueConstraint('audit_log_tenant_seq_key', ['tenant', 'seq'])
    .execute();
  // The newest row of each chain, written with it: deleting the last rows of a chain is then detectable too.
  await db.schema
    .createTable('audit_heads')
    .addColumn('tenant', 'text', (col) => col.primaryKey())
    .addColumn('seq', 'bigint', (col) => col.notNull())
    .addColumn('hash', 'text', (col) => col.notNull())
    .execute();
  // Append-only for the application: UPDATE and DELETE raise. (A superuser can still disable the trigger;
  // the hash chain is what detects that, see `projectx audit verify`.)
  await sql`
    create function audit_log_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
    end $$`.execute(db);
  await sql`create trigger audit_log_append_only before update or delete on audit_log for each row execute function audit_log_append_only()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists audit_log_append_only on audit_log`.execute(db);
  await sql`drop function if exists audit_log_append_only()`.execute(db);
  for (const table of [
    'audit_heads',
    'audit_log', 'notifications', 'notification_rules', 'evidence_links', 'evidence', 'approval_decisions', 'task_links',
    'tasks', 'incidents', 'controls', 'programs', 'link_codes', 'identity_links', 'users',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
