/**
 * Processing a message the SMTP listener accepted, for one of its recipients (`email.process`): re-read the
 * recipient's `inbound_events` row and the message it refers to (messages.ts), parse it (mailparser) and hand it
 * to the adapter the recipient names (addresses.ts):
 *
 * - evidence (`evidence+AC-2@…`, `evidence+T-42@…`): each attachment through `ingestEvidence` (type by content,
 *   10 MB each, hashed, stored, linked), as the ProjectX user whose address is the message's From, checked
 *   before anything is stored;
 * - partner (`partner+acme@…`): the JSON payload (a .json attachment, else the text body) interpreted with the
 *   partner's mapping, then handed to the webhook bridge as a delivery of that partner, which performs it
 *   exactly once like any webhook (`webhooks.process`).
 *
 * What cannot be processed as it is (unparseable, an unknown mailbox, partner, control or task, an unknown or
 * unauthorized sender, a payload that does not fit) is quarantined with a reason `{ code, message }`, never
 * dropped: `projectx email quarantine list|show|replay`. A replay runs this again against the users,
 * controls and partners as they are then. Errors are retried; after the last attempt the message is 'failed'.
 */
import { Readable } from 'node:stream';
import type { Kysely } from 'kysely';
import { type ParsedMail, simpleParser } from 'mailparser';
import { z } from 'zod';
import type { Db } from '../../db/database.ts';
import type { Database } from '../../db/schema.ts';
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { checkEvidenceTargets } from '../../domain/evidence.ts';
import { findUserByIdentity } from '../../domain/users.ts';
import { DEFAULT_POLICY, type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import { ingestEvidence } from '../evidence-stores/ingest.ts';
import { interpret } from '../webhook-bridge/mapping.ts';
import { loadPartnerMapping, mayMailAs } from '../webhook-bridge/partners.ts';
import { SOURCE_PREFIX, quarantineError, webhookProcess } from '../webhook-bridge/process.ts';
import { type Mailbox, parseMailbox } from './addresses.ts';
import { emailRows, messageBody } from './messages.ts';

/** `inbound_events.source` of accepted mail. */
export const EMAIL_SOURCE = 'email';
const RETRY_LIMIT = DEFAULT_POLICY.retryLimit;

/** Text only: no HTML-to-text conversion, linkifying or image inlining that nothing here reads. */
const PARSE_OPTIONS = { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true, keepCidLinks: true } as const;

interface Outcome {
  status: 'processed' | 'failed' | 'quarantined';
  eventType: string;
  result?: Record<string, unknown>;
  error?: Record<string, unknown>;
  /** Work that commits together with the outcome (the hand-off to the webhook bridge); adds to the result. */
  handOff?: (trx: Kysely<Database>) => Promise<Record<string, unknown>>;
}

const quarantined = (code: string, message: string, eventType = 'email'): Outcome => ({ status: 'quarantined', eventType, error: { code, message } });

type Row = { id: string; delivery_id: string; headers: Record<string, string>; body: Buffer; correlation_id: string | null };

export const emailProcess = defineJob({
  name: 'email.process',
  schema: z.object({ inboundId: z.uuid() }),
  // Two at a time: each may hold a 25 MB message, parsed in memory.
  policy: { retryLimit: RETRY_LIMIT, batchSize: 2 },
  handler: async ({ inboundId }, { deps, job, logger }: JobContext<JobDeps>) => {
    const row = await emailRows(deps.db)
      .select(['e.id', 'e.delivery_id', 'e.status', 'e.headers', messageBody, 'e.correlation_id'])
      .where('e.id', '=', inboundId)
      .where('e.source', '=', EMAIL_SOURCE)
      .executeTakeFirst();
    if (!row || row.status !== 'received') return { skipped: row?.status ?? 'missing' };
    let outcome: Outcome;
    let result: Outcome;
    try {
      outcome = await processMessage(deps, row);
      result = await deps.db.transaction().execute(async (trx) => {
        const handedOff = outcome.handOff ? await outcome.handOff(trx) : {};
        const settled = { ...outcome, result: { ...outcome.result, ...handedOff } };
        await settle(trx, row, settled, deps.clock.now());
        return settled;
      });
    } catch (error) {
      // Whatever failed, processing or recording its outcome, the last attempt leaves the message 'failed'.
      if (job.retryCount >= RETRY_LIMIT) {
        await deps.db.transaction().execute((trx) => settle(trx, row, { status: 'failed', eventType: 'email', error: { code: 'processing_failed', message: error instanceof Error ? error.message : String(error) } }, deps.clock.now()));
      }
      throw error;
    }
    if (outcome.status !== 'processed') logger.warn({ inboundId, status: outcome.status, code: outcome.error?.code }, `email message ${outcome.status}`);
    return { status: outcome.status, ...(outcome.error ? { error: outcome.error } : {}), ...(result.result ?? {}) };
  },
});

async function processMessage(deps: JobDeps, row: Row): Promise<Outcome> {
  const recipient = row.headers['envelope-to'] ?? '';
  const mailbox = parseMailbox(recipient);
  if (!mailbox) return quarantined('unmapped_recipient', `${recipient || 'the recipient'} is not an evidence+… or partner+… address`);
  let mail: ParsedMail;
  try {
    mail = await simpleParser(row.body, PARSE_OPTIONS);
  } catch (error) {
    return quarantined('unparseable', `the message could not be parsed: ${error instanceof Error ? error.message : String(error)}`);
  }
  // Exactly one From header with one mailbox: the MTA's DMARC check vouches for one address, and a second From
  // line (mailparser keeps the last) or a list would let a sender act as someone else.
  const fromLines = mail.headerLines.filter((line) => line.key === 'from').length;
  const mailboxes = mail.from?.value ?? [];
  if (fromLines > 1 || mailboxes.length > 1 || mailboxes.some((mailbox) => mailbox.group !== undefined)) {
    return quarantined('ambiguous_sender', 'the message must have exactly one From header with exactly one address');
  }
  const from = mailboxes[0]?.address?.trim().toLowerCase();
  if (!from || !from.includes('@')) return quarantined('unparseable', 'the message has no From address (is it an email message?)');
  return mailbox.kind === 'evidence' ? recordAttachments(deps, row, mailbox, mail, from) : handToPartner(deps, row, mailbox, mail, from);
}

async function recordAttachments(deps: JobDeps, row: Row, mailbox: Extract<Mailbox, { kind: 'evidence' }>, mail: ParsedMail, from: string): Promise<Outcome> {
  const eventType = 'email.evidence';
  // The MTA vouches for the From address (SPF, DKIM, DMARC are checked there, see the README's trust boundary).
  const user = await findUserByIdentity(deps.db, { surface: 'email', tenant: '', externalId: from });
  if (!user) return quarantined('unknown_sender', `no active ProjectX user has the email address ${from}`, eventType);
  const actor: Actor = { surface: 'email', user, identity: { surface: 'email', tenant: '', externalId: from } };
  const domain: DomainDeps = { db: deps.db, events: deps.events, clock: deps.clock };
  const targets = await checkEvidenceTargets(domain, actor, { controlIds: mailbox.controlIds, taskIds: mailbox.taskIds, objectId: row.id });
  if (!targets.ok) {
    const { code, message } = targets.refusal;
    return quarantined(code, code === 'forbidden' ? `${from} may not upload evidence: ${message}` : `${mailbox.address}: ${message}`, eventType);
  }
  // Inline images referenced by the HTML (logos in a signature) are part of the message, not evidence.
  const files = mail.attachments.filter((attachment) => attachment.related !== true);
  if (files.length === 0) return quarantined('no_attachments', 'the message has no attachments to record as evidence', eventType);
  const stored: Record<string, unknown>[] = [];
  const refused: { name: string; code: string; message: string }[] = [];
  for (const [index, file] of files.entries()) {
    const name = file.filename?.trim() || `attachment-${index + 1}`;
    const result = await ingestEvidence(domain, deps.evidence, actor, {
      content: Readable.from([file.content]),
      fileName: name,
      source: EMAIL_SOURCE,
      controlIds: targets.value.controlIds,
      taskIds: targets.value.taskIds,
    });
    if (result.ok) stored.push(result.value.outcome === 'recorded' ? { name, evidence: result.value.id, sha256: result.value.sha256, links: result.value.newLinks, scan: result.value.scanStatus } : { name, held: result.value.reason, quarantine: result.value.quarantineId, sha256: result.value.sha256 });
    else refused.push({ name, code: result.refusal.code, message: result.refusal.message });
  }
  if (stored.length === 0) {
    // Each file was refused for what it is (type, size): a replay would refuse it again.
    return { status: 'failed', eventType, result: { from, refused }, error: { code: refused[0]!.code, message: refused.map((file) => file.message).join('; ') } };
  }
  return { status: 'processed', eventType, result: { from, evidence: stored, ...(refused.length > 0 ? { refused } : {}) } };
}

async function handToPartner(deps: JobDeps, row: Row, mailbox: Extract<Mailbox, { kind: 'partner' }>, mail: ParsedMail, from: string): Promise<Outcome> {
  const partner = await loadPartnerMapping(deps.db, mailbox.partner);
  if (!partner) return quarantined('unknown_partner', `no partner ${mailbox.partner}`, 'email.partner');
  // Mail is not signed: only the senders listed for the partner act for it (projectx partners add --email-sender).
  if (!mayMailAs(partner, from)) return quarantined('unauthorized_sender', `${from} may not act for partner ${partner.key} by mail (its email senders: ${partner.emailSenders.join(', ') || 'none'})`, 'email.partner');
  const payload = partnerPayload(mail);
  if (!payload) return quarantined('no_payload', 'the message has neither a .json attachment nor a text body', 'email.partner');
  const meaning = interpret({ scheme: partner.scheme, mapping: partner.mapping, body: payload, headers: {} });
  if (!meaning.ok) return { status: 'quarantined', eventType: meaning.eventType ?? 'email.partner', error: quarantineError(meaning) };
  const source = `${SOURCE_PREFIX}${partner.key}`;
  const deliveryId = `email:${row.id}`;
  return {
    status: 'processed',
    eventType: meaning.eventType,
    result: { from, partner: partner.key, action: meaning.action },
    handOff: async (trx) => {
      // A delivery of the partner like any webhook's, performed by the webhook bridge; its id is derived from
      // this message, so processing the message again hands off nothing new.
      const inserted = await trx
        .insertInto('inbound_events')
        .values({
          source,
          delivery_id: deliveryId,
          kind: meaning.eventType,
          status: 'received',
          headers: JSON.stringify({ 'content-type': 'application/json', 'x-email-message': row.id, 'x-email-from': from }),
          body: payload,
          correlation_id: row.correlation_id,
          received_at: deps.clock.now(),
        })
        .onConflict((oc) => oc.constraint('inbound_events_source_delivery_id_key').doNothing())
        .returning('id')
        .executeTakeFirst();
      if (inserted) await deps.jobs.enqueue(webhookProcess, { inboundIds: [inserted.id] }, { db: trx });
      const delivery = inserted ?? (await trx.selectFrom('inbound_events').select('id').where('source', '=', source).where('delivery_id', '=', deliveryId).executeTakeFirstOrThrow());
      return { delivery: delivery.id };
    },
  };
}

/**
 * The partner's JSON: a .json attachment, else the text body. A relay may append a footer (a disclaimer, "sent
 * from…") to the text, so when the whole text is not JSON its outermost `{…}` is tried.
 */
export function partnerPayload(mail: Pick<ParsedMail, 'attachments' | 'text'>): Buffer | undefined {
  const json = mail.attachments.find((attachment) => attachment.contentType === 'application/json' || attachment.filename?.toLowerCase().endsWith('.json'));
  if (json) return json.content;
  const text = mail.text?.trim();
  if (!text) return undefined;
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (!isJson(text) && start >= 0 && end > start && isJson(text.slice(start, end + 1))) return Buffer.from(text.slice(start, end + 1));
  return Buffer.from(text);
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Records how a message ended, on its row and as an `integration_events` row, through `db` (a transaction). */
async function settle(db: Kysely<Database> | Db, row: Pick<Row, 'id' | 'delivery_id' | 'correlation_id'>, outcome: Omit<Outcome, 'handOff'>, now: Date): Promise<void> {
  const result = outcome.result ? JSON.stringify(outcome.result) : null;
  const error = outcome.error ? JSON.stringify(outcome.error) : null;
  await db.updateTable('inbound_events').set({ status: outcome.status, processed_at: now, result, error }).where('id', '=', row.id).execute();
  await db
    .insertInto('integration_events')
    .values({ source: EMAIL_SOURCE, direction: 'inbound', event_type: outcome.eventType, external_id: row.delivery_id, status: outcome.status, result, error, correlation_id: row.correlation_id, created_at: now, processed_at: now })
    .execute();
}
