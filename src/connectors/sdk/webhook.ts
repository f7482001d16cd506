/**
 * `POST /api/integrations/:connector/webhook[?instance=<name>]`: a connected system says a record changed, and an
 * incremental sync of that record's model follows, debounced (changes within the connector's window share one
 * run, started at the window's end; an incremental run reads every change since its checkpoint, the named
 * record's included).
 *
 * Verified like a partner webhook (Standard Webhooks over the raw bytes, constant time, ±5 minutes, with the
 * instance's own secret) and as durable: the delivery is recorded in `inbound_events` and the sync job enqueued in
 * one transaction before the 202. A delivery id seen before answers 200 with what it did, and does nothing again.
 * Answers: unknown connector, instance or no secret configured → 404; signature → 401 with the shared code
 * (src/http/signature-failures.ts), counted as the outcome of the same name; a body that names no
 * record → 422; storage down → 503 with Retry-After.
 */
import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { Counter } from 'prom-client';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import { errorBody } from '../../http/errors.ts';
import { signatureFailureResponse } from '../../http/signature-failures.ts';
import { connectorSync, syncKey } from '../../jobs/connector-sync.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { type Logger, currentContext } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { verifyStandardWebhook } from '../webhook-bridge/signatures.ts';
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
    const id = c.req.header('webhook-id');
    const checked = verifyStandardWebhook({ secrets: [secret], id, timestamp: c.req.header('webhook-timestamp'), signature: c.req.header('webhook-signature'), body, nowSeconds: Math.floor(deps.clock.now().getTime() / 1000) });
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
    const target = webhook.payload.safeParse(json);
    if (!target.success || !connector.models.some((model) => model.name === target.data.model)) {
      outcomes.inc({ connector: connector.id, outcome: 'invalid_payload' });
      return c.json(errorBody('invalid_payload', 'the body does not name a record this connector syncs', { issues: target.success ? [{ path: [], message: `unknown model ${target.data.model}` }] : target.error.issues.map((issue) => ({ path: issue.path, message: issue.message })) }), 422);
    }

    const source = `${connector.id}:${name}`;
    const headers = Object.fromEntries(KEPT_HEADERS.flatMap((header) => (c.req.header(header) ? [[header, c.req.header(header)!.slice(0, 500)]] : [])));
    try {
      const outcome = await deps.db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('inbound_events')
          .values({ source, delivery_id: id!, kind: `sync.${target.data.model}`, status: 'processed', headers: JSON.stringify(headers), body: Buffer.from(body), correlation_id: currentContext().requestId ?? null, received_at: deps.clock.now(), processed_at: deps.clock.now() })
          .onConflict((oc) => oc.columns(['source', 'delivery_id']).doNothing())
          .returning('id')
          .executeTakeFirst();
        if (!inserted) {
          const original = await trx.selectFrom('inbound_events').select(['id', 'result']).where('source', '=', source).where('delivery_id', '=', id!).executeTakeFirstOrThrow();
          return { duplicate: true as const, id: original.id, result: original.result };
        }
        const runId = randomUUID();
        const job = await deps.jobs.enqueue(
          connectorSync,
          { connector: connector.id, instanceId: row.id, model: target.data.model, runId, trigger: 'webhook' },
          { db: trx, singletonKey: syncKey(row.id, target.data.model), singletonSeconds: webhook.debounceSeconds, singletonNextSlot: true },
        );
        // No job: one is already waiting for this window's end, and it will read this change too.
        const result = { model: target.data.model, externalId: target.data.externalId, sync: job ? runId : 'already_queued' };
        await trx.updateTable('inbound_events').set({ result: JSON.stringify(result) }).where('id', '=', inserted.id).execute();
        return { duplicate: false as const, id: inserted.id, result };
      });
      outcomes.inc({ connector: connector.id, outcome: outcome.duplicate ? 'duplicate' : 'accepted' });
      return outcome.duplicate ? c.json({ id: outcome.id, status: 'accepted', duplicate: true, result: outcome.result }, 200) : c.json({ id: outcome.id, status: 'accepted', result: outcome.result }, 202);
    } catch (error) {
      deps.logger.error({ err: error, connector: connector.id }, 'connector webhook could not be stored');
      c.header('Retry-After', '5');
      return c.json(errorBody('storage_unavailable', 'the webhook could not be stored; send it again'), 503);
    }
  });
  return app;
}
