/**
 * Crash safety of a sync: the real binary (role all) syncs 10,000 incidents from the fake ServiceNow, slowly,
 * and is killed with SIGKILL in the middle. After a restart the same run resumes from its last committed page
 * (its job is retried once the dead worker's heartbeat lapses, about 40 s): every record arrives, none twice,
 * the run reads each record once, and the creations of all the model's runs add up to exactly the records.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeServiceNow, incidentFields, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { type RunningCli, killAll, spawnCli } from '../../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';

const TOTAL = 10_000;

describe('a ServiceNow sync survives SIGKILL', () => {
  let tdb: TestDatabase;
  let sn: FakeServiceNow;
  const key = `k1:${randomBytes(32).toString('base64')}`;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    sn = await startFakeServiceNow({ pageLatencyMs: 60 });
    // Five records a second: page boundaries fall inside ties.
    sn.insertMany('incident', TOTAL, (i) => incidentFields({ number: `INC${String(1_000_000 + i)}`, priority: '3', state: '2' }, sn.url), (i) => new Date(Date.parse('2026-11-01T00:00:00Z') + Math.floor(i / 5) * 1000));
  });
  afterEach(() => killAll());
  afterAll(async () => {
    await sn.close();
    await tdb.drop();
  });

  const envFor = () => ({ HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', PATH: process.env.PATH ?? '', DATABASE_URL: tdb.url, PROJECTX_ENCRYPTION_KEY: key, SERVICENOW_BASE_URL: sn.url, SERVICENOW_OAUTH_CLIENT_ID: 'be3aeb583ace210011c15b24a43e25d8', SERVICENOW_OAUTH_CLIENT_SECRET: 'client_password' });
  const start = async (): Promise<RunningCli> => {
    const run = spawnCli(['start'], { env: envFor() });
    await run.waitForLog((entry) => String(entry.msg).includes('listening'));
    return run;
  };
  const stored = async () => Number((await tdb.db.selectFrom('external_records').select((eb) => eb.fn.countAll<string>().as('n')).where('model', '=', 'incident').executeTakeFirstOrThrow()).n);

  it('resumes from the last committed page after a crash: every record once', async () => {
    const first = await start();
    // Queue a run with page size 100 (the instance exists once the service started).
    await tdb.db.updateTable('integration_configs').set({ settings: JSON.stringify({ baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8', pageSize: 100 }) }).where('type', '=', 'servicenow').execute();
    const queued = spawnCli(['sync', 'servicenow', '--model', 'incident'], { env: { ...envFor(), LOG_LEVEL: 'warn' } });
    expect((await queued.exited).code).toBe(0);
    const runId = String((JSON.parse(queued.stdout().trim()) as { runId: string }).runId);

    await expect.poll(stored, { timeout: 60_000, interval: 50 }).toBeGreaterThanOrEqual(2000);
    first.child.kill('SIGKILL');
    await first.exited;
    const atCrash = await stored();
    expect(atCrash).toBeLessThan(TOTAL);

    const second = await start();
    const run = () => tdb.db.selectFrom('integration_runs').select(['status', 'counts']).where('id', '=', runId).executeTakeFirstOrThrow();
    await expect.poll(async () => (await run()).status, { timeout: 150_000, interval: 500 }).toBe('succeeded');
    expect(await stored()).toBe(TOTAL);
    const finished = await run();
    // One run across both processes: it read every record exactly once (no page repeated, none skipped), a
    // hundred at a time in both (the page size set on the instance outlives the restart).
    expect(finished.counts).toMatchObject({ seen: TOTAL, pages: TOTAL / 100, updated: 0 });
    // None created twice. The model's schedule may tick while the dead worker's job waits out its heartbeat (a
    // five-minute cron boundary inside the test): that run, singleton with this one, stores what it finds after
    // the checkpoint, and this run then finds those records unchanged. So the runs' creations add up to the records.
    const runs = await tdb.db.selectFrom('integration_runs').select(['id', 'counts']).where('model', '=', 'incident').execute();
    const created = runs.reduce((sum, row) => sum + ((row.counts as { created?: number }).created ?? 0), 0);
    const updated = runs.reduce((sum, row) => sum + ((row.counts as { updated?: number }).updated ?? 0), 0);
    expect({ created, updated }).toEqual({ created: TOTAL, updated: 0 });
    const incidents = Number((await tdb.db.selectFrom('incidents').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    expect(incidents).toBe(TOTAL);
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    console.info(`servicenow crash test: ${atCrash} of ${TOTAL} stored at the SIGKILL`);
  }, 240_000);
});
