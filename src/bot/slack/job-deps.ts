/** What Slack's jobs get: the shared job dependencies plus Slack, when this worker can reach it (the Slack module's `jobDeps`). */
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { SlackSender } from './sender.ts';
import type { SlackTokens } from './tokens.ts';

export interface SlackJobDeps extends JobDeps {
  /** Undefined when there is no bot token and no installation store (Slack not configured on this worker). */
  slack?: { sender: SlackSender; tokens: SlackTokens } | undefined;
}
