/**
 * One evidence file in, whatever its source (the CLI, Slack and Teams uploads, email, webhooks, connectors):
 * who may send it and where it goes → type by content → spooled to staging while hashed (SHA-256) and held to
 * the size limit → virus scan → store → record and link to its controls and tasks (evidence.recorded notifies).
 * Identical content is stored once and linked.
 *
 * A file that may not be recorded yet is never half-stored nor dropped: infected, the scanner unreachable or
 * over its stream limit, or a scan required with no scanner → it waits in quarantine (quarantine.ts; an
 * infected file is refused to the sender and raises `security.evidence_infected`; the others are retried). A
 * file refused for its type or size is refused with why. Every outcome is audited.
 */
import type { Readable } from 'node:stream';
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { auditRefusal } from '../../domain/audit.ts';
import { checkEvidenceTargets } from '../../domain/evidence.ts';
import { newEvent } from '../../domain/events.ts';
import { controlOwners } from '../../domain/renewals.ts';
import { type Result, ok, refuse } from '../../domain/result.ts';
import type { EvidenceScanStatus, QuarantineReason } from '../../db/schema.ts';
import { ScannerUnavailableError } from './clamd.ts';
import { SNIFF_BYTES, peek, sniffMediaType } from './media-type.ts';
import { type EvidencePipeline, type IngestOutcome, type PipelineFile, type StagedFile, scanStaged, stageFile, storeAndRecord } from './pipeline.ts';

export type { Held, IngestOutcome, Recorded } from './pipeline.ts';
import { quarantineStaged } from './quarantine.ts';
import { onStoreFailure, storePause } from './store-health.ts';
import { EvidenceStoreError, EvidenceTooLargeError } from './store.ts';

export interface IngestInput {
  content: Readable;
  fileName?: string | undefined;
  source: string;
  controlIds?: readonly string[] | undefined;
  taskIds?: readonly string[] | undefined;
  retentionUntil?: Date | undefined;
  /** Until when it counts for its controls; unset: each control's renewal period. */
  validUntil?: Date | undefined;
}

export async function ingestEvidence(deps: DomainDeps, pipeline: EvidencePipeline, actor: Actor, input: IngestInput): Promise<Result<IngestOutcome>> {
  const name = input.fileName ?? 'the file';
  const refused = async (code: string, message: string) => {
    input.content.destroy(); // release the upload's socket or file handle
    await auditRefusal(deps.db, { actor, action: 'evidence.record', objectType: 'evidence', objectId: input.fileName, at: deps.clock.now(), code, message });
    return refuse<IngestOutcome>(code, message);
  };
  // Who and where first: a refused upload must not leave a file anywhere.
  const targets = await checkEvidenceTargets(deps, actor, { controlIds: input.controlIds, taskIds: input.taskIds, objectId: input.fileName });
  if (!targets.ok) {
    input.content.destroy();
    return targets;
  }
  const failed = async (code: string, message: string) => {
    await notifyIngestFailed(deps, targets.value.controlIds, { name, source: input.source, code, message });
    return refused(code, message);
  };
  const { head, stream } = await peek(input.content, SNIFF_BYTES);
  const mediaType = await sniffMediaType(head, input.fileName);
  if (!mediaType.ok) return failed(mediaType.refusal.code, `${name}: ${mediaType.refusal.message}`);
  let staged: StagedFile;
  try {
    staged = await stageFile(stream, { stagingDir: pipeline.stagingDir, maxBytes: pipeline.maxBytes });
  } catch (error) {
    if (error instanceof EvidenceTooLargeError) return failed(error.code, `${name} is larger than the ${formatBytes(error.limitBytes)} limit`);
    input.content.destroy();
    throw error;
  }
  try {
    const file: PipelineFile = { staged, mediaType: mediaType.value, originalName: input.fileName, source: input.source, controlIds: targets.value.controlIds, taskIds: targets.value.taskIds, retentionUntil: input.retentionUntil, validUntil: input.validUntil };
    return await scanStoreRecord(deps, pipeline, actor, file);
  } finally {
    await staged.discard();
  }
}

/**
 * Scan → store → record, for a file already staged. An infected file is quarantined and refused; one that
 * cannot be scanned yet is quarantined and held.
 */
export async function scanStoreRecord(deps: DomainDeps, pipeline: EvidencePipeline, actor: Actor, file: PipelineFile): Promise<Result<IngestOutcome>> {
  const name = file.originalName ?? 'the file';
  let scanStatus: EvidenceScanStatus = 'unscanned';
  let hold: { reason: Exclude<QuarantineReason, 'infected'>; error: string } | undefined;
  if (pipeline.scanner) {
    try {
      const verdict = await scanStaged(pipeline.scanner, file.staged);
      if (!verdict.clean) {
        const quarantineId = await quarantineStaged(deps, { file, actor, reason: 'infected', signature: verdict.signature });
        const message = `${name} was refused: the virus scanner found ${verdict.signature} in it. It is quarantined and the security team has been told.`;
        await auditRefusal(deps.db, { actor, action: 'evidence.record', objectType: 'evidence', objectId: file.staged.sha256, at: deps.clock.now(), code: 'evidence_infected', message, detail: { quarantineId, signature: verdict.signature, source: file.source } });
        await notifyIngestFailed(deps, file.controlIds, { name, source: file.source, code: 'evidence_infected', message, quarantineId });
        return refuse('evidence_infected', message, { permanent: true });
      }
      scanStatus = 'clean';
    } catch (error) {
      if (!(error instanceof ScannerUnavailableError)) throw error;
      hold = { reason: error.code, error: error.message };
    }
  } else if (pipeline.scanRequired) {
    hold = { reason: 'scan_required', error: 'no virus scanner is configured (CLAMAV_URL) and EVIDENCE_SCAN_REQUIRED=true' };
  }
  if (!hold) {
    // Scanned (or no scan wanted): into the store, unless it is paused (out of space) or fails now.
    const pause = await storePause(deps.db, pipeline.store);
    if (pause) hold = { reason: 'store_quota_exceeded', error: `the ${pipeline.store.kind} store is paused since ${pause.since.toISOString()}: ${pause.message}` };
    else {
      try {
        return await storeAndRecord(deps, pipeline, actor, file, scanStatus);
      } catch (error) {
        if (!(error instanceof EvidenceStoreError)) throw error;
        await onStoreFailure(deps, pipeline.store, error);
        hold = { reason: error.code, error: error.message };
      }
    }
  }
  // Held: kept in quarantine and retried; nothing is lost.
  const quarantineId = await quarantineStaged(deps, { file, actor, reason: hold.reason, error: hold.error });
  const message = hold.reason === 'scan_required'
    ? `${name} is held until a virus scanner is configured; it will be recorded once scanned.`
    : hold.reason.startsWith('store_')
      ? `${name} is held: the evidence store could not take it (${hold.error}). It will be stored once it can.`
      : `${name} is held: the virus scanner could not scan it (${hold.error}). It will be scanned again and recorded once clean.`;
  await notifyIngestFailed(deps, file.controlIds, { name, source: file.source, code: hold.reason, message, quarantineId });
  return ok({ outcome: 'held', quarantineId, reason: hold.reason, sha256: file.staged.sha256, sizeBytes: file.staged.sizeBytes, mediaType: file.mediaType, ...(file.originalName ? { fileName: file.originalName } : {}), message });
}

/**
 * Tells the owners of the controls a file was for that it was not recorded (refused, or held in quarantine):
 * `evidence.ingest_failed`, routed to their DMs. Nothing to tell for a file meant for tasks only.
 */
async function notifyIngestFailed(deps: DomainDeps, controlIds: readonly string[], failure: { name: string; source: string; code: string; message: string; quarantineId?: string }): Promise<void> {
  if (controlIds.length === 0) return;
  const now = deps.clock.now();
  await deps.db.transaction().execute(async (trx) => {
    const owners = await controlOwners(trx, controlIds);
    await deps.events.emit(
      trx,
      newEvent(
        {
          type: 'evidence.ingest_failed',
          subject: { kind: 'evidence', id: failure.quarantineId ?? `${failure.source}:${failure.name}`, label: failure.name },
          summary: `Evidence for ${controlIds.join(', ')} from ${failure.source} was not recorded: ${failure.message}`,
          controlIds: [...controlIds],
          approverIds: owners,
          data: { code: failure.code, source: failure.source, ...(failure.quarantineId ? { quarantineId: failure.quarantineId } : {}) },
        },
        now,
      ),
    );
  });
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / (1024 * 1024)).toFixed(1))} MB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KB`;
  return `${bytes} bytes`;
}
