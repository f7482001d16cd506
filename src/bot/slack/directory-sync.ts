/**
 * Links a workspace's people ahead of their first command: `slack.directory-sync` reads the workspace
 * directory (users.list) and links every member whose confirmed Slack email is a ProjectX user's, by the rule
 * of link-by-email.ts. It is queued when the app is installed (oauth.ts), daily for every workspace
 * (`slack.directory-sync-all`), and at worker start for the SLACK_BOT_TOKEN workspace
 * (`enqueueDirectorySyncAtStart`).
 *
 * users.list is Tier 2 (about 20 calls a minute per workspace) and nothing sleeps: a run reads at most
 * `PAGES_PER_RUN` pages back to back and then continues as a new job, cursor and counts in its payload, once
 * those calls' share of the minute has passed; a 429 continues the same way after its Retry-After. One run
 * per workspace at a time: the queue is `stately` and keyed by tenant, and a continuation takes the place of
 * any run queued meanwhile.
 */
import { WebAPIHTTPError, WebAPIPlatformError, WebAPIRateLimitedError, type WebClient } from '@slack/web-api';
import { z } from 'zod';
import type { Config } from '../../config.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { JobRuntime } from '../../jobs/runtime.ts';
import { listActiveInstallations } from './installations.ts';
import type { SlackJobDeps } from './job-deps.ts';
import { LINK_SKIP_REASONS, type LinkSkipReason, linkSlackMember, logNotLinked, slackMemberSchema } from './link-by-email.ts';
import { SlackTokenError } from './tokens.ts';

/** Members per users.list call: Slack recommends no more than 200. */
export const DIRECTORY_PAGE_SIZE = 200;
/** Pages one run reads before it continues as a new job. */
export const PAGES_PER_RUN = 10;
/** Tier 2: 20 calls a minute. */
export const DIRECTORY_SECONDS_PER_CALL = 3;
/** A `ratelimited` answer without Retry-After: wait out a whole Tier 2 minute. */
const RATE_LIMITED_FALLBACK_SECONDS = 60;
/** Daily, at a quiet hour (UTC). */
export const DIRECTORY_SYNC_CRON = '37 4 * * *';

// Errors that another attempt cannot cure: the token or its scopes are gone.
const PERMANENT_ERRORS = new Set(['not_authed', 'invalid_auth', 'account_inactive', 'token_revoked', 'token_expired', 'no_permission', 'missing_scope', 'team_access_not_granted', 'org_login_required', 'ekm_access_denied', 'not_allowed_token_type', 'missing_argument']);

const countsSchema = z.object({
  pages: z.number().int().min(0),
  members: z.number().int().min(0),
  linked: z.number().int().min(0),
  alreadyLinked: z.number().int().min(0),
  skipped: z.partialRecord(z.enum(LINK_SKIP_REASONS), z.number().int().min(0)),
});
export type DirectoryCounts = z.output<typeof countsSchema>;

const pageSchema = z.object({
  members: z.array(z.unknown()).default([]),
  response_metadata: z.object({ next_cursor: z.string().nullish() }).nullish(),
});

export const slackDirectorySync = defineJob({
  name: 'slack.directory-sync',
  schema: z.object({
    /** The workspace: its team id, or the enterprise id on Enterprise Grid (the identity tenant). */
    tenant: z.string().min(1),
    /** Where a continuation picks up (users.list `next_cursor`); absent: from the start. */
    cursor: z.string().min(1).optional(),
    /** The run's counts so far, carried by continuations so the last one reports the whole run. */
    counts: countsSchema.optional(),
  }),
  policy: { queuePolicy: 'stately', retryLimit: 3, retryDelaySeconds: 60, retryBackoff: true, batchSize: 1 },
  handler: async ({ tenant, cursor: start, counts: carried }, { deps, logger }: JobContext<SlackJobDeps>) => {
    if (!deps.slack) return { skipped: 'slack not configured' };
    const counts: DirectoryCounts = carried ?? { pages: 0, members: 0, linked: 0, alreadyLinked: 0, skipped: {} };
    let client: WebClient;
    try {
      client = await deps.slack.tokens.clientFor(tenant);
    } catch (error) {
      if (!(error instanceof SlackTokenError)) throw error;
      logger.warn({ tenant, code: error.code }, 'slack directory sync stopped: no token for this workspace');
      return { ...counts, stopped: error.code };
    }

    /** Queues the rest of the run (from `cursor`) for `seconds` from now; this job completes. */
    const continueIn = async (seconds: number, cursor: string | undefined, why: 'paced' | 'rate_limited') => {
      const startAfter = new Date(deps.clock.now().getTime() + seconds * 1000);
      const id = await deps.jobs.enqueue(slackDirectorySync, { tenant, ...(cursor ? { cursor } : {}), counts }, { singletonKey: tenant, startAfter });
      if (!id) logger.info({ tenant }, 'another directory sync of this workspace is already queued; it runs instead of this continuation');
      logger.info({ tenant, why, seconds, pages: counts.pages, members: counts.members }, 'slack directory sync continues later');
      return { ...counts, continuesInSeconds: seconds, why };
    };

    let cursor = start;
    for (let page = 0; page < PAGES_PER_RUN; page++) {
      const answer = await listUsers(client, cursor);
      if (!answer.ok) {
        const { refusal } = answer;
        if (refusal.retryAfterSeconds !== undefined) return continueIn(refusal.retryAfterSeconds, cursor, 'rate_limited');
        if (refusal.permanent) {
          logger.warn({ tenant, code: refusal.code }, 'slack directory sync stopped: Slack refused users.list');
          return { ...counts, stopped: refusal.code };
        }
        throw Object.assign(new Error(refusal.message), { code: refusal.code });
      }
      counts.pages++;
      for (const raw of answer.value.members) {
        counts.members++;
        const member = slackMemberSchema.safeParse(raw);
        if (!member.success) {
          skip(counts, 'unreadable');
          continue;
        }
        const outcome = await linkSlackMember(deps, tenant, member.data, 'slack_directory');
        if (outcome.linked === true) counts.linked++;
        else if (outcome.linked === 'already') counts.alreadyLinked++;
        else {
          skip(counts, outcome.reason);
          // Most of a workspace is not in ProjectX: per member at debug, conflicts as warnings, a summary at info.
          logNotLinked(logger, outcome, { tenant, slackUserId: member.data.id }, true);
        }
      }
      cursor = answer.value.nextCursor;
      if (!cursor) {
        logger.info({ tenant, ...counts }, 'slack directory sync finished');
        return { ...counts, done: true };
      }
    }
    // The run's share of Tier 2 is spent: the next pages come after the time these calls are worth.
    return continueIn(PAGES_PER_RUN * DIRECTORY_SECONDS_PER_CALL, cursor, 'paced');
  },
});

const skip = (counts: DirectoryCounts, reason: LinkSkipReason) => {
  counts.skipped[reason] = (counts.skipped[reason] ?? 0) + 1;
};

/** One page of the directory; a 429 or a refused token is a value, a broken answer throws. */
async function listUsers(client: WebClient, cursor: string | undefined): Promise<Result<{ members: unknown[]; nextCursor: string | undefined }>> {
  try {
    const answer = pageSchema.parse(await client.users.list({ limit: DIRECTORY_PAGE_SIZE, ...(cursor ? { cursor } : {}) }));
    return ok({ members: answer.members, nextCursor: answer.response_metadata?.next_cursor || undefined });
  } catch (error) {
    if (error instanceof WebAPIRateLimitedError) return refuse('rate_limited', `Slack asked us to wait ${error.retryAfter} s`, { retryAfterSeconds: Math.max(1, error.retryAfter) });
    if (error instanceof WebAPIPlatformError) {
      const code = error.data.error;
      if (code === 'ratelimited') return refuse('rate_limited', 'Slack answered ratelimited', { retryAfterSeconds: RATE_LIMITED_FALLBACK_SECONDS });
      return refuse(`slack_${code}`, `Slack refused users.list: ${code}`, PERMANENT_ERRORS.has(code) ? { permanent: true } : {});
    }
    if (error instanceof WebAPIHTTPError) return refuse('slack_http_error', `Slack answered HTTP ${error.statusCode}`);
    throw error;
  }
}

export const slackDirectorySyncAll = defineJob({
  name: 'slack.directory-sync-all',
  schema: z.object({
    /** `bot_token`: only the SLACK_BOT_TOKEN workspace (worker start); `all`: installations too (the daily run). */
    workspaces: z.enum(['all', 'bot_token']).default('all'),
  }),
  policy: { queuePolicy: 'stately', retryLimit: 2, retryDelaySeconds: 60, batchSize: 1 },
  schedule: { cron: DIRECTORY_SYNC_CRON, payload: {} },
  handler: async ({ workspaces }, { deps, logger }: JobContext<SlackJobDeps>) => {
    if (!deps.slack) return { skipped: 'slack not configured' };
    const tenants = new Set<string>();
    const skipped: { tenant: string; reason: string }[] = [];
    // Installations' tokens are encrypted: without the keyring none can serve, so none is listed.
    if (workspaces === 'all' && deps.keyring) {
      for (const installation of await listActiveInstallations(deps.db)) {
        if (installation.isEnterpriseInstall) {
          // users.list with an org token needs a team_id per workspace (auth.teams.list); not done yet.
          skipped.push({ tenant: installation.enterpriseId, reason: 'org_wide_install' });
          continue;
        }
        tenants.add(installation.enterpriseId || installation.teamId);
      }
    }
    if (deps.config.SLACK_BOT_TOKEN) {
      // Which workspace the configured token belongs to: auth.test, here in a job, never on a request path.
      try {
        const auth = await (await deps.slack.tokens.clientFor()).auth.test();
        const tenant = auth.enterprise_id || auth.team_id;
        if (tenant) tenants.add(tenant);
      } catch (error) {
        const code = error instanceof WebAPIPlatformError ? `slack_${error.data.error}` : error instanceof WebAPIRateLimitedError ? 'rate_limited' : 'slack_unreachable';
        logger.warn({ code }, 'could not tell the SLACK_BOT_TOKEN workspace (auth.test); its directory sync waits for the next run');
        skipped.push({ tenant: 'SLACK_BOT_TOKEN', reason: code });
      }
    }
    let queued = 0;
    for (const tenant of tenants) {
      if (await deps.jobs.enqueue(slackDirectorySync, { tenant }, { singletonKey: tenant })) queued++;
    }
    logger.info({ workspaces: tenants.size, queued, skipped }, 'slack directory syncs queued');
    return { tenants: [...tenants], queued, skipped };
  },
});

/**
 * At worker start: the SLACK_BOT_TOKEN workspace's first directory sync (a single-workspace deployment has no
 * install to start one). At most one an hour however often workers restart; nothing without a bot token.
 */
export async function enqueueDirectorySyncAtStart(jobs: Pick<JobRuntime, 'enqueue'>, config: Pick<Config, 'SLACK_BOT_TOKEN'>): Promise<string | null> {
  if (!config.SLACK_BOT_TOKEN) return null;
  return jobs.enqueue(slackDirectorySyncAll, { workspaces: 'bot_token' }, { singletonKey: 'worker-start', singletonSeconds: 3600 });
}

/** The directory jobs (the Slack module lists them). */
export const slackDirectoryJobs = [slackDirectorySync, slackDirectorySyncAll] as const;
