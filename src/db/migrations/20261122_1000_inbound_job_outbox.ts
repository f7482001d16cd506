/**
 * Processing jobs staged with the deliveries they name (src/jobs/inbound-outbox.ts): the partner webhook
 * accept writes its deliveries and one row here in a single statement; a relay turns these rows into pg-boss
 * jobs, many at a time, deleting them in the same transaction.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('inbound_job_outbox')
    .addColumn('id', 'bigserial', (col) => col.primaryKey())
    .addColumn('job_name', 'text', (col) => col.notNull())
    .addColumn('inbound_ids', sql`uuid[]`, (col) => col.notNull())
    .addColumn('staged_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addCheckConstraint('inbound_job_outbox_ids_present', sql`cardinality(inbound_ids) > 0`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('inbound_job_outbox').execute();
}
