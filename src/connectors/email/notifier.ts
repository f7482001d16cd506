/**
 * The `email` surface's notifier: routed email targets (an address), DM targets (`user:<id>`, sent to the
 * user's own address; this is also how a Slack DM that could not be delivered reaches its reader, see
 * fallback.ts), each rendered as plain text and HTML with the subject's current card and deep links.
 */
import { z } from 'zod';
import type { Notifier } from '../../bot/notifier.ts';
import { renderSubject } from '../../bot/render-subject.ts';
import type { Db } from '../../db/database.ts';
import { ok, refuse } from '../../domain/result.ts';
import { findUserById } from '../../domain/users.ts';
import type { JobPolicy } from '../../jobs/define-job.ts';
import { renderEmail } from './render.ts';
import type { MailSender } from './transport.ts';

const emailAddress = z.email();

export function createEmailNotifier(db: Db, sender: MailSender): Notifier {
  const domain = sender.from.slice(sender.from.lastIndexOf('@') + 1);
  return {
    surface: 'email',
    async deliver({ notificationId, target, message, subject }) {
      let to = target;
      if (target.startsWith('user:')) {
        const user = await findUserById(db, target.slice('user:'.length));
        if (!user || !user.active) return refuse('no_email_recipient', 'that user does not exist or is deactivated', { permanent: true });
        to = user.email;
      }
      if (!emailAddress.safeParse(to).success) return refuse('invalid_email_address', `"${to}" is not an email address`, { permanent: true });
      const current = subject ? await renderSubject(db, subject) : undefined;
      const rendered = renderEmail(message, current);
      // One Message-ID per notification: a retry after a lost reply is the same message to the receiver.
      const sent = await sender.send({ to, ...rendered, messageId: `<notification.${notificationId}@${domain}>`, headers: { 'X-ProjectX-Notification': notificationId } });
      return sent.ok ? ok({ ref: sent.value.messageId }) : sent;
    },
  };
}

/**
 * How email notifications are retried (the runbook): a send the relay refused for now, or could not be made,
 * is tried again after 10 minutes, without backoff, six times (an hour in all); then the job goes to the
 * dead-letter queue and the notification stays `failed`, visible in the table.
 */
export const EMAIL_DELIVERY_POLICY = { retryDelaySeconds: 600, retryBackoff: false, retryLimit: 6 } satisfies Partial<JobPolicy>;
