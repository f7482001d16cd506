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

/**
 * The store could not take or give a file: `store_quota_exceeded` (out of space), `store_access_denied` (our
 * credentials may not), `store_unavailable` (network, 5xx, throttled), `store_integrity_failed` (the server
 * refused the bytes as not matching their checksum, or holds other bytes under a content key).
 */
export class EvidenceStoreError extends Error {
  readonly code: 'store_quota_exceeded' | 'store_access_denied' | 'store_unavailable' | 'store_integrity_failed';
  constructor(code: EvidenceStoreError['code'], message: string) {
    super(message);
    this.name = 'EvidenceStoreError';
    this.code = code;
  }
}

export interface EvidenceStore {
  readonly kind: string;
  /**
   * `sha256` and `sizeBytes`, when given, are what the pipeline measured while staging the file: a store may
   * use them (a content-addressed key, a checksum the server verifies) and must still hash what it writes.
   */
  put(content: Readable, options: { maxBytes: number; sha256?: string; sizeBytes?: number; md5Base64?: string }): Promise<StoredObject>;
  open(uri: string): Promise<Readable>;
}

/**
 * A store loaded on first use: the S3 store's SDK (about 150 ms to import) is loaded only by a process that stores
 * or reads evidence, not by every CLI command.
 */
export function lazyStore(kind: string, load: () => Promise<EvidenceStore>): EvidenceStore {
  let loaded: Promise<EvidenceStore> | undefined;
  const store = () => (loaded ??= load());
  return {
    kind,
    put: async (content, options) => (await store()).put(content, options),
    open: async (uri) => (await store()).open(uri),
  };
}
