/**
 * The connector framework as a module: the jobs every connector runs through (sync, push and its sweep,
 * reconcile), the connector webhook route, the operator verbs, the connector metrics, and at start the
 * instances the environment describes and (worker role) the sync schedules. It serves every connector of the
 * module list (`ctx.connectors`) and names none.
 */
import type { Db } from '../../db/database.ts';
import { connectorDeliveries } from '../../jobs/connector-deliveries.ts';
import { connectorPush, connectorPushSweep } from '../../jobs/connector-push.ts';
import { connectorReconcile, connectorSync, installConnectorSchedules } from '../../jobs/connector-sync.ts';
import { type Metrics, registerCollectedGauge, sharedRead } from '../../metrics.ts';
import { defineModule } from '../../module.ts';
import { reconcileVerb, syncVerb } from './cli-runs.ts';
import { CONSENT_CALLBACK_PATH, CONSENT_START_PATH, createConsentRoutes } from './consent.ts';
import { connectorsVerb, pushesVerb } from './cli.ts';
import { upstreamCounters } from './http-client.ts';
import { ensureInstanceFromEnv } from './instances.ts';
import { pendingPushes } from './push.ts';
import { connectorSecretStores } from './rotate-key.ts';
import { syncInstruments } from './sync.ts';
import { CONNECTOR_WEBHOOK_PATH, createConnectorWebhooks } from './webhook.ts';

export const connectorFrameworkModule = defineModule({
  id: 'connectors',
  title: 'Connector framework',
  kind: 'platform',
  configuredBy: [],
  routes: [{ method: 'POST', path: CONNECTOR_WEBHOOK_PATH }, { method: 'GET', path: CONSENT_START_PATH }, { method: 'GET', path: CONSENT_CALLBACK_PATH }],
  jobs: [connectorSync, connectorPush, connectorPushSweep, connectorReconcile, connectorDeliveries],
  verbs: [syncVerb, reconcileVerb, connectorsVerb, pushesVerb],
  metrics: ['integration_status', 'integration_pushes_pending', 'integration_pushes_oldest_seconds', 'circuit_state', 'connector_webhooks_total', 'sync_records_total', 'sync_latency_seconds', 'upstream_requests_total', 'rate_limited_total'],
  secrets: connectorSecretStores,
  async start(ctx) {
    // Instances the environment describes (SERVICENOW_*): created or brought in line, credentials encrypted;
    // `enabled` stays as an operator left it.
    for (const connector of ctx.connectors) await ensureInstanceFromEnv(ctx.db, ctx.keyring, connector, connector.fromEnv(ctx.config));
    registerConnectorGauges(ctx.db, ctx.metrics);
    // Made now rather than at the first call or run, so /metrics shows them from the start.
    upstreamCounters(ctx.metrics.registry);
    syncInstruments(ctx.metrics.registry);
    if (ctx.worker) await installConnectorSchedules(ctx.jobs.boss, ctx.db, ctx.logger, ctx.connectors);
    if (!ctx.web) return {};
    const routes = createConnectorWebhooks({ db: ctx.db, keyring: ctx.keyring, jobs: ctx.jobs, clock: ctx.clock, logger: ctx.logger, metrics: ctx.metrics, connectors: ctx.connectors });
    const runtime = { db: ctx.db, logger: ctx.logger, clock: ctx.clock, metrics: ctx.metrics, events: ctx.domain.events };
    routes.route('/', createConsentRoutes({ db: ctx.db, keyring: ctx.keyring, clock: ctx.clock, logger: ctx.logger, runtime, connectors: ctx.connectors, publicUrl: ctx.config.PUBLIC_URL }));
    return { routes };
  },
});

/** `integration_status`, the pending writes and `circuit_state`, read from the database at scrape time (every process agrees). */
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
