/**
 * `projectx shell` and `projectx chat`: the bot in a terminal, as a ProjectX user, against the same database
 * and rules as in Slack (the console surface: src/bot/console/session.ts).
 */
import { createInterface } from 'node:readline/promises';
import type { CommandContext } from '../commands/context.ts';
import { UsageError, one, parse } from '../../cli/args.ts';
import { type OperatorContext, userByEmail } from '../../cli/context.ts';
import { type Io, defineVerb } from '../../cli/verb.ts';
import type { User } from '../../domain/users.ts';
import { ConsoleSession } from './session.ts';

function commandContext(ctx: OperatorContext, user: User): CommandContext {
  return { domain: ctx.domain, actor: { surface: 'console', user }, integrations: ctx.integrations };
}

export const shellVerb = defineVerb({
  name: 'shell',
  summary: 'The bot in a terminal, as a user (press buttons with "press N")',
  commands: [
    {
      name: '',
      usage: 'shell --as <email>',
      summary: 'Type /projectx commands without the /projectx ("tasks", "approve T-1"); "exit" or Ctrl-D leaves.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { as: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (shell reads commands from its prompt; for one command use: projectx chat)`);
        const user = await userByEmail(ctx, one(values.as));
        return shell(new ConsoleSession(commandContext(ctx, user)), user, io);
      },
    },
  ],
});

export const chatVerb = defineVerb({
  name: 'chat',
  summary: 'One bot command as a user, e.g. chat --as ann@x.test "approve T-1"',
  commands: [
    {
      name: '',
      usage: 'chat --as <email> "<command>"',
      summary: 'Prints the reply; exit 1 when the bot refused.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { as: { type: 'string' } });
        if (positionals.length === 0) throw new UsageError('chat needs the command text, e.g. chat --as you@x.test "tasks"');
        const user = await userByEmail(ctx, one(values.as));
        const output = await new ConsoleSession(commandContext(ctx, user)).handle(positionals.join(' '));
        (output.refused ? io.err : io.out)(output.text);
        return output.refused ? 1 : 0;
      },
    },
  ],
});

/**
 * The interactive loop. At a terminal, readline owns the line: it is given the output stream, so what the
 * person types is echoed (the terminal is in raw mode while readline runs) and the prompt is redrawn after each
 * reply; piped input is read line by line with no prompt.
 */
async function shell(session: ConsoleSession, user: User, io: Io): Promise<number> {
  const rl = createInterface({ input: io.input, ...(io.interactive ? { output: io.output, terminal: true } : { terminal: false }) });
  io.out(`ProjectX shell as ${user.displayName} <${user.email}>. Type "help", "press N" for a button, "exit" to leave.`);
  const ask = () => {
    if (!io.interactive) return;
    rl.setPrompt(session.prompt);
    rl.prompt();
  };
  ask();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === 'exit' || text === 'quit') break;
      if (text) io.out((await session.handle(text)).text);
      ask();
    }
  } finally {
    rl.close();
  }
  return 0;
}
