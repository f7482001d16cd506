/**
 * The `projectx` command line. Parses the environment once (exit 1 listing every bad variable), then runs one
 * verb. Problems the user can fix get a message and a non-zero exit, never a stack trace.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type Config, loadConfig, secretValues } from './config.ts';
import { createDatabase } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import { JOBS_SCHEMA } from './jobs/runtime.ts';
import { type Logger, createLogger, createScrubber } from './logger.ts';
import { OPERATOR_USAGE, OPERATOR_VERBS, type OperatorVerb, UsageError, runOperatorVerb } from './bot/console/operator-cli.ts';
import { ROLES, type Role, openOperatorContext, resolveDatabase, startService } from './main.ts';
import { PgBoss } from 'pg-boss';

const USAGE = `Usage: projectx <command> [options]

Commands:
  start [--role all|web|worker]               run the service (default role: all)
  migrate                                     apply database migrations and install the job queue schema, then exit
${OPERATOR_USAGE}
  help                                        show this text

Configuration comes from the environment (and a .env in the working directory); see .env.example.`;

/** A problem the user can fix: printed without a stack trace, exit code as given. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

export async function run(argv: readonly string[], env: Record<string, string | undefined>): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  const operatorVerb = OPERATOR_VERBS.find((verb) => verb === command);
  if (command !== 'start' && command !== 'migrate' && !operatorVerb) {
    throw new CliError(`unknown command "${command}"\n\n${USAGE}`);
  }

  const loaded = loadConfig(env);
  if (!loaded.ok) {
    throw new CliError(`Configuration problems (fix these environment variables):\n${loaded.problems.map((p) => `  - ${p}`).join('\n')}`, 1);
  }
  const secrets = secretValues(env);
  if (operatorVerb) {
    // Operator verbs print for a person on stdout; logs go to stderr, warnings only unless LOG_LEVEL says more.
    const logger = createLogger({ level: env.LOG_LEVEL ? loaded.config.LOG_LEVEL : 'warn', secrets, destination: process.stderr });
    return operator(loaded.config, logger, secrets, operatorVerb, rest);
  }
  const logger = createLogger({ level: loaded.config.LOG_LEVEL, secrets });

  if (command === 'migrate') {
    parseOptions(rest, {});
    return migrate(loaded.config, logger);
  }
  const { role } = parseOptions(rest, { role: { type: 'string', default: 'all' } });
  const chosen = ROLES.find((candidate) => candidate === role);
  if (!chosen) throw new CliError(`--role must be one of ${ROLES.join(', ')} (got "${String(role)}")`);
  return start(loaded.config, chosen, logger, secrets);
}

function parseOptions(args: readonly string[], options: Record<string, { type: 'string'; default?: string }>): Record<string, string | undefined> {
  try {
    const { values } = parseArgs({ args: [...args], options, allowPositionals: false, strict: true });
    return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, typeof value === 'string' ? value : undefined]));
  } catch (error) {
    throw new CliError(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
  }
}

async function start(config: Config, role: Role, logger: Logger, secrets: readonly string[]): Promise<number> {
  // Signals are handled from the first moment: one that arrives while starting stops the service once it is up.
  let signalled: (signal: NodeJS.Signals) => void = () => {};
  const firstSignal = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let signals = 0;
  let forceExit: (code: number) => void = () => {};
  const forced = new Promise<number>((resolve) => (forceExit = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'signal received');
      signalled(signal);
    } else {
      logger.warn({ signal }, 'second signal: exiting now');
      forceExit(1);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  const service = await startService({ config, role, logger, secrets });
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

async function operator(config: Config, logger: Logger, secrets: readonly string[], verb: OperatorVerb, args: readonly string[]): Promise<number> {
  const ctx = await openOperatorContext(config, logger, { secrets });
  const io = {
    out: (text: string) => void process.stdout.write(`${text}\n`),
    err: (text: string) => void process.stderr.write(`${text}\n`),
    input: process.stdin,
    interactive: process.stdin.isTTY,
  };
  try {
    return await runOperatorVerb(ctx, verb, args, io);
  } catch (error) {
    if (error instanceof UsageError) throw new CliError(`${error.message}\n\nUsage: projectx ${verb} …\n${OPERATOR_USAGE}`);
    const exitCode = (error as { exitCode?: unknown }).exitCode;
    if (typeof exitCode === 'number') throw new CliError(error instanceof Error ? error.message : String(error), exitCode);
    throw error;
  } finally {
    await ctx.close();
  }
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
    if (database.embedded && !database.embedded.adopted) await database.embedded.stop();
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
