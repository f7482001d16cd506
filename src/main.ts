/**
 * The composition root: builds every dependency (database, job runtime, metrics, logger, clock, HTTP app) once
 * and passes them in. Nothing else in the codebase creates a pool, a pg-boss instance or a server.
 *
 * Roles: `web` serves the HTTP surfaces and enqueues jobs; `worker` runs job handlers, schedules and queue
 * maintenance (and serves only /healthz, /readyz, /metrics); `all` (the default) does both in one process.
 */
import type { Hono } from 'hono';
import path from 'node:path';
import { sql } from 'kysely';
import { LocalEvidenceStore } from './connectors/evidence-stores/local.ts';
import { type SmtpListener, startSmtpListener } from './connectors/email/listener.ts';
import { createEmailNotifier } from './connectors/email/notifier.ts';
import { createMailSender } from './connectors/email/transport.ts';
import { type Keyring, resolveKeyring } from './connectors/sdk/crypto.ts';
import { createOutboundTransport } from './connectors/webhook-bridge/outbound/destination.ts';
import { type Clock, systemClock } from './clock.ts';
import type { Config } from './config.ts';
import { describeIntegrations } from './connectors/catalog.ts';
import { type Db, createDatabase } from './db/database.ts';
import { type EmbeddedPostgres, startEmbeddedPostgres } from './db/embedded.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createApp } from './http/app.ts';
import type { ReadinessCheck } from './http/ops.ts';
import { type HttpServer, startHttpServer } from './http/server.ts';
import type { Notifier } from './bot/notifier.ts';
import { createSlackDelivery } from './bot/slack/notifier.ts';
import { createSlackSurface } from './bot/slack/surface.ts';
import { createIdentityCache } from './domain/identity-cache.ts';
import { type WebhookReceiver, createWebhookReceiver } from './connectors/webhook-bridge/inbound.ts';
import { webhookProcess } from './connectors/webhook-bridge/process.ts';
import { createPartnerDirectory } from './connectors/webhook-bridge/partners.ts';
import { integrationHealth } from './connectors/health.ts';
import { connectors } from './connectors/registry.ts';
import { ensureInstanceFromEnv } from './connectors/sdk/instances.ts';
import { pendingPushes } from './connectors/sdk/push.ts';
import { createConnectorWebhooks } from './connectors/sdk/webhook.ts';
import { installConnectorSchedules } from './jobs/connector-sync.ts';
import type { DomainDeps } from './domain/deps.ts';
import { createEventSink } from './jobs/domain-events.ts';
import { type InboundJob, type InboundOutbox, createInboundOutbox } from './jobs/inbound-outbox.ts';
import { jobDefinitions } from './jobs/index.ts';
import type { JobDeps } from './jobs/job-deps.ts';
import { type AnyJob, type JobRuntime, startJobRuntime } from './jobs/runtime.ts';
import type { Logger } from './logger.ts';
import { type Metrics, createMetrics, registerCollectedGauge, sharedRead } from './metrics.ts';

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
  /** Chat surfaces' notifiers (the surfaces add theirs). */
  notifiers?: readonly Notifier[];
  /** Adds routes to the HTTP app of the web role (surfaces; tests). */
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
  /** The inbound SMTP listener (web and all roles, when `SMTP_INBOUND_PORT` is set). */
  smtp: SmtpListener | undefined;
  /** Graceful stop within `config.SHUTDOWN_TIMEOUT_MS`; resolves true when everything closed cleanly. Idempotent. */
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

  try {
    const database = await resolveDatabase(config, logger);
    if (database.embedded && !database.embedded.adopted) cleanups.push({ name: 'embedded PostgreSQL', run: database.embedded.stop });

    const db = createDatabase({ connectionString: database.url, logger, applicationName: `projectx-${role}` });
    cleanups.push({ name: 'database pool', run: () => db.destroy() });
    const { applied } = await migrateToLatest(db);
    logger.info({ applied }, applied.length > 0 ? 'database migrated' : 'database schema is up to date');

    const metrics = createMetrics();
    // Deliveries not (yet) processed, by source and status: failed ones wait here for an operator.
    registerCollectedGauge(
      metrics,
      { name: 'inbound_events_unsettled', help: 'Inbound deliveries not processed, by source and status', labelNames: ['source', 'status'] as const },
      async () =>
        (
          await db
            .selectFrom('inbound_events')
            .select(['source', 'status', (eb) => eb.fn.countAll<string>().as('n')])
            .where('status', '<>', 'processed')
            .groupBy(['source', 'status'])
            .execute()
        ).map((row) => ({ labels: { source: row.source, status: row.status }, value: Number(row.n) })),
    );
    // Processing jobs staged by the webhook accept and not yet relayed: normally none for more than a moment.
    const staged = sharedRead(() =>
      db
        .selectFrom('inbound_job_outbox')
        .select(['job_name', (eb) => sql<string>`coalesce(sum(cardinality(${eb.ref('inbound_ids')})), 0)`.as('deliveries'), sql<string>`extract(epoch from now() - min(staged_at))`.as('oldest')])
        .groupBy('job_name')
        .execute(),
    );
    registerCollectedGauge(metrics, { name: 'inbound_job_outbox_deliveries', help: 'Deliveries whose processing job is staged but not yet relayed to the queue, by job', labelNames: ['job'] as const }, async () =>
      (await staged()).map((row) => ({ labels: { job: row.job_name }, value: Number(row.deliveries) })),
    );
    registerCollectedGauge(metrics, { name: 'inbound_job_outbox_oldest_seconds', help: 'Age of the oldest staged processing job not yet relayed, by job', labelNames: ['job'] as const }, async () =>
      (await staged()).map((row) => ({ labels: { job: row.job_name }, value: Number(row.oldest) })),
    );
    const jobs = await startJobRuntime({
      connectionString: database.url,
      definitions: options.jobs ?? jobDefinitions,
      logger,
      metrics,
      supervise: role !== 'web',
      secrets: options.secrets ?? [],
    });
    cleanups.push({ name: 'job runtime', run: () => jobs.stop(2000) });
    // Every role relays staged processing jobs: a worker picks up what a web process that died left staged.
    const outbox = createInboundOutbox({ db, jobs, definitions: (options.jobs ?? jobDefinitions).filter((job): job is InboundJob => job.name === webhookProcess.name), logger, ...(options.outboxSweepMs !== undefined ? { sweepMs: options.outboxSweepMs } : {}) });
    cleanups.push({ name: 'inbound job outbox', run: () => outbox.close() });

    const keyring = await resolveKeyring({ keys: config.PROJECTX_ENCRYPTION_KEY, embedded: database.embedded !== undefined, dataDir: config.PROJECTX_DATA_DIR, logger });
    const events = createEventSink(jobs);
    const domain: DomainDeps = { db, events, clock };
    // Connector instances the environment describes (SERVICENOW_*): created or brought in line, credentials
    // encrypted; `enabled` stays as an operator left it.
    for (const connector of connectors) await ensureInstanceFromEnv(db, keyring, connector, connector.fromEnv(config));
    registerConnectorGauges(db, metrics);
    if (role !== 'web') {
      const slack = createSlackDelivery({ db, clock, logger, botToken: config.SLACK_BOT_TOKEN, apiUrl: config.SLACK_API_URL, keyring });
      const outboundTransport = createOutboundTransport({ allowedNetworks: config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS ?? [] });
      cleanups.push({ name: 'outbound webhook agent', run: () => outboundTransport.close() });
      const mail = createMailSender(config, logger);
      if (mail) cleanups.push({ name: 'SMTP transport', run: () => Promise.resolve(mail.close()) });
      const deps: JobDeps = {
        db,
        logger,
        clock,
        metrics,
        config,
        jobs,
        events,
        notifiers: [...(slack ? [slack.notifier] : []), ...(mail ? [createEmailNotifier(db, mail)] : []), ...(options.notifiers ?? [])],
        rerenderers: slack ? [slack.rerenderer] : [],
        evidenceStore: new LocalEvidenceStore(config.EVIDENCE_LOCAL_DIR ?? path.join(config.PROJECTX_DATA_DIR, 'evidence')),
        slack: slack ? { sender: slack.sender, tokens: slack.tokens } : undefined,
        keyring,
        outboundTransport,
      };
      await jobs.work(deps);
      await installConnectorSchedules(jobs.boss, db, logger);
    }

    let webhooks: WebhookReceiver | undefined;
    let smtp: SmtpListener | undefined;
    if (role !== 'worker') {
      const partners = await createPartnerDirectory({ db, keyring, config, connectionString: database.url, logger, metrics });
      cleanups.push({ name: 'webhook partner cache', run: () => partners.close() });
      webhooks = createWebhookReceiver({ db, jobs, outbox, partners, clock, logger, metrics });
    }
    const app = createApp({
      logger,
      metrics,
      bodyLimitBytes: config.HTTP_BODY_LIMIT_BYTES,
      readiness: readinessChecks(db, jobs),
      onBodyTooLarge: webhooks ? (c) => webhooks.bodyTooLarge(c) : undefined,
    });
    if (webhooks) app.route('/', webhooks.app);
    if (role !== 'worker') app.route('/', createConnectorWebhooks({ db, keyring, jobs, clock, logger, metrics, connectors }));
    if (role !== 'worker') {
      const identities = await createIdentityCache({ db, connectionString: database.url, logger, metrics });
      cleanups.push({ name: 'identity cache', run: () => identities.close() });
      const slack = createSlackSurface({ config, domain, jobs, keyring, identities, logger, metrics, integrations: () => integrationHealth(db, config) });
      slack?.mount(app);
      if (slack) {
        await slack.start();
        cleanups.push({ name: 'Slack Socket Mode', run: () => slack.stop() });
      }
      if (config.SMTP_INBOUND_PORT !== undefined) {
        const listener = await startSmtpListener({ db, jobs, clock, logger, metrics, host: config.SMTP_INBOUND_HOST, port: config.SMTP_INBOUND_PORT, allowedNetworks: config.SMTP_INBOUND_ALLOWED_NETWORKS });
        cleanups.push({ name: 'SMTP listener', run: () => listener.close() });
        logger.info({ host: listener.host, port: listener.port }, `inbound email: SMTP listening on ${listener.host}:${listener.port}`);
        smtp = listener;
      }
      options.mount?.(app, { db, jobs, domain, config, logger });
    }
    const http = await startHttpServer(app, {
      host: config.HOST,
      port: config.PORT,
      onError: (error) => logger.error({ err: error }, 'HTTP server error'),
    });
    logger.info({ url: http.url, host: config.HOST, port: http.port, role }, `ProjectX Integrations (${role}) listening on ${http.url}`);
    logIntegrations(config, logger);

    let stopping: Promise<boolean> | undefined;
    return {
      role,
      http,
      db,
      jobs,
      metrics,
      domain,
      smtp,
      stop: () => (stopping ??= shutdown({ budgetMs: config.SHUTDOWN_TIMEOUT_MS, http, jobs, webhooks, outbox, logger, rest: cleanup })),
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

export interface OperatorContext {
  db: Db;
  jobs: JobRuntime;
  domain: DomainDeps;
  config: Config;
  /** Encrypts secrets at rest (partners, subscriptions); undefined when no key is configured (and not embedded). */
  keyring: Keyring | undefined;
  logger: Logger;
  close(): Promise<void>;
}

/**
 * For CLI verbs (`projectx chat`, `projectx users …`): the database (migrated), a job runtime that can enqueue
 * but runs no workers, and the domain. Events they cause wait in the queue for a worker.
 */
export async function openOperatorContext(config: Config, logger: Logger, options: { clock?: Clock; secrets?: readonly string[] } = {}): Promise<OperatorContext> {
  const database = await resolveDatabase(config, logger);
  const db = createDatabase({ connectionString: database.url, logger, max: 4, applicationName: 'projectx-cli' });
  const close = async () => {
    await db.destroy();
    if (database.embedded && !database.embedded.adopted) await database.embedded.stop();
  };
  try {
    await migrateToLatest(db);
    const jobs = await startJobRuntime({ connectionString: database.url, definitions: jobDefinitions, logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false, secrets: options.secrets ?? [] });
    const domain: DomainDeps = { db, events: createEventSink(jobs), clock: options.clock ?? systemClock };
    const keyring = await resolveKeyring({ keys: config.PROJECTX_ENCRYPTION_KEY, embedded: database.embedded !== undefined, dataDir: config.PROJECTX_DATA_DIR, logger });
    return {
      db,
      jobs,
      domain,
      config,
      keyring,
      logger,
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

/** What /readyz asks: the database answers a query, and pg-boss (its own pool) can read its schema. */
export function readinessChecks(db: Db, jobs: Pick<JobRuntime, 'boss'>): ReadinessCheck[] {
  return [
    { name: 'database', check: () => sql`select 1`.execute(db) },
    { name: 'queue', check: () => jobs.boss.schemaVersion() },
  ];
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
  webhooks: WebhookReceiver | undefined;
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
  // Batches still being written (their requests may have been cut off) commit, and what they staged becomes
  // jobs while the job runtime still runs. Past its share of the budget the rest waits for the next start.
  const relayed = (async () => {
    await input.webhooks?.flush();
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

/** `integration_status` and `circuit_state`, read from the database at scrape time (every process agrees). */
function registerConnectorGauges(db: Db, metrics: Metrics): void {
  registerCollectedGauge(metrics, { name: 'integration_status', help: 'Connector instance health (1 for its current status)', labelNames: ['connector', 'instance', 'status'] as const }, async () =>
    (
      await db
        .selectFrom('integration_configs')
        .leftJoin('integration_health_metrics', 'integration_health_metrics.config_id', 'integration_configs.id')
        .select(['integration_configs.type', 'integration_configs.name', 'integration_configs.enabled', 'integration_health_metrics.status'])
        .execute()
    ).map((row) => ({ labels: { connector: row.type, instance: row.name, status: row.enabled ? (row.status ?? 'unknown') : 'disabled' }, value: 1 })),
  );
  const pending = sharedRead(() => pendingPushes(db));
  registerCollectedGauge(metrics, { name: 'integration_pushes_pending', help: 'Writes to connected systems waiting to be sent (degraded mode, retries), by connector', labelNames: ['connector'] as const }, async () =>
    (await pending()).map((row) => ({ labels: { connector: row.connector }, value: row.pending })),
  );
  registerCollectedGauge(metrics, { name: 'integration_pushes_oldest_seconds', help: 'Age of the oldest write to a connected system still waiting, by connector', labelNames: ['connector'] as const }, async () =>
    (await pending()).map((row) => ({ labels: { connector: row.connector }, value: row.oldestSeconds })),
  );
  const CIRCUIT_VALUE = { closed: 0, half_open: 1, open: 2 } as const;
  registerCollectedGauge(metrics, { name: 'circuit_state', help: 'Connector circuit breaker: 0 closed, 1 half-open, 2 open (the worst instance), by connector and direction', labelNames: ['connector', 'direction'] as const }, async () => {
    const rows = await db.selectFrom('integration_circuits').innerJoin('integration_configs', 'integration_configs.id', 'integration_circuits.config_id').select(['integration_configs.type', 'integration_circuits.direction', 'integration_circuits.state']).execute();
    const worst = new Map<string, { connector: string; direction: string; value: number }>();
    // Every configured connector shows both circuits, closed until one has failed.
    for (const { type } of await db.selectFrom('integration_configs').select('type').distinct().where('enabled', '=', true).execute()) {
      for (const direction of ['read', 'write']) worst.set(`${type}|${direction}`, { connector: type, direction, value: 0 });
    }
    for (const row of rows) {
      const key = `${row.type}|${row.direction}`;
      const value = CIRCUIT_VALUE[row.state];
      if ((worst.get(key)?.value ?? -1) < value) worst.set(key, { connector: row.type, direction: row.direction, value });
    }
    return [...worst.values()].map(({ connector, direction, value }) => ({ labels: { connector, direction }, value }));
  });
}

function logIntegrations(config: Config, logger: Logger): void {
  for (const status of describeIntegrations(config)) {
    if (status.configured) logger.info({ integration: status.id }, `${status.title}: configured`);
    else logger.info({ integration: status.id, missing: status.missing }, `${status.title}: not configured (set ${status.missing.join(', ')})`);
  }
}
