/**
 * What a store's failures do beyond holding the file (the runbook's failure rules):
 * - out of space (`store_quota_exceeded`): ingestion into the store pauses (its circuit) and operations are
 *   alerted (`integration.degraded`); new files wait in quarantine without being tried, one held file is tried
 *   per retry run as a probe, and the pause ends when a store succeeds again ("space returned",
 *   `integration.recovered`) or an operator resumes it (`projectx evidence store resume`);
 * - access denied (`store_access_denied`): one actionable task saying what access is missing, for whom;
 * - unavailable or an integrity refusal: nothing more (the file is held and retried).
 */
import type { Db } from '../../db/database.ts';
import { type Actor, SYSTEM_ACTOR, actorLabel } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { newEvent } from '../../domain/events.ts';
import { createTask } from '../../domain/tasks.ts';
import type { EvidenceStore, EvidenceStoreError } from './store.ts';

const subjectOf = (store: Pick<EvidenceStore, 'kind'>) => ({ kind: 'integration' as const, id: `evidence-store:${store.kind}`, label: `evidence store ${store.kind}` });

/** The pause of a store, when it is paused. */
export async function storePause(db: Db, store: Pick<EvidenceStore, 'kind'>): Promise<{ since: Date; message: string } | undefined> {
  const row = await db.selectFrom('evidence_store_state').select(['paused_at', 'message']).where('store', '=', store.kind).executeTakeFirst();
  return row?.paused_at ? { since: row.paused_at, message: row.message ?? '' } : undefined;
}

export async function onStoreFailure(deps: DomainDeps, store: Pick<EvidenceStore, 'kind'>, error: EvidenceStoreError): Promise<void> {
  const now = deps.clock.now();
  if (error.code === 'store_quota_exceeded') {
    await deps.db.transaction().execute(async (trx) => {
      const paused = await trx
        .insertInto('evidence_store_state')
        .values({ store: store.kind, paused_at: now, reason: error.code, message: error.message, updated_at: now })
        .onConflict((oc) => oc.column('store').doUpdateSet({ paused_at: now, reason: error.code, message: error.message, updated_at: now }).where('evidence_store_state.paused_at', 'is', null))
        .returning('store')
        .executeTakeFirst();
      if (!paused) return; // already paused: alerted then
      await appendAudit(trx, { actor: SYSTEM_ACTOR, action: 'evidence.store.pause', objectType: 'evidence_store', objectId: store.kind, outcome: 'success', at: now, detail: { reason: error.code, message: error.message } });
      await deps.events.emit(
        trx,
        newEvent({ type: 'integration.degraded', subject: subjectOf(store), priority: 2, summary: `Evidence ingestion into the ${store.kind} store is paused: ${error.message}. New files wait in quarantine; free space, then run projectx evidence store resume (or it resumes when a retry succeeds).`, data: { code: error.code } }, now),
      );
    });
  } else if (error.code === 'store_access_denied') {
    const state = await deps.db.selectFrom('evidence_store_state').leftJoin('tasks', 'tasks.id', 'evidence_store_state.access_task_id').select(['tasks.state']).where('store', '=', store.kind).executeTakeFirst();
    if (state?.state === 'open' || state?.state === 'in_progress') return; // one open task at a time
    const task = await createTask(deps, { ...SYSTEM_ACTOR, via: 'evidence-store' }, {
      type: 'remediation',
      title: `Grant ProjectX access to the ${store.kind} evidence store`,
      description: `Evidence files cannot be stored: ${error.message}. The identity ProjectX uses for the store (its credentials or assumed role) needs to read and write its objects (for S3: s3:GetObject, s3:PutObject, s3:PutObjectRetention, s3:GetBucketObjectLockConfiguration and kms:GenerateDataKey on the key). Files wait in quarantine meanwhile (projectx evidence quarantine list) and are stored once access works.`,
      priority: 'high',
    });
    if (!task.ok) return;
    await deps.db
      .insertInto('evidence_store_state')
      .values({ store: store.kind, access_task_id: task.value.id, updated_at: now })
      .onConflict((oc) => oc.column('store').doUpdateSet({ access_task_id: task.value.id, updated_at: now }))
      .execute();
  }
}

/** A store took a file: a pause ends (space returned). */
export async function onStoreSuccess(deps: DomainDeps, store: Pick<EvidenceStore, 'kind'>): Promise<void> {
  await resumeStore(deps, store, SYSTEM_ACTOR, 'a stored file showed space has returned');
}

/** Ends a pause; false when the store was not paused. */
export async function resumeStore(deps: DomainDeps, store: Pick<EvidenceStore, 'kind'>, actor: Actor, why: string): Promise<boolean> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (trx) => {
    const resumed = await trx.updateTable('evidence_store_state').set({ paused_at: null, reason: null, message: null, updated_at: now }).where('store', '=', store.kind).where('paused_at', 'is not', null).returning('store').executeTakeFirst();
    if (!resumed) return false;
    await appendAudit(trx, { actor, action: 'evidence.store.resume', objectType: 'evidence_store', objectId: store.kind, outcome: 'success', at: now, detail: { why } });
    await deps.events.emit(trx, newEvent({ type: 'integration.recovered', subject: subjectOf(store), summary: `Evidence ingestion into the ${store.kind} store resumed (${why}, ${actorLabel(actor)}); held files are stored on their next retry.` }, now));
    return true;
  });
}
