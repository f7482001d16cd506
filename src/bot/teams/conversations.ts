/**
 * The conversations the bot may write to, and the Teams ids of the people it has seen.
 *
 * A conversation reference (what a proactive message continues) is stored per conversation and tenant when the
 * app is installed (`installationUpdate` add), when the bot is added to a team, channel or chat
 * (`conversationUpdate` naming the bot in `membersAdded`), and on the first activity from a conversation not
 * stored yet; an uninstall (`installationUpdate` remove, or the bot in `membersRemoved`) marks it inactive, as
 * a 403 from Teams does (src/bot/teams/sender.ts). A later install, or anyone writing to the bot there again,
 * makes it active again; a new service URL (Teams may move a conversation) replaces the stored reference.
 *
 * People's Teams ids (`29:…`, what `refresh.userIds` names) are kept by Entra object id and tenant.
 */
import { sql } from 'kysely';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import { storable } from '../../db/storable.ts';
import { referenceOf } from './adapter.ts';
import { conversationKind } from './commands.ts';

type Activity = Record<string, unknown>;

const str = (value: unknown) => (typeof value === 'string' && value ? value : undefined);
const field = (value: unknown, key: string) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);

/** What an activity says about the bot's place in its conversation: added (install), removed, or nothing. */
export function membershipChange(activity: Activity): 'added' | 'removed' | undefined {
  if (activity.type === 'installationUpdate') {
    const action = str(activity.action);
    return action === 'add' || action === 'add-upgrade' ? 'added' : action === 'remove' || action === 'remove-upgrade' ? 'removed' : undefined;
  }
  if (activity.type !== 'conversationUpdate') return undefined;
  const bot = str(field(activity.recipient, 'id'));
  const names = (list: unknown) => (Array.isArray(list) ? list.map((member) => str(field(member, 'id'))) : []);
  if (bot && names(activity.membersAdded).includes(bot)) return 'added';
  if (bot && names(activity.membersRemoved).includes(bot)) return 'removed';
  return undefined;
}

const clip = (value: string | undefined, max: number) => (value && storable(value) ? value.slice(0, max) : null);

/**
 * Stores (or refreshes) the activity's conversation reference. `active` true: the bot was added (stored and
 * active); false: it was removed (inactive); undefined (an ordinary activity): stores a conversation not seen
 * yet, and otherwise writes nothing unless it was inactive or its service URL changed (one indexed insert that
 * does nothing, on the request path).
 */
export async function storeConversation(deps: { db: Db; clock: Clock }, activity: Activity, tenant: string, active?: boolean): Promise<void> {
  const conversationId = str(field(activity.conversation, 'id'));
  if (!conversationId || !storable(conversationId) || conversationId.length > 500) return;
  const kind = conversationKind(activity);
  const now = deps.clock.now();
  const values = {
    conversation_id: conversationId,
    tenant_id: tenant,
    kind,
    team_id: clip(str(field(field(activity.channelData, 'team'), 'id')), 500),
    channel_name: kind === 'channel' ? clip(str(field(activity.conversation, 'name')) ?? str(field(field(activity.channelData, 'channel'), 'name')), 200) : null,
    user_aad_object_id: kind === 'personal' ? clip(str(field(activity.from, 'aadObjectId'))?.toLowerCase(), 64) : null,
    reference: JSON.stringify(referenceOf(activity)),
    active: active ?? true,
    inactive_reason: active === false ? `${str(activity.type)} removed the bot` : null,
    updated_at: now,
  };
  await deps.db
    .insertInto('teams_conversations')
    .values(values)
    .onConflict((oc) => {
      const target = oc.column('conversation_id');
      if (active === false) return target.doUpdateSet({ active: false, inactive_reason: values.inactive_reason, updated_at: now });
      const refreshed = { reference: values.reference, active: true, inactive_reason: null, updated_at: now, ...(values.channel_name ? { channel_name: values.channel_name } : {}), ...(values.team_id ? { team_id: values.team_id } : {}) };
      if (active === true) return target.doUpdateSet(refreshed);
      // An ordinary activity writes only when something changed: the conversation was marked inactive (someone
      // writes to the bot again after blocking it), or Teams now serves it from another service URL.
      return target
        .doUpdateSet(refreshed)
        .where((eb) => eb.or([eb('teams_conversations.active', '=', false), eb(sql`teams_conversations.reference->>'serviceUrl'`, 'is distinct from', sql`excluded.reference->>'serviceUrl'`)]));
    })
    .execute();
}

/**
 * `storeConversation` for the request path: an ordinary activity from a conversation this process stored (or
 * found unchanged) within `ttlMs` with the same service URL writes nothing, saving a round trip per activity.
 * A conversation another process marked inactive (a 403 seen by a worker) is made active again by the first
 * activity after the entry expires, so at most `ttlMs` late. Membership changes always write.
 */
export function createConversationStore(deps: { db: Db; clock: Clock }, options: { ttlMs?: number; capacity?: number } = {}) {
  const ttlMs = options.ttlMs ?? 60_000;
  const capacity = options.capacity ?? 10_000;
  const stored = new Map<string, { serviceUrl: string; at: number }>();
  return async (activity: Activity, tenant: string, active?: boolean): Promise<void> => {
    const conversationId = str(field(activity.conversation, 'id'));
    const serviceUrl = str(activity.serviceUrl) ?? '';
    const now = deps.clock.now().getTime();
    if (active === undefined && conversationId) {
      const known = stored.get(conversationId);
      if (known && known.serviceUrl === serviceUrl && now - known.at < ttlMs) return;
    }
    await storeConversation(deps, activity, tenant, active);
    if (!conversationId) return;
    if (active === false) {
      stored.delete(conversationId);
      return;
    }
    if (stored.size >= capacity) stored.clear();
    stored.set(conversationId, { serviceUrl, at: now });
  };
}

/** Keeps the sender's Teams id by Entra object id (a seen pair is skipped in this process). */
export function createUserMemory(db: Db, clock: Clock, capacity = 10_000) {
  const seen = new Set<string>();
  return async (activity: Activity, tenant: string): Promise<void> => {
    const mri = str(field(activity.from, 'id'));
    const objectId = str(field(activity.from, 'aadObjectId'))?.toLowerCase();
    if (!mri || !objectId || !storable(mri) || mri.length > 200 || objectId.length > 64) return;
    const key = `${tenant}|${objectId}|${mri}`;
    if (seen.has(key)) return;
    await db
      .insertInto('teams_users')
      .values({ tenant_id: tenant, aad_object_id: objectId, mri, updated_at: clock.now() })
      .onConflict((oc) => oc.columns(['tenant_id', 'aad_object_id']).doUpdateSet({ mri, updated_at: clock.now() }).where('teams_users.mri', '<>', mri))
      .execute();
    if (seen.size >= capacity) seen.clear();
    seen.add(key);
  };
}
