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
  { id: 'onetrust', title: 'OneTrust', variables: ['ONETRUST_BASE_URL', 'ONETRUST_API_TOKEN', 'ONETRUST_REGION', 'ONETRUST_TIMEOUT_SECONDS'] },
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

/**
 * Integrations that are half configured: some of the variables that configure it are set, but no complete set
 * (e.g. `SLACK_SIGNING_SECRET` without `SLACK_BOT_TOKEN` and without the multi-workspace install settings,
 * which would answer every signed request with an error). One line per integration, naming what is set and
 * what is missing for each way to complete it; the service refuses to start with any.
 */
export function halfConfigured(config: Config, modules: readonly ServiceModule[]): string[] {
  const problems: string[] = [];
  for (const module of modules) {
    if (module.configuredBy.length === 0) continue;
    const mentioned = [...new Set(module.configuredBy.flat())];
    const set = mentioned.filter((variable) => config[variable] !== undefined);
    if (set.length === 0) continue;
    // Ways to complete it that build on what is set, fewest missing first.
    const gaps = module.configuredBy
      .filter((option) => option.some((variable) => set.includes(variable)))
      .map((option) => option.filter((variable) => config[variable] === undefined))
      .sort((a, b) => a.length - b.length);
    if (gaps.some((gap) => gap.length === 0)) continue;
    const ways = gaps.map((gap) => gap.join(' and '));
    problems.push(`${module.title} is half configured: ${set.join(', ')} ${set.length === 1 ? 'is' : 'are'} set, but ${ways[0]} ${gaps[0]!.length === 1 ? 'is' : 'are'} missing${ways.length > 1 ? ` (or set ${ways.slice(1).join(', or ')})` : ''}`);
  }
  return problems;
}

/** Thrown at start-up when an integration is half configured (the CLI prints the problems and exits 1). */
export class HalfConfigured extends Error {
  readonly code = 'half_configured';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Configuration problems (fix these environment variables):\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'HalfConfigured';
    this.problems = problems;
  }
}
