/** `projectx controls …`: the controls evidence and tasks are linked to. */
import { createControl, searchControls } from '../../domain/controls.ts';
import { UsageError, must, one, oneArgument, parse } from '../args.ts';
import { audit } from '../audit.ts';
import { userByEmail } from '../context.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

export const controlsVerb = defineVerb({
  name: 'controls',
  summary: 'Controls (what evidence and tasks are for)',
  commands: [
    {
      name: 'add',
      usage: 'controls add <id> --title "<title>" [--owner <email>] [--program <id>] [--renewal-days <n>]',
      summary: 'Ids look like AC-2 or ISO-A.5.1. --renewal-days: how long evidence for it stays valid (its owner is asked to renew it 30, 7 and 1 days before).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { title: { type: 'string' }, owner: { type: 'string' }, program: { type: 'string' }, 'renewal-days': { type: 'string' } });
        const title = one(values.title);
        const id = oneArgument(positionals, 'control id');
        if (!title) throw new UsageError('--title is required');
        const owner = values.owner ? await userByEmail(ctx, one(values.owner), '--owner') : undefined;
        const renewal = one(values['renewal-days']);
        if (renewal !== undefined && !/^\d+$/.test(renewal)) throw new UsageError('--renewal-days takes a whole number of days');
        const control = must(await createControl(ctx.db, { id, title, ownerId: owner?.id, programId: one(values.program), renewalDays: renewal === undefined ? undefined : Number(renewal) }));
        await audit(ctx, 'control.create', 'control', control.id, { owner: owner?.email ?? null, renewalDays: renewal === undefined ? null : Number(renewal) });
        io.out(`added control ${control.id} ${control.title}${owner ? ` (owner ${owner.email})` : ''}`);
        return 0;
      },
    },
    {
      name: 'list',
      usage: 'controls list [<search>]',
      list: true,
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        printList(io, await searchControls(ctx.db, positionals.join(' '), 500), {
          line: (control) => `${control.id}\t${control.title}`,
          json: (control) => ({ ...control }),
          empty: positionals.length > 0 ? 'no control matches' : 'no controls (add one with: projectx controls add <id> --title "<title>")',
        });
        return 0;
      },
    },
  ],
});
