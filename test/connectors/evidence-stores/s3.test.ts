/**
 * The S3 evidence store against a real S3 server (Ceph RGW, test/servers/rgw.ts, started by the global setup),
 * through the whole pipeline with a real clamd: a file scanned, hashed, stored by its SHA-256 (once) and linked;
 * the server checks the bytes against the MD5 and SHA-256 we send; Object Lock keeps the locked version from
 * being deleted; SSE-KMS; a role assumed through STS; a wrong secret (signature checked) holds the file and opens
 * a task saying what access is missing; `QuotaExceeded` pauses ingestion into the store until space returns.
 * Also `projectx evidence verify` re-reading the objects.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clamdScanner } from '../../../src/connectors/evidence-stores/clamd.ts';
import { ingestEvidence } from '../../../src/connectors/evidence-stores/ingest.ts';
import { type EvidencePipeline, evidencePipeline } from '../../../src/connectors/evidence-stores/pipeline.ts';
import { retryQuarantined } from '../../../src/connectors/evidence-stores/quarantine.ts';
import { S3EvidenceStore, type S3StoreOptions } from '../../../src/connectors/evidence-stores/s3.ts';
import { EvidenceStoreError } from '../../../src/connectors/evidence-stores/store.ts';
import { evidenceVerb } from '../../../src/cli/verbs/evidence.ts';
import type { Actor } from '../../../src/domain/actor.ts';
import { setBucketQuota } from '../../servers/rgw.ts';
import { type DomainFixture, domainFixture, eventsFor } from '../../support/domain.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { tempPath } from '../../support/temp.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const md5 = (bytes: Buffer) => createHash('md5').update(bytes).digest('base64');
const text = (label: string, size = 0) => Buffer.from(`${label} ${randomBytes(8).toString('hex')}\n${'x'.repeat(size)}`);

describe('the S3 evidence store on Ceph RGW', () => {
  const s3 = inject('s3');
  const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const admin = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  const locked = `evidence-locked-${randomBytes(4).toString('hex')}`;
  const plain = `evidence-plain-${randomBytes(4).toString('hex')}`;
  let fixture: DomainFixture;
  let uploader: Actor;
  let control: string;
  const stores: S3EvidenceStore[] = [];

  const store = (options: Partial<S3StoreOptions> = {}) => {
    const created = new S3EvidenceStore({ bucket: locked, region: s3.region, endpoint: s3.endpoint, credentials, ...options });
    stores.push(created);
    return created;
  };
  const pipelineFor = (target: S3EvidenceStore): EvidencePipeline => evidencePipeline(target, { stagingDir: tempPath('s3-staging'), scanner: clamdScanner(inject('clamav').url) });
  const ingest = (pipeline: EvidencePipeline, bytes: Buffer, name: string, controlIds = [control]) =>
    ingestEvidence(fixture.deps, pipeline, uploader, { content: Readable.from([bytes]), fileName: name, source: 'slack', controlIds });
  const read = async (bucket: string, key: string) => Buffer.from(await (await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray());

  beforeAll(async () => {
    fixture = await domainFixture();
    uploader = { surface: 'slack', user: await fixture.user({ roles: ['contributor'] }) };
    control = await fixture.control();
    await admin.send(new CreateBucketCommand({ Bucket: locked, ObjectLockEnabledForBucket: true }));
    await admin.send(new CreateBucketCommand({ Bucket: plain }));
  });
  afterAll(async () => {
    for (const created of stores) created.close();
    admin.destroy();
    await fixture.close();
  });

  it('stores a scanned file under its SHA-256, once, locked in COMPLIANCE mode so its version cannot be deleted', async () => {
    const pipeline = pipelineFor(store({ retentionDays: 1 }));
    const bytes = text('access review', 300_000);
    const key = S3EvidenceStore.keyOf(sha256(bytes));
    const first = await ingest(pipeline, bytes, 'access-review.txt');
    expect(first).toMatchObject({ ok: true, value: { outcome: 'recorded', scanStatus: 'clean', stored: true, storageUri: `s3://${locked}/${key}` } });
    expect((await read(locked, key)).equals(bytes)).toBe(true);
    const head = await admin.send(new HeadObjectCommand({ Bucket: locked, Key: key }));
    expect(head.ObjectLockMode).toBe('COMPLIANCE');
    expect(head.ObjectLockRetainUntilDate!.getTime()).toBeGreaterThan(Date.now() + 23 * 3_600_000);
    expect(head.Metadata).toEqual({ sha256: sha256(bytes) });

    // The same content again, for another control: linked, not written again (one version).
    const other = await fixture.control();
    expect(await ingest(pipeline, bytes, 'copy.txt', [other])).toMatchObject({ ok: true, value: { stored: false, newLinks: [`control:${other}`] } });
    const versions = await admin.send(new ListObjectVersionsCommand({ Bucket: locked, Prefix: key }));
    expect(versions.Versions).toHaveLength(1);

    // Object Lock: the locked version cannot be deleted, even by the bucket's owner.
    await expect(admin.send(new DeleteObjectCommand({ Bucket: locked, Key: key, VersionId: versions.Versions![0]!.VersionId }))).rejects.toMatchObject({ name: 'AccessDenied' });
    expect((await read(locked, key)).equals(bytes)).toBe(true);
  });

  it('has the server check the bytes: a body that does not match the MD5 and SHA-256 sent is refused', async () => {
    const target = store({ bucket: plain });
    const bytes = text('tampered');
    const claimed = text('what was scanned');
    const refused = target.put(Readable.from([bytes]), { maxBytes: 1_000_000, sha256: sha256(claimed), sizeBytes: bytes.length, md5Base64: md5(claimed) });
    await expect(refused).rejects.toBeInstanceOf(EvidenceStoreError);
    await expect(refused).rejects.toMatchObject({ code: 'store_integrity_failed' });
    // Nothing under either key.
    for (const key of [S3EvidenceStore.keyOf(sha256(claimed)), S3EvidenceStore.keyOf(sha256(bytes))]) await expect(admin.send(new HeadObjectCommand({ Bucket: plain, Key: key }))).rejects.toMatchObject({ name: 'NotFound' });
  });

  it('encrypts with SSE-KMS when a key is set, and works through a role assumed with STS', async () => {
    const kms = pipelineFor(store({ bucket: plain, kmsKeyId: 'testkey-1' }));
    const bytes = text('encrypted');
    expect(await ingest(kms, bytes, 'encrypted.txt')).toMatchObject({ ok: true, value: { outcome: 'recorded' } });
    const head = await admin.send(new HeadObjectCommand({ Bucket: plain, Key: S3EvidenceStore.keyOf(sha256(bytes)) }));
    expect(head).toMatchObject({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'testkey-1' });

    const assumed = pipelineFor(store({ bucket: plain, role: { arn: s3.roleArn } }));
    const viaRole = text('via role');
    expect(await ingest(assumed, viaRole, 'role.txt')).toMatchObject({ ok: true, value: { outcome: 'recorded', stored: true } });
    expect((await read(plain, S3EvidenceStore.keyOf(sha256(viaRole)))).equals(viaRole)).toBe(true);
  });

  it('holds a file the store refuses for its signature (wrong secret) and opens one task saying what access is missing', async () => {
    const wrong = pipelineFor(store({ bucket: plain, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: `${s3.secretAccessKey}x` } }));
    for (const label of ['denied one', 'denied two']) {
      const bytes = text(label);
      const held = await ingest(wrong, bytes, `${label}.txt`);
      expect(held).toMatchObject({ ok: true, value: { outcome: 'held', reason: 'store_access_denied' } });
      if (held.ok && held.value.outcome === 'held') expect(held.value.message).toMatch(/the evidence store could not take it \(.*S3 denied access \((SignatureDoesNotMatch|HTTP 403)\)\)/);
    }
    const tasks = await fixture.tdb.db.selectFrom('tasks').select(['title', 'type', 'state', 'description']).where('title', '=', 'Grant ProjectX access to the s3 evidence store').execute();
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ type: 'remediation', state: 'open', description: expect.stringContaining('s3:PutObject') });
    // The secret never reaches a message or a row.
    const rows = await fixture.tdb.db.selectFrom('evidence_quarantine').select('last_error').execute();
    expect(JSON.stringify(rows)).not.toContain(s3.secretAccessKey);
  });

  it('pauses ingestion into the store when its quota is exhausted, alerts, and resumes when space returns', async () => {
    const bucket = `evidence-quota-${randomBytes(4).toString('hex')}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    await setBucketQuota(s3.adminConf, bucket, 8192);
    const pipeline = pipelineFor(store({ bucket }));
    const files = [0, 1, 2, 3].map((i) => text(`quota ${i}`, 3000));
    const outcomes = [];
    for (const [i, bytes] of files.entries()) outcomes.push(await ingest(pipeline, bytes, `quota-${i}.txt`));
    // RGW counts objects in 4 KiB units: two fit, the third is refused with QuotaExceeded, the fourth is not even tried.
    expect(outcomes.map((outcome) => (outcome.ok ? (outcome.value.outcome === 'held' ? outcome.value.reason : outcome.value.outcome) : outcome.refusal.code))).toEqual(['recorded', 'recorded', 'store_quota_exceeded', 'store_quota_exceeded']);
    const state = await fixture.tdb.db.selectFrom('evidence_store_state').selectAll().where('store', '=', 's3').executeTakeFirstOrThrow();
    expect(state).toMatchObject({ reason: 'store_quota_exceeded', message: expect.stringMatching(/QuotaExceeded/) });
    expect(state.paused_at).not.toBeNull();
    expect(await eventsFor(fixture, 'evidence-store:s3')).toEqual(['integration.degraded']);
    const held = await fixture.tdb.db.selectFrom('evidence_quarantine').select(['sha256', 'last_error']).where('sha256', 'in', files.slice(2).map(sha256)).execute();
    expect(held.find((row) => row.sha256 === sha256(files[3]!))?.last_error).toMatch(/store is paused since/);

    // Still full: the retry tries one file (the probe), which is held again; the pause stays.
    fixture.clock.advance(60_000);
    expect(await retryQuarantined(fixture.deps, pipeline)).toMatchObject({ recorded: 0, held: 1 });
    expect((await fixture.tdb.db.selectFrom('evidence_store_state').select('paused_at').where('store', '=', 's3').executeTakeFirstOrThrow()).paused_at).not.toBeNull();

    // Space returns: the probe succeeds, the pause ends (integration.recovered), and the next run stores the rest.
    await setBucketQuota(s3.adminConf, bucket, undefined);
    fixture.clock.advance(3_600_000);
    expect(await retryQuarantined(fixture.deps, pipeline)).toMatchObject({ recorded: 1 });
    expect((await fixture.tdb.db.selectFrom('evidence_store_state').select('paused_at').where('store', '=', 's3').executeTakeFirstOrThrow()).paused_at).toBeNull();
    expect(await eventsFor(fixture, 'evidence-store:s3')).toEqual(['integration.degraded', 'integration.recovered']);
    fixture.clock.advance(3_600_000);
    await retryQuarantined(fixture.deps, pipeline);
    for (const bytes of files) expect((await read(bucket, S3EvidenceStore.keyOf(sha256(bytes)))).equals(bytes)).toBe(true);
  });

  it('`projectx evidence verify` re-reads every object of the store and finds one that changed', async () => {
    const bucket = `evidence-verify-${randomBytes(4).toString('hex')}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    const pipeline = pipelineFor(store({ bucket }));
    const good = text('intact');
    const changed = text('changed later');
    for (const [bytes, name] of [[good, 'intact.txt'], [changed, 'changed.txt']] as const) expect(await ingest(pipeline, bytes, name)).toMatchObject({ ok: true, value: { outcome: 'recorded' } });
    // Someone overwrites an object behind our back (no Object Lock on this bucket).
    await admin.send(new PutObjectCommand({ Bucket: bucket, Key: S3EvidenceStore.keyOf(sha256(changed)), Body: Buffer.from('not the evidence') }));

    // The CLI builds its store from the environment (credentials from the SDK's default chain).
    process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
    const env = { EVIDENCE_STORE: 's3', EVIDENCE_S3_BUCKET: bucket, EVIDENCE_S3_ENDPOINT: s3.endpoint, AWS_REGION: s3.region, PROJECTX_DATA_DIR: tempPath('verify-data') };
    const result = await runOperator(operatorContext(fixture, { env }), evidenceVerb, ['verify']);
    expect(result.code).toBe(1);
    expect(result.err).toEqual([expect.stringMatching(new RegExp(`^[0-9a-f-]{36} \\(changed\\.txt\\): MISMATCH: the record says sha256 ${sha256(changed)} \\(${changed.length} bytes\\), the store holds sha256 ${sha256(Buffer.from('not the evidence'))} \\(16 bytes\\)$`))]);
    expect(result.out).toEqual([expect.stringMatching(/^2 files verified in the s3 store: 1 intact, 1 not; \d+ stored elsewhere \(another store\) not checked$/)]);
  });
});
