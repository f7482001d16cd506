/**
 * Domain events to subscribers, as Standard Webhooks. Routing an event (src/jobs/domain-events.ts) records one
 * `webhook_deliveries` row per matching subscription and enqueues its first attempt in the same transaction;
 * each attempt is one `webhook.deliver` job that signs the body afresh (same `webhook-id`, new timestamp), POSTs
 * it through the SSRF-guarded transport, logs the attempt, and decides:
 *
 * - 2xx: delivered;
 * - 410 Gone: the subscriber has gone away, so the subscription is disabled and the delivery abandoned;
 * - a destination the guard refuses: abandoned (nothing is sent, and waiting will not make it public);
 * - anything else (other statuses, timeouts, network errors): the next attempt is enqueued after the spec's
 *   schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h) with ±10 % jitter, as a new
 *   job with `startAfter`; nothing sleeps. After the last attempt the delivery has failed.
 *
 * pg-boss's own retries are kept for our failures (the database, a bug), not the subscriber's: an attempt whose
 * outcome could not be recorded runs again as the same attempt. The secret and the signature header are never
 * logged or stored; the subscription's URL is decrypted for the request only, and logs and the delivery log name
 * it by origin and hash (subscriptions.ts `endpointLabel`).
 */
import type { Kysely } from 'kysely';
import { request } from 'undici';
import { z } from 'zod';
import type { Clock } from '../../../clock.ts';
import type { Database } from '../../../db/schema.ts';
import type { DomainEvent } from '../../../domain/events.ts';
import { type JobContext, defineJob } from '../../../jobs/define-job.ts';
import type { JobDeps } from '../../../jobs/job-deps.ts';
import type { JobRuntime } from '../../../jobs/runtime.ts';
import { signStandardWebhook } from '../signatures.ts';
import { type OutboundTransport, DestinationRefusedError, checkDestination, createOutboundTransport } from './destination.ts';
import { disableSubscription, matchingSubscriptions, subscriptionSecret, subscriptionUrl } from './subscriptions.ts';

/** Delay before each attempt, in seconds (Standard Webhooks' suggested schedule); its length is the attempt limit. */
export const RETRY_SCHEDULE_SECONDS: readonly number[] = [0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600];
export const MAX_ATTEMPTS = RETRY_SCHEDULE_SECONDS.length;
/** Each delay is stretched or shrunk by up to this fraction, so failures of one endpoint do not retry in lockstep. */
export const RETRY_JITTER = 0.1;

const USER_AGENT = 'ProjectX-Webhooks/1.0';
/** How much of a response body is read (and thrown away) so the connection can be reused. */
const RESPONSE_DRAIN_BYTES = 64 * 1024;

/** `webhook-id`: stable for every attempt of one event (subscribers deduplicate on it); no dots, per the spec. */
export function webhookMessageId(eventId: string): string {
  return `msg_${eventId.replaceAll('-', '')}`;
}

/** The minified body: the spec's `{ type, timestamp, data }` envelope with the whole event as `data`. */
export function webhookBody(event: DomainEvent): string {
  // The stored copy is jsonb, which reorders keys: put the fields every event has in a fixed, readable order.
  const { id, type, occurredAt, subject, summary, ...rest } = event;
  const data = { id, type, occurredAt, subject: { kind: subject.kind, id: subject.id, label: subject.label }, summary, ...rest };
  return JSON.stringify({ type, timestamp: occurredAt, data });
}

/** Milliseconds to wait before attempt `nextAttempt` (2-based), jittered; undefined when there is none. */
export function retryDelayMs(nextAttempt: number, random: () => number = Math.random): number | undefined {
  const base = RETRY_SCHEDULE_SECONDS[nextAttempt - 1];
  if (base === undefined || nextAttempt < 2) return undefined;
  return Math.round(base * 1000 * (1 + (random() * 2 - 1) * RETRY_JITTER));
}

/**
 * One delivery row (and its first attempt's job) per enabled subscription matching the event, through `db`
 * (pass the caller's transaction). A re-routed event conflicts on (subscription, message id) and adds nothing.
 * Returns how many deliveries were created.
 */
export async function enqueueSubscriptionDeliveries(deps: { jobs: Pick<JobRuntime, 'enqueue'>; clock: Clock }, db: Kysely<Database>, event: DomainEvent): Promise<number> {
  const subscriptions = await matchingSubscriptions(db, event.type);
  if (subscriptions.length === 0) return 0;
  const now = deps.clock.now();
  const rows = await db
    .insertInto('webhook_deliveries')
    .values(
      subscriptions.map((subscription) => ({
        subscription_id: subscription.id,
        message_id: webhookMessageId(event.id),
        event_type: event.type,
        payload: JSON.stringify(event),
        next_attempt_at: now,
        created_at: now,
      })),
    )
    .onConflict((oc) => oc.constraint('webhook_deliveries_subscription_message_key').doNothing())
    .returning('id')
    .execute();
  for (const row of rows) await deps.jobs.enqueue(deliverWebhook, { deliveryId: row.id, attempt: 1 }, { db });
  return rows.length;
}

type Outcome =
  | { kind: 'response'; status: number }
  | { kind: 'refused'; message: string }
  | { kind: 'error'; message: string };

/** pg-boss retries of our own failures (database, keyring); the schedule of attempts is separate. */
const OWN_RETRY_LIMIT = 5;

/** The delivery job's dependencies: the shared ones plus the SSRF-guarded agent the webhook bridge module makes (absent: one per attempt). */
export interface OutboundJobDeps extends JobDeps {
  outboundTransport?: OutboundTransport | undefined;
}

export const deliverWebhook = defineJob({
  name: 'webhook.deliver',
  schema: z.object({ deliveryId: z.uuid(), attempt: z.number().int().min(1).max(MAX_ATTEMPTS) }),
  // Only our own failures are retried by pg-boss (see the module comment); an attempt is at most the 15 s timeout.
  policy: { retryLimit: OWN_RETRY_LIMIT, retryDelaySeconds: 30, expireInSeconds: 300 },
  handler: async (payload, context: JobContext<OutboundJobDeps>) => {
    try {
      return await deliverOnce(payload, context);
    } catch (error) {
      // Our own failure (no key to sign with, a secret that does not decrypt, the database) on pg-boss's last
      // try: the delivery is marked failed with the reason instead of staying 'pending' with its job dead.
      if (context.job.retryCount >= OWN_RETRY_LIMIT && (error as { code?: string }).code !== 'interrupted') {
        await context.deps.db
          .updateTable('webhook_deliveries')
          .set({ status: 'failed', next_attempt_at: null, last_error: `not sent: ${error instanceof Error ? error.message : String(error)}`.slice(0, 1000) })
          .where('id', '=', payload.deliveryId)
          .where('status', '=', 'pending')
          .execute()
          .catch((failure: unknown) => context.logger.error({ err: failure }, 'could not mark a webhook delivery failed'));
      }
      throw error;
    }
  },
});

async function deliverOnce({ deliveryId, attempt }: { deliveryId: string; attempt: number }, { deps, logger, signal }: JobContext<OutboundJobDeps>) {
  const row = await deps.db
    .selectFrom('webhook_deliveries as d')
    .innerJoin('webhook_subscriptions as s', 's.id', 'd.subscription_id')
    .select(['d.id', 'd.subscription_id', 'd.message_id', 'd.payload', 'd.status', 'd.attempts', 's.url', 's.url_encrypted', 's.url_display', 's.secret', 's.enabled', 's.disabled_reason'])
    .where('d.id', '=', deliveryId)
    .executeTakeFirst();
  // Gone with its subscription, settled, or not this attempt's turn (a duplicate or stray job): nothing to do.
  if (!row) return { skipped: 'no such delivery' };
  if (row.status !== 'pending') return { skipped: row.status };
  if (row.attempts !== attempt - 1) return { skipped: `attempt ${attempt} is not due (${row.attempts} made)` };
  const log = logger.child({ deliveryId, subscriptionId: row.subscription_id, endpoint: row.url_display, attempt });
  if (!row.enabled) {
    await deps.db
      .updateTable('webhook_deliveries')
      .set({ status: 'abandoned', next_attempt_at: null, last_error: `subscription disabled${row.disabled_reason ? `: ${row.disabled_reason}` : ''}` })
      .where('id', '=', row.id)
      .where('status', '=', 'pending')
      .execute();
    log.info('webhook delivery abandoned: the subscription is disabled');
    return { abandoned: 'subscription disabled' };
  }
  if (!deps.keyring) throw Object.assign(new Error('cannot sign webhooks: no encryption key is loaded (PROJECTX_ENCRYPTION_KEY)'), { code: 'keyring_missing' });
  const secret = subscriptionSecret(deps.keyring, { id: row.subscription_id, secret: row.secret });
  const url = subscriptionUrl(deps.keyring, { id: row.subscription_id, url: row.url, url_encrypted: row.url_encrypted });

  const body = webhookBody(row.payload as unknown as DomainEvent);
  const attemptedAt = deps.clock.now();
  const headers = {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    ...signStandardWebhook([secret], row.message_id, attemptedAt.getTime() / 1000, Buffer.from(body)),
  };
  // Workers built without a shared transport (tests, tools) get one for this attempt.
  const transport = deps.outboundTransport ?? createOutboundTransport({ allowedNetworks: deps.config.OUTBOUND_WEBHOOK_ALLOWED_NETWORKS ?? [] });
  const started = performance.now();
  let outcome: Outcome;
  try {
    outcome = await send(transport, url, headers, body, signal);
  } finally {
    if (!deps.outboundTransport) await transport.close();
  }
  const durationMs = Math.round(performance.now() - started);
  // The worker is stopping: leave the attempt unrecorded so pg-boss runs it again.
  if (signal.aborted) throw Object.assign(new Error('webhook delivery interrupted: the worker is stopping'), { code: 'interrupted' });

  // Whatever an error says of the URL (a client library may quote it) is said of its origin and hash instead.
  if (outcome.kind !== 'response') outcome = { ...outcome, message: withoutUrl(outcome.message, url, row.url_display) };
  const recorded = await record(deps, { id: row.id, subscriptionId: row.subscription_id, attempt, attemptedAt, durationMs, outcome });
  const fields = { host: new URL(url).host, durationMs, ...(outcome.kind === 'response' ? { status: outcome.status } : { error: outcome.message }) };
  if (!recorded) log.warn(fields, 'webhook attempt finished but another run had recorded it');
  else if (recorded.status === 'delivered') log.info(fields, 'webhook delivered');
  else if (recorded.status === 'pending') log.warn({ ...fields, nextAttemptAt: recorded.nextAttemptAt }, 'webhook attempt failed; retrying later');
  else log.warn(fields, `webhook delivery ${recorded.status}`);
  return recorded ?? { skipped: 'recorded by another run' };
}

async function send(transport: OutboundTransport, url: string, headers: Record<string, string>, body: string, jobSignal: AbortSignal): Promise<Outcome> {
  const destination = await checkDestination(new URL(url), transport.policy);
  if (!destination.ok) {
    return destination.refusal.code === 'destination_refused' ? { kind: 'refused', message: destination.refusal.message } : { kind: 'error', message: destination.refusal.message };
  }
  const timeout = AbortSignal.timeout(transport.timeoutMs);
  try {
    const response = await request(url, { method: 'POST', headers, body, dispatcher: transport.dispatcher, signal: AbortSignal.any([jobSignal, timeout]) });
    // Only the status matters; read a little so the socket can be reused, never the whole of a huge answer.
    await response.body.dump({ limit: RESPONSE_DRAIN_BYTES }).catch(() => undefined);
    return { kind: 'response', status: response.statusCode };
  } catch (error) {
    const refused = causeChain(error).find((cause) => cause instanceof DestinationRefusedError);
    if (refused) return { kind: 'refused', message: refused.message };
    if (timeout.aborted) return { kind: 'error', message: `no answer within ${transport.timeoutMs} ms` };
    return { kind: 'error', message: describeError(error) };
  }
}

interface Recorded {
  status: 'delivered' | 'pending' | 'failed' | 'abandoned';
  nextAttemptAt?: string;
}

/**
 * The attempt row, the delivery's new state and (for a retry) the next attempt's job, in one transaction.
 * Undefined when another run of the same attempt recorded it first.
 */
async function record(
  deps: Pick<JobDeps, 'db' | 'clock' | 'jobs'>,
  input: { id: string; subscriptionId: string; attempt: number; attemptedAt: Date; durationMs: number; outcome: Outcome },
): Promise<Recorded | undefined> {
  const { outcome, attempt } = input;
  const now = deps.clock.now();
  const httpStatus = outcome.kind === 'response' ? outcome.status : null;
  const ok = httpStatus !== null && httpStatus >= 200 && httpStatus < 300;
  const gone = httpStatus === 410;
  const error = outcome.kind === 'response' ? (ok ? null : `HTTP ${outcome.status}`) : outcome.message;
  const delayMs = ok || gone || outcome.kind === 'refused' ? undefined : retryDelayMs(attempt + 1);
  const status: Recorded['status'] = ok ? 'delivered' : gone || outcome.kind === 'refused' ? 'abandoned' : delayMs !== undefined ? 'pending' : 'failed';
  const nextAttemptAt = delayMs !== undefined ? new Date(now.getTime() + delayMs) : null;

  return deps.db.transaction().execute(async (trx) => {
    const updated = await trx
      .updateTable('webhook_deliveries')
      .set({
        status,
        attempts: attempt,
        last_status: httpStatus,
        last_error: gone ? 'HTTP 410 Gone: the subscription was disabled' : error,
        next_attempt_at: nextAttemptAt,
        ...(ok ? { delivered_at: now } : {}),
      })
      .where('id', '=', input.id)
      .where('status', '=', 'pending')
      .where('attempts', '=', attempt - 1)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) return undefined;
    await trx
      .insertInto('webhook_delivery_attempts')
      .values({ delivery_id: input.id, attempt, attempted_at: input.attemptedAt, duration_ms: input.durationMs, http_status: httpStatus, error })
      .execute();
    if (gone) await disableSubscription(trx, input.subscriptionId, `the endpoint answered 410 Gone at ${now.toISOString()}`, now);
    if (delayMs !== undefined) await deps.jobs.enqueue(deliverWebhook, { deliveryId: input.id, attempt: attempt + 1 }, { db: trx, startAfter: delayMs / 1000 });
    return nextAttemptAt ? { status, nextAttemptAt: nextAttemptAt.toISOString() } : { status };
  });
}

/** `text` with the URL, and its path and query (even percent-decoded), replaced by its label. */
export function withoutUrl(text: string, url: string, label: string): string {
  const parsed = new URL(url);
  const tail = `${parsed.pathname}${parsed.search}`;
  let decoded = tail;
  try {
    decoded = decodeURIComponent(tail);
  } catch {
    // not decodable: only the encoded form can appear
  }
  const needles = [...new Set([url, tail, decoded])].filter((needle) => needle.length > 1).sort((a, b) => b.length - a.length);
  return needles.reduce((out, needle) => out.split(needle).join(label), text);
}

function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current = error;
  while (current !== undefined && current !== null && chain.length < 5) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/** An error as one line: its message and its causes' (undici puts the socket error in `cause`), with codes. */
function describeError(error: unknown): string {
  const parts = causeChain(error).map((cause) => {
    if (!(cause instanceof Error)) return String(cause);
    const code = (cause as { code?: unknown }).code;
    return `${cause.message || cause.name}${typeof code === 'string' && !cause.message.includes(code) ? ` (${code})` : ''}`;
  });
  return [...new Set(parts)].join(': ').slice(0, 500) || 'request failed';
}
