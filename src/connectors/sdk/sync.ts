/**
 * The sync runner: one run of one model of one connector instance, from its checkpoint to the end.
 *
 * Per page, in ONE transaction: the valid records are upserted into the ledger (`external_records`) by external
 * id with their content hash, and only the new or changed ones are written (the hash is compared in the
 * statement); the model's domain effects run for exactly those; records that fail the model's schema are kept
 * (`integration_events`, status `rejected`) with one medium alert each; the checkpoint (the page's cursor) and
 * the run's counts and position are saved (src/connectors/sdk/ledger.ts stores the records). So a process killed mid-sync resumes from the last committed page and nothing
 * is lost or applied twice: a page is either wholly in, checkpoint included, or not at all.
 *
 * The run is recorded in `integration_runs` (counts, error codes, latency, cursor before and after, a hash per
 * page) and `integration_health_metrics`; Prometheus gets `sync_records_total`, `sync_latency_seconds`.
 * A read circuit breaker guards the pulls. A wait longer than a call may sleep (a 429's Retry-After, an outage)
 * ends the attempt as `deferred` with the time to resume: the job re-enqueues itself for then, same run.
 */
import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Database, RunStatus } from '../../db/schema.ts';
import type { Breaker } from './breaker.ts';
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime, SyncModel } from './contract.ts';
import { isAuthFailure, noteAuthFailure } from './auth-alert.ts';
import { type RecordsOutcome, storeRecords } from './ledger.ts';
import type { UpstreamFailure } from './http-client.ts';

export interface SyncRequest {
  runId: string;
  model: string;
  full: boolean;
  trigger: 'schedule' | 'manual' | 'webhook' | 'retry' | 'reconcile';
}

export interface RunCounts {
  pages: number;
  seen: number;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  requests: number;
}

export interface RunSummary {
  runId: string;
  connector: string;
  instance: string;
  model: string;
  /** `deferred`: resume at `retryAt`; `retrying`: this attempt failed, the queue retries it (same run). */
  status: RunStatus | 'deferred' | 'retrying';
  counts: RunCounts;
  durationMs: number;
  errorCodes: string[];
  retryAt?: string;
}

const EMPTY: RunCounts = { pages: 0, seen: 0, created: 0, updated: 0, unchanged: 0, rejected: 0, requests: 0 };
/** A run keeps at most this many page hashes (the last ones). */
const MAX_PAGE_HASHES = 2000;

const instrumentsByRegistry = new WeakMap<Registry, { records: Counter<'connector' | 'model' | 'outcome'>; latency: Histogram<'connector' | 'model' | 'status'> }>();
/** One set per registry, shared by every sync (the framework module makes them at start, so /metrics shows them before the first run). */
export function syncInstruments(registry: Registry) {
  let found = instrumentsByRegistry.get(registry);
  if (!found) {
    found = {
      records: new Counter({ name: 'sync_records_total', help: 'Records seen by connector syncs, by outcome (created, updated, unchanged, rejected)', labelNames: ['connector', 'model', 'outcome'], registers: [registry] }),
      latency: new Histogram({ name: 'sync_latency_seconds', help: 'Duration of connector sync runs (each attempt), by final status', labelNames: ['connector', 'model', 'status'], buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600], registers: [registry] }),
    };
    instrumentsByRegistry.set(registry, found);
  }
  return found;
}

export interface RunSyncInput<Settings, Client> {
  runtime: ConnectorRuntime;
  connector: ConnectorDefinition<Settings, Client>;
  instance: ConnectorInstance<Settings>;
  client: Client;
  breaker: Breaker;
  request: SyncRequest;
  /** The queue will not retry this attempt: a failure ends the run. */
  finalAttempt: boolean;
  signal: AbortSignal;
}

export async function runSync<Settings, Client>(input: RunSyncInput<Settings, Client>): Promise<RunSummary> {
  const { runtime, connector, instance, request } = input;
  const model = connector.models.find((candidate) => candidate.name === request.model);
  if (!model) throw new Error(`${connector.id} has no model ${request.model}`);
  const started = runtime.clock.now();
  const metrics = syncInstruments(runtime.metrics.registry);
  const labels = { connector: connector.id, model: model.name };

  // The run row: new, or the same run resumed (a retry after a crash, or after a deferral).
  const existing = await runtime.db.selectFrom('integration_runs').select(['status', 'counts', 'error_codes', 'cursor_after']).where('id', '=', request.runId).executeTakeFirst();
  if (existing && existing.status !== 'running') return summaryOf(input, existing.status, existing.counts as unknown as RunCounts, existing.error_codes, started);
  // A resumed run goes on from its own last stored page (not from the model's checkpoint, which another run,
  // say a scheduled one while this full run waited out a rate limit, may have moved since).
  const own = existing?.cursor_after === null || existing?.cursor_after === undefined ? undefined : model.cursor.safeParse(existing.cursor_after);
  const resumed = own?.success === true;
  let cursorBefore: unknown = null;
  if (own?.success) cursorBefore = own.data;
  else if (!request.full) {
    const state = await runtime.db.selectFrom('integration_sync_state').select('cursor').where('config_id', '=', instance.id).where('model', '=', model.name).executeTakeFirst();
    const saved = state?.cursor === null || state?.cursor === undefined ? undefined : model.cursor.safeParse(state.cursor);
    cursorBefore = saved?.success ? saved.data : null;
  }
  if (!existing) {
    await runtime.db
      .insertInto('integration_runs')
      .values({ id: request.runId, config_id: instance.id, model: model.name, trigger: request.trigger, status: 'running', started_at: started, counts: JSON.stringify(EMPTY), cursor_before: JSON.stringify(cursorBefore), correlation_id: request.runId })
      .execute();
  }
  const counts: RunCounts = { ...EMPTY, ...(existing?.counts as Partial<RunCounts> | undefined) };

  const admission = await input.breaker.admit();
  if (!admission.allowed) return defer(input, counts, started, { code: 'circuit_open', retryAt: admission.retryAt });

  let reportedSuccess = false;
  try {
    for await (const step of readAhead(model.pull({ client: input.client, instance, cursor: cursorBefore as never, full: request.full, resumed, signal: input.signal }))) {
      if (!step.ok) return await failed(input, model, counts, started, step.failure);
      const { page } = step;
      // The page, its checkpoint and the run's counts and position commit together: a run resumed after a
      // crash goes on from exactly what it stored, and its counts add up.
      const next: RunCounts = { ...counts };
      const outcome = await runtime.db.transaction().execute(async (trx) => {
        const stored = await storePage(trx, input, model, page.records, page.cursor, runtime.clock.now());
        next.pages++;
        next.requests += page.requests;
        next.seen += page.records.length;
        next.created += stored.created;
        next.updated += stored.updated;
        next.unchanged += stored.unchanged;
        next.rejected += stored.rejected;
        await trx
          .updateTable('integration_runs')
          .set({ counts: JSON.stringify(next), cursor_after: JSON.stringify(page.cursor), payload_hashes: sql<string[]>`(array_append(payload_hashes, ${stored.pageHash}))[greatest(1, cardinality(payload_hashes) + 2 - ${MAX_PAGE_HASHES}):]` })
          .where('id', '=', request.runId)
          .execute();
        return stored;
      });
      Object.assign(counts, next);
      for (const outcomeName of ['created', 'updated', 'unchanged', 'rejected'] as const) if (outcome[outcomeName] > 0) metrics.records.inc({ ...labels, outcome: outcomeName }, outcome[outcomeName]);
      if (!reportedSuccess) {
        reportedSuccess = true;
        await input.breaker.succeeded();
      }
      if (input.signal.aborted) return defer(input, counts, started, { code: 'interrupted', retryAt: runtime.clock.now() });
    }
  } catch (error) {
    if (admission.probe && !reportedSuccess) await input.breaker.failed('exception');
    // Not the system's doing (a bug, a constraint, the database): recorded on the run and, on the last attempt,
    // as its failure with the instance's health, so a sync that keeps failing never looks healthy.
    const code = typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'internal_error';
    if (input.finalAttempt) await finish(input, 'failed', counts, [code], started).catch(() => undefined);
    else await defer(input, counts, started, { code, retryAt: runtime.clock.now() }).catch(() => undefined);
    throw error;
  }
  // Stopped before the first page (the worker is shutting down): not a success, the queue runs it again.
  if (input.signal.aborted) return defer(input, counts, started, { code: 'interrupted', retryAt: runtime.clock.now() });
  if (!reportedSuccess) await input.breaker.succeeded(); // an empty pull is a success too
  const status: RunStatus = counts.rejected > 0 ? 'partial' : 'succeeded';
  const summary = await finish(input, status, counts, counts.rejected > 0 ? ['record_rejected'] : [], started);
  metrics.latency.observe({ ...labels, status }, summary.durationMs / 1000);
  return summary;
}

/**
 * The pages of `source`, the next one already asked for while the caller stores the current one: the wait on
 * the system (its latency, its work) overlaps our database write instead of adding to it. One page ahead
 * only, so memory stays bounded; a page read ahead but not stored (a crash, a failure) is simply read again
 * from the checkpoint.
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let next = iterator.next();
  try {
    for (;;) {
      const current = await next;
      if (current.done) return;
      next = iterator.next();
      // If the caller stops early, the read-ahead's outcome is not awaited: keep its failure from going unhandled.
      next.catch(() => undefined);
      yield current.value;
    }
  } finally {
    await iterator.return?.();
  }
}

interface PageOutcome extends RecordsOutcome {
  pageHash: string;
}

async function storePage<Settings, Client>(trx: Kysely<Database>, input: RunSyncInput<Settings, Client>, model: SyncModel<Settings, Client>, records: readonly unknown[], cursor: unknown, now: Date): Promise<PageOutcome> {
  const outcome = await storeRecords(trx, { runtime: input.runtime, connector: input.connector, instance: input.instance, runId: input.request.runId }, model, records, now);
  await trx
    .insertInto('integration_sync_state')
    .values({ config_id: input.instance.id, model: model.name, cursor: JSON.stringify(cursor), run_id: input.request.runId, updated_at: now })
    .onConflict((oc) => oc.columns(['config_id', 'model']).doUpdateSet({ cursor: JSON.stringify(cursor), run_id: input.request.runId, updated_at: now }))
    .execute();
  return { ...outcome, pageHash: createHash('sha256').update(JSON.stringify(records)).digest('hex') };
}

async function failed<Settings, Client>(input: RunSyncInput<Settings, Client>, model: SyncModel<Settings, Client>, counts: RunCounts, started: Date, failure: UpstreamFailure): Promise<RunSummary> {
  if (failure.kind === 'deferred') {
    // The system asked us to come back (or is briefly away): not a failure of the run, and not the breaker's
    // business unless it keeps happening (the retries inside each call already happened).
    if (failure.code === 'upstream_unavailable') await input.breaker.failed(failure.code);
    return defer(input, counts, started, { code: failure.code, retryAt: failure.retryAt });
  }
  await input.breaker.failed(failure.code);
  const authFailure = isAuthFailure(failure);
  if (authFailure) await noteAuthFailure(input, failure);
  if (!input.finalAttempt) {
    // The queue retries with backoff; the run stays open and resumes from its checkpoint.
    await defer(input, counts, started, { code: failure.code, retryAt: input.runtime.clock.now() });
    return { ...summaryBase(input, counts, started), status: 'retrying', errorCodes: [failure.code] };
  }
  const summary = await finish(input, 'failed', counts, [failure.code], started, { failureCounted: authFailure });
  syncInstruments(input.runtime.metrics.registry).latency.observe({ connector: input.connector.id, model: model.name, status: 'failed' }, summary.durationMs / 1000);
  return summary;
}

async function defer<Settings, Client>(input: RunSyncInput<Settings, Client>, counts: RunCounts, started: Date, why: { code: string; retryAt: Date }): Promise<RunSummary> {
  await input.runtime.db
    .updateTable('integration_runs')
    .set({ counts: JSON.stringify(counts), error_codes: sql<string[]>`array(select distinct unnest(array_append(error_codes, ${why.code})))` })
    .where('id', '=', input.request.runId)
    .execute();
  return { ...summaryBase(input, counts, started), status: 'deferred', errorCodes: [why.code], retryAt: why.retryAt.toISOString() };
}

async function finish<Settings, Client>(input: RunSyncInput<Settings, Client>, status: RunStatus, counts: RunCounts, errorCodes: string[], started: Date, options: { failureCounted?: boolean } = {}): Promise<RunSummary> {
  const { runtime, instance } = input;
  const now = runtime.clock.now();
  const latency = now.getTime() - started.getTime();
  await runtime.db.transaction().execute(async (trx) => {
    await trx
      .updateTable('integration_runs')
      .set({ status, finished_at: now, counts: JSON.stringify(counts), latency_ms: latency, error_codes: sql<string[]>`array(select distinct unnest(error_codes || ${errorCodes}::text[]))` })
      .where('id', '=', input.request.runId)
      .execute();
    const healthy = status !== 'failed';
    await trx
      .insertInto('integration_health_metrics')
      .values({
        config_id: instance.id,
        status: healthy ? 'healthy' : 'degraded',
        last_run_at: now,
        last_success_at: healthy ? now : null,
        last_error_at: healthy ? null : now,
        last_error_code: healthy ? null : (errorCodes[0] ?? 'failed'),
        consecutive_failures: healthy ? 0 : 1,
        updated_at: now,
      })
      .onConflict((oc) =>
        oc.column('config_id').doUpdateSet((eb) => ({
          status: healthy ? 'healthy' : 'degraded',
          last_run_at: now,
          ...(healthy
            ? { last_success_at: now, consecutive_failures: 0 }
            : { last_error_at: now, last_error_code: errorCodes[0] ?? 'failed', consecutive_failures: options.failureCounted ? eb.ref('integration_health_metrics.consecutive_failures') : sql<number>`${eb.ref('integration_health_metrics.consecutive_failures')} + 1` }),
          updated_at: now,
        })),
      )
      .execute();
  });
  return { ...summaryBase(input, counts, started), status, errorCodes };
}

function summaryBase<Settings, Client>(input: RunSyncInput<Settings, Client>, counts: RunCounts, started: Date) {
  return { runId: input.request.runId, connector: input.connector.id, instance: input.instance.name, model: input.request.model, counts: { ...counts }, durationMs: input.runtime.clock.now().getTime() - started.getTime() };
}

function summaryOf<Settings, Client>(input: RunSyncInput<Settings, Client>, status: RunStatus, counts: RunCounts, errorCodes: string[], started: Date): RunSummary {
  return { ...summaryBase(input, { ...EMPTY, ...counts }, started), status, errorCodes };
}
