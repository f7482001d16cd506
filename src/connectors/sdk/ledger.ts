/**
 * The ledger (`external_records`): every record a connector synced, by external id, with the content that
 * matters and its hash. Records are stored here by a sync page (src/connectors/sdk/sync.ts) and by the answer to
 * one of our writes (`recordAnswer`): validated (failures kept aside with one alert), upserted only where the
 * hash changed, and the model's domain effects run for exactly those, all in the caller's transaction.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { newEvent } from '../../domain/events.ts';
import type { Change, ConnectorDefinition, ConnectorInstance, ConnectorRuntime, SyncModel } from './contract.ts';

export interface RecordsOutcome {
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
}

/** What records are stored with: the connector, its instance, and the run they came with (none for a write's answer). */
export interface StoreContext<Settings, Client> {
  runtime: ConnectorRuntime;
  connector: ConnectorDefinition<Settings, Client>;
  instance: ConnectorInstance<Settings>;
  runId: string | null;
}

/**
 * Records as the system sent them: validated (failures kept aside), upserted into the ledger by external id where
 * their content hash changed, and the model's domain effects for exactly those, all in `trx`.
 */
export async function storeRecords<Settings, Client>(trx: Kysely<Database>, ctx: StoreContext<Settings, Client>, model: SyncModel<Settings, Client>, records: readonly unknown[], now: Date): Promise<RecordsOutcome> {
  const { instance, runtime } = ctx;
  const valid: { record: unknown; externalId: string; number: string | null; hash: string; updatedAt: string | null; data: string }[] = [];
  const rejected: { record: unknown; externalId: string | null; issues: string[] }[] = [];
  for (const raw of records) {
    const parsed = model.record.safeParse(raw);
    if (!parsed.success) {
      rejected.push({ record: raw, externalId: guessId(raw), issues: parsed.error.issues.slice(0, 10).map((issue) => `${issue.path.join('.') || '(record)'}: ${issue.message}`) });
      continue;
    }
    valid.push({ record: parsed.data, ...ledgerRowOf(model, parsed.data) });
  }
  // A record twice in one page (it moved while we paged) counts once: the last copy wins.
  const unique = [...new Map(valid.map((row) => [row.externalId, row])).values()];
  const changedRows = unique.length
    ? await sql<{ external_id: string; inserted: boolean }>`
        insert into external_records (config_id, model, external_id, number, content_hash, source_updated_at, data, first_seen_at, updated_at)
        select ${instance.id}::uuid, ${model.name}, r.external_id, r.number, r.content_hash, r.source_updated_at, r.data::jsonb, ${now}::timestamptz, ${now}::timestamptz
        from unnest(${unique.map((row) => row.externalId)}::text[], ${unique.map((row) => row.number)}::text[], ${unique.map((row) => row.hash)}::text[], ${unique.map((row) => row.updatedAt)}::text[], ${unique.map((row) => row.data)}::text[])
          as r(external_id, number, content_hash, source_updated_at, data)
        on conflict (config_id, model, external_id) do update
          set number = excluded.number, content_hash = excluded.content_hash, source_updated_at = excluded.source_updated_at, data = excluded.data, updated_at = excluded.updated_at, missing_since = null
          where external_records.content_hash <> excluded.content_hash
        returning external_id, (xmax = 0) as inserted`.execute(trx)
    : { rows: [] };
  const byId = new Map(unique.map((row) => [row.externalId, row]));
  const changes: Change<unknown>[] = changedRows.rows.map((row) => ({ record: byId.get(row.external_id)!.record, externalId: row.external_id, created: row.inserted }));
  if (changes.length > 0 && model.apply) await model.apply({ trx, instance, changes, runtime, now });
  for (const reject of rejected) await keepRejected(trx, ctx, model, reject, now);
  const created = changes.filter((change) => change.created).length;
  return { created, updated: changes.length - created, unchanged: valid.length - changes.length, rejected: rejected.length };
}

/**
 * A record that failed the model's schema: kept with its payload and the reasons, and one medium alert, once
 * per distinct payload (a re-sync of the same bad record does not alert again).
 */
async function keepRejected<Settings, Client>(trx: Kysely<Database>, input: StoreContext<Settings, Client>, model: SyncModel<Settings, Client>, reject: { record: unknown; externalId: string | null; issues: string[] }, now: Date): Promise<void> {
  const payload = JSON.stringify(reject.record);
  const source = `${input.connector.id}:${model.name}`;
  const seen = await trx
    .selectFrom('integration_events')
    .select('id')
    .where('config_id', '=', input.instance.id)
    .where('source', '=', source)
    .where('event_type', '=', 'record_rejected')
    .where(sql<boolean>`payload = ${payload}::jsonb`)
    .executeTakeFirst();
  if (seen) return;
  await trx
    .insertInto('integration_events')
    .values({ config_id: input.instance.id, source, direction: 'inbound', event_type: 'record_rejected', external_id: reject.externalId, status: 'rejected', payload, error: JSON.stringify({ issues: reject.issues }), correlation_id: input.runId, created_at: now })
    .execute();
  await input.runtime.events.emit(
    trx,
    newEvent(
      {
        type: 'integration.record_rejected',
        subject: { kind: 'integration', id: input.instance.id, label: `${input.connector.id}:${input.instance.name}` },
        summary: `${input.connector.title} ${model.name} ${reject.externalId ?? '(no id)'} failed validation and was kept aside: ${reject.issues.slice(0, 3).join('; ')}. Runbook ${input.connector.runbookId}.`,
        priority: 3,
        data: { connector: input.connector.id, model: model.name, externalId: reject.externalId, issues: reject.issues, runbookId: input.connector.runbookId },
      },
      now,
    ),
  );
}

/** A record as the ledger keeps it: the content that matters, canonical JSON, and its hash. */
function ledgerRowOf<Settings, Client>(model: SyncModel<Settings, Client>, record: unknown): { externalId: string; number: string | null; hash: string; updatedAt: string | null; data: string } {
  const data = canonicalize(model.content(record)) ?? '{}';
  return { externalId: model.externalId(record), number: model.label?.(record) ?? null, hash: createHash('sha256').update(data).digest('hex'), updatedAt: model.updatedAt(record) ?? null, data };
}

/**
 * The system's answer to one of our writes (the record as it stands after it), stored like a pulled record: the
 * next pull then reads our own change as no change (echo suppression), and anything else that changed in it
 * meanwhile (someone raised its priority) takes effect now, with its events, instead of being hidden.
 */
export async function recordAnswer<Settings, Client>(trx: Kysely<Database>, input: { runtime: ConnectorRuntime; connector: ConnectorDefinition<Settings, Client>; instance: ConnectorInstance<Settings>; model: SyncModel<Settings, Client>; record: unknown; now: Date }): Promise<{ changed: boolean; rejected: boolean }> {
  const outcome = await storeRecords(trx, { runtime: input.runtime, connector: input.connector, instance: input.instance, runId: null }, input.model, [input.record], input.now);
  return { changed: outcome.created + outcome.updated > 0, rejected: outcome.rejected > 0 };
}

function guessId(raw: unknown): string | null {
  const id = (raw as { sys_id?: unknown; id?: unknown } | null)?.sys_id ?? (raw as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? id.slice(0, 200) : null;
}

/**
 * Records the system no longer returns (deleted there, or hidden from us: the two look alike): flagged
 * `missing_since` (not deleted: what was synced stays for the record), and the model's effects for those newly
 * flagged, in `trx`. Returns the ids newly flagged.
 */
export async function flagMissing<Settings, Client>(trx: Kysely<Database>, input: { runtime: ConnectorRuntime; instance: ConnectorInstance<Settings>; model: SyncModel<Settings, Client>; externalIds: readonly string[]; now: Date }): Promise<string[]> {
  if (input.externalIds.length === 0) return [];
  const flagged = await trx
    .updateTable('external_records')
    .set({ missing_since: input.now })
    .where('config_id', '=', input.instance.id)
    .where('model', '=', input.model.name)
    .where('external_id', 'in', [...input.externalIds])
    .where('missing_since', 'is', null)
    .returning('external_id')
    .execute();
  const ids = flagged.map((row) => row.external_id);
  if (ids.length > 0 && input.model.onMissing) await input.model.onMissing({ trx, instance: input.instance, externalIds: ids, runtime: input.runtime, now: input.now });
  return ids;
}
