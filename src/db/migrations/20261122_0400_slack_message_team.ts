/** The workspace a Slack message was posted in, so that re-rendering it uses that workspace's token. */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('slack_messages').addColumn('team', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('slack_messages').dropColumn('team').execute();
}
