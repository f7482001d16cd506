/**
 * Outbound mail through the organisation's SMTP relay (nodemailer), configured by `SMTP_*`. The rest of the
 * service sees only `MailSender`: one message in, a Result out, the relay's refusals sorted into permanent
 * (it would refuse the same message again: a rejected recipient) and transient (try again later).
 *
 * The password goes to nodemailer and nowhere else: nodemailer's own logger is off (its debug transcript would
 * hold the AUTH exchange), and refusals carry the relay's reply, never the credentials.
 */
import ipaddr from 'ipaddr.js';
import { createTransport } from 'nodemailer';
import type { NodemailerError } from 'nodemailer/lib/errors';
import type { Config } from '../../config.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import type { Logger } from '../../logger.ts';

export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** A stable Message-ID (`<…@…>`), so a receiver can recognise a message we had to send twice. */
  messageId?: string | undefined;
  headers?: Record<string, string> | undefined;
}

/** The narrow port the notifier depends on (tests and other transports implement it too). */
export interface MailSender {
  readonly from: string;
  send(mail: OutgoingMail): Promise<Result<{ messageId: string }>>;
  close(): void;
}

/** Submission port: STARTTLS when the relay offers it. 465 means TLS from the first byte. */
const DEFAULT_PORT = 587;

export type MailConfig = Pick<Config, 'SMTP_HOST' | 'SMTP_PORT' | 'SMTP_USERNAME' | 'SMTP_PASSWORD' | 'SMTP_FROM_ADDRESS'>;

/**
 * The relay from config, or undefined when outbound mail is not configured (`SMTP_HOST` and
 * `SMTP_FROM_ADDRESS` are both needed).
 *
 * @example
 * const mail = createMailSender(config, logger);
 * const sent = await mail?.send({ to: 'ann@example.com', subject: 'Hi', text: 'Hi', html: '<p>Hi</p>' });
 */
export function createMailSender(config: MailConfig, logger: Logger): MailSender | undefined {
  const host = config.SMTP_HOST;
  const from = config.SMTP_FROM_ADDRESS;
  if (!host || !from) return undefined;
  const port = config.SMTP_PORT ?? DEFAULT_PORT;
  const secure = port === 465;
  const username = config.SMTP_USERNAME;
  if (username && !config.SMTP_PASSWORD) logger.warn('SMTP_USERNAME is set without SMTP_PASSWORD: the relay will likely refuse the login');
  const transport = createTransport({
    host,
    port,
    secure,
    // A login only when a user name is configured; its password never crosses the network in clear text,
    // except to a relay on this very host.
    ...(username ? { auth: { user: username, pass: config.SMTP_PASSWORD ?? '' }, requireTLS: !secure && !isLoopback(host) } : {}),
    // Bounded waits: a send ends (and the job retries later) rather than holding a worker for minutes.
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    dnsTimeout: 10_000,
    socketTimeout: 30_000,
    logger: false,
    debug: false,
    // Messages are built from our own text; nothing in them may make nodemailer read a file or fetch a URL.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    from,
    async send(mail) {
      try {
        const info = await transport.sendMail({
          from,
          to: mail.to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          ...(mail.messageId ? { messageId: mail.messageId } : {}),
          // RFC 3834: automatic mail, so out-of-office replies are not sent back to us.
          headers: { 'Auto-Submitted': 'auto-generated', ...mail.headers },
        });
        return ok({ messageId: info.messageId });
      } catch (error) {
        return refusalOf(error);
      }
    },
    close: () => transport.close(),
  };
}

function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  return ipaddr.isValid(host) && ipaddr.process(host).range() === 'loopback';
}

/**
 * A failed send as a refusal: `smtp_550` (the relay's reply code) or `smtp_econnection` (nodemailer's code
 * when there was no reply). Permanent only when the relay refused the message for good (5xx except 503);
 * connection failures, timeouts and 4xx replies are worth another try, and so is a refused login: that is
 * our configuration, not the message, and the retries deliver it once the credentials are fixed.
 */
export function refusalOf(error: unknown): Result<never> {
  const failure = (error ?? {}) as NodemailerError;
  const reply = typeof failure.response === 'string' ? failure.response.replace(/\s+/g, ' ').trim() : undefined;
  const code = failure.responseCode ? `smtp_${failure.responseCode}` : `smtp_${(failure.code ?? 'error').toLowerCase()}`;
  const message = (reply ? `the mail relay answered: ${reply}` : failure.message || 'the mail relay could not be reached').slice(0, 500);
  const permanent = failure.permanent === true && failure.code !== 'EAUTH';
  return refuse(code, message, permanent ? { permanent: true } : {});
}
