/**
 * Pulling ServiceNow tables with a keyset cursor on (sys_updated_on, sys_id).
 *
 * ServiceNow stamps updates to the second, so many records can share one `sys_updated_on`, and an offset
 * cursor skips or repeats records that change while we page. Each page is therefore asked for as "after the
 * last record we stored", in ServiceNow's encoded query language:
 *
 *   sys_updated_on=T^sys_id>S^NQsys_updated_on>T^ORDERBYsys_updated_on^ORDERBYsys_id
 *
 * (`^NQ` ORs two whole queries: the rest of the records at T after sys_id S, then everything later), so records
 * sharing T across a page boundary all arrive, once. A record updated during the sync gets a later stamp and is
 * read later in the same sync or in the next. Each run (not a resumed one) starts `overlapSeconds` before its
 * checkpoint, for records whose update committed late with an earlier stamp; re-read records have the same
 * content hash and cost nothing.
 *
 * Only the fields we use are asked for (`sysparm_fields`), and references as plain sys_ids.
 */
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { newEvent } from '../../domain/events.ts';
import type { PullStep, SyncModel } from '../sdk/contract.ts';
import type { UpstreamFailure } from '../sdk/http-client.ts';
import { defineModel } from '../sdk/contract.ts';
import type { ServiceNowClient, ServiceNowSettings } from './client.ts';
import { CHANGE_FIELDS, GLIDE_DATE_TIME, INCIDENT_FIELDS, type IncidentRecord, changeRequestContent, changeRequestRecord, incidentContent, incidentRecord, incidentState, sourceSystem } from './mapper.ts';

export const keysetCursor = z.object({ updatedOn: z.string().regex(GLIDE_DATE_TIME), sysId: z.string().regex(/^[0-9a-f]{0,32}$/) });
export type KeysetCursor = z.infer<typeof keysetCursor>;

const ORDER = 'ORDERBYsys_updated_on^ORDERBYsys_id';

/** The encoded query for the page after `cursor` (an empty sysId: everything at or after its time). */
export function keysetQuery(cursor: KeysetCursor | null): string {
  if (!cursor) return ORDER;
  if (cursor.sysId === '') return `sys_updated_on>=${cursor.updatedOn}^${ORDER}`;
  return `sys_updated_on=${cursor.updatedOn}^sys_id>${cursor.sysId}^NQsys_updated_on>${cursor.updatedOn}^${ORDER}`;
}

/** `YYYY-MM-DD HH:mm:ss` minus some seconds. */
export function glideMinus(value: string, seconds: number): string {
  const at = new Date(`${value.replace(' ', 'T')}Z`).getTime() - seconds * 1000;
  return new Date(at).toISOString().slice(0, 19).replace('T', ' ');
}

export async function* pullTable(input: { client: ServiceNowClient; table: string; fields: readonly string[]; settings: ServiceNowSettings; cursor: KeysetCursor | null; resumed: boolean; signal: AbortSignal }): AsyncIterable<PullStep<KeysetCursor>> {
  const { settings } = input;
  let cursor = input.cursor && !input.resumed && settings.overlapSeconds > 0 ? { updatedOn: glideMinus(input.cursor.updatedOn, settings.overlapSeconds), sysId: '' } : input.cursor;
  while (!input.signal.aborted) {
    const answer = await input.client.list(input.table, { query: keysetQuery(cursor), fields: input.fields, limit: settings.pageSize });
    if (!answer.ok) {
      yield answer;
      return;
    }
    const records = Array.isArray(answer.value.body?.result) ? answer.value.body.result : undefined;
    if (!records) {
      yield { ok: false, failure: { kind: 'http', code: 'invalid_response', status: answer.value.status, body: undefined, attempts: answer.value.attempts } };
      return;
    }
    if (records.length === 0) return;
    const next = lastPosition(records);
    if (!next || (cursor && next.updatedOn < cursor.updatedOn)) {
      // Without a usable position the next page cannot be asked for: stop here rather than loop.
      yield { ok: false, failure: { kind: 'http', code: 'invalid_response', status: answer.value.status, body: undefined, attempts: answer.value.attempts } };
      return;
    }
    cursor = next;
    yield { ok: true, page: { records, cursor, requests: answer.value.attempts } };
    if (records.length < settings.pageSize) return;
  }
}

/** The position after a page: its last record's (sys_updated_on, sys_id), as far as they are well-formed. */
function lastPosition(records: readonly unknown[]): KeysetCursor | undefined {
  for (let index = records.length - 1; index >= 0; index--) {
    const parsed = keysetCursor.safeParse({ updatedOn: (records[index] as { sys_updated_on?: unknown }).sys_updated_on, sysId: (records[index] as { sys_id?: unknown }).sys_id });
    if (parsed.success && parsed.data.sysId.length === 32) return parsed.data;
  }
  return undefined;
}

/** Every sys_id of a table, ascending, in pages of 10,000 (`sysparm_fields=sys_id`: ids only). */
export async function* listTableIds(input: { client: ServiceNowClient; table: string; signal: AbortSignal; pageSize?: number }): AsyncIterable<{ ok: true; ids: string[] } | { ok: false; failure: UpstreamFailure }> {
  const limit = input.pageSize ?? 10_000;
  let after = '';
  for (;;) {
    // A listing cut short must not read as "the table ends here": reconciliation would flag the rest deleted.
    if (input.signal.aborted) {
      yield { ok: false, failure: { kind: 'network', code: 'interrupted', attempts: 0 } };
      return;
    }
    const answer = await input.client.list(input.table, { query: after ? `sys_id>${after}^ORDERBYsys_id` : 'ORDERBYsys_id', fields: ['sys_id'], limit });
    if (!answer.ok) {
      yield answer;
      return;
    }
    const result = answer.value.body?.result;
    if (!Array.isArray(result)) {
      // Not the Table API's answer (a hibernating instance answers 200 with an HTML page).
      yield { ok: false, failure: { kind: 'http', code: 'invalid_response', status: answer.value.status, body: undefined, attempts: answer.value.attempts } };
      return;
    }
    const ids = result.map((record) => (record as { sys_id?: unknown }).sys_id).filter((id): id is string => typeof id === 'string' && /^[0-9a-f]{32}$/.test(id));
    if (ids.length === 0) return;
    after = ids[ids.length - 1]!;
    yield { ok: true, ids };
    if (ids.length < limit) return;
  }
}

type TableRecord = { sys_id: string; number: string; sys_updated_on: string };

/** A model over one ServiceNow table: keyset pulls, ids-only listing, sys_id as the external id. */
function tableModel<Raw extends TableRecord>(input: {
  table: string;
  fields: readonly string[];
  record: z.ZodType<Raw>;
  content: (record: Raw) => Record<string, unknown>;
  schedule: SyncModel['schedule'];
  apply?: SyncModel<ServiceNowSettings, ServiceNowClient, Raw, KeysetCursor>['apply'];
}): SyncModel<ServiceNowSettings, ServiceNowClient, Raw, KeysetCursor> {
  return defineModel({
    name: input.table,
    record: input.record,
    cursor: keysetCursor,
    schedule: input.schedule,
    externalId: (record) => record.sys_id,
    label: (record) => record.number,
    updatedAt: (record) => record.sys_updated_on,
    content: input.content,
    pull: ({ client, instance, cursor, resumed, signal }) => pullTable({ client, table: input.table, fields: input.fields, settings: instance.settings, cursor, resumed, signal }),
    listIds: ({ client, signal }) => listTableIds({ client, table: input.table, signal }),
    ...(input.apply ? { apply: input.apply } : {}),
  });
}

export const incidents = tableModel<IncidentRecord>({
  table: 'incident',
  fields: INCIDENT_FIELDS,
  record: incidentRecord,
  content: incidentContent,
  schedule: { everySeconds: 300, jitterSeconds: 30 },
  apply: async ({ trx, instance, changes, runtime, now }) => {
    const source = sourceSystem(instance.name);
    const rows = changes.map(({ record }) => record);
    // Two records of one page with one number (an import, a clone: ServiceNow allows it) share the mirror's
    // unique number: the second keeps a marked one.
    const taken = new Set<string>();
    const numbers = rows.map((r) => {
      const number = taken.has(r.number) ? `${r.number}~${r.sys_id.slice(0, 8)}` : r.number;
      taken.add(number);
      return number;
    });
    // Whether each P1 of the page was a P1 already (few, usually none: no query at all). Asked apart, by id: a
    // join with the whole mirror in the upsert was planned as a scan of it while its statistics still said
    // "empty", which made an initial sync slower with every page (bench/servicenow-sync).
    const p1Ids = rows.filter((r) => r.priority === '1').map((r) => r.sys_id);
    const before = p1Ids.length === 0 ? [] : await trx.selectFrom('incidents').select(['external_id', 'priority']).where('source_system', '=', source).where('external_id', 'in', p1Ids).execute();
    const wasP1 = new Map(before.map((row) => [row.external_id, row.priority === 1]));
    // The domain's incident mirror, one statement for the page (time-ordered ids: new rows land at the end of
    // the primary key's index). A record that was not P1 before and is now (new, or raised to P1) is announced
    // once: routing turns it into the review task and the channel alert.
    const mirror = () =>
      sql<{ id: string; external_id: string; number: string; priority: number; short_description: string; state: string }>`
        insert into incidents (id, source_system, external_id, number, priority, state, short_description, content_hash, created_at, updated_at)
        select id, ${source}, external_id, number, priority, state, short_description, null, ${now}::timestamptz, ${now}::timestamptz
        from unnest(${rows.map(() => uuidv7())}::uuid[], ${rows.map((r) => r.sys_id)}::text[], ${numbers}::text[], ${rows.map((r) => Number(r.priority))}::int[], ${rows.map((r) => incidentState(r.state))}::text[], ${rows.map((r) => r.short_description)}::text[])
          as t(id, external_id, number, priority, state, short_description)
        on conflict (source_system, external_id) do update
          set number = excluded.number, priority = excluded.priority, state = excluded.state, short_description = excluded.short_description, updated_at = excluded.updated_at
        returning id, external_id, number, priority, short_description, state`.execute(trx);
    // A number held by another record of ours (deleted upstream, its number now on a new record) must not fail
    // the page: the stale row keeps a marked number, the record ServiceNow has now gets the real one. Rare, so
    // it is mended only when it happens (a savepoint keeps the page's transaction alive).
    await sql`savepoint incident_mirror`.execute(trx);
    const written = await mirror().catch(async (error: unknown) => {
      if ((error as { constraint?: string }).constraint !== 'incidents_source_number_key') throw error;
      await sql`rollback to savepoint incident_mirror`.execute(trx);
      await sql`
        update incidents set number = number || '~' || left(external_id, 8)
        where source_system = ${source} and number = any(${numbers}::text[]) and external_id <> all(${rows.map((r) => r.sys_id)}::text[])`.execute(trx);
      return mirror();
    });
    for (const incident of written.rows) {
      const was = wasP1.get(incident.external_id);
      if (incident.priority !== 1 || was === true || ['resolved', 'closed', 'cancelled'].includes(incident.state)) continue;
      await runtime.events.emit(
        trx,
        newEvent(
          {
            type: was === undefined ? 'incident.created' : 'incident.updated',
            subject: { kind: 'incident', id: incident.id, label: incident.number },
            summary: `${incident.number} (P1) ${incident.short_description}`,
            priority: 1,
            data: { state: incident.state, source, externalId: incident.external_id, review: true, ...(instance.settings.reviewAssignee ? { reviewAssignee: instance.settings.reviewAssignee } : {}) },
          },
          now,
        ),
      );
    }
  },
});

export const changeRequests = tableModel<z.infer<typeof changeRequestRecord>>({
  table: 'change_request',
  fields: CHANGE_FIELDS,
  record: changeRequestRecord,
  content: changeRequestContent,
  schedule: { everySeconds: 900, jitterSeconds: 60 },
});
