/**
 * App Home, published by a job when a user opens it: the personal home of src/bot/home.ts as Block Kit.
 */
import { z } from 'zod';
import { findUserByIdentity } from '../../domain/users.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { SlackJobDeps } from './job-deps.ts';
import { renderHome } from '../home.ts';
import { toBlocks } from './block-kit.ts';

export const slackPublishHome = defineJob({
  name: 'slack.publish-home',
  schema: z.object({ slackUserId: z.string(), tenant: z.string() }),
  policy: { retryDelaySeconds: 5, retryLimit: 3 },
  handler: async ({ slackUserId, tenant }, { deps }: JobContext<SlackJobDeps>) => {
    if (!deps.slack) throw Object.assign(new Error('Slack is not configured on this worker (SLACK_BOT_TOKEN)'), { code: 'slack_not_configured' });
    const user = await findUserByIdentity(deps.db, { surface: 'slack', tenant, externalId: slackUserId });
    const home = await renderHome(deps.db, deps.integrations, user, 'Slack');
    const client = await deps.slack.tokens.clientFor(tenant);
    await client.views.publish({ user_id: slackUserId, view: { type: 'home', blocks: toBlocks(home) as never } });
    return { linked: Boolean(user) };
  },
});
