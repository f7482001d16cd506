/**
 * Where accepted mail is kept: the message once, by its SHA-256, in `inbound_bodies`, and one `inbound_events`
 * row per recipient (source `email`) referring to it through `body_sha256`, each processed, settled, quarantined
 * and replayed on its own. A message to ten of our addresses is one 25 MB body, not ten. The body is deleted with
 * the last row referring to it (a trigger: pruning processed rows frees it).
 *
 * Repository functions take `db` first; the caller owns the transaction (the listener's, with the jobs).
 */
import { type Kysely, sql } from 'kysely';
import type { Database } from '../../db/schema.ts';

/** Stores a message's body under its SHA-256 (hex), once: a body already there is left as it is. */
export async function storeMessageBody(db: Kysely<Database>, input: { sha256: string; raw: Buffer; now: Date }): Promise<void> {
  await db
    .insertInto('inbound_bodies')
    .values({ sha256: input.sha256, body: input.raw, created_at: input.now })
    .onConflict((oc) => oc.column('sha256').doNothing())
    .execute();
}

/** Email delivery rows (`e`) joined with their shared body (`b`): select `messageBody` for the raw message. */
export function emailRows(db: Kysely<Database>) {
  return db.selectFrom('inbound_events as e').leftJoin('inbound_bodies as b', 'b.sha256', 'e.body_sha256');
}

/** The raw message of an `emailRows` row: the shared body, or the row's own (a row that has no shared one). */
export const messageBody = sql<Buffer>`coalesce(b.body, e.body)`.as('body');

/** The SHA-256 (hex) of an `emailRows` row's message, for recognising a repeat. */
export const messageSha256 = sql<string>`coalesce(e.body_sha256, encode(sha256(e.body), 'hex'))`.as('sha256');
