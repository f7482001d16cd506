/**
 * Kysely table types, one interface per table, matching the migrations. Use `Selectable<T>` for rows read and
 * `Insertable<T>` for rows written; repositories map rows to domain records explicitly.
 */
import type { ColumnType, Generated, JSONColumnType } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T extends object | null = Record<string, unknown>> = JSONColumnType<T, string | undefined, string>;
type NullableJson<T = Record<string, unknown>> = ColumnType<T | null, string | null | undefined, string | null>;

export interface IntegrationConfigsTable {
  id: Generated<string>;
  type: string;
  name: string;
  environment: Generated<string>;
  enabled: Generated<boolean>;
  settings: Json;
  credentials: Json;
  scopes: ColumnType<string[], string[] | undefined, string[]>;
  schedules: Json<unknown[]>;
  version: Generated<number>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type RunStatus = 'running' | 'succeeded' | 'partial' | 'failed' | 'cancelled';

export interface IntegrationRunsTable {
  id: Generated<string>;
  config_id: string | null;
  model: string | null;
  trigger: string;
  status: RunStatus;
  started_at: Timestamp;
  finished_at: NullableTimestamp;
  counts: Json<Record<string, number>>;
  error_codes: ColumnType<string[], string[] | undefined, string[]>;
  latency_ms: number | null;
  cursor_before: NullableJson;
  cursor_after: NullableJson;
  payload_hashes: ColumnType<string[], string[] | undefined, string[]>;
  correlation_id: string | null;
}

export interface IntegrationEventsTable {
  id: Generated<string>;
  config_id: string | null;
  source: string;
  direction: 'inbound' | 'outbound';
  event_type: string;
  external_id: string | null;
  status: string;
  payload: NullableJson;
  result: NullableJson;
  error: NullableJson;
  correlation_id: string | null;
  created_at: Timestamp;
  processed_at: NullableTimestamp;
}

export interface IntegrationCredentialsAuditTable {
  id: Generated<string>;
  config_id: string | null;
  action: string;
  actor: string;
  key_id: string | null;
  detail: Json;
  created_at: Timestamp;
}

export type HealthStatus = 'unknown' | 'healthy' | 'degraded' | 'down';

export interface IntegrationHealthMetricsTable {
  config_id: string;
  status: Generated<HealthStatus>;
  last_run_at: NullableTimestamp;
  last_success_at: NullableTimestamp;
  last_error_at: NullableTimestamp;
  last_error_code: string | null;
  consecutive_failures: Generated<number>;
  sync_lag_seconds: number | null;
  updated_at: Timestamp;
}

export type InboundEventStatus = 'received' | 'processed' | 'failed' | 'quarantined';

export interface InboundEventsTable {
  id: Generated<string>;
  /** Who delivered it: `slack`, `teams`, `webhook:<partner>`, … */
  source: string;
  /** The sender's own id for this delivery (Slack event_id, Standard Webhooks webhook-id, …). */
  delivery_id: string;
  /** What it is, e.g. `event_callback`, `slash_command`, `block_actions`, `webhook`. */
  kind: string;
  status: Generated<InboundEventStatus>;
  headers: Json<Record<string, string>>;
  body: Buffer;
  result: NullableJson;
  error: NullableJson;
  correlation_id: string | null;
  received_at: Timestamp;
  processed_at: NullableTimestamp;
}

export interface Database {
  integration_configs: IntegrationConfigsTable;
  integration_runs: IntegrationRunsTable;
  integration_events: IntegrationEventsTable;
  integration_credentials_audit: IntegrationCredentialsAuditTable;
  integration_health_metrics: IntegrationHealthMetricsTable;
  inbound_events: InboundEventsTable;
}
