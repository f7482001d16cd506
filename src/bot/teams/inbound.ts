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
import type { Db } from '../../db/database.ts';
import type { Clock } from '../../clock.ts';
import { storable } from '../../db/storable.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';
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

/**
 * Checks the tenant and records the activity. A refused activity is recorded too (quarantined, with why), so an
 * operator sees it; a repeat of one already recorded is a duplicate, unless its processing failed (then this
 * delivery takes it over and is processed again).
 */
export async function recordTeamsActivity(deps: { db: Db; clock: Clock; tenants: readonly string[]; keyring?: Keyring | undefined }, activity: Activity): Promise<TeamsDelivery> {
  const deliveryId = teamsDeliveryId(activity);
  const now = deps.clock.now();
  const refuse = async (code: 'tenant_not_allowed' | 'malformed_activity', message: string): Promise<TeamsDelivery> => {
    const id = deliveryId ?? `refused:${createHash('sha256').update(JSON.stringify(activity)).digest('hex')}`;
    // A refused activity's file addresses are of no use to anyone: dropped, not sealed.
    const { body } = sealActivity(activity, id, undefined);
    await deps.db
      .insertInto('inbound_events')
      .values({ source: 'teams', delivery_id: id, kind: str(activity.type)?.slice(0, 64) ?? 'unknown', status: 'quarantined', error: JSON.stringify({ code, message }), body, headers: '{}', received_at: now, processed_at: now })
      .onConflict((oc) => oc.constraint('inbound_events_source_delivery_id_key').doNothing())
      .execute();
    return { kind: 'refused', code, message };
  };
  if (!deliveryId) return refuse('malformed_activity', 'the activity has no type, id or conversation id that can be stored');
  const tenant = activityTenant(activity);
  if (!tenant || !deps.tenants.includes(tenant)) return refuse('tenant_not_allowed', `tenant ${tenant && storable(tenant) ? tenant.slice(0, 64) : '(none)'} is not served (TEAMS_ALLOWED_TENANTS)`);
  const { body, sealed } = sealActivity(activity, deliveryId, deps.keyring);
  const inserted = await deps.db
    .insertInto('inbound_events')
    .values({ source: 'teams', delivery_id: deliveryId, kind: str(activity.type)!.slice(0, 64), body, sealed, headers: '{}', received_at: now })
    .onConflict((oc) => oc.constraint('inbound_events_source_delivery_id_key').doUpdateSet({ status: 'received', error: null, processed_at: null, received_at: now, body, sealed, attempts: 1 }).where('inbound_events.status', '=', 'failed'))
    .returning('id')
    .executeTakeFirst();
  return inserted ? { kind: 'new', inboundId: inserted.id } : { kind: 'duplicate' };
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
