/**
 * The operator verb contract. A verb (`projectx users …`) is data plus one function per subcommand; modules
 * contribute theirs (src/module.ts `verbs`), the CLI (src/cli/dispatch.ts) finds the command, prints help and
 * usage errors, and handles `--json` for lists. No verb parses `--help` or prints the list of verbs itself.
 *
 * @example
 * export const usersVerb = defineVerb({
 *   name: 'users',
 *   summary: 'ProjectX users, their roles and chat identities',
 *   commands: [
 *     { name: 'list', usage: 'users list', list: true, run: async (ctx, args, io) => { … } },
 *     { name: 'add', usage: 'users add <email> [--name "<name>"] [--role <role>]...', run: … },
 *   ],
 * });
 */
import type { OperatorContext } from './context.ts';

export interface Io {
  /** A line on stdout (what the command prints for a person or a program). */
  out: (text: string) => void;
  /** A line on stderr (refusals, warnings). */
  err: (text: string) => void;
  /** Text on stdout as it is (progress lines rewrite themselves with `\r`). */
  write: (text: string) => void;
  /** What the person types (`shell`), or what a program pipes in (`--credentials-stdin`). */
  input: NodeJS.ReadableStream;
  /** Where an interactive prompt echoes (`shell` in a terminal). */
  output: NodeJS.WritableStream;
  /** stdin is a terminal: a person is typing. */
  interactive: boolean;
  /** stdout is a terminal: a person is reading (tables and progress); otherwise a program is (JSON). */
  terminal: boolean;
  /** `--json` was given to a list command. */
  json: boolean;
}

export interface VerbCommand {
  /** The words after the verb that select it (`add`, `quarantine list`); '' for a verb without subcommands. */
  name: string;
  /** Its usage line, without `projectx ` (`users add <email> [--role <role>]...`); lists get ` [--json]` added. */
  usage: string;
  /** A line of explanation under the usage in `projectx help <verb>`. */
  summary?: string;
  /** A list: takes `--json` (an array of objects on stdout) and prints aligned columns otherwise. */
  list?: boolean;
  run(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number>;
}

export interface CliVerb {
  name: string;
  /** One line for `projectx help`. */
  summary: string;
  commands: readonly VerbCommand[];
}

/** Identity function that checks the shape; see the module comment. */
export function defineVerb(verb: CliVerb): CliVerb {
  return verb;
}

/** The usage line of a command as printed (`projectx …`, with `[--json]` on lists). */
export function usageLine(command: VerbCommand): string {
  return `projectx ${command.usage}${command.list ? ' [--json]' : ''}`;
}
