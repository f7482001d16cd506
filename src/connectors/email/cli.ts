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
import type { Io } from '../../bot/console/operator-cli.ts';
import { UsageError, audit, one, parse } from '../../bot/console/operator-cli.ts';
import { awaitingReview, isAwaitingReview } from '../../db/inbound-review.ts';
import type { OperatorContext } from '../../main.ts';
import { EMAIL_SOURCE, emailProcess } from './process.ts';

const fail = (message: string) => Object.assign(new Error(message), { exitCode: 1 });
const USAGE = 'email quarantine list|show|replay, email dead list|show|replay';

export async function emailVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [area, sub, ...rest] = args;
  if (area !== 'quarantine' && area !== 'dead') throw new UsageError(USAGE);
  const status = area === 'quarantine' ? 'quarantined' : 'failed';
  switch (sub) {
    case 'list': {
      const { values } = parse(rest, { limit: { type: 'string' } });
      const limit = Math.min(1000, Math.max(1, Number(one(values.limit) ?? 100) || 100));
      const rows = await ctx.db
        .selectFrom('inbound_events')
        .select(['id', 'headers', 'received_at', 'error'])
        .where('source', '=', EMAIL_SOURCE)
        .where((eb) => awaitingReview(eb, area, ctx.domain.clock.now()))
        .orderBy('received_at', 'desc')
        .limit(limit)
        .execute();
      for (const row of rows) {
        const error = (row.error ?? {}) as { code?: string; message?: string };
        io.out(`${row.id}  ${row.received_at.toISOString()}  from ${row.headers['envelope-from'] || '<>'}  to ${row.headers['envelope-to'] ?? '?'}  ${error.code ?? ''}: ${error.message ?? ''}`);
      }
      if (rows.length === 0) io.out(area === 'quarantine' ? 'no email in quarantine' : 'no failed email');
      return 0;
    }
    case 'show': {
      const row = await find(ctx, rest[0], status);
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
    }
    case 'replay': {
      const row = await find(ctx, rest[0], status);
      await ctx.db.transaction().execute(async (trx) => {
        await trx.updateTable('inbound_events').set({ status: 'received', error: null, result: null, processed_at: null }).where('id', '=', row.id).where('status', '=', row.status).execute();
        await ctx.jobs.enqueue(emailProcess, { inboundId: row.id }, { db: trx });
      });
      await audit(ctx, 'email_message.replay', 'inbound_event', row.id, { from: status, code: (row.error as { code?: string } | null)?.code ?? null });
      io.out(`message ${row.id} (to ${row.headers['envelope-to'] ?? '?'}) queued for processing again`);
      return 0;
    }
    default:
      throw new UsageError(`email ${area} list|show|replay`);
  }
}

async function find(ctx: OperatorContext, id: string | undefined, status: 'quarantined' | 'failed') {
  if (!id || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('give the message id (a UUID, from the list)');
  const row = await ctx.db.selectFrom('inbound_events').selectAll().where('id', '=', id).where('source', '=', EMAIL_SOURCE).executeTakeFirst();
  if (!row) throw fail(`no email message ${id}`);
  if (!isAwaitingReview(row, status === 'quarantined' ? 'quarantine' : 'dead', ctx.domain.clock.now())) throw fail(`message ${id} is ${row.status}, not ${status}`);
  return row;
}
