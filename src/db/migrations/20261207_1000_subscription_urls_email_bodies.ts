/**
 * Two things at rest (issue 13):
 *
 * - Inbound bodies shared by several deliveries, stored once by their SHA-256 (`inbound_bodies`): an email to
 *   several of our addresses is one message and one body, however many `inbound_events` rows (one per recipient,
 *   each processed and settled on its own) refer to it through `body_sha256`; their own `body` is then empty.
 *   Existing email rows move their bodies there. A body goes when the last row referring to it is deleted (the
 *   trigger below), so pruning processed deliveries frees it.
 * - Outbound subscription URLs carry bearer-like tokens in their paths: they are kept encrypted
 *   (`url_encrypted`, an envelope whose AAD names the subscription) and shown as `url_display` (origin plus a
 *   short hash). A migration has no key (and must not import the keyring), so existing plaintext URLs get their
 *   display form here and stay in `url` only until a process starts with PROJECTX_ENCRYPTION_KEY: the webhook
 *   bridge module encrypts them then and clears `url`. Each row has exactly one of the two.
 *
 * Frozen in time: never import application code here, never edit after release; add a new migration instead.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('inbound_bodies')
    .addColumn('sha256', 'text', (col) => col.primaryKey().check(sql`sha256 ~ '^[0-9a-f]{64}$'`))
    .addColumn('body', 'bytea', (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.alterTable('inbound_events').addColumn('body_sha256', 'text', (col) => col.references('inbound_bodies.sha256')).execute();
  await sql`create index inbound_events_body_sha256_idx on inbound_events (body_sha256) where body_sha256 is not null`.execute(db);
  await sql`
    insert into inbound_bodies (sha256, body, created_at)
    select distinct on (digest) digest, body, received_at
    from (select encode(sha256(body), 'hex') as digest, body, received_at from inbound_events where source = 'email') as email
    order by digest, received_at
    on conflict (sha256) do nothing`.execute(db);
  await sql`update inbound_events set body_sha256 = encode(sha256(body), 'hex'), body = ''::bytea where source = 'email'`.execute(db);
  // The last reference gone, the body goes. A body that a concurrent insert took up meanwhile stays.
  await sql`
    create function projectx_inbound_bodies_release() returns trigger language plpgsql as $$
    begin
      delete from inbound_bodies b
      where b.sha256 in (select distinct body_sha256 from released where body_sha256 is not null)
        and not exists (select 1 from inbound_events e where e.body_sha256 = b.sha256);
      return null;
    exception when foreign_key_violation then
      return null;
    end $$`.execute(db);
  await sql`create trigger inbound_events_release_bodies after delete on inbound_events referencing old table as released for each statement execute function projectx_inbound_bodies_release()`.execute(db);

  await sql`alter table webhook_subscriptions alter column url drop not null`.execute(db);
  await db.schema.alterTable('webhook_subscriptions').addColumn('url_encrypted', 'jsonb').addColumn('url_display', 'text').execute();
  // As the application shows a URL: scheme and host (any user:password@ dropped), then the first 8 hex digits of
  // the SHA-256 of the whole URL. The module recomputes it from the URL when it encrypts it.
  await sql`
    update webhook_subscriptions
    set url_display = regexp_replace(url, '^([A-Za-z][A-Za-z0-9+.-]*://)([^@/?#]*@)?([^/?#]*).*$', '\\1\\3') || '/…#' || left(encode(sha256(convert_to(url, 'UTF8')), 'hex'), 8)`.execute(db);
  await sql`alter table webhook_subscriptions alter column url_display set not null`.execute(db);
  await sql`alter table webhook_subscriptions add constraint webhook_subscriptions_url_once check ((url is null) <> (url_encrypted is null))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  const encrypted = await sql<{ n: string }>`select count(*) as n from webhook_subscriptions where url is null`.execute(db);
  if (Number(encrypted.rows[0]?.n ?? 0) > 0) throw new Error(`${encrypted.rows[0]?.n} subscription URL(s) are stored encrypted and cannot be put back in plaintext here: remove those subscriptions first`);
  await sql`alter table webhook_subscriptions drop constraint webhook_subscriptions_url_once`.execute(db);
  await db.schema.alterTable('webhook_subscriptions').dropColumn('url_encrypted').dropColumn('url_display').execute();
  await sql`alter table webhook_subscriptions alter column url set not null`.execute(db);

  await sql`drop trigger if exists inbound_events_release_bodies on inbound_events`.execute(db);
  await sql`drop function if exists projectx_inbound_bodies_release()`.execute(db);
  await sql`update inbound_events e set body = b.body from inbound_bodies b where e.body_sha256 = b.sha256`.execute(db);
  await db.schema.alterTable('inbound_events').dropColumn('body_sha256').execute();
  await db.schema.dropTable('inbound_bodies').execute();
}
