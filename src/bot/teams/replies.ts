/**
 * Replies to Teams activities, sent by jobs (the request path only touches the database): a turn's reply card is
 * written on its delivery (`inbound_events.result`) in the statement that marks it processed, with an
 * inbound outbox row naming it (src/bot/teams/inbound.ts); the outbox relays staged deliveries to `teams.replies`, which enqueues one
 * `teams.reply` per delivery, its job id the delivery's (a second relay enqueues nothing twice). Each reply is
 * posted through the sender under the key `reply:<delivery id>`, so a retried job never posts it twice.
 */
import { z } from 'zod';
import { type JobContext, type JobDefinition, defineJob } from '../../jobs/define-job.ts';
import type { Result } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';
import type { AdaptiveCard } from './cards.ts';
import type { TeamsJobDeps } from './job-deps.ts';

export interface StagedResult {
  /** The reply to send in the activity's conversation. */
  reply?: { text: string; card: AdaptiveCard };
  /** An invoke's answer, given again to a redelivery of the same invoke. */
  invoke?: { status: number; body: unknown };
}

/**
 * An inbound job (relayed by the outbox, up to 100 deliveries at once) that turns each staged delivery into one
 * job of `target`, its id the delivery's: a retry of this job, or a second relay, enqueues nothing twice.
 */
export function fanOut(name: string, target: () => JobDefinition<z.ZodType<{ inboundId: string }>, TeamsJobDeps>) {
  return defineJob({
    name,
    schema: z.object({ inboundIds: z.array(z.uuid()).min(1).max(500) }),
    handler: async ({ inboundIds }, { deps }: JobContext<TeamsJobDeps>) => {
      let enqueued = 0;
      for (const inboundId of inboundIds) if (await deps.jobs.enqueue(target(), { inboundId }, { id: inboundId })) enqueued++;
      return { deliveries: inboundIds.length, enqueued };
    },
  });
}

/**
 * What a job does with the sender's answer: done; deferred as a new job for when Teams or the pacing says
 * (this one completes, nothing sleeps); given up for good (logged); or thrown for the queue to retry.
 */
export async function afterPost(
  posted: Result<{ posted: boolean }>,
  options: { again: (startAfter: number) => Promise<unknown>; logger: Logger; what: string; inboundId: string },
): Promise<{ posted: boolean } | { deferredSeconds: number } | { undeliverable: string }> {
  if (posted.ok) return { posted: posted.value.posted };
  const { refusal } = posted;
  if (refusal.retryAfterSeconds !== undefined) {
    await options.again(refusal.retryAfterSeconds);
    return { deferredSeconds: refusal.retryAfterSeconds };
  }
  if (refusal.permanent) {
    options.logger.warn({ inboundId: options.inboundId, code: refusal.code }, `a Teams ${options.what} cannot be delivered`);
    return { undeliverable: refusal.code };
  }
  throw Object.assign(new Error(refusal.message), { code: refusal.code });
}

/** Staged replies become one `teams.reply` job each. */
export const teamsReplies = fanOut('teams.replies', () => teamsReply);

const replySchema = z.object({ text: z.string(), card: z.looseObject({ type: z.literal('AdaptiveCard') }) });

export const teamsReply = defineJob({
  name: 'teams.reply',
  schema: z.object({ inboundId: z.uuid() }),
  policy: { retryDelaySeconds: 10, retryLimit: 6 },
  handler: async ({ inboundId }, { deps, logger }: JobContext<TeamsJobDeps>) => {
    if (!deps.teams) throw Object.assign(new Error('Teams cannot send from this worker (MICROSOFT_APP_PASSWORD is not set)'), { code: 'teams_not_configured' });
    const row = await deps.db.selectFrom('inbound_events').select(['body', 'result']).where('id', '=', inboundId).where('source', '=', 'teams').executeTakeFirst();
    const reply = replySchema.safeParse((row?.result as StagedResult | null)?.reply);
    if (!row || !reply.success) {
      logger.error({ inboundId }, 'a staged Teams reply holds no card; skipped');
      return { skipped: true };
    }
    const activity = JSON.parse(Buffer.from(row.body).toString('utf8')) as { conversation?: { id?: unknown } };
    const conversationId = typeof activity.conversation?.id === 'string' ? activity.conversation.id : '';
    const posted = await deps.teams.sender.post({ key: `reply:${inboundId}`, conversationId, text: reply.data.text, card: reply.data.card as unknown as AdaptiveCard });
    return afterPost(posted, { again: (startAfter: number): Promise<unknown> => deps.jobs.enqueue(teamsReply, { inboundId }, { startAfter }), logger, what: 'reply', inboundId });
  },
});
