/**
 * The S3 evidence store (AWS S3, or an S3-compatible server at `EVIDENCE_S3_ENDPOINT`, path style).
 *
 * - Objects are keyed by content: `evidence/sha256/<ab>/<sha256>`. Identical content is stored once (a HEAD
 *   first), and read back by hash.
 * - The server checks integrity: the pipeline staged the file, so its SHA-256 and MD5 are known before the first
 *   byte is sent. The body streams from the staging file with `Content-MD5`, `x-amz-checksum-sha256` and the
 *   SigV4 payload hash set to the file's SHA-256 (`x-amz-content-sha256`), so S3 refuses a body that is not
 *   those bytes (`BadDigest`, `XAmzContentSHA256Mismatch`) and memory stays flat whatever the size.
 * - Object Lock: when the bucket has it and `EVIDENCE_RETENTION_DAYS` is set, each object is written with a
 *   retention in COMPLIANCE (or GOVERNANCE, `EVIDENCE_S3_OBJECT_LOCK_MODE`) mode until then.
 * - SSE-KMS with `EVIDENCE_S3_KMS_KEY_ID`.
 * - Credentials: the AWS SDK's default chain, or a role assumed through STS (`AWS_ROLE_ARN`, `AWS_EXTERNAL_ID`),
 *   refreshed by the SDK before the temporary credentials expire.
 *
 * Failures are coded (EvidenceStoreError): `store_quota_exceeded` (S3 `QuotaExceeded`), `store_access_denied`,
 * `store_unavailable` (network, 5xx, throttling), `store_integrity_failed`.
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand, GetObjectLockConfigurationCommand, HeadObjectCommand, PutObjectCommand, S3Client, type S3ClientConfig, S3ServiceException } from '@aws-sdk/client-s3';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import type { Config } from '../../config.ts';
import { type EvidenceStore, EvidenceStoreError, EvidenceTooLargeError, type StoredObject } from './store.ts';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  /** An S3-compatible server (path-style addressing); unset: AWS. */
  endpoint?: string | undefined;
  /** Static credentials (tests); unset: the SDK's default chain (or the assumed role's master credentials). */
  credentials?: Exclude<S3ClientConfig['credentials'], undefined> | undefined;
  role?: { arn: string; externalId?: string | undefined } | undefined;
  retentionDays?: number | undefined;
  lockMode?: 'COMPLIANCE' | 'GOVERNANCE';
  kmsKeyId?: string | undefined;
}

const PREFIX = 'evidence/sha256/';

export class S3EvidenceStore implements EvidenceStore {
  readonly kind = 's3';
  readonly bucket: string;
  readonly #client: S3Client;
  readonly #options: S3StoreOptions;
  #objectLock: Promise<boolean> | undefined;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.#options = options;
    const clientConfig = { region: options.region, ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}) };
    const credentials = options.role
      ? fromTemporaryCredentials({
          params: { RoleArn: options.role.arn, RoleSessionName: 'projectx-evidence', ...(options.role.externalId ? { ExternalId: options.role.externalId } : {}), DurationSeconds: 3600 },
          ...(options.credentials ? { masterCredentials: options.credentials } : {}),
          clientConfig,
        })
      : options.credentials;
    this.#client = new S3Client({
      ...clientConfig,
      ...(credentials ? { credentials } : {}),
      // We send our own checksums (MD5 and SHA-256 of the staged file); the SDK's default CRC32 on every request
      // would need an aws-chunked streaming body that S3-compatible servers refuse.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  static keyOf(sha256: string): string {
    return `${PREFIX}${sha256.slice(0, 2)}/${sha256}`;
  }

  async put(content: Readable, options: { maxBytes: number; sha256?: string; sizeBytes?: number; md5Base64?: string }): Promise<StoredObject> {
    const { sha256, sizeBytes, md5Base64 } = options;
    if (!sha256 || sizeBytes === undefined || !md5Base64) {
      content.destroy();
      throw new Error('the S3 store needs the staged file\'s SHA-256, MD5 and size');
    }
    if (sizeBytes > options.maxBytes) {
      content.destroy();
      throw new EvidenceTooLargeError(options.maxBytes);
    }
    const key = S3EvidenceStore.keyOf(sha256);
    const uri = `s3://${this.bucket}/${key}`;
    if (await this.#exists(key, sizeBytes)) {
      content.destroy();
      return { sha256, sizeBytes, uri, written: false };
    }
    const retention = (await this.#hasObjectLock()) && this.#options.retentionDays ? new Date(Date.now() + this.#options.retentionDays * 86_400_000) : undefined;
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: content,
      ContentLength: sizeBytes,
      ContentMD5: md5Base64,
      ChecksumSHA256: Buffer.from(sha256, 'hex').toString('base64'),
      ContentType: 'application/octet-stream',
      Metadata: { sha256 },
      ...(retention ? { ObjectLockMode: this.#options.lockMode ?? 'COMPLIANCE', ObjectLockRetainUntilDate: retention } : {}),
      ...(this.#options.kmsKeyId ? { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: this.#options.kmsKeyId } : {}),
    });
    // SigV4 signs the payload by the hash we already know: the server recomputes it and refuses other bytes.
    command.middlewareStack.add(
      (next) => (args) => {
        const request = args.request as { headers?: Record<string, string> };
        if (request.headers) request.headers['x-amz-content-sha256'] = sha256;
        return next(args);
      },
      { step: 'build', name: 'projectxPayloadHash', priority: 'low' },
    );
    try {
      await this.#client.send(command);
    } catch (error) {
      content.destroy();
      throw storeError(error, `storing ${sha256.slice(0, 12)}… in s3://${this.bucket}`);
    }
    return { sha256, sizeBytes, uri, written: true };
  }

  async open(uri: string): Promise<Readable> {
    const key = this.#keyFromUri(uri);
    try {
      const answer = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return answer.Body as Readable;
    } catch (error) {
      throw storeError(error, `reading ${uri}`);
    }
  }

  close(): void {
    this.#client.destroy();
  }

  #keyFromUri(uri: string): string {
    const prefix = `s3://${this.bucket}/`;
    if (!uri.startsWith(prefix) || !/^evidence\/sha256\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(uri.slice(prefix.length))) throw new Error('that evidence is not in this store');
    return uri.slice(prefix.length);
  }

  async #exists(key: string, sizeBytes: number): Promise<boolean> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      if (head.ContentLength !== sizeBytes) throw new EvidenceStoreError('store_integrity_failed', `s3://${this.bucket}/${key} holds ${head.ContentLength} bytes, not ${sizeBytes}: it is not the content its key names`);
      return true;
    } catch (error) {
      if (error instanceof EvidenceStoreError) throw error;
      if (error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 404 || error.name === 'NotFound' || error.name === 'NoSuchKey')) return false;
      throw storeError(error, `looking up ${key} in s3://${this.bucket}`);
    }
  }

  /** Whether the bucket has Object Lock enabled (asked once). */
  #hasObjectLock(): Promise<boolean> {
    this.#objectLock ??= this.#client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket })).then(
      (answer) => answer.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled',
      (error: unknown) => {
        this.#objectLock = undefined; // ask again next time
        if (error instanceof S3ServiceException && error.name === 'ObjectLockConfigurationNotFoundError') return false;
        throw storeError(error, `reading the Object Lock configuration of s3://${this.bucket}`);
      },
    );
    return this.#objectLock;
  }
}

/** An SDK failure as a coded store error; the message names the operation and S3's code, never credentials. */
function storeError(error: unknown, doing: string): EvidenceStoreError {
  if (error instanceof EvidenceStoreError) return error;
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode;
    // A HEAD answer has no body to name the error: its status says it.
    const code = error.name === 'Unknown' || error.name === 'NotFound' ? `HTTP ${status ?? '?'}` : error.name;
    if (code === 'QuotaExceeded' || code === 'QuotaExceededException') return new EvidenceStoreError('store_quota_exceeded', `${doing}: the bucket's quota is exhausted (S3 ${code})`);
    if (code === 'BadDigest' || code === 'XAmzContentSHA256Mismatch' || code === 'InvalidDigest') return new EvidenceStoreError('store_integrity_failed', `${doing}: S3 refused the bytes as not matching their checksum (${code})`);
    if (status === 403 || code === 'AccessDenied' || code === 'InvalidAccessKeyId' || code === 'SignatureDoesNotMatch') return new EvidenceStoreError('store_access_denied', `${doing}: S3 denied access (${code})`);
    if (code === 'NoSuchBucket') return new EvidenceStoreError('store_access_denied', `${doing}: the bucket does not exist (${code})`);
    return new EvidenceStoreError('store_unavailable', `${doing}: S3 answered ${status ?? 'an error'} (${code})`);
  }
  const reason = (error as { code?: unknown }).code ?? (error as { name?: unknown }).name;
  return new EvidenceStoreError('store_unavailable', `${doing}: ${typeof reason === 'string' ? reason : 'the request failed'}`);
}

/** The store `EVIDENCE_STORE=s3` describes (credentials from the SDK's default chain, or the assumed role). */
export function s3StoreFromConfig(config: Config): S3EvidenceStore {
  if (!config.EVIDENCE_S3_BUCKET) throw new Error('EVIDENCE_STORE=s3 needs EVIDENCE_S3_BUCKET');
  return new S3EvidenceStore({
    bucket: config.EVIDENCE_S3_BUCKET,
    region: config.AWS_REGION ?? 'us-east-1',
    endpoint: config.EVIDENCE_S3_ENDPOINT,
    role: config.AWS_ROLE_ARN ? { arn: config.AWS_ROLE_ARN, externalId: config.AWS_EXTERNAL_ID } : undefined,
    retentionDays: config.EVIDENCE_RETENTION_DAYS,
    lockMode: config.EVIDENCE_S3_OBJECT_LOCK_MODE,
    kmsKeyId: config.EVIDENCE_S3_KMS_KEY_ID,
  });
}
