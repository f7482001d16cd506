/**
 * What happens to an authenticated Teams activity before it may have effects: its tenant must be allowed
 * (TEAMS_ALLOWED_TENANTS, else MICROSOFT_APP_TENANT_ID's alone), and it is recorded in `inbound_events` (source
 * `teams`), unique per delivery: `<type>:<conversation id>:<activity id>`, so a redelivered message and a
 * repeated card click (an invoke keeps its own id) have no second effect. File attachments' download addresses
 * are kept only encrypted beside the body (src/bot/teams/sealing.ts). Recording a refusal or a repeat
 * has no effect either; how processing ended is written on the delivery, as for Slack.
 *
 * Plain data in, plain data out: nothing here knows botbuilder (src/bot/teams/adapter.ts is the only seam).
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import { Batcher } from '../../db/batcher.ts';
import type { Clock } from '../../clock.ts';
import { storable } from '../../db/storable.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
import type { Logger } from '../../logger.ts';
import { type StagedResult, teamsReplies } from './replies.ts';
import { sealActivity } from './sealing.ts';

type Activity = Record<string, unknown>;

export type TeamsDelivery = { kind: 'new'; inboundId: string } | { kind: 'duplicate' } | { kind: 'refused'; code: 'tenant_not_allowed' | 'malformed_activity'; message: string };

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);
const field = (value: unknown, key: string) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);

/** The Entra tenant an activity comes from: `channelData.tenant.id`, or the conversation's `tenantId`. */
export function activityTenant(activity: Activity): string | undefined {
  return (str(field(field(activity.channelData, 'tenant'), 'id')) ?? str(field(activity.conversation, 'tenantId')))?.toLowerCase();
}

/** The tenants served: TEAMS_ALLOWED_TENANTS, else the app's own tenant (single tenant); none configured: none. */
export function allowedTenants(config: { TEAMS_ALLOWED_TENANTS?: readonly string[] | undefined; MICROSOFT_APP_TENANT_ID?: string | undefined }): readonly string[] {
  return config.TEAMS_ALLOWED_TENANTS ?? (config.MICROSOFT_APP_TENANT_ID ? [config.MICROSOFT_APP_TENANT_ID.toLowerCase()] : []);
}

/** The delivery id: what makes a repeat recognisable (storable, at most 500 characters). */
export function teamsDeliveryId(activity: Activity): string | undefined {
  const type = str(activity.type);
  const id = str(activity.id);
  const conversation = str(field(activity.conversation, 'id'));
  if (!type || !id || !conversation) return undefined;
  const key = `${type}:${conversation}:${id}`;
  if (!storable(key)) return undefined;
  return key.length <= 500 ? key : `${type}:sha256:${createHash('sha256').update(key).digest('hex')}`;
}

/** What the inbox writes: a new activity, or how one ended (processed, with its result, maybe a reply staged). */
export type InboxOp =
  | { kind: 'record'; deliveryId: string; type: string; body: Buffer; sealed: string | null }
  | { kind: 'settle'; inboundId: string; result: StagedResult & { evidence?: unknown } };

/**
 * Where authenticated activities are recorded and their outcomes written, with group commit (the shared
 * Batcher, as Slack's receiver): activities that arrive while a batch is being written are recorded together
 * in the next one, and the outcomes of turns that ended meanwhile ride in the same statement. At low load each
 * is written at once; under load one statement and one commit serve many. Nothing is answered before its
 * batch committed. A refusal is recorded on its own (rare, and nothing processes it).
 */
export interface TeamsInbox {
  /** Checks the tenant and records the activity: new (with its row's id), a repeat, or refused (kept, with why). */
  record(activity: Activity): Promise<TeamsDelivery>;
  /** Marks a delivery processed with its result, staging its reply; false when it was no longer 'received'. */
  settle(inboundId: string, result: StagedResult): Promise<boolean>;
  /** Resolves when everything added so far is written. */
  flush(): Promise<void>;
}

export function createTeamsInbox(deps: { db: Db; clock: Clock; tenants: readonly string[]; keyring?: Keyring | undefined; logger?: Logger }): TeamsInbox {
  const writer = new Batcher<InboxOp, string | boolean | undefined>((ops) => writeTeamsInbox(deps.db, deps.clock.now(), ops), {
    onBatchFailure: (error, items) => deps.logger?.warn({ err: error, items }, 'teams inbox batch failed; writing it one by one'),
  });
  return {
    async record(activity) {
      const deliveryId = teamsDeliveryId(activity);
      if (!deliveryId) return refuse(deps, activity, undefined, 'malformed_activity', 'the activity has no type, id or conversation id that can be stored');
      const tenant = activityTenant(activity);
      if (!tenant || !deps.tenants.includes(tenant)) return refuse(deps, activity, deliveryId, 'tenant_not_allowed', `tenant ${tenant && storable(tenant) ? tenant.slice(0, 64) : '(none)'} is not served (TEAMS_ALLOWED_TENANTS)`);
      const { body, sealed } = sealActivity(activity, deliveryId, deps.keyring);
      const id = await writer.add({ kind: 'record', deliveryId, type: str(activity.type)!.slice(0, 64), body, sealed });
      return typeof id === 'string' ? { kind: 'new', inboundId: id } : { kind: 'duplicate' };
    },
    async settle(inboundId, result) {
      return (await writer.add({ kind: 'settle', inboundId, result })) === true;
    },
    flush: () => writer.flush(),
  };
}

/** A refused activity is kept (quarantined, with why) so an operator sees it; its file addresses are dropped. */
async function refuse(deps: { db: Db; clock: Clock }, activity: Activity, deliveryId: string | undefined, code: 'tenant_not_allowed' | 'malformed_activity', message: string): Promise<TeamsDelivery> {
  const now = deps.clock.now();
  const id = deliveryId ?? `refused:${createHash('sha256').update(JSON.stringify(activity)).digest('hex')}`;
  const { body } = sealActivity(activity, id, undefined);
  await deps.db
    .insertInto('inbound_events')
    .values({ source: 'teams', delivery_id: id, kind: str(activity.type)?.slice(0, 64) ?? 'unknown', status: 'quarantined', error: JSON.stringify({ code, message }), body, headers: '{}', received_at: now, processed_at: now })
    .onConflict((oc) => oc.constraint('inbound_events_source_delivery_id_key').doNothing())
    .execute();
  return { kind: 'refused', code, message };
}

/**
 * One statement for a batch (or for one op, inside a caller's transaction): the outcomes are written on their
 * deliveries ('received' ones only) and the replies among them staged in one outbox row for `teams.replies`;
 * the new activities are inserted, unique per delivery id. A delivery id already recorded gets no id (a repeat),
 * unless its processing failed: then this delivery takes the row over and is processed again. The same id twice
 * in one batch: the first wins. The outcomes and the inserts never touch the same row: a row being settled is
 * 'received', and an insert only takes over a row that was 'failed' when the statement began. Safe to run
 * again with some of the same ops (the Batcher does, one by one, after a failed batch).
 *
 * Returns per op: a record's new row id (undefined for a repeat); a settle's true when it was written.
 */
export async function writeTeamsInbox(db: Db, now: Date, ops: readonly InboxOp[]): Promise<(string | boolean | undefined)[]> {
  const settles = ops.flatMap((op) => (op.kind === 'settle' ? [op] : []));
  const seen = new Set<string>();
  const records = ops.flatMap((op) => (op.kind === 'record' && !seen.has(op.deliveryId) && seen.add(op.deliveryId) ? [op] : []));
  const { rows } = await sql<{ id: string; delivery_id: string | null }>`
    with settle (id, result, stage) as (
      select * from unnest(${settles.map((op) => op.inboundId)}::uuid[], ${settles.map((op) => JSON.stringify(op.result))}::jsonb[], ${settles.map((op) => op.result.reply !== undefined)}::boolean[])),
    marked as (
      update inbound_events set status = 'processed', processed_at = ${now}, result = settle.result
        from settle
       where inbound_events.id = settle.id and inbound_events.status = 'received'
      returning inbound_events.id, settle.stage),
    staged as (
      insert into inbound_job_outbox (job_name, inbound_ids)
      select ${teamsReplies.name}, array_agg(id order by id) from marked where stage having count(*) > 0),
    incoming (delivery_id, kind, body, sealed) as (
      select * from unnest(${records.map((op) => op.deliveryId)}::text[], ${records.map((op) => op.type)}::text[], ${records.map((op) => op.body)}::bytea[], ${records.map((op) => op.sealed)}::jsonb[])),
    recorded as (
      insert into inbound_events (source, delivery_id, kind, body, sealed, headers, received_at)
      select 'teams', delivery_id, kind, body, sealed, '{}'::jsonb, ${now} from incoming
      on conflict on constraint inbound_events_source_delivery_id_key do update
         set status = 'received', error = null, processed_at = null, received_at = excluded.received_at, body = excluded.body, sealed = excluded.sealed, attempts = 1
       where inbound_events.status = 'failed'
      returning inbound_events.id, inbound_events.delivery_id)
    select id::text, delivery_id from recorded
    union all
    select id::text, null from marked`.execute(db);
  const ids = new Map<string, string>();
  const settled = new Set<string>();
  for (const row of rows) {
    if (row.delivery_id === null) settled.add(row.id);
    else ids.set(row.delivery_id, row.id);
  }
  return ops.map((op) => {
    if (op.kind === 'settle') return settled.has(op.inboundId);
    const id = ids.get(op.deliveryId);
    ids.delete(op.deliveryId);
    return id;
  });
}

/** Marks one delivery processed with its result and stages its reply, inside the caller's transaction. */
export async function settleWithResult(db: Db, inboundId: string, result: StagedResult & { evidence?: unknown }, now: Date): Promise<boolean> {
  const [written] = await writeTeamsInbox(db, now, [{ kind: 'settle', inboundId, result }]);
  return written === true;
}

/** Writes how processing ended: processed, or failed with why (only a delivery still 'received'). */
export async function settleTeamsActivity(deps: { db: Db; clock: Clock }, inboundId: string, failure?: { code: string; message: string }): Promise<void> {
  await deps.db
    .updateTable('inbound_events')
    .set(failure ? { status: 'failed', processed_at: deps.clock.now(), error: JSON.stringify(failure) } : { status: 'processed', processed_at: deps.clock.now() })
    .where('id', '=', inboundId)
    .where('status', '=', 'received')
    .execute();
}
