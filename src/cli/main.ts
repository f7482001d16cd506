/**
 * The `projectx` command line. Its own commands are `start`, `migrate` and `help`; every other verb comes from
 * a module (src/modules.ts) and is dispatched by src/cli/dispatch.ts. Help needs no configuration and no
 * database; everything else parses the environment once (exit 1 listing every bad variable). Problems the
 * user can fix get a message and a non-zero exit (2: called wrongly, with the usage line), never a stack trace.
 *
 * Logs go to stdout for `start` (the service's output is its log) and to stderr for verbs (their stdout is
 * their output), pretty on a terminal and JSON otherwise; verbs log warnings only unless LOG_LEVEL says more.
 */
import { existsSync } from 'node:fs';
import { PgBoss } from 'pg-boss';
import { type Config, loadConfig, secretValues } from '../config.ts';
import { DatabaseUnavailable, releaseDatabase, resolveDatabase } from '../db/connect.ts';
import { createDatabase } from '../db/database.ts';
import { migrateToLatest } from '../db/migrate.ts';
import { JOBS_SCHEMA } from '../jobs/runtime.ts';
import { type Logger, createLogger, createScrubber } from '../logger.ts';
import { ROLES, type Role, type ServiceModule, verbsOf } from '../module.ts';
import { modules as serviceModules } from '../modules.ts';
import { startService } from '../main.ts';
import { HalfConfigured } from '../connectors/catalog.ts';
import { CommandFailed, UsageError, parse } from './args.ts';
import { openOperatorContext } from './context.ts';
import { HELP_FLAGS, overview, resolve, runResolved, verbHelp } from './dispatch.ts';
import type { CliVerb } from './verb.ts';

/** The CLI's own commands (usage and one line each), listed before the modules' verbs. */
const BUILTINS = [
  { name: 'start', usage: 'start [--role all|web|worker]', summary: 'run the service (default role: all: web and worker in one process)' },
  { name: 'migrate', usage: 'migrate', summary: 'apply database migrations and install the job queue schema, then exit' },
  { name: 'help', usage: 'help [<command>]', summary: 'this list, or one command\'s usage' },
] as const;

/** A problem the user can fix: printed without a stack trace, exit code as given (2: usage). */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export interface CliStreams {
  stdout: NodeJS.WriteStream | NodeJS.WritableStream;
  stderr: NodeJS.WriteStream | NodeJS.WritableStream;
  stdin: NodeJS.ReadStream | NodeJS.ReadableStream;
}

const isTty = (stream: NodeJS.ReadableStream | NodeJS.WritableStream) => (stream as { isTTY?: boolean }).isTTY === true;

export async function run(argv: readonly string[], env: Record<string, string | undefined>, modules: readonly ServiceModule[] = serviceModules, streams: CliStreams = process): Promise<number> {
  const verbs = verbsOf(modules);
  const print = (text: string) => void streams.stdout.write(`${text}\n`);
  const [command, ...rest] = argv;
  const list = overview(BUILTINS.map(({ usage, summary }) => ({ usage, summary })), verbs);
  if (command === undefined) {
    print(list);
    return 2;
  }
  if (command === 'help' || HELP_FLAGS.has(command)) {
    const topic = rest[0];
    if (topic === undefined) {
      print(list);
      return 0;
    }
    const text = helpFor(topic, verbs);
    if (text === undefined) throw new CliError(`unknown command "${topic}"\n\n${list}`);
    print(text);
    return 0;
  }
  const builtin = BUILTINS.find((candidate) => candidate.name === command);
  const verb = verbs.find((candidate) => candidate.name === command);
  if (!builtin && !verb) throw new CliError(`unknown command "${command}"\n\n${list}`);
  if (builtin && rest.some((arg) => HELP_FLAGS.has(arg))) {
    print(helpFor(builtin.name, verbs)!);
    return 0;
  }
  // Help and usage errors of a verb need no configuration and no database.
  const resolved = verb ? resolveOrExplain(verb, rest) : undefined;
  if (resolved?.kind === 'help') {
    print(resolved.text);
    return 0;
  }

  const loaded = loadConfig(env);
  if (!loaded.ok) throw new CliError(`Configuration problems (fix these environment variables):\n${loaded.problems.map((p) => `  - ${p}`).join('\n')}`, 1);
  const secrets = secretValues(env);
  if (resolved) {
    const logger = createLogger({ level: env.LOG_LEVEL ? loaded.config.LOG_LEVEL : 'warn', secrets, destination: 'stderr' });
    const ctx = await openOperatorContext(loaded.config, logger, modules, { secrets });
    const io = {
      out: (text: string) => void streams.stdout.write(`${text}\n`),
      err: (text: string) => void streams.stderr.write(`${text}\n`),
      write: (text: string) => void streams.stdout.write(text),
      input: streams.stdin,
      output: streams.stdout,
      interactive: isTty(streams.stdin) && isTty(streams.stdout),
      terminal: isTty(streams.stdout),
    };
    try {
      return await runResolved(ctx, resolved, io);
    } catch (error) {
      if (error instanceof UsageError) throw new CliError(`error: ${error.message}`, 2);
      if (error instanceof CommandFailed) throw new CliError(error.message, error.exitCode);
      throw error;
    } finally {
      await ctx.close();
    }
  }

  const logger = createLogger({ level: loaded.config.LOG_LEVEL, secrets });
  if (command === 'migrate') {
    parseOrUsage('migrate', rest, {});
    return migrate(loaded.config, logger);
  }
  const { values } = parseOrUsage('start', rest, { role: { type: 'string', default: 'all' } });
  const chosen = ROLES.find((candidate) => candidate === values.role);
  if (!chosen) throw new CliError(`error: --role must be one of ${ROLES.join(', ')} (got "${String(values.role)}")\nUsage: projectx ${BUILTINS[0].usage}`);
  return start(loaded.config, chosen, logger, secrets);
}

function helpFor(topic: string, verbs: readonly CliVerb[]): string | undefined {
  const builtin = BUILTINS.find((candidate) => candidate.name === topic);
  if (builtin) return `projectx ${builtin.name}: ${builtin.summary}\n\nUsage: projectx ${builtin.usage}`;
  const verb = verbs.find((candidate) => candidate.name === topic);
  return verb ? verbHelp(verb) : undefined;
}

function resolveOrExplain(verb: CliVerb, args: readonly string[]) {
  try {
    return resolve(verb, args);
  } catch (error) {
    if (error instanceof UsageError) throw new CliError(`error: ${error.message}`, 2);
    throw error;
  }
}

function parseOrUsage<T extends Parameters<typeof parse>[1]>(name: (typeof BUILTINS)[number]['name'], args: readonly string[], options: T) {
  const usage = BUILTINS.find((builtin) => builtin.name === name)!.usage;
  try {
    const parsed = parse(args, options);
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    return parsed;
  } catch (error) {
    if (error instanceof UsageError) throw new CliError(`error: ${error.message}\nUsage: projectx ${usage}`);
    throw error;
  }
}

async function start(config: Config, role: Role, logger: Logger, secrets: readonly string[]): Promise<number> {
  // Signals are handled from the first moment: one that arrives while starting stops the service once it is up.
  let signalled: (signal: NodeJS.Signals) => void = () => {};
  const firstSignal = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  let forceExit: (code: number) => void = () => {};
  const forced = new Promise<number>((resolve) => (forceExit = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    if (!first) {
      first = { signal, at: Date.now() };
      logger.info({ signal }, 'signal received');
      signalled(signal);
      return;
    }
    // Ctrl-C under `npm start` arrives twice: from the terminal (the whole process group), and forwarded by npm
    // a moment later. The same signal within half a second is that one press, not an operator insisting.
    if (signal === first.signal && Date.now() - first.at < 500) return;
    logger.warn({ signal }, 'second signal: exiting now');
    forceExit(1);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const service = await startService({ config, role, logger, secrets }).catch((error: unknown) => {
    // What the operator must fix is said plainly (the variables), not as a stack.
    if (error instanceof HalfConfigured || error instanceof DatabaseUnavailable) throw new CliError(error.message, 1);
    throw error;
  });
  await firstSignal;
  // Past the budget, give up rather than hang: an orchestrator would kill us anyway.
  const deadline = setTimeout(() => {
    logger.error({ budgetMs: config.SHUTDOWN_TIMEOUT_MS }, 'shutdown did not finish in time');
    forceExit(1);
  }, config.SHUTDOWN_TIMEOUT_MS + 500);
  deadline.unref();
  const stopped = service.stop().then(
    (inTime) => (inTime ? 0 : 1),
    (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      return 1;
    },
  );
  return Promise.race([stopped, forced]);
}

async function migrate(config: Config, logger: Logger): Promise<number> {
  const database = await resolveDatabase(config, logger);
  const db = createDatabase({ connectionString: database.url, logger, max: 2, applicationName: 'projectx-migrate' });
  try {
    const { applied } = await migrateToLatest(db);
    // pg-boss installs (or upgrades) its own schema on start; start it without workers or maintenance.
    const boss = new PgBoss({ connectionString: database.url, schema: JOBS_SCHEMA, supervise: false, schedule: false, max: 2 });
    boss.on('error', (error) => logger.error({ err: error }, 'job queue error'));
    try {
      await boss.start();
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
    logger.info({ applied }, applied.length > 0 ? `applied ${applied.length} migration(s)` : 'database schema is up to date');
    return 0;
  } finally {
    await db.destroy();
    await releaseDatabase(database);
  }
}

/** Process entry (bin/projectx.js): runs the command, prints user-facing failures, exits with the code. */
export async function main(): Promise<never> {
  // A `.env` in the working directory fills in what the real environment does not set (it never overrides).
  if (existsSync('.env')) process.loadEnvFile('.env');
  const scrub = createScrubber(secretValues(process.env));
  let code: number;
  try {
    code = await run(process.argv.slice(2), process.env);
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`${scrub(error.message)}\n`);
      code = error.exitCode;
    } else {
      process.stderr.write(`projectx: ${scrub(describe(error))}\n`);
      code = 1;
    }
  }
  // Exit explicitly: log transports and pools may hold the event loop, and the code must be ours.
  process.exit(code);
}

function describe(error: unknown): string {
  const parts: string[] = [];
  for (let current: unknown = error; current !== undefined && parts.length < 5; current = (current as { cause?: unknown }).cause) {
    const message = current instanceof Error ? current.message || current.name : typeof current === 'string' ? current : JSON.stringify(current);
    if (message && !parts.includes(message)) parts.push(message);
    if (!(current instanceof Error)) break;
  }
  return parts.join(': caused by: ') || 'failed';
}
