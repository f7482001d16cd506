/**
 * `POST /api/integrations/:connector/webhook[?instance=<name>]`: a connected system says a record changed (or
 * is gone), and we look, debounced: changes within the connector's window are handled together at its end.
 *
 * - A model that can fetch records by id (`fetchByIds`, Jira): the delivery is recorded `received` and the
 *   instance's delivery job (src/jobs/connector-deliveries.ts) fetches every record the waiting deliveries name,
 *   stores them like a sync page (so an unchanged one is no change), flags the gone ones, and marks the
 *   deliveries processed; it is retried (10 attempts), then they are failed, listed and replayable
 *   (`projectx connectors deliveries`).
 * - Otherwise (ServiceNow): an incremental sync run of the model, which reads every change since its checkpoint.
 * - A body about something we do not act on (another event type) is recorded and answered 202 `ignored`.
 *
 * Verified over the raw bytes, in constant time, with the instance's own secret: Standard Webhooks (±5 minutes)
 * or a `sha256=<hex>` HMAC header (Jira's X-Hub-Signature), whose freshness is the body's own signed time.
 * Durable: the delivery is recorded in `inbound_events` and its job enqueued in one transaction before the 202.
 * A delivery id seen before answers 200 with what it did, and does nothing again. Answers: unknown connector,
 * instance or no secret configured → 404; signature → 401 with the shared code
 * (src/http/signature-failures.ts), counted as the outcome of the same name; a body that names no record, or
 * is too old → 422; storage down → 503 with Retry-After.
 */
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { Counter } from 'prom-client';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import { errorBody } from '../../http/errors.ts';
import { SIGNATURE_TOLERANCE_SECONDS, type SignatureCheck, signatureFailureResponse } from '../../http/signature-failures.ts';
import { connectorDeliveries, deliveriesKey } from '../../jobs/connector-deliveries.ts';
import { connectorSync, syncKey } from '../../jobs/connector-sync.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { type Logger, currentContext } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { verifyHubSignature, verifyStandardWebhook } from '../webhook-bridge/signatures.ts';
import type { ConnectorDefinition } from './contract.ts';
import type { Keyring } from './crypto.ts';
import { loadInstance } from './instances.ts';

export interface ConnectorWebhookDeps {
  db: Db;
  keyring: Keyring | undefined;
  jobs: Pick<JobRuntime, 'enqueue'>;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  connectors: readonly ConnectorDefinition[];
}

export const CONNECTOR_WEBHOOK_PATH = '/api/integrations/:connector/webhook';

const KEPT_HEADERS = ['content-type', 'user-agent', 'webhook-id', 'webhook-timestamp', 'x-request-id', 'traceparent'];

export function createConnectorWebhooks(deps: ConnectorWebhookDeps): Hono {
  const outcomes = new Counter({ name: 'connector_webhooks_total', help: 'Webhooks from connected systems, by connector and outcome', labelNames: ['connector', 'outcome'], registers: [deps.metrics.registry] });
  const app = new Hono();
  app.post(CONNECTOR_WEBHOOK_PATH, async (c) => {
    const connector = deps.connectors.find((candidate) => candidate.id === c.req.param('connector') && candidate.webhook);
    const webhook = connector?.webhook;
    if (!connector || !webhook) return c.json(errorBody('unknown_webhook', 'no connector takes webhooks at this URL'), 404);
    const name = c.req.query('instance') ?? 'default';
    const unavailable = (error: unknown) => {
      deps.logger.error({ err: error, connector: connector.id, instance: name }, 'connector webhook cannot be checked right now');
      c.header('Retry-After', '30');
      return c.json(errorBody('webhook_unavailable', 'this webhook cannot be verified right now; send it again later'), 503);
    };
    let row: { id: string; enabled: boolean } | undefined;
    try {
      row = await deps.db.selectFrom('integration_configs').select(['id', 'enabled']).where('type', '=', connector.id).where('name', '=', name).executeTakeFirst();
    } catch (error) {
      return unavailable(error);
    }
    if (!row || !row.enabled) return c.json(errorBody('unknown_instance', `no enabled ${connector.title} instance named ${name}`), 404);
    let secret: string | undefined;
    try {
      secret = (await loadInstance(deps.db, deps.keyring, connector, row.id)).credential(webhook.secretField);
    } catch (error) {
      // No key, a key that does not fit, or the database away: the sender tries again later.
      return unavailable(error);
    }
    if (!secret) return c.json(errorBody('webhook_not_configured', `${connector.title} webhooks are not configured for this instance`), 404);

    const body = new Uint8Array(await c.req.arrayBuffer());
    const nowMs = deps.clock.now().getTime();
    let id: string | undefined;
    let checked: SignatureCheck;
    if (webhook.scheme === 'standard') {
      id = c.req.header('webhook-id');
      checked = verifyStandardWebhook({ secrets: [secret], id, timestamp: c.req.header('webhook-timestamp'), signature: c.req.header('webhook-signature'), body, nowSeconds: Math.floor(nowMs / 1000) });
    } else {
      id = c.req.header(webhook.idHeader)?.trim();
      checked = verifyHubSignature({ secrets: [secret], header: c.req.header(webhook.signatureHeader), body });
      if (checked.ok && (!id || !/^[\x21-\x7e]{1,256}$/.test(id))) checked = { ok: false, reason: 'missing_signature' };
    }
    if (!checked.ok) {
      outcomes.inc({ connector: connector.id, outcome: checked.reason });
      deps.logger.warn({ connector: connector.id, instance: name, reason: checked.reason }, 'connector webhook refused: signature check failed');
      return signatureFailureResponse(c, checked.reason);
    }
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(body).toString('utf8'));
    } catch {
      outcomes.inc({ connector: connector.id, outcome: 'invalid_payload' });
      return c.json(errorBody('invalid_payload', 'the body is not JSON'), 422);
    }
    if (webhook.scheme === 'hub-signature') {
      // The signature covers the body only: its own time (signed with it) says whether it is a replay of old news.
      const sentAt = webhook.sentAtMs(json);
      if (sentAt === undefined || sentAt < nowMs - webhook.maxAgeSeconds * 1000 || sentAt > nowMs + SIGNATURE_TOLERANCE_SECONDS * 1000) {
        outcomes.inc({ connector: connector.id, outcome: 'stale_delivery' });
        return c.json(errorBody('stale_delivery', `the body's timestamp is missing or more than ${Math.round(webhook.maxAgeSeconds / 60)} minutes old (or in the future)`), 422);
      }
    }
    const parsed = webhook.payload.safeParse(json);
    const target = parsed.success ? parsed.data : undefined;
    const model = target && 'model' in target ? connector.models.find((candidate) => candidate.name === target.model) : undefined;
    if (!target || ('model' in target && !model)) {
      outcomes.inc({ connector: connector.id, outcome: 'invalid_payload' });
      return c.json(errorBody('invalid_payload', 'the body does not name a record this connector syncs', { issues: parsed.success ? [{ path: [], message: 'unknown model' }] : parsed.error.issues.map((issue) => ({ path: issue.path, message: issue.message })) }), 422);
    }

    const source = `${connector.id}:${name}`;
    const headers = Object.fromEntries([...KEPT_HEADERS, ...(webhook.scheme === 'hub-signature' ? [webhook.idHeader, 'x-atlassian-webhook-retry', 'x-atlassian-webhook-flow'] : [])].flatMap((header) => (c.req.header(header) ? [[header, c.req.header(header)!.slice(0, 500)]] : [])));
    // A model that can fetch records by id gets the records the deliveries name, fetched at the window's end by
    // the delivery job (retried, dead-lettered, replayable); others get a sync run of the model.
    const byId = model?.fetchByIds !== undefined;
    const kind = 'ignore' in target ? 'ignored' : `${target.gone ? 'gone' : 'sync'}.${target.model}`;
    try {
      const outcome = await deps.db.transaction().execute(async (trx) => {
        const settled = 'ignore' in target || !byId;
        const inserted = await trx
          .insertInto('inbound_events')
          .values({ source, delivery_id: id!, kind, status: settled ? 'processed' : 'received', headers: JSON.stringify(headers), body: Buffer.from(body), correlation_id: currentContext().requestId ?? null, received_at: deps.clock.now(), processed_at: settled ? deps.clock.now() : null })
          .onConflict((oc) => oc.columns(['source', 'delivery_id']).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) {
          const original = await trx.selectFrom('inbound_events').select(['id', 'result']).where('source', '=', source).where('delivery_id', '=', id!).executeTakeFirstOrThrow();
          return { duplicate: true as const, id: original.id, result: original.result };
        }
        let result: Record<string, unknown>;
        if ('ignore' in target) {
          result = { ignored: target.ignore };
        } else if (byId) {
          const job = await deps.jobs.enqueue(connectorDeliveries, { connector: connector.id, instanceId: row.id }, { db: trx, singletonKey: deliveriesKey(row.id), singletonSeconds: webhook.debounceSeconds, singletonNextSlot: true });
          result = { model: target.model, externalId: target.externalId, ...(target.gone ? { gone: true } : {}), fetch: job ? 'queued' : 'already_queued' };
        } else {
          const runId = randomUUID();
          const job = await deps.jobs.enqueue(
            connectorSync,
            { connector: connector.id, instanceId: row.id, model: target.model, runId, trigger: 'webhook' },
            { db: trx, singletonKey: syncKey(row.id, target.model), singletonSeconds: webhook.debounceSeconds, singletonNextSlot: true },
          );
          // No job: one is already waiting for this window's end, and it will read this change too.
          result = { model: target.model, externalId: target.externalId, sync: job ? runId : 'already_queued' };
        }
        await trx.updateTable('inbound_events').set({ result: JSON.stringify(result) }).where('id', '=', inserted.id).execute();
        return { duplicate: false as const, id: inserted.id, result };
      });
      outcomes.inc({ connector: connector.id, outcome: outcome.duplicate ? 'duplicate' : 'ignore' in target ? 'ignored' : 'accepted' });
      return outcome.duplicate ? c.json({ id: outcome.id, status: 'accepted', duplicate: true, result: outcome.result }, 200) : c.json({ id: outcome.id, status: 'accepted', result: outcome.result }, 202);
    } catch (error) {
      deps.logger.error({ err: error, connector: connector.id }, 'connector webhook could not be stored');
      c.header('Retry-After', '5');
      return c.json(errorBody('storage_unavailable', 'the webhook could not be stored; send it again'), 503);
    }
  });
  return app;
}
