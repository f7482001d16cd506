/**
 * Daily: delete processed inbound deliveries older than the retention. Failed and quarantined ones stay until
 * an operator deals with them. Delivery ids must outlive every sender's retry window (Slack: minutes; Standard
 * Webhooks: up to ~3 days), so retention is at least 3 days.
 */
import { sql } from 'kysely';
import { z } from 'zod';
import { type JobContext, defineJob } from '../define-job.ts';
import type { JobDeps } from '../job-deps.ts';

export const pruneInboundEvents = defineJob({
  name: 'maintenance.prune-inbound-events',
  schema: z.object({ olderThanDays: z.number().int().min(3).max(3650) }),
  policy: { queuePolicy: 'singleton', batchSize: 1, retryLimit: 3 },
  schedule: { cron: '17 3 * * *', payload: { olderThanDays: 30 } },
  handler: async (payload, { deps, logger }: JobContext<JobDeps>) => {
    const cutoff = new Date(deps.clock.now().getTime() - payload.olderThanDays * 86_400_000);
    const result = await deps.db
      .deleteFrom('inbound_events')
      .where('status', '=', 'processed')
      .where('received_at', '<', sql<Date>`${cutoff}`)
      .executeTakeFirst();
    const deleted = Number(result.numDeletedRows);
    logger.info({ deleted, cutoff }, 'pruned processed inbound events');
    return { deleted };
  },
});
