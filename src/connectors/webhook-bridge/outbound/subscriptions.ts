/**
 * Outbound event subscriptions: a subscriber's endpoint, the event types it wants (exact names, a prefix like
 * `task.*`, or `*`), and its Standard Webhooks signing secret (`whsec_…`). The secret is stored only as an
 * AES-256-GCM envelope whose AAD names the subscription, and it is returned once, by `addSubscription`; nothing
 * else lists or prints it.
 *
 * The endpoint URL is a secret too: receivers (Slack incoming webhooks, chat and SIEM endpoints) put bearer tokens
 * in its path or query. It is stored as an envelope as well (AAD `webhook_subscription:<id>:url`) and decrypted
 * only to deliver; everywhere else (the CLI, logs, errors, the delivery log, the audit log) a subscription's
 * endpoint is its origin and a short hash of the whole URL (`https://hooks.example.com/…#a1b2c3d4`), enough to
 * tell subscriptions apart and to check which URL one has. Repository functions take `db` first; the caller owns
 * the transaction.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type Kysely, type Selectable, sql } from 'kysely';
import { type Keyring, isEnvelope } from '../../sdk/crypto.ts';
import type { Logger } from '../../../logger.ts';
import type { Database, WebhookDeliveryStatus, WebhookSubscriptionsTable } from '../../../db/schema.ts';
import type { DomainEventType } from '../../../domain/events.ts';
import { type Result, ok, refuse } from '../../../domain/result.ts';
import { newWebhookSecret } from '../signatures.ts';

/**
 * Every event a subscriber may name, sorted. The check below fails the typecheck when the domain gains an event
 * type that is not listed here: list it, and subscribers can ask for it by name.
 */
export const SUBSCRIBABLE_EVENT_TYPES = [
  'evidence.ingest_failed',
  'evidence.recorded',
  'evidence.renewal_due',
  'incident.acknowledged',
  'incident.created',
  'incident.updated',
  'integration.auth_failing',
  'integration.degraded',
  'integration.push_failed',
  'integration.reconciled',
  'integration.record_rejected',
  'integration.recovered',
  'integration.sprint_closed',
  'partner.alert',
  'security.evidence_infected',
  'security.webhook_signature_failures',
  'task.approval_recorded',
  'task.approval_requested',
  'task.assigned',
  'task.commented',
  'task.created',
  'task.decided',
  'task.epic_completed',
  'task.state_changed',
] as const;
type Unlisted = Exclude<DomainEventType, (typeof SUBSCRIBABLE_EVENT_TYPES)[number]>;
const _everyEventTypeListed: [Unlisted] extends [never] ? true : Unlisted = true;
const SUBSCRIBABLE: readonly string[] = SUBSCRIBABLE_EVENT_TYPES;

export const MAX_URL_LENGTH = 2048;

export interface Subscription {
  id: string;
  /** The URL as it may be shown: origin and a short hash (`endpointLabel`); the URL itself is only delivered to. */
  endpoint: string;
  eventTypes: string[];
  description: string | null;
  enabled: boolean;
  disabledReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SubscriptionListing extends Subscription {
  /** The newest delivery, for an operator's overview. */
  lastDelivery: { status: WebhookDeliveryStatus; httpStatus: number | null; at: Date } | null;
}

export interface NewSubscription {
  url: string;
  eventTypes: readonly string[];
  description?: string | undefined;
}

type Row = Selectable<WebhookSubscriptionsTable>;

function toSubscription(row: Row): Subscription {
  return {
    id: row.id,
    endpoint: row.url_display,
    eventTypes: row.event_types,
    description: row.description,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** What a stored subscription secret's encryption is bound to (also used by `projectx credentials rotate-key`). */
export const subscriptionSecretAad = (id: string) => `webhook_subscription:${id}:secret`;
const secretAad = subscriptionSecretAad;
/** What a stored subscription URL's encryption is bound to (also used by `projectx credentials rotate-key`). */
export const subscriptionUrlAad = (id: string) => `webhook_subscription:${id}:url`;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * How a subscription URL is shown anywhere: its origin, then the first 8 hex digits of the SHA-256 of the whole
 * URL, so that nothing of its path or query (where receivers put their tokens) is shown.
 *
 * @example
 * endpointLabel('https://hooks.example.com/services/T0/B0/xyz') // 'https://hooks.example.com/…#1f0c3a9e'
 */
export function endpointLabel(url: string): string {
  const hash = createHash('sha256').update(url).digest('hex').slice(0, 8);
  return `${URL.canParse(url) ? new URL(url).origin : ''}/…#${hash}`;
}

/**
 * An endpoint we may be asked to call: http(s), with a host, no credentials in it (they would sit in logs and
 * lists). Decided on the text alone: nothing here looks the host up (that comes after, `checkDestination`). A
 * refusal never repeats the URL, whose path may hold a token.
 */
export function validateEndpoint(raw: string): Result<URL> {
  const text = raw.trim();
  if (!URL.canParse(text)) return refuse('invalid_url', 'the URL is not a valid absolute URL (like https://hooks.example.com/path)');
  const url = new URL(text);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return refuse('invalid_url', `the URL must use https or http (got ${url.protocol.replace(/:$/, '')})`);
  if (!url.hostname) return refuse('invalid_url', 'the URL has no host');
  if (url.username || url.password) return refuse('invalid_url', 'the URL must not carry credentials (user:password@); the signature authenticates us to the receiver');
  if (url.href.length > MAX_URL_LENGTH) return refuse('invalid_url', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  return ok(url);
}

/** Exact event types, prefixes of known types (`task.*`), or `*`; duplicates dropped, order kept. */
export function validateEventTypes(patterns: readonly string[]): Result<string[]> {
  const wanted = [...new Set(patterns.map((pattern) => pattern.trim()).filter(Boolean))];
  if (wanted.length === 0) return refuse('missing_event_types', 'name at least one event type (e.g. task.created, task.* or *)');
  for (const pattern of wanted) {
    const known = pattern === '*' || (pattern.endsWith('.*') ? SUBSCRIBABLE.some((type) => type.startsWith(pattern.slice(0, -1))) : SUBSCRIBABLE.includes(pattern));
    if (!known) return refuse('unknown_event_type', `"${pattern}" is not an event type or a prefix of one (event types: ${SUBSCRIBABLE_EVENT_TYPES.join(', ')})`);
  }
  return ok(wanted);
}

/** The patterns that select `eventType`: itself, each dotted prefix with `.*`, and `*`. */
export function patternsFor(eventType: string): string[] {
  const parts = eventType.split('.');
  const prefixes = parts.slice(0, -1).map((_, index) => `${parts.slice(0, index + 1).join('.')}.*`);
  return [eventType, ...prefixes, '*'];
}

/** Adds a subscription with a fresh secret; the secret is in the result and nowhere readable after, the URL only encrypted. */
export async function addSubscription(db: Kysely<Database>, keyring: Keyring, input: NewSubscription, now: Date): Promise<Result<{ subscription: Subscription; secret: string }>> {
  const url = validateEndpoint(input.url);
  if (!url.ok) return url;
  const eventTypes = validateEventTypes(input.eventTypes);
  if (!eventTypes.ok) return eventTypes;
  // The id is chosen here, not by the database, because the AAD of the secret and of the URL names it.
  const id = randomUUID();
  const secret = newWebhookSecret();
  const row = await db
    .insertInto('webhook_subscriptions')
    .values({
      id,
      url: null,
      url_encrypted: JSON.stringify(keyring.encrypt(url.value.href, subscriptionUrlAad(id))),
      url_display: endpointLabel(url.value.href),
      event_types: eventTypes.value,
      secret: JSON.stringify(keyring.encrypt(secret, secretAad(id))),
      description: input.description?.trim() || null,
      created_at: now,
      updated_at: now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return ok({ subscription: toSubscription(row), secret });
}

/** The URL of a subscription row (for deliveries only): decrypted, or as written before URLs were encrypted. */
export function subscriptionUrl(keyring: Keyring, row: { id: string; url: string | null; url_encrypted: unknown }): string {
  if (isEnvelope(row.url_encrypted)) return keyring.decrypt(row.url_encrypted, subscriptionUrlAad(row.id));
  if (row.url !== null) return row.url;
  throw Object.assign(new Error(`subscription ${row.id} has no stored URL`), { code: 'subscription_url_missing' });
}

/**
 * Encrypts the URLs written in plaintext before URLs were encrypted (migration 20261207_1000 could not: it has no
 * key), at every start with a key; rows another process is encrypting are skipped. Returns how many it did.
 */
export async function encryptPlaintextUrls(db: Kysely<Database>, keyring: Keyring): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx.selectFrom('webhook_subscriptions').select(['id', 'url']).where('url', 'is not', null).forUpdate().skipLocked().execute();
    for (const row of rows) {
      const url = row.url!;
      await trx
        .updateTable('webhook_subscriptions')
        .set({ url: null, url_encrypted: JSON.stringify(keyring.encrypt(url, subscriptionUrlAad(row.id))), url_display: endpointLabel(url) })
        .where('id', '=', row.id)
        .execute();
    }
    return rows.length;
  });
}

/** At a process's start: plaintext URLs encrypted when there is a key, and said when there is none. */
export async function protectStoredUrls(db: Kysely<Database>, keyring: Keyring | undefined, logger: Logger): Promise<void> {
  if (keyring) {
    const encrypted = await encryptPlaintextUrls(db, keyring);
    if (encrypted > 0) logger.info({ encrypted }, `encrypted ${encrypted} subscription URL(s) stored in plaintext`);
    return;
  }
  const waiting = await db.selectFrom('webhook_subscriptions').select((eb) => eb.fn.countAll<string>().as('n')).where('url', 'is not', null).executeTakeFirstOrThrow();
  if (Number(waiting.n) > 0) logger.warn({ plaintext: Number(waiting.n) }, `${waiting.n} subscription URL(s) are stored in plaintext until a process starts with PROJECTX_ENCRYPTION_KEY`);
}

/** The signing secret of a subscription row (for deliveries only). */
export function subscriptionSecret(keyring: Keyring, row: { id: string; secret: unknown }): string {
  if (!isEnvelope(row.secret)) throw Object.assign(new Error(`subscription ${row.id} has no stored secret`), { code: 'subscription_secret_missing' });
  return keyring.decrypt(row.secret, secretAad(row.id));
}

export async function getSubscription(db: Kysely<Database>, id: string): Promise<Subscription | undefined> {
  if (!UUID.test(id)) return undefined;
  const row = await db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toSubscription(row) : undefined;
}

/** Every subscription, oldest first, each with its newest delivery. */
export async function listSubscriptions(db: Kysely<Database>): Promise<SubscriptionListing[]> {
  const rows = await db
    .selectFrom('webhook_subscriptions as s')
    .leftJoinLateral(
      (eb) =>
        eb
          .selectFrom('webhook_deliveries as d')
          .select(['d.status', 'd.last_status', (inner) => inner.fn.coalesce('d.delivered_at', 'd.created_at').as('at')])
          .whereRef('d.subscription_id', '=', 's.id')
          .orderBy('d.created_at', 'desc')
          .limit(1)
          .as('last'),
      (join) => join.onTrue(),
    )
    .selectAll('s')
    .select(['last.status as last_delivery_status', 'last.last_status as last_http_status', 'last.at as last_at'])
    .orderBy('s.created_at')
    .orderBy('s.id')
    .execute();
  return rows.map(({ last_delivery_status: status, last_http_status: httpStatus, last_at: at, ...row }) => ({
    ...toSubscription(row),
    lastDelivery: status && at ? { status, httpStatus, at } : null,
  }));
}

/** Deletes the subscription and, with it, its deliveries and their attempts. False when there was none. */
export async function removeSubscription(db: Kysely<Database>, id: string): Promise<boolean> {
  if (!UUID.test(id)) return false;
  const result = await db.deleteFrom('webhook_subscriptions').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Re-enables a subscription (after a 410 or by hand); deliveries abandoned meanwhile stay abandoned. */
export async function enableSubscription(db: Kysely<Database>, id: string, now: Date): Promise<Result<Subscription>> {
  if (!UUID.test(id)) return refuse('not_found', `no subscription ${id}`);
  const row = await db.updateTable('webhook_subscriptions').set({ enabled: true, disabled_reason: null, updated_at: now }).where('id', '=', id).returningAll().executeTakeFirst();
  return row ? ok(toSubscription(row)) : refuse('not_found', `no subscription ${id}`);
}

/** Stops deliveries to a subscription, saying why (shown by `projectx subscriptions list`). */
export async function disableSubscription(db: Kysely<Database>, id: string, reason: string, now: Date): Promise<boolean> {
  const result = await db.updateTable('webhook_subscriptions').set({ enabled: false, disabled_reason: reason, updated_at: now }).where('id', '=', id).where('enabled', '=', true).executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/** Enabled subscriptions that asked for `eventType` (by name, by a prefix of it, or `*`). */
export async function matchingSubscriptions(db: Kysely<Database>, eventType: string): Promise<Subscription[]> {
  const rows = await db
    .selectFrom('webhook_subscriptions')
    .selectAll()
    .where('enabled', '=', true)
    .where(sql<boolean>`event_types && ${patternsFor(eventType)}::text[]`)
    .orderBy('created_at')
    .execute();
  return rows.map(toSubscription);
}

export interface DeliveryRecord {
  id: string;
  eventType: string;
  messageId: string;
  status: WebhookDeliveryStatus;
  attempts: { attempt: number; attemptedAt: Date; durationMs: number; httpStatus: number | null; error: string | null }[];
  nextAttemptAt: Date | null;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
}

/** A subscription's newest deliveries (newest first), each with its attempts in order. */
export async function recentDeliveries(db: Kysely<Database>, subscriptionId: string, limit: number): Promise<DeliveryRecord[]> {
  if (!UUID.test(subscriptionId)) return [];
  const deliveries = await db.selectFrom('webhook_deliveries').selectAll().where('subscription_id', '=', subscriptionId).orderBy('created_at', 'desc').orderBy('id').limit(limit).execute();
  if (deliveries.length === 0) return [];
  const attempts = await db
    .selectFrom('webhook_delivery_attempts')
    .selectAll()
    .where('delivery_id', 'in', deliveries.map((delivery) => delivery.id))
    .orderBy('attempt')
    .execute();
  return deliveries.map((delivery) => ({
    id: delivery.id,
    eventType: delivery.event_type,
    messageId: delivery.message_id,
    status: delivery.status,
    attempts: attempts
      .filter((attempt) => attempt.delivery_id === delivery.id)
      .map((attempt) => ({ attempt: attempt.attempt, attemptedAt: attempt.attempted_at, durationMs: attempt.duration_ms, httpStatus: attempt.http_status, error: attempt.error })),
    nextAttemptAt: delivery.next_attempt_at,
    lastError: delivery.last_error,
    createdAt: delivery.created_at,
    deliveredAt: delivery.delivered_at,
  }));
}
