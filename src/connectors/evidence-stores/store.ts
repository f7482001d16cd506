/**
 * Where evidence files live. Each store streams a file in while hashing it (SHA-256), refuses it past the size
 * limit, and makes it visible only once complete. Local filesystem now; S3, SharePoint and Google Drive
 * implement the same interface.
 */
import type { Readable } from 'node:stream';

export interface StoredObject {
  sha256: string;
  sizeBytes: number;
  /** Where it is, e.g. `file:///…/ab/abcdef…` or `s3://bucket/key`. */
  uri: string;
  /** False when identical content was already there (nothing was written). */
  written: boolean;
}

export class EvidenceTooLargeError extends Error {
  readonly code = 'evidence_too_large';
  readonly limitBytes: number;
  constructor(limitBytes: number) {
    super(`the file is larger than ${limitBytes} bytes`);
    this.name = 'EvidenceTooLargeError';
    this.limitBytes = limitBytes;
  }
}

export interface EvidenceStore {
  readonly kind: string;
  /**
   * `sha256` and `sizeBytes`, when given, are what the pipeline measured while staging the file: a store may
   * use them (a content-addressed key, a checksum the server verifies) and must still hash what it writes.
   */
  put(content: Readable, options: { maxBytes: number; sha256?: string; sizeBytes?: number }): Promise<StoredObject>;
  open(uri: string): Promise<Readable>;
}
