/**
 * Partner webhooks through the whole service (role all, real jobs) on its own database: Standard Webhooks
 * interop with the reference implementation (`standardwebhooks`), rotation, every rejection with its status and
 * reason, quarantine, dedupe, and processing into tasks, comments, evidence and alerts.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { addPartner, rotatePartnerSecret } from '../../../src/connectors/webhook-bridge/partners.ts';
import { signHubSignature, signStandardWebhook, verifyStandardWebhook } from '../../../src/connectors/webhook-bridge/signatures.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { type Service, startService } from '../../../src/main.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { fastJobs } from '../../support/slack-service.ts';
import { tempPath } from '../../support/temp.ts';

const KEY = randomBytes(32);
const GENERIC_SECRET = `whsec_${randomBytes(24).toString('base64')}`;

describe('partner webhooks in', () => {
  let tdb: TestDatabase;
  let service: Service;
  const logs = captureLogs({ level: 'info' });
  const keyring = new Keyring([{ id: 'k1', key: KEY }]);
  let base: string;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', GENERIC_WEBHOOK_SECRET: GENERIC_SECRET, PROJECTX_ENCRYPTION_KEY: `k1:${KEY.toString('base64')}`, PROJECTX_DATA_DIR: tempPath('webhook-data'), CLAMAV_URL: inject('clamav').url });
    if (!config.ok) throw new Error(config.problems.join('; '));
    // No sweep within these tests: every delivery reaches its job through the accept's poke of the relay.
    service = await startService({ config: config.config, role: 'all', logger: logs.logger, jobs: fastJobs, outboxSweepMs: 3_600_000 });
    base = `${service.http.url}/api/integration/webhook`;
    await createControl(tdb.db, { id: 'AC-2', title: 'Account management' });
  });
  afterAll(async () => {
    await service.stop();
    await tdb.drop();
  });

  const envelope = (type: string, data: Record<string, unknown>) => JSON.stringify({ type, timestamp: new Date().toISOString(), data });
  /** Signed by the reference implementation, as a partner's SDK would. */
  function referenceSigned(secret: string, body: string, options: { id?: string; at?: Date } = {}) {
    const id = options.id ?? `msg_${randomUUID().replaceAll('-', '')}`;
    const at = options.at ?? new Date();
    const signature = new Webhook(secret).sign(id, at, body);
    return { id, headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature } };
  }
  const post = (partner: string, body: string | Buffer, headers: Record<string, string>) => fetch(`${base}/${partner}`, { method: 'POST', body, headers });
  const failures = async (partner: string, reason: string) => {
    const text = await (await fetch(`${service.http.url}/metrics`)).text();
    const line = text.split('\n').find((row) => row.startsWith(`webhook_failures_total{partner="${partner}",reason="${reason}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const delivery = (id: string) => tdb.db.selectFrom('inbound_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('agrees with the Standard Webhooks reference implementation in both directions', () => {
    const body = Buffer.from(envelope('example.event', { foo: 'bar', fizzbuzz: 2 }));
    const ours = signStandardWebhook([GENERIC_SECRET], 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W', Math.floor(Date.now() / 1000), body);
    expect(new Webhook(GENERIC_SECRET).verify(body.toString(), ours)).toMatchObject({ type: 'example.event' });
    const theirs = referenceSigned(GENERIC_SECRET, body.toString());
    expect(verifyStandardWebhook({ secrets: [GENERIC_SECRET], id: theirs.headers['webhook-id'], timestamp: theirs.headers['webhook-timestamp'], signature: theirs.headers['webhook-signature'], body, nowSeconds: Math.floor(Date.now() / 1000) })).toEqual({ ok: true });
    expect(verifyStandardWebhook({ secrets: [GENERIC_SECRET], id: theirs.headers['webhook-id'], timestamp: theirs.headers['webhook-timestamp'], signature: theirs.headers['webhook-signature'], body: Buffer.concat([body, Buffer.from(' ')]), nowSeconds: Math.floor(Date.now() / 1000) })).toEqual({ ok: false, reason: 'invalid_signature' });
  });

  it('accepts a signed delivery with 202, then processes it once into a task', async () => {
    const body = envelope('task.create', { title: 'Review vendor SOC 2 report', priority: 'high', control_ids: ['AC-2'] });
    const signed = referenceSigned(GENERIC_SECRET, body);
    const requestId = `req-webhook-${randomUUID()}`;
    const res = await post('generic', body, { ...signed.headers, 'x-request-id': requestId });
    expect(res.status).toBe(202);
    const accepted = (await res.json()) as { id: string; status: string };
    expect(accepted.status).toBe('accepted');
    await expect.poll(async () => (await delivery(accepted.id)).status, { timeout: 15_000 }).toBe('processed');
    const row = await delivery(accepted.id);
    expect(row.result).toMatchObject({ action: 'create_task', created: true });
    const tasks = await tdb.db.selectFrom('task_links').select('task_id').where('target', '=', `webhook:generic:${signed.id}`).execute();
    expect(tasks).toHaveLength(1);
    const event = await tdb.db.selectFrom('integration_events').selectAll().where('external_id', '=', signed.id).executeTakeFirstOrThrow();
    expect(event).toMatchObject({ source: 'webhook:generic', direction: 'inbound', event_type: 'task.create', status: 'processed', correlation_id: requestId });
    // The task's domain event is a job of its own: it carries the request the delivery came in with, although
    // the processing job was enqueued later by the outbox relay.
    const carried = await sql<{ n: number }>`select count(*)::int as n from projectx_jobs.job where name = 'domain.event' and data->'meta'->>'correlationId' = ${requestId}`.execute(tdb.db);
    expect(carried.rows[0]?.n).toBeGreaterThan(0);
  });

  it('relays what its last deliveries staged when the service stops, while its job runtime still runs', async () => {
    const own = await createTestDatabase();
    const config = loadConfig({ DATABASE_URL: own.url, HOST: '127.0.0.1', PORT: '0', GENERIC_WEBHOOK_SECRET: GENERIC_SECRET, PROJECTX_ENCRYPTION_KEY: `k1:${KEY.toString('base64')}` });
    if (!config.ok) throw new Error(config.problems.join('; '));
    try {
      // The web role alone: nothing else relays or processes on this database.
      const web = await startService({ config: config.config, role: 'web', logger: logs.logger, jobs: fastJobs });
      const body = envelope('task.create', { title: 'Accepted just before a stop' });
      const res = await fetch(`${web.http.url}/api/integration/webhook/generic`, { method: 'POST', body, headers: referenceSigned(GENERIC_SECRET, body).headers });
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      await web.stop();
      expect(await own.db.selectFrom('inbound_job_outbox').selectAll().execute()).toEqual([]);
      const named = await sql<{ n: number }>`select count(*)::int as n from projectx_jobs.job where name = 'webhooks.process' and data->'payload'->'inboundIds' ? ${id}`.execute(own.db);
      expect(named.rows[0]?.n).toBe(1);
    } finally {
      await own.drop();
    }
  });

  it('shows staged processing jobs not yet relayed in /metrics (how many deliveries, and how long the oldest waits)', async () => {
    // A job this version does not know (as one staged by a newer version): no relay here takes it.
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    await tdb.db.insertInto('inbound_job_outbox').values({ job_name: 'webhooks.from-a-newer-version', inbound_ids: ids, staged_at: new Date(Date.now() - 90_000) }).execute();
    try {
      const text = await (await fetch(`${service.http.url}/metrics`)).text();
      const value = (name: string) => Number(text.split('\n').find((line) => line.startsWith(`${name}{job="webhooks.from-a-newer-version"}`))?.split(' ').pop());
      expect(value('inbound_job_outbox_deliveries')).toBe(3);
      expect(value('inbound_job_outbox_oldest_seconds')).toBeGreaterThanOrEqual(90);
    } finally {
      await tdb.db.deleteFrom('inbound_job_outbox').where('job_name', '=', 'webhooks.from-a-newer-version').execute();
    }
  });

  it('answers a replayed delivery id with 200 and the original outcome, and does nothing again', async () => {
    const body = envelope('task.create', { title: 'Only once' });
    const signed = referenceSigned(GENERIC_SECRET, body);
    const first = (await (await post('generic', body, signed.headers)).json()) as { id: string };
    await expect.poll(async () => (await delivery(first.id)).status, { timeout: 15_000 }).toBe('processed');
    // The same id, signed again a moment later (as a retrying sender does), even with another body.
    const againBody = envelope('task.create', { title: 'Only once, again' });
    const again = referenceSigned(GENERIC_SECRET, againBody, { id: signed.id });
    const res = await post('generic', againBody, again.headers);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: first.id, status: 'processed', duplicate: true });
    const rows = await tdb.db.selectFrom('inbound_events').select('id').where('source', '=', 'webhook:generic').where('delivery_id', '=', signed.id).execute();
    expect(rows).toHaveLength(1);
    expect(await tdb.db.selectFrom('task_links').select('task_id').where('target', '=', `webhook:generic:${signed.id}`).execute()).toHaveLength(1);
  });

  it.each([
    ['a tampered body', (s: ReturnType<typeof referenceSigned>, body: string) => ({ body: body.replace('Tamper', 'Tampered'), headers: s.headers }), 'invalid_signature'],
    ['a wrong secret', (_s: ReturnType<typeof referenceSigned>, body: string) => ({ body, headers: referenceSigned(`whsec_${randomBytes(24).toString('base64')}`, body).headers }), 'invalid_signature'],
    ['a stale timestamp', (_s: ReturnType<typeof referenceSigned>, body: string) => ({ body, headers: referenceSigned(GENERIC_SECRET, body, { at: new Date(Date.now() - 6 * 60_000) }).headers }), 'stale_timestamp'],
    ['a future timestamp', (_s: ReturnType<typeof referenceSigned>, body: string) => ({ body, headers: referenceSigned(GENERIC_SECRET, body, { at: new Date(Date.now() + 6 * 60_000) }).headers }), 'stale_timestamp'],
    ['missing headers', (s: ReturnType<typeof referenceSigned>, body: string) => ({ body, headers: { 'content-type': 'application/json', 'webhook-id': s.id } }), 'missing_signature'],
    ['a malformed timestamp', (s: ReturnType<typeof referenceSigned>, body: string) => ({ body, headers: { ...s.headers, 'webhook-timestamp': 'yesterday' } }), 'malformed_signature'],
  ] as const)('refuses %s with 401, counts it under the code it answers, and stores nothing', async (_label, build, code) => {
    const body = envelope('task.create', { title: 'Tamper test' });
    const signed = referenceSigned(GENERIC_SECRET, body);
    const before = await failures('generic', code);
    const request = build(signed, body);
    const res = await post('generic', request.body, request.headers);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    expect(await failures('generic', code)).toBe(before + 1);
    expect(await tdb.db.selectFrom('inbound_events').select('id').where('delivery_id', '=', signed.id).execute()).toHaveLength(0);
    expect(logs.text()).not.toContain(signed.headers['webhook-signature']);
  });

  it.each([
    ['a body that is not JSON', 'this is { not json', 'invalid_json'],
    ['a payload that fails its schema', envelope('task.create', { title: '', priority: 'urgent' }), 'schema_invalid'],
    ['an event type nobody mapped', envelope('vendor.mystery', { x: 1 }), 'unmapped_event'],
  ])('keeps %s in quarantine and answers 422 with the errors', async (_label, body, code) => {
    const signed = referenceSigned(GENERIC_SECRET, body);
    const res = await post('generic', body, signed.headers);
    expect(res.status).toBe(422);
    const answer = (await res.json()) as { error: { code: string; message: string; details: { id: string; quarantined: boolean; issues?: unknown[] } } };
    expect(answer.error.code).toBe(code);
    expect(answer.error.details.quarantined).toBe(true);
    if (code === 'schema_invalid') expect(answer.error.details.issues).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'title' }), expect.objectContaining({ path: 'priority' })]));
    const row = await delivery(answer.error.details.id);
    expect(row).toMatchObject({ status: 'quarantined', delivery_id: signed.id });
    expect(row.body.toString()).toBe(body);
  });

  it('quarantines a payload PostgreSQL cannot store (NUL, lone surrogate) without failing the deliveries stored with it', async () => {
    const poisoned = ['{"type":"task.create","data":{"title":"a\\u0000b"}}', '{"type":"x\\ud800","data":{}}'];
    const innocent = Array.from({ length: 30 }, (_, i) => envelope('task.create', { title: `Innocent ${i}` }));
    const answers = await Promise.all([...poisoned, ...innocent].map(async (body) => (await post('generic', body, referenceSigned(GENERIC_SECRET, body).headers)).status));
    expect(answers.slice(0, 2)).toEqual([422, 422]);
    expect(answers.slice(2)).toEqual(innocent.map(() => 202));
  });

  it('refuses an unknown partner with 404 and a 2 MB body with 413, counting both', async () => {
    const unknown = await post('nobody-here', '{}', { 'content-type': 'application/json' });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('unknown_partner');
    expect(await failures('unknown', 'unknown_partner')).toBeGreaterThan(0);
    const huge = envelope('task.create', { title: 'big', description: 'x'.repeat(2 * 1024 * 1024) });
    const res = await post('generic', huge, referenceSigned(GENERIC_SECRET, huge).headers);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
    expect(await failures('generic', 'too_large')).toBe(1);
  });

  it('accepts both secrets during a rotation, and only the new one once the overlap is over', async () => {
    const added = await addPartner(tdb.db, keyring, { key: 'acme', scheme: 'standard' });
    if (!added.ok) throw new Error(added.refusal.message);
    const oldSecret = added.value.secret;
    const rotated = await rotatePartnerSecret(tdb.db, keyring, 'acme', new Date(), 24);
    if (!rotated.ok) throw new Error(rotated.refusal.message);
    const body = envelope('notification.raise', { title: 'Vendor breach disclosed', severity: 'high' });
    for (const secret of [oldSecret, rotated.value.secret]) {
      const res = await post('acme', body, referenceSigned(secret, body).headers);
      expect(res.status).toBe(202);
    }
    // The sender signs with both while it switches (space-separated signatures).
    const id = `msg_${randomUUID().replaceAll('-', '')}`;
    const both = signStandardWebhook([rotated.value.secret, oldSecret], id, Math.floor(Date.now() / 1000), Buffer.from(body));
    expect((await post('acme', body, { 'content-type': 'application/json', ...both })).status).toBe(202);
    // End the overlap now: the old secret stops verifying as soon as the change is notified.
    await tdb.db.updateTable('webhook_partner_secrets').set({ expires_at: new Date(Date.now() - 1000) }).where('partner_key', '=', 'acme').where('expires_at', 'is not', null).execute();
    await expect.poll(async () => (await post('acme', body, referenceSigned(oldSecret, body).headers)).status, { timeout: 10_000 }).toBe(401);
    expect((await post('acme', body, referenceSigned(rotated.value.secret, body).headers)).status).toBe(202);
  });

  it('verifies GitHub- and Jira-style signatures, using their delivery ids against replays', async () => {
    const github = await addPartner(tdb.db, keyring, { key: 'gh', scheme: 'github', mapping: { 'issues.opened': { action: 'create_task', fields: { title: '/issue/title', url: '/issue/html_url' } } } });
    if (!github.ok) throw new Error(github.refusal.message);
    const body = JSON.stringify({ action: 'opened', issue: { title: 'Rotate the deploy key', html_url: 'https://github.example/acme/app/issues/7' } });
    const headers = { 'content-type': 'application/json', 'x-github-event': 'issues', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': signHubSignature(github.value.secret, Buffer.from(body)) };
    const res = await post('gh', body, headers);
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await expect.poll(async () => (await delivery(id)).status, { timeout: 15_000 }).toBe('processed');
    expect((await post('gh', body, headers)).status).toBe(200);
    // The delivery id header is not signed: a captured request sent again under a fresh id is still a repeat.
    const replayed = await post('gh', body, { ...headers, 'x-github-delivery': randomUUID() });
    expect(replayed.status).toBe(200);
    expect(await replayed.json()).toMatchObject({ id, duplicate: true });
    expect(await tdb.db.selectFrom('inbound_events').select('id').where('source', '=', 'webhook:gh').execute()).toHaveLength(1);
    expect((await post('gh', body, { ...headers, 'x-hub-signature-256': signHubSignature('not-the-secret', Buffer.from(body)) })).status).toBe(401);

    const jira = await addPartner(tdb.db, keyring, { key: 'jira-cloud', scheme: 'jira', mapping: { 'jira:issue_updated': { action: 'notify', fields: { title: '/issue/fields/summary' } } } });
    if (!jira.ok) throw new Error(jira.refusal.message);
    const jiraBody = JSON.stringify({ webhookEvent: 'jira:issue_updated', issue: { key: 'SEC-1', fields: { summary: 'Firewall change approved' } } });
    const jiraHeaders = { 'content-type': 'application/json', 'x-atlassian-webhook-identifier': String(Date.now()), 'x-hub-signature': signHubSignature(jira.value.secret, Buffer.from(jiraBody)) };
    expect((await post('jira-cloud', jiraBody, jiraHeaders)).status).toBe(202);
    expect((await post('jira-cloud', jiraBody, { ...jiraHeaders, 'x-atlassian-webhook-identifier': 'another' })).status).toBe(200);
    const wrong = await post('jira-cloud', jiraBody, { ...jiraHeaders, 'x-hub-signature': signHubSignature('not-the-secret', Buffer.from(jiraBody)) });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('invalid_signature');
  });

  it('comments on a task, attaches evidence (hashed and stored) and raises a routed alert', async () => {
    const createdBody = envelope('task.create', { title: 'Collect access review' });
    const signedCreate = referenceSigned(GENERIC_SECRET, createdBody);
    const { id: createId } = (await (await post('generic', createdBody, signedCreate.headers)).json()) as { id: string };
    await expect.poll(async () => (await delivery(createId)).status, { timeout: 15_000 }).toBe('processed');
    const task = ((await delivery(createId)).result as { task: string }).task;

    const send = async (type: string, data: Record<string, unknown>) => {
      const body = envelope(type, data);
      const res = await post('generic', body, referenceSigned(GENERIC_SECRET, body).headers);
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      await expect.poll(async () => (await delivery(id)).status, { timeout: 15_000 }).toBe('processed');
      return (await delivery(id)).result as Record<string, unknown>;
    };
    expect(await send('task.comment', { task_ref: task, text: 'Evidence is on its way' })).toMatchObject({ action: 'comment_task', added: true });
    const audit = await tdb.db.selectFrom('audit_log').selectAll().where('action', '=', 'task.comment').where('object_id', '=', task).executeTakeFirstOrThrow();
    expect(audit.actor).toBe('system:webhook:generic');

    const pdf = Buffer.from('%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n');
    const evidence = await send('evidence.attach', { name: 'access-review.pdf', content_base64: pdf.toString('base64'), control_ids: ['AC-2'], task_ref: task });
    const { createHash } = await import('node:crypto');
    expect(evidence).toMatchObject({ action: 'attach_evidence', sha256: createHash('sha256').update(pdf).digest('hex'), scan: 'clean' });

    const alert = await send('notification.raise', { title: 'Vendor outage', text: 'Payments API down', severity: 'critical' });
    await expect
      .poll(async () => tdb.db.selectFrom('notifications').select(['target', 'event_type']).where('event_id', '=', alert.event as string).execute(), { timeout: 15_000 })
      .toEqual([{ target: 'integration-alerts', event_type: 'partner.alert' }]);
  });

  it("keeps a partner to the tasks its own deliveries created, unless its mapping allows any task", async () => {
    const sendAs = async (partner: string, secret: string, type: string, data: Record<string, unknown>) => {
      const body = envelope(type, data);
      const res = await post(partner, body, referenceSigned(secret, body).headers);
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      await expect.poll(async () => (await delivery(id)).status, { timeout: 15_000 }).not.toBe('received');
      return delivery(id);
    };
    const created = await sendAs('generic', GENERIC_SECRET, 'task.create', { title: 'Owned by generic' });
    const task = (created.result as { task: string }).task;
    const other = await addPartner(tdb.db, keyring, { key: 'other_vendor', scheme: 'standard' });
    if (!other.ok) throw new Error(other.refusal.message);
    const refused = await sendAs('other_vendor', other.value.secret, 'task.comment', { task_ref: task, text: 'Not my task' });
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'forbidden' } });
    const audit = await tdb.db.selectFrom('audit_log').select(['actor', 'outcome']).where('action', '=', 'task.comment').where('object_id', '=', task).where('outcome', '=', 'refused').execute();
    expect(audit).toEqual([{ actor: 'system:webhook:other_vendor', outcome: 'refused' }]);

    const trusted = await addPartner(tdb.db, keyring, { key: 'trusted', scheme: 'standard', mapping: { 'task.comment': { action: 'comment_task', tasks: 'any' } } });
    if (!trusted.ok) throw new Error(trusted.refusal.message);
    expect(await sendAs('trusted', trusted.value.secret, 'task.comment', { task_ref: task, text: 'Allowed by its mapping' })).toMatchObject({ status: 'processed', result: { added: true } });
  });

  it('raises one security notification for repeated signature failures from one partner', async () => {
    const body = envelope('task.create', { title: 'probe' });
    for (let i = 0; i < 12; i++) await post('generic', body, referenceSigned(`whsec_${randomBytes(24).toString('base64')}`, body).headers);
    await expect
      .poll(async () => tdb.db.selectFrom('notifications').select(['target', 'event_type']).where('event_type', '=', 'security.webhook_signature_failures').execute(), { timeout: 15_000 })
      .toEqual([{ target: 'security-alerts', event_type: 'security.webhook_signature_failures' }]);
    // The threshold was crossed twice (5 and 10 failures): the second alert was throttled (one per partner and hour).
    const alerts = await sql<{ n: number }>`select count(*)::int as n from projectx_jobs.job where name = 'webhooks.security-alert'`.execute(tdb.db);
    expect(alerts.rows[0]?.n).toBe(1);
  });
});
