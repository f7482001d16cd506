/**
 * The embedded server as `npm start` uses it: created on first start, adopted by a second process on the same
 * data directory, kept across restarts, and (as root) usable from a data directory whose parent is closed.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { fallbackClusterDir, startEmbeddedPostgres } from '../../src/db/embedded.ts';
import { captureLogs } from '../support/logs.ts';

const isRoot = process.getuid?.() === 0;

async function query(url: string, text: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

describe('embedded PostgreSQL', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  // Only root has a postgres user to switch to and a parent directory it can close to that user.
  it.runIf(isRoot)('works from a data directory whose parent the postgres user cannot enter, and keeps data across restarts', async () => {
    const closedParent = await mkdtemp(path.join(tmpdir(), 'projectx-closed-')); // mode 0700
    expect((await stat(closedParent)).mode & 0o777).toBe(0o700);
    const dataDir = path.join(closedParent, '.data');
    const fallback = path.dirname(fallbackClusterDir(dataDir));
    cleanups.push(() => rm(closedParent, { recursive: true, force: true }), () => rm(fallback, { recursive: true, force: true }));
    const logs = captureLogs();

    const first = await startEmbeddedPostgres({ dataDir, logger: logs.logger, unsafeFast: true });
    cleanups.push(() => first.stop());
    expect(first.adopted).toBe(false);
    await query(first.url, 'create table kept (note text); insert into kept values ($$hello$$)'.replaceAll('$$', "'"));
    expect(logs.text()).toContain('the cluster is kept outside it');

    const second = await startEmbeddedPostgres({ dataDir, logger: logs.logger });
    expect(second.adopted).toBe(true);
    expect(second.port).toBe(first.port);
    await second.stop(); // adopted: leaves the server running
    expect(await query(first.url, 'select note from kept')).toEqual([{ note: 'hello' }]);

    await first.stop();
    const restarted = await startEmbeddedPostgres({ dataDir, logger: logs.logger, unsafeFast: true });
    cleanups.push(() => restarted.stop());
    expect(restarted.adopted).toBe(false);
    expect(await query(restarted.url, 'select note from kept')).toEqual([{ note: 'hello' }]);
  });
});
