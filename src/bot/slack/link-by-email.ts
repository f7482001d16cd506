/**
 * Links a Slack user to the ProjectX user with the same email, when Slack vouches for the address (users.info
 * and users.list return the profile email with users:read.email, and `is_email_confirmed` says the person
 * confirmed it). Two ways in, one rule (`linkSlackMember`): the `slack.link-by-email` job below, queued on an
 * unlinked user's first contact so no Slack call is made before the ack, and the directory sync
 * (directory-sync.ts), which links a whole workspace before anyone types a command.
 *
 * A member who is not linked gets a stable reason code, logged with the Slack user id (never the email) and
 * returned, so "why is this person not linked?" has an answer.
 */
import { z } from 'zod';
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import { findUserByEmail, findUserByIdentity, identitiesOf, linkIdentity } from '../../domain/users.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { Logger } from '../../logger.ts';
import type { SlackJobDeps } from './job-deps.ts';

/** Slackbot is listed as a person (`is_bot: false`) in every workspace. */
export const SLACKBOT_ID = 'USLACKBOT';

/** Why a Slack member was not linked by email. */
export const LINK_SKIP_REASONS = [
  /** A bot user, or Slackbot. */
  'bot',
  /** A deactivated account. */
  'deleted',
  /** A member of another workspace or organization than the one being linked. */
  'other_tenant',
  /** No profile email, or one the person has not confirmed. */
  'no_confirmed_email',
  /** No ProjectX user has that email. */
  'no_projectx_user',
  /** The ProjectX user with that email is already linked to another Slack account of this workspace. */
  'user_linked_elsewhere',
  /** This Slack account is already linked to another (inactive) ProjectX user. */
  'identity_taken',
  /** Slack's user object lacked what the decision needs (no id). */
  'unreadable',
] as const;
export type LinkSkipReason = (typeof LINK_SKIP_REASONS)[number];

/** Reasons only an admin can resolve (`/projectx link` with a code): logged as warnings. */
export const NEEDS_AN_ADMIN: ReadonlySet<LinkSkipReason> = new Set(['user_linked_elsewhere', 'identity_taken']);

/** The fields of a Slack user object (users.info `user`, users.list `members[]`) the decision reads. */
export const slackMemberSchema = z.object({
  id: z.string().min(1),
  team_id: z.string().nullish(),
  deleted: z.boolean().nullish(),
  is_bot: z.boolean().nullish(),
  is_email_confirmed: z.boolean().nullish(),
  profile: z.object({ email: z.string().nullish() }).nullish(),
  enterprise_user: z.object({ enterprise_id: z.string().nullish() }).nullish(),
});
export type SlackMember = z.output<typeof slackMemberSchema>;

export type LinkOutcome = { linked: true; userId: string } | { linked: 'already' } | { linked: false; reason: LinkSkipReason; userId?: string };

/**
 * Links `member` to the ProjectX user with their confirmed email, in workspace `tenant` (the team id, or the
 * enterprise id on Enterprise Grid). An identity already linked is left as it is; a link is written and
 * audited in one transaction. `via` says which path linked it (identity_links.verified_via and the audit).
 */
export async function linkSlackMember(deps: Pick<JobDeps, 'db' | 'clock'>, tenant: string, member: SlackMember, via: string): Promise<LinkOutcome> {
  if (member.is_bot || member.id === SLACKBOT_ID) return { linked: false, reason: 'bot' };
  if (member.deleted) return { linked: false, reason: 'deleted' };
  if (member.team_id !== tenant && member.enterprise_user?.enterprise_id !== tenant) return { linked: false, reason: 'other_tenant' };
  const identity = { surface: 'slack' as const, tenant, externalId: member.id };
  if (await findUserByIdentity(deps.db, identity)) return { linked: 'already' };
  const email = member.profile?.email;
  if (!email || member.is_email_confirmed !== true) return { linked: false, reason: 'no_confirmed_email' };
  const user = await findUserByEmail(deps.db, email);
  if (!user) return { linked: false, reason: 'no_projectx_user' };
  // One Slack account per person and workspace by email: a second one (an old account's address reused, say)
  // is for an admin to confirm, not for the address to claim.
  const others = (await identitiesOf(deps.db, user.id, 'slack', tenant)).filter((other) => other.externalId !== member.id);
  if (others.length > 0) return { linked: false, reason: 'user_linked_elsewhere', userId: user.id };
  return deps.db.transaction().execute(async (trx): Promise<LinkOutcome> => {
    const linked = await linkIdentity(trx, user.id, identity, via);
    if (!linked.ok) return { linked: false, reason: 'identity_taken', userId: user.id };
    if (!linked.value.created) return { linked: 'already' };
    await appendAudit(trx, { actor: SYSTEM_ACTOR, action: 'identity.link', objectType: 'user', objectId: user.email, outcome: 'success', at: deps.clock.now(), detail: { surface: 'slack', tenant, externalId: member.id, via } });
    return { linked: true, userId: user.id };
  });
}

/** Logs why a member was not linked: the Slack user id and the reason, never the email address. */
export function logNotLinked(logger: Logger, outcome: Extract<LinkOutcome, { linked: false }>, who: { tenant: string; slackUserId: string }, quiet: boolean): void {
  const fields = { ...who, reason: outcome.reason, ...(outcome.userId ? { userId: outcome.userId } : {}) };
  if (NEEDS_AN_ADMIN.has(outcome.reason)) logger.warn(fields, 'slack user not linked by email: an admin must link them (/projectx link)');
  else if (quiet) logger.debug(fields, 'slack user not linked by email');
  else logger.info(fields, 'slack user not linked by email');
}

export const slackLinkByEmail = defineJob({
  name: 'slack.link-by-email',
  schema: z.object({ tenant: z.string(), slackUserId: z.string() }),
  // One lookup per user at a time; a user who is still unlinked after it is told to use /projectx link.
  policy: { queuePolicy: 'stately', retryDelaySeconds: 10, retryLimit: 3 },
  handler: async ({ tenant, slackUserId }, { deps, logger }: JobContext<SlackJobDeps>) => {
    if (!deps.slack) return { skipped: 'slack not configured' };
    if (await findUserByIdentity(deps.db, { surface: 'slack', tenant, externalId: slackUserId })) return { linked: 'already' };
    const client = await deps.slack.tokens.clientFor(tenant);
    const info = await client.users.info({ user: slackUserId });
    const member = slackMemberSchema.safeParse(info.user);
    const outcome: LinkOutcome = member.success ? await linkSlackMember(deps, tenant, member.data, 'slack_verified_email') : { linked: false, reason: 'unreadable' };
    if (outcome.linked === false) {
      // A person waiting for an answer: worth a line at info (the directory sync logs these quietly).
      logNotLinked(logger, outcome, { tenant, slackUserId }, false);
      return { linked: false, reason: outcome.reason };
    }
    return { linked: outcome.linked };
  },
});
