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

/** Where a sync of one model of one instance stands: its checkpoint, saved with each page's records. */
export interface IntegrationSyncStateTable {
  config_id: string;
  model: string;
  cursor: NullableJson;
  /** The run that last moved the checkpoint, for operators (a resumed run goes on from its own `cursor_after`). */
  run_id: string | null;
  updated_at: Timestamp;
}

/** Every record a connector synced: the ledger behind "unchanged → no write, no noise" and reconciliation. */
export interface ExternalRecordsTable {
  config_id: string;
  model: string;
  external_id: string;
  number: string | null;
  content_hash: string;
  source_updated_at: string | null;
  data: Json;
  first_seen_at: Timestamp;
  updated_at: Timestamp;
  missing_since: NullableTimestamp;
}

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface IntegrationCircuitsTable {
  config_id: string;
  direction: 'read' | 'write';
  state: Generated<CircuitState>;
  failures: Generated<number>;
  opened_at: NullableTimestamp;
  probe_at: NullableTimestamp;
  last_error_code: string | null;
  updated_at: Timestamp;
}

/** An OAuth access token, encrypted (Keyring envelope), shared by every process of the instance. */
export interface IntegrationTokensTable {
  config_id: string;
  token: Json;
  expires_at: Timestamp;
  updated_at: Timestamp;
}

/** What an admin's OAuth consent (3LO) gave an instance: the rotating refresh token (encrypted) and what it opens. */
export interface IntegrationAuthorizationsTable {
  config_id: string;
  refresh_token: Json;
  /** The resource the consent opens (Jira: the cloud id) and its URL (the site). */
  resource_id: string;
  resource_url: string;
  scopes: string;
  authorized_by: string;
  authorized_at: Timestamp;
  refreshed_at: NullableTimestamp;
  /** Set when the system refused the refresh token: an admin must consent again. */
  needs_reauth_since: NullableTimestamp;
  reauth_reason: string | null;
}

/** Until when a system refuses every call of an instance (a quota limit), shared by every job and process. */
export interface IntegrationRateLimitsTable {
  config_id: string;
  until: Timestamp;
  reason: string;
  updated_at: Timestamp;
}

/** A single-use link to an OAuth consent for an instance (`projectx connectors authorize`); the token's SHA-256 only. */
export interface IntegrationAuthorizeLinksTable {
  id: Generated<string>;
  config_id: string;
  token_hash: string;
  created_by: string;
  created_at: Generated<Date>;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
}

/** A write to a connected system waiting its turn, or sent, or failed for good (src/connectors/sdk/push.ts). */
export interface IntegrationPushesTable {
  id: Generated<string>;
  config_id: string;
  operation: string;
  record_key: string;
  payload: Json;
  source_event_id: string | null;
  status: Generated<'pending' | 'sent' | 'failed'>;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  last_error: NullableJson;
  result: NullableJson;
  correlation_id: string | null;
  created_at: Generated<Date>;
  sent_at: NullableTimestamp;
}

export type InboundEventStatus = 'received' | 'processed' | 'failed' | 'quarantined';

/** Processing jobs staged with their deliveries, waiting for the relay (src/jobs/inbound-outbox.ts). */
export interface InboundJobOutboxTable {
  id: Generated<string>;
  job_name: string;
  inbound_ids: string[];
  staged_at: Timestamp;
}

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
  /** The raw body; empty when it is shared with other deliveries and kept once in `inbound_bodies` (`body_sha256`). */
  body: Buffer;
  /** The shared body's key in `inbound_bodies` (an email to several of our addresses); null: `body` is the body. */
  body_sha256: string | null;
  result: NullableJson;
  error: NullableJson;
  correlation_id: string | null;
  received_at: Timestamp;
  processed_at: NullableTimestamp;
  /** Bearer-like values removed from `body`, encrypted (Slack response URLs; src/bot/slack/sealing.ts). */
  sealed: NullableJson;
  /** How often it was handed to processing (the Slack sweep redelivers what a stopped process left). */
  attempts: Generated<number>;
}

/** A body several inbound deliveries share, stored once by its SHA-256 (hex); deleted with its last delivery. */
export interface InboundBodiesTable {
  sha256: string;
  body: Buffer;
  created_at: Timestamp;
}

export type Role = 'admin' | 'approver' | 'responder' | 'contributor' | 'viewer';
export type Surface = 'slack' | 'teams' | 'email';

export interface UsersTable {
  id: Generated<string>;
  email: string;
  display_name: string;
  roles: ColumnType<Role[], Role[] | undefined, Role[]>;
  active: Generated<boolean>;
  created_at: Timestamp;
}

export interface IdentityLinksTable {
  id: Generated<string>;
  user_id: string;
  surface: Surface;
  tenant: string;
  external_id: string;
  verified_via: string;
  created_at: Timestamp;
}

export interface LinkCodesTable {
  code_hash: string;
  surface: Surface;
  tenant: string;
  external_id: string;
  expires_at: Timestamp;
  created_at: Timestamp;
}

export interface ProgramsTable {
  id: string;
  name: string;
  created_at: Timestamp;
}

export interface ControlsTable {
  id: string;
  title: string;
  owner_id: string | null;
  program_id: string | null;
  created_at: Timestamp;
  /** How long evidence for it stays valid (days); null: it does not expire. */
  renewal_days: ColumnType<number | null, number | null | undefined, number | null>;
}

export interface IncidentsTable {
  id: Generated<string>;
  source_system: string;
  external_id: string;
  number: string;
  priority: number;
  state: string;
  short_description: string;
  acknowledged_by: string | null;
  acknowledged_at: NullableTimestamp;
  content_hash: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type TaskType = 'review' | 'remediation' | 'approval' | 'evidence_request';
export type TaskState = 'open' | 'in_progress' | 'pending_approval' | 'approved' | 'denied' | 'cancelled' | 'expired' | 'done';
export type TaskPriority = 'low' | 'normal' | 'high';

export interface TasksTable {
  id: ColumnType<string, never, never>;
  type: TaskType;
  title: string;
  description: string | null;
  state: Generated<TaskState>;
  priority: Generated<TaskPriority>;
  requester_id: string | null;
  assignee_id: string | null;
  due_at: NullableTimestamp;
  approval_policy: NullableJson;
  version: Generated<number>;
  /** Labels (a connected system's, mirrored as they are). */
  labels: ColumnType<string[], string[] | undefined, string[]>;
  /** Who a connected system says is assigned, when that person is no ProjectX user (email or name). */
  external_assignee: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TaskLinksTable {
  task_id: string;
  kind: 'control' | 'incident' | 'external' | 'program';
  target: string;
  url: string | null;
}

export interface ApprovalDecisionsTable {
  id: ColumnType<string, never, never>;
  task_id: string;
  user_id: string;
  decision: 'approve' | 'deny';
  reason: string | null;
  surface: string;
  decided_at: Timestamp;
}

export interface EvidenceTable {
  id: Generated<string>;
  sha256: string;
  size_bytes: ColumnType<string, number | string, number | string>;
  media_type: string;
  storage_uri: string;
  source: string;
  original_name: string | null;
  uploaded_by: string | null;
  retention_until: NullableTimestamp;
  created_at: Timestamp;
  scan_status: ColumnType<EvidenceScanStatus, EvidenceScanStatus | undefined, EvidenceScanStatus>;
  scanned_at: NullableTimestamp;
}

/** `clean`: clamd found nothing; `unscanned`: no scanner configured; `released`: let out of quarantine by an operator. */
export type EvidenceScanStatus = 'clean' | 'unscanned' | 'released';
export type QuarantineReason = 'infected' | 'scanner_unavailable' | 'scan_limit_exceeded' | 'scan_required' | 'store_unavailable' | 'store_quota_exceeded' | 'store_access_denied' | 'store_integrity_failed';

export interface EvidenceStoreStateTable {
  store: string;
  paused_at: NullableTimestamp;
  reason: string | null;
  message: string | null;
  access_task_id: string | null;
  updated_at: Timestamp;
}

export interface EvidenceQuarantineTable {
  id: Generated<string>;
  status: ColumnType<'held' | 'recorded' | 'deleted', 'held' | 'recorded' | 'deleted' | undefined, 'held' | 'recorded' | 'deleted'>;
  reason: QuarantineReason;
  signature: string | null;
  sha256: string;
  size_bytes: ColumnType<string, number | string, number | string>;
  media_type: string;
  original_name: string | null;
  source: string;
  uploaded_by: string | null;
  /** The uploader as the audit log names them (`user:…`, `system:jira`). */
  uploader: string;
  control_ids: ColumnType<string[], string[] | undefined, string[]>;
  task_ids: ColumnType<string[], string[] | undefined, string[]>;
  retention_until: NullableTimestamp;
  valid_until: NullableTimestamp;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: NullableTimestamp;
  last_error: string | null;
  evidence_id: string | null;
  created_at: Timestamp;
  resolved_at: NullableTimestamp;
  resolved_by: string | null;
}

export interface EvidenceQuarantineChunksTable {
  quarantine_id: string;
  seq: number;
  data: Buffer;
}

export interface EvidenceLinksTable {
  evidence_id: string;
  kind: 'control' | 'task';
  target: string;
  linked_by: string | null;
  source: string;
  created_at: Timestamp;
  /** For a control: until when the evidence counts for it (renewal); null: no expiry. */
  valid_until: NullableTimestamp;
}

export interface EvidenceRenewalsTable {
  evidence_id: string;
  control_id: string;
  task_id: string;
  valid_until: Timestamp;
  stage: RenewalStage;
  reminded_at: Timestamp;
  closed_at: NullableTimestamp;
  closed_by_evidence: string | null;
}

/** The reminders of a renewal, in order: 30, 7 and 1 days before the evidence expires, then overdue. */
export type RenewalStage = '30' | '7' | '1' | 'overdue';

export type TargetKind = 'channel' | 'assignee_dm' | 'approvers_dm' | 'email';

export interface NotificationRulesTable {
  id: Generated<string>;
  event_pattern: string;
  max_priority: number | null;
  control_id: string | null;
  target_kind: TargetKind;
  surface: Surface;
  target: string | null;
  enabled: Generated<boolean>;
  created_at: Timestamp;
}

export interface NotificationsTable {
  id: Generated<string>;
  event_id: string;
  event_type: string;
  surface: Surface;
  target_kind: TargetKind;
  target: string;
  message: Json<Record<string, unknown>>;
  status: Generated<'pending' | 'sent' | 'failed' | 'undeliverable'>;
  error: string | null;
  subject_kind: string | null;
  subject_id: string | null;
  created_at: Timestamp;
  sent_at: NullableTimestamp;
}

export interface AuditLogTable {
  id: ColumnType<string, never, never>;
  tenant: string;
  seq: ColumnType<string, number | string, never>;
  at: ColumnType<Date, Date, never>;
  actor: string;
  surface: string;
  action: string;
  object_type: string;
  object_id: string | null;
  outcome: 'success' | 'refused' | 'error';
  detail: Json<Record<string, unknown>>;
  correlation_id: string | null;
  prev_hash: string;
  hash: string;
}

export interface AuditHeadsTable {
  tenant: string;
  seq: ColumnType<string, number | string, number | string>;
  hash: string;
  /** The hash the head had before its last move: the newest row's link (null before migration 20261207_1500). */
  prev_hash: string | null;
}

/** Audit rows written by changes not yet committed; chained into `audit_log` at commit (src/domain/audit.ts). */
export interface AuditPendingTable extends Omit<AuditLogTable, 'id' | 'seq' | 'prev_hash' | 'hash'> {
  id: Generated<string>;
  /** The row's canonical JSON up to its sequence number, and from after it. */
  canonical_before: string;
  canonical_after: string;
}

export interface SlackInstallationsTable {
  id: Generated<string>;
  enterprise_id: Generated<string>;
  team_id: Generated<string>;
  is_enterprise_install: Generated<boolean>;
  app_id: string | null;
  bot_user_id: string | null;
  bot_id: string | null;
  scopes: ColumnType<string[], string[] | undefined, string[]>;
  /** An encrypted envelope (src/connectors/sdk/crypto.ts), never the token itself. */
  bot_token: Json<Record<string, unknown>>;
  refresh_token: NullableJson;
  token_expires_at: NullableTimestamp;
  installed_by: string | null;
  installed_at: Timestamp;
  updated_at: Timestamp;
  revoked_at: NullableTimestamp;
  /** The install link it was installed through (which lets its workspace in without SLACK_ALLOWED_WORKSPACES). */
  install_link_id: string | null;
}

/** Single-use install links (`projectx slack install-link`); the token itself is never stored. */
export interface SlackInstallLinksTable {
  id: Generated<string>;
  /** SHA-256 (hex) of the link's token. */
  token_hash: string;
  created_by: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  used_at: NullableTimestamp;
  /** The workspace that installed with it (null for an org-wide install). */
  used_by_team: string | null;
  used_by_enterprise: string | null;
}

export interface SlackMessagesTable {
  id: Generated<string>;
  message_key: string;
  channel: string;
  channel_id: string | null;
  team: string | null;
  ts: string | null;
  status: 'posting' | 'posted';
  subject_kind: string | null;
  subject_id: string | null;
  attempt_started_at: Timestamp;
  created_at: Timestamp;
}

export interface TeamsConversationsTable {
  conversation_id: string;
  tenant_id: string;
  kind: 'personal' | 'groupChat' | 'channel';
  team_id: string | null;
  channel_name: string | null;
  user_aad_object_id: string | null;
  /** The botbuilder conversation reference (JSON), what a proactive send continues. */
  reference: ColumnType<unknown, string, string>;
  active: Generated<boolean>;
  inactive_reason: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface TeamsMessagesTable {
  id: Generated<string>;
  message_key: string;
  conversation_id: string;
  status: 'posting' | 'posted' | 'unknown';
  activity_id: string | null;
  subject_kind: string | null;
  subject_id: string | null;
  attempt_started_at: Timestamp;
  created_at: Timestamp;
}

export interface TeamsUsersTable {
  tenant_id: string;
  aad_object_id: string;
  /** The Teams user id (`29:…`) a card's refresh.userIds names. */
  mri: string;
  updated_at: Timestamp;
}

/** The control or task a person named for the evidence files they send next (per tenant and Entra object id). */
export interface TeamsEvidenceTargetsTable {
  tenant_id: string;
  aad_object_id: string;
  control_id: string | null;
  task_id: string | null;
  named_at: Timestamp;
}

export interface TeamsSendLogTable {
  conversation_id: string;
  sent_at: Timestamp;
}

export interface SlackChannelPacingTable {
  channel: string;
  next_at: Timestamp;
}

export type WebhookScheme = 'standard' | 'github' | 'jira';

export interface WebhookPartnersTable {
  key: string;
  scheme: WebhookScheme;
  /** Event type → action (src/connectors/webhook-bridge/mapping.ts). */
  mapping: Json<Record<string, unknown>>;
  description: string | null;
  /** Who may act for the partner by mail (`partner+<key>@…`): addresses or `@domain`; empty: nobody. */
  email_senders: ColumnType<string[], string[] | undefined, string[]>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface WebhookPartnerSecretsTable {
  id: Generated<string>;
  partner_key: string;
  /** An encrypted envelope of the secret (`whsec_…` for Standard Webhooks), never the secret itself. */
  secret: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
  /** After a rotation the old secret stays valid until then; null: no end. */
  expires_at: NullableTimestamp;
}

export interface WebhookSubscriptionsTable {
  id: Generated<string>;
  /** Only a URL written before URLs were encrypted, until a process starts with the key; null after that. */
  url: string | null;
  /** The URL as an encrypted envelope (src/connectors/sdk/crypto.ts), decrypted only to deliver. */
  url_encrypted: NullableJson;
  /** How the URL is shown anywhere: its origin and a short hash of the whole URL (`https://host/…#a1b2c3d4`). */
  url_display: string;
  event_types: ColumnType<string[], string[], string[]>;
  secret: Json<Record<string, unknown>>;
  description: string | null;
  enabled: Generated<boolean>;
  disabled_reason: string | null;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export type WebhookDeliveryStatus = 'pending' | 'delivered' | 'failed' | 'abandoned';

export interface WebhookDeliveriesTable {
  id: Generated<string>;
  subscription_id: string;
  /** `webhook-id`: the same for every attempt of one event to one subscriber. */
  message_id: string;
  event_type: string;
  payload: Json<Record<string, unknown>>;
  status: Generated<WebhookDeliveryStatus>;
  attempts: Generated<number>;
  next_attempt_at: NullableTimestamp;
  last_status: number | null;
  last_error: string | null;
  created_at: Generated<Date>;
  delivered_at: NullableTimestamp;
}

export interface WebhookDeliveryAttemptsTable {
  id: Generated<string>;
  delivery_id: string;
  attempt: number;
  attempted_at: Timestamp;
  duration_ms: number;
  http_status: number | null;
  error: string | null;
}

export interface Database {
  integration_configs: IntegrationConfigsTable;
  integration_runs: IntegrationRunsTable;
  integration_events: IntegrationEventsTable;
  integration_credentials_audit: IntegrationCredentialsAuditTable;
  integration_health_metrics: IntegrationHealthMetricsTable;
  inbound_events: InboundEventsTable;
  inbound_bodies: InboundBodiesTable;
  inbound_job_outbox: InboundJobOutboxTable;
  integration_sync_state: IntegrationSyncStateTable;
  external_records: ExternalRecordsTable;
  integration_circuits: IntegrationCircuitsTable;
  integration_tokens: IntegrationTokensTable;
  integration_authorizations: IntegrationAuthorizationsTable;
  integration_authorize_links: IntegrationAuthorizeLinksTable;
  integration_rate_limits: IntegrationRateLimitsTable;
  integration_pushes: IntegrationPushesTable;
  users: UsersTable;
  identity_links: IdentityLinksTable;
  link_codes: LinkCodesTable;
  programs: ProgramsTable;
  controls: ControlsTable;
  incidents: IncidentsTable;
  tasks: TasksTable;
  task_links: TaskLinksTable;
  approval_decisions: ApprovalDecisionsTable;
  evidence: EvidenceTable;
  evidence_links: EvidenceLinksTable;
  evidence_quarantine: EvidenceQuarantineTable;
  evidence_renewals: EvidenceRenewalsTable;
  evidence_store_state: EvidenceStoreStateTable;
  evidence_quarantine_chunks: EvidenceQuarantineChunksTable;
  notification_rules: NotificationRulesTable;
  notifications: NotificationsTable;
  audit_log: AuditLogTable;
  audit_heads: AuditHeadsTable;
  audit_pending: AuditPendingTable;
  slack_installations: SlackInstallationsTable;
  slack_install_links: SlackInstallLinksTable;
  slack_messages: SlackMessagesTable;
  slack_channel_pacing: SlackChannelPacingTable;
  teams_conversations: TeamsConversationsTable;
  teams_evidence_targets: TeamsEvidenceTargetsTable;
  teams_messages: TeamsMessagesTable;
  teams_send_log: TeamsSendLogTable;
  teams_users: TeamsUsersTable;
  webhook_partners: WebhookPartnersTable;
  webhook_partner_secrets: WebhookPartnerSecretsTable;
  webhook_subscriptions: WebhookSubscriptionsTable;
  webhook_deliveries: WebhookDeliveriesTable;
  webhook_delivery_attempts: WebhookDeliveryAttemptsTable;
}
