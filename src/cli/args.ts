/**
 * What every operator verb uses to read its arguments and to refuse: `parse` (node:util parseArgs, strict),
 * the two refusals the CLI knows (`UsageError`: exit 2 with the command's usage line; `CommandFailed`: a
 * message and exit 1), and small readers for parsed values.
 */
import { parseArgs } from 'node:util';
import type { Result } from '../domain/result.ts';

/** The command was called wrongly: its message, the one relevant usage line, exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The command ran and could not do what was asked (unknown user, refused by the domain): a message, exit 1. */
export class CommandFailed extends Error {
  readonly exitCode: number;
  readonly code: string | undefined;
  constructor(message: string, options: { exitCode?: number; code?: string } = {}) {
    super(message);
    this.name = 'CommandFailed';
    this.exitCode = options.exitCode ?? 1;
    this.code = options.code;
  }
}

/** Throws a `CommandFailed` (exit 1) with `message`. */
export function fail(message: string): never {
  throw new CommandFailed(message);
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

/**
 * Strict parsing with positionals; an unknown option or a missing value is a `UsageError`.
 *
 * @example
 * const { values, positionals } = parse(args, { as: { type: 'string' } });
 */
export function parse<T extends Options>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * The one positional argument a command takes (`what` names it: "email address"); none, or more than one, is
 * a usage error.
 */
export function oneArgument(positionals: readonly string[], what: string): string {
  const [first, ...extra] = positionals;
  if (first === undefined) throw new UsageError(`give the ${what}`);
  if (extra.length > 0) throw new UsageError(`one ${what} only (unexpected "${extra[0]}")`);
  return first;
}

export const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : typeof value === 'string' ? [value] : []);
export const one = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** `--limit <n>`: a whole number from 1 to `max` (default `fallback`); anything else is a usage error. */
export function limitOption(value: unknown, fallback = 100, max = 1000): number {
  const raw = one(value);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new UsageError(`--limit takes a whole number from 1 to ${max}`);
  return Number(raw);
}

/** Unwraps a domain result: a refusal becomes `CommandFailed` (exit 1) with the domain's message and code. */
export function must<T>(result: Result<T>): T {
  if (!result.ok) throw new CommandFailed(result.refusal.message, { code: result.refusal.code });
  return result.value;
}
