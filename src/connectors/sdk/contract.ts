/**
 * The connector contract: what a connector declares (data) and implements (a few functions) so that the
 * framework can configure, schedule, sync, push to and watch it. A connector is one folder under
 * src/connectors/ with the same files (client, mapper, sync, push, webhook, index), listed in
 * src/modules.ts (its module.ts); nothing in the framework names a connector.
 *
 * @example
 * export const servicenow = defineConnector({
 *   id: 'servicenow', title: 'ServiceNow', runbookId: 'RB-002', auth: ['oauth2_client_credentials', 'basic'],
 *   settings: z.object({ baseUrl: z.url(), pageSize: z.number() }), credentialFields: ['client_secret', 'password'],
 *   fromEnv: (config) => …, createClient: (instance, runtime) => …,
 *   models: [incidents, changeRequests],
 * });
 *
 * The sync runner (src/connectors/sdk/sync.ts) owns everything around a model's `pull`: the run record, the
 * content hash, the ledger, checkpoints, metrics and health. A model only turns a cursor into pages.
 */
import type { Kysely } from 'kysely';
import type { z } from 'zod';
import type { Clock } from '../../clock.ts';
import type { Config } from '../../config.ts';
import type { Db } from '../../db/database.ts';
import type { Database } from '../../db/schema.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import type { DomainEvent, EventSink } from '../../domain/events.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import type { Keyring } from './crypto.ts';
import type { UpstreamFailure, UpstreamResult } from './http-client.ts';

export type AuthKind = 'oauth2_client_credentials' | 'oauth2_authorization_code' | 'basic' | 'api_token' | 'personal_access_token' | 'hmac';

/** When a model syncs on its own: every `everySeconds` (a cron of whole minutes), started up to `jitterSeconds` late. */
export type Schedule = { everySeconds: number; jitterSeconds: number } | { cron: string; jitterSeconds: number };

/** One configured instance of a connector (a row of `integration_configs`), credentials decrypted on demand. */
export interface ConnectorInstance<Settings = unknown> {
  id: string;
  type: string;
  name: string;
  environment: string;
  enabled: boolean;
  settings: Settings;
  /** A credential field, decrypted (AAD = instance + field); undefined when not set. Never log it. */
  credential(field: string): string | undefined;
}

/** What connector code may use; built by the composition root. */
export interface ConnectorRuntime {
  db: Db;
  logger: Logger;
  clock: Clock;
  metrics: Metrics;
  events: EventSink;
  /** The job queue, where connector code runs inside a job (a sync's page may queue follow-up work in its transaction). */
  jobs?: Pick<JobRuntime, 'enqueue'> | undefined;
}

/** One page from the system: the records, and the cursor to resume after them. */
export interface PullPage<Cursor> {
  /** As the system sent them: each is validated against the model's `record` schema by the runner. */
  records: unknown[];
  cursor: Cursor;
  /** Requests this page took (for the run's upstream count). */
  requests: number;
}

export type PullStep<Cursor> = { ok: true; page: PullPage<Cursor> } | { ok: false; failure: UpstreamFailure };

/** A record whose content changed (or is new), handed to the model's domain effects in the page's transaction. */
export interface Change<Raw> {
  record: Raw;
  externalId: string;
  created: boolean;
}

export interface SyncModel<Settings = any, Client = any, Raw = any, Cursor = any> {
  /** Stable name, part of job keys and metrics labels (`incident`). */
  name: string;
  /** One upstream record; a record failing it is kept (rejected, with an alert) and the page goes on. */
  record: z.ZodType<Raw>;
  /** The checkpoint's shape (validated when read back). */
  cursor: z.ZodType<Cursor>;
  schedule: Schedule;
  externalId(record: Raw): string;
  /** A human label (INC0012345), when the record has one. */
  label?(record: Raw): string | undefined;
  /** The system's last-update stamp, kept on the ledger. */
  updatedAt(record: Raw): string | undefined;
  /** The fields that matter: hashed (an unchanged hash is no write and no event) and kept on the ledger. */
  content(record: Raw): Record<string, unknown>;
  /**
   * Pages from `cursor` (null: from the beginning). The runner persists each page, and its cursor, before it
   * asks for the next one. `resumed`: the cursor is this run's own last checkpoint (after a crash or a
   * deferral), so no overlap window is needed; otherwise it is the previous run's end.
   */
  pull(input: { client: Client; instance: ConnectorInstance<Settings>; cursor: Cursor | null; full: boolean; resumed: boolean; signal: AbortSignal }): AsyncIterable<PullStep<Cursor>>;
  /** Domain effects of the changed records, in the page's transaction (so they happen once with the page). */
  apply?(input: { trx: Kysely<Database>; instance: ConnectorInstance<Settings>; changes: readonly Change<Raw>[]; runtime: ConnectorRuntime; now: Date }): Promise<void>;
  /**
   * Every external id the system holds, ids only, in ascending order (plain byte order), page by page: what
   * nightly reconciliation compares with the ledger to find deletions and records the sync missed.
   */
  listIds?(input: { client: Client; instance: ConnectorInstance<Settings>; signal: AbortSignal }): AsyncIterable<{ ok: true; ids: string[] } | { ok: false; failure: UpstreamFailure }>;
  /**
   * The records with these external ids, read from the system now (not from a search index that may lag):
   * what webhook deliveries name, and what reconciliation is about to call gone. `missing`: ids the system
   * did not return (deleted, or no longer visible to us: the two look alike).
   */
  fetchByIds?(input: { client: Client; instance: ConnectorInstance<Settings>; ids: readonly string[] }): Promise<{ ok: true; records: unknown[]; missing: string[] } | { ok: false; failure: UpstreamFailure }>;
  /**
   * After a nightly reconciliation: the ProjectX subjects whose chat messages may show a stale state (tasks of
   * records closed or gone since `since`, that were posted to chat), re-rendered by the framework.
   */
  staleSubjects?(input: { db: Db; instance: ConnectorInstance<Settings>; since: Date }): Promise<{ kind: 'task' | 'incident'; id: string }[]>;
  /** Domain effects of records found gone (flagged in the ledger in the same transaction). */
  onMissing?(input: { trx: Kysely<Database>; instance: ConnectorInstance<Settings>; externalIds: readonly string[]; runtime: ConnectorRuntime; now: Date }): Promise<void>;
}

export interface ConnectorDefinition<Settings = any, Client = any> {
  id: string;
  title: string;
  /** The runbook entry operators follow when it degrades (cited in its alerts). */
  runbookId: string;
  auth: readonly AuthKind[];
  /** Non-secret settings, validated when an instance is loaded. */
  settings: z.ZodType<Settings>;
  /** Credential fields, each stored encrypted. */
  credentialFields: readonly string[];
  /** What to do when the system refuses our credentials after a refresh (401/403), for the alert; default: check the user and OAuth client. */
  authGuidance?(settings: Settings): string;
  /** The routed channel its alerts go to (the routing rules decide; this is the default rule's target). */
  alertChannel: string;
  /**
   * The settings the environment owns for the instance it describes: each start sets them from it, or removes
   * them when it no longer sets them, and keeps the others (set with `projectx connectors configure`). Unset:
   * the environment's settings replace the stored ones whole.
   */
  envSettings?: readonly string[];
  /** The instance the environment describes (`SERVICENOW_*`), or undefined when it describes none. */
  fromEnv(config: Config): { name: string; settings: Settings; credentials: Record<string, string> } | undefined;
  createClient(instance: ConnectorInstance<Settings>, runtime: ConnectorRuntime & { keyring: Keyring }): Client & { close(): Promise<void> };
  models: readonly SyncModel<Settings, Client>[];
  /**
   * Per-instance defaults from its settings (an interval the environment sets, reconciliation turned off),
   * under the instance's own `schedules` overrides: `everySeconds` replaces the model's schedule,
   * `reconcile: false` drops its nightly reconciliation.
   */
  scheduleDefaults?(settings: Settings): readonly { model: string; everySeconds?: number; reconcile?: boolean }[];
  /** Writes back to the system (acknowledgements, remediation tasks), sent in order through the push queue. */
  push?: PushDefinition<Settings, Client>;
  /**
   * Effects in ProjectX of a domain event about this connector's records (a review task for a new P1), run in
   * the event's routing job: must be idempotent, the job may run twice.
   */
  onEvent?(event: DomainEvent, input: { domain: DomainDeps; jobs: Pick<JobRuntime, 'enqueue'> }): Promise<void>;
  /** `POST /api/integrations/<id>/webhook`: the system tells us a record changed; a sync of its model follows. */
  webhook?: ConnectorWebhook;
  /** An admin's OAuth consent (authorization code): `projectx connectors authorize <id>` (src/connectors/sdk/consent.ts). */
  consent?: ConnectorConsent<Settings>;
}

/** What a connector whose credential is an admin's OAuth consent provides to the framework's consent flow. */
export interface ConnectorConsent<Settings = any> {
  /** Why this instance cannot be consented to (not an OAuth instance, no PUBLIC_URL), or undefined. */
  available(instance: ConnectorInstance<Settings>): string | undefined;
  /** The system's authorize page for this instance, carrying `state` and coming back to `redirectUri`. */
  authorizeUrl(input: { instance: ConnectorInstance<Settings>; state: string; redirectUri: string }): string;
  /** Exchanges the code and stores what it gives (encrypted); expected failures are values. */
  complete(input: { instance: ConnectorInstance<Settings>; code: string; redirectUri: string; runtime: ConnectorRuntime & { keyring: Keyring }; actor: string }): Promise<{ ok: true; detail: Record<string, unknown> } | { ok: false; code: string; message: string }>;
}

/** What a webhook body says: a record of a model changed (or is gone), or nothing we act on. */
export type WebhookTarget = { model: string; externalId: string; gone?: boolean } | { ignore: string };

export type ConnectorWebhook = {
  secretField: string;
  /** The body: which record changed (the model and the record's external id), or why it is ignored. */
  payload: z.ZodType<WebhookTarget>;
  /**
   * Changes within this window are handled together at its end: a sync run of the model, or, for a model that
   * can fetch records by id (`fetchByIds`), one fetch of the records the deliveries named.
   */
  debounceSeconds: number;
} & (
  | {
      /** Standard Webhooks, signed with the instance's credential `secretField`. */
      scheme: 'standard';
    }
  | {
      /**
       * `sha256=<hex>` HMAC-SHA256 of the raw body in `signatureHeader` (Jira's X-Hub-Signature, GitHub's
       * X-Hub-Signature-256); the delivery id in `idHeader`, stable across the sender's retries. No signed
       * header carries a time: the body's (`sentAtMs`) must be within `maxAgeSeconds` of our clock.
       */
      scheme: 'hub-signature';
      signatureHeader: string;
      idHeader: string;
      sentAtMs(body: unknown): number | undefined;
      maxAgeSeconds: number;
    }
);

/** One kind of write to the system. */
export interface PushOperation<Settings = any, Client = any, Payload = any> {
  payload: z.ZodType<Payload>;
  /** Sends it; expected remote failures are values. Must be safe to repeat (a crash may resend it). */
  send(input: { client: Client; instance: ConnectorInstance<Settings>; payload: Payload; runtime: ConnectorRuntime }): Promise<UpstreamResult<unknown>>;
  /**
   * After a success, in one transaction with marking it sent: record what the system answered, so that our own
   * change read back by the next pull is no change (echo suppression). Returns what to keep as the push's result.
   */
  sent?(input: { trx: Kysely<Database>; connector: ConnectorDefinition<Settings, Client>; instance: ConnectorInstance<Settings>; payload: Payload; response: unknown; runtime: ConnectorRuntime; now: Date }): Promise<Record<string, unknown>>;
}

/** A write a domain event asks for: which instance, which operation, ordered per record key. */
export interface PushIntent {
  instanceId: string;
  operation: string;
  recordKey: string;
  payload: unknown;
}

export interface PushDefinition<Settings = any, Client = any> {
  operations: Readonly<Record<string, PushOperation<Settings, Client>>>;
  /** The writes a domain event asks for (none for most events). Runs in the event's routing job. */
  fromEvent(event: DomainEvent, input: { db: Db }): Promise<PushIntent[]>;
}

/** Identity function that fixes the settings and client types; see the module comment. */
export function defineConnector<Settings, Client>(definition: ConnectorDefinition<Settings, Client>): ConnectorDefinition<Settings, Client> {
  return definition;
}

export function defineModel<Settings, Client, Raw, Cursor>(model: SyncModel<Settings, Client, Raw, Cursor>): SyncModel<Settings, Client, Raw, Cursor> {
  return model;
}
