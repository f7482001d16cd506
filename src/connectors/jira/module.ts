/** Jira as a module: its connector (src/connectors/jira/index.ts), synced, pushed to and reconciled by the framework. */
import { registerCollectedGauge } from '../../metrics.ts';
import { defineModule } from '../../module.ts';
import { jiraIssueExtras } from './extras.ts';
import { jira } from './index.ts';
import { jiraBacklog } from './push.ts';

export const jiraModule = defineModule({
  id: 'jira',
  title: 'Jira',
  kind: 'connector',
  configuredBy: [
    ['JIRA_BASE_URL', 'JIRA_PROJECT_KEYS', 'JIRA_OAUTH_CLIENT_ID', 'JIRA_OAUTH_CLIENT_SECRET'],
    ['JIRA_BASE_URL', 'JIRA_PROJECT_KEYS', 'JIRA_PAT'],
  ],
  connector: jira,
  jobs: [jiraIssueExtras],
  metrics: ['jira_sync_backlog'],
  start(ctx) {
    // What waits to be done with Jira: writes not yet sent (rate limits, an open circuit) and webhook deliveries not yet fetched.
    registerCollectedGauge(ctx.metrics, { name: 'jira_sync_backlog', help: 'Jira work waiting: writes to Jira not yet sent, and webhook deliveries not yet handled', labelNames: ['kind'] as const }, async () =>
      (await jiraBacklog(ctx.db)).map((row) => ({ labels: { kind: row.kind }, value: row.count })),
    );
  },
});
