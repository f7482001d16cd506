/**
 * Microsoft Teams evidence: the control or task a person named with `evidence AC-2` in their personal chat, kept
 * per tenant and Entra object id for the files they attach next (within 15 minutes; src/bot/teams/evidence.ts).
 * One row per person: naming another target replaces it, an upload staged with it removes it.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('teams_evidence_targets')
    .addColumn('tenant_id', 'text', (col) => col.notNull())
    .addColumn('aad_object_id', 'text', (col) => col.notNull())
    .addColumn('control_id', 'text')
    .addColumn('task_id', 'text')
    .addColumn('named_at', 'timestamptz', (col) => col.notNull())
    .addPrimaryKeyConstraint('teams_evidence_targets_pkey', ['tenant_id', 'aad_object_id'])
    .addCheckConstraint('teams_evidence_targets_one_target', sql`(control_id is null) <> (task_id is null)`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('teams_evidence_targets').execute();
}
