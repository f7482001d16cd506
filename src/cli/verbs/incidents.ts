/** `projectx incidents …`: incidents by hand (a system without a connector) and the list of what is known. */
import { CLI_ACTOR } from '../../domain/actor.ts';
import { listIncidents, upsertIncident } from '../../domain/incidents.ts';
import { UsageError, limitOption, must, one, oneArgument, parse } from '../args.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

export const incidentsVerb = defineVerb({
  name: 'incidents',
  summary: 'Incidents (mirrored from connected systems, or added by hand)',
  commands: [
    {
      name: 'add',
      usage: 'incidents add <number> --priority <1-5> --description "<text>" [--state <state>] [--source <system>]',
      summary: 'Adds or updates an incident; a P1 raises the same alerts and review task as one from a connector.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { priority: { type: 'string' }, description: { type: 'string' }, state: { type: 'string' }, source: { type: 'string' } });
        const description = one(values.description);
        const priority = one(values.priority);
        const number = oneArgument(positionals, 'incident number');
        if (!priority || !/^[1-5]$/.test(priority)) throw new UsageError('--priority must be a whole number from 1 to 5');
        if (!description) throw new UsageError('--description is required');
        const source = one(values.source) ?? 'manual';
        const { incident, created } = must(
          await upsertIncident(ctx.domain, CLI_ACTOR, { sourceSystem: source, externalId: number.toUpperCase(), number, priority: Number(priority), state: one(values.state) ?? 'new', shortDescription: description }),
        );
        io.out(`${created ? 'added' : 'updated'} ${incident.number} (P${incident.priority}) ${incident.shortDescription}`);
        return 0;
      },
    },
    {
      name: 'list',
      usage: 'incidents list [--open] [--max-priority <1-5>] [--limit <n>]',
      summary: 'Most recently changed first.',
      list: true,
      async run(ctx, args, io) {
        const { values } = parse(args, { open: { type: 'boolean' }, 'max-priority': { type: 'string' }, limit: { type: 'string' } });
        const maxPriority = one(values['max-priority']);
        if (maxPriority !== undefined && !/^[1-5]$/.test(maxPriority)) throw new UsageError('--max-priority must be a whole number from 1 to 5');
        const incidents = await listIncidents(ctx.db, { open: values.open === true, ...(maxPriority ? { maxPriority: Number(maxPriority) } : {}), limit: limitOption(values.limit) });
        printList(io, incidents, {
          line: (incident) => `${incident.number}\tP${incident.priority}\t${incident.state}\t${incident.acknowledgedAt ? 'acknowledged' : 'unacknowledged'}\t${incident.sourceSystem}\t${incident.shortDescription}`,
          json: (incident) => ({ ...incident }),
          empty: 'no incidents',
        });
        return 0;
      },
    },
  ],
});
