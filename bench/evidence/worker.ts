/**
 * One side of bench/evidence in a process of its own (its peak RSS is its own): `direct` PUTs each file to the
 * bucket (streamed from disk, Content-Length given, no checksum, as a plain upload would); `pipeline` ingests each
 * through `ingestEvidence` with clamd and the S3 store, as a chat upload or a connector does. Reports wall time,
 * bytes and peak RSS to the parent.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { clamdScanner } from '../../src/connectors/evidence-stores/clamd.ts';
import { ingestEvidence } from '../../src/connectors/evidence-stores/ingest.ts';
import { evidencePipeline } from '../../src/connectors/evidence-stores/pipeline.ts';
import { S3EvidenceStore } from '../../src/connectors/evidence-stores/s3.ts';
import { createDatabase } from '../../src/db/database.ts';
import { findUserByEmail } from '../../src/domain/users.ts';
import type { EventSink } from '../../src/domain/events.ts';
import { systemClock } from '../../src/clock.ts';
import type { WorkerInput, WorkerResult } from './index.ts';

process.once('message', (input: WorkerInput) => {
  void run(input).then(
    (result) => process.send!(result, () => process.exit(0)),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
});

async function run(input: WorkerInput): Promise<WorkerResult> {
  const credentials = { accessKeyId: input.s3.accessKeyId, secretAccessKey: input.s3.secretAccessKey };
  let bytes = 0;
  for (const file of input.files) bytes += (await stat(file)).size;
  if (input.mode === 'direct') {
    const client = new S3Client({ endpoint: input.s3.endpoint, region: input.s3.region, forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    const started = performance.now();
    for (const file of input.files) {
      await client.send(new PutObjectCommand({ Bucket: input.s3.bucket, Key: `direct/${randomUUID()}/${path.basename(file)}`, Body: createReadStream(file), ContentLength: (await stat(file)).size }));
    }
    const seconds = (performance.now() - started) / 1000;
    client.destroy();
    return { seconds, bytes, peakRssMb: process.resourceUsage().maxRSS / 1024, outcomes: [] };
  }
  const db = createDatabase({ connectionString: input.databaseUrl, max: 2 });
  // Events go nowhere here (no queue): what is measured is the pipeline up to the committed record.
  const events: EventSink = { emit: () => Promise.resolve() };
  const deps = { db, events, clock: systemClock };
  const store = new S3EvidenceStore({ bucket: input.s3.bucket, region: input.s3.region, endpoint: input.s3.endpoint, credentials });
  const pipeline = evidencePipeline(store, { scanner: clamdScanner(input.clamavUrl), maxBytes: input.maxBytes, stagingDir: input.stagingDir });
  const user = await findUserByEmail(db, input.uploaderEmail);
  const actor = { surface: 'slack' as const, user };
  const outcomes: string[] = [];
  const started = performance.now();
  for (const file of input.files) {
    const result = await ingestEvidence(deps, pipeline, actor, { content: createReadStream(file), fileName: path.basename(file), source: 'bench', controlIds: [input.controlId] });
    outcomes.push(result.ok ? (result.value.outcome === 'recorded' ? `recorded:${result.value.scanStatus}` : `held:${result.value.reason}`) : `refused:${result.refusal.code}`);
  }
  const seconds = (performance.now() - started) / 1000;
  store.close();
  await db.destroy();
  return { seconds, bytes, peakRssMb: process.resourceUsage().maxRSS / 1024, outcomes };
}
