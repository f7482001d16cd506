/**
 * What each integration needs from the environment, declared as data. The service logs, at start, which are
 * configured and, for the others, exactly what to set. The connector registry (src/connectors/sdk) will grow
 * from this list; a test checks that every entry names real config variables.
 */
import type { Config } from '../config.ts';

type Variable = keyof Config;

export interface IntegrationRequirement {
  id: string;
  title: string;
  /** Any one of these sets, fully present, enables the integration. */
  anyOf: readonly (readonly Variable[])[];
}

export const INTEGRATIONS: readonly IntegrationRequirement[] = [
  { id: 'slack', title: 'Slack', anyOf: [['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN'], ['SLACK_SIGNING_SECRET', 'SLACK_CLIENT_ID', 'SLACK_CLIENT_SECRET'], ['SLACK_APP_LEVEL_TOKEN', 'SLACK_BOT_TOKEN']] },
  { id: 'teams', title: 'Microsoft Teams', anyOf: [['MICROSOFT_APP_ID', 'MICROSOFT_APP_PASSWORD']] },
  { id: 'servicenow', title: 'ServiceNow', anyOf: [['SERVICENOW_BASE_URL', 'SERVICENOW_OAUTH_CLIENT_ID', 'SERVICENOW_OAUTH_CLIENT_SECRET'], ['SERVICENOW_BASE_URL', 'SERVICENOW_USER', 'SERVICENOW_PASSWORD']] },
  { id: 'jira', title: 'Jira', anyOf: [['JIRA_BASE_URL', 'JIRA_OAUTH_CLIENT_ID', 'JIRA_OAUTH_CLIENT_SECRET'], ['JIRA_BASE_URL', 'JIRA_PAT']] },
  { id: 'onetrust', title: 'OneTrust', anyOf: [['ONETRUST_BASE_URL', 'ONETRUST_API_TOKEN']] },
  { id: 'email', title: 'Email (SMTP)', anyOf: [['SMTP_HOST', 'SMTP_FROM_ADDRESS']] },
  { id: 'generic-webhook', title: 'Generic partner webhook', anyOf: [['GENERIC_WEBHOOK_SECRET']] },
  { id: 'evidence-s3', title: 'Evidence store: S3', anyOf: [['EVIDENCE_S3_BUCKET']] },
  { id: 'evidence-sharepoint', title: 'Evidence store: SharePoint', anyOf: [['SHAREPOINT_SITE_ID', 'SHAREPOINT_LIBRARY_ID']] },
  { id: 'evidence-google-drive', title: 'Evidence store: Google Drive', anyOf: [['EVIDENCE_GOOGLE_DRIVE_FOLDER_ID']] },
];

export interface IntegrationStatus {
  id: string;
  title: string;
  configured: boolean;
  /** When not configured: the variables to set for the closest option. */
  missing: Variable[];
}

export function describeIntegrations(config: Config, integrations: readonly IntegrationRequirement[] = INTEGRATIONS): IntegrationStatus[] {
  return integrations.map(({ id, title, anyOf }) => {
    const gaps = anyOf.map((set) => set.filter((variable) => config[variable] === undefined));
    const closest = gaps.reduce((best, gap) => (gap.length < best.length ? gap : best));
    return { id, title, configured: closest.length === 0, missing: closest };
  });
}
