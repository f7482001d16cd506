/**
 * The sync under test for bench/jira-sync, in a process of its own so that its peak memory is its own: one full
 * sync of the `issue` model of the Jira instance in BENCH_INSTANCE_ID through the real path (the Jira client with
 * an API token, the `(updated, id)` pull over enhanced search with `nextPageToken`, the sync runner with its
 * read-ahead, the ledger, and the remediation tasks the issues become). Sends the run summary, its wall time, its
 * CPU time and the process's peak RSS to the parent, and exits when the parent answers (it samples the CPU of this
 * process and of its database sessions first).
 */
import { randomUUID } from 'node:crypto';
import { jira } from '../../src/connectors/jira/index.ts';
import { createBreaker } from '../../src/connectors/sdk/breaker.ts';
import { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { loadInstance } from '../../src/connectors/sdk/instances.ts';
import { runSync } from '../../src/connectors/sdk/sync.ts';
import { systemClock } from '../../src/clock.ts';
import { createDatabase } from '../../src/db/database.ts';
import { createEventSink } from '../../src/jobs/domain-events.ts';
import { jobsOf } from '../../src/module.ts';
import { modules } from '../../src/modules.ts';
import { startJobRuntime } from '../../src/jobs/runtime.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';

const url = process.env.BENCH_DATABASE_URL!;
const keyring = new Keyring([{ id: 'bench', key: Buffer.from(process.env.BENCH_KEY!, 'base64') }]);
const logger = createLogger({ level: 'warn', destination: process.stderr });
const db = createDatabase({ connectionString: url, max: 4 });
const metrics = createMetrics({ defaultMetrics: false });
const jobs = await startJobRuntime({ connectionString: url, definitions: jobsOf(modules), logger, metrics, supervise: false });
// As the job that runs a sync builds it (src/jobs/connector-context.ts): a page may queue follow-up work.
const runtime = { db, logger, clock: systemClock, metrics, events: createEventSink(jobs), jobs };
const instance = await loadInstance(db, keyring, jira, process.env.BENCH_INSTANCE_ID!);
const client = jira.createClient(instance, { ...runtime, keyring });
const started = performance.now();
const cpuBefore = process.cpuUsage();
const summary = await runSync({
  runtime,
  connector: jira,
  instance,
  client,
  breaker: createBreaker({ ...runtime, instance, connector: jira, direction: 'read' }),
  request: { runId: randomUUID(), model: 'issue', full: true, trigger: 'manual' },
  finalAttempt: true,
  signal: new AbortController().signal,
});
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
// The result first, while this process and its database sessions still live (the parent reads their CPU time
// from /proc); then, when the parent says so, close and exit.
const closing = new Promise((resolve) => process.once('message', resolve));
process.send?.({ summary, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssBytes: process.resourceUsage().maxRSS * 1024 });
await closing;
await client.close();
await jobs.stop(1000);
await db.destroy();
process.disconnect?.();
