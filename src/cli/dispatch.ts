/**
 * From `projectx <verb> <words…> [options]` to one command of one verb: per-verb and per-command help
 * (`projectx help <verb>`, `projectx <verb> --help`, a bare `projectx <verb>`), usage errors carrying the one
 * relevant usage line, and `--json` for lists. Verbs only implement their commands (src/cli/verb.ts).
 */
import { UsageError } from './args.ts';
import type { OperatorContext } from './context.ts';
import { type CliVerb, type Io, type VerbCommand, usageLine } from './verb.ts';

export type Resolution = { kind: 'help'; text: string } | { kind: 'run'; command: VerbCommand; args: string[]; json: boolean };

export const HELP_FLAGS: ReadonlySet<string> = new Set(['--help', '-h']);

/** The command the words after the verb name: the longest matching name, else the verb's unnamed command. */
export function findCommand(verb: CliVerb, args: readonly string[]): { command: VerbCommand; rest: string[] } | undefined {
  let best: { command: VerbCommand; words: number } | undefined;
  for (const command of verb.commands) {
    const words = command.name === '' ? [] : command.name.split(' ');
    if (words.every((word, index) => args[index] === word) && (!best || words.length > best.words)) best = { command, words: words.length };
  }
  return best ? { command: best.command, rest: args.slice(best.words) } : undefined;
}

/** What to do with `projectx <verb> <args>`: print help, or run a command. Unknown words are a usage error. */
export function resolve(verb: CliVerb, args: readonly string[]): Resolution {
  const found = findCommand(verb, args);
  const wantsHelp = args.some((arg) => HELP_FLAGS.has(arg));
  if (args.length === 0 || (wantsHelp && (!found || found.command.name === ''))) return { kind: 'help', text: verbHelp(verb) };
  if (wantsHelp && found) return { kind: 'help', text: commandHelp(found.command) };
  if (!found) throw new UsageError(`unknown command "${[verb.name, ...args.slice(0, 1)].join(' ')}"\nUsage: ${synopsis(verb)}`);
  const json = found.command.list === true && found.rest.includes('--json');
  return { kind: 'run', command: found.command, args: json ? found.rest.filter((arg) => arg !== '--json') : found.rest, json };
}

/**
 * Runs a resolved command; a `UsageError` it throws comes back with the command's usage line (exit 2).
 *
 * @example
 * const resolved = resolve(usersVerb, ['list', '--json']);
 * if (resolved.kind === 'run') await runResolved(ctx, resolved, io);
 */
export async function runResolved(ctx: OperatorContext, resolved: Extract<Resolution, { kind: 'run' }>, io: Omit<Io, 'json'>): Promise<number> {
  try {
    return await resolved.command.run(ctx, resolved.args, { ...io, json: resolved.json });
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${error.message}\nUsage: ${usageLine(resolved.command)}`);
    throw error;
  }
}

/** Resolves and runs in one step (in-process callers, tests): help is printed on `io.out`. */
export async function runVerb(ctx: OperatorContext, verb: CliVerb, args: readonly string[], io: Omit<Io, 'json'>): Promise<number> {
  const resolved = resolve(verb, args);
  if (resolved.kind === 'help') {
    io.out(resolved.text);
    return 0;
  }
  return runResolved(ctx, resolved, io);
}

/** `projectx help <verb>`: every command's usage line, each with its explanation. */
export function verbHelp(verb: CliVerb): string {
  const lines = [`projectx ${verb.name}: ${verb.summary}`, '', 'Usage:'];
  for (const command of verb.commands) {
    lines.push(`  ${usageLine(command)}`);
    if (command.summary) lines.push(`      ${command.summary}`);
  }
  return lines.join('\n');
}

/** `projectx <verb> <command> --help`: that command's usage line and explanation. */
export function commandHelp(command: VerbCommand): string {
  return [`Usage: ${usageLine(command)}`, ...(command.summary ? ['', command.summary] : [])].join('\n');
}

/** One line naming a verb's commands, for an unknown one. */
function synopsis(verb: CliVerb): string {
  const names = verb.commands.map((command) => command.name).filter(Boolean);
  return names.length > 0 ? `projectx ${verb.name} ${names.join('|')} … (projectx help ${verb.name} shows each)` : usageLine(verb.commands[0]!);
}

/** `projectx help`: the built-in commands and one line per verb. */
export function overview(builtins: readonly { usage: string; summary: string }[], verbs: readonly CliVerb[]): string {
  const rows = [...builtins.map((builtin) => [builtin.usage, builtin.summary] as const), ...verbs.map((verb) => [verb.name, verb.summary] as const)];
  const width = Math.max(...rows.map(([usage]) => usage.length)) + 2;
  return [
    'Usage: projectx <command> [options]',
    '',
    'Commands:',
    ...rows.map(([usage, summary]) => `  ${usage.padEnd(width)}${summary}`),
    '',
    'projectx help <command> (or projectx <command> --help) shows its usage.',
    'Configuration comes from the environment (and a .env in the working directory); see .env.example.',
  ].join('\n');
}
