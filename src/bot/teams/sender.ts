/**
 * Posting to Teams without double posts or hot loops: the Teams counterpart of src/bot/slack/sender.ts, and the
 * one way anything reaches a Teams conversation (replies, notifications, re-renders, confirmations).
 *
 * - Only to a stored conversation (`teams_conversations`, written when the bot is installed or spoken to), and
 *   never to one marked inactive (uninstalled or blocked: Teams answered 403).
 * - Idempotent by (message key, conversation): a row in `teams_messages` is written before the call
 *   ('posting') and completed with Teams' activity id after it ('posted'); a retry that finds 'posted' stops.
 * - Never a duplicate post when a response is lost. Teams cannot be searched for what the bot posted (the Bot
 *   Connector lists no activities, and it takes no idempotency key), so the guarantee is at most once where
 *   the outcome is unknown: botbuilder's own retries are removed (src/bot/teams/adapter.ts), a refusal Teams
 *   answered (429, 412, 502, 504, any 4xx) proves nothing was posted and may be retried, but a request that got
 *   no answer, or a 'posting' row found by a later attempt (its process stopped mid-call), may have been posted:
 *   the row becomes 'unknown' and is never posted again. It is a permanent refusal (`teams_outcome_unknown`),
 *   so a notification falls back to email like any other undeliverable one, and it is counted in
 *   `teams_send_outcome_unknown_total`.
 * - Paced per conversation within Teams' limits for a bot (7 messages a second, 60 in 30 seconds): a send
 *   that would exceed them is refused with the wait, for the job to come back then (nothing sleeps). 429, 412,
 *   502 and 504 are refused the same way, with Teams' Retry-After when it sent one, else for the job's backoff.
 */
import { type Kysely, sql } from 'kysely';
import { Counter } from 'prom-client';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import type { Database } from '../../db/schema.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { type TeamsAdapter, type TeamsConversationReference, TeamsOutboundError, type TeamsOutgoing, TeamsSendError } from './adapter.ts';
import { type AdaptiveCard, cardAttachment } from './cards.ts';

/** Teams' limits for one bot in one conversation (notes §8): per second and per 30 seconds. */
export const TEAMS_PACE = [
  { windowMs: 1000, max: 7 },
  { windowMs: 30_000, max: 60 },
] as const;

/** Statuses Microsoft says to retry (notes §8): Teams answered, so nothing was posted. */
const RETRYABLE = new Set([429, 412, 502, 503, 504]);

export interface TeamsPostInput {
  key: string;
  conversationId: string;
  text: string;
  card: AdaptiveCard;
  subject?: { kind: string; id: string } | undefined;
}

export interface TeamsSenderOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  adapter: Pick<TeamsAdapter, 'send' | 'update'>;
  metrics?: Metrics | undefined;
}

export class TeamsSender {
  readonly #options: TeamsSenderOptions;
  readonly #unknown: Counter<string> | undefined;

  constructor(options: TeamsSenderOptions) {
    this.#options = options;
    this.#unknown = options.metrics
      ? new Counter({ name: 'teams_send_outcome_unknown_total', help: 'Teams posts whose response was lost (posted at most once: not sent again)', registers: [options.metrics.registry] })
      : undefined;
  }

  /** The stored conversation a post may go to, or why not. */
  async #conversation(conversationId: string): Promise<Result<TeamsConversationReference>> {
    const row = await this.#options.db.selectFrom('teams_conversations').select(['reference', 'active', 'inactive_reason']).where('conversation_id', '=', conversationId).executeTakeFirst();
    if (!row) return refuse('unknown_teams_conversation', `the bot has no stored conversation ${conversationId.slice(0, 80)} (it is added there by installing the app)`, { permanent: true });
    if (!row.active) return refuse('teams_conversation_inactive', `conversation ${conversationId.slice(0, 80)} is inactive (${row.inactive_reason ?? 'uninstalled'})`, { permanent: true });
    return ok(row.reference as TeamsConversationReference);
  }

  async post(input: TeamsPostInput): Promise<Result<{ activityId: string; posted: boolean }>> {
    const { db, clock, logger } = this.#options;
    const existing = await db.selectFrom('teams_messages').select(['id', 'status', 'activity_id']).where('message_key', '=', input.key).where('conversation_id', '=', input.conversationId).executeTakeFirst();
    if (existing?.status === 'posted' && existing.activity_id) return ok({ activityId: existing.activity_id, posted: false });
    if (existing) {
      // 'posting' left by an attempt that never finished (its process stopped mid-call), or 'unknown': it may be there.
      if (existing.status === 'posting') {
        await db.updateTable('teams_messages').set({ status: 'unknown' }).where('id', '=', existing.id).where('status', '=', 'posting').execute();
        this.#unknown?.inc();
        logger.warn({ conversation: input.conversationId.slice(0, 80) }, 'an earlier Teams post never finished; it may have arrived, so it is not posted again');
      }
      return this.#unknownOutcome();
    }
    const reference = await this.#conversation(input.conversationId);
    if (!reference.ok) return reference;
    const paced = await this.#pace(input.conversationId);
    if (!paced.ok) return paced;
    const claimed = await db
      .insertInto('teams_messages')
      .values({ message_key: input.key, conversation_id: input.conversationId, status: 'posting', subject_kind: input.subject?.kind ?? null, subject_id: input.subject?.id ?? null, attempt_started_at: clock.now() })
      .onConflict((oc) => oc.constraint('teams_messages_key_conversation_key').doNothing())
      .returning('id')
      .executeTakeFirst();
    // Another attempt claimed it between our read and now: it owns the post.
    if (!claimed) return refuse('teams_post_in_progress', 'another attempt is posting this message', { retryAfterSeconds: 5 });
    try {
      const sent = await this.#options.adapter.send(reference.value, outgoing(input));
      await db.updateTable('teams_messages').set({ status: 'posted', activity_id: sent.id }).where('id', '=', claimed.id).execute();
      return ok({ activityId: sent.id, posted: true });
    } catch (error) {
      if (error instanceof TeamsSendError && error.status === undefined) {
        await db.updateTable('teams_messages').set({ status: 'unknown' }).where('id', '=', claimed.id).execute();
        this.#unknown?.inc();
        logger.warn({ conversation: input.conversationId.slice(0, 80), err: error.message }, 'a Teams post got no answer; it may have arrived, so it is not posted again');
        return this.#unknownOutcome();
      }
      // Teams answered (or no token was had): nothing was posted; forget the attempt.
      await db.deleteFrom('teams_messages').where('id', '=', claimed.id).execute();
      return this.#failure(error, input.conversationId);
    }
  }

  /** Replaces a posted message (re-renders are idempotent: a retry sends the same card again). Paced like posts. */
  async update(input: { conversationId: string; activityId: string; text: string; card: AdaptiveCard }): Promise<Result<void>> {
    const reference = await this.#conversation(input.conversationId);
    if (!reference.ok) return reference;
    const paced = await this.#pace(input.conversationId);
    if (!paced.ok) return paced;
    try {
      await this.#options.adapter.update(reference.value, input.activityId, outgoing(input));
      return ok(undefined);
    } catch (error) {
      if (error instanceof TeamsSendError && error.status === undefined) return refuse('teams_unreachable', error.message);
      return this.#failure(error, input.conversationId);
    }
  }

  #unknownOutcome<T>(): Result<T> {
    return refuse('teams_outcome_unknown', 'Teams never answered an earlier attempt, which may have posted it; it is not posted twice', { permanent: true });
  }

  /**
   * Claims a slot in the conversation's send log if both windows have room (under a per-conversation
   * transaction lock, so concurrent senders count each other), else refuses with the wait until the oldest
   * send in the full window leaves it.
   */
  async #pace(conversationId: string): Promise<Result<void>> {
    const now = this.#options.clock.now();
    const longest = Math.max(...TEAMS_PACE.map((limit) => limit.windowMs));
    return this.#options.db.transaction().execute(async (trx: Kysely<Database>) => {
      await sql`select pg_advisory_xact_lock(hashtextextended(${`teams-pace:${conversationId}`}, 0))`.execute(trx);
      await trx.deleteFrom('teams_send_log').where('conversation_id', '=', conversationId).where('sent_at', '<=', new Date(now.getTime() - longest)).execute();
      const recent = (await trx.selectFrom('teams_send_log').select('sent_at').where('conversation_id', '=', conversationId).orderBy('sent_at', 'desc').execute()).map((row) => row.sent_at.getTime());
      let waitMs = 0;
      for (const { windowMs, max } of TEAMS_PACE) {
        const inWindow = recent.filter((at) => at > now.getTime() - windowMs);
        // The max-th most recent send must leave the window before another fits.
        if (inWindow.length >= max) waitMs = Math.max(waitMs, inWindow[max - 1]! + windowMs - now.getTime());
      }
      if (waitMs > 0) return refuse('paced', `conversation is paced (Teams allows ${TEAMS_PACE.map((limit) => `${limit.max} per ${limit.windowMs / 1000} s`).join(', ')})`, { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) });
      await trx.insertInto('teams_send_log').values({ conversation_id: conversationId, sent_at: now }).execute();
      return ok(undefined);
    });
  }

  async #failure<T>(error: unknown, conversationId: string): Promise<Result<T>> {
    if (error instanceof TeamsOutboundError) return refuse(error.code, error.message);
    if (!(error instanceof TeamsSendError)) throw error;
    const status = error.status ?? 0;
    if (status === 403) {
      // Uninstalled, or the person blocked the bot (MessageWritesBlocked): stop writing there.
      await this.#options.db
        .updateTable('teams_conversations')
        .set({ active: false, inactive_reason: `Teams answered 403${error.code ? ` ${error.code}` : ''}`, updated_at: this.#options.clock.now() })
        .where('conversation_id', '=', conversationId)
        .execute();
      this.#options.logger.warn({ conversation: conversationId.slice(0, 80), code: error.code }, 'teams conversation marked inactive: the bot may no longer write there');
      return refuse('teams_conversation_blocked', `Teams refused the bot in this conversation (${error.code ?? 'HTTP 403'}); it is marked inactive`, { permanent: true });
    }
    if (RETRYABLE.has(status)) return refuse(status === 429 ? 'rate_limited' : `teams_http_${status}`, error.message, error.retryAfterSeconds !== undefined ? { retryAfterSeconds: Math.max(1, error.retryAfterSeconds) } : {});
    if (status >= 500) return refuse(`teams_http_${status}`, error.message);
    return refuse(`teams_http_${status}`, error.message, { permanent: true });
  }
}

function outgoing(input: { text: string; card: AdaptiveCard }): TeamsOutgoing {
  return { text: input.text, attachments: [cardAttachment(input.card)] };
}
