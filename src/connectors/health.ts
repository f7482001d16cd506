/** One health line per integration, for `/projectx status` and App Home: configured or not, and how its syncs go. */
import type { IntegrationHealth } from '../bot/commands/context.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import { describeIntegrations } from './catalog.ts';

export async function integrationHealth(db: Db, config: Config): Promise<IntegrationHealth[]> {
  const rows = await db
    .selectFrom('integration_configs')
    .leftJoin('integration_health_metrics', 'integration_health_metrics.config_id', 'integration_configs.id')
    .select(['integration_configs.type', 'integration_configs.enabled', 'integration_health_metrics.status', 'integration_health_metrics.last_error_code', 'integration_health_metrics.last_success_at'])
    .execute();
  return describeIntegrations(config).map((integration) => {
    const row = rows.find((candidate) => candidate.type === integration.id);
    if (!integration.configured && !row) return { id: integration.id, title: integration.title, configured: false, status: 'not_configured', detail: `set ${integration.missing.join(', ')}` };
    const status = row?.status ?? 'unknown';
    const detail = row?.last_error_code ? `last error ${row.last_error_code}` : row?.last_success_at ? `last success ${row.last_success_at.toISOString().slice(0, 16).replace('T', ' ')} UTC` : undefined;
    return detail ? { id: integration.id, title: integration.title, configured: true, status, detail } : { id: integration.id, title: integration.title, configured: true, status };
  });
}
