/** What Teams' jobs get: the shared job dependencies plus Teams, when this worker can reach it (the Teams module's `jobDeps`). */
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { TeamsAdapter } from './adapter.ts';
import type { TeamsSender } from './sender.ts';

export interface TeamsJobDeps extends JobDeps {
  /** Undefined when this worker has no app password (it can authenticate activities but not send). */
  teams?: { sender: TeamsSender; adapter: TeamsAdapter } | undefined;
}
