/**
 * Linking a Teams user to ProjectX by the roster: on an unlinked person's first activity, a job asks Teams for
 * them as a member of the conversation (`TeamsInfo.getMember`, through the adapter) and links their Entra
 * identity (object id in the tenant) to the ProjectX user whose email is their roster email, or their UPN when
 * Teams gives no email. Teams' roster is the directory the tenant's admins keep, so the address is verified by
 * Entra ID; the object id must be the one the activity came from (`aadObjectId ?? objectId`: the REST payload
 * says `objectId`), and guests and anonymous members are never linked by address. Anyone else uses the link
 * code flow (`link`, then an admin runs `projectx users link-code`).
 */
import { z } from 'zod';
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import { findUserByEmail, findUserByIdentity, identitiesOf, linkIdentity } from '../../domain/users.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { TeamsConversationReference } from './adapter.ts';
import type { TeamsJobDeps } from './job-deps.ts';

export type RosterLinkOutcome =
  | { linked: true; userId: string }
  | { linked: 'already' }
  | { linked: false; reason: 'not_in_roster' | 'other_identity' | 'guest' | 'no_email' | 'no_projectx_user' | 'user_linked_elsewhere' | 'identity_taken' | 'no_conversation' };

export const teamsLinkByRoster = defineJob({
  name: 'teams.link-by-roster',
  schema: z.object({ tenant: z.string(), aadObjectId: z.string(), memberId: z.string(), conversationId: z.string() }),
  // One lookup per person at a time (singletonKey: tenant and object id).
  policy: { queuePolicy: 'stately', retryDelaySeconds: 10, retryLimit: 3 },
  handler: async (payload, { deps, logger }: JobContext<TeamsJobDeps>): Promise<RosterLinkOutcome> => {
    if (!deps.teams) throw Object.assign(new Error('Teams cannot be asked from this worker (MICROSOFT_APP_PASSWORD is not set)'), { code: 'teams_not_configured' });
    const identity = { surface: 'teams' as const, tenant: payload.tenant, externalId: payload.aadObjectId };
    if (await findUserByIdentity(deps.db, identity)) return { linked: 'already' };
    const conversation = await deps.db.selectFrom('teams_conversations').select('reference').where('conversation_id', '=', payload.conversationId).executeTakeFirst();
    if (!conversation) return { linked: false, reason: 'no_conversation' };
    const member = await deps.teams.adapter.member(conversation.reference as TeamsConversationReference, payload.memberId);
    const outcome = await decide(deps, identity, member);
    if (outcome.linked === false) logger.info({ tenant: payload.tenant, aadObjectId: payload.aadObjectId, reason: outcome.reason }, 'teams user not linked by the roster (they can use link)');
    return outcome;
  },
});

async function decide(deps: TeamsJobDeps, identity: { surface: 'teams'; tenant: string; externalId: string }, member: Awaited<ReturnType<NonNullable<TeamsJobDeps['teams']>['adapter']['member']>>): Promise<RosterLinkOutcome> {
  if (!member) return { linked: false, reason: 'not_in_roster' };
  if (member.objectId?.toLowerCase() !== identity.externalId || (member.tenantId && member.tenantId.toLowerCase() !== identity.tenant)) return { linked: false, reason: 'other_identity' };
  if (member.userRole === 'guest' || member.userRole === 'anonymous') return { linked: false, reason: 'guest' };
  const email = member.email ?? (member.userPrincipalName?.includes('@') ? member.userPrincipalName : undefined);
  if (!email) return { linked: false, reason: 'no_email' };
  const user = await findUserByEmail(deps.db, email);
  if (!user) return { linked: false, reason: 'no_projectx_user' };
  // One Teams identity per person and tenant by address: another is for an admin to confirm.
  if ((await identitiesOf(deps.db, user.id, 'teams', identity.tenant)).some((other) => other.externalId !== identity.externalId)) return { linked: false, reason: 'user_linked_elsewhere' };
  return deps.db.transaction().execute(async (trx): Promise<RosterLinkOutcome> => {
    const linked = await linkIdentity(trx, user.id, identity, 'teams_roster_email');
    if (!linked.ok) return { linked: false, reason: 'identity_taken' };
    if (!linked.value.created) return { linked: 'already' };
    await appendAudit(trx, { actor: SYSTEM_ACTOR, action: 'identity.link', objectType: 'user', objectId: user.email, outcome: 'success', at: deps.clock.now(), detail: { surface: 'teams', tenant: identity.tenant, externalId: identity.externalId, via: 'teams_roster_email' } });
    return { linked: true, userId: user.id };
  });
}
