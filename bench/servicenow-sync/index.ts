/**
 * servicenow-sync: a full sync of N incidents from the fake ServiceNow (test/fakes/servicenow, real HTTP on
 * 127.0.0.1) with 20 ms of latency on every page, through the real path (src/connectors/servicenow: OAuth, the
 * keyset pull; src/connectors/sdk/sync.ts: validation, content hash, the ledger upsert, the incident mirror, a
 * checkpoint per page), in a process of its own (bench/servicenow-sync/sync.ts) whose peak RSS is reported.
 *
 * The ceiling, measured in the same run: the fake's page latency times the pages the sync needed (the wait no
 * client can avoid without parallel requests), plus a direct bulk upsert of the same N ledger rows into the same
 * table (10,000 rows a statement), i.e. the upstream wait and the database write with nothing in between.
 * Target (the issue): records/s at least 50% of the ceiling's. Run at 100,000 and at 200,000 records: peak
 * memory must not grow with the dataset (at most 1.2×), i.e. the sync streams page by page.
 *
 * Environment: DATABASE_URL (a server to create the bench database on; else an embedded PostgreSQL),
 * BENCH_QUICK=1 (10,000 and 20,000 records), BENCH_SIZES (comma list), BENCH_PAGE_SIZE (1000),
 * BENCH_PAGE_LATENCY_MS (20).
 */
import { createHash, randomBytes } from 'node:crypto';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import canonicalize from 'canonicalize';
import { sql } from 'kysely';
import { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../src/connectors/sdk/instances.ts';
import type { RunSummary } from '../../src/connectors/sdk/sync.ts';
import { servicenow } from '../../src/connectors/servicenow/index.ts';
import { INCIDENT_FIELDS, incidentContent, incidentRecord } from '../../src/connectors/servicenow/mapper.ts';
import { createDatabase } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { fieldValue, incidentFields, startFakeServiceNow } from '../../test/fakes/servicenow/server.ts';
import { benchDatabase, durabilitySettings } from '../lib/database.ts';

const quick = process.env.BENCH_QUICK === '1';
const sizes = (process.env.BENCH_SIZES ?? (quick ? '10000,20000' : '100000,200000')).split(',').map(Number).filter((n) => n > 0);
const pageSize = Number(process.env.BENCH_PAGE_SIZE ?? 1000);
const latencyMs = Number(process.env.BENCH_PAGE_LATENCY_MS ?? 20);
const TARGET_RATIO = 0.5;
const MEMORY_GROWTH_LIMIT = 1.2;
const CLIENT = { id: 'be3aeb583ace210011c15b24a43e25d8', secret: 'client_password' };
const logger = createLogger({ level: 'warn', destination: process.stderr });
const key = randomBytes(32);
const keyring = new Keyring([{ id: 'bench', key }]);
const child = fileURLToPath(new URL('./sync.ts', import.meta.url));

interface Row {
  records: number;
  seconds: number;
  cpuSeconds: number;
  maxRssBytes: number;
  requests: number;
  pages: number;
  upsertSeconds: number;
  summary: RunSummary;
}

const database = await benchDatabase({ name: `projectx_bench_snsync_${Date.now().toString(36)}`, logger });
const db = createDatabase({ connectionString: database.url, max: 2 });
const rows: Row[] = [];
try {
  for (const size of sizes) {
    const sn = await startFakeServiceNow({ pageLatencyMs: latencyMs });
    try {
      const t0 = Date.parse('2026-01-01T00:00:00Z');
      // Three records a second, as a busy instance stamps them: page boundaries fall inside ties.
      sn.insertMany('incident', size, (i) => incidentFields({ number: `INC${String(i).padStart(8, '0')}`, priority: String((i % 4) + 2), state: String([1, 2, 3, 6, 7][i % 5]), short_description: `Bench incident ${i}: service degraded` }, sn.url), (i) => new Date(t0 + Math.floor(i / 3) * 1000));
      const instanceId = (await ensureInstanceFromEnv(db, keyring, servicenow, { name: `bench${size}`, settings: { baseUrl: sn.url, clientId: CLIENT.id, pageSize }, credentials: { client_secret: CLIENT.secret } }))!;
      const before = sn.requests.length;
      const result = await new Promise<{ summary: RunSummary; seconds: number; cpuSeconds: number; maxRssBytes: number }>((resolve, reject) => {
        const proc = fork(child, [], { env: { ...process.env, BENCH_DATABASE_URL: database.url, BENCH_KEY: key.toString('base64'), BENCH_INSTANCE_ID: instanceId }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        proc.once('message', (message) => resolve(message as never));
        proc.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`sync process exited (${code})`))));
      });
      const requests = sn.requests.slice(before);
      const pages = requests.filter((request) => request.path === '/api/now/table/incident').length;
      if (result.summary.status !== 'succeeded' || result.summary.counts.created !== size) throw new Error(`sync did not import every record: ${JSON.stringify(result.summary)}`);
      const stored = await db.selectFrom('external_records').select((eb) => eb.fn.countAll<string>().as('n')).where('config_id', '=', instanceId).executeTakeFirstOrThrow();
      if (Number(stored.n) !== size) throw new Error(`the ledger holds ${stored.n} of ${size}`);

      // The ceiling's database part: the same ledger rows, bulk-upserted into the same table directly.
      const ceilingInstance = (await ensureInstanceFromEnv(db, keyring, servicenow, { name: `ceiling${size}`, settings: { baseUrl: sn.url, clientId: CLIENT.id }, credentials: { client_secret: CLIENT.secret } }))!;
      const ledgerRows = await ledgerRowsOf(size, pageSize, async (query) => {
        const response = await fetch(`${sn.url}/api/now/table/incident?${query}`, { headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } });
        return ((await response.json()) as { result: Record<string, unknown>[] }).result;
      });
      const upsertStarted = performance.now();
      for (let offset = 0; offset < ledgerRows.length; offset += 10_000) {
        const batch = ledgerRows.slice(offset, offset + 10_000);
        await sql`
          insert into external_records (config_id, model, external_id, number, content_hash, source_updated_at, data)
          select ${ceilingInstance}::uuid, 'incident', r.external_id, r.number, r.content_hash, r.updated_at, r.data::jsonb
          from unnest(${batch.map((row) => row.externalId)}::text[], ${batch.map((row) => row.number)}::text[], ${batch.map((row) => row.hash)}::text[], ${batch.map((row) => row.updatedAt)}::text[], ${batch.map((row) => row.data)}::text[])
            as r(external_id, number, content_hash, updated_at, data)
          on conflict (config_id, model, external_id) do update set content_hash = excluded.content_hash, data = excluded.data
            where external_records.content_hash <> excluded.content_hash`.execute(db);
      }
      const upsertSeconds = (performance.now() - upsertStarted) / 1000;
      rows.push({ records: size, seconds: result.seconds, cpuSeconds: result.cpuSeconds, maxRssBytes: result.maxRssBytes, requests: requests.length, pages, upsertSeconds, summary: result.summary });
      console.error(`  ${size}: sync ${result.seconds.toFixed(1)} s, ${pages} pages, peak RSS ${(result.maxRssBytes / 2 ** 20).toFixed(0)} MiB; bulk upsert ${upsertSeconds.toFixed(1)} s`);
    } finally {
      await sn.close();
    }
  }

  const settings = await durabilitySettings(database.url);
  console.log(`\n### servicenow-sync (full sync of the incident table; pages of ${pageSize}; ${latencyMs} ms latency per page in the fake; ${database.where}; ${settings}; node ${process.version}; sync, fake and PostgreSQL share this machine's cores)\n`);
  console.log('| records | sync s | records/s | upstream requests | pages | peak RSS MiB | sync CPU s | ceiling: latency × pages s | ceiling: bulk upsert s | ceiling records/s | sync / ceiling |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const ceilingSeconds = (row.pages * latencyMs) / 1000 + row.upsertSeconds;
    console.log(`| ${row.records} | ${row.seconds.toFixed(1)} | ${Math.round(row.records / row.seconds)} | ${row.requests} | ${row.pages} | ${(row.maxRssBytes / 2 ** 20).toFixed(0)} | ${row.cpuSeconds.toFixed(1)} | ${((row.pages * latencyMs) / 1000).toFixed(1)} | ${row.upsertSeconds.toFixed(1)} | ${Math.round(row.records / ceilingSeconds)} | ${(ceilingSeconds / row.seconds).toFixed(2)} |`);
  }
  console.log('\n#### summary\n');
  for (const row of rows) {
    const ratio = ((row.pages * latencyMs) / 1000 + row.upsertSeconds) / row.seconds;
    console.log(`- ${row.records} records: ${Math.round(row.records / row.seconds)} records/s, ${(ratio * 100).toFixed(0)}% of the ceiling's rate → ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'} (target ≥ ${TARGET_RATIO * 100}%); every record in the ledger once (run counts: ${JSON.stringify(row.summary.counts)})`);
  }
  if (rows.length >= 2) {
    const [small, large] = [rows[0]!, rows.at(-1)!];
    const growth = large.maxRssBytes / small.maxRssBytes;
    console.log(`- peak RSS ${(small.maxRssBytes / 2 ** 20).toFixed(0)} MiB at ${small.records} records, ${(large.maxRssBytes / 2 ** 20).toFixed(0)} MiB at ${large.records}: ×${growth.toFixed(2)} → ${growth <= MEMORY_GROWTH_LIMIT ? 'MET' : 'NOT MET'} (target ≤ ×${MEMORY_GROWTH_LIMIT}: memory does not grow with the dataset)`);
  }
} finally {
  await db.destroy();
  await database.close();
}

/** The ledger rows the sync writes for these records (same fields, content and hash), read page by page. */
async function ledgerRowsOf(size: number, limit: number, get: (query: string) => Promise<Record<string, unknown>[]>) {
  const out: { externalId: string; number: string; hash: string; updatedAt: string; data: string }[] = [];
  for (let offset = 0; offset < size; offset += limit) {
    const records = await get(new URLSearchParams({ sysparm_fields: INCIDENT_FIELDS.join(','), sysparm_exclude_reference_link: 'true', sysparm_limit: String(limit), sysparm_offset: String(offset), sysparm_query: 'ORDERBYsys_updated_on^ORDERBYsys_id' }).toString());
    for (const raw of records) {
      const record = incidentRecord.parse(raw);
      const data = canonicalize(incidentContent(record)) ?? '{}';
      out.push({ externalId: fieldValue(record.sys_id), number: record.number, hash: createHash('sha256').update(data).digest('hex'), updatedAt: record.sys_updated_on, data });
    }
  }
  return out;
}
