/**
 * The inbound SMTP listener (web role, when `SMTP_INBOUND_PORT` is set): the organisation's MTA relays mail for
 * `evidence+…@` and `partner+…@` here. Nothing accepted is lost: each message is stored (messages.ts: the raw
 * message once, however many of our addresses it is for, and one `inbound_events` row per recipient, source
 * `email`, referring to it) together with each recipient's `email.process` job in one transaction, and only then
 * is DATA answered 250. When it cannot be stored the answer is 451, and the MTA keeps the message and tries again.
 *
 * Trust boundary: the listener sits behind the MTA on a private address (default 127.0.0.1) and offers neither
 * STARTTLS nor AUTH. TLS from the internet, SPF, DKIM and DMARC are the MTA's job, and it must relay only mail
 * it accepted for our mailboxes; the From address of what it relays is taken as checked. Here: a size limit
 * (25 MB: 552 for a SIZE declared too large at MAIL FROM, and for what arrives over it), clients outside
 * SMTP_INBOUND_ALLOWED_NETWORKS refused at connect (554), at most 10 recipients (452 past them, which an MTA
 * sends again separately), and everything else decided when the message is processed (process.ts), where a
 * message that cannot be processed, or is for an address that maps to nothing, is quarantined, not dropped.
 *
 * A repeat (the MTA did not see our 250 and sends again) is recognised by its delivery id, the recipient with
 * the Message-ID (or the SHA-256 of the message when it has none), and stored once.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Counter } from 'prom-client';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { type Logger, runWithContext } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { parseMailbox } from './addresses.ts';
import { emailRows, messageSha256, storeMessageBody } from './messages.ts';
import { EMAIL_SOURCE, emailProcess } from './process.ts';

/** The largest message accepted: evidence files are 10 MB each, and base64 makes a message a third larger. */
export const MAX_MESSAGE_BYTES = 25 * 1024 * 1024;
const MAX_RECIPIENTS = 10;
/** Messages are buffered whole: this bounds the memory of concurrent transfers. */
const MAX_CLIENTS = 20;
/** On shutdown, how long a transfer in progress may take before the connection is cut (the MTA sends again). */
const CLOSE_TIMEOUT_MS = 2000;

export interface SmtpListener {
  host: string;
  port: number;
  /** Still accepting connections (a readiness check). */
  readonly listening: boolean;
  close(): Promise<void>;
}

export interface SmtpListenerOptions {
  db: Db;
  jobs: Pick<JobRuntime, 'enqueue'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  maxBytes?: number | undefined;
  /** CIDRs allowed to connect (the MTA); anything else is refused with 554 before it can say a word. */
  allowedNetworks: readonly string[];
}

function connectionAllowed(remoteAddress: string, allowed: readonly [ipaddr.IPv4 | ipaddr.IPv6, number][]): boolean {
  try {
    const address = ipaddr.process(remoteAddress);
    return allowed.some(([network, bits]) => network.kind() === address.kind() && address.match(network, bits));
  } catch {
    return false;
  }
}

/** An SMTP reply other than 250, e.g. 451 (try again later) or 550 (no such mailbox). */
function smtpError(responseCode: number, message: string): Error & { responseCode: number } {
  return Object.assign(new Error(message), { responseCode });
}

/**
 * @example
 * const smtp = await startSmtpListener({ db, jobs, clock, logger, metrics, host: '127.0.0.1', port: 2525 });
 * cleanups.push({ name: 'SMTP listener', run: () => smtp.close() });
 */
export async function startSmtpListener(options: SmtpListenerOptions): Promise<SmtpListener> {
  const { db, jobs, clock, logger } = options;
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES;
  const messages = new Counter({
    name: 'email_inbound_total',
    help: 'Inbound email by outcome: accepted (one per recipient; the message itself is stored once), duplicate, refused_client, too_large, error (answered 451)',
    labelNames: ['outcome'],
    registers: [options.metrics.registry],
  });

  /** Reads the whole message (past the limit it is read and dropped: smtp-server answers 552 itself). */
  async function readMessage(stream: SMTPServerDataStream): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length <= maxBytes) chunks.push(chunk);
    }
    return stream.sizeExceeded || length > maxBytes ? undefined : Buffer.concat(chunks, length);
  }

  async function receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<string> {
    const raw = await readMessage(stream);
    if (!raw) {
      messages.inc({ outcome: 'too_large' });
      logger.warn({ session: session.id, limitBytes: maxBytes }, 'inbound email over the size limit refused (552)');
      return 'refused';
    }
    const correlationId = randomUUID();
    try {
      const stored = await runWithContext({ correlationId }, () => record(raw, session, correlationId));
      messages.inc({ outcome: 'accepted' }, stored.accepted.length);
      if (stored.duplicates > 0) messages.inc({ outcome: 'duplicate' }, stored.duplicates);
      logger.info({ correlationId, accepted: stored.accepted, duplicates: stored.duplicates, bytes: raw.length }, 'inbound email stored');
      return `OK: queued as ${[...stored.accepted, ...stored.repeated].join(', ')}`;
    } catch (error) {
      messages.inc({ outcome: 'error' });
      logger.error({ err: error, correlationId }, 'an inbound email could not be stored; answered 451 so the MTA sends it again');
      throw smtpError(451, 'the message could not be stored now; try again later');
    }
  }

  /** One transaction: the message once, a row per recipient referring to it (repeats recognised) and the processing job of each new one. */
  async function record(raw: Buffer, session: SMTPServerSession, correlationId: string) {
    const sha256 = createHash('sha256').update(raw).digest('hex');
    const messageId = messageIdOf(raw);
    const envelopeFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
    const now = clock.now();
    return db.transaction().execute(async (trx) => {
      await storeMessageBody(trx, { sha256, raw, now });
      const accepted: string[] = [];
      const repeated: string[] = [];
      let duplicates = 0;
      for (const { address } of session.envelope.rcptTo) {
        const recipient = address.toLowerCase();
        const headers = {
          'envelope-from': envelopeFrom,
          'envelope-to': recipient,
          'remote-address': session.remoteAddress,
          helo: String(session.hostNameAppearsAs || ''),
          ...(messageId ? { 'message-id': messageId } : {}),
        };
        const row = {
          source: EMAIL_SOURCE,
          kind: parseMailbox(recipient)?.kind ?? 'unmapped',
          headers: JSON.stringify(headers),
          // The message is in inbound_bodies, once for every recipient.
          body: Buffer.alloc(0),
          body_sha256: sha256,
          correlation_id: correlationId,
          received_at: now,
        };
        const deliveryId = `${recipient}:${messageId ?? `sha256:${sha256}`}`;
        const inserted = await trx
          .insertInto('inbound_events')
          .values({ ...row, delivery_id: deliveryId, status: 'received' })
          .onConflict((oc) => oc.constraint('inbound_events_source_delivery_id_key').doNothing())
          .returning('id')
          .executeTakeFirst();
        if (inserted) {
          await jobs.enqueue(emailProcess, { inboundId: inserted.id }, { db: trx });
          accepted.push(inserted.id);
          continue;
        }
        const earlier = await emailRows(trx)
          .select(['e.id', messageSha256])
          .where('e.source', '=', EMAIL_SOURCE)
          .where('e.delivery_id', '=', deliveryId)
          .executeTakeFirstOrThrow();
        if (earlier.sha256 === sha256) {
          duplicates++;
          repeated.push(earlier.id);
          continue;
        }
        // The same Message-ID with other content: not a repeat, but processing it could do something twice.
        // It waits in quarantine for an operator, who replays it if it is a message of its own.
        const kept = await trx
          .insertInto('inbound_events')
          .values({
            ...row,
            delivery_id: `${recipient}:sha256:${sha256}`,
            status: 'quarantined',
            error: JSON.stringify({ code: 'duplicate_message_id', message: `message ${earlier.id} to ${recipient} had the same Message-ID ${messageId ?? ''} and other content; replay this one if it is not a repeat` }),
          })
          .onConflict((oc) => oc.constraint('inbound_events_source_delivery_id_key').doNothing())
          .returning('id')
          .executeTakeFirst();
        if (kept) accepted.push(kept.id);
        else duplicates++;
      }
      return { accepted, repeated, duplicates };
    });
  }

  const allowed = options.allowedNetworks.map((network) => ipaddr.parseCIDR(network));
  const server = new SMTPServer({
    banner: 'ProjectX Integrations',
    // Behind the MTA: no TLS to terminate and no one to log in (see the module comment).
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: maxBytes,
    rejectOversized: true,
    maxRecipients: MAX_RECIPIENTS,
    maxClients: MAX_CLIENTS,
    disableReverseLookup: true,
    closeTimeout: CLOSE_TIMEOUT_MS,
    logger: false,
    onConnect(session, callback) {
      if (connectionAllowed(session.remoteAddress, allowed)) return callback();
      messages.inc({ outcome: 'refused_client' });
      logger.warn({ remoteAddress: session.remoteAddress }, 'SMTP listener: connection refused (not in SMTP_INBOUND_ALLOWED_NETWORKS)');
      callback(smtpError(554, 'this listener takes mail only from the organisation\'s mail server'));
    },
    // Every recipient is taken (only the MTA can connect, and it relays only our domains): mail to an address
    // that maps to nothing is quarantined when processed (`unmapped_recipient`), where an operator sees it,
    // rather than bounced.

    onData(stream, session, callback) {
      void receive(stream, session).then(
        (reply) => callback(null, reply),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });
  // Connection-level errors (a client resetting mid-session) arrive here; without a listener they would throw.
  server.on('error', (error: Error & { code?: string }) => logger.warn({ code: error.code, message: error.message }, 'SMTP listener: connection error'));

  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    host: options.host,
    port,
    get listening() {
      return server.server.listening;
    },
    close: () => (closing ??= new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}

/** The Message-ID header (`<…>`), read from the header section without parsing the rest. */
export function messageIdOf(raw: Buffer): string | undefined {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const end = Math.min(...[crlf, lf, raw.length].filter((index) => index >= 0), 256 * 1024);
  const head = raw.subarray(0, end).toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  return /^message-id:[ \t]*(<[^<>\s]{1,250}>)/im.exec(head)?.[1];
}
