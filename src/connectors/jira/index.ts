/**
 * The Jira connector (Cloud and Data Center): remediation tasks kept in step with the issues of the configured
 * projects. Issues are pulled every 5 minutes (JIRA_SYNC_INTERVAL_SECONDS) by `(updated, id)` and reconciled
 * nightly (ENABLE_JIRA_DELTA_RECON). Credentials: OAuth 2.0 3LO (an admin's consent, a rotating refresh token),
 * a Cloud API token with its user's email, or a Data Center personal access token. Runbook RB-003; alerts to
 * #alerts-jira.
 */
import type { Config } from '../../config.ts';
import { defineConnector } from '../sdk/contract.ts';
import { type JiraClient, type JiraSettings, createJiraClient, jiraSettings } from './client.ts';
import { jiraConsent } from './oauth.ts';
import { jiraPush } from './push.ts';
import { sprints } from './sprints.ts';
import { issues } from './sync.ts';
import { jiraWebhook } from './webhook.ts';

export const jira = defineConnector<JiraSettings, JiraClient>({
  id: 'jira',
  title: 'Jira',
  runbookId: 'RB-003',
  auth: ['oauth2_authorization_code', 'basic', 'personal_access_token'],
  settings: jiraSettings,
  credentialFields: ['client_secret', 'api_token', 'webhook_secret'],
  alertChannel: 'alerts-jira',
  envSettings: ['baseUrl', 'deployment', 'authMode', 'email', 'oauth', 'projectKeys', 'jqlFilter', 'reconcile', 'syncEverySeconds'],
  fromEnv(config: Config) {
    const mode = jiraAuthMode(config);
    if (!config.JIRA_BASE_URL || !config.JIRA_PROJECT_KEYS || !mode) return undefined;
    const oauth = mode === 'oauth';
    // Only what the environment says (envSettings): the rest of the instance's settings are the operator's.
    return {
      name: 'default',
      settings: {
        baseUrl: config.JIRA_BASE_URL,
        deployment: oauth || config.JIRA_USER_EMAIL ? 'cloud' : 'datacenter',
        authMode: mode,
        ...(!oauth && config.JIRA_USER_EMAIL ? { email: config.JIRA_USER_EMAIL } : {}),
        ...(oauth ? { oauth: { clientId: config.JIRA_OAUTH_CLIENT_ID, authUrl: config.ATLASSIAN_AUTH_URL, apiUrl: config.ATLASSIAN_API_URL, ...(config.PUBLIC_URL ? { publicUrl: config.PUBLIC_URL } : {}) } } : {}),
        projectKeys: config.JIRA_PROJECT_KEYS,
        ...(config.JIRA_JQL_FILTER ? { jqlFilter: config.JIRA_JQL_FILTER } : {}),
        reconcile: config.ENABLE_JIRA_DELTA_RECON,
        syncEverySeconds: config.JIRA_SYNC_INTERVAL_SECONDS,
      } as JiraSettings,
      credentials: {
        ...(oauth ? { client_secret: config.JIRA_OAUTH_CLIENT_SECRET! } : { api_token: config.JIRA_PAT! }),
        ...(config.JIRA_WEBHOOK_SECRET ? { webhook_secret: config.JIRA_WEBHOOK_SECRET } : {}),
      },
    };
  },
  createClient: (instance, runtime) => createJiraClient(instance, runtime),
  models: [issues, sprints],
  push: jiraPush,
  scheduleDefaults: (settings) => [{ model: 'issue', everySeconds: settings.syncEverySeconds, reconcile: settings.reconcile }],
  consent: jiraConsent,
  authGuidance: (settings) =>
    settings.authMode === 'oauth'
      ? 'The account that consented may have lost access to the synced projects (403) or its consent was revoked (401): an admin re-runs the OAuth flow with projectx connectors authorize jira, signed in as an account that can browse and edit them.'
      : settings.email
        ? 'Check the API token of JIRA_USER_EMAIL (revoked or expired?) and that this account can browse and edit the synced projects.'
        : 'Check the personal access token (JIRA_PAT: revoked or expired?) and that its user can browse and edit the synced projects.',
  webhook: jiraWebhook,
});

/** `oauth` or `pat` as JIRA_AUTH_MODE says, else as the variables set imply; undefined when neither is complete. */
export function jiraAuthMode(config: Config): 'oauth' | 'pat' | undefined {
  const oauth = config.JIRA_OAUTH_CLIENT_ID !== undefined && config.JIRA_OAUTH_CLIENT_SECRET !== undefined;
  const pat = config.JIRA_PAT !== undefined;
  if (config.JIRA_AUTH_MODE === 'oauth') return oauth ? 'oauth' : undefined;
  if (config.JIRA_AUTH_MODE === 'pat') return pat ? 'pat' : undefined;
  return oauth ? 'oauth' : pat ? 'pat' : undefined;
}
