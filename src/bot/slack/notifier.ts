/**
 * Slack delivery of routed notifications (channels by name or id, and DMs to linked users), and re-rendering
 * of every message already posted about a task or incident when it changes.
 */
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import { ok, refuse } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';
import type { Notifier, Rerenderer } from '../notifier.ts';
import { renderSubject } from '../render-subject.ts';
import { escapeMrkdwn, toBlocks } from './block-kit.ts';
import { SlackSender } from './sender.ts';
import { type SlackTokens, createSlackTokens } from './tokens.ts';
import type { Keyring } from '../../connectors/sdk/crypto.ts';

export function createSlackNotifier(db: Db, sender: SlackSender): Notifier {
  return {
    surface: 'slack',
    async deliver({ notificationId, target, message, subject }) {
      let channel = target;
      let team: string | undefined;
      if (target.startsWith('user:')) {
        const link = await db.selectFrom('identity_links').select(['tenant', 'external_id']).where('user_id', '=', target.slice(5)).where('surface', '=', 'slack').executeTakeFirst();
        if (!link) return refuse('no_slack_identity', 'that user has no linked Slack account', { permanent: true });
        // A DM goes through the user's own workspace (its installation's token).
        team = link.tenant;
        const dm = await sender.openDm(link.external_id, team);
        if (!dm.ok) return dm;
        channel = dm.value;
      }
      const rendered = (subject ? await renderSubject(db, subject) : undefined) ?? message;
      const posted = await sender.post({ key: notificationId, channel, team, text: escapeMrkdwn(rendered.text), blocks: toBlocks(rendered), ...(subject ? { subject } : {}) });
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
        .select(['channel_id', 'ts', 'team'])
        .where('subject_kind', '=', subject.kind)
        .where('subject_id', '=', subject.id)
        .where('status', '=', 'posted')
        .execute();
      if (messages.length === 0) return ok({ updated: 0 });
      const rendered = await renderSubject(db, subject);
      if (!rendered) return ok({ updated: 0 });
      let updated = 0;
      for (const { channel_id: channel, ts, team } of messages) {
        if (!channel || !ts) continue;
        const result = await sender.update({ channel, ts, team: team ?? undefined, text: escapeMrkdwn(rendered.text), blocks: toBlocks(rendered) });
        if (result.ok) updated++;
        else if (result.refusal.permanent) logger.warn({ channel, code: result.refusal.code }, 'a posted message can no longer be updated');
        else return result; // rate-limited or unreachable: the job retries (updates are idempotent)
      }
      return ok({ updated });
    },
  };
}

/** The worker role's Slack pieces, when Slack can be reached: a bot token, or installations to take one from. */
export function createSlackDelivery(deps: { db: Db; clock: Clock; logger: Logger; botToken: string | undefined; apiUrl: string | undefined; keyring: Keyring | undefined }):
  | { sender: SlackSender; notifier: Notifier; rerenderer: Rerenderer; tokens: SlackTokens }
  | undefined {
  if (!deps.botToken && !deps.keyring) return undefined;
  const tokens = createSlackTokens({ db: deps.db, keyring: deps.keyring, botToken: deps.botToken, apiUrl: deps.apiUrl });
  const sender = new SlackSender({ db: deps.db, clock: deps.clock, logger: deps.logger, apiUrl: deps.apiUrl, token: (team) => tokens.tokenFor(team) });
  return { sender, tokens, notifier: createSlackNotifier(deps.db, sender), rerenderer: createSlackRerenderer(deps.db, sender, deps.logger) };
}
