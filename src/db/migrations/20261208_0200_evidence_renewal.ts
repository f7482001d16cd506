/**
 * Evidence expiry and renewal. A control may have a renewal period (`controls.renewal_days`); evidence linked to
 * it is valid until then (`evidence_links.valid_until`, or a date given at upload). `evidence_renewals` keeps one
 * renewal task per expiring (evidence, control) and the last reminder sent (30, 7, 1 days before, overdue), so the
 * daily job reminds once per step and never opens a second task.
 *
 * Routing: the control owners hear of new evidence and of failed ingestions (`evidence.recorded`,
 * `evidence.ingest_failed`, owners named as the event's recipients) and the renewal reminders go to the renewal
 * task's assignee, the control owner (`evidence.renewal_due`), in their DMs.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('controls').addColumn('renewal_days', 'integer', (col) => col.check(sql`renewal_days between 1 and 3650`)).execute();
  await db.schema.alterTable('evidence_links').addColumn('valid_until', 'timestamptz').execute();
  await db.schema.createIndex('evidence_links_expiring').on('evidence_links').columns(['valid_until']).where(sql.ref('kind'), '=', 'control').execute();

  await db.schema
    .createTable('evidence_renewals')
    .addColumn('evidence_id', 'uuid', (col) => col.notNull().references('evidence.id').onDelete('cascade'))
    .addColumn('control_id', 'text', (col) => col.notNull())
    .addColumn('task_id', 'bigint', (col) => col.notNull().references('tasks.id').onDelete('cascade'))
    .addColumn('valid_until', 'timestamptz', (col) => col.notNull())
    .addColumn('stage', 'text', (col) => col.notNull().check(sql`stage in ('30', '7', '1', 'overdue')`))
    .addColumn('reminded_at', 'timestamptz', (col) => col.notNull())
    .addColumn('closed_at', 'timestamptz')
    .addColumn('closed_by_evidence', 'uuid', (col) => col.references('evidence.id').onDelete('set null'))
    .addPrimaryKeyConstraint('evidence_renewals_pkey', ['evidence_id', 'control_id'])
    .execute();

  await db
    .insertInto('notification_rules')
    .values([
      { event_pattern: 'evidence.recorded', target_kind: 'approvers_dm', surface: 'slack', target: null },
      { event_pattern: 'evidence.ingest_failed', target_kind: 'approvers_dm', surface: 'slack', target: null },
      { event_pattern: 'evidence.renewal_due', target_kind: 'assignee_dm', surface: 'slack', target: null },
    ])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('notification_rules').where('event_pattern', 'in', ['evidence.recorded', 'evidence.ingest_failed', 'evidence.renewal_due']).where('target_kind', 'in', ['approvers_dm', 'assignee_dm']).execute();
  await db.schema.dropTable('evidence_renewals').execute();
  await db.schema.dropIndex('evidence_links_expiring').execute();
  await db.schema.alterTable('evidence_links').dropColumn('valid_until').execute();
  await db.schema.alterTable('controls').dropColumn('renewal_days').execute();
}
