/**
 * Mail to `partner+<key>@…` acts as that partner, but mail is not signed: only the senders listed here (an
 * address, or `@domain`) may act for it, and a partner without any receives no mail.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_partners').addColumn('email_senders', sql`text[]`, (col) => col.notNull().defaultTo(sql`'{}'`)).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('webhook_partners').dropColumn('email_senders').execute();
}
