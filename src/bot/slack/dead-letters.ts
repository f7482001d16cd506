/**
 * `projectx slack dead list|show|replay`: Slack deliveries waiting for an operator, like the webhook and email
 * ones. Dead: processing failed (a listener error, or still unprocessed after the redelivery sweep's attempts),
 * or still 'received' 30 minutes after arrival. Requests refused at the edge (malformed, unsupported, workspace
 * not allowed) are recorded too but are not here: nothing about them can be replayed.
 *
 * A replay hands the delivery back to the redelivery sweep of the web processes (status 'received', attempts
 * reset to 0, which the sweep takes at once), which processes it against the users, tasks and installations as they are now. The CLI does not run
 * Slack's listeners itself: they need the Bolt app, which lives in the web role. Replays are audited.
 */
import { UsageError, fail, limitOption, parse } from '../../cli/args.ts';
import { audit } from '../../cli/audit.ts';
import type { OperatorContext } from '../../cli/context.ts';
import { printList } from '../../cli/output.ts';
import type { VerbCommand } from '../../cli/verb.ts';
import { awaitingReview, isAwaitingReview } from '../../db/inbound-review.ts';

const SOURCE = 'slack';

async function find(ctx: OperatorContext, id: string | undefined) {
  if (!id || !/^[0-9a-f-]{36}$/i.test(id)) throw new UsageError('give the delivery id (a UUID, from `projectx slack dead list`)');
  const row = await ctx.db.selectFrom('inbound_events').select(['id', 'delivery_id', 'kind', 'status', 'attempts', 'received_at', 'processed_at', 'headers', 'error', 'body']).where('id', '=', id).where('source', '=', SOURCE).executeTakeFirst();
  if (!row) return fail(`no Slack delivery ${id}`);
  if (!isAwaitingReview(row, 'dead', ctx.domain.clock.now())) fail(`Slack delivery ${id} is ${row.status}, not failed`);
  return row;
}

const errorOf = (value: unknown) => (value ?? {}) as { code?: string; message?: string };

export const deadLetterCommands: readonly VerbCommand[] = [
  {
    name: 'dead list',
    usage: 'slack dead list [--limit <n>]',
    summary: 'Slack deliveries whose processing failed, or that are still unprocessed after 30 minutes.',
    list: true,
    async run(ctx, args, io) {
      const { values, positionals } = parse(args, { limit: { type: 'string' } });
      if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      const rows = await ctx.db
        .selectFrom('inbound_events')
        .select(['id', 'delivery_id', 'kind', 'status', 'attempts', 'received_at', 'error'])
        .where('source', '=', SOURCE)
        .where((eb) => awaitingReview(eb, 'dead', ctx.domain.clock.now()))
        .orderBy('received_at', 'desc')
        .limit(limitOption(values.limit))
        .execute();
      printList(io, rows, {
        line: (row) => `${row.id}  ${row.kind}  ${row.received_at.toISOString()}  attempts: ${row.attempts}  ${row.status === 'received' ? 'unprocessed' : `${errorOf(row.error).code ?? ''}: ${errorOf(row.error).message ?? ''}`}`,
        json: (row) => ({ id: row.id, deliveryId: row.delivery_id, kind: row.kind, status: row.status, attempts: row.attempts, receivedAt: row.received_at, error: row.error }),
        empty: 'no failed Slack deliveries',
      });
      return 0;
    },
  },
  {
    name: 'dead show',
    usage: 'slack dead show <id>',
    summary: 'The delivery as recorded (JSON; response URLs are kept encrypted and never shown).',
    async run(ctx, args, io) {
      const { positionals } = parse(args, {});
      const row = await find(ctx, positionals[0]);
      let body: unknown;
      try {
        body = JSON.parse(row.body.toString('utf8'));
      } catch {
        body = row.body.toString('utf8');
      }
      io.out(JSON.stringify({ id: row.id, deliveryId: row.delivery_id, kind: row.kind, status: row.status, attempts: row.attempts, receivedAt: row.received_at, processedAt: row.processed_at, headers: row.headers, error: row.error, body }, null, 2));
      return 0;
    },
  },
  {
    name: 'dead replay',
    usage: 'slack dead replay <id>',
    summary: 'Hands it back to the web processes, which process it again within seconds (against things as they are now).',
    async run(ctx, args, io) {
      const { positionals } = parse(args, {});
      const row = await find(ctx, positionals[0]);
      const replayed = await ctx.db
        .updateTable('inbound_events')
        .set({ status: 'received', attempts: 0, error: null, processed_at: null })
        .where('id', '=', row.id)
        .where('status', '=', row.status)
        .executeTakeFirst();
      if (replayed.numUpdatedRows === 0n) fail(`Slack delivery ${row.id} changed meanwhile; look again`);
      await audit(ctx, 'slack.delivery.replay', 'inbound_event', row.id, { kind: row.kind, previousError: errorOf(row.error).code ?? null });
      io.out(`Slack delivery ${row.id} (${row.kind}) handed back for processing; a web process takes it within seconds (projectx slack dead list shows it again if it fails)`);
      return 0;
    },
  },
];
