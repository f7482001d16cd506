/**
 * Processing jobs staged with their deliveries (a transactional outbox in front of pg-boss).
 *
 * The partner webhook accept is the service's hottest durable write. Enqueueing its pg-boss job in the accept
 * transaction made every group-committed batch four round trips (BEGIN, the deliveries, pg-boss's job insert,
 * COMMIT), and pg-boss's insert alone cost PostgreSQL more than the deliveries it named (bench/webhooks: about
 * 370 µs of PostgreSQL CPU per delivery with it, 100 µs without). Instead the accept writes its deliveries and
 * one row here naming them, in one autocommit statement, so "committed" still covers the delivery and its
 * processing (nothing accepted can be left without a job); this relay then turns staged rows into jobs, many
 * batches at a time, deleting each row in the transaction that enqueues its job (so each is enqueued exactly
 * once, even with several processes relaying: `FOR UPDATE SKIP LOCKED`).
 *
 * When it runs: shortly after a poke (the accept pokes after each commit; the pause gathers a burst's batches
 * into few jobs), every `sweepMs` (rows left by a process that died between its commit and its relay), at
 * start, and on stop (after the HTTP server stopped accepting, before the job runtime stops). A failed relay
 * leaves its rows where they are for the next run; deliveries waiting too long show in
 * `projectx webhooks dead list` like any delivery still unprocessed after 30 minutes.
 */
import { sql } from 'kysely';
import type { z } from 'zod';
import type { Db } from '../db/database.ts';
import { type Logger, outsideContext } from '../logger.ts';
import type { JobDefinition } from './define-job.ts';
import type { JobRuntime } from './runtime.ts';

/** The jobs the outbox can stage: their payload is the deliveries they process. */
export type InboundJob = JobDefinition<z.ZodType<{ inboundIds: string[] }>, any>;

export interface InboundOutbox {
  /** Deliveries were staged: relay soon. */
  poke(): void;
  /** Relays everything staged now; resolves with how many deliveries were handed to jobs. */
  drain(): Promise<number>;
  /** Stops the timers and relays what is left (once; later calls wait for the same). */
  close(): Promise<void>;
}

export interface InboundOutboxOptions {
  db: Db;
  jobs: Pick<JobRuntime, 'enqueue'>;
  definitions: readonly InboundJob[];
  logger: Logger;
  /** How long a poke waits, gathering more staged rows into the same jobs (default 100 ms: under load a relay is four round trips on the accepting process's event loop ten times a second, not forty). */
  gatherMs?: number;
  /** How often staged rows are looked for without a poke (default 5 s). */
  sweepMs?: number;
  /** Deliveries per job (default 100: one job processes its deliveries one after another). */
  jobSize?: number;
}

/** Outbox rows taken per relay transaction. */
const ROWS_PER_RELAY = 500;

export function createInboundOutbox(options: InboundOutboxOptions): InboundOutbox {
  const { db, jobs, logger } = options;
  const byName = new Map(options.definitions.map((definition) => [definition.name, definition]));
  const gatherMs = options.gatherMs ?? 100;
  const jobSize = options.jobSize ?? 100;
  let pending: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let again = false;
  let closing: Promise<void> | undefined;

  /** One transaction: take staged rows, enqueue their jobs, delete the rows. Returns the deliveries relayed. */
  const relayOnce = async (): Promise<{ rows: number; deliveries: number }> =>
    db.transaction().execute(async (trx) => {
      // Only jobs this process knows: during a rolling deploy a newer process may stage a job an older one
      // cannot enqueue; it waits for a process that can.
      const taken = await sql<{ id: string; job_name: string; inbound_ids: string[] }>`
        delete from inbound_job_outbox
         where id in (select id from inbound_job_outbox where job_name = any(${[...byName.keys()]}::text[]) order by id limit ${ROWS_PER_RELAY} for update skip locked)
        returning id, job_name, inbound_ids`.execute(trx);
      const byJob = new Map<string, string[]>();
      // Oldest first (RETURNING follows no order): deliveries are enqueued in the order they were accepted.
      for (const row of taken.rows.sort((a, b) => Number(a.id) - Number(b.id))) {
        const ids = byJob.get(row.job_name) ?? [];
        ids.push(...row.inbound_ids);
        byJob.set(row.job_name, ids);
      }
      let deliveries = 0;
      for (const [name, ids] of byJob) {
        const definition = byName.get(name)!;
        for (let start = 0; start < ids.length; start += jobSize) {
          // No job created (a queue policy such as singleton would do that) must not delete the rows silently.
          const id = await jobs.enqueue(definition, { inboundIds: ids.slice(start, start + jobSize) }, { db: trx });
          if (!id) throw new Error(`the queue ${name} created no job for staged deliveries; they stay staged`);
        }
        deliveries += ids.length;
      }
      return { rows: taken.rows.length, deliveries };
    });

  const relayAll = async (): Promise<number> => {
    let total = 0;
    for (;;) {
      const { rows, deliveries } = await relayOnce();
      total += deliveries;
      if (rows < ROWS_PER_RELAY) return total;
    }
  };

  /** One relay at a time per process; a drain asked for while one runs runs again right after it. */
  const drain = (): Promise<number> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      try {
        do {
          again = false;
          total += await relayAll();
        } while (again);
        return total;
      } finally {
        running = undefined;
      }
    })();
    return running;
  };

  const relaySoon = (delayMs: number) => {
    if (pending || closing) return;
    // Outside the poking request's context: a relay's jobs serve many requests, not the one that poked.
    pending = outsideContext(() =>
      setTimeout(() => {
        pending = undefined;
        drain().catch((error: unknown) => logger.error({ err: error }, 'staged processing jobs could not be relayed; they stay staged and are tried again'));
      }, delayMs),
    );
    pending.unref();
  };

  const sweep = setInterval(() => relaySoon(0), options.sweepMs ?? 5000);
  sweep.unref();
  relaySoon(0);

  return {
    poke: () => relaySoon(gatherMs),
    drain,
    close() {
      closing ??= (async () => {
        clearInterval(sweep);
        clearTimeout(pending);
        pending = undefined;
        await drain().catch((error: unknown) => logger.error({ err: error }, 'staged processing jobs could not be relayed at shutdown; the next start relays them'));
      })();
      return closing;
    },
  };
}
