/**
 * webhooks: how many signed partner deliveries the service accepts per second, each durably committed (the
 * verified body and its staged processing job in one statement, fsync on) before its 202, at rising concurrency;
 * and, in the same run on the same database, the ceiling of the path: plain single-row INSERT transactions
 * (autocommit, a row shaped like a delivery, unique delivery id) from the same number of connections.
 *
 * Closed loop (bench/lib/load.ts): `c` senders, each sending its next delivery when the last is answered, as
 * a partner's delivery workers do. Each request is a Standard Webhooks delivery from the spec's example
 * payload shape (`task.create`), signed per request with a fresh id and timestamp.
 *
 * Target (the issue): at the knee (the highest concurrency whose p99 is under 50 ms), accepted deliveries per
 * second at least 60% of the plain INSERT ceiling at the same concurrency. After the run every 202's delivery
 * is looked up in `inbound_events` with its job in the queue (the service relays staged jobs when it stops).
 *
 * Environment: DATABASE_URL (a server to create the bench database on; else an embedded PostgreSQL),
 * BENCH_QUICK=1 (smoke run), BENCH_STEP_MS (8000), BENCH_CONCURRENCY (1,4,16,32,64,96,128), BENCH_CPU_PROF (a directory:
 * write a CPU profile of the server), BENCH_WEB_PROCESSES (1: how many web-role processes share the load, as
 * replicas behind a load balancer would).
 */
import { randomBytes } from 'node:crypto';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { secretKey, signStandardWebhook } from '../../src/connectors/webhook-bridge/signatures.ts';
import { createLogger } from '../../src/logger.ts';
import { type CpuUsage, benchmarkGroups, cpuUsage, sampleCpu } from '../lib/cpu.ts';
import { benchDatabase, durabilitySettings, withClient } from '../lib/database.ts';
import { type LoadResult, runLoad } from '../lib/load.ts';
import { withForkedServers } from '../lib/server.ts';

const quick = process.env.BENCH_QUICK === '1';
const stepMs = Number(process.env.BENCH_STEP_MS ?? (quick ? 1500 : 8000));
const concurrencies = (process.env.BENCH_CONCURRENCY ?? (quick ? '1,16' : '1,4,16,32,64,96,128')).split(',').map(Number).filter((n) => n > 0);
const webProcesses = Math.max(1, Number(process.env.BENCH_WEB_PROCESSES ?? 1));
const KNEE_P99_MS = 50;
const TARGET_RATIO = 0.6;

const runId = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const SIGNING_KEY = secretKey(SECRET); // made once, as a partner's sender would: see WebhookSecret
const logger = createLogger({ level: 'warn', destination: process.stderr });
const serverFile = fileURLToPath(new URL('./server.ts', import.meta.url));

let serial = 0;
const deliveryBody = (id: string) =>
  Buffer.from(JSON.stringify({ type: 'task.create', timestamp: new Date().toISOString(), data: { title: `Review vendor finding ${id}`, description: 'Raised by the partner bench', priority: 'normal' } }));

interface Step {
  concurrency: number;
  webhooks: LoadResult;
  plain: { tps: number; p50ms: number; p99ms: number; errors: number };
  cpuWebhooks: CpuUsage | undefined;
}

/** `c` connections each running single-row INSERT transactions (autocommit) for `durationMs`. */
async function plainInserts(url: string, c: number, durationMs: number): Promise<Step['plain']> {
  const clients = await Promise.all(
    Array.from({ length: c }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  const histogram = createHistogram();
  let done = 0;
  let errors = 0;
  const started = performance.now();
  const until = started + durationMs;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < until) {
        const id = `plain_${runId}_${(serial++).toString(36)}`;
        const t0 = process.hrtime.bigint();
        try {
          await client.query('insert into bench_plain (delivery_id, body, headers) values ($1, $2, $3)', [id, deliveryBody(id), '{"content-type":"application/json"}']);
          done++;
        } catch {
          errors++;
        }
        histogram.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((client) => client.end()));
  return { tps: done / seconds, p50ms: histogram.percentile(50) / 1e6, p99ms: histogram.percentile(99) / 1e6, errors };
}

function webhookLoad(origin: string | readonly string[], c: number, durationMs: number, sentIds: string[]): Promise<LoadResult> {
  return runLoad({
    origin,
    connections: c,
    durationMs,
    request: () => {
      const id = `msg_${runId}_${(serial++).toString(36)}`;
      const body = deliveryBody(id);
      sentIds.push(id); // the database check counts how many of these were stored, against the 202s
      return {
        method: 'POST',
        path: '/api/integration/webhook/generic',
        headers: { 'content-type': 'application/json', ...signStandardWebhook([SIGNING_KEY], id, Math.floor(Date.now() / 1000), body) },
        body,
      };
    },
  });
}

const database = await benchDatabase({
  name: `projectx_bench_webhooks_${runId}`,
  logger,
  seed: async (db) => {
    const { sql } = await import('kysely');
    // The ceiling's table: shaped like inbound_events (a unique delivery id, the body, headers as jsonb).
    await sql`create table bench_plain (id bigserial primary key, delivery_id text not null unique, body bytea not null, headers jsonb not null, received_at timestamptz not null default now())`.execute(db);
  },
});

const steps: Step[] = [];
let sent: string[] = [];
let accepted2xx = 0;
try {
  const profileDir = process.env.BENCH_CPU_PROF;
  const execArgv = profileDir ? [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${profileDir}`] : process.execArgv;
  await withForkedServers(webProcesses, serverFile, { env: { BENCH_DATABASE_URL: database.url, BENCH_WEBHOOK_SECRET: SECRET }, execArgv }, async (servers) => {
    const server = { origin: servers.map((one) => one.origin), pids: servers.map((one) => one.pid) };
    await webhookLoad(server.origin, 8, quick ? 500 : 3000, []); // warm-up (its deliveries are not counted)
    await plainInserts(database.url, 8, quick ? 300 : 1000);
    for (const c of concurrencies) {
      const plain = await plainInserts(database.url, c, stepMs);
      const before = sampleCpu();
      const ids: string[] = [];
      const webhooks = await webhookLoad(server.origin, c, stepMs, ids);
      const after = sampleCpu();
      accepted2xx += webhooks.statuses[202] ?? 0;
      sent = sent.concat(ids);
      steps.push({ concurrency: c, webhooks, plain, cpuWebhooks: before && after ? cpuUsage(before, after, benchmarkGroups({ server: server.pids })) : undefined });
      console.error(`  ${c} connections: webhooks ${Math.round(webhooks.rps)}/s p99 ${webhooks.p99ms.toFixed(1)} ms; plain INSERT ${Math.round(plain.tps)}/s p99 ${plain.p99ms.toFixed(1)} ms`);
    }
  });

  const found = await withClient(database.url, async (client) => {
    const rows = await client.query<{ n: string }>("select count(*) as n from inbound_events where source = 'webhook:generic' and status = 'received' and delivery_id = any($1::text[])", [sent]);
    const jobs = await client.query<{ n: string }>("select count(*) as n from projectx_jobs.job where name = 'webhooks.process'");
    // Every accepted delivery must be named by a queued processing job (they commit together).
    const covered = await client.query<{ n: string }>(
      `with named as (
         select distinct x.id::uuid as id
           from projectx_jobs.job j, jsonb_array_elements_text(j.data->'payload'->'inboundIds') as x(id)
          where j.name = 'webhooks.process')
       select count(*) as n from inbound_events i join named on named.id = i.id
        where i.source = 'webhook:generic' and i.delivery_id = any($1::text[])`,
      [sent],
    );
    // Staged but not yet relayed (src/jobs/inbound-outbox.ts): the service relays what is staged when it stops.
    const staged = await client.query<{ n: string }>(
      `select count(*) as n from inbound_job_outbox o, unnest(o.inbound_ids) as x(id) join inbound_events i on i.id = x.id
        where i.source = 'webhook:generic' and i.delivery_id = any($1::text[])`,
      [sent],
    );
    return { rows: Number(rows.rows[0]?.n ?? 0), jobs: Number(jobs.rows[0]?.n ?? 0), covered: Number(covered.rows[0]?.n ?? 0), staged: Number(staged.rows[0]?.n ?? 0) };
  });
  const settings = await durabilitySettings(database.url);

  const g = (cpu: CpuUsage | undefined, name: string) => (cpu ? (cpu.groups[name] ?? 0).toFixed(2) : 'n/a');
  console.log(`\n### webhooks (closed loop; ${stepMs / 1000} s per step; signed Standard Webhooks deliveries to ${webProcesses === 1 ? 'one web-role process' : `${webProcesses} web-role processes, connections spread evenly`}; ${database.where}; ${settings}; node ${process.version}; client, server and PostgreSQL share this machine's cores)\n`);
  console.log('| connections | accepted/s | p50 ms | p99 ms | errors | non-202 | plain INSERT tx/s | INSERT p50 ms | INSERT p99 ms | accepted / INSERT | CPU cores (webhooks step): client / server / pg / other |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const step of steps) {
    const w = step.webhooks;
    const non202 = Object.entries(w.statuses).filter(([status]) => status !== '202').reduce((sum, [, n]) => sum + n, 0);
    const cpu = step.cpuWebhooks;
    console.log(
      `| ${step.concurrency} | ${Math.round(w.rps)} | ${w.p50ms.toFixed(2)} | ${w.p99ms.toFixed(2)} | ${w.errors} | ${non202} | ${Math.round(step.plain.tps)} | ${step.plain.p50ms.toFixed(2)} | ${step.plain.p99ms.toFixed(2)} | ${(w.rps / step.plain.tps).toFixed(2)} | ${g(cpu, 'client')} / ${g(cpu, 'server')} / ${g(cpu, 'postgres')} / ${cpu ? cpu.other.toFixed(2) : 'n/a'} |`,
    );
  }
  const clean = steps.filter((step) => step.webhooks.errors === 0 && (step.webhooks.statuses[202] ?? 0) === step.webhooks.requests && step.webhooks.p99ms < KNEE_P99_MS);
  const knee = clean.sort((a, b) => b.webhooks.rps - a.webhooks.rps)[0];
  console.log('\n#### summary\n');
  console.log(`- durability: ${accepted2xx} deliveries answered 202; ${found.rows} of them found in inbound_events ('received', waiting for a worker) → ${found.rows === accepted2xx ? 'every accepted delivery was committed' : 'MISSING ROWS'}; ${found.covered} of them named by one of the ${found.jobs} queued processing jobs (relayed from the outbox, up to 100 deliveries each), ${found.staged} still staged → ${found.covered + found.staged === accepted2xx ? 'every accepted delivery has its job' : 'DELIVERIES WITHOUT A JOB'}`);
  if (knee) {
    const ratio = knee.webhooks.rps / knee.plain.tps;
    console.log(`- knee (highest throughput with p99 < ${KNEE_P99_MS} ms and only 202s): ${knee.concurrency} connections, ${Math.round(knee.webhooks.rps)} accepted/s, p99 ${knee.webhooks.p99ms.toFixed(1)} ms`);
    console.log(`- target, ≥ ${TARGET_RATIO * 100}% of the plain INSERT ceiling at the same concurrency (${Math.round(knee.plain.tps)} tx/s): ${(ratio * 100).toFixed(0)}% → ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'}`);
  } else {
    console.log(`- no step had p99 < ${KNEE_P99_MS} ms with only 202s → target NOT MET`);
  }
} finally {
  await database.close();
}
