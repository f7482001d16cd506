/**
 * One evidence file in: check its type by content, stream it into the store while hashing (refusing it past
 * the size limit), and record it against its controls and tasks. Identical content is stored once and linked.
 * Used by every way evidence arrives: the CLI, the Slack upload job, email, webhooks, connectors.
 */
import type { Readable } from 'node:stream';
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { auditRefusal } from '../../domain/audit.ts';
import { type EvidenceRecord, checkEvidenceTargets, recordEvidence } from '../../domain/evidence.ts';
import { type Result, refuse } from '../../domain/result.ts';
import { SNIFF_BYTES, peek, sniffMediaType } from './media-type.ts';
import { type EvidenceStore, EvidenceTooLargeError } from './store.ts';

/** The per-file limit the runbook sets for uploads. */
export const MAX_EVIDENCE_BYTES = 10 * 1024 * 1024;

export interface IngestInput {
  content: Readable;
  fileName?: string | undefined;
  source: string;
  controlIds?: readonly string[] | undefined;
  taskIds?: readonly string[] | undefined;
  maxBytes?: number | undefined;
  retentionUntil?: Date | undefined;
}

export async function ingestEvidence(deps: DomainDeps, store: EvidenceStore, actor: Actor, input: IngestInput): Promise<Result<EvidenceRecord & { fileName?: string }>> {
  const refused = async (code: string, message: string) => {
    input.content.destroy(); // release the upload's socket or file handle
    await auditRefusal(deps.db, { actor, action: 'evidence.record', objectType: 'evidence', objectId: input.fileName, at: deps.clock.now(), code, message });
    return refuse<EvidenceRecord & { fileName?: string }>(code, message);
  };
  // Who and where first: a refused upload must not leave a file in the store.
  const targets = await checkEvidenceTargets(deps, actor, { controlIds: input.controlIds, taskIds: input.taskIds, objectId: input.fileName });
  if (!targets.ok) {
    input.content.destroy();
    return targets;
  }
  const { head, stream } = await peek(input.content, SNIFF_BYTES);
  const mediaType = await sniffMediaType(head, input.fileName);
  if (!mediaType.ok) return refused(mediaType.refusal.code, `${input.fileName ?? 'the file'}: ${mediaType.refusal.message}`);
  let stored;
  try {
    stored = await store.put(stream, { maxBytes: input.maxBytes ?? MAX_EVIDENCE_BYTES });
  } catch (error) {
    if (error instanceof EvidenceTooLargeError) return refused(error.code, `${input.fileName ?? 'the file'} is larger than the ${formatBytes(error.limitBytes)} limit`);
    input.content.destroy();
    throw error;
  }
  const recorded = await recordEvidence(deps, actor, {
    sha256: stored.sha256,
    sizeBytes: stored.sizeBytes,
    mediaType: mediaType.value,
    storageUri: stored.uri,
    source: input.source,
    originalName: input.fileName,
    retentionUntil: input.retentionUntil,
    controlIds: targets.value.controlIds,
    taskIds: targets.value.taskIds,
  });
  if (!recorded.ok) return recorded;
  return input.fileName ? { ok: true, value: { ...recorded.value, fileName: input.fileName } } : recorded;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${Number((bytes / (1024 * 1024)).toFixed(1))} MB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KB`;
  return `${bytes} bytes`;
}
