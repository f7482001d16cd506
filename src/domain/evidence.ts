/**
 * Evidence: a stored file (content-addressed by SHA-256) linked to controls and tasks. The same content is
 * stored once: recording it again, for the same or another control, links the existing evidence.
 */
import type { Kysely } from 'kysely';
import type { Database, EvidenceScanStatus } from '../db/schema.ts';
import { type Actor, isOperator } from './actor.ts';
import { appendAudit, auditRefusal } from './audit.ts';
import type { DomainDeps } from './deps.ts';
import { newEvent } from './events.ts';
import { can } from './permissions.ts';
import { closeRenewals, controlOwners, validUntilFor } from './renewals.ts';
import { type Result, ok, refuse } from './result.ts';

export interface EvidenceInput {
  sha256: string;
  sizeBytes: number;
  mediaType: string;
  storageUri: string;
  /** Where it came from: slack, teams, email, webhook, servicenow, cli, … */
  source: string;
  originalName?: string | undefined;
  retentionUntil?: Date | undefined;
  controlIds?: readonly string[] | undefined;
  taskIds?: readonly string[] | undefined;
  /** Until when it counts for its controls; unset: each control's renewal period from now (none: no expiry). */
  validUntil?: Date | undefined;
  /** How the pipeline scanned it (default `unscanned`); a clean scan upgrades identical content recorded unscanned. */
  scanStatus?: EvidenceScanStatus | undefined;
}

export interface EvidenceRecord {
  id: string;
  sha256: string;
  sizeBytes: number;
  mediaType: string;
  storageUri: string;
  /** False when identical content was already stored (the existing evidence was linked). */
  stored: boolean;
  /** Links this call added (`control:AC-2`, `task:42`); existing ones are not repeated. */
  newLinks: string[];
}

/**
 * May `actor` record evidence against these targets? Checked before any byte is stored (so a refused upload
 * leaves no file behind) and again when recording. A refusal is audited.
 */
export async function checkEvidenceTargets(
  deps: DomainDeps,
  actor: Actor,
  input: { controlIds?: readonly string[] | undefined; taskIds?: readonly string[] | undefined; objectId?: string | undefined },
): Promise<Result<{ controlIds: string[]; taskIds: string[] }>> {
  const now = deps.clock.now();
  const refused = async (code: string, message: string) => {
    await auditRefusal(deps.db, { actor, action: 'evidence.record', objectType: 'evidence', objectId: input.objectId, at: now, code, message });
    return refuse<{ controlIds: string[]; taskIds: string[] }>(code, message);
  };
  if (!isOperator(actor) && !can(actor.user, 'evidence.upload')) return refused('forbidden', 'uploading evidence needs the contributor role');
  const controlIds = [...new Set((input.controlIds ?? []).map((id) => id.trim().toUpperCase()))];
  const taskIds = [...new Set(input.taskIds ?? [])];
  if (controlIds.length + taskIds.length === 0) return refused('no_target', 'evidence must be linked to at least one control or task');
  const missing = await missingTargets(deps.db, controlIds, taskIds);
  if (missing.length > 0) return refused('unknown_target', `no ${missing.join(', ')}`);
  return ok({ controlIds, taskIds });
}

export async function recordEvidence(deps: DomainDeps, actor: Actor, input: EvidenceInput): Promise<Result<EvidenceRecord>> {
  const now = deps.clock.now();
  if (!/^[0-9a-f]{64}$/.test(input.sha256)) {
    await auditRefusal(deps.db, { actor, action: 'evidence.record', objectType: 'evidence', objectId: input.sha256.slice(0, 64), at: now, code: 'invalid_hash', message: 'sha256 must be 64 lowercase hex characters' });
    return refuse('invalid_hash', 'sha256 must be 64 lowercase hex characters');
  }
  const checked = await checkEvidenceTargets(deps, actor, { controlIds: input.controlIds, taskIds: input.taskIds, objectId: input.sha256 });
  if (!checked.ok) return checked;
  const { controlIds, taskIds } = checked.value;

  const validity = await validUntilFor(deps.db, controlIds, now, input.validUntil);
  const recorded = await deps.db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto('evidence')
      .values({
        sha256: input.sha256,
        size_bytes: input.sizeBytes,
        media_type: input.mediaType,
        storage_uri: input.storageUri,
        source: input.source,
        original_name: input.originalName ?? null,
        uploaded_by: actor.user?.id ?? null,
        retention_until: input.retentionUntil ?? null,
        scan_status: input.scanStatus ?? 'unscanned',
        scanned_at: input.scanStatus === 'clean' ? now : null,
        created_at: now,
      })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .returningAll()
      .executeTakeFirst();
    let row = inserted ?? (await trx.selectFrom('evidence').selectAll().where('sha256', '=', input.sha256).executeTakeFirstOrThrow());
    if (!inserted && input.scanStatus === 'clean' && row.scan_status !== 'clean') {
      row = await trx.updateTable('evidence').set({ scan_status: 'clean', scanned_at: now }).where('id', '=', row.id).returningAll().executeTakeFirstOrThrow();
    }
    const links = [
      ...controlIds.map((target) => ({ kind: 'control' as const, target, valid_until: validity.get(target) ?? null })),
      ...taskIds.map((target) => ({ kind: 'task' as const, target, valid_until: null })),
    ];
    const added = await trx
      .insertInto('evidence_links')
      .values(links.map((link) => ({ evidence_id: row.id, ...link, linked_by: actor.user?.id ?? null, source: input.source, created_at: now })))
      .onConflict((oc) => oc.doNothing())
      .returning(['kind', 'target'])
      .execute();
    const newLinks = added.map((link) => `${link.kind}:${link.target}`);
    await appendAudit(trx, {
      actor,
      action: 'evidence.record',
      objectType: 'evidence',
      objectId: row.sha256,
      outcome: 'success',
      at: now,
      detail: { stored: Boolean(inserted), newLinks, source: input.source, sizeBytes: Number(row.size_bytes), scanStatus: row.scan_status },
    });
    if (newLinks.length > 0) {
      await deps.events.emit(
        trx,
        newEvent(
          {
            type: 'evidence.recorded',
            subject: { kind: 'evidence', id: row.id, label: row.original_name ?? row.sha256.slice(0, 12) },
            summary: `evidence ${row.original_name ?? ''} (sha256 ${row.sha256.slice(0, 12)}…) linked to ${newLinks.join(', ')}`.replace('  ', ' '),
            controlIds,
            // The owners of the controls it now counts for hear of it (routing: approvers_dm).
            approverIds: await controlOwners(trx, added.filter((link) => link.kind === 'control').map((link) => link.target)),
            data: { sha256: row.sha256, links: newLinks },
          },
          now,
        ),
      );
    }
    return ok({ id: row.id, sha256: row.sha256, sizeBytes: Number(row.size_bytes), mediaType: row.media_type, storageUri: row.storage_uri, stored: Boolean(inserted), newLinks });
  });
  // New evidence for a control closes the renewals of what it replaces (the daily job does too, should this fail).
  if (recorded.ok) {
    const renewed = recorded.value.newLinks.filter((link) => link.startsWith('control:')).map((link) => link.slice('control:'.length));
    if (renewed.length > 0) await closeRenewals(deps, renewed, recorded.value.id);
  }
  return recorded;
}

async function missingTargets(db: Kysely<Database>, controlIds: string[], taskIds: string[]): Promise<string[]> {
  const missing: string[] = [];
  if (controlIds.length > 0) {
    const found = new Set((await db.selectFrom('controls').select('id').where('id', 'in', controlIds).execute()).map((row) => row.id));
    missing.push(...controlIds.filter((id) => !found.has(id)).map((id) => `control ${id}`));
  }
  if (taskIds.length > 0) {
    const found = new Set((await db.selectFrom('tasks').select('id').where('id', 'in', taskIds).execute()).map((row) => row.id));
    missing.push(...taskIds.filter((id) => !found.has(id)).map((id) => `task T-${id}`));
  }
  return missing;
}

export interface EvidenceListing {
  id: string;
  sha256: string;
  sizeBytes: number;
  mediaType: string;
  source: string;
  originalName: string | null;
  uploadedBy: string | null;
  createdAt: Date;
  /** `control:AC-2`, `task:42` */
  links: string[];
}

/** Evidence, newest first, optionally only what is linked to a control or a task (`projectx evidence list`). */
export async function listEvidence(db: Kysely<Database>, filter: { controlId?: string | undefined; taskId?: string | undefined; limit: number }): Promise<EvidenceListing[]> {
  let query = db
    .selectFrom('evidence')
    .leftJoin('users', 'users.id', 'evidence.uploaded_by')
    .select(['evidence.id', 'evidence.sha256', 'evidence.size_bytes', 'evidence.media_type', 'evidence.source', 'evidence.original_name', 'evidence.created_at', 'users.email'])
    .orderBy('evidence.created_at', 'desc')
    .orderBy('evidence.id', 'desc')
    .limit(filter.limit);
  for (const [kind, target] of [['control', filter.controlId], ['task', filter.taskId]] as const) {
    if (target !== undefined) query = query.where((eb) => eb.exists(eb.selectFrom('evidence_links').select('evidence_id').whereRef('evidence_links.evidence_id', '=', 'evidence.id').where('kind', '=', kind).where('target', '=', target)));
  }
  const rows = await query.execute();
  const links = rows.length === 0 ? [] : await db.selectFrom('evidence_links').select(['evidence_id', 'kind', 'target']).where('evidence_id', 'in', rows.map((row) => row.id)).orderBy('created_at').execute();
  return rows.map((row) => ({
    id: row.id,
    sha256: row.sha256,
    sizeBytes: Number(row.size_bytes),
    mediaType: row.media_type,
    source: row.source,
    originalName: row.original_name,
    uploadedBy: row.email,
    createdAt: row.created_at,
    links: links.filter((link) => link.evidence_id === row.id).map((link) => `${link.kind}:${link.target}`),
  }));
}
