/**
 * The audit log: append-only, one row per action and per refusal, hash-chained per tenant. Each row's hash is
 * SHA-256 over the previous row's hash and the row's own fields in RFC 8785 canonical JSON, so editing a row
 * breaks its hash and deleting one breaks the sequence and the next row's link. `verifyAuditChain` walks it.
 *
 * The tenant's newest (seq, hash) is also kept in `audit_heads`, so deleting rows from the end is detected too.
 * Callers append inside the transaction of the change they audit; the row is chained when it commits (a
 * deferred trigger takes the tenant's head row, whose lock serializes the tenant's chain, only then).
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import { currentContext } from '../logger.ts';
import { type Actor, actorLabel } from './actor.ts';

export const DEFAULT_TENANT = 'default';
const GENESIS = '0'.repeat(64);

export interface AuditEntry {
  actor: Actor;
  action: string;
  objectType: string;
  objectId?: string | undefined;
  outcome: 'success' | 'refused' | 'error';
  detail?: Record<string, unknown>;
  at: Date;
  tenant?: string;
}

interface ChainFields {
  tenant: string;
  seq: number;
  at: string;
  actor: string;
  surface: string;
  action: string;
  object_type: string;
  object_id: string | null;
  outcome: string;
  detail: unknown;
  correlation_id: string | null;
}

function chainHash(prevHash: string, fields: ChainFields): string {
  return createHash('sha256').update(`${prevHash}\n${canonicalize(fields) ?? ''}`).digest('hex');
}

/**
 * Appends one row (inside the caller's transaction): it is written to `audit_pending`, and chained into
 * `audit_log` when the transaction commits, by a deferred trigger inside PostgreSQL that takes the tenant's
 * head (its lock serializes the tenant's appends, so the chain has no forks) and puts the sequence number into
 * the row's canonical JSON, built here, to hash it as `chainHash` does (migration 20261207_1500). No lock is
 * taken here: a change's statements and round trips never wait on another's, only the commits' chaining does.
 * Until commit the row is not in `audit_log`, and a rolled-back change leaves none.
 */
export async function appendAudit(db: Kysely<Database>, entry: AuditEntry): Promise<void> {
  const tenant = entry.tenant ?? DEFAULT_TENANT;
  const fields: Omit<ChainFields, 'seq'> = {
    tenant,
    at: entry.at.toISOString(),
    actor: actorLabel(entry.actor),
    surface: entry.actor.surface,
    action: entry.action,
    object_type: entry.objectType,
    object_id: entry.objectId ?? null,
    outcome: entry.outcome,
    detail: entry.detail ?? {},
    correlation_id: currentContext().correlationId ?? null,
  };
  const [before, after] = canonicalAround(fields);
  await db
    .insertInto('audit_pending')
    .values({
      tenant,
      at: entry.at,
      actor: fields.actor,
      surface: fields.surface,
      action: fields.action,
      object_type: fields.object_type,
      object_id: fields.object_id,
      outcome: entry.outcome,
      detail: JSON.stringify(fields.detail),
      correlation_id: fields.correlation_id,
      canonical_before: before,
      canonical_after: after,
    })
    .execute();
}

/**
 * A row's canonical JSON (RFC 8785) split where its sequence number goes: keys are sorted, so `seq` is followed
 * only by `surface` and `tenant`, whose string values cannot hold an unescaped quote; the last `"seq":0,"surface":`
 * is therefore the row's own, whatever `detail` holds.
 */
function canonicalAround(fields: Omit<ChainFields, 'seq'>): [string, string] {
  const canonical = canonicalize({ ...fields, seq: 0 }) ?? '';
  const at = canonical.lastIndexOf('"seq":0,"surface":');
  return [canonical.slice(0, at + '"seq":'.length), canonical.slice(at + '"seq":0'.length)];
}

/** Records a refusal in its own transaction (the refused change itself is rolled back or never started). */
export async function auditRefusal(db: Kysely<Database>, entry: Omit<AuditEntry, 'outcome'> & { code: string; message: string }): Promise<void> {
  const { code, message, detail, ...rest } = entry;
  await db.transaction().execute((trx) => appendAudit(trx, { ...rest, outcome: 'refused', detail: { ...detail, code, message } }));
}

export interface ChainBreak {
  seq: number;
  reason: 'hash_mismatch' | 'link_mismatch' | 'missing_rows' | 'head_mismatch';
  detail: string;
}

export interface ChainReport {
  tenant: string;
  rows: number;
  breaks: ChainBreak[];
}

/** Walks a tenant's chain in order (in pages, so any length fits in memory) and reports every break. */
export async function verifyAuditChain(db: Kysely<Database>, tenant = DEFAULT_TENANT): Promise<ChainReport> {
  const breaks: ChainBreak[] = [];
  let expectedSeq = 1;
  let prevHash = GENESIS;
  let rows = 0;
  for (;;) {
    const page = await db.selectFrom('audit_log').selectAll().where('tenant', '=', tenant).where('seq', '>=', String(expectedSeq)).orderBy('seq').limit(1000).execute();
    if (page.length === 0) break;
    for (const row of page) {
      rows++;
      const seq = Number(row.seq);
      if (seq !== expectedSeq) breaks.push({ seq, reason: 'missing_rows', detail: `rows ${expectedSeq}..${seq - 1} are missing` });
      if (row.prev_hash !== prevHash) breaks.push({ seq, reason: 'link_mismatch', detail: 'prev_hash does not match the hash of the row before it' });
      const fields: ChainFields = {
        tenant: row.tenant,
        seq,
        at: row.at.toISOString(),
        actor: row.actor,
        surface: row.surface,
        action: row.action,
        object_type: row.object_type,
        object_id: row.object_id,
        outcome: row.outcome,
        detail: row.detail,
        correlation_id: row.correlation_id,
      };
      if (chainHash(row.prev_hash, fields) !== row.hash) breaks.push({ seq, reason: 'hash_mismatch', detail: 'row content does not match its hash (edited)' });
      prevHash = row.hash;
      expectedSeq = seq + 1;
    }
  }
  const head = await db.selectFrom('audit_heads').select(['seq', 'hash']).where('tenant', '=', tenant).executeTakeFirst();
  const lastSeq = expectedSeq - 1;
  if (head && (Number(head.seq) !== lastSeq || head.hash !== prevHash)) {
    breaks.push({ seq: Number(head.seq), reason: 'head_mismatch', detail: `the chain ends at row ${lastSeq} but its head records row ${head.seq} (rows deleted from the end?)` });
  } else if (!head && rows > 0) {
    breaks.push({ seq: lastSeq, reason: 'head_mismatch', detail: 'the chain has rows but no head record' });
  }
  return { tenant, rows, breaks };
}

export interface AuditRow {
  seq: number;
  at: Date;
  actor: string;
  surface: string;
  action: string;
  objectType: string;
  objectId: string | null;
  outcome: 'success' | 'refused' | 'error';
  detail: Record<string, unknown>;
  correlationId: string | null;
}

export interface AuditFilter {
  tenant?: string | undefined;
  /** `user:…`, `cli`, `system:webhook:acme`: exactly, as recorded. */
  actor?: string | undefined;
  /** An action (`task.decide`) or a prefix ending in `.*` (`task.*`). */
  action?: string | undefined;
  objectId?: string | undefined;
  outcome?: AuditRow['outcome'] | undefined;
  since?: Date | undefined;
  /** Rows before this sequence number (the next page of a newest-first listing). */
  beforeSeq?: number | undefined;
  limit: number;
}

/** A tenant's rows, newest first, filtered; for operators and auditors (`projectx audit list`). */
export async function listAudit(db: Kysely<Database>, filter: AuditFilter): Promise<AuditRow[]> {
  let query = db.selectFrom('audit_log').selectAll().where('tenant', '=', filter.tenant ?? DEFAULT_TENANT).orderBy('seq', 'desc').limit(filter.limit);
  if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
  if (filter.action !== undefined) query = filter.action.endsWith('.*') ? query.where('action', 'like', `${filter.action.slice(0, -1).replace(/[\\%_]/g, '\\$&')}%`) : query.where('action', '=', filter.action);
  if (filter.objectId !== undefined) query = query.where('object_id', '=', filter.objectId);
  if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since);
  if (filter.beforeSeq !== undefined) query = query.where('seq', '<', String(filter.beforeSeq));
  return (await query.execute()).map((row) => ({
    seq: Number(row.seq),
    at: row.at,
    actor: row.actor,
    surface: row.surface,
    action: row.action,
    objectType: row.object_type,
    objectId: row.object_id,
    outcome: row.outcome,
    detail: row.detail,
    correlationId: row.correlation_id,
  }));
}
