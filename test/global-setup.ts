/**
 * Once per test run: a PostgreSQL server (DATABASE_URL's when set, else an embedded one in a temp dir) and a
 * template database with our migrations and pg-boss's schema applied. Each test file clones the template
 * (`createTestDatabase()`), so files run in parallel without seeing each other's rows.
 *
 * Also the run's temp root (`projectx-test-run-*`): tests put their files under it (test/support/temp.ts) and
 * the teardown removes it, so a run leaves nothing in the temp directory. And a real clamd (test/servers/clamd.ts)
 * on the committed EICAR-only signatures, for the virus-scan tests, and a real S3 server (Ceph RGW,
 * test/servers/rgw.ts) for the evidence-store tests.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import type { TestProject } from 'vitest/node';
import { createDatabase } from '../src/db/database.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { migrateToLatest } from '../src/db/migrate.ts';
import { JOBS_SCHEMA } from '../src/jobs/runtime.ts';
import { createLogger } from '../src/logger.ts';
import { startClamd } from './servers/clamd.ts';
import { type Rgw, assertRgwInstalled, startRgw } from './servers/rgw.ts';
import { databaseUrl } from './support/database-url.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: { adminUrl: string; template: string; prefix: string };
    /** The run's temp root, removed when the run ends. */
    tempRoot: string;
    /** The run's clamd: `tcp://127.0.0.1:<port>`. */
    clamav: { url: string };
    /**
     * The run's S3 server (Ceph RGW): the test user's keys, a role it may assume, and the cluster's ceph.conf
     * for `setBucketQuota(adminConf, …)` (test/servers/rgw.ts).
     */
    s3: Pick<Rgw, 'endpoint' | 'region' | 'accessKeyId' | 'secretAccessKey' | 'roleArn' | 'adminConf'>;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const logger = createLogger({ level: 'warn', destination: process.stderr });
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const prefix = `pxt_${runId}_`;
  // Open to others (mkdtemp makes it 0700): as root, the embedded server's postgres user must enter it.
  const tempRoot = await mkdtemp(path.join(tmpdir(), 'projectx-test-run-'));
  await chmod(tempRoot, 0o755);
  // First, so a machine without clamd or Ceph RGW learns it before PostgreSQL is started (and left running).
  await assertRgwInstalled();
  const clamd = await startClamd(path.join(tempRoot, 'clamd'));
  // RGW's one-node cluster comes up (about 2 s) while PostgreSQL does; its failure is thrown further down.
  const rgwStarting = startRgw(path.join(tempRoot, 'rgw'));
  rgwStarting.catch(() => {});
  let adminUrl = process.env.DATABASE_URL;
  let stopEmbedded = async () => {};
  if (!adminUrl) {
    const embedded = await startEmbeddedPostgres({ dataDir: path.join(tempRoot, 'pg'), logger, unsafeFast: true, database: 'postgres' });
    adminUrl = embedded.adminUrl;
    stopEmbedded = () => embedded.stop();
  }

  const template = `${prefix}template`;
  await admin(adminUrl, async (client) => {
    await client.query(`create database "${template}"`);
  });
  const templateUrl = databaseUrl(adminUrl, template);
  const db = createDatabase({ connectionString: templateUrl, max: 2 });
  await migrateToLatest(db);
  await db.destroy();
  const boss = new PgBoss({ connectionString: templateUrl, schema: JOBS_SCHEMA, supervise: false, schedule: false, max: 2 });
  await boss.start();
  await boss.stop({ graceful: false, close: true });
  const rgw = await rgwStarting.catch(async (error: unknown) => {
    await stopEmbedded();
    await clamd.stop();
    throw error;
  });

  project.provide('postgres', { adminUrl, template, prefix });
  project.provide('tempRoot', tempRoot);
  project.provide('clamav', { url: clamd.url });
  const { endpoint, region, accessKeyId, secretAccessKey, roleArn, adminConf } = rgw;
  project.provide('s3', { endpoint, region, accessKeyId, secretAccessKey, roleArn, adminConf });

  return async () => {
    await admin(adminUrl, async (client) => {
      const { rows } = await client.query<{ datname: string }>('select datname from pg_database where datname like $1', [`${prefix}%`]);
      for (const { datname } of rows) await client.query(`drop database if exists "${datname}" with (force)`);
    });
    await stopEmbedded();
    await Promise.all([clamd.stop(), rgw.stop()]);
    await rm(tempRoot, { recursive: true, force: true });
  };
}

async function admin(url: string, fn: (client: pg.Client) => Promise<void>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}
