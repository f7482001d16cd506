/**
 * Posting to Slack without double posts or hot loops.
 *
 * - Idempotent by (message key, channel): a row in `slack_messages` is written before the call ('posting')
 *   and completed with the ts after it ('posted'). A retry finds 'posted' and stops; finding 'posting' means
 *   the last attempt's outcome is unknown (a lost response), so the channel's recent history is searched for
 *   the message's metadata key before posting again.
 * - The SDK's own retries are off (a lost response must not become a second post); a 429 comes back as a
 *   refusal carrying Retry-After, and the caller (a job) re-enqueues itself for then: nothing sleeps.
 * - Paced: each channel has a next-free slot about one second apart (Slack's chat.postMessage guidance);
 *   a post that would come too early is refused with the wait, again for the job to defer.
 */
import { WebAPIHTTPError, WebAPIPlatformError, WebAPIRateLimitedError, WebClient } from '@slack/web-api';
import { sql } from 'kysely';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';
import type { SlackBlock } from './block-kit.ts';
import { SlackTokenError } from './tokens.ts';

const PERMANENT_ERRORS = new Set(['channel_not_found', 'not_in_channel', 'is_archived', 'invalid_auth', 'account_inactive', 'token_revoked', 'no_permission', 'missing_scope', 'user_not_found', 'msg_too_long', 'invalid_blocks', 'message_not_found']);
export const METADATA_EVENT = 'projectx_message';

export interface SlackSenderOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  /** The bot token for a workspace (see tokens.ts). */
  token: (team?: string) => Promise<string>;
  apiUrl?: string | undefined;
  /** Minimum gap between two posts to one channel. */
  channelGapMs?: number;
}

export interface PostInput {
  key: string;
  channel: string;
  text: string;
  blocks: SlackBlock[];
  subject?: { kind: string; id: string };
  team?: string | undefined;
}

export class SlackSender {
  readonly #options: SlackSenderOptions;
  readonly #clients = new Map<string, WebClient>();

  constructor(options: SlackSenderOptions) {
    this.#options = options;
  }

  async #client(team?: string): Promise<WebClient> {
    const token = await this.#options.token(team);
    let client = this.#clients.get(token);
    if (!client) {
      client = new WebClient(token, { ...(this.#options.apiUrl ? { slackApiUrl: this.#options.apiUrl } : {}), retryConfig: { retries: 0 }, rejectRateLimitedCalls: true });
      this.#clients.set(token, client);
    }
    return client;
  }

  /**
   * Claims the channel's slot if it is free now (and moves it one gap ahead); otherwise refuses with the wait
   * until it frees. Nothing is reserved by a refusal, so posts that wait do not push each other further out.
   */
  async #pace(channel: string): Promise<Result<void>> {
    const gap = this.#options.channelGapMs ?? 1000;
    const now = this.#options.clock.now();
    const next = new Date(now.getTime() + gap);
    const claimed = await sql<{ channel: string }>`
      insert into slack_channel_pacing (channel, next_at) values (${channel}, ${next})
      on conflict (channel) do update set next_at = ${next} where slack_channel_pacing.next_at <= ${new Date(now.getTime() + 50)}
      returning channel`.execute(this.#options.db);
    if (claimed.rows.length > 0) return ok(undefined);
    const row = await this.#options.db.selectFrom('slack_channel_pacing').select('next_at').where('channel', '=', channel).executeTakeFirst();
    const waitMs = Math.max(50, (row?.next_at.getTime() ?? now.getTime()) - now.getTime());
    return refuse('paced', `channel ${channel} is paced`, { retryAfterSeconds: Math.ceil(waitMs / 1000) });
  }

  async post(input: PostInput): Promise<Result<{ channel: string; ts: string; posted: boolean }>> {
    const { db, clock } = this.#options;
    const existing = await db.selectFrom('slack_messages').selectAll().where('message_key', '=', input.key).where('channel', '=', input.channel).executeTakeFirst();
    if (existing?.status === 'posted' && existing.ts) return ok({ channel: existing.channel_id ?? input.channel, ts: existing.ts, posted: false });
    const client = await this.#client(input.team).catch((error: unknown) => error);
    if (!(client instanceof WebClient)) return this.#tokenFailure(client);
    if (existing?.status === 'posting') {
      const found = await this.#findPosted(client, input.channel, input.key, existing.attempt_started_at);
      if (found) {
        await db.updateTable('slack_messages').set({ status: 'posted', ts: found, channel_id: existing.channel_id ?? input.channel }).where('id', '=', existing.id).execute();
        this.#options.logger.info({ channel: input.channel }, 'an earlier post whose response was lost did arrive; not posting again');
        return ok({ channel: input.channel, ts: found, posted: false });
      }
    }
    const paced = await this.#pace(input.channel);
    if (!paced.ok) return paced;
    if (existing) {
      await db.updateTable('slack_messages').set({ attempt_started_at: clock.now() }).where('id', '=', existing.id).execute();
    } else {
      await db
        .insertInto('slack_messages')
        .values({ message_key: input.key, channel: input.channel, team: input.team ?? null, status: 'posting', subject_kind: input.subject?.kind ?? null, subject_id: input.subject?.id ?? null, attempt_started_at: clock.now() })
        .onConflict((oc) => oc.constraint('slack_messages_key_channel_key').doNothing())
        .execute();
    }
    try {
      const result = await client.chat.postMessage({
        channel: input.channel,
        text: input.text,
        blocks: input.blocks as never,
        metadata: { event_type: METADATA_EVENT, event_payload: { projectx_key: input.key } },
      });
      const ts = String(result.ts);
      // Keep the channel id Slack answers with (a name like "alerts" becomes C…): chat.update needs the id.
      const channelId = typeof result.channel === 'string' ? result.channel : input.channel;
      await db.updateTable('slack_messages').set({ status: 'posted', ts, channel_id: channelId }).where('message_key', '=', input.key).where('channel', '=', input.channel).execute();
      return ok({ channel: channelId, ts, posted: true });
    } catch (error) {
      return this.#failure(error, async () => {
        // Known not to have been posted: forget the attempt.
        await db.deleteFrom('slack_messages').where('message_key', '=', input.key).where('channel', '=', input.channel).where('status', '=', 'posting').execute();
      });
    }
  }

  async update(input: { channel: string; ts: string; text: string; blocks: SlackBlock[]; team?: string | undefined }): Promise<Result<void>> {
    try {
      const client = await this.#client(input.team);
      await client.chat.update({ channel: input.channel, ts: input.ts, text: input.text, blocks: input.blocks as never });
      return ok(undefined);
    } catch (error) {
      return this.#failure(error, () => Promise.resolve());
    }
  }

  /** The DM channel with a Slack user. */
  async openDm(slackUserId: string, team?: string  ): Promise<Result<string>> {
    try {
      const client = await this.#client(team);
      const result = await client.conversations.open({ users: slackUserId });
      const id = result.channel?.id;
      return id ? ok(id) : refuse('no_channel', 'Slack did not return a DM channel', { permanent: true });
    } catch (error) {
      return this.#failure(error, () => Promise.resolve());
    }
  }

  #tokenFailure<T>(error: unknown): Result<T> {
    if (error instanceof SlackTokenError) return refuse(error.code, error.message, { permanent: true });
    throw error;
  }

  async #findPosted(client: WebClient, channel: string, key: string, since: Date): Promise<string | undefined> {
    try {
      const history = await client.conversations.history({ channel, oldest: String(since.getTime() / 1000 - 5), limit: 100, include_all_metadata: true });
      const match = history.messages?.find((message) => (message as { metadata?: { event_payload?: { projectx_key?: unknown } } }).metadata?.event_payload?.projectx_key === key);
      return match?.ts;
    } catch (error) {
      this.#options.logger.warn({ err: error, channel }, 'could not search channel history for an earlier post; posting again');
      return undefined;
    }
  }

  async #failure<T>(error: unknown, notPosted: () => Promise<void>): Promise<Result<T>> {
    if (error instanceof SlackTokenError) return refuse(error.code, error.message, { permanent: true });
    if (error instanceof WebAPIRateLimitedError) {
      await notPosted();
      return refuse('rate_limited', `Slack asked us to wait ${error.retryAfter} s`, { retryAfterSeconds: Math.max(1, error.retryAfter) });
    }
    if (error instanceof WebAPIPlatformError) {
      await notPosted();
      const code = error.data.error;
      return refuse(`slack_${code}`, `Slack refused: ${code}`, PERMANENT_ERRORS.has(code) ? { permanent: true } : {});
    }
    if (error instanceof WebAPIHTTPError) return refuse('slack_http_error', `Slack answered HTTP ${error.statusCode}`);
    // A request error may have reached Slack (a lost response): the 'posting' row stays, and the retry looks first.
    return refuse('slack_unreachable', error instanceof Error ? error.message : 'Slack could not be reached');
  }
}
