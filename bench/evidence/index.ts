/**
 * evidence: files of 1, 10 and 100 MB through the whole evidence pipeline (src/connectors/evidence-stores/ingest.ts:
 * target check, type by content, spooled to staging while hashed (SHA-256 and MD5) and held to the size limit,
 * scanned by a real clamd, stored in a real S3 server (Ceph RGW, test/servers/rgw.ts) with Content-MD5,
 * x-amz-checksum-sha256 and the SigV4 payload hash, recorded and linked in PostgreSQL), against a direct
 * `PutObject` of the same bytes (streamed from the same file on disk, with its Content-Length) to the same bucket
 * in the same run. Each size runs in a process of its own (bench/evidence/worker.ts) so its peak RSS is its own:
 * the pipeline's and the direct upload's.
 *
 * Targets (the issue): the pipeline's rate at least 70% of the direct rate for 10 MB and 100 MB files; peak RSS at
 * 100 MB no more than 32 MiB above that at 10 MB. EVIDENCE_MAX_BYTES is raised to 110 MB for the run (and clamd's
 * StreamMaxLength, MaxFileSize and MaxScanSize with it).
 *
 * Environment: DATABASE_URL (else an embedded PostgreSQL), BENCH_FILES (files per size, default 1 MB: 20,
 * 10 MB: 6, 100 MB: 2), BENCH_QUICK=1 (fewer files).
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { createUser } from '../../src/domain/users.ts';
import { createControl } from '../../src/domain/controls.ts';
import { createLogger } from '../../src/logger.ts';
import { startClamd } from '../../test/servers/clamd.ts';
import { startRgw } from '../../test/servers/rgw.ts';
import { benchDatabase } from '../lib/database.ts';

const MB = 1024 * 1024;
const quick = process.env.BENCH_QUICK === '1';
const FILES: Record<number, number> = quick ? { 1: 5, 10: 3, 100: 1 } : { 1: 20, 10: 6, 100: 2 };
const TARGET_RATIO = 0.7;
const RSS_GROWTH_LIMIT_MB = 32;
const logger = createLogger({ level: 'warn', destination: process.stderr });
const worker = fileURLToPath(new URL('./worker.ts', import.meta.url));

export interface WorkerInput {
  mode: 'pipeline' | 'direct';
  files: string[];
  databaseUrl: string;
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string };
  clamavUrl: string;
  stagingDir: string;
  uploaderEmail: string;
  controlId: string;
  maxBytes: number;
}
export interface WorkerResult {
  seconds: number;
  bytes: number;
  peakRssMb: number;
  /** The pipeline's outcomes (all must be recorded, scanned clean). */
  outcomes: string[];
}

/** A file of `size` bytes: a PDF header (the type check takes it as a PDF), then random bytes, written in 1 MiB steps. */
async function makeFile(file: string, size: number): Promise<void> {
  const out = createWriteStream(file);
  out.write('%PDF-1.4\n');
  let left = size - 9;
  while (left > 0) {
    const chunk = randomBytes(Math.min(MB, left));
    left -= chunk.length;
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

function runWorker(input: WorkerInput): Promise<WorkerResult> {
  return new Promise((resolve, reject) => {
    const child = fork(worker, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (message) => resolve(message as WorkerResult));
    child.once('error', reject);
    child.once('exit', (code) => code !== 0 && reject(new Error(`the ${input.mode} worker exited with ${code}`)));
    child.send(input);
  });
}

const dir = await mkdtemp(path.join(tmpdir(), 'projectx-bench-evidence-'));
try {
  const [clamd, rgw] = await Promise.all([startClamd(path.join(dir, 'clamd'), { streamMaxLength: '110M' }), startRgw(path.join(dir, 'rgw'))]);
  const bucket = 'bench-evidence';
  const admin = new S3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  admin.destroy();
  const email = 'bench-uploader@example.test';
  const database = await benchDatabase({
    name: `bench_evidence_${Date.now().toString(36)}`,
    logger,
    seed: async (db) => {
      const user = await createUser(db, { email, displayName: 'Bench Uploader', roles: ['contributor'] });
      if (!user.ok) throw new Error(user.refusal.message);
      const control = await createControl(db, { id: 'AC-2', title: 'Account management' });
      if (!control.ok) throw new Error(control.refusal.message);
    },
  });
  try {
    const rows: { size: number; files: number; direct: WorkerResult; pipeline: WorkerResult }[] = [];
    for (const size of [1, 10, 100]) {
      const files: string[] = [];
      for (let i = 0; i < FILES[size]!; i++) {
        const file = path.join(dir, `${size}mb-${i}.pdf`);
        await makeFile(file, size * MB);
        files.push(file);
      }
      const base = { files, databaseUrl: database.url, s3: { endpoint: rgw.endpoint, region: rgw.region, accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey, bucket }, clamavUrl: clamd.url, stagingDir: path.join(dir, 'staging'), uploaderEmail: email, controlId: 'AC-2', maxBytes: 110 * MB };
      // Direct first, then the pipeline (the same bytes, other keys: the pipeline's are content addresses).
      const direct = await runWorker({ ...base, mode: 'direct' });
      const pipeline = await runWorker({ ...base, mode: 'pipeline' });
      const wrong = pipeline.outcomes.filter((outcome) => outcome !== 'recorded:clean');
      if (wrong.length > 0) throw new Error(`the pipeline did not record every file scanned clean: ${wrong.join(', ')}`);
      rows.push({ size, files: files.length, direct, pipeline });
      await Promise.all(files.map((file) => rm(file)));
    }
    const rate = (result: WorkerResult) => result.bytes / MB / result.seconds;
    console.log(`\nevidence: files through the pipeline (scan by clamd, store in Ceph RGW, record in PostgreSQL: ${database.where}) vs a direct PutObject of the same bytes to the same bucket`);
    console.log('| file size | files | direct MB/s | pipeline MB/s | ratio | target | direct peak RSS | pipeline peak RSS |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const row of rows) {
      const ratio = rate(row.pipeline) / rate(row.direct);
      const target = row.size >= 10 ? `≥ ${TARGET_RATIO} ${ratio >= TARGET_RATIO ? 'met' : 'NOT met'}` : '-';
      console.log(`| ${row.size} MB | ${row.files} | ${rate(row.direct).toFixed(1)} | ${rate(row.pipeline).toFixed(1)} | ${ratio.toFixed(2)} | ${target} | ${row.direct.peakRssMb.toFixed(0)} MiB | ${row.pipeline.peakRssMb.toFixed(0)} MiB |`);
    }
    const at10 = rows.find((row) => row.size === 10)!.pipeline.peakRssMb;
    const at100 = rows.find((row) => row.size === 100)!.pipeline.peakRssMb;
    console.log(`\npipeline peak RSS at 100 MB − at 10 MB: ${(at100 - at10).toFixed(1)} MiB (target ≤ ${RSS_GROWTH_LIMIT_MB} MiB: ${at100 - at10 <= RSS_GROWTH_LIMIT_MB ? 'met' : 'NOT met'})`);
  } finally {
    await database.close();
    await Promise.all([clamd.stop(), rgw.stop()]);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
