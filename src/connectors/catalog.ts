/**
 * What each integration needs from the environment, and whether this version has it at all. Built
 * integrations are the modules (src/modules.ts) that are not `platform`: each says which sets of variables
 * configure it. Integrations the design promises but this version does not have are listed in `NOT_BUILT`, so
 * that start-up, `/projectx status` and `.env.example` say "not built in this version" instead of calling them
 * configured; when one is built, its entry leaves this list and its module joins src/modules.ts (a test checks
 * that no id is in both).
 */
import type { Config } from '../config.ts';
import type { ServiceModule } from '../module.ts';

type Variable = keyof Config;

export interface NotBuilt {
  id: string;
  title: string;
  /** The variables it will read (marked "not built in this version" in .env.example; ignored when set). */
  variables: readonly Variable[];
}

export const NOT_BUILT: readonly NotBuilt[] = [
  { id: 'teams', title: 'Microsoft Teams', variables: ['MICROSOFT_APP_ID', 'MICROSOFT_APP_PASSWORD', 'MICROSOFT_APP_TENANT_ID'] },
  { id: 'jira', title: 'Jira', variables: ['JIRA_BASE_URL', 'JIRA_OAUTH_CLIENT_ID', 'JIRA_OAUTH_CLIENT_SECRET', 'JIRA_WEBHOOK_SECRET', 'JIRA_AUTH_MODE', 'JIRA_PAT', 'JIRA_USER_EMAIL'] },
  { id: 'onetrust', title: 'OneTrust', variables: ['ONETRUST_BASE_URL', 'ONETRUST_API_TOKEN', 'ONETRUST_REGION', 'ONETRUST_TIMEOUT_SECONDS'] },
  { id: 'evidence-s3', title: 'Evidence store: S3', variables: ['EVIDENCE_S3_BUCKET', 'AWS_ROLE_ARN', 'AWS_EXTERNAL_ID'] },
  { id: 'evidence-sharepoint', title: 'Evidence store: SharePoint', variables: ['SHAREPOINT_SITE_ID', 'SHAREPOINT_LIBRARY_ID'] },
  { id: 'evidence-google-drive', title: 'Evidence store: Google Drive', variables: ['EVIDENCE_GOOGLE_DRIVE_FOLDER_ID'] },
];

export type IntegrationState = 'configured' | 'not_configured' | 'not_built';

export interface IntegrationStatus {
  id: string;
  title: string;
  state: IntegrationState;
  /** Not configured: the variables to set for the closest option. */
  missing: Variable[];
  /** Not built: the variables that are set anyway (and ignored). */
  ignored: Variable[];
  /** The module, when built. */
  module: ServiceModule | undefined;
}

/** Every integration, built ones first in module order: configured or what it still needs, then the unbuilt ones. */
export function describeIntegrations(config: Config, modules: readonly ServiceModule[]): IntegrationStatus[] {
  const built = modules
    .filter((module) => module.kind !== 'platform')
    .map((module): IntegrationStatus => {
      const gaps = module.configuredBy.map((set) => set.filter((variable) => config[variable] === undefined));
      const closest = gaps.reduce<Variable[] | undefined>((best, gap) => (best === undefined || gap.length < best.length ? gap : best), undefined) ?? [];
      return { id: module.id, title: module.title, state: closest.length === 0 ? 'configured' : 'not_configured', missing: closest, ignored: [], module };
    });
  const ids = new Set(modules.map((module) => module.id));
  const unbuilt = NOT_BUILT.filter((entry) => !ids.has(entry.id)).map(
    (entry): IntegrationStatus => ({ id: entry.id, title: entry.title, state: 'not_built', missing: [], ignored: entry.variables.filter((variable) => config[variable] !== undefined), module: undefined }),
  );
  return [...built, ...unbuilt];
}
