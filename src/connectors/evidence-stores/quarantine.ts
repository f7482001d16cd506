/**
 * Evidence quarantine: files the pipeline accepted but may not record (yet). Their bytes are kept in the
 * database (`evidence_quarantine_chunks`, 1 MiB a row), not in the store, so any process can retry, release or
 * delete them and memory stays flat.
 *
 * - `infected`: refused to the sender, `security.evidence_infected` raised (routed to the security channel);
 *   it stays until an operator deletes it or, for a false positive, releases it (`projectx evidence quarantine`).
 * - `scanner_unavailable`, `scan_limit_exceeded`, `scan_required`: retried by the `evidence.quarantine-retry`
 *   job (backing off from a minute to an hour), recorded once scanned clean, never recorded as clean otherwise.
 *
 * Every step is audited (`evidence.quarantine`, `evidence.quarantine.release`, `evidence.quarantine.delete`).
 */
import { createReadStream } from 'node:fs';
import { sql } from 'kysely';
import type { Db } from '../../db/database.ts';
import type { QuarantineReason } from '../../db/schema.ts';
import { type Actor, actorLabel } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { newEvent } from '../../domain/events.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import { findUserById } from '../../domain/users.ts';
import { ScannerUnavailableError } from './clamd.ts';
import { onStoreFailure, storePause } from './store-health.ts';
import { EvidenceStoreError } from './store.ts';
import { type EvidencePipeline, type PipelineFile, type StagedFile, scanStaged, stageFile, storeAndRecord } from './pipeline.ts';

const CHUNK_BYTES = 1024 * 1024;
/** A held file is scanned again after a minute, then backing off to at most an hour. */
const RETRY_FIRST_SECONDS = 60;
const RETRY_MAX_SECONDS = 3600;

/**
 * Keeps a staged file in quarantine, its bytes and what it was for, in one transaction with its audit entry
 * (and, for an infected file, the security alert). Returns the quarantine id.
 */
export async function quarantineStaged(deps: DomainDeps, input: { file: PipelineFile; actor: Actor; reason: QuarantineReason; signature?: string; error?: string }): Promise<string> {
  const now = deps.clock.now();
  const { file } = input;
  const name = file.originalName ?? file.staged.sha256.slice(0, 12);
  return deps.db.transaction().execute(async (trx) => {
    const row = await trx
      .insertInto('evidence_quarantine')
      .values({
        reason: input.reason,
        signature: input.signature ?? null,
        sha256: file.staged.sha256,
        size_bytes: file.staged.sizeBytes,
        media_type: file.mediaType,
        original_name: file.originalName ?? null,
        source: file.source,
        uploaded_by: input.actor.user?.id ?? null,
        uploader: actorLabel(input.actor),
        control_ids: file.controlIds,
        task_ids: file.taskIds,
        retention_until: file.retentionUntil ?? null,
        valid_until: file.validUntil ?? null,
        next_attempt_at: input.reason === 'infected' ? null : new Date(now.getTime() + RETRY_FIRST_SECONDS * 1000),
        last_error: input.error ?? null,
        created_at: now,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await copyIn(trx, row.id, file.staged.path);
    await appendAudit(trx, {
      actor: input.actor,
      action: 'evidence.quarantine',
      objectType: 'evidence_quarantine',
      objectId: row.id,
      outcome: 'success',
      at: now,
      detail: { reason: input.reason, ...(input.signature ? { signature: input.signature } : {}), sha256: file.staged.sha256, name: file.originalName ?? null, source: file.source },
    });
    if (input.reason === 'infected') await emitInfected(deps, trx, { id: row.id, name, signature: input.signature ?? 'unknown', source: file.source, uploader: actorLabel(input.actor), controlIds: file.controlIds, sha256: file.staged.sha256 }, now);
    return row.id;
  });
}

async function emitInfected(deps: DomainDeps, trx: Db, item: { id: string; name: string; signature: string; source: string; uploader: string; controlIds: string[]; sha256: string }, now: Date): Promise<void> {
  await deps.events.emit(
    trx,
    newEvent(
      {
        type: 'security.evidence_infected',
        subject: { kind: 'evidence', id: item.id, label: item.name },
        summary: `Infected evidence refused: ${item.name} (from ${item.source}, ${item.uploader}) carries ${item.signature}; it is quarantined (projectx evidence quarantine list)`,
        priority: 1,
        controlIds: item.controlIds,
        data: { quarantineId: item.id, signature: item.signature, source: item.source, uploader: item.uploader, sha256: item.sha256 },
      },
      now,
    ),
  );
}

async function copyIn(trx: Db, id: string, file: string): Promise<void> {
  let seq = 0;
  // highWaterMark = chunk size: each row is one read, so at most one chunk is in memory.
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) {
    await trx.insertInto('evidence_quarantine_chunks').values({ quarantine_id: id, seq: seq++, data: chunk as Buffer }).execute();
  }
}

/** The quarantined bytes back in a staging file (the pipeline's own staging), checked against the hash kept with them. */
async function stageFromQuarantine(db: Db, pipeline: EvidencePipeline, id: string, sha256: string): Promise<StagedFile> {
  // One chunk at a time (by seq): memory stays at a chunk whatever the file's size.
  async function* chunks() {
    for (let seq = 0; ; seq++) {
      const row = await db.selectFrom('evidence_quarantine_chunks').select('data').where('quarantine_id', '=', id).where('seq', '=', seq).executeTakeFirst();
      if (!row) return;
      yield row.data;
    }
  }
  const staged = await stageFile(chunks(), { stagingDir: pipeline.stagingDir, maxBytes: Number.MAX_SAFE_INTEGER });
  if (staged.sha256 !== sha256) {
    await staged.discard();
    throw Object.assign(new Error(`quarantined file ${id} no longer matches its hash`), { code: 'quarantine_corrupt' });
  }
  return staged;
}

type QuarantineRow = Awaited<ReturnType<typeof loadRow>>;
const loadRow = (db: Db, id: string) => db.selectFrom('evidence_quarantine').selectAll().where('id', '=', id).executeTakeFirst();

/** The uploader again, for recording: the system acting for them (their targets were checked at upload). */
async function uploaderActor(db: Db, row: NonNullable<QuarantineRow>, via: string): Promise<Actor> {
  const user = row.uploaded_by ? await findUserById(db, row.uploaded_by) : undefined;
  return { surface: 'system', user, via };
}

const pipelineFile = (row: NonNullable<QuarantineRow>, staged: StagedFile): PipelineFile => ({
  staged,
  mediaType: row.media_type,
  originalName: row.original_name ?? undefined,
  source: row.source,
  controlIds: row.control_ids,
  taskIds: row.task_ids,
  retentionUntil: row.retention_until ?? undefined,
  validUntil: row.valid_until ?? undefined,
});

async function markRecorded(deps: DomainDeps, id: string, evidenceId: string, by: string): Promise<void> {
  await deps.db.transaction().execute(async (trx) => {
    await trx.updateTable('evidence_quarantine').set({ status: 'recorded', evidence_id: evidenceId, resolved_at: deps.clock.now(), resolved_by: by, next_attempt_at: null }).where('id', '=', id).execute();
    await trx.deleteFrom('evidence_quarantine_chunks').where('quarantine_id', '=', id).execute();
  });
}

export interface RetrySummary {
  recorded: number;
  infected: number;
  held: number;
}

/**
 * Scans again the held files that are due (never infected ones: those wait for an operator). Each is claimed by
 * moving its next attempt forward first, so two workers never scan the same file at once, and one file's
 * failure leaves the others' outcomes standing.
 */
export async function retryQuarantined(deps: DomainDeps, pipeline: EvidencePipeline, options: { limit?: number } = {}): Promise<RetrySummary> {
  const now = deps.clock.now();
  // A paused store (out of space) gets one file a run: the probe that ends the pause when it succeeds.
  const paused = await storePause(deps.db, pipeline.store);
  const limit = paused ? 1 : (options.limit ?? 20);
  const claimed = await sql<{ id: string; attempts: number }>`
    update evidence_quarantine q set attempts = q.attempts + 1,
      next_attempt_at = ${now}::timestamptz + make_interval(secs => least(${RETRY_MAX_SECONDS}, ${RETRY_FIRST_SECONDS} * power(2, q.attempts)))
    where q.id in (select id from evidence_quarantine where status = 'held' and reason <> 'infected' and next_attempt_at <= ${now}
                   order by next_attempt_at limit ${limit} for update skip locked)
    returning q.id, q.attempts`.execute(deps.db);
  const summary: RetrySummary = { recorded: 0, infected: 0, held: 0 };
  for (const { id } of claimed.rows) {
    const outcome = await retryOne(deps, pipeline, id).catch(async (error: unknown) => {
      await deps.db.updateTable('evidence_quarantine').set({ last_error: error instanceof Error ? error.message : String(error) }).where('id', '=', id).execute();
      return 'held' as const;
    });
    summary[outcome]++;
  }
  return summary;
}

async function retryOne(deps: DomainDeps, pipeline: EvidencePipeline, id: string): Promise<keyof RetrySummary> {
  const row = await loadRow(deps.db, id);
  if (!row || row.status !== 'held') return 'held';
  if (!pipeline.scanner && pipeline.scanRequired) {
    await deps.db.updateTable('evidence_quarantine').set({ reason: 'scan_required', last_error: 'no virus scanner is configured (CLAMAV_URL)' }).where('id', '=', id).execute();
    return 'held';
  }
  const staged = await stageFromQuarantine(deps.db, pipeline, id, row.sha256);
  try {
    const actor = await uploaderActor(deps.db, row, 'evidence-quarantine');
    if (pipeline.scanner) {
      let verdict;
      try {
        verdict = await scanStaged(pipeline.scanner, staged);
      } catch (error) {
        if (!(error instanceof ScannerUnavailableError)) throw error;
        await deps.db.updateTable('evidence_quarantine').set({ reason: error.code, last_error: error.message }).where('id', '=', id).execute();
        return 'held';
      }
      if (!verdict.clean) {
        const now = deps.clock.now();
        await deps.db.transaction().execute(async (trx) => {
          await trx.updateTable('evidence_quarantine').set({ reason: 'infected', signature: verdict.signature, next_attempt_at: null, last_error: null }).where('id', '=', id).execute();
          await appendAudit(trx, { actor, action: 'evidence.quarantine', objectType: 'evidence_quarantine', objectId: id, outcome: 'success', at: now, detail: { reason: 'infected', signature: verdict.signature, sha256: row.sha256, name: row.original_name, source: row.source } });
          await emitInfected(deps, trx, { id, name: row.original_name ?? row.sha256.slice(0, 12), signature: verdict.signature, source: row.source, uploader: row.uploader, controlIds: row.control_ids, sha256: row.sha256 }, now);
        });
        return 'infected';
      }
    }
    // Clean, or no scanner configured any more and none required: recorded as what it is.
    let recorded;
    try {
      recorded = await storeAndRecord(deps, pipeline, actor, pipelineFile(row, staged), pipeline.scanner ? 'clean' : 'unscanned');
    } catch (error) {
      if (!(error instanceof EvidenceStoreError)) throw error;
      await onStoreFailure(deps, pipeline.store, error);
      await deps.db.updateTable('evidence_quarantine').set({ reason: error.code, last_error: error.message }).where('id', '=', id).execute();
      return 'held';
    }
    if (!recorded.ok) {
      await deps.db.updateTable('evidence_quarantine').set({ last_error: recorded.refusal.message }).where('id', '=', id).execute();
      return 'held';
    }
    await markRecorded(deps, id, recorded.value.id, 'evidence-quarantine');
    return 'recorded';
  } finally {
    await staged.discard();
  }
}

export interface QuarantineListing {
  id: string;
  status: string;
  reason: QuarantineReason;
  signature: string | null;
  name: string | null;
  source: string;
  uploader: string;
  sizeBytes: number;
  sha256: string;
  targets: string[];
  attempts: number;
  nextAttemptAt: Date | null;
  lastError: string | null;
  createdAt: Date;
}

/** Quarantined files, newest first; held ones only unless `all`. */
export async function listQuarantine(db: Db, options: { all?: boolean; limit: number }): Promise<QuarantineListing[]> {
  let query = db.selectFrom('evidence_quarantine').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(options.limit);
  if (!options.all) query = query.where('status', '=', 'held');
  const rows = await query.execute();
  return rows.map((row) => ({
    id: row.id,
    status: row.status,
    reason: row.reason,
    signature: row.signature,
    name: row.original_name,
    source: row.source,
    uploader: row.uploader,
    sizeBytes: Number(row.size_bytes),
    sha256: row.sha256,
    targets: [...row.control_ids.map((id) => `control:${id}`), ...row.task_ids.map((id) => `task:${id}`)],
    attempts: row.attempts,
    nextAttemptAt: row.next_attempt_at,
    lastError: row.last_error,
    createdAt: row.created_at,
  }));
}

/**
 * An operator lets a held file through without a clean scan (a false positive, or a file they vouch for): it
 * is stored and recorded as `released`, naming who released it and why.
 */
export async function releaseQuarantined(deps: DomainDeps, pipeline: EvidencePipeline, operator: Actor, id: string, reason: string): Promise<Result<{ evidenceId: string; sha256: string }>> {
  const row = await loadRow(deps.db, id);
  if (!row) return refuse('not_found', `no quarantined file ${id}`);
  if (row.status !== 'held') return refuse('not_held', `quarantined file ${id} is ${row.status} already`);
  const staged = await stageFromQuarantine(deps.db, pipeline, id, row.sha256);
  try {
    const actor = await uploaderActor(deps.db, row, `evidence-quarantine-release:${actorLabel(operator)}`);
    const recorded = await storeAndRecord(deps, pipeline, actor, pipelineFile(row, staged), 'released');
    if (!recorded.ok) return recorded;
    await deps.db.transaction().execute(async (trx) => {
      await appendAudit(trx, { actor: operator, action: 'evidence.quarantine.release', objectType: 'evidence_quarantine', objectId: id, outcome: 'success', at: deps.clock.now(), detail: { reason, quarantineReason: row.reason, signature: row.signature, sha256: row.sha256, evidenceId: recorded.value.id } });
    });
    await markRecorded(deps, id, recorded.value.id, actorLabel(operator));
    return ok({ evidenceId: recorded.value.id, sha256: row.sha256 });
  } finally {
    await staged.discard();
  }
}

/** An operator deletes a quarantined file's bytes; its row stays, as `deleted`, for the record. */
export async function deleteQuarantined(deps: DomainDeps, operator: Actor, id: string, reason: string): Promise<Result<{ sha256: string }>> {
  return deps.db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('evidence_quarantine').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (!row) return refuse<{ sha256: string }>('not_found', `no quarantined file ${id}`);
    if (row.status !== 'held') return refuse<{ sha256: string }>('not_held', `quarantined file ${id} is ${row.status} already`);
    await trx.deleteFrom('evidence_quarantine_chunks').where('quarantine_id', '=', id).execute();
    await trx.updateTable('evidence_quarantine').set({ status: 'deleted', resolved_at: deps.clock.now(), resolved_by: actorLabel(operator), next_attempt_at: null }).where('id', '=', id).execute();
    await appendAudit(trx, { actor: operator, action: 'evidence.quarantine.delete', objectType: 'evidence_quarantine', objectId: id, outcome: 'success', at: deps.clock.now(), detail: { reason, quarantineReason: row.reason, signature: row.signature, sha256: row.sha256 } });
    return ok({ sha256: row.sha256 });
  });
}
