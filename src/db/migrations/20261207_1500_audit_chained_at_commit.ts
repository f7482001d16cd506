/**
 * Audit rows are chained at commit. An append used to take the tenant's chain lock when it wrote its row and hold
 * it to commit, across a round trip to the service and back (the COMMIT only comes once the service has the
 * answer), so under load every audited change of a tenant queued on that lock for as long as a busy event loop
 * took to answer. Now a change writes its row to `audit_pending` (no lock), and a deferred constraint trigger
 * chains it at COMMIT inside PostgreSQL: it moves the tenant's head to the next sequence number and the new
 * hash, inserts the row into `audit_log`, and removes the pending row. The lock on the head is held from there
 * to the end of the commit, with no round trip in between; a transaction's rows are chained in the order it
 * wrote them, and a rolled-back change leaves nothing.
 *
 * The hash is SHA-256 over the previous hash, a newline and the row's canonical JSON (RFC 8785), as
 * `verifyAuditChain` (src/domain/audit.ts) checks it: the service writes the canonical JSON split where the
 * sequence number goes (`canonical_before`, `canonical_after`), and the trigger puts the number in (canonical
 * JSON writes an integer as its digits, as `bigint::text` does). PostgreSQL 15 cannot return a row's old values
 * from an UPDATE, so the head keeps the hash it replaced (`prev_hash`): the new row's link.
 */
import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('audit_heads').addColumn('prev_hash', 'text').execute();
  await db.schema
    .createTable('audit_pending')
    .addColumn('id', 'bigint', (col) => col.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('tenant', 'text', (col) => col.notNull())
    .addColumn('at', 'timestamptz', (col) => col.notNull())
    .addColumn('actor', 'text', (col) => col.notNull())
    .addColumn('surface', 'text', (col) => col.notNull())
    .addColumn('action', 'text', (col) => col.notNull())
    .addColumn('object_type', 'text', (col) => col.notNull())
    .addColumn('object_id', 'text')
    .addColumn('outcome', 'text', (col) => col.notNull())
    .addColumn('detail', 'jsonb', (col) => col.notNull())
    .addColumn('correlation_id', 'text')
    .addColumn('canonical_before', 'text', (col) => col.notNull())
    .addColumn('canonical_after', 'text', (col) => col.notNull())
    .execute();
  await sql`
    create function audit_chain_pending() returns trigger language plpgsql as $$
    declare
      head record;
    begin
      insert into audit_heads as h (tenant, seq, hash, prev_hash)
      values (new.tenant, 1, encode(sha256(convert_to(repeat('0', 64) || E'\\n' || new.canonical_before || '1' || new.canonical_after, 'UTF8')), 'hex'), repeat('0', 64))
      on conflict (tenant) do update
        set seq = h.seq + 1,
            prev_hash = h.hash,
            hash = encode(sha256(convert_to(h.hash || E'\\n' || new.canonical_before || (h.seq + 1)::text || new.canonical_after, 'UTF8')), 'hex')
      returning h.seq, h.hash, h.prev_hash into head;
      insert into audit_log (tenant, seq, at, actor, surface, action, object_type, object_id, outcome, detail, correlation_id, prev_hash, hash)
      values (new.tenant, head.seq, new.at, new.actor, new.surface, new.action, new.object_type, new.object_id, new.outcome, new.detail, new.correlation_id, head.prev_hash, head.hash);
      delete from audit_pending where id = new.id;
      return null;
    end $$`.execute(db);
  await sql`
    create constraint trigger audit_pending_chain after insert on audit_pending
    deferrable initially deferred for each row execute function audit_chain_pending()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists audit_pending_chain on audit_pending`.execute(db);
  await sql`drop function if exists audit_chain_pending()`.execute(db);
  await db.schema.dropTable('audit_pending').ifExists().execute();
  await db.schema.alterTable('audit_heads').dropColumn('prev_hash').execute();
}
