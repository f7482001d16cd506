/**
 * The composition root: builds every dependency (database, job runtime, metrics, logger, clock, HTTP app) once
 * and passes them in. Nothing else in the codebase creates a pool, a pg-boss instance or a server.
 *
 * Roles: `web` serves the HTTP surfaces and enqueues jobs; `worker` runs job handlers, schedules and queue
 * maintenance (and serves only /healthz, /readyz, /metrics); `all` (the default) does both in one process.
 */
import { sql } from 'kysely';
import { type Clock, systemClock } from './clock.ts';
import type { Config } from './config.ts';
import { describeIntegrations } from './connectors/catalog.ts';
import { type Db, createDatabase } from './db/database.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './db/embedded.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createApp } from './http/app.ts';
import type { ReadinessCheck } from './http/ops.ts';
import { type HttpServer, startHttpServer } from './http/server.ts';
import { jobDefinitions } from './jobs/index.ts';
import type { JobDeps } from './jobs/job-deps.ts';
import { type AnyJob, type JobRuntime, startJobRuntime } from './jobs/runtime.ts';
import type { Logger } from './logger.ts';
import { type Metrics, createMetrics } from './metrics.ts';

export type Role = 'all' | 'web' | 'worker';
export const ROLES: readonly Role[] = ['all', 'web', 'worker'];

export interface ServiceOptions {
  config: Config;
  role: Role;
  logger: Logger;
  secrets?: readonly string[];
  clock?: Clock;
  /** Defaults to every job of the service. */
  jobs?: readonly AnyJob[];
}

export interface Service {
  role: Role;
  http: HttpServer;
  db: Db;
  jobs: JobRuntime;
  metrics: Metrics;
  /** Graceful stop within `config.SHUTDOWN_TIMEOUT_MS`; resolves true when everything closed in time. */
  stop(): Promise<boolean>;
}

export interface DatabaseHandle {
  url: string;
  embedded: EmbeddedPostgres | undefined;
}

/** `DATABASE_URL`, or the embedded server under `PROJECTX_DATA_DIR` when it is unset. */
export async function resolveDatabase(config: Config, logger: Logger): Promise<DatabaseHandle> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, embedded: undefined };
  logger.info({ dataDir: config.PROJECTX_DATA_DIR }, 'DATABASE_URL is not set: using the embedded PostgreSQL server');
  const embedded = await startEmbeddedPostgres({ dataDir: config.PROJECTX_DATA_DIR, logger });
  return { url: embedded.url, embedded };
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, role, logger } = options;
  const clock = options.clock ?? systemClock;
  const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
  const cleanup = async () => {
    for (const step of cleanups.reverse()) await step.run().catch((error: unknown) => logger.warn({ err: error }, `${step.name} failed to stop`));
  };

  try {
    const database = await resolveDatabase(config, logger);
    if (database.embedded && !database.embedded.adopted) cleanups.push({ name: 'embedded PostgreSQL', run: database.embedded.stop });

    const db = createDatabase({ connectionString: database.url, logger, applicationName: `projectx-${role}` });
    cleanups.push({ name: 'database pool', run: () => db.destroy() });
    const { applied } = await migrateToLatest(db);
    logger.info({ applied }, applied.length > 0 ? 'database migrated' : 'database schema is up to date');

    const metrics = createMetrics();
    const jobs = await startJobRuntime({
      connectionString: database.url,
      definitions: options.jobs ?? jobDefinitions,
      logger,
      metrics,
      supervise: role !== 'web',
      secrets: options.secrets ?? [],
    });
    cleanups.push({ name: 'job runtime', run: () => jobs.stop(2000) });

    if (role !== 'web') {
      const deps: JobDeps = { db, logger, clock, config, jobs };
      await jobs.work(deps);
    }

    const app = createApp({
      logger,
      metrics,
      bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
      readiness: readinessChecks(db, jobs),
    });
    const http = await startHttpServer(app, { host: config.HOST, port: config.PORT });
    logger.info({ url: http.url, host: config.HOST, port: http.port, role }, `ProjectX Integrations (${role}) listening on ${http.url}`);
    logIntegrations(config, logger);

    return {
      role,
      http,
      db,
      jobs,
      metrics,
      stop: () => shutdown({ budgetMs: config.SHUTDOWN_TIMEOUT_MS, http, jobs, logger, rest: cleanup }),
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** What /readyz asks: the database answers a query, and pg-boss (its own pool) can read its schema. */
export function readinessChecks(db: Db, jobs: Pick<JobRuntime, 'boss'>): ReadinessCheck[] {
  return [
    { name: 'database', check: () => sql`select 1`.execute(db) },
    { name: 'queue', check: () => jobs.boss.schemaVersion() },
  ];
}

/**
 * Stop accepting and finish in-flight requests, then let running jobs finish, then close the pool and the
 * embedded server. Each phase gets a share of the budget so the whole stays inside it.
 */
async function shutdown(input: { budgetMs: number; http: HttpServer; jobs: JobRuntime; logger: Logger; rest: () => Promise<void> }): Promise<boolean> {
  const { budgetMs, http, jobs, logger } = input;
  const started = Date.now();
  logger.info({ budgetMs }, 'shutting down');
  await http.close(Math.floor(budgetMs * 0.4));
  await jobs.stop(Math.floor(budgetMs * 0.4)).catch((error: unknown) => logger.warn({ err: error }, 'job runtime failed to stop'));
  await input.rest();
  const ms = Date.now() - started;
  logger.info({ ms }, 'shut down');
  return ms <= budgetMs;
}

function logIntegrations(config: Config, logger: Logger): void {
  for (const status of describeIntegrations(config)) {
    if (status.configured) logger.info({ integration: status.id }, `${status.title}: configured`);
    else logger.info({ integration: status.id, missing: status.missing }, `${status.title}: not configured (set ${status.missing.join(', ')})`);
  }
}
