/**
 * Links a Slack user to the ProjectX user with the same email, when Slack vouches for the address
 * (`users.info` with users:read.email returns only the verified profile email). Runs as a job on a Slack
 * user's first contact, so no Slack call is made before the ack.
 */
import { z } from 'zod';
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import { findUserByEmail, findUserByIdentity, linkIdentity } from '../../domain/users.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';

export const slackLinkByEmail = defineJob({
  name: 'slack.link-by-email',
  schema: z.object({ tenant: z.string(), slackUserId: z.string() }),
  // One lookup per user at a time; a user who is still unlinked after it is told to use /projectx link.
  policy: { queuePolicy: 'stately', retryDelaySeconds: 10, retryLimit: 3 },
  handler: async ({ tenant, slackUserId }, { deps, logger }: JobContext<JobDeps>) => {
    if (!deps.slack) return { skipped: 'slack not configured' };
    const identity = { surface: 'slack' as const, tenant, externalId: slackUserId };
    if (await findUserByIdentity(deps.db, identity)) return { linked: 'already' };
    const client = await deps.slack.tokens.clientFor(tenant);
    const info = await client.users.info({ user: slackUserId });
    const profile = info.user;
    const email = profile?.profile?.email;
    // Only an address Slack says the person confirmed, of a member of the workspace the request came from.
    const sameTenant = profile?.team_id === tenant || profile?.enterprise_user?.enterprise_id === tenant;
    if (!email || profile?.is_bot || profile?.deleted || profile?.is_email_confirmed !== true || !sameTenant) return { linked: false, reason: 'no confirmed email in this workspace' };
    const user = await findUserByEmail(deps.db, email);
    if (!user) return { linked: false, reason: 'no ProjectX user with that email' };
    const linked = await linkIdentity(deps.db, user.id, identity, 'slack_verified_email');
    if (!linked.ok) {
      logger.warn({ code: linked.refusal.code }, 'slack identity could not be linked by email');
      return { linked: false, reason: linked.refusal.code };
    }
    await deps.db.transaction().execute((trx) =>
      appendAudit(trx, { actor: SYSTEM_ACTOR, action: 'identity.link', objectType: 'user', objectId: user.email, outcome: 'success', at: deps.clock.now(), detail: { surface: 'slack', tenant, externalId: slackUserId, via: 'slack_verified_email' } }),
    );
    return { linked: true };
  },
});
