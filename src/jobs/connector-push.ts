/**
 * `connector.push`: sends an instance's pending writes in order (src/connectors/sdk/push.ts does the work).
 * One drainer per instance at a time (the `singleton` policy, keyed by instance): that is what keeps the order.
 * When it has to wait (an open circuit, a rate limit, a backoff) it re-enqueues itself for then and completes;
 * nothing sleeps in a worker.
 */
import { z } from 'zod';
import { createBreaker } from '../connectors/sdk/breaker.ts';
import { drainPushes } from '../connectors/sdk/push.ts';
import type { Logger } from '../logger.ts';
import { withConnectorInstance } from './connector-context.ts';
import { defineJob } from './define-job.ts';
import type { JobDeps } from './job-deps.ts';

const payload = z.object({ connector: z.string().min(1), instanceId: z.uuid() });

export const connectorPush = defineJob({
  name: 'connector.push',
  schema: payload,
  policy: { queuePolicy: 'singleton', retryLimit: 10, retryDelaySeconds: 10, retryBackoff: true, retryDelayMaxSeconds: 600, expireInSeconds: 900, batchSize: 1, localConcurrency: 2 },
  handler: async (job, { deps, logger }: { deps: JobDeps; logger: Logger }) => {
    const connector = deps.connectors.find((candidate) => candidate.id === job.connector);
    if (!connector?.push) return { skipped: 'no_push' };
    // A disabled instance keeps its writes waiting; enabling it again (and the minute's sweep) sends them.
    return withConnectorInstance(deps, logger, connector, job.instanceId, async ({ instance, client, runtime }) => {
      const breaker = createBreaker({ ...runtime, instance, connector, direction: 'write' });
      const outcome = await drainPushes({ runtime, connector, instance, client, breaker, clock: deps.clock });
      if (outcome.next) await wakePushes(deps.jobs, { connector: connector.id, instanceId: instance.id }, outcome.next);
      if (outcome.waiting === 'circuit_open') logger.warn({ instance: instance.id, retryAt: outcome.next }, `${connector.title} writes wait: circuit open (degraded mode)`);
      return outcome;
    });
  },
});

/** Wakes an instance's drainer (now, or at `at`). */
export async function wakePushes(jobs: JobDeps['jobs'], target: { connector: string; instanceId: string }, at?: Date): Promise<void> {
  await jobs.enqueue(connectorPush, target, { singletonKey: target.instanceId, ...(at ? { startAfter: at } : {}) });
}

/**
 * `connector.push-sweep`, every minute: wakes the sender of every instance with a write that is due. A write
 * recorded by a routing job that died before waking its sender, or one whose sender ran out of its own
 * retries, would otherwise wait for the next unrelated event.
 */
export const connectorPushSweep = defineJob({
  name: 'connector.push-sweep',
  schema: z.object({}),
  policy: { queuePolicy: 'singleton', retryLimit: 1, batchSize: 1 },
  schedule: { cron: '* * * * *', payload: {} },
  handler: async (_payload, { deps }: { deps: JobDeps }) => {
    const due = await deps.db
      .selectFrom('integration_pushes')
      .innerJoin('integration_configs', 'integration_configs.id', 'integration_pushes.config_id')
      .select(['integration_configs.type', 'integration_pushes.config_id'])
      .distinct()
      .where('integration_pushes.status', '=', 'pending')
      .where('integration_pushes.next_attempt_at', '<=', deps.clock.now())
      .where('integration_configs.enabled', '=', true)
      .execute();
    for (const row of due) await wakePushes(deps.jobs, { connector: row.type, instanceId: row.config_id });
    return { woken: due.length };
  },
});
