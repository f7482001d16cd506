/**
 * `projectx subscriptions …`: outbound event subscriptions for operators. `add` prints the signing secret once
 * (it is stored encrypted and never shown again; remove and add again to get a new one); every change is
 * audited under the operator, without the secret. A subscription's URL is shown as its origin and a short hash
 * (it is stored encrypted: receivers put tokens in it).
 *
 * `add` refuses what it can from the text alone (a malformed URL, another scheme, credentials in it, unknown
 * event types, no key to encrypt with) before it looks the host up: no DNS query goes out for a URL it refuses.
 */
import { UsageError, fail, limitOption, must, one, oneArgument, parse, strings } from '../../../cli/args.ts';
import { requireKeyring } from '../../../cli/context.ts';
import { printList } from '../../../cli/output.ts';
import { type CliVerb, defineVerb } from '../../../cli/verb.ts';
import { CLI_ACTOR } from '../../../domain/actor.ts';
import { appendAudit } from '../../../domain/audit.ts';
import { type Resolver, checkDestination, destinationPolicy, systemResolver } from './destination.ts';
import { addSubscription, enableSubscription, getSubscription, listSubscriptions, recentDeliveries, removeSubscription, validateEndpoint, validateEventTypes } from './subscriptions.ts';

const when = (date: Date) => date.toISOString();

/**
 * The verb, resolving hosts with `resolve` (the system resolver; tests give their own).
 *
 * @example
 * const verb = createSubscriptionsVerb({ resolve: (host) => Promise.resolve([{ address: '203.0.113.7', family: 4 }]) });
 */
export function createSubscriptionsVerb(options: { resolve?: Resolver } = {}): CliVerb {
  const resolve = options.resolve ?? systemResolver;
  return defineVerb({
    name: 'subscriptions',
    summary: 'Outbound webhook subscriptions (events posted to your endpoints, signed)',
    commands: [
      {
        name: 'add',
        usage: 'subscriptions add --url <url> --event <type or prefix.*>... [--description "<text>"]',
        summary: 'Prints the signing secret once. Events are named exactly, by prefix (task.*) or all (*).',
        async run(ctx, args, io) {
          const { values, positionals } = parse(args, { url: { type: 'string' }, event: { type: 'string', multiple: true }, description: { type: 'string' } });
          const url = one(values.url);
          const events = strings(values.event).flatMap((event) => event.split(','));
          if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
          if (!url) throw new UsageError('--url is required');
          if (events.length === 0) throw new UsageError('give at least one --event');
          // First what the text alone decides, then the network: a URL refused for itself causes no DNS query.
          const endpoint = must(validateEndpoint(url));
          must(validateEventTypes(events));
          const keyring = requireKeyring(ctx, 'subscription signing secrets and URLs');
          // Refuse now what every delivery would refuse; a host that does not resolve yet is only worth a warning.
          const destination = await checkDestination(endpoint, destinationPolicy(ctx.config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS ?? [], resolve));
          if (!destination.ok && destination.refusal.code === 'destination_refused') fail(`refused: ${destination.refusal.message}`);
          if (!destination.ok) io.err(`warning: ${destination.refusal.message}; deliveries will be retried until it does`);
          const { subscription, secret } = must(
            await ctx.db.transaction().execute(async (trx) => {
              const now = ctx.domain.clock.now();
              const result = await addSubscription(trx, keyring, { url, eventTypes: events, description: one(values.description) }, now);
              if (result.ok) {
                const { id, endpoint: shown, eventTypes } = result.value.subscription;
                await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_subscription.add', objectType: 'webhook_subscription', objectId: id, outcome: 'success', at: now, detail: { url: shown, eventTypes } });
              }
              return result;
            }),
          );
          io.out(`added subscription ${subscription.id}: ${subscription.endpoint} (${subscription.eventTypes.join(', ')})`);
          io.out(`signing secret (shown only now; give it to the receiver): ${secret}`);
          return 0;
        },
      },
      {
        name: 'list',
        usage: 'subscriptions list',
        summary: 'Id, URL (origin and a short hash), events, enabled (or why not), last delivery.',
        list: true,
        async run(ctx, args, io) {
          parse(args, {});
          printList(io, await listSubscriptions(ctx.db), {
            line: (subscription) => {
              const state = subscription.enabled ? 'enabled' : `disabled${subscription.disabledReason ? ` (${subscription.disabledReason})` : ''}`;
              const last = subscription.lastDelivery;
              const lastText = last ? `last: ${last.status}${last.httpStatus !== null ? ` HTTP ${last.httpStatus}` : ''} ${when(last.at)}` : 'last: none';
              return [subscription.id, subscription.endpoint, subscription.eventTypes.join(','), state, lastText, subscription.description ?? ''].join('\t').trimEnd();
            },
            json: (subscription) => ({ ...subscription }),
            empty: 'no subscriptions (add one with: projectx subscriptions add --url <url> --event <type>)',
          });
          return 0;
        },
      },
      {
        name: 'remove',
        usage: 'subscriptions remove <id>',
        summary: 'Deletes it and its delivery log.',
        async run(ctx, args, io) {
          const { positionals } = parse(args, {});
          const id = oneArgument(positionals, 'subscription id');
          const removed = await ctx.db.transaction().execute(async (trx) => {
            if (!(await removeSubscription(trx, id))) return false;
            await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_subscription.remove', objectType: 'webhook_subscription', objectId: id, outcome: 'success', at: ctx.domain.clock.now() });
            return true;
          });
          if (!removed) fail(`no subscription ${id}`);
          io.out(`removed ${id} (and its delivery log)`);
          return 0;
        },
      },
      {
        name: 'enable',
        usage: 'subscriptions enable <id>',
        summary: 'After the endpoint answered 410 Gone (which disables it).',
        async run(ctx, args, io) {
          const { positionals } = parse(args, {});
          const id = oneArgument(positionals, 'subscription id');
          const subscription = must(
            await ctx.db.transaction().execute(async (trx) => {
              const result = await enableSubscription(trx, id, ctx.domain.clock.now());
              if (result.ok) await appendAudit(trx, { actor: CLI_ACTOR, action: 'webhook_subscription.enable', objectType: 'webhook_subscription', objectId: id, outcome: 'success', at: ctx.domain.clock.now() });
              return result;
            }),
          );
          io.out(`enabled ${subscription.id}: ${subscription.endpoint}`);
          return 0;
        },
      },
      {
        name: 'deliveries',
        usage: 'subscriptions deliveries <id> [--limit <n>]',
        summary: 'Recent deliveries, newest first, each attempt with its status or error.',
        list: true,
        async run(ctx, args, io) {
          const { values, positionals } = parse(args, { limit: { type: 'string' } });
          const id = oneArgument(positionals, 'subscription id');
          const limit = limitOption(values.limit, 20);
          const subscription = await getSubscription(ctx.db, id);
          if (!subscription) return fail(`no subscription ${id}`);
          const records = await recentDeliveries(ctx.db, id, limit);
          printList(io, records, {
            line: (record) => {
              const next = record.status === 'pending' && record.nextAttemptAt ? `\tnext ${when(record.nextAttemptAt)}` : '';
              const error = record.lastError && record.status !== 'delivered' ? `\t${record.lastError}` : '';
              const attempts = record.attempts.map((attempt) => `  #${attempt.attempt}\t${when(attempt.attemptedAt)}\t${attempt.httpStatus !== null ? `HTTP ${attempt.httpStatus}` : `error: ${attempt.error ?? 'unknown'}`}\t${attempt.durationMs} ms`);
              return [`${record.id}\t${record.eventType}\t${record.messageId}\t${record.status}\t${record.attempts.length} attempt(s)\t${when(record.createdAt)}${next}${error}`, ...attempts];
            },
            json: (record) => ({ ...record }),
            empty: `no deliveries to ${subscription.endpoint} yet`,
          });
          return 0;
        },
      },
    ],
  });
}

export const subscriptionsVerb: CliVerb = createSubscriptionsVerb();
