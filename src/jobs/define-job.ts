/**
 * The job contract. A job is declared once, as data plus a handler:
 *
 * @example
 * export const pruneInboundEvents = defineJob({
 *   name: 'maintenance.prune-inbound-events',
 *   schema: z.object({ olderThanDays: z.number().int().positive() }),
 *   policy: { retryLimit: 3, batchSize: 1 },
 *   schedule: { cron: '17 3 * * *', payload: { olderThanDays: 30 } },
 *   handler: async (payload, { deps, logger }) => { ... },
 * });
 *
 * Payloads are validated with the schema when enqueued (a bad payload is a bug: it throws) and when run (a
 * payload that can never pass goes straight to the dead-letter queue instead of being retried).
 */
import type { z } from 'zod';
import type { Logger } from '../logger.ts';

export type QueuePolicyName = 'standard' | 'short' | 'singleton' | 'stately';

export interface JobPolicy {
  /** pg-boss queue policy: `singleton` allows one active job per singletonKey, `stately` one queued + one active. */
  queuePolicy: QueuePolicyName;
  /** Retries after the first attempt before the job is dead-lettered. */
  retryLimit: number;
  /** First retry delay; doubled (with jitter) per attempt when `retryBackoff`. */
  retryDelaySeconds: number;
  retryBackoff: boolean;
  retryDelayMaxSeconds: number;
  /** How long one attempt may run before pg-boss considers it lost and retries it. */
  expireInSeconds: number;
  /**
   * A running job's worker refreshes its heartbeat every half of this; a job whose heartbeat is older (its
   * process died: SIGKILL, OOM, a lost host) is failed and retried at the next monitor pass (every 15 s),
   * instead of waiting out `expireInSeconds`.
   */
  heartbeatSeconds: number;
  /** Jobs fetched per poll and run concurrently by one worker. */
  batchSize: number;
  /** Workers per process for this queue. */
  localConcurrency: number;
  /** Poll interval when LISTEN/NOTIFY is not available. */
  pollingIntervalSeconds: number;
  /**
   * Poll interval while NOTIFY is active. NOTIFY wakes workers only for new jobs, not for retries and delayed
   * jobs coming due, so this bounds how late those start (pg-boss's default, 30 s, is too late for retries).
   */
  notifyPollingIntervalSeconds: number;
}

/**
 * Defaults chosen deliberately (pg-boss's own are batchSize 1 with 2 s polling, ~0.5 job/s for a lone job):
 * NOTIFY wakes a worker the moment a job commits (p50 ≈ 6 ms here), polling every 5 s picks up retries and
 * delayed jobs (every 2 s when NOTIFY is unavailable);
 * batches of 10 run concurrently (≈ 3.7k trivial jobs/s measured); 5 retries with exponential backoff from
 * 5 s capped at 15 min, then the dead-letter queue; a job whose worker died is retried within about 40 s
 * (heartbeat 20 s, monitor pass every 15 s, first retry after 5 s).
 */
export const DEFAULT_POLICY: JobPolicy = {
  queuePolicy: 'standard',
  retryLimit: 5,
  retryDelaySeconds: 5,
  retryBackoff: true,
  retryDelayMaxSeconds: 900,
  expireInSeconds: 900,
  heartbeatSeconds: 20,
  batchSize: 10,
  localConcurrency: 1,
  pollingIntervalSeconds: 2,
  notifyPollingIntervalSeconds: 5,
};

export interface JobContext<Deps> {
  deps: Deps;
  /** A child logger carrying the job name, id and the correlation id of whatever enqueued it. */
  logger: Logger;
  /** Aborted when the job expires or the worker stops. */
  signal: AbortSignal;
  job: { id: string; name: string; retryCount: number };
}

export interface JobDefinition<Schema extends z.ZodType = z.ZodType, Deps = unknown> {
  name: string;
  schema: Schema;
  policy?: Partial<JobPolicy>;
  /** Recurring runs (worker role only); cron in UTC. */
  schedule?: { cron: string; payload: z.input<Schema> };
  handler: (payload: z.output<Schema>, context: JobContext<Deps>) => Promise<unknown>;
}

/** Identity function that fixes the payload type from the schema; see the module comment. */
export function defineJob<Schema extends z.ZodType, Deps>(definition: JobDefinition<Schema, Deps>): JobDefinition<Schema, Deps> {
  return definition;
}

export function resolvePolicy(definition: Pick<JobDefinition, 'policy'>): JobPolicy {
  return { ...DEFAULT_POLICY, ...definition.policy };
}

/** Name of the dead-letter queue of `queue`. */
export function deadLetterName(queue: string): string {
  return `${queue}.dead`;
}
