/**
 * `POST /api/integration/webhook/:key`: partner webhooks in. Nothing a partner sends may be lost, forged or
 * replayed:
 *
 * - unknown key → 404; a body over the limit → 413 (the body-limit middleware, counted here);
 * - signature per the partner's scheme over the raw bytes, constant-time, every valid secret (rotation) →
 *   401 `missing_signature`, `malformed_signature`, `invalid_signature`, or `stale_timestamp` outside ±5 minutes
 *   (the shared codes of src/http/signature-failures.ts, counted under the same reason);
 * - a delivery id seen before → 200 with the original outcome, and nothing happens again (ids are kept in
 *   `inbound_events` for 30 days, well past the 3 days senders retry for). Standard Webhooks' id is signed;
 *   for GitHub and Jira, whose id header is not, the body's hash is the delivery's identity;
 * - a payload that is not JSON, has no mapped event type or fails its action's schema → kept in quarantine
 *   and answered 422 with the errors (`projectx webhooks quarantine …` fixes and replays it);
 * - otherwise the verified body, the headers of interest and the delivery id are stored, with the processing
 *   job staged beside them, in one statement, then 202 with the delivery's id. A 2xx means committed, job
 *   included: a relay turns staged jobs into pg-boss jobs, a few deliveries each (src/jobs/inbound-outbox.ts
 *   says why the job is not enqueued in the statement itself).
 *
 * Deliveries that arrive together share one statement (group commit, src/db/batcher.ts). Every rejection is
 * counted in `webhook_failures_total{partner,reason}`; repeated signature failures from one partner raise one
 * security notification an hour (src/connectors/webhook-bridge/alerts.ts).
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { type Context, Hono } from 'hono';
import type { Insertable } from 'kysely';
import { Counter } from 'prom-client';
import type { Clock } from '../../clock.ts';
import { Batcher } from '../../db/batcher.ts';
import type { Db } from '../../db/database.ts';
import type { InboundEventsTable, InboundEventStatus } from '../../db/schema.ts';
import { errorBody } from '../../http/errors.ts';
import { type SignatureCheck, signatureFailureResponse } from '../../http/signature-failures.ts';
import type { InboundOutbox } from '../../jobs/inbound-outbox.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { type Logger, currentContext } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { SignatureFailureWatch } from './alerts.ts';
import { interpret } from './mapping.ts';
import { type Partner, type PartnerDirectory, PARTNER_KEY, PartnerSecretsUnreadable, validSecrets } from './partners.ts';
import { SOURCE_PREFIX, quarantineError, webhookProcess } from './process.ts';
import { verifyHubSignature, verifyStandardWebhook } from './signatures.ts';

export const WEBHOOK_PATH = '/api/integration/webhook/:key';

/** Headers kept with a delivery: what processing and an operator may need, never a signature. */
const KEPT_HEADERS = ['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp', 'x-github-event', 'x-github-delivery', 'x-atlassian-webhook-identifier', 'x-request-id', 'traceparent'];

export interface WebhookReceiverDeps {
  db: Db;
  jobs: Pick<JobRuntime, 'enqueue'>;
  /** Relays the processing jobs the accept stages (poked after each commit). */
  outbox: Pick<InboundOutbox, 'poke'>;
  partners: PartnerDirectory;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
}

type Row = Insertable<InboundEventsTable>;
type Outcome =
  | {
      id: string;
      status: InboundEventStatus;
      duplicate: boolean;
      error: unknown;
    }
  | { unstored: unknown };

export interface WebhookReceiver {
  app: Hono;
  /** Counts a 413 answered by the body-limit middleware when it was meant for a partner. */
  bodyTooLarge(c: Context): Promise<void>;
  flush(): Promise<void>;
}

export function createWebhookReceiver(deps: WebhookReceiverDeps): WebhookReceiver {
  const failures = new Counter({ name: 'webhook_failures_total', help: 'Partner webhook deliveries rejected, by partner and reason', labelNames: ['partner', 'reason'], registers: [deps.metrics.registry] });
  const outcomes = new Counter({ name: 'webhook_deliveries_total', help: 'Partner webhook deliveries by partner and outcome (accepted, quarantined, duplicate)', labelNames: ['partner', 'outcome'], registers: [deps.metrics.registry] });
  const watch = new SignatureFailureWatch({ jobs: deps.jobs, clock: deps.clock, logger: deps.logger });
  // A batch is one statement, one writer at a time: what arrives meanwhile makes the next batch bigger, and a
  // bigger batch costs PostgreSQL less per delivery (bench/webhooks: one writer beat two and three).
  // At most 2,000 deliveries (up to the body limit each) wait in memory; beyond that the sender gets a 503 and
  // retries, rather than the process growing without bound.
  const recorder = new Batcher<Row, Outcome>((rows) => record(deps, rows), { maxQueued: 2000 });

  const refuse = (partner: string, reason: string) => failures.inc({ partner, reason });

  const app = new Hono();
  app.post(WEBHOOK_PATH, async (c) => {
    const key = c.req.param('key');
    const partner = await deps.partners.resolve(key).catch((error: unknown) => {
      if (!(error instanceof PartnerSecretsUnreadable)) throw error;
      deps.logger.error({ err: error, partner: key }, 'webhook partner cannot be verified');
      return 'unreadable' as const;
    });
    if (partner === 'unreadable') {
      refuse(key, 'partner_unreadable');
      c.header('Retry-After', '60');
      return c.json(errorBody('partner_unavailable', 'this partner cannot be verified right now; send it again later'), 503);
    }
    if (!partner) {
      refuse('unknown', 'unknown_partner');
      return c.json(errorBody('unknown_partner', 'no partner is configured for this webhook URL'), 404);
    }
    const body = new Uint8Array(await c.req.arrayBuffer());
    const header = (name: string) => c.req.header(name);
    const checked = verify(partner, header, body, deps.clock.now());
    if (!checked.ok) {
      refuse(partner.key, checked.reason);
      watch.failed(partner.key, checked.reason);
      deps.logger.warn({ partner: partner.key, reason: checked.reason }, 'webhook refused: signature check failed');
      return signatureFailureResponse(c, checked.reason);
    }

    const headers = Object.fromEntries(KEPT_HEADERS.flatMap((name) => {
      const value = header(name);
      return value !== undefined ? [[name, value.slice(0, 500)]] : [];
    }));
    const meaning = interpret({ scheme: partner.scheme, mapping: partner.mapping, body, headers });
    const stored = await recorder
      .add({
        // Time-ordered (UUIDv7): new rows land at the end of the primary key's index, not on a random page of
        // it (a random v4 id cost PostgreSQL about 30 µs more per delivery, mostly in full-page WAL images).
        id: uuidv7(),
        source: `${SOURCE_PREFIX}${partner.key}`,
        delivery_id: checked.deliveryId,
        kind: meaning.eventType ?? 'unknown',
        status: meaning.ok ? 'received' : 'quarantined',
        error: meaning.ok ? null : JSON.stringify(quarantineError(meaning)),
        headers: JSON.stringify(headers),
        body: Buffer.from(body),
        correlation_id: currentContext().requestId ?? null,
        received_at: deps.clock.now(),
      })
      .catch((error: unknown) => ({ unstored: error }));
    if ('unstored' in stored) {
      // Nothing was committed, so nothing may be acknowledged: the sender retries (its 3-day schedule).
      deps.logger.error({ err: stored.unstored, partner: partner.key }, 'webhook delivery could not be stored');
      c.header('Retry-After', '5');
      return c.json(errorBody('storage_unavailable', 'the delivery could not be stored; send it again'), 503);
    }
    const outcome = stored;

    if (outcome.duplicate) {
      outcomes.inc({ partner: partner.key, outcome: 'duplicate' });
      return c.json({ id: outcome.id, status: outcome.status, duplicate: true, ...(outcome.status === 'quarantined' ? { error: outcome.error } : {}) }, 200);
    }
    if (!meaning.ok) {
      refuse(partner.key, meaning.reason);
      outcomes.inc({ partner: partner.key, outcome: 'quarantined' });
      return c.json(errorBody(meaning.reason, meaning.message, { id: outcome.id, quarantined: true, ...(meaning.issues ? { issues: meaning.issues } : {}) }), 422);
    }
    outcomes.inc({ partner: partner.key, outcome: 'accepted' });
    return c.json({ id: outcome.id, status: 'accepted' }, 202);
  });

  return {
    app,
    async bodyTooLarge(c) {
      const match = /^\/api\/integration\/webhook\/([^/]+)$/.exec(c.req.path);
      if (!match) return;
      const key = match[1]!; // partner keys need no decoding; anything encoded is not one
      const known = PARTNER_KEY.test(key) ? await deps.partners.resolve(key).catch(() => undefined) : undefined;
      refuse(known ? known.key : 'unknown', 'too_large');
    },
    flush: () => recorder.flush(),
  };
}

/** The partner's scheme: the signature, and the delivery id that makes a repeat recognisable. */
function verify(partner: Partner, header: (name: string) => string | undefined, body: Uint8Array, now: Date): { ok: true; deliveryId: string } | Extract<SignatureCheck, { ok: false }> {
  const secrets = validSecrets(partner, now);
  if (partner.scheme === 'standard') {
    const id = header('webhook-id');
    const result = verifyStandardWebhook({ secrets, id, timestamp: header('webhook-timestamp'), signature: header('webhook-signature'), body, nowSeconds: Math.floor(now.getTime() / 1000) });
    return result.ok ? { ok: true, deliveryId: id! } : result;
  }
  const result = verifyHubSignature({ secrets, header: header(partner.scheme === 'github' ? 'x-hub-signature-256' : 'x-hub-signature'), body });
  if (!result.ok) return result;
  // No timestamp in these schemes, and their delivery id header is not signed: a captured request sent again
  // with a fresh id would pass. The delivery is therefore identified by what is signed, its body (a sender's
  // redelivery resends the same bytes); the sender's id is kept with the headers for operators.
  return { ok: true, deliveryId: `sha256:${createHash('sha256').update(body).digest('hex')}` };
}

/**
 * One statement for the batch: insert the new deliveries (a repeated id inserts nothing) and stage one
 * processing job naming the accepted ones (autocommit: they commit together), then read back the rows of the
 * repeats. Should the batch fail, each delivery is tried alone, so that one bad row (or a deadlock) cannot
 * fail the others; what still fails is answered 503. Bodies travel as hex text in one array parameter, so a
 * batch is written in parts of at most 8 MiB of bodies.
 */
async function record(deps: WebhookReceiverDeps, rows: readonly Row[]): Promise<Outcome[]> {
  try {
    const outcomes: Outcome[] = [];
    for (const part of partsByBodySize(rows, MAX_STATEMENT_BODY_BYTES)) outcomes.push(...(await recordPart(deps, part)));
    return outcomes;
  } finally {
    deps.outbox.poke();
  }
}

const MAX_STATEMENT_BODY_BYTES = 8 * 1024 * 1024;

/** Consecutive parts whose bodies add up to at most `limit` bytes (a larger body is a part of its own). */
export function partsByBodySize<T extends { body: Uint8Array }>(rows: readonly T[], limit: number): T[][] {
  const parts: T[][] = [];
  let bytes = Number.POSITIVE_INFINITY;
  for (const row of rows) {
    if (bytes + row.body.length > limit) {
      parts.push([]);
      bytes = 0;
    }
    parts.at(-1)!.push(row);
    bytes += row.body.length;
  }
  return parts;
}

async function recordPart(deps: WebhookReceiverDeps, rows: readonly Row[]): Promise<Outcome[]> {
  try {
    return await recordBatch(deps, rows);
  } catch (error) {
    if (rows.length === 1) return [{ unstored: error }];
    deps.logger.warn({ err: error, rows: rows.length }, 'webhook batch failed; storing its deliveries one by one');
    const outcomes: Outcome[] = [];
    for (const row of rows) outcomes.push(await recordBatch(deps, [row]).then((single) => single[0]!, (failure: unknown) => ({ unstored: failure })));
    return outcomes;
  }
}

async function recordBatch(deps: WebhookReceiverDeps, rows: readonly Row[]): Promise<Outcome[]> {
  const seen = new Set<string>();
  // In key order, so that concurrent batches take their unique-index locks in the same order (no deadlock).
  const unique = rows
    .filter((row) => {
      const key = `${row.source}\u0000${row.delivery_id}`;
      return seen.has(key) ? false : (seen.add(key), true);
    })
    .sort((a, b) => (a.source === b.source ? (a.delivery_id < b.delivery_id ? -1 : 1) : a.source < b.source ? -1 : 1));
  // One SQL text whatever the batch size (columns as arrays, unnest back into rows): kysely builds nothing per
  // batch and PostgreSQL parses one small statement, not one with nine parameters per row.
  const column = <K extends keyof Row>(key: K) => unique.map((row) => row[key] ?? null);
  const inserted = (
    await sql<{ id: string; source: string; delivery_id: string; status: InboundEventStatus }>`
      with inserted as (
        insert into inbound_events (id, source, delivery_id, kind, status, error, headers, body, correlation_id, received_at)
        select * from unnest(${column('id')}::uuid[], ${column('source')}::text[], ${column('delivery_id')}::text[], ${column('kind')}::text[], ${column('status')}::text[],
                             ${column('error')}::jsonb[], ${column('headers')}::jsonb[], ${column('body')}::bytea[], ${column('correlation_id')}::text[],
                             ${column('received_at')}::timestamptz[])
        on conflict on constraint inbound_events_source_delivery_id_key do nothing
        returning id, source, delivery_id, status),
      staged as (
        insert into inbound_job_outbox (job_name, inbound_ids)
        select ${webhookProcess.name}::text, array_agg(id) from inserted where status = 'received' having count(*) > 0)
      select id, source, delivery_id, status from inserted`.execute(deps.db)
  ).rows;
  const fresh = new Map(inserted.map((row) => [`${row.source}\u0000${row.delivery_id}`, row]));
  const repeats = rows.filter((row) => !fresh.has(`${row.source}\u0000${row.delivery_id}`));
  const earlier = new Map(
    repeats.length === 0
      ? []
      : (
          await deps.db
            .selectFrom('inbound_events')
            .select(['id', 'source', 'delivery_id', 'status', 'error'])
            .where((eb) => eb.or(repeats.map((row) => eb.and([eb('source', '=', row.source), eb('delivery_id', '=', row.delivery_id)]))))
            .execute()
        ).map((row) => [`${row.source}\u0000${row.delivery_id}`, row]),
  );
  const claimed = new Set<string>();
  return rows.map((row) => {
    const key = `${row.source}\u0000${row.delivery_id}`;
    const first = fresh.get(key);
    if (first && !claimed.has(key)) {
      claimed.add(key);
      return { id: first.id, status: first.status, duplicate: false, error: null };
    }
    const previous = first ?? earlier.get(key);
    if (!previous) throw new Error('a delivery was neither inserted nor found');
    return { id: previous.id, status: previous.status, duplicate: true, error: 'error' in previous ? previous.error : row.error ? (JSON.parse(row.error) as unknown) : null };
  });
}
