/**
 * Audit rows by correlation id: the Slack sweep asks whether a delivery its process left unmarked had already
 * committed its effect (src/bot/slack/receiver.ts), and an operator asks what one request did.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index audit_log_correlation_idx on audit_log (correlation_id) where correlation_id is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists audit_log_correlation_idx`.execute(db);
}
