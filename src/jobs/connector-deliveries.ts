/**
 * `connector.deliveries`: the webhook deliveries of one instance waiting to be handled (status `received`),
 * handled together at the end of the connector's debounce window (one job per window: the webhook route
 * enqueues it with the instance as singleton key). For each model named, the records the deliveries name are
 * fetched from the system by id (`fetchByIds`: not its search index, which lags) and stored like a sync page
 * (ledger, content hash, the model's domain effects), so an unchanged record is no change; the ids the system
 * no longer returns are flagged missing (`flagMissing`, with the model's effects). Then the deliveries are
 * marked processed with what came of them.
 *
 * A failure is retried with backoff, 10 attempts in all; after the last, the deliveries are marked `failed` with
 * the error (the job itself goes to the dead-letter queue), where `projectx connectors deliveries list` shows
 * them and `… replay <id>` puts them back in line. A rate limit or an outage the system announces is waited out
 * (the job re-enqueues itself for then), spending no attempt.
 */
import { z } from 'zod';
import { flagMissing, storeRecords } from '../connectors/sdk/ledger.ts';
import type { Logger } from '../logger.ts';
import { ConnectorJobError, withConnectorInstance } from './connector-context.ts';
import { defineJob } from './define-job.ts';
import type { JobDeps } from './job-deps.ts';

export const DELIVERY_RETRY_LIMIT = 9;
/** Deliveries handled by one job; more wait for the next, enqueued at once. */
const BATCH = 500;
/** Ids per fetch (Jira's bulk fetch takes 100). */
const FETCH_SIZE = 100;

export const deliveriesKey = (instanceId: string) => `deliveries/${instanceId}`;

export const connectorDeliveries = defineJob({
  name: 'connector.deliveries',
  schema: z.object({ connector: z.string().min(1), instanceId: z.uuid() }),
  policy: { retryLimit: DELIVERY_RETRY_LIMIT, retryDelaySeconds: 10, retryBackoff: true, retryDelayMaxSeconds: 600, expireInSeconds: 900, batchSize: 1 },
  handler: async (job, { deps, logger, job: meta }: { deps: JobDeps; logger: Logger; job: { retryCount: number } }) => {
    const connector = deps.connectors.find((candidate) => candidate.id === job.connector);
    if (!connector) throw new ConnectorJobError('unknown_connector', `no connector ${job.connector}`);
    return withConnectorInstance(deps, logger, connector, job.instanceId, async ({ instance, client, runtime }) => {
      const source = `${connector.id}:${instance.name}`;
      const waiting = await deps.db.selectFrom('inbound_events').select(['id', 'kind', 'result']).where('source', '=', source).where('status', '=', 'received').orderBy('received_at').limit(BATCH).execute();
      if (waiting.length === 0) return { deliveries: 0 };
      const named = new Map<string, Set<string>>();
      for (const delivery of waiting) {
        const result = (delivery.result ?? {}) as { model?: unknown; externalId?: unknown };
        if (typeof result.model !== 'string' || typeof result.externalId !== 'string') continue;
        const ids = named.get(result.model) ?? new Set<string>();
        ids.add(result.externalId);
        named.set(result.model, ids);
      }
      const outcome: Record<string, { fetched: number; changed: number; missing: string[] }> = {};
      try {
        for (const [modelName, idSet] of named) {
          const model = connector.models.find((candidate) => candidate.name === modelName);
          if (!model?.fetchByIds) throw new ConnectorJobError('unknown_model', `${connector.id} cannot fetch ${modelName} records by id`);
          const ids = [...idSet];
          const summary = { fetched: 0, changed: 0, missing: [] as string[] };
          for (let index = 0; index < ids.length; index += FETCH_SIZE) {
            const answer = await model.fetchByIds({ client, instance, ids: ids.slice(index, index + FETCH_SIZE) });
            if (!answer.ok) {
              if (answer.failure.kind === 'deferred') {
                // The system asked for time: come back then, as this same job's successor (no attempt spent).
                await deps.jobs.enqueue(connectorDeliveries, job, { singletonKey: deliveriesKey(instance.id), startAfter: answer.failure.retryAt });
                return { deferredUntil: answer.failure.retryAt.toISOString() };
              }
              throw new ConnectorJobError(answer.failure.code, `fetching ${connector.id} ${modelName} records failed (${answer.failure.code})`);
            }
            const now = deps.clock.now();
            await deps.db.transaction().execute(async (trx) => {
              const stored = await storeRecords(trx, { runtime, connector, instance, runId: null }, model, answer.records, now);
              summary.fetched += answer.records.length;
              summary.changed += stored.created + stored.updated;
              summary.missing.push(...(await flagMissing(trx, { runtime, instance, model, externalIds: answer.missing, now })));
            });
          }
          outcome[modelName] = summary;
        }
      } catch (error) {
        if (meta.retryCount >= DELIVERY_RETRY_LIMIT) {
          // Out of attempts: the deliveries wait for an operator (listed, replayable), not for a job.
          const code = error instanceof ConnectorJobError ? error.code : 'internal_error';
          await deps.db
            .updateTable('inbound_events')
            .set({ status: 'failed', error: JSON.stringify({ code, message: error instanceof Error ? error.message.slice(0, 500) : String(error), attempts: meta.retryCount + 1 }) })
            .where('id', 'in', waiting.map((delivery) => delivery.id))
            .where('status', '=', 'received')
            .execute();
        }
        throw error;
      }
      const now = deps.clock.now();
      await deps.db
        .updateTable('inbound_events')
        .set({ status: 'processed', processed_at: now, error: null })
        .where('id', 'in', waiting.map((delivery) => delivery.id))
        .where('status', '=', 'received')
        .execute();
      if (waiting.length === BATCH) await deps.jobs.enqueue(connectorDeliveries, job, { singletonKey: deliveriesKey(instance.id) });
      return { deliveries: waiting.length, models: outcome };
    });
  },
});
