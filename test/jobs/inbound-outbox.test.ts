import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineJob } from '../../src/jobs/define-job.ts';
import { createInboundOutbox } from '../../src/jobs/inbound-outbox.ts';
import { type JobRuntime, startJobRuntime } from '../../src/jobs/runtime.ts';
import { createMetrics } from '../../src/metrics.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { captureLogs } from '../support/logs.ts';

const fast = { retryDelaySeconds: 0, retryBackoff: false, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } as const;

// What each run of the test job was given: the relay's only observable result.
const runs: string[][] = [];
const inboundJob = defineJob({
  name: 'test.inbound',
  schema: z.object({ inboundIds: z.array(z.uuid()).min(1).max(500) }),
  policy: { ...fast, retryLimit: 0 },
  handler: ({ inboundIds }) => {
    runs.push(inboundIds);
    return Promise.resolve({ n: inboundIds.length });
  },
});
// Defined in code but not in the runtime below: enqueueing it fails, as a database or queue failure would.
const unknownToRuntime = defineJob({ name: 'test.not-registered', schema: inboundJob.schema, handler: () => Promise.resolve() });

describe('inbound job outbox', () => {
  let tdb: TestDatabase;
  let runtime: JobRuntime;
  const logs = captureLogs();

  beforeAll(async () => {
    tdb = await createTestDatabase();
    runtime = await startJobRuntime({ connectionString: tdb.url, definitions: [inboundJob], logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false });
    await runtime.work({});
  });
  afterAll(async () => {
    await runtime.stop(2000);
    await tdb.drop();
  });
  beforeEach(async () => {
    runs.length = 0;
    await tdb.db.deleteFrom('inbound_job_outbox').execute();
  });

  /** Stages `n` deliveries in `rows` outbox rows, as the webhook accept does (one row per committed batch). */
  const stage = async (n: number, rows: number, jobName = inboundJob.name) => {
    const ids = Array.from({ length: n }, () => randomUUID());
    const size = Math.ceil(n / rows);
    for (let start = 0; start < n; start += size) await tdb.db.insertInto('inbound_job_outbox').values({ job_name: jobName, inbound_ids: ids.slice(start, start + size) }).execute();
    return ids;
  };
  const staged = async () => (await tdb.db.selectFrom('inbound_job_outbox').select(['job_name', 'inbound_ids']).execute()).flatMap((row) => row.inbound_ids.map((id) => `${row.job_name}:${id}`));
  const processed = async (expected: number) => {
    await expect.poll(() => runs.flat().length, { timeout: 15_000, interval: 100 }).toBe(expected);
    return runs.flat();
  };

  it('turns staged rows into jobs of at most jobSize deliveries, each delivery named once, and deletes the rows', async () => {
    const ids = await stage(250, 7);
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, jobSize: 100, sweepMs: 60_000 });
    try {
      expect(await outbox.drain()).toBe(250);
      expect(await staged()).toEqual([]);
      expect((await processed(250)).sort()).toEqual([...ids].sort());
      expect(runs.length).toBe(3); // 100 + 100 + 50: one job per 100, not one per staged row
      expect(Math.max(...runs.map((run) => run.length))).toBe(100);
    } finally {
      await outbox.close();
    }
  });

  it('two relays draining the same rows at once enqueue each delivery once', async () => {
    const ids = await stage(1200, 1200);
    const options = { db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 60_000 };
    const first = createInboundOutbox(options);
    const second = createInboundOutbox(options);
    try {
      const [a, b] = await Promise.all([first.drain(), second.drain()]);
      expect(a + b).toBe(1200);
      const seen = await processed(1200);
      expect(new Set(seen).size).toBe(1200);
      expect([...seen].sort()).toEqual([...ids].sort());
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it('relays on its own what a process that died left staged, at start', async () => {
    const before = await stage(30, 3);
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 60_000 });
    try {
      expect((await processed(30)).sort()).toEqual([...before].sort());
      expect(await staged()).toEqual([]);
    } finally {
      await outbox.close();
    }
  });

  it('finds rows staged later without a poke, on its sweep', async () => {
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 200 });
    try {
      // Joins the start-up relay (its timer fires before the first database answer arrives).
      await outbox.drain();
      const later = await stage(20, 2);
      expect((await processed(20)).sort()).toEqual([...later].sort());
      expect(await staged()).toEqual([]);
    } finally {
      await outbox.close();
    }
  });

  it('a poke relays soon; close relays what is left and stops', async () => {
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 60_000, gatherMs: 10 });
    await outbox.drain(); // joins the start-up relay: from here on only the poke and close relay
    const poked = await stage(5, 1);
    outbox.poke();
    expect((await processed(5)).sort()).toEqual([...poked].sort());
    const last = await stage(7, 1);
    await outbox.close();
    expect(await staged()).toEqual([]);
    expect((await processed(12)).slice(5).sort()).toEqual([...last].sort());
  });

  it('skips a staged row another relay holds instead of waiting for it', async () => {
    const held = await stage(1, 1);
    const free = await stage(3, 1);
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 60_000 });
    try {
      await tdb.db.transaction().execute(async (trx) => {
        // Another relay's transaction, mid-way: it holds the first row.
        await sql`select id from inbound_job_outbox where ${held[0]!}::uuid = any(inbound_ids) for update`.execute(trx);
        expect(await outbox.drain()).toBe(3); // returns while the row is still locked
      });
      expect((await processed(3)).sort()).toEqual([...free].sort());
      expect(await outbox.drain()).toBe(1); // released (that relay "failed"): now taken
      expect((await processed(4)).slice(3)).toEqual(held);
    } finally {
      await outbox.close();
    }
  });

  it('a relay that fails leaves its rows staged for the next one, and says so in the log', async () => {
    const ids = await stage(10, 2, unknownToRuntime.name);
    const failing = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [unknownToRuntime], logger: logs.logger, sweepMs: 60_000 });
    await expect(failing.drain()).rejects.toThrow();
    await failing.close();
    expect(await staged()).toHaveLength(10);
    expect(logs.text()).toContain('staged processing jobs could not be relayed at shutdown');
    // A process whose runtime knows the job relays them (here: the same rows renamed, as after a fix).
    await tdb.db.updateTable('inbound_job_outbox').set({ job_name: inboundJob.name }).execute();
    const working = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 60_000 });
    try {
      expect(await working.drain()).toBe(10);
      expect((await processed(10)).sort()).toEqual([...ids].sort());
    } finally {
      await working.close();
    }
  });

  it('a relay that fails after enqueueing some jobs enqueues none of them (one transaction)', async () => {
    const jobsNamed = async () => Number((await sql<{ n: string }>`select count(*) as n from projectx_jobs.job where name = ${inboundJob.name}`.execute(tdb.db)).rows[0]?.n);
    const before = await jobsNamed();
    await stage(4, 1); // relayed first (staged first): its job is inserted, then the next one fails
    await stage(2, 1, unknownToRuntime.name);
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob, unknownToRuntime], logger: logs.logger, sweepMs: 60_000 });
    await expect(outbox.drain()).rejects.toThrow();
    expect(await jobsNamed()).toBe(before);
    expect(await staged()).toHaveLength(6);
    await outbox.close();
  });

  it('leaves rows for jobs it does not know to a process that does (a newer version during a rolling deploy)', async () => {
    await stage(4, 1, 'test.from-a-newer-version');
    const known = await stage(3, 1);
    const outbox = createInboundOutbox({ db: tdb.db, jobs: runtime, definitions: [inboundJob], logger: logs.logger, sweepMs: 60_000 });
    try {
      expect(await outbox.drain()).toBe(3);
      expect((await processed(3)).sort()).toEqual([...known].sort());
      expect(await staged()).toHaveLength(4);
    } finally {
      await outbox.close();
    }
  });
});
