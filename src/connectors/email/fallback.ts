/**
 * The email fallback of chat notifications. When Slack (or another chat surface) fails a notification for
 * good, the same notification goes by email: a DM (assignee or approver) to the user's own address, a channel
 * post to `EMAIL_FALLBACK_ADDRESS`, or nowhere when that is unset. The notification pipeline
 * (src/jobs/domain-events.ts) records the email notification and its delivery job in the transaction that
 * marks the chat one undeliverable or failed; this module only decides where it goes and what it says.
 */
import type { Message } from '../../bot/message.ts';
import type { Config } from '../../config.ts';
import type { Surface, TargetKind } from '../../db/schema.ts';

export type EmailFallback = { ok: true; kind: TargetKind; target: string; message: Message } | { ok: false; reason: string };

const SURFACE_NAMES: Record<Surface, string> = { slack: 'Slack', teams: 'Teams', email: 'email' };

/**
 * Where a failed chat notification goes by email, with a line saying why it came by email.
 *
 * @example
 * emailFallback({ surface: 'slack', target_kind: 'assignee_dm', target: 'user:7', message }, 'no_slack_identity: …', config)
 * // → { ok: true, kind: 'assignee_dm', target: 'user:7', message: { …, blocks: [ …, { type: 'context', … } ] } }
 */
export function emailFallback(
  notification: { surface: Surface; target_kind: TargetKind; target: string; message: Message },
  error: string,
  config: Pick<Config, 'EMAIL_FALLBACK_ADDRESS'>,
): EmailFallback {
  const { surface, target_kind: kind, target, message } = notification;
  if (surface === 'email') return { ok: false, reason: 'an email notification has no email fallback' };
  const where = SURFACE_NAMES[surface];
  const because = (place: string): Message => ({ ...message, blocks: [...message.blocks, { type: 'context', text: `Sent by email because it could not be delivered ${place} in ${where} (${error}).` }] });
  if ((kind === 'assignee_dm' || kind === 'approvers_dm') && target.startsWith('user:')) {
    // The same kind and target on the email surface: the email notifier sends it to the user's address.
    return { ok: true, kind, target, message: because('to you') };
  }
  if (kind === 'channel') {
    if (!config.EMAIL_FALLBACK_ADDRESS) return { ok: false, reason: `no email fallback for ${where} channel ${target}: EMAIL_FALLBACK_ADDRESS is not set` };
    return { ok: true, kind: 'email', target: config.EMAIL_FALLBACK_ADDRESS, message: because(`to channel ${target}`) };
  }
  return { ok: false, reason: `no email fallback for a ${kind} target` };
}
