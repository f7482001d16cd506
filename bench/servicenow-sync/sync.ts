/**
 * The sync under test for bench/servicenow-sync, in a process of its own so that its peak memory is its own:
 * one full sync of the `incident` model of the instance in BENCH_INSTANCE_ID through the real path (the
 * ServiceNow client with OAuth, the keyset pull, the sync runner, the ledger and the domain mirror). Sends the
 * run summary, its wall time and the process's peak RSS to the parent, then exits.
 */
import { randomUUID } from 'node:crypto';
import { createBreaker } from '../../src/connectors/sdk/breaker.ts';
import { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { loadInstance } from '../../src/connectors/sdk/instances.ts';
import { runSync } from '../../src/connectors/sdk/sync.ts';
import { servicenow } from '../../src/connectors/servicenow/index.ts';
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
const runtime = { db, logger, clock: systemClock, metrics, events: createEventSink(jobs) };
const instance = await loadInstance(db, keyring, servicenow, process.env.BENCH_INSTANCE_ID!);
const client = servicenow.createClient(instance, { ...runtime, keyring });
const started = performance.now();
const cpuBefore = process.cpuUsage();
const summary = await runSync({
  runtime,
  connector: servicenow,
  instance,
  client,
  breaker: createBreaker({ ...runtime, instance, connector: servicenow, direction: 'read' }),
  request: { runId: randomUUID(), model: 'incident', full: true, trigger: 'manual' },
  finalAttempt: true,
  signal: new AbortController().signal,
});
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
await client.close();
await jobs.stop(1000);
await db.destroy();
process.send?.({ summary, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssBytes: process.resourceUsage().maxRSS * 1024 });
process.disconnect?.();
