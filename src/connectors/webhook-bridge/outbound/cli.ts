/**
 * `projectx subscriptions …`: outbound event subscriptions for operators. `add` prints the signing secret once
 * (it is stored encrypted and never shown again; remove and add again to get a new one); every change is
 * audited under the operator, without the secret. Wired into src/bot/console/operator-cli.ts (usage lines there).
 */
import { type Io, UsageError, must, parse } from '../../../bot/console/operator-cli.ts';
import { CLI_ACTOR } from '../../../domain/actor.ts';
import { appendAudit } from '../../../domain/audit.ts';
import type { OperatorContext } from '../../../main.ts';
import { checkDestination, destinationPolicy } from './destination.ts';
import { addSubscription, enableSubscription, getSubscription, listSubscriptions, recentDeliveries, removeSubscription } from './subscriptions.ts';

/** A refusal the operator can act on: its message, exit code 1. */
const failure = (message: string) => Object.assign(new Error(message), { exitCode: 1 });

const when = (date: Date) => date.toISOString();

export async function subscriptionsVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add':
      return add(ctx, rest, io);
    case 'list': {
      for (const subscription of await listSubscriptions(ctx.db)) {
        const state = subscription.enabled ? 'enabled' : `disabled${subscription.disabledReason ? ` (${subscription.disabledReason})` : ''}`;
        const last = subscription.lastDelivery;
        const lastText = last ? `last: ${last.status}${last.httpStatus !== null ? ` HTTP ${last.httpStatus}` : ''} ${when(last.at)}` : 'last: none';
        io.out([subscription.id, subscription.url, subscription.eventTypes.join(','), state, lastText, subscription.description ?? ''].join('\t').trimEnd());
      }
      return 0;
    }
    case 'remove': {
      const id = rest[0];
      if (!id) throw new UsageError('subscriptions remove <id>');
      const removed = await ctx.db.transaction().execute(async (trx) => {
        if (!(await removeSubscription(trx, id))) return false;
        await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_subscription.remove', objectType: 'webhook_subscription', objectId: id, outcome: 'success', at: ctx.domain.clock.now() });
        return true;
      });
      if (!removed) throw failure(`no subscription ${id}`);
      io.out(`removed ${id} (and its delivery log)`);
      return 0;
    }
    case 'enable': {
      const id = rest[0];
      if (!id) throw new UsageError('subscriptions enable <id>');
      const subscription = must(
        await ctx.db.transaction().execute(async (trx) => {
          const result = await enableSubscription(trx, id, ctx.domain.clock.now());
          if (result.ok) await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_subscription.enable', objectType: 'webhook_subscription', objectId: id, outcome: 'success', at: ctx.domain.clock.now() });
          return result;
        }),
      );
      io.out(`enabled ${subscription.id}: ${subscription.url}`);
      return 0;
    }
    case 'deliveries':
      return deliveries(ctx, rest, io);
    default:
      throw new UsageError('subscriptions add|list|remove|enable|deliveries …');
  }
}

async function add(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { url: { type: 'string' }, event: { type: 'string', multiple: true }, description: { type: 'string' } });
  const url = typeof values.url === 'string' ? values.url : undefined;
  const events = (Array.isArray(values.event) ? values.event : []).flatMap((event) => (typeof event === 'string' ? event.split(',') : []));
  if (!url || events.length === 0 || positionals.length > 0) throw new UsageError('subscriptions add --url <url> --event <type or prefix.*>... [--description "<text>"]');
  if (!ctx.keyring) throw failure('subscriptions need an encryption key to store their signing secrets: set PROJECTX_ENCRYPTION_KEY (see .env.example)');
  const keyring = ctx.keyring;

  // Refuse now what every delivery would refuse; a host that does not resolve yet is only worth a warning.
  if (URL.canParse(url)) {
    const destination = await checkDestination(new URL(url), destinationPolicy(ctx.config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS ?? []));
    if (!destination.ok && destination.refusal.code === 'destination_refused') throw failure(`refused: ${destination.refusal.message}`);
    if (!destination.ok) io.err(`warning: ${destination.refusal.message}; deliveries will be retried until it does`);
  }
  const description = typeof values.description === 'string' ? values.description : undefined;
  const { subscription, secret } = must(
    await ctx.db.transaction().execute(async (trx) => {
      const now = ctx.domain.clock.now();
      const result = await addSubscription(trx, keyring, { url, eventTypes: events, description }, now);
      if (result.ok) {
        const { id, url: stored, eventTypes } = result.value.subscription;
        await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_subscription.add', objectType: 'webhook_subscription', objectId: id, outcome: 'success', at: now, detail: { url: stored, eventTypes } });
      }
      return result;
    }),
  );
  io.out(`added subscription ${subscription.id}: ${subscription.url} (${subscription.eventTypes.join(', ')})`);
  io.out(`signing secret (shown only now; give it to the receiver): ${secret}`);
  return 0;
}

async function deliveries(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { limit: { type: 'string' } });
  const id = positionals[0];
  if (!id) throw new UsageError('subscriptions deliveries <id> [--limit <n>]');
  const limitText = typeof values.limit === 'string' ? values.limit : '20';
  if (!/^\d{1,4}$/.test(limitText) || Number(limitText) === 0) throw new UsageError('--limit takes a whole number from 1 to 9999');
  const subscription = await getSubscription(ctx.db, id);
  if (!subscription) throw failure(`no subscription ${id}`);
  const records = await recentDeliveries(ctx.db, id, Number(limitText));
  if (records.length === 0) io.out(`no deliveries to ${subscription.url} yet`);
  for (const record of records) {
    const next = record.status === 'pending' && record.nextAttemptAt ? `\tnext ${when(record.nextAttemptAt)}` : '';
    const error = record.lastError && record.status !== 'delivered' ? `\t${record.lastError}` : '';
    io.out(`${record.id}\t${record.eventType}\t${record.messageId}\t${record.status}\t${record.attempts.length} attempt(s)\t${when(record.createdAt)}${next}${error}`);
    for (const attempt of record.attempts) {
      const outcome = attempt.httpStatus !== null ? `HTTP ${attempt.httpStatus}` : `error: ${attempt.error ?? 'unknown'}`;
      io.out(`  #${attempt.attempt}\t${when(attempt.attemptedAt)}\t${outcome}\t${attempt.durationMs} ms`);
    }
  }
  return 0;
}
