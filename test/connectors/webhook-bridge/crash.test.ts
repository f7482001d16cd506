/**
 * Crash safety of the durable accept: the real binary (role all) takes a burst of signed deliveries and is
 * killed with SIGKILL the moment the last 202 arrives, with work still queued and running. After a restart,
 * every delivery that was answered 202 is processed, and exactly once (one task, one processed record each).
 * Jobs that were running in the killed process are retried once their heartbeat lapses (about 40 s).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signStandardWebhook } from '../../../src/connectors/webhook-bridge/signatures.ts';
import { type RunningCli, killAll, spawnCli } from '../../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const BURST = 400;

describe('webhook accept survives SIGKILL', () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase();
  });
  afterEach(() => killAll());
  afterAll(() => tdb.drop());

  const start = async (): Promise<{ run: RunningCli; url: string }> => {
    const run = spawnCli(['start'], { env: { DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', GENERIC_WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'info', PATH: process.env.PATH ?? '' } });
    const line = await run.waitForLog((entry) => typeof entry.url === 'string' && String(entry.msg).includes('listening'));
    return { run, url: String(line.url) };
  };

  it('processes every accepted delivery exactly once after a crash and a restart', async () => {
    const first = await start();
    const ids = Array.from({ length: BURST }, () => `msg_${randomUUID().replaceAll('-', '')}`);
    const answers: { id: string; status: number }[] = [];
    // 16 senders at once, as a partner's retry queue would send.
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < ids.length) {
          const id = ids[next++]!;
          const body = Buffer.from(JSON.stringify({ type: 'task.create', timestamp: new Date().toISOString(), data: { title: `Crash test ${id}` } }));
          const res = await fetch(`${first.url}/api/integration/webhook/generic`, {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/json', ...signStandardWebhook([SECRET], id, Math.floor(Date.now() / 1000), body) },
          });
          await res.arrayBuffer();
          answers.push({ id, status: res.status });
        }
      }),
    );
    first.run.child.kill('SIGKILL');
    await first.run.exited;
    const accepted = answers.filter((answer) => answer.status === 202).map((answer) => answer.id);
    expect(accepted).toHaveLength(BURST);

    const statuses = async () =>
      Object.fromEntries(
        (await tdb.db.selectFrom('inbound_events').select(['status', (eb) => eb.fn.countAll<string>().as('n')]).where('source', '=', 'webhook:generic').groupBy('status').execute()).map((row) => [row.status, Number(row.n)]),
      );
    const atCrash = await statuses();
    // Every 202 was committed before it was sent, and the kill came with work still to do.
    expect(Object.values(atCrash).reduce((sum, n) => sum + n, 0)).toBe(BURST);
    expect(atCrash.received ?? 0).toBeGreaterThan(0);

    const second = await start();
    await expect.poll(statuses, { timeout: 120_000, interval: 500 }).toEqual({ processed: BURST });
    const tasks = await tdb.db
      .selectFrom('task_links')
      .select(['target', (eb) => eb.fn.countAll<string>().as('n')])
      .where('target', 'in', accepted.map((id) => `webhook:generic:${id}`))
      .groupBy('target')
      .execute();
    expect(tasks).toHaveLength(BURST);
    expect(tasks.every((row) => Number(row.n) === 1)).toBe(true);
    const records = await tdb.db.selectFrom('integration_events').select(['external_id', (eb) => eb.fn.countAll<string>().as('n')]).where('source', '=', 'webhook:generic').where('status', '=', 'processed').groupBy('external_id').execute();
    expect(records).toHaveLength(BURST);
    expect(records.every((row) => Number(row.n) === 1)).toBe(true);
    second.run.child.kill('SIGTERM');
    expect((await second.run.exited).code).toBe(0);
    console.info(`webhook crash test: at the SIGKILL ${JSON.stringify(atCrash)} of ${BURST} accepted`);
  }, 180_000);
});
