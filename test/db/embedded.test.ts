/**
 * The embedded server as `npm start` uses it: created on first start, adopted by a second process on the same
 * data directory, kept across restarts, and (as root) usable from a data directory whose parent is closed, with
 * that cluster kept outside no longer than its data directory.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { POINTER_FILE, fallbackClusterDir, startEmbeddedPostgres } from '../../src/db/embedded.ts';
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
    // Said once, when the cluster was placed outside; the later starts say it only at debug level.
    const keptOutside = logs.lines().filter((line) => String(line.msg).includes('the cluster is kept outside it'));
    expect(keptOutside.map((line) => line.level)).toEqual(['warn', 'debug', 'debug']);
    expect(await readFile(path.join(dataDir, POINTER_FILE), 'utf8')).toContain(`rm -rf ${fallback}`);
  });

  it.runIf(isRoot)('removes at the next start a shared cluster whose data directory is gone, but not one still running or still with its data directory', async () => {
    const logs = captureLogs();
    const closedDataDir = async () => {
      const closedParent = await mkdtemp(path.join(tmpdir(), 'projectx-closed-'));
      const dataDir = path.join(closedParent, '.data');
      const folder = path.dirname(fallbackClusterDir(dataDir));
      cleanups.push(() => rm(closedParent, { recursive: true, force: true }), () => rm(folder, { recursive: true, force: true }));
      return { closedParent, dataDir, folder };
    };
    const present = (folder: string) => stat(folder).then(() => true, () => false);

    // Three clusters kept outside their clones: stopped, running, stopped.
    const gone = await closedDataDir();
    await (await startEmbeddedPostgres({ dataDir: gone.dataDir, logger: logs.logger, unsafeFast: true })).stop();
    expect(await readFile(path.join(gone.dataDir, POINTER_FILE), 'utf8')).toContain(fallbackClusterDir(gone.dataDir));
    const running = await closedDataDir();
    const runningServer = await startEmbeddedPostgres({ dataDir: running.dataDir, logger: logs.logger, unsafeFast: true });
    cleanups.push(() => runningServer.stop());
    const kept = await closedDataDir();
    await (await startEmbeddedPostgres({ dataDir: kept.dataDir, logger: logs.logger, unsafeFast: true })).stop();
    // Two clones deleted: one after its service stopped, one while its server still runs.
    await rm(gone.closedParent, { recursive: true });
    await rm(running.closedParent, { recursive: true });
    expect([await present(gone.folder), await present(running.folder), await present(kept.folder)]).toEqual([true, true, true]);

    // The next start (of any data dir) removes only the stale one.
    const next = await startEmbeddedPostgres({ dataDir: kept.dataDir, logger: logs.logger, unsafeFast: true });
    cleanups.push(() => next.stop());
    expect([await present(gone.folder), await present(running.folder), await present(kept.folder)]).toEqual([false, true, true]);
    expect(logs.lines()).toContainEqual(expect.objectContaining({ msg: 'removed the embedded PostgreSQL cluster of a data directory that is gone', dataDir: gone.dataDir }));
    expect(await query(next.url, 'select 1 as up')).toEqual([{ up: 1 }]);

    // Once the server of the deleted clone stops, the next start removes its cluster too.
    await runningServer.stop();
    await (await startEmbeddedPostgres({ dataDir: kept.dataDir, logger: logs.logger })).stop(); // adopts `next`
    expect([await present(running.folder), await present(kept.folder)]).toEqual([false, true]);
  });
});
