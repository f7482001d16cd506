/**
 * The evidence pipeline's parts, put together once per process from the configuration: where files are stored,
 * the virus scanner (clamd) when `CLAMAV_URL` is set, whether a scan is required, the size limit, and the staging
 * directory a file is spooled to while it is hashed and scanned (so memory stays flat whatever its size, and
 * nothing reaches the store before its scan). `ingestEvidence` (ingest.ts) runs every file through it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../../config.ts';
import type { EvidenceScanStatus, QuarantineReason } from '../../db/schema.ts';
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import { type EvidenceRecord, recordEvidence } from '../../domain/evidence.ts';
import { type Result, ok } from '../../domain/result.ts';
import { type EvidenceScanner, type ScanVerdict, clamdScanner } from './clamd.ts';
import { onStoreSuccess } from './store-health.ts';
import { type EvidenceStore, EvidenceTooLargeError } from './store.ts';

export interface EvidencePipeline {
  store: EvidenceStore;
  /** Unset: no scanner configured; files are recorded `unscanned` (or held when `scanRequired`). */
  scanner: EvidenceScanner | undefined;
  scanRequired: boolean;
  maxBytes: number;
  stagingDir: string;
}

/** The runbook's default per-file limit (`EVIDENCE_MAX_BYTES`). */
export const DEFAULT_MAX_EVIDENCE_BYTES = 25 * 1024 * 1024;

export function evidencePipeline(store: EvidenceStore, options: { scanner?: EvidenceScanner | undefined; scanRequired?: boolean; maxBytes?: number; stagingDir: string }): EvidencePipeline {
  return { store, scanner: options.scanner, scanRequired: options.scanRequired ?? false, maxBytes: options.maxBytes ?? DEFAULT_MAX_EVIDENCE_BYTES, stagingDir: options.stagingDir };
}

/** The pipeline the configuration describes, around the chosen store. */
export function pipelineFromConfig(store: EvidenceStore, config: Config): EvidencePipeline {
  return evidencePipeline(store, {
    scanner: config.CLAMAV_URL ? clamdScanner(config.CLAMAV_URL) : undefined,
    scanRequired: config.EVIDENCE_SCAN_REQUIRED,
    maxBytes: config.EVIDENCE_MAX_BYTES,
    stagingDir: path.join(config.PROJECTX_DATA_DIR, 'evidence-staging'),
  });
}

/** What `/projectx status` and the start-up log say of the scan step. */
export function scanStatusLine(pipeline: { scanner: Pick<EvidenceScanner, 'describe'> | undefined; scanRequired: boolean }): string {
  if (pipeline.scanner) return `evidence is scanned for viruses by clamd at ${pipeline.scanner.describe}`;
  return pipeline.scanRequired
    ? 'evidence is NOT scanned (CLAMAV_URL is unset) and EVIDENCE_SCAN_REQUIRED=true: every file waits in quarantine until a scanner is configured'
    : 'evidence is NOT scanned for viruses (CLAMAV_URL is unset): files are recorded as unscanned';
}

/** Scans a staged file; the read stream is closed whatever the scanner did (it leaves the caller's stream open). */
export async function scanStaged(scanner: EvidenceScanner, staged: Pick<StagedFile, 'path'>): Promise<ScanVerdict> {
  const content = createReadStream(staged.path);
  try {
    return await scanner.scan(content);
  } finally {
    content.destroy();
  }
}

/** A file spooled to the staging directory: its hash and size are known, its bytes can be read again. */
export interface StagedFile {
  path: string;
  sha256: string;
  /** Base64, as `Content-MD5` carries it (S3 checks it). */
  md5Base64: string;
  sizeBytes: number;
  /** Removes the spooled file (idempotent). */
  discard(): Promise<void>;
}

/**
 * Streams `content` into a staging file while hashing it, refusing it (EvidenceTooLargeError) once it passes
 * `maxBytes`; on any failure the partial file is gone.
 */
export async function stageFile(content: AsyncIterable<Buffer | Uint8Array> & Partial<Pick<Readable, 'destroy'>>, options: { stagingDir: string; maxBytes: number }): Promise<StagedFile> {
  await mkdir(options.stagingDir, { recursive: true, mode: 0o700 });
  const file = path.join(options.stagingDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
  const discard = () => rm(file, { force: true });
  const hash = createHash('sha256');
  const md5 = createHash('md5');
  let size = 0;
  const handle = await open(file, 'wx', 0o600);
  try {
    for await (const chunk of content) {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      size += buffer.length;
      if (size > options.maxBytes) throw new EvidenceTooLargeError(options.maxBytes);
      hash.update(buffer);
      md5.update(buffer);
      await handle.write(buffer);
    }
  } catch (error) {
    await handle.close();
    await discard();
    content.destroy?.();
    throw error;
  }
  await handle.close();
  return { path: file, sha256: hash.digest('hex'), md5Base64: md5.digest('base64'), sizeBytes: size, discard };
}

/** Recorded (scanned clean, or unscanned when no scanner is configured). */
export type Recorded = EvidenceRecord & { outcome: 'recorded'; scanStatus: EvidenceScanStatus; fileName?: string };
/** Accepted but waiting in quarantine for a scanner (retried); nothing is lost, nothing is recorded yet. */
export type Held = { outcome: 'held'; quarantineId: string; reason: Exclude<QuarantineReason, 'infected'>; sha256: string; sizeBytes: number; mediaType: string; fileName?: string; message: string };
export type IngestOutcome = Recorded | Held;

/** A staged file and what it is for: what the scan, store and record steps need (also for a quarantine retry). */
export interface PipelineFile {
  staged: StagedFile;
  mediaType: string;
  originalName: string | undefined;
  source: string;
  controlIds: string[];
  taskIds: string[];
  retentionUntil: Date | undefined;
  /** Until when it counts for its controls (unset: their renewal periods). */
  validUntil?: Date | undefined;
}

/** Store → record: the last steps, also for a file an operator releases from quarantine. */
export async function storeAndRecord(deps: DomainDeps, pipeline: EvidencePipeline, actor: Actor, file: PipelineFile, scanStatus: EvidenceScanStatus): Promise<Result<Recorded>> {
  const stored = await pipeline.store.put(createReadStream(file.staged.path), { maxBytes: Number.MAX_SAFE_INTEGER, sha256: file.staged.sha256, sizeBytes: file.staged.sizeBytes, md5Base64: file.staged.md5Base64 });
  if (stored.written) await onStoreSuccess(deps, pipeline.store);
  if (stored.sha256 !== file.staged.sha256) throw Object.assign(new Error(`the ${pipeline.store.kind} store hashed ${file.originalName ?? 'a file'} differently from the staged copy`), { code: 'evidence_hash_mismatch' });
  const recorded = await recordEvidence(deps, actor, {
    sha256: stored.sha256,
    sizeBytes: stored.sizeBytes,
    mediaType: file.mediaType,
    storageUri: stored.uri,
    source: file.source,
    originalName: file.originalName,
    retentionUntil: file.retentionUntil,
    validUntil: file.validUntil,
    controlIds: file.controlIds,
    taskIds: file.taskIds,
    scanStatus,
  });
  if (!recorded.ok) return recorded;
  return ok({ ...recorded.value, outcome: 'recorded', scanStatus, ...(file.originalName ? { fileName: file.originalName } : {}) });
}


/**
 * An outcome as a result's fields (for delivery results, records and JSON output): the evidence and its new
 * links when recorded; the quarantine id and why when held.
 */
export function outcomeFields(value: IngestOutcome): { sha256: string } & ({ evidenceId: string; links: string[]; scan: EvidenceScanStatus } | { quarantineId: string; held: string }) {
  return value.outcome === 'recorded'
    ? { evidenceId: value.id, sha256: value.sha256, links: value.newLinks, scan: value.scanStatus }
    : { quarantineId: value.quarantineId, held: value.reason, sha256: value.sha256 };
}
