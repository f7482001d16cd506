/**
 * Every module of the service, in one explicit list: the governance core, then each surface and connector.
 * Adding one (Teams, Jira, …) is its folder with a `module.ts` plus one line here; src/main.ts and the CLI
 * derive routes, jobs, schedules, notifiers, verbs, metrics, readiness checks and start/stop from this list,
 * and test/modules.test.ts checks that each module's declarations are really wired.
 */
import { sql } from 'kysely';
import { consoleModule } from './bot/console/module.ts';
import { slackModule } from './bot/slack/module.ts';
import { teamsModule } from './bot/teams/module.ts';
import { coreVerbs } from './cli/verbs/index.ts';
import { emailModule } from './connectors/email/module.ts';
import { evidenceStoresModule } from './connectors/evidence-stores/module.ts';
import { jiraModule } from './connectors/jira/module.ts';
import { connectorFrameworkModule } from './connectors/sdk/module.ts';
import { servicenowModule } from './connectors/servicenow/module.ts';
import { webhookBridgeModule } from './connectors/webhook-bridge/module.ts';
import type { Db } from './db/database.ts';
import type { ReadinessCheck } from './http/ops.ts';
import { coreJobs } from './jobs/index.ts';
import type { JobRuntime } from './jobs/runtime.ts';
import { registerCollectedGauge, sharedRead } from './metrics.ts';
import { type ServiceModule, defineModule } from './module.ts';

/**
 * The governance core: domain-event routing and notification delivery, approval expiry and housekeeping; the
 * operator verbs over users, controls, tasks, incidents, routing, audit, evidence and credentials; readiness of
 * the database and the queue; the inbound delivery gauges every source shares.
 */
export const coreModule = defineModule({
  id: 'core',
  title: 'Governance core',
  kind: 'platform',
  configuredBy: [],
  jobs: coreJobs,
  verbs: coreVerbs,
  metrics: ['inbound_events_unsettled', 'inbound_job_outbox_deliveries', 'inbound_job_outbox_oldest_seconds'],
  readiness: ['database', 'queue'],
  start(ctx) {
    const { db, metrics } = ctx;
    // Deliveries not (yet) processed, by source and status: failed ones wait here for an operator.
    registerCollectedGauge(metrics, { name: 'inbound_events_unsettled', help: 'Inbound deliveries not processed, by source and status', labelNames: ['source', 'status'] as const }, async () =>
      (await db.selectFrom('inbound_events').select(['source', 'status', (eb) => eb.fn.countAll<string>().as('n')]).where('status', '<>', 'processed').groupBy(['source', 'status']).execute()).map((row) => ({
        labels: { source: row.source, status: row.status },
        value: Number(row.n),
      })),
    );
    // Processing jobs staged with their deliveries and not yet relayed: normally none for more than a moment.
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
    return { readiness: coreReadiness(db, ctx.jobs) };
  },
});

/** What /readyz asks of every process: the database answers a query, and pg-boss (its own pool) can read its schema. */
export function coreReadiness(db: Db, jobs: Pick<JobRuntime, 'boss'>): ReadinessCheck[] {
  return [
    { name: 'database', check: () => sql`select 1`.execute(db) },
    { name: 'queue', check: () => jobs.boss.schemaVersion() },
  ];
}

export const modules: readonly ServiceModule[] = [coreModule, consoleModule, evidenceStoresModule, slackModule, teamsModule, webhookBridgeModule, emailModule, connectorFrameworkModule, servicenowModule, jiraModule];
