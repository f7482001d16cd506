/**
 * The composition root: builds the shared dependencies (database, job runtime, metrics, logger, clock, keyring,
 * HTTP app and server) once, then walks the module list (src/modules.ts): each module's `start` contributes its
 * routes, notifiers, job dependencies, readiness checks and stop hooks. Nothing here names a surface or a
 * connector, and nothing else in the codebase creates a pool, a pg-boss instance or a server.
 *
 * Roles: `web` serves the HTTP surfaces and enqueues jobs; `worker` runs job handlers, schedules and queue
 * maintenance (and serves only /healthz, /readyz, /metrics); `all` (the default) does both in one process.
 */
import type { Context, Hono } from 'hono';
import type { IntegrationHealth } from './bot/commands/context.ts';
import { type Clock, systemClock } from './clock.ts';
import type { Config } from './config.ts';
import { HalfConfigured, describeIntegrations, halfConfigured } from './connectors/catalog.ts';
import { evidenceScanHealth, integrationHealth } from './connectors/health.ts';
import { resolveKeyring } from './connectors/sdk/crypto.ts';
import { releaseDatabase, resolveDatabase } from './db/connect.ts';
import { type Db, createDatabase } from './db/database.ts';
import { migrateToLatest } from './db/migrate.ts';
import type { DomainDeps } from './domain/deps.ts';
import { createIdentityCache } from './domain/identity-cache.ts';
import { createApp } from './http/app.ts';
import { type HttpServer, describeListen, startHttpServer } from './http/server.ts';
import { createEventSink } from './jobs/domain-events.ts';
import { type InboundOutbox, createInboundOutbox } from './jobs/inbound-outbox.ts';
import type { JobDeps } from './jobs/job-deps.ts';
import { type AnyJob, type JobRuntime, startJobRuntime } from './jobs/runtime.ts';
import type { Logger } from './logger.ts';
import { type Metrics, createMetrics } from './metrics.ts';
import { type ModuleContext, type ModuleParts, type Role, type ServiceModule, connectorsOf, jobsOf, evidencePipelineOf } from './module.ts';
import { modules as serviceModules } from './modules.ts';

export { ROLES, type Role } from './module.ts';

export interface ServiceOptions {
  config: Config;
  role: Role;
  logger: Logger;
  secrets?: readonly string[];
  clock?: Clock;
  /** Job definitions by name over the modules' (tests shorten polling); jobs no module lists run with the shared dependencies. */
  jobs?: readonly AnyJob[];
  /** Adds routes to the HTTP app of the web role (tests). */
  mount?: (app: Hono, service: { db: Db; jobs: JobRuntime; domain: DomainDeps; config: Config; logger: Logger }) => void;
  /** How often staged processing jobs are looked for without a poke (default 5 s; tests lengthen it). */
  outboxSweepMs?: number;
}

export interface Service {
  role: Role;
  http: HttpServer;
  db: Db;
  jobs: JobRuntime;
  metrics: Metrics;
  domain: DomainDeps;
  /** Servers the modules listen on besides HTTP (the SMTP listener), by name. */
  listeners: readonly { module: string; name: string; host: string; port: number }[];
  /** Graceful stop within `config.SHUTDOWN_TIMEOUT_MS`; resolves true when everything closed cleanly. Idempotent. */
  stop(): Promise<boolean>;
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, role, logger } = options;
  const modules = serviceModules;
  const clock = options.clock ?? systemClock;
  const cleanups: { name: string; run: () => Promise<unknown> }[] = [];
  /** Runs every cleanup, newest first; false when one failed. */
  const cleanup = async (): Promise<boolean> => {
    let clean = true;
    for (const step of [...cleanups].reverse()) {
      await step.run().catch((error: unknown) => {
        clean = false;
        logger.warn({ err: error }, `${step.name} failed to stop`);
      });
    }
    return clean;
  };

  // Half a configuration starts, then fails every request it was meant for: refuse before touching anything.
  const half = halfConfigured(config, modules);
  if (half.length > 0) throw new HalfConfigured(half);

  try {
    const database = await resolveDatabase(config, logger);
    cleanups.push({ name: 'embedded PostgreSQL', run: () => releaseDatabase(database) });
    const db = createDatabase({ connectionString: database.url, logger, applicationName: `projectx-${role}` });
    cleanups.push({ name: 'database pool', run: () => db.destroy() });
    const { applied } = await migrateToLatest(db);
    logger.info({ applied }, applied.length > 0 ? 'database migrated' : 'database schema is up to date');

    const metrics = createMetrics();
    const definitions = withOverrides(jobsOf(modules), options.jobs ?? []);
    const jobs = await startJobRuntime({ connectionString: database.url, definitions, logger, metrics, supervise: role !== 'web', secrets: options.secrets ?? [] });
    cleanups.push({ name: 'job runtime', run: () => jobs.stop(2000) });
    // Every role relays staged processing jobs: a worker picks up what a web process that died left staged.
    const staged = new Set(modules.flatMap((module) => module.stagedJobs ?? []).map((job) => job.name));
    const outbox = createInboundOutbox({ db, jobs, definitions: definitions.filter((job) => staged.has(job.name)), logger, ...(options.outboxSweepMs !== undefined ? { sweepMs: options.outboxSweepMs } : {}) });
    cleanups.push({ name: 'inbound job outbox', run: () => outbox.close() });

    const keyring = await resolveKeyring({ keys: config.PROJECTX_ENCRYPTION_KEY, embedded: database.embedded !== undefined, dataDir: config.PROJECTX_DATA_DIR, logger });
    const events = createEventSink(jobs);
    const domain: DomainDeps = { db, events, clock };
    const web = role !== 'worker';
    const worker = role !== 'web';
    const identities = web ? await createIdentityCache({ db, connectionString: database.url, logger, metrics }) : undefined;
    if (identities) cleanups.push({ name: 'identity cache', run: () => identities.close() });
    const connectors = connectorsOf(modules);
    const integrations = (): Promise<IntegrationHealth[]> => integrationHealth(db, config, modules);

    const ctx: ModuleContext = { role, web, worker, config, db, connectionString: database.url, jobs, domain, keyring, clock, logger, metrics, outbox, identities, connectors, integrations };
    const started: { module: ServiceModule; parts: ModuleParts }[] = [];
    for (const module of modules) {
      const parts = (await module.start?.(ctx)) ?? {};
      started.push({ module, parts });
      if (parts.stop) cleanups.push({ name: module.title, run: parts.stop });
    }
    const drains = started.flatMap(({ parts }) => (parts.drain ? [parts.drain] : []));

    if (worker) {
      const shared: JobDeps = {
        db,
        logger,
        clock,
        metrics,
        config,
        jobs,
        events,
        notifiers: started.flatMap(({ parts }) => parts.notifiers ?? []),
        rerenderers: started.flatMap(({ parts }) => parts.rerenderers ?? []),
        evidence: evidencePipelineOf(modules, config),
        keyring,
        connectors,
        integrations,
      };
      // A module's jobs get its own dependencies over the shared ones; every other job gets the shared ones.
      const claimed = new Set<string>();
      for (const { module, parts } of started) {
        const names = (module.jobs ?? []).map((job) => job.name);
        if (!parts.jobDeps || names.length === 0) continue;
        await jobs.work({ ...shared, ...parts.jobDeps }, { only: names });
        for (const name of names) claimed.add(name);
      }
      await jobs.work(shared, { only: definitions.map((job) => job.name).filter((name) => !claimed.has(name)) });
    }

    const bodyTooLarge = started.flatMap(({ parts }) => (parts.onBodyTooLarge ? [parts.onBodyTooLarge] : []));
    const app = createApp({
      logger,
      metrics,
      bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
      readiness: started.flatMap(({ parts }) => parts.readiness ?? []),
      onBodyTooLarge: bodyTooLarge.length > 0 ? async (c: Context) => void (await Promise.all(bodyTooLarge.map(async (told) => told(c)))) : undefined,
    });
    if (web) {
      for (const { parts } of started) if (parts.routes) app.route('/', parts.routes);
      options.mount?.(app, { db, jobs, domain, config, logger });
    }
    const http = await startHttpServer(app, {
      host: config.HOST,
      port: config.PORT,
      onError: (error) => logger.error({ err: error }, 'HTTP server error'),
    });
    logger.info({ url: http.url, host: http.bound.address, port: http.port, role }, `ProjectX Integrations (${role}) listening on ${describeListen(http.bound)}`);
    logIntegrations(config, modules, logger);

    let stopping: Promise<boolean> | undefined;
    return {
      role,
      http,
      db,
      jobs,
      metrics,
      domain,
      listeners: started.flatMap(({ module, parts }) => (parts.listeners ?? []).map((listener) => ({ module: module.id, ...listener }))),
      stop: () => (stopping ??= shutdown({ budgetMs: config.SHUTDOWN_TIMEOUT_MS, http, jobs, drains, outbox, logger, rest: cleanup })),
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

/** The modules' job definitions, each replaced by the override of the same name; overrides of no module's job are added. */
function withOverrides(definitions: readonly AnyJob[], overrides: readonly AnyJob[]): AnyJob[] {
  const byName = new Map(overrides.map((job) => [job.name, job]));
  const known = new Set(definitions.map((job) => job.name));
  return [...definitions.map((job) => byName.get(job.name) ?? job), ...overrides.filter((job) => !known.has(job.name))];
}

/**
 * Stop accepting and finish in-flight requests, then let running jobs finish, then close the pool and the
 * embedded server. Each phase gets a deadline from what is left of the budget, so the whole stays inside it.
 * Resolves true when every phase closed cleanly (false when one failed; it is logged).
 */
async function shutdown(input: {
  budgetMs: number;
  http: HttpServer;
  jobs: JobRuntime;
  drains: readonly (() => Promise<void>)[];
  outbox: InboundOutbox;
  logger: Logger;
  rest: () => Promise<boolean>;
}): Promise<boolean> {
  const { http, jobs, logger } = input;
  const started = Date.now();
  const deadline = started + input.budgetMs;
  const left = () => Math.max(0, deadline - Date.now());
  // Closing the pool and checkpointing the embedded server take well under this.
  const reserveMs = Math.min(2000, input.budgetMs * 0.25);
  logger.info({ budgetMs: input.budgetMs }, 'shutting down');
  let clean = true;
  await http.close(Math.floor((left() - reserveMs) * 0.5));
  // What requests left behind (batches being written; their requests may have been cut off) commits, and what
  // it staged becomes jobs while the job runtime still runs. Past its share of the budget the rest waits for
  // the next start.
  const relayed = (async () => {
    await Promise.all(input.drains.map((drain) => drain()));
    await input.outbox.close();
  })();
  const relayBudgetMs = Math.floor((left() - reserveMs) * 0.5);
  let relayTimer: NodeJS.Timeout | undefined;
  const relayedInTime = await Promise.race([relayed.then(() => true), new Promise<false>((resolve) => (relayTimer = setTimeout(() => resolve(false), relayBudgetMs)))]);
  clearTimeout(relayTimer);
  if (!relayedInTime) {
    clean = false;
    logger.warn({ budgetMs: relayBudgetMs }, 'staged processing jobs were not all relayed in time; the next start relays the rest');
  }
  await jobs.stop(Math.floor(left() - reserveMs)).catch((error: unknown) => {
    clean = false;
    logger.warn({ err: error }, 'job runtime failed to stop');
  });
  if (!(await input.rest())) clean = false;
  logger.info({ ms: Date.now() - started, clean }, 'shut down');
  return clean;
}

/** One line per integration: configured, what it still needs, or not built in this version. */
function logIntegrations(config: Config, modules: readonly ServiceModule[], logger: Logger): void {
  for (const status of describeIntegrations(config, modules)) {
    if (status.state === 'configured') logger.info({ integration: status.id }, `${status.title}: configured`);
    else if (status.state === 'not_built') logger.info({ integration: status.id, ignored: status.ignored }, `${status.title}: not built in this version${status.ignored.length > 0 ? ` (${status.ignored.join(', ')} ignored)` : ''}`);
    else logger.info({ integration: status.id, missing: status.missing }, `${status.title}: not configured (set ${status.missing.join(', ')})`);
  }
  const scan = evidenceScanHealth(config);
  if (scan.configured) logger.info({ integration: scan.id }, `${scan.title}: ${scan.detail}`);
  else logger.warn({ integration: scan.id, missing: ['CLAMAV_URL'] }, `${scan.title}: ${scan.detail}`);
}
