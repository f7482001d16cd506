/**
 * The connector framework's verbs that run something now: `projectx sync <connector> …` queues a sync of each
 * model of each enabled instance (through the queue, so the one-run-per-(instance, model) rule holds against
 * running services too), and `projectx reconcile <connector> …` the nightly ids-only comparison. With `--wait`
 * this process also works that queue until its runs end (so it works with or without a service running): a
 * terminal shows pages, records and time as they go; each run's summary is printed as it ends (JSON when
 * stdout is not a terminal). Exit 1 when a run failed or the wait timed out.
 */
import { randomUUID } from 'node:crypto';
import { UsageError, fail, one, parse, strings } from '../../cli/args.ts';
import type { OperatorContext } from '../../cli/context.ts';
import { type Progress, count, startProgress } from '../../cli/progress.ts';
import { type CliVerb, type Io, defineVerb } from '../../cli/verb.ts';
import { connectorReconcile, connectorSync, enqueueSync, syncKey } from '../../jobs/connector-sync.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import { createMetrics } from '../../metrics.ts';
import { evidencePipelineOf } from '../../module.ts';
import type { ConnectorDefinition } from './contract.ts';
import { ensureInstanceFromEnv, listInstances } from './instances.ts';

export const connectorIds = (ctx: OperatorContext) => ctx.connectors.map((connector) => connector.id).join(', ');

export function connectorNamed(ctx: OperatorContext, id: string | undefined): ConnectorDefinition {
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
    evidence: evidencePipelineOf(ctx.modules, ctx.config),
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
