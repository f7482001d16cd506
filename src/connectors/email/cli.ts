/**
 * `projectx email quarantine|dead list|show|replay`: inbound mail waiting for an operator. Quarantined messages
 * could not be processed as they were (unparseable, an unknown mailbox, partner or control, an unknown or
 * unauthorized sender, a payload that does not fit); dead ones failed for good (every attachment refused,
 * or out of retries). A replay runs the whole processing again, against the users, controls and partners as
 * they are now (add the user, the control or the partner first). Replays are audited under the operator.
 *
 * A verb of its own rather than part of `webhooks`: a message is shown by its envelope, From, Subject and
 * attachments rather than a JSON body, and a replay re-reads the message instead of taking a fixed body.
 */
import { simpleParser } from 'mailparser';
import { UsageError, fail, limitOption, parse } from '../../cli/args.ts';
import { audit } from '../../cli/audit.ts';
import type { OperatorContext } from '../../cli/context.ts';
import { printList } from '../../cli/output.ts';
import { type CliVerb, type VerbCommand, defineVerb } from '../../cli/verb.ts';
import { type ReviewArea, awaitingReview, isAwaitingReview } from '../../db/inbound-review.ts';
import { emailRows, messageBody } from './messages.ts';
import { EMAIL_SOURCE, emailProcess } from './process.ts';

/** The same three commands over messages waiting in quarantine or failed for good. */
const reviewCommands = (area: ReviewArea): VerbCommand[] => [
  {
    name: `${area} list`,
    usage: `email ${area} list [--limit <n>]`,
    summary: area === 'quarantine' ? 'Messages that could not be processed as they were, with the reason.' : 'Messages that failed for good (every attachment refused, or out of retries).',
    list: true,
    async run(ctx, args, io) {
      const { values, positionals } = parse(args, { limit: { type: 'string' } });
      if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      const limit = limitOption(values.limit);
      const rows = await ctx.db
        .selectFrom('inbound_events')
        .select(['id', 'headers', 'received_at', 'error'])
        .where('source', '=', EMAIL_SOURCE)
        .where((eb) => awaitingReview(eb, area, ctx.domain.clock.now()))
        .orderBy('received_at', 'desc')
        .limit(limit)
        .execute();
      printList(io, rows, {
        line: (row) => {
          const error = (row.error ?? {}) as { code?: string; message?: string };
          return `${row.id}  ${row.received_at.toISOString()}  from ${row.headers['envelope-from'] || '<>'}  to ${row.headers['envelope-to'] ?? '?'}  ${error.code ?? ''}: ${error.message ?? ''}`;
        },
        json: (row) => ({ id: row.id, receivedAt: row.received_at, from: row.headers['envelope-from'] ?? null, to: row.headers['envelope-to'] ?? null, error: row.error }),
        empty: area === 'quarantine' ? 'no email in quarantine' : 'no failed email',
      });
      return 0;
    },
  },
  {
    name: `${area} show`,
    usage: `email ${area} show <id>`,
    summary: 'The envelope, the error and the message read back (JSON).',
    async run(ctx, args, io) {
      const { positionals } = parse(args, {});
      const row = await find(ctx, positionals[0], area);
      const mail = await simpleParser(row.body, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true, keepCidLinks: true }).catch(() => undefined);
      io.out(
        JSON.stringify(
          {
            id: row.id,
            deliveryId: row.delivery_id,
            status: row.status,
            receivedAt: row.received_at,
            envelope: row.headers,
            error: row.error,
            result: row.result,
            message: mail
              ? {
                  from: mail.from?.text,
                  subject: mail.subject,
                  date: mail.date,
                  attachments: mail.attachments.map((file) => ({ name: file.filename ?? null, type: file.contentType, bytes: file.size })),
                  text: mail.text?.slice(0, 4000),
                }
              : { unparseable: true, raw: row.body.subarray(0, 4000).toString('utf8') },
          },
          null,
          2,
        ),
      );
      return 0;
    },
  },
  {
    name: `${area} replay`,
    usage: `email ${area} replay <id>`,
    summary: 'Processes the message again, against the users, controls and partners as they are now.',
    async run(ctx, args, io) {
      const { positionals } = parse(args, {});
      const row = await find(ctx, positionals[0], area);
      await ctx.db.transaction().execute(async (trx) => {
        await trx.updateTable('inbound_events').set({ status: 'received', error: null, result: null, processed_at: null }).where('id', '=', row.id).where('status', '=', row.status).execute();
        await ctx.jobs.enqueue(emailProcess, { inboundId: row.id }, { db: trx });
      });
      await audit(ctx, 'email_message.replay', 'inbound_event', row.id, { from: area === 'quarantine' ? 'quarantined' : 'failed', code: (row.error as { code?: string } | null)?.code ?? null });
      io.out(`message ${row.id} (to ${row.headers['envelope-to'] ?? '?'}) queued for processing again`);
      return 0;
    },
  },
];

export const emailVerb: CliVerb = defineVerb({
  name: 'email',
  summary: 'Inbound mail waiting for an operator: quarantined and failed messages',
  commands: [...reviewCommands('quarantine'), ...reviewCommands('dead')],
});

/** One recipient's row, with the message (shared by every recipient it was sent to). */
async function find(ctx: OperatorContext, id: string | undefined, area: ReviewArea) {
  if (!id || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('give the message id (a UUID, from the list)');
  const row = await emailRows(ctx.db)
    .select(['e.id', 'e.delivery_id', 'e.status', 'e.received_at', 'e.headers', 'e.error', 'e.result', messageBody])
    .where('e.id', '=', id)
    .where('e.source', '=', EMAIL_SOURCE)
    .executeTakeFirst();
  if (!row) return fail(`no email message ${id}`);
  if (!isAwaitingReview(row, area, ctx.domain.clock.now())) fail(`message ${id} is ${row.status}, not ${area === 'quarantine' ? 'quarantined' : 'failed'}`);
  return row;
}
