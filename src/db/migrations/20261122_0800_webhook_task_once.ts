/**
 * A partner delivery creates at most one task, even when two runs of its processing overlap (a job retried
 * while a slow first run still works): the task's link to the delivery is unique, so the second run's
 * transaction fails and its retry finds the first run's task.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await sql`create unique index task_links_webhook_delivery_key on task_links (target) where kind = 'external' and target like 'webhook:%'`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists task_links_webhook_delivery_key`.execute(db);
}
