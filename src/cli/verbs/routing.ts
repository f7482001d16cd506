/** `projectx routing …`: the rules that send domain events to channels, DMs and addresses. */
import type { Surface, TargetKind } from '../../db/schema.ts';
import { addRule, listRules, removeRule } from '../../domain/routing.ts';
import { CommandFailed, UsageError, must, one, oneArgument, parse } from '../args.ts';
import { audit } from '../audit.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

const SURFACES: readonly Surface[] = ['slack', 'teams', 'email'];
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const routingVerb = defineVerb({
  name: 'routing',
  summary: 'Notification routing rules (which events go to which channel, DM or address)',
  commands: [
    {
      name: 'list',
      usage: 'routing list',
      list: true,
      async run(ctx, args, io) {
        parse(args, {});
        printList(io, await listRules(ctx.db), {
          line: (rule) => {
            const filters = [rule.max_priority !== null ? `priority<=${rule.max_priority}` : '', rule.control_id ? `control=${rule.control_id}` : ''].filter(Boolean).join(' ');
            return `${rule.id}\t${rule.event_pattern}\t${rule.surface}:${rule.target_kind}${rule.target ? `:${rule.target}` : ''}${filters ? `\t${filters}` : ''}${rule.enabled ? '' : '\t(disabled)'}`;
          },
          json: (rule) => ({ id: rule.id, event: rule.event_pattern, surface: rule.surface, targetKind: rule.target_kind, target: rule.target, maxPriority: rule.max_priority, controlId: rule.control_id, enabled: rule.enabled }),
          empty: 'no routing rules',
        });
        return 0;
      },
    },
    {
      name: 'add',
      usage: 'routing add --event <type or prefix.*> (--channel <name> | --assignee-dm | --approvers-dm | --email <address>) [--surface slack|teams|email] [--max-priority <n>] [--control <id>]',
      async run(ctx, args, io) {
        const { values } = parse(args, {
          event: { type: 'string' },
          channel: { type: 'string' },
          'assignee-dm': { type: 'boolean' },
          'approvers-dm': { type: 'boolean' },
          email: { type: 'string' },
          surface: { type: 'string' },
          'max-priority': { type: 'string' },
          control: { type: 'string' },
        });
        const event = one(values.event);
        const kinds: [TargetKind, string | undefined][] = [];
        if (values.channel) kinds.push(['channel', one(values.channel)]);
        if (values['assignee-dm']) kinds.push(['assignee_dm', undefined]);
        if (values['approvers-dm']) kinds.push(['approvers_dm', undefined]);
        if (values.email) kinds.push(['email', one(values.email)]);
        if (!event) throw new UsageError('--event is required');
        if (kinds.length !== 1) throw new UsageError('give exactly one of --channel, --assignee-dm, --approvers-dm, --email');
        const [targetKind, target] = kinds[0]!;
        const surface = (one(values.surface) ?? (targetKind === 'email' ? 'email' : 'slack')) as Surface;
        if (!SURFACES.includes(surface)) throw new UsageError(`--surface must be one of ${SURFACES.join(', ')}`);
        const maxPriority = one(values['max-priority']);
        if (maxPriority !== undefined && !/^\d+$/.test(maxPriority)) throw new UsageError('--max-priority takes a whole number');
        const rule = must(await addRule(ctx.db, { eventPattern: event, surface, targetKind, target, maxPriority: maxPriority ? Number(maxPriority) : undefined, controlId: one(values.control) }));
        await audit(ctx, 'routing.add', 'routing_rule', rule.id, { event: rule.event_pattern, surface, targetKind, target: target ?? null });
        io.out(`added rule ${rule.id}: ${rule.event_pattern} -> ${surface}:${targetKind}${target ? `:${target}` : ''}`);
        return 0;
      },
    },
    {
      name: 'remove',
      usage: 'routing remove <id>',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const id = oneArgument(positionals, 'rule id');
        // Rule ids are uuids: anything else names no rule (and must not reach the database as one).
        if (!UUID.test(id) || !(await removeRule(ctx.db, id))) throw new CommandFailed(`no routing rule ${id} (projectx routing list)`);
        await audit(ctx, 'routing.remove', 'routing_rule', id, {});
        io.out(`removed ${id}`);
        return 0;
      },
    },
  ],
});
