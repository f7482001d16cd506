/** Jira as a module: its connector (src/connectors/jira/index.ts), synced, pushed to and reconciled by the framework. */
import { defineModule } from '../../module.ts';
import { jira } from './index.ts';

export const jiraModule = defineModule({
  id: 'jira',
  title: 'Jira',
  kind: 'connector',
  configuredBy: [
    ['JIRA_BASE_URL', 'JIRA_PROJECT_KEYS', 'JIRA_OAUTH_CLIENT_ID', 'JIRA_OAUTH_CLIENT_SECRET'],
    ['JIRA_BASE_URL', 'JIRA_PROJECT_KEYS', 'JIRA_PAT'],
  ],
  connector: jira,
});
