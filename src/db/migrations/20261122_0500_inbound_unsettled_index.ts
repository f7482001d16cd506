/**
 * `/metrics` counts inbound deliveries that are not processed (failed ones wait for an operator). Processed
 * rows are almost all of the table, so a partial index over the others keeps that count cheap at any size.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index inbound_events_unsettled_idx on inbound_events (source, status) where status <> 'processed'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists inbound_events_unsettled_idx`.execute(db);
}
