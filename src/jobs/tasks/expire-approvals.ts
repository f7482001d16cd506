/** Every 5 minutes: pending approvals whose window has closed become expired (audited, notified). */
import { z } from 'zod';
import { expireTask } from '../../domain/approvals.ts';
import { getTask } from '../../domain/tasks.ts';
import { type JobContext, defineJob } from '../define-job.ts';
import type { JobDeps } from '../job-deps.ts';

export const expireApprovals = defineJob({
  name: 'tasks.expire-approvals',
  schema: z.object({}),
  policy: { queuePolicy: 'singleton', batchSize: 1, retryLimit: 2 },
  schedule: { cron: '*/5 * * * *', payload: {} },
  handler: async (_payload, { deps }: JobContext<JobDeps>) => {
    const now = deps.clock.now().toISOString();
    const due = await deps.db
      .selectFrom('tasks')
      .select('id')
      .where('state', '=', 'pending_approval')
      .where((eb) => eb(eb.cast(eb.ref('approval_policy', '->>').key('expiresAt'), 'timestamptz'), '<=', now))
      .limit(500)
      .execute();
    let expired = 0;
    for (const { id } of due) {
      const task = await getTask(deps.db, id);
      if (task && (await expireTask({ db: deps.db, events: deps.events, clock: deps.clock }, task))) expired++;
    }
    return { expired };
  },
});
