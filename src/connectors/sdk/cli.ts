/**
 * Connector verbs of the `projectx` CLI:
 *
 * - `projectx sync <connector> [--full] [--wait] [--model <name>]... [--instance <name>] [--timeout <seconds>]`
 *   queues a sync of each model of each enabled instance (through the queue, so the one-run-per-(instance,
 *   model) rule holds against running services too). With `--wait` this process also works the sync queue
 *   until its runs end, so it works with or without a service running, and prints each run's summary as JSON
 *   (run id, status, pages, records seen / created / updated / unchanged / rejected, duration). Exit 1 when a
 *   run failed or the wait timed out.
 * - `projectx credentials rotate-key [--all]` re-encrypts every stored secret under the current key
 *   (src/connectors/sdk/rotate-key.ts).
 * - `projectx connectors list | enable | disable | configure`: the instances, their health and circuits; the
 *   runbook's `integration.<name>.enabled` flag; settings from a JSON file and credentials as a JSON object on
 *   stdin (never on the command line, where shell history would keep them). Schedules follow at once.
 * - `projectx pushes list [--status pending|failed|sent] [--limit <n>]` and `pushes replay <id>`: writes to
 *   connected systems waiting (degraded mode), failed for good, or sent; a replay puts a failed one back in line
 *   (audited) and wakes its instance's sender.
 */
import path from 'node:path';
import type { Io } from '../../bot/console/operator-cli.ts';
import { UsageError, audit, one, parse, strings } from '../../bot/console/operator-cli.ts';
import { wakePushes } from '../../jobs/connector-push.ts';
import { LocalEvidenceStore } from '../evidence-stores/local.ts';
import { connectorSync, enqueueSync } from '../../jobs/connector-sync.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { OperatorContext } from '../../main.ts';
import { createMetrics } from '../../metrics.ts';
import type { Logger } from '../../logger.ts';
import { connectors, findConnector } from '../registry.ts';
import { InstanceError, configureInstance, ensureInstanceFromEnv, listInstances } from './instances.ts';
import { installConnectorSchedules } from '../../jobs/connector-sync.ts';
import { readFile } from 'node:fs/promises';
import { RotationAborted, rotateKey } from './rotate-key.ts';

const fail = (message: string) => Object.assign(new Error(message), { exitCode: 1 });

export async function syncVerb(ctx: OperatorContext, args: readonly string[], io: Io, logger: Logger): Promise<number> {
  const { values, positionals } = parse(args, { full: { type: 'boolean' }, wait: { type: 'boolean' }, model: { type: 'string', multiple: true }, instance: { type: 'string' }, timeout: { type: 'string' } });
  const id = positionals[0];
  if (!id || positionals.length > 1) throw new UsageError(`sync <connector> [--full] [--wait] [--model <name>]... [--instance <name>] [--timeout <seconds>]; connectors: ${connectors.map((c) => c.id).join(', ')}`);
  const connector = findConnector(id);
  if (!connector) throw new UsageError(`unknown connector "${id}"; connectors: ${connectors.map((c) => c.id).join(', ')}`);
  const models = strings(values.model);
  for (const name of models) if (!connector.models.some((model) => model.name === name)) throw new UsageError(`${connector.id} has no model "${name}"; models: ${connector.models.map((model) => model.name).join(', ')}`);
  const timeoutSeconds = Number(one(values.timeout) ?? 900);
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) throw new UsageError('--timeout must be a number of seconds');
  // The instance the environment describes, as a starting service would record it.
  await ensureInstanceFromEnv(ctx.db, ctx.keyring, connector, connector.fromEnv(ctx.config));
  const instances = (await listInstances(ctx.db, connector.id)).filter((instance) => one(values.instance) === undefined || instance.name === one(values.instance));
  if (instances.length === 0) throw fail(`no enabled ${connector.title} instance${one(values.instance) ? ` named ${one(values.instance)}` : ''} (configure it in the environment: see .env.example)`);

  const runs: { runId: string; instance: string; model: string }[] = [];
  for (const instance of instances) {
    for (const model of connector.models.filter((candidate) => models.length === 0 || models.includes(candidate.name))) {
      const runId = await enqueueSync(ctx.jobs, { connector: connector.id, instanceId: instance.id, model: model.name, full: values.full === true, trigger: 'manual' });
      runs.push({ runId, instance: instance.name, model: model.name });
    }
  }
  if (values.wait !== true) {
    for (const run of runs) io.out(JSON.stringify({ runId: run.runId, connector: connector.id, instance: run.instance, model: run.model, status: 'queued' }));
    return 0;
  }

  if (!ctx.keyring) throw fail('connector credentials cannot be read: set PROJECTX_ENCRYPTION_KEY');
  const deps: JobDeps = {
    db: ctx.db,
    logger,
    clock: ctx.domain.clock,
    metrics: createMetrics({ defaultMetrics: false }),
    config: ctx.config,
    jobs: ctx.jobs,
    events: ctx.domain.events,
    notifiers: [],
    rerenderers: [],
    evidenceStore: new LocalEvidenceStore(ctx.config.EVIDENCE_LOCAL_DIR ?? path.join(ctx.config.PROJECTX_DATA_DIR, 'evidence')),
    keyring: ctx.keyring,
  };
  await ctx.jobs.work(deps, { only: [connectorSync.name] });
  const deadline = Date.now() + timeoutSeconds * 1000;
  let failed = false;
  for (const run of runs) {
    const summary = await waitForRun(ctx, run.runId, deadline);
    if (!summary) {
      io.err(`run ${run.runId} (${connector.id} ${run.model}) did not finish within ${timeoutSeconds} s; it goes on in the queue`);
      failed = true;
      continue;
    }
    io.out(JSON.stringify({ ...summary, connector: connector.id, instance: run.instance, model: run.model }));
    if (summary.status === 'failed') failed = true;
  }
  return failed ? 1 : 0;
}

/** The run's summary once it has ended, or undefined at the deadline. */
async function waitForRun(ctx: OperatorContext, runId: string, deadline: number) {
  for (;;) {
    const row = await ctx.db.selectFrom('integration_runs').select(['status', 'counts', 'error_codes', 'latency_ms', 'started_at', 'finished_at']).where('id', '=', runId).executeTakeFirst();
    if (row && row.status !== 'running') {
      const counts = row.counts;
      return {
        runId,
        status: row.status,
        pages: counts.pages ?? 0,
        seen: counts.seen ?? 0,
        created: counts.created ?? 0,
        updated: counts.updated ?? 0,
        unchanged: counts.unchanged ?? 0,
        rejected: counts.rejected ?? 0,
        requests: counts.requests ?? 0,
        errorCodes: row.error_codes,
        durationMs: row.finished_at ? row.finished_at.getTime() - row.started_at.getTime() : row.latency_ms,
      };
    }
    if (Date.now() >= deadline) return undefined;
    // A person is waiting at a terminal: a quarter second between looks at one row is cheap and prompt enough.
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export async function credentialsVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { all: { type: 'boolean' } });
  if (positionals[0] !== 'rotate-key' || positionals.length > 1) throw new UsageError('credentials rotate-key [--all]');
  if (!ctx.keyring) throw fail('no encryption key is loaded: set PROJECTX_ENCRYPTION_KEY (new key first, then the old ones)');
  try {
    const report = await rotateKey(ctx.db, ctx.keyring, { actor: 'cli', all: values.all === true });
    const total = Object.values(report.rotated).reduce((sum, n) => sum + n, 0);
    io.out(`re-encrypted ${total} secret(s) under key ${report.keyId}${total > 0 ? ` (${Object.entries(report.rotated).map(([kind, n]) => `${kind} ${n}`).join(', ')})` : ''}; ${report.current} already under it`);
    return 0;
  } catch (error) {
    if (error instanceof RotationAborted) throw fail(error.message);
    throw error;
  }
}

const PUSH_STATUSES = ['pending', 'failed', 'sent'] as const;

export async function pushesVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    const { values } = parse(rest, { status: { type: 'string' }, limit: { type: 'string' } });
    const status = one(values.status) ?? 'failed';
    if (!PUSH_STATUSES.includes(status as never)) throw new UsageError(`--status must be one of ${PUSH_STATUSES.join(', ')}`);
    const limit = Math.min(1000, Math.max(1, Number(one(values.limit) ?? 100) || 100));
    const rows = await ctx.db
      .selectFrom('integration_pushes')
      .innerJoin('integration_configs', 'integration_configs.id', 'integration_pushes.config_id')
      .select(['integration_pushes.id', 'integration_configs.type', 'integration_configs.name', 'operation', 'record_key', 'attempts', 'last_error', 'integration_pushes.created_at'])
      .where('status', '=', status as (typeof PUSH_STATUSES)[number])
      .orderBy('integration_pushes.id')
      .limit(limit)
      .execute();
    for (const row of rows) {
      const error = (row.last_error ?? {}) as { code?: string; message?: string };
      io.out(`${row.id}  ${row.created_at.toISOString()}  ${row.type}:${row.name}  ${row.operation} ${row.record_key}  attempts ${row.attempts}${error.code ? `  ${error.code}${error.message ? `: ${error.message}` : ''}` : ''}`);
    }
    if (rows.length === 0) io.out(`no ${status} writes`);
    return 0;
  }
  if (sub === 'replay') {
    const id = rest[0];
    if (!id || !/^\d+$/.test(id) || rest.length > 1) throw new UsageError('pushes replay <id>');
    const row = await ctx.db
      .updateTable('integration_pushes')
      .set({ status: 'pending', attempts: 0, next_attempt_at: ctx.domain.clock.now(), last_error: null })
      .where('id', '=', id)
      .where('status', '=', 'failed')
      .returning(['config_id', 'operation', 'record_key'])
      .executeTakeFirst();
    if (!row) throw fail(`no failed write ${id} (list them with: projectx pushes list)`);
    const instance = await ctx.db.selectFrom('integration_configs').select('type').where('id', '=', row.config_id).executeTakeFirstOrThrow();
    await audit(ctx, 'integration.push.replay', 'integration_push', id, { operation: row.operation, recordKey: row.record_key });
    await wakePushes(ctx.jobs, { connector: instance.type, instanceId: row.config_id });
    io.out(`write ${id} (${row.operation} ${row.record_key}) is back in line`);
    return 0;
  }
  throw new UsageError('pushes list [--status pending|failed|sent] [--limit <n>] | pushes replay <id>');
}

const CONNECTORS_USAGE = 'connectors list | connectors enable|disable <connector> [--instance <name>] | connectors configure <connector> [--instance <name>] [--settings-file <json>] [--credentials-stdin]';

export async function connectorsVerb(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    parse(rest, {});
    const rows = await ctx.db
      .selectFrom('integration_configs')
      .leftJoin('integration_health_metrics', 'integration_health_metrics.config_id', 'integration_configs.id')
      .select(['integration_configs.id', 'integration_configs.type', 'integration_configs.name', 'integration_configs.environment', 'integration_configs.enabled', 'integration_health_metrics.status', 'integration_health_metrics.last_success_at', 'integration_health_metrics.last_error_code'])
      .orderBy('integration_configs.type')
      .orderBy('integration_configs.name')
      .execute();
    const circuits = await ctx.db.selectFrom('integration_circuits').select(['config_id', 'direction', 'state']).execute();
    for (const row of rows) {
      const states = ['read', 'write'].map((direction) => `${direction} ${circuits.find((circuit) => circuit.config_id === row.id && circuit.direction === direction)?.state ?? 'closed'}`).join(', ');
      io.out(`${row.type}:${row.name} (${row.environment})  ${row.enabled ? 'enabled' : 'disabled'}  health ${row.status ?? 'unknown'}${row.last_error_code ? ` (${row.last_error_code})` : ''}  circuits ${states}${row.last_success_at ? `  last success ${row.last_success_at.toISOString()}` : ''}`);
    }
    if (rows.length === 0) io.out(`no connector instances (configure one in the environment or with: projectx connectors configure <${connectors.map((c) => c.id).join('|')}> --settings-file …)`);
    return 0;
  }
  if (sub !== 'enable' && sub !== 'disable' && sub !== 'configure') throw new UsageError(CONNECTORS_USAGE);
  const { values, positionals } = parse(rest, { instance: { type: 'string' }, 'settings-file': { type: 'string' }, 'credentials-stdin': { type: 'boolean' } });
  const connector = positionals[0] ? findConnector(positionals[0]) : undefined;
  if (!connector || positionals.length > 1) throw new UsageError(`${CONNECTORS_USAGE}; connectors: ${connectors.map((c) => c.id).join(', ')}`);
  const name = one(values.instance) ?? 'default';
  if (sub === 'configure') {
    const settingsFile = one(values['settings-file']);
    let settings: unknown;
    if (settingsFile) {
      try {
        settings = JSON.parse(await readFile(settingsFile, 'utf8'));
      } catch (error) {
        throw fail(`cannot read settings from ${settingsFile}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    let credentials: Record<string, string> | undefined;
    if (values['credentials-stdin'] === true) {
      const text = await readAll(io.input);
      const parsed = (() => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          return undefined;
        }
      })();
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((value) => typeof value !== 'string')) throw fail('--credentials-stdin expects a JSON object of credential fields to strings on stdin, e.g. {"client_secret": "…"}');
      credentials = parsed as Record<string, string>;
    }
    if (settings === undefined && credentials === undefined) throw new UsageError(`configure needs --settings-file and/or --credentials-stdin\n${CONNECTORS_USAGE}`);
    try {
      const result = await configureInstance(ctx.db, ctx.keyring, connector, { name, settings, ...(credentials ? { credentials } : {}), actor: 'cli' });
      await audit(ctx, 'integration.configure', 'integration', `${connector.id}:${name}`, { settings: settings !== undefined, credentials: Object.keys(credentials ?? {}).sort() });
      io.out(`${connector.id}:${name} ${result.created ? 'created (disabled: enable it with projectx connectors enable ' + connector.id + (name === 'default' ? '' : ` --instance ${name}`) + ')' : 'updated'}`);
      return 0;
    } catch (error) {
      if (error instanceof InstanceError) throw fail(error.message);
      throw error;
    }
  }
  const changed = await ctx.db.updateTable('integration_configs').set({ enabled: sub === 'enable', updated_at: new Date() }).where('type', '=', connector.id).where('name', '=', name).returning('id').executeTakeFirst();
  if (!changed) throw fail(`no ${connector.title} instance named ${name} (projectx connectors list)`);
  await audit(ctx, `integration.${sub}`, 'integration', `${connector.id}:${name}`, {});
  // Schedules follow the flag at once (they live in the database: every worker sees them).
  await installConnectorSchedules(ctx.jobs.boss, ctx.db, ctx.logger);
  io.out(`${connector.id}:${name} ${sub}d`);
  return 0;
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
