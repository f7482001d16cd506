/**
 * Nightly reconciliation of one model of one instance: the system's ids (ids only, `listIds`, ascending) are
 * merged page by page with the ledger's (`external_records`, same order), so memory does not grow with the
 * table:
 *
 * - in the ledger, not in the system: deleted there (or hidden from us). When the model can fetch records by
 *   id (the listing may come from a search index that lags), they are asked for first, and only those the
 *   system does not return are. Flagged `missing_since` (not deleted: what was synced stays for the record),
 *   with the model's effects (`onMissing`), and reported;
 * - in the system, not in the ledger: a record the syncs missed (an orphan). Reported, and a full sync of the
 *   model is queued, which brings it in;
 * - back in the system after being flagged: the flag is cleared.
 *
 * The run is recorded in `integration_runs` (trigger `reconcile`), and when anything was found one
 * `integration.reconciled` event tells the connector's alert channel.
 */
import { sql } from 'kysely';
import type { RunStatus } from '../../db/schema.ts';
import { newEvent } from '../../domain/events.ts';
import { flagMissing } from './ledger.ts';
import type { ConnectorDefinition, ConnectorInstance, ConnectorRuntime, SyncModel } from './contract.ts';

export interface ReconcileSummary {
  runId: string;
  status: RunStatus;
  remote: number;
  local: number;
  missing: number;
  orphans: number;
  reappeared: number;
  errorCodes: string[];
}

export async function reconcile<Settings, Client>(input: { runtime: ConnectorRuntime; connector: ConnectorDefinition<Settings, Client>; instance: ConnectorInstance<Settings>; client: Client; model: SyncModel<Settings, Client>; runId: string; signal: AbortSignal }): Promise<ReconcileSummary> {
  const { runtime, connector, instance, model } = input;
  const started = runtime.clock.now();
  const summary: ReconcileSummary = { runId: input.runId, status: 'running', remote: 0, local: 0, missing: 0, orphans: 0, reappeared: 0, errorCodes: [] };
  if (!model.listIds) return { ...summary, status: 'cancelled', errorCodes: ['no_id_listing'] };
  await runtime.db.insertInto('integration_runs').values({ id: input.runId, config_id: instance.id, model: model.name, trigger: 'reconcile', status: 'running', started_at: started, counts: '{}' }).onConflict((oc) => oc.column('id').doNothing()).execute();

  const now = started;
  let after = ''; // the ledger has been compared up to and including this id
  const orphanSample: string[] = [];
  const missingSample: string[] = [];
  const compare = async (remoteIds: readonly string[], upTo: string | undefined) => {
    // The ledger's ids in (after, upTo] (or everything after `after` at the end).
    let query = runtime.db
      .selectFrom('external_records')
      .select(['external_id', 'missing_since'])
      .where('config_id', '=', instance.id)
      .where('model', '=', model.name)
      .where(sql<boolean>`external_id collate "C" > ${after}`)
      .orderBy(sql`external_id collate "C"`);
    if (upTo !== undefined) query = query.where(sql<boolean>`external_id collate "C" <= ${upTo}`);
    const local = await query.execute();
    summary.local += local.length;
    const remote = new Set(remoteIds);
    const localIds = new Set(local.map((row) => row.external_id));
    let gone = local.filter((row) => !remote.has(row.external_id) && row.missing_since === null).map((row) => row.external_id);
    const back = local.filter((row) => remote.has(row.external_id) && row.missing_since !== null).map((row) => row.external_id);
    const orphans = remoteIds.filter((id) => !localIds.has(id));
    // The listing may come from a search index that lags (Jira's): ask for the candidates by id before calling them gone.
    if (gone.length && model.fetchByIds) gone = await confirmGone(gone);
    if (gone.length) await runtime.db.transaction().execute((trx) => flagMissing(trx, { runtime, instance, model, externalIds: gone, now }));
    if (back.length) await runtime.db.updateTable('external_records').set({ missing_since: null }).where('config_id', '=', instance.id).where('model', '=', model.name).where('external_id', 'in', back).execute();
    summary.missing += gone.length;
    summary.reappeared += back.length;
    summary.orphans += orphans.length;
    missingSample.push(...gone.slice(0, 20 - missingSample.length));
    orphanSample.push(...orphans.slice(0, 20 - orphanSample.length));
  };

  const confirmGone = async (candidates: string[]): Promise<string[]> => {
    const confirmed: string[] = [];
    for (let index = 0; index < candidates.length; index += 100) {
      const answer = await model.fetchByIds!({ client: input.client, instance, ids: candidates.slice(index, index + 100) });
      if (!answer.ok) throw new ConfirmFailed(answer.failure.code);
      confirmed.push(...answer.missing);
    }
    return confirmed;
  };

  try {
    for await (const step of model.listIds({ client: input.client, instance, signal: input.signal })) {
      if (!step.ok) {
        summary.errorCodes.push(step.failure.code);
        await finishRun(runtime, summary, 'failed', started);
        return { ...summary, status: 'failed' };
      }
      summary.remote += step.ids.length;
      const last = step.ids[step.ids.length - 1]!;
      await compare(step.ids, last);
      after = last;
      // The counts so far, for whoever watches the run (`projectx reconcile --wait`): one small update a page.
      await runtime.db.updateTable('integration_runs').set({ counts: JSON.stringify(countsOf(summary)) }).where('id', '=', summary.runId).execute();
    }
    if (!input.signal.aborted) await compare([], undefined); // what the ledger holds past the system's last id
  } catch (error) {
    if (!(error instanceof ConfirmFailed)) throw error;
    summary.errorCodes.push(error.code);
    await finishRun(runtime, summary, 'failed', started);
    return { ...summary, status: 'failed' };
  }
  if (input.signal.aborted) {
    // Stopped before the listing ended: nothing past this point may be judged.
    summary.errorCodes.push('interrupted');
    await finishRun(runtime, summary, 'failed', started);
    return { ...summary, status: 'failed' };
  }

  await runtime.db.transaction().execute(async (trx) => {
    if (summary.missing + summary.orphans === 0) return;
    await runtime.events.emit(
      trx,
      newEvent(
        {
          type: 'integration.reconciled',
          subject: { kind: 'integration', id: instance.id, label: `${connector.id}:${instance.name}` },
          summary: `${connector.title} ${model.name} reconciliation: ${summary.missing} record(s) no longer in ${connector.title} (flagged), ${summary.orphans} the syncs had missed (a full sync is queued). Runbook ${connector.runbookId}.`,
          priority: 3,
          data: { connector: connector.id, model: model.name, missing: summary.missing, orphans: summary.orphans, missingSample, orphanSample, runbookId: connector.runbookId },
        },
        now,
      ),
    );
  });
  await finishRun(runtime, summary, 'succeeded', started);
  return { ...summary, status: 'succeeded' };
}

/** Asking the system for the records that seemed gone failed: nothing past this point may be judged. */
class ConfirmFailed extends Error {
  readonly code: string;
  constructor(code: string) {
    super(`confirming missing records failed (${code})`);
    this.code = code;
  }
}

async function finishRun(runtime: ConnectorRuntime, summary: ReconcileSummary, status: RunStatus, started: Date): Promise<void> {
  const now = runtime.clock.now();
  await runtime.db
    .updateTable('integration_runs')
    .set({ status, finished_at: now, latency_ms: now.getTime() - started.getTime(), counts: JSON.stringify(countsOf(summary)), error_codes: summary.errorCodes })
    .where('id', '=', summary.runId)
    .execute();
}

const countsOf = (summary: ReconcileSummary) => ({ remote: summary.remote, local: summary.local, missing: summary.missing, orphans: summary.orphans, reappeared: summary.reappeared });
