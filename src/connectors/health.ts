/**
 * One health line per integration, for `/projectx status` and App Home: not built, not configured (and what to
 * set), configured, or, for a connector, how its syncs go.
 */
import type { IntegrationHealth } from '../bot/commands/context.ts';
import type { Config } from '../config.ts';
import type { Db } from '../db/database.ts';
import type { ServiceModule } from '../module.ts';
import { describeIntegrations } from './catalog.ts';
import { clamdScanner } from './evidence-stores/clamd.ts';
import { scanStatusLine } from './evidence-stores/pipeline.ts';

export async function integrationHealth(db: Db, config: Config, modules: readonly ServiceModule[]): Promise<IntegrationHealth[]> {
  const integrations = describeIntegrations(config, modules);
  const connectorIds = integrations.flatMap((integration) => (integration.module?.connector ? [integration.module.connector.id] : []));
  const rows =
    connectorIds.length === 0
      ? []
      : await db
          .selectFrom('integration_configs')
          .leftJoin('integration_health_metrics', 'integration_health_metrics.config_id', 'integration_configs.id')
          .select(['integration_configs.type', 'integration_configs.enabled', 'integration_health_metrics.status', 'integration_health_metrics.last_error_code', 'integration_health_metrics.last_success_at'])
          .where('integration_configs.type', 'in', connectorIds)
          .execute();
  return [...integrations.map((integration): IntegrationHealth => {
    const { id, title } = integration;
    if (integration.state === 'not_built') return { id, title, configured: false, status: 'not_built' };
    const connector = integration.module?.connector;
    // A connector configured through the CLI (no variables) is configured too: it has an instance.
    const row = connector ? rows.find((candidate) => candidate.type === connector.id) : undefined;
    if (integration.state === 'not_configured' && !row) return { id, title, configured: false, status: 'not_configured', detail: `set ${integration.missing.join(', ')}` };
    if (!connector) return { id, title, configured: true, status: 'configured' };
    const status = row?.status ?? 'unknown';
    const detail = row?.last_error_code ? `last error ${row.last_error_code}` : row?.last_success_at ? `last success ${row.last_success_at.toISOString().slice(0, 16).replace('T', ' ')} UTC` : undefined;
    return detail ? { id, title, configured: true, status, detail } : { id, title, configured: true, status };
  }), evidenceScanHealth(config)];
}

/** The evidence pipeline's virus scan: by clamd, or not at all (files recorded unscanned, or held when required). */
export function evidenceScanHealth(config: Config): IntegrationHealth {
  const title = 'Evidence virus scan';
  const line = scanStatusLine({ scanner: config.CLAMAV_URL ? clamdScanner(config.CLAMAV_URL) : undefined, scanRequired: config.EVIDENCE_SCAN_REQUIRED });
  return config.CLAMAV_URL ? { id: 'evidence-scan', title, configured: true, status: 'configured', detail: line } : { id: 'evidence-scan', title, configured: false, status: 'not_configured', detail: `set CLAMAV_URL; ${line}` };
}
