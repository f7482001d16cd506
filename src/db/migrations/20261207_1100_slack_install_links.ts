/**
 * Single-use Slack install links (`projectx slack install-link`): an admin's proof that a workspace may install
 * the app although it is not in SLACK_ALLOWED_WORKSPACES. Only the SHA-256 of a link's token is kept. An
 * installation made through a link points at it, which is what lets that workspace in at request time.
 * Frozen in time: never import application code here.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('slack_install_links')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('token_hash', 'text', (col) => col.notNull().unique())
    .addColumn('created_by', 'text', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (col) => col.notNull())
    .addColumn('used_at', 'timestamptz')
    // Who installed with it: the workspace (null for an org-wide install) and its enterprise (null outside Grid).
    .addColumn('used_by_team', 'text')
    .addColumn('used_by_enterprise', 'text')
    .execute();
  await db.schema
    .alterTable('slack_installations')
    .addColumn('install_link_id', 'uuid', (col) => col.references('slack_install_links.id').onDelete('set null'))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('slack_installations').dropColumn('install_link_id').execute();
  await db.schema.dropTable('slack_install_links').execute();
}
