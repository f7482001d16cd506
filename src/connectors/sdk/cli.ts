/**
 * The connector framework's operator verbs:
 *
 * - `projectx sync <connector> …` queues a sync of each model of each enabled instance (through the queue, so
 *   the one-run-per-(instance, model) rule holds against running services too). With `--wait` this process
 *   also works the sync queue until its runs end (so it works with or without a service running): a terminal
 *   shows pages, records and time as they go; each run's summary is printed as it ends (JSON when stdout is not
 *   a terminal). Exit 1 when a run failed or the wait timed out.
 * - `projectx reconcile <connector> …` does the same for the nightly ids-only comparison.
 * - `projectx connectors list | enable | disable | configure`: instances, their health and circuits; the
 *   runbook's `integration.<name>.enabled` flag; settings from a JSON file and credentials as a JSON object on
 *   stdin (never on the command line, where shell history would keep them). Schedules follow at once.
 * - `projectx pushes list | replay`: writes to connected systems waiting (degraded mode), failed for good, or
 *   sent; a replay puts a failed one back in line (audited) and wakes its instance's sender.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UsageError, fail, limitOption, one, parse, strings } from '../../cli/args.ts';
import { audit } from '../../cli/audit.ts';
import type { OperatorContext } from '../../cli/context.ts';
import { printList } from '../../cli/output.ts';
import { type Progress, count, startProgress } from '../../cli/progress.ts';
import { type CliVerb, type Io, defineVerb } from '../../cli/verb.ts';
import { wakePushes } from '../../jobs/connector-push.ts';
import { connectorReconcile, connectorSync, enqueueSync, installConnectorSchedules, syncKey } from '../../jobs/connector-sync.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import { createMetrics } from '../../metrics.ts';
import { selectEvidenceStore } from '../../module.ts';
import type { ConnectorDefinition } from './contract.ts';
import { InstanceError, configureInstance, ensureInstanceFromEnv, listInstances } from './instances.ts';

const connectorIds = (ctx: OperatorContext) => ctx.connectors.map((connector) => connector.id).join(', ');

function connectorNamed(ctx: OperatorContext, id: string | undefined): ConnectorDefinition {
  if (!id) throw new UsageError(`name the connector (${connectorIds(ctx)})`);
  const connector = ctx.connectors.find((candidate) => candidate.id === id);
  if (!connector) throw new UsageError(`unknown connector "${id}" (connectors: ${connectorIds(ctx)})`);
  return connector;
}

/** The enabled instances a run is for: the environment's (recorded as a starting service would) and the CLI's. */
async function instancesFor(ctx: OperatorContext, connector: ConnectorDefinition, name: string | undefined) {
  await ensureInstanceFromEnv(ctx.db, ctx.keyring, connector, connector.fromEnv(ctx.config));
  const instances = (await listInstances(ctx.db, connector.id)).filter((instance) => name === undefined || instance.name === name);
  if (instances.length === 0) fail(`no enabled ${connector.title} instance${name ? ` named ${name}` : ''} (configure it in the environment, see .env.example, or with projectx connectors configure)`);
  return instances;
}

function timeoutOption(value: unknown): number {
  const raw = one(value) ?? '900';
  if (!/^\d+(\.\d+)?$/.test(raw) || Number(raw) <= 0) throw new UsageError('--timeout takes a number of seconds');
  return Number(raw);
}

/** What this process needs to work a connector queue itself (`--wait`). */
function workerDeps(ctx: OperatorContext): JobDeps {
  if (!ctx.keyring) fail('connector credentials cannot be read: set PROJECTX_ENCRYPTION_KEY');
  return {
    db: ctx.db,
    logger: ctx.logger,
    clock: ctx.domain.clock,
    metrics: createMetrics({ defaultMetrics: false }),
    config: ctx.config,
    jobs: ctx.jobs,
    events: ctx.domain.events,
    notifiers: [],
    rerenderers: [],
    evidenceStore: selectEvidenceStore(ctx.modules, ctx.config),
    keyring: ctx.keyring,
    connectors: ctx.connectors,
    integrations: ctx.integrations,
  };
}

interface Watched {
  runId: string;
  connector: string;
  instance: string;
  model: string;
}

type RunRow = { status: string; counts: Record<string, number>; error_codes: string[]; latency_ms: number | null; started_at: Date; finished_at: Date | null };

/**
 * Waits for the runs to end (or the deadline), looking at their rows four times a second: a person is waiting,
 * and one indexed row per run is cheap. Each run's summary is printed as it ends; `describe` says what a run
 * has done so far, for the progress line.
 */
async function watchRuns(ctx: OperatorContext, io: Io, runs: readonly Watched[], deadline: number, output: { summary: (run: Watched, row: RunRow) => Record<string, unknown>; human: (run: Watched, row: RunRow) => string; describe: (rows: readonly (RunRow | undefined)[]) => string }): Promise<boolean> {
  const progress: Progress = startProgress(io);
  const pending = new Map(runs.map((run) => [run.runId, run]));
  let failed = false;
  for (;;) {
    const rows = await ctx.db.selectFrom('integration_runs').select(['id', 'status', 'counts', 'error_codes', 'latency_ms', 'started_at', 'finished_at']).where('id', 'in', runs.map((run) => run.runId)).execute();
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const [runId, run] of pending) {
      const row = byId.get(runId);
      if (!row || row.status === 'running') continue;
      pending.delete(runId);
      progress.done();
      if (row.status === 'failed') failed = true;
      io.out(io.terminal ? output.human(run, row) : JSON.stringify(output.summary(run, row)));
    }
    if (pending.size === 0) return !failed;
    if (Date.now() >= deadline) {
      progress.done();
      for (const run of pending.values()) io.err(`run ${run.runId} (${run.connector} ${run.model}) did not finish in time; it goes on in the queue`);
      return false;
    }
    progress.update(`${runs[0]!.connector}: ${output.describe(runs.map((run) => byId.get(run.runId)))}; ${runs.length - pending.size} of ${runs.length} run(s) done`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const duration = (row: RunRow) => (row.finished_at ? row.finished_at.getTime() - row.started_at.getTime() : (row.latency_ms ?? 0));
const total = (rows: readonly (RunRow | undefined)[], key: string) => rows.reduce((sum, row) => sum + (row?.counts[key] ?? 0), 0);

export const syncVerb: CliVerb = defineVerb({
  name: 'sync',
  summary: 'Sync a connector now (and wait for it)',
  commands: [
    {
      name: '',
      usage: 'sync <connector> [--full] [--wait] [--model <name>]... [--instance <name>] [--timeout <seconds>]',
      summary: 'Queues a sync of each model of each enabled instance; --wait runs it here and prints each run\'s summary (JSON when stdout is not a terminal).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { full: { type: 'boolean' }, wait: { type: 'boolean' }, model: { type: 'string', multiple: true }, instance: { type: 'string' }, timeout: { type: 'string' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        const models = strings(values.model);
        for (const name of models) if (!connector.models.some((model) => model.name === name)) throw new UsageError(`${connector.id} has no model "${name}" (models: ${connector.models.map((model) => model.name).join(', ')})`);
        const timeoutSeconds = timeoutOption(values.timeout);
        const instances = await instancesFor(ctx, connector, one(values.instance));
        const runs: Watched[] = [];
        for (const instance of instances) {
          for (const model of connector.models.filter((candidate) => models.length === 0 || models.includes(candidate.name))) {
            const runId = await enqueueSync(ctx.jobs, { connector: connector.id, instanceId: instance.id, model: model.name, full: values.full === true, trigger: 'manual' });
            runs.push({ runId, connector: connector.id, instance: instance.name, model: model.name });
          }
        }
        if (values.wait !== true) {
          for (const run of runs) io.out(io.terminal ? `queued ${run.connector}:${run.instance} ${run.model} (run ${run.runId})` : JSON.stringify({ ...run, status: 'queued' }));
          return 0;
        }
        await ctx.jobs.work(workerDeps(ctx), { only: [connectorSync.name] });
        const ok = await watchRuns(ctx, io, runs, Date.now() + timeoutSeconds * 1000, {
          summary: (run, row) => ({
            runId: run.runId,
            status: row.status,
            pages: row.counts.pages ?? 0,
            seen: row.counts.seen ?? 0,
            created: row.counts.created ?? 0,
            updated: row.counts.updated ?? 0,
            unchanged: row.counts.unchanged ?? 0,
            rejected: row.counts.rejected ?? 0,
            requests: row.counts.requests ?? 0,
            errorCodes: row.error_codes,
            durationMs: duration(row),
            connector: run.connector,
            instance: run.instance,
            model: run.model,
          }),
          human: (run, row) =>
            `${run.connector}:${run.instance} ${run.model} ${row.status}: ${count(row.counts.pages ?? 0)} pages, ${count(row.counts.seen ?? 0)} records (${count(row.counts.created ?? 0)} created, ${count(row.counts.updated ?? 0)} updated, ${count(row.counts.unchanged ?? 0)} unchanged, ${count(row.counts.rejected ?? 0)} rejected) in ${(duration(row) / 1000).toFixed(1)} s${row.error_codes.length ? `; errors: ${row.error_codes.join(', ')}` : ''}`,
          describe: (rows) => `${count(total(rows, 'pages'))} pages, ${count(total(rows, 'seen'))} records`,
        });
        return ok ? 0 : 1;
      },
    },
  ],
});

export const reconcileVerb: CliVerb = defineVerb({
  name: 'reconcile',
  summary: 'Compare a connector\'s ids with what was synced now (deletions, missed records)',
  commands: [
    {
      name: '',
      usage: 'reconcile <connector> [--wait] [--model <name>]... [--instance <name>] [--timeout <seconds>]',
      summary: 'What runs nightly at 02:17 UTC: records deleted upstream are flagged, records the syncs missed bring a full sync. --wait runs it here and prints each summary.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { wait: { type: 'boolean' }, model: { type: 'string', multiple: true }, instance: { type: 'string' }, timeout: { type: 'string' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        const listable = connector.models.filter((model) => model.listIds !== undefined);
        const models = strings(values.model);
        for (const name of models) if (!listable.some((model) => model.name === name)) throw new UsageError(`${connector.id} cannot reconcile "${name}" (models that can: ${listable.map((model) => model.name).join(', ') || 'none'})`);
        const timeoutSeconds = timeoutOption(values.timeout);
        const instances = await instancesFor(ctx, connector, one(values.instance));
        const runs: Watched[] = [];
        for (const instance of instances) {
          for (const model of listable.filter((candidate) => models.length === 0 || models.includes(candidate.name))) {
            const runId = randomUUID();
            const id = await ctx.jobs.enqueue(connectorReconcile, { connector: connector.id, instanceId: instance.id, model: model.name, runId }, { singletonKey: syncKey(instance.id, model.name) });
            if (!id) fail(`the reconciliation of ${connector.id} ${model.name} could not be queued`);
            runs.push({ runId, connector: connector.id, instance: instance.name, model: model.name });
          }
        }
        if (runs.length === 0) fail(`${connector.title} has no model that can list its ids`);
        if (values.wait !== true) {
          for (const run of runs) io.out(io.terminal ? `queued reconciliation of ${run.connector}:${run.instance} ${run.model} (run ${run.runId})` : JSON.stringify({ ...run, status: 'queued' }));
          return 0;
        }
        await ctx.jobs.work(workerDeps(ctx), { only: [connectorReconcile.name] });
        const ok = await watchRuns(ctx, io, runs, Date.now() + timeoutSeconds * 1000, {
          summary: (run, row) => ({ runId: run.runId, status: row.status, remote: row.counts.remote ?? 0, local: row.counts.local ?? 0, missing: row.counts.missing ?? 0, orphans: row.counts.orphans ?? 0, reappeared: row.counts.reappeared ?? 0, errorCodes: row.error_codes, durationMs: duration(row), connector: run.connector, instance: run.instance, model: run.model }),
          human: (run, row) =>
            `${run.connector}:${run.instance} ${run.model} ${row.status}: ${count(row.counts.remote ?? 0)} ids upstream, ${count(row.counts.local ?? 0)} synced; ${count(row.counts.missing ?? 0)} gone upstream (flagged), ${count(row.counts.orphans ?? 0)} missed by the syncs${(row.counts.orphans ?? 0) > 0 ? ' (a full sync is queued)' : ''}, ${count(row.counts.reappeared ?? 0)} back in ${(duration(row) / 1000).toFixed(1)} s${row.error_codes.length ? `; errors: ${row.error_codes.join(', ')}` : ''}`,
          describe: (rows) => `${count(total(rows, 'remote'))} ids compared`,
        });
        return ok ? 0 : 1;
      },
    },
  ],
});

const PUSH_STATUSES = ['pending', 'failed', 'sent'] as const;

export const pushesVerb: CliVerb = defineVerb({
  name: 'pushes',
  summary: 'Writes to connected systems: waiting, failed for good, sent',
  commands: [
    {
      name: 'list',
      usage: 'pushes list [--status pending|failed|sent] [--limit <n>]',
      summary: 'Failed ones by default, oldest first.',
      list: true,
      async run(ctx, args, io) {
        const { values } = parse(args, { status: { type: 'string' }, limit: { type: 'string' } });
        const status = one(values.status) ?? 'failed';
        if (!PUSH_STATUSES.includes(status as never)) throw new UsageError(`--status must be one of ${PUSH_STATUSES.join(', ')}`);
        const rows = await ctx.db
          .selectFrom('integration_pushes')
          .innerJoin('integration_configs', 'integration_configs.id', 'integration_pushes.config_id')
          .select(['integration_pushes.id', 'integration_configs.type', 'integration_configs.name', 'operation', 'record_key', 'attempts', 'last_error', 'integration_pushes.created_at'])
          .where('status', '=', status as (typeof PUSH_STATUSES)[number])
          .orderBy('integration_pushes.id')
          .limit(limitOption(values.limit))
          .execute();
        printList(io, rows, {
          line: (row) => {
            const error = (row.last_error ?? {}) as { code?: string; message?: string };
            return `${row.id}  ${row.created_at.toISOString()}  ${row.type}:${row.name}  ${row.operation} ${row.record_key}  attempts ${row.attempts}${error.code ? `  ${error.code}${error.message ? `: ${error.message}` : ''}` : ''}`;
          },
          json: (row) => ({ id: row.id, connector: row.type, instance: row.name, operation: row.operation, recordKey: row.record_key, status, attempts: row.attempts, lastError: row.last_error, createdAt: row.created_at }),
          empty: `no ${status} writes`,
        });
        return 0;
      },
    },
    {
      name: 'replay',
      usage: 'pushes replay <id>',
      summary: 'Puts a failed write back in line (audited) and wakes its sender.',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const id = positionals[0];
        if (!id || !/^\d{1,18}$/.test(id) || positionals.length > 1) throw new UsageError('pushes replay takes one write id (a number, from pushes list)');
        const row = await ctx.db
          .updateTable('integration_pushes')
          .set({ status: 'pending', attempts: 0, next_attempt_at: ctx.domain.clock.now(), last_error: null })
          .where('id', '=', id)
          .where('status', '=', 'failed')
          .returning(['config_id', 'operation', 'record_key'])
          .executeTakeFirst();
        if (!row) return fail(`no failed write ${id} (list them with: projectx pushes list)`);
        const instance = await ctx.db.selectFrom('integration_configs').select('type').where('id', '=', row.config_id).executeTakeFirstOrThrow();
        await audit(ctx, 'integration.push.replay', 'integration_push', id, { operation: row.operation, recordKey: row.record_key });
        await wakePushes(ctx.jobs, { connector: instance.type, instanceId: row.config_id });
        io.out(`write ${id} (${row.operation} ${row.record_key}) is back in line`);
        return 0;
      },
    },
  ],
});

export const connectorsVerb: CliVerb = defineVerb({
  name: 'connectors',
  summary: 'Connector instances: list, configure, enable, disable',
  commands: [
    {
      name: 'list',
      usage: 'connectors list',
      summary: 'Each instance: enabled, health, circuits, last success.',
      list: true,
      async run(ctx, args, io) {
        parse(args, {});
        const rows = await ctx.db
          .selectFrom('integration_configs')
          .leftJoin('integration_health_metrics', 'integration_health_metrics.config_id', 'integration_configs.id')
          .select(['integration_configs.id', 'integration_configs.type', 'integration_configs.name', 'integration_configs.environment', 'integration_configs.enabled', 'integration_health_metrics.status', 'integration_health_metrics.last_success_at', 'integration_health_metrics.last_error_code'])
          .orderBy('integration_configs.type')
          .orderBy('integration_configs.name')
          .execute();
        const circuits = await ctx.db.selectFrom('integration_circuits').select(['config_id', 'direction', 'state']).execute();
        const circuitOf = (id: string, direction: string) => circuits.find((circuit) => circuit.config_id === id && circuit.direction === direction)?.state ?? 'closed';
        printList(io, rows, {
          line: (row) =>
            `${row.type}:${row.name} (${row.environment})  ${row.enabled ? 'enabled' : 'disabled'}  health ${row.status ?? 'unknown'}${row.last_error_code ? ` (${row.last_error_code})` : ''}  circuits read ${circuitOf(row.id, 'read')}, write ${circuitOf(row.id, 'write')}${row.last_success_at ? `  last success ${row.last_success_at.toISOString()}` : ''}`,
          json: (row) => ({ connector: row.type, instance: row.name, environment: row.environment, enabled: row.enabled, health: row.status ?? 'unknown', lastErrorCode: row.last_error_code, lastSuccessAt: row.last_success_at, circuits: { read: circuitOf(row.id, 'read'), write: circuitOf(row.id, 'write') } }),
          empty: `no connector instances (configure one in the environment or with: projectx connectors configure <${ctx.connectors.map((c) => c.id).join('|')}> --settings-file …)`,
        });
        return 0;
      },
    },
    {
      name: 'configure',
      usage: 'connectors configure <connector> [--instance <name>] [--settings-file <json>] [--credentials-stdin]',
      summary: 'Credentials as a JSON object on stdin, e.g. {"client_secret": "…"}; a new instance starts disabled.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { instance: { type: 'string' }, 'settings-file': { type: 'string' }, 'credentials-stdin': { type: 'boolean' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        const name = one(values.instance) ?? 'default';
        const settingsFile = one(values['settings-file']);
        if (settingsFile === undefined && values['credentials-stdin'] !== true) throw new UsageError('give --settings-file and/or --credentials-stdin');
        let settings: unknown;
        if (settingsFile) {
          try {
            settings = JSON.parse(await readFile(settingsFile, 'utf8'));
          } catch (error) {
            fail(`cannot read settings from ${settingsFile}: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
        let credentials: Record<string, string> | undefined;
        if (values['credentials-stdin'] === true) {
          const parsed = parseJson(await readAll(io.input));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || Object.values(parsed).some((value) => typeof value !== 'string')) fail('--credentials-stdin expects a JSON object of credential fields to strings on stdin, e.g. {"client_secret": "…"}');
          credentials = parsed as Record<string, string>;
        }
        try {
          const result = await configureInstance(ctx.db, ctx.keyring, connector, { name, settings, ...(credentials ? { credentials } : {}), actor: 'cli' });
          await audit(ctx, 'integration.configure', 'integration', `${connector.id}:${name}`, { settings: settings !== undefined, credentials: Object.keys(credentials ?? {}).sort() });
          io.out(`${connector.id}:${name} ${result.created ? `created (disabled: enable it with projectx connectors enable ${connector.id}${name === 'default' ? '' : ` --instance ${name}`})` : 'updated'}`);
          return 0;
        } catch (error) {
          if (error instanceof InstanceError) fail(error.message);
          throw error;
        }
      },
    },
    ...(['enable', 'disable'] as const).map((action) => ({
      name: action,
      usage: `connectors ${action} <connector> [--instance <name>]`,
      summary: action === 'enable' ? 'Its schedules start at once (every worker sees them).' : 'Its schedules stop; what it would write waits for it.',
      async run(ctx: OperatorContext, args: readonly string[], io: Io) {
        const { values, positionals } = parse(args, { instance: { type: 'string' } });
        if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}"`);
        const connector = connectorNamed(ctx, positionals[0]);
        const name = one(values.instance) ?? 'default';
        const changed = await ctx.db.updateTable('integration_configs').set({ enabled: action === 'enable', updated_at: new Date() }).where('type', '=', connector.id).where('name', '=', name).returning('id').executeTakeFirst();
        if (!changed) fail(`no ${connector.title} instance named ${name} (projectx connectors list)`);
        await audit(ctx, `integration.${action}`, 'integration', `${connector.id}:${name}`, {});
        // Schedules follow the flag at once (they live in the database: every worker sees them).
        await installConnectorSchedules(ctx.jobs.boss, ctx.db, ctx.logger, ctx.connectors);
        io.out(`${connector.id}:${name} ${action}d`);
        return 0;
      },
    })),
  ],
});

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

async function readAll(input: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
