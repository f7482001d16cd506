/**
 * Daily at 06:00 UTC: evidence renewals (src/domain/renewals.ts): one task per control whose evidence expires
 * within 30 days, reminders at 30, 7 and 1 days and when overdue.
 *
 * Every minute: held evidence (the scanner was unreachable or over its limit, or a scan is required and no
 * scanner was configured) is scanned again when due, and recorded once clean (quarantine.ts).
 */
import { z } from 'zod';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import { runRenewals } from '../../domain/renewals.ts';
import { retryQuarantined } from './quarantine.ts';

export const evidenceQuarantineRetry = defineJob({
  name: 'evidence.quarantine-retry',
  schema: z.object({}),
  policy: { queuePolicy: 'singleton', batchSize: 1, retryLimit: 1 },
  schedule: { cron: '* * * * *', payload: {} },
  handler: async (_payload, { deps, logger }: JobContext<JobDeps>) => {
    const summary = await retryQuarantined({ db: deps.db, events: deps.events, clock: deps.clock }, deps.evidence);
    if (summary.recorded + summary.infected + summary.held > 0) logger.info(summary, 'scanned held evidence again');
    return summary;
  },
});

export const evidenceRenewals = defineJob({
  name: 'evidence.renewals',
  schema: z.object({}),
  policy: { queuePolicy: 'singleton', batchSize: 1, retryLimit: 3, retryDelaySeconds: 300 },
  schedule: { cron: '0 6 * * *', payload: {} },
  handler: async (_payload, { deps, logger }: JobContext<JobDeps>) => {
    const summary = await runRenewals({ db: deps.db, events: deps.events, clock: deps.clock });
    logger.info(summary, 'evidence renewals checked');
    return summary;
  },
});
