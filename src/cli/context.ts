/**
 * What an operator verb runs against: the database (migrated), a job runtime that can enqueue but runs no
 * workers (what verbs cause waits in the queue for a worker; `--wait` verbs work their own queue), the domain,
 * the keyring, and the module list (connectors, secret stores, integration status).
 */
import type { IntegrationHealth } from '../bot/commands/context.ts';
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { Config } from '../config.ts';
import { integrationHealth } from '../connectors/health.ts';
import type { ConnectorDefinition } from '../connectors/sdk/contract.ts';
import { type Keyring, resolveKeyring } from '../connectors/sdk/crypto.ts';
import { releaseDatabase, resolveDatabase } from '../db/connect.ts';
import { type Db, createDatabase } from '../db/database.ts';
import { migrateToLatest } from '../db/migrate.ts';
import type { DomainDeps } from '../domain/deps.ts';
import { type User, findUserByEmail } from '../domain/users.ts';
import { createEventSink } from '../jobs/domain-events.ts';
import { type JobRuntime, startJobRuntime } from '../jobs/runtime.ts';
import type { Logger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import { type ServiceModule, connectorsOf, jobsOf } from '../module.ts';
import { CommandFailed, UsageError } from './args.ts';

export interface OperatorContext {
  db: Db;
  jobs: JobRuntime;
  domain: DomainDeps;
  config: Config;
  /** Encrypts secrets at rest (partners, subscriptions, credentials); undefined when no key is configured (and not embedded). */
  keyring: Keyring | undefined;
  logger: Logger;
  modules: readonly ServiceModule[];
  connectors: readonly ConnectorDefinition[];
  /** One health line per integration, as `/projectx status` shows them. */
  integrations: () => Promise<IntegrationHealth[]>;
  close(): Promise<void>;
}

export async function openOperatorContext(config: Config, logger: Logger, modules: readonly ServiceModule[], options: { clock?: Clock; secrets?: readonly string[] } = {}): Promise<OperatorContext> {
  const database = await resolveDatabase(config, logger);
  const db = createDatabase({ connectionString: database.url, logger, max: 4, applicationName: 'projectx-cli' });
  const close = async () => {
    await db.destroy();
    await releaseDatabase(database);
  };
  try {
    await migrateToLatest(db);
    const jobs = await startJobRuntime({ connectionString: database.url, definitions: jobsOf(modules), logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false, secrets: options.secrets ?? [] });
    const domain: DomainDeps = { db, events: createEventSink(jobs), clock: options.clock ?? systemClock };
    const keyring = await resolveKeyring({ keys: config.PROJECTX_ENCRYPTION_KEY, embedded: database.embedded !== undefined, dataDir: config.PROJECTX_DATA_DIR, logger });
    return {
      db,
      jobs,
      domain,
      config,
      keyring,
      logger,
      modules,
      connectors: connectorsOf(modules),
      integrations: () => integrationHealth(db, config, modules),
      close: async () => {
        await jobs.stop(1000);
        await close();
      },
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The ProjectX user with this email; `--as <email>` (or `what`) missing is a usage error, unknown exits 1. */
export async function userByEmail(ctx: Pick<OperatorContext, 'db'>, email: string | undefined, what = '--as'): Promise<User> {
  if (!email) throw new UsageError(`${what} <email> is required`);
  const user = await findUserByEmail(ctx.db, email);
  if (!user) throw new CommandFailed(`no user with email ${email} (add one with: projectx users add ${email} --role …)`);
  return user;
}

/** The keyring, or exit 1 saying what to set: `what` is stored encrypted. */
export function requireKeyring(ctx: Pick<OperatorContext, 'keyring'>, what: string): Keyring {
  if (!ctx.keyring) throw new CommandFailed(`${what} are stored encrypted: set PROJECTX_ENCRYPTION_KEY (see .env.example) and try again`);
  return ctx.keyring;
}
