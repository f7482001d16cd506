/**
 * The run's S3 server (Ceph RGW, test/servers/rgw.ts) does what the S3 evidence-store tests count on: it checks
 * SigV4 and Content-MD5, keeps Object Lock, assumes roles over STS, encrypts with SSE-KMS and enforces a
 * bucket quota. When one of these fails, the server or its config changed, not our code.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { describe, expect, inject, it } from 'vitest';
import { setBucketQuota } from '../../servers/rgw.ts';

const s3 = inject('s3');
const userKeys = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };

/** The client settings RGW pacific needs: path-style, and checksums only where S3 requires them. */
function client(credentials: NonNullable<S3ClientConfig['credentials']> = userKeys): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

const asUser = client();

/** A bucket of its own for each test (the server is shared by the run's files). */
async function newBucket(name: string, options: { objectLock?: boolean } = {}): Promise<string> {
  const bucket = `${name}-${randomBytes(4).toString('hex')}`;
  await asUser.send(new CreateBucketCommand({ Bucket: bucket, ...(options.objectLock ? { ObjectLockEnabledForBucket: true } : {}) }));
  return bucket;
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest('base64');

/** How S3 refused: HTTP status and error code. */
async function refusal(promise: Promise<unknown>): Promise<{ status: number | undefined; code: string }> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(S3ServiceException);
  return { status: (error as S3ServiceException).$metadata.httpStatusCode, code: (error as S3ServiceException).name };
}

describe('the run\'s S3 server (Ceph RGW)', () => {
  it('stores and returns an object, with its Content-MD5 checked', async () => {
    const bucket = await newBucket('roundtrip');
    const body = randomBytes(10_000);
    await asUser.send(new PutObjectCommand({ Bucket: bucket, Key: 'a/b.bin', Body: body, ContentMD5: md5(body) }));
    const got = await asUser.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b.bin' }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);

    const wrongDigest = asUser.send(new PutObjectCommand({ Bucket: bucket, Key: 'bad.bin', Body: body, ContentMD5: md5(Buffer.from('other')) }));
    expect(await refusal(wrongDigest)).toEqual({ status: 400, code: 'BadDigest' });
  });

  it('checks the SigV4 signature: a wrong secret or an unknown key is refused, as AccessDenied', async () => {
    // With STS on (rgw s3 auth use sts), RGW pacific answers every failed signature 403 AccessDenied; without
    // it, SignatureDoesNotMatch and InvalidAccessKeyId as AWS does. Tests of our error mapping can't rely on the codes.
    const bucket = await newBucket('sigv4');
    const body = Buffer.from('signed');
    const put = (credentials: { accessKeyId: string; secretAccessKey: string }) =>
      client(credentials).send(new PutObjectCommand({ Bucket: bucket, Key: 'signed.txt', Body: body, ContentMD5: md5(body) }));
    expect(await refusal(put({ ...userKeys, secretAccessKey: `${s3.secretAccessKey}x` }))).toEqual({ status: 403, code: 'AccessDenied' });
    expect(await refusal(put({ ...userKeys, accessKeyId: 'PXTNOSUCHKEY' }))).toEqual({ status: 403, code: 'AccessDenied' });
    expect(await refusal(client({ ...userKeys, secretAccessKey: 'wrong' }).send(new ListBucketsCommand({})))).toEqual({ status: 403, code: 'AccessDenied' });
    await put(userKeys);
  });

  it('keeps a COMPLIANCE-locked version: HEAD shows the lock, deleting the version is denied', async () => {
    const bucket = await newBucket('locked', { objectLock: true });
    const body = Buffer.from('signed access review, Q3\n');
    const retainUntil = new Date('2099-01-01T00:00:00.000Z');
    const put = await asUser.send(new PutObjectCommand({
      Bucket: bucket, Key: 'review.txt', Body: body, ContentMD5: md5(body), ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: retainUntil,
    }));
    expect(put.VersionId).toBeTruthy();
    const head = await asUser.send(new HeadObjectCommand({ Bucket: bucket, Key: 'review.txt', VersionId: put.VersionId }));
    expect({ mode: head.ObjectLockMode, until: head.ObjectLockRetainUntilDate?.toISOString() }).toEqual({ mode: 'COMPLIANCE', until: retainUntil.toISOString() });

    const deleteVersion = asUser.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'review.txt', VersionId: put.VersionId }));
    expect(await refusal(deleteVersion)).toEqual({ status: 403, code: 'AccessDenied' });
    const still = await asUser.send(new GetObjectCommand({ Bucket: bucket, Key: 'review.txt', VersionId: put.VersionId }));
    expect(await still.Body!.transformToString()).toBe(body.toString());
  });

  it('lets the test user assume the role over STS and write with the temporary credentials', async () => {
    const bucket = await newBucket('assumed');
    const credentials = fromTemporaryCredentials({
      masterCredentials: userKeys,
      params: { RoleArn: s3.roleArn, RoleSessionName: 'rgw-server-test', DurationSeconds: 900 },
      clientConfig: { region: s3.region, endpoint: s3.endpoint },
    });
    const temporary = await credentials();
    expect(temporary.accessKeyId).not.toBe(s3.accessKeyId);
    expect(temporary.sessionToken).toBeTruthy();

    const body = Buffer.from('uploaded as the evidence-writer role');
    await client(credentials).send(new PutObjectCommand({ Bucket: bucket, Key: 'by-role.txt', Body: body, ContentMD5: md5(body) }));
    const got = await asUser.send(new GetObjectCommand({ Bucket: bucket, Key: 'by-role.txt' }));
    expect(await got.Body!.transformToString()).toBe(body.toString());
  });

  it('encrypts with SSE-KMS under the test key id, and decrypts on GET', async () => {
    const bucket = await newBucket('kms');
    const body = randomBytes(5000);
    const put = await asUser.send(new PutObjectCommand({
      Bucket: bucket, Key: 'secret.bin', Body: body, ContentMD5: md5(body), ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'testkey-1',
    }));
    expect({ sse: put.ServerSideEncryption, key: put.SSEKMSKeyId }).toEqual({ sse: 'aws:kms', key: 'testkey-1' });
    const got = await asUser.send(new GetObjectCommand({ Bucket: bucket, Key: 'secret.bin' }));
    expect({ sse: got.ServerSideEncryption, key: got.SSEKMSKeyId }).toEqual({ sse: 'aws:kms', key: 'testkey-1' });
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
  });

  it('enforces a bucket quota set with setBucketQuota on the next PUT, and lifts it when cleared', async () => {
    const bucket = await newBucket('quota');
    await setBucketQuota(s3.adminConf, bucket, 8 * 1024);
    const put = (key: string) => {
      const body = randomBytes(4 * 1024);
      return asUser.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentMD5: md5(body) }));
    };
    await put('1.bin');
    await put('2.bin');
    expect(await refusal(put('3.bin'))).toEqual({ status: 403, code: 'QuotaExceeded' });

    await setBucketQuota(s3.adminConf, bucket, undefined);
    await put('3.bin');
  });
});
