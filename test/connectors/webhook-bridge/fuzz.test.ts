/**
 * 1,000 random deliveries (random partner keys, bytes, JSON, envelopes with random data, random and correctly
 * signed headers) at the running service: none gets a 5xx, every error is our envelope, and every delivery the
 * service took (202, 422, or 200 for a repeat) is in `inbound_events`.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { signStandardWebhook } from '../../../src/connectors/webhook-bridge/signatures.ts';
import { type Service, startService } from '../../../src/main.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { fastJobs } from '../../support/slack-service.ts';

const GENERIC_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const printable = (text: string) => text.replace(/[^\x20-\x7e]/g, '');

describe('partner webhook fuzzing', () => {
  let tdb: TestDatabase;
  let service: Service;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', GENERIC_WEBHOOK_SECRET: GENERIC_SECRET, HTTP_BODY_LIMIT_BYTES: '65536' });
    if (!config.ok) throw new Error(config.problems.join('; '));
    service = await startService({ config: config.config, role: 'all', logger: captureLogs({ level: 'fatal' }).logger, jobs: fastJobs });
  });
  afterAll(async () => {
    await service.stop();
    await tdb.drop();
  });

  const eventType = fc.oneof(fc.constantFrom('task.create', 'evidence.attach', 'task.comment', 'notification.raise'), fc.string({ maxLength: 40 }));
  // Well-formed deliveries come often enough that every run sees accepted ones too (not only refusals).
  const validTask = fc
    .record({ title: fc.string({ minLength: 1, maxLength: 100 }).filter((title) => title.trim().length > 0), priority: fc.constantFrom('low', 'normal', 'high') })
    .map((data) => Buffer.from(JSON.stringify({ type: 'task.create', timestamp: new Date().toISOString(), data })));
  const body = fc.oneof(
    { arbitrary: validTask, weight: 4 },
    fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes)),
    fc.string({ maxLength: 512 }).map((text) => Buffer.from(text)),
    fc.json({ maxDepth: 4 }).map((text) => Buffer.from(text)),
    fc.record({ type: eventType, timestamp: fc.string({ maxLength: 30 }), data: fc.object({ maxDepth: 3 }) }).map((value) => Buffer.from(JSON.stringify(value))),
    fc
      .record({ type: fc.constant('task.create'), data: fc.record({ title: fc.string({ maxLength: 300 }), priority: fc.constantFrom('low', 'normal', 'high', 'urgent'), control_ids: fc.array(fc.string({ maxLength: 12 }), { maxLength: 3 }) }, { requiredKeys: [] }) })
      .map((value) => Buffer.from(JSON.stringify(value))),
  );
  const headerValue = fc.string({ maxLength: 200 }).map(printable);
  const delivery = fc.record({
    partner: fc.oneof(fc.constant('generic'), fc.constant('nobody'), fc.constant('%E0%A4%A'), fc.constant('%'), fc.string({ minLength: 1, maxLength: 70 }).map(encodeURIComponent)),
    body,
    signing: fc.constantFrom('valid', 'valid-stale', 'random', 'none'),
    id: fc.oneof(fc.string({ minLength: 1, maxLength: 40 }).map(printable), fc.uuid()),
    extra: fc.dictionary(fc.constantFrom('webhook-id', 'webhook-timestamp', 'webhook-signature', 'content-type', 'x-hub-signature-256', 'x-github-event', 'x-request-id', 'traceparent'), headerValue, { maxKeys: 4 }),
  });

  it('never answers 5xx, always answers in the error envelope, and loses nothing it took', async () => {
    const taken: string[] = [];
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(delivery, async (input) => {
        const now = Math.floor(Date.now() / 1000);
        const signed =
          input.signing === 'valid' ? signStandardWebhook([GENERIC_SECRET], input.id || 'x', now, input.body)
          : input.signing === 'valid-stale' ? signStandardWebhook([GENERIC_SECRET], input.id || 'x', now - 3600, input.body)
          : {};
        const headers = input.signing === 'random' ? { ...input.extra } : { ...input.extra, ...signed };
        const res = await fetch(`${service.http.url}/api/integration/webhook/${input.partner}`, { method: 'POST', body: input.body, headers });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const text = await res.text();
        expect(res.status, text).toBeLessThan(500);
        const answer = JSON.parse(text) as { id?: string; error?: { code: string; message: string; details?: { id?: string } } };
        if (res.status >= 400) expect(answer.error).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String) }));
        const id = answer.id ?? answer.error?.details?.id;
        if (res.status === 202 || res.status === 422 || res.status === 200) taken.push(id!);
      }),
      { numRuns: 1000 },
    );
    const found = await tdb.db.selectFrom('inbound_events').select('id').where('id', 'in', taken.length > 0 ? taken : ['00000000-0000-0000-0000-000000000000']).execute();
    expect(new Set(found.map((row) => row.id))).toEqual(new Set(taken));
    // The run covered the interesting outcomes, not just 401s.
    expect([...statuses.keys()]).toEqual(expect.arrayContaining([202, 401, 404, 422]));
  }, 120_000);
});
