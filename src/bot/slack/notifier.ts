/**
 * Slack delivery of routed notifications (channels by name or id, and DMs to linked users), and re-rendering
 * of every message already posted about a task or incident when it changes.
 */
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';
import type { Notifier } from '../notifier.ts';
import { renderSubject } from '../render-subject.ts';
import { toBlocks } from './block-kit.ts';
import { WebClient } from '@slack/web-api';
import { SlackSender } from './sender.ts';

export interface Rerenderer {
  surface: string;
  /** Updates every message this surface posted about the subject; returns how many. */
  rerender(subject: { kind: string; id: string }): Promise<Result<{ updated: number }>>;
}

export function createSlackNotifier(db: Db, sender: SlackSender): Notifier {
  return {
    surface: 'slack',
    async deliver({ notificationId, target, message, subject }) {
      let channel = target;
      if (target.startsWith('user:')) {
        const link = await db.selectFrom('identity_links').select(['tenant', 'external_id']).where('user_id', '=', target.slice(5)).where('surface', '=', 'slack').executeTakeFirst();
        if (!link) return refuse('no_slack_identity', 'that user has no linked Slack account', { permanent: true });
        const dm = await sender.openDm(link.external_id);
        if (!dm.ok) return dm;
        channel = dm.value;
      }
      const rendered = (subject ? await renderSubject(db, subject) : undefined) ?? message;
      const posted = await sender.post({ key: notificationId, channel, text: rendered.text, blocks: toBlocks(rendered), ...(subject ? { subject } : {}) });
      return posted.ok ? ok({ ref: `${posted.value.channel}/${posted.value.ts}` }) : posted;
    },
  };
}

export function createSlackRerenderer(db: Db, sender: SlackSender, logger: Logger): Rerenderer {
  return {
    surface: 'slack',
    async rerender(subject) {
      const messages = await db
        .selectFrom('slack_messages')
        .select(['channel_id', 'ts'])
        .where('subject_kind', '=', subject.kind)
        .where('subject_id', '=', subject.id)
        .where('status', '=', 'posted')
        .execute();
      if (messages.length === 0) return ok({ updated: 0 });
      const rendered = await renderSubject(db, subject);
      if (!rendered) return ok({ updated: 0 });
      let updated = 0;
      for (const { channel_id: channel, ts } of messages) {
        if (!channel || !ts) continue;
        const result = await sender.update({ channel, ts, text: rendered.text, blocks: toBlocks(rendered) });
        if (result.ok) updated++;
        else if (result.refusal.permanent) logger.warn({ channel, code: result.refusal.code }, 'a posted message can no longer be updated');
        else return result; // rate-limited or unreachable: the job retries (updates are idempotent)
      }
      return ok({ updated });
    },
  };
}

/** The worker role's Slack pieces, when a bot token is configured. */
export function createSlackDelivery(deps: { db: Db; clock: Clock; logger: Logger; botToken: string | undefined; apiUrl: string | undefined }):
  | { sender: SlackSender; notifier: Notifier; rerenderer: Rerenderer; client: WebClient; botToken: string }
  | undefined {
  if (!deps.botToken) return undefined;
  const botToken = deps.botToken;
  const sender = new SlackSender({ db: deps.db, clock: deps.clock, logger: deps.logger, apiUrl: deps.apiUrl, token: () => Promise.resolve(botToken) });
  // For idempotent reads and view publishes; posting goes through the sender.
  const client = new WebClient(botToken, { ...(deps.apiUrl ? { slackApiUrl: deps.apiUrl } : {}), retryConfig: { retries: 2 }, rejectRateLimitedCalls: true });
  return { sender, client, botToken, notifier: createSlackNotifier(deps.db, sender), rerenderer: createSlackRerenderer(deps.db, sender, deps.logger) };
}
