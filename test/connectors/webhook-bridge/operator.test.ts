/**
 * The operator's side of the webhook bridge, through the real `projectx` binary against the database a running
 * service uses: partners (secret shown once, stored encrypted), quarantine fixed and replayed, failed deliveries
 * replayed once the cause is fixed.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { type Service, startService } from '../../../src/main.ts';
import { killAll, spawnCli } from '../../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { fastJobs } from '../../support/slack-service.ts';

const KEY = `k1:${randomBytes(32).toString('base64')}`;
const GENERIC_SECRET = `whsec_${randomBytes(24).toString('base64')}`;

describe('projectx partners and webhooks', () => {
  let tdb: TestDatabase;
  let service: Service;
  let dir: string;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'projectx-webhooks-cli-'));
    const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', GENERIC_WEBHOOK_SECRET: GENERIC_SECRET, PROJECTX_ENCRYPTION_KEY: KEY });
    if (!config.ok) throw new Error(config.problems.join('; '));
    service = await startService({ config: config.config, role: 'all', logger: captureLogs().logger, jobs: fastJobs });
  });
  afterEach(() => killAll());
  afterAll(async () => {
    await service.stop();
    await tdb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const cli = async (args: string[], env: Record<string, string> = {}) => {
    const run = spawnCli(args, { env: { DATABASE_URL: tdb.url, PROJECTX_ENCRYPTION_KEY: KEY, GENERIC_WEBHOOK_SECRET: GENERIC_SECRET, LOG_LEVEL: 'warn', ...env }, cwd: dir });
    const { code } = await run.exited;
    return { code, stdout: run.stdout(), stderr: run.stderr() };
  };
  const send = async (partner: string, secret: string, type: string, data: Record<string, unknown>) => {
    const body = JSON.stringify({ type, timestamp: new Date().toISOString(), data });
    const id = `msg_${randomUUID().replaceAll('-', '')}`;
    const now = new Date();
    const res = await fetch(`${service.http.url}/api/integration/webhook/${partner}`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': new Webhook(secret).sign(id, now, body) },
    });
    return { status: res.status, answer: (await res.json()) as { id?: string; error?: { details?: { id: string } } } };
  };
  const statusOf = async (id: string) => (await tdb.db.selectFrom('inbound_events').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status;

  it('adds a partner, shows its secret once and stores only ciphertext; rotates and removes it', async () => {
    const added = await cli(['partners', 'add', 'vendor-x', '--description', 'Vendor X risk feed']);
    expect(added.code).toBe(0);
    const secret = /secret \(shown once[^:]*\): (whsec_\S+)/.exec(added.stdout)?.[1];
    expect(secret).toBeDefined();
    const stored = await tdb.db.selectFrom('webhook_partner_secrets').select('secret').where('partner_key', '=', 'vendor-x').execute();
    expect(JSON.stringify(stored)).not.toContain(secret!.slice('whsec_'.length));
    expect((await send('vendor-x', secret!, 'task.create', { title: 'From vendor X' })).status).toBe(202);

    const listed = await cli(['partners', 'list']);
    expect(listed.stdout).toContain('vendor-x  standard  events: evidence.attach, notification.raise, task.comment, task.create  valid secrets: 1  Vendor X risk feed');
    expect(listed.stdout).toContain('generic  standard');
    expect(listed.stdout).not.toContain(secret!);

    const rotated = await cli(['partners', 'rotate-secret', 'vendor-x']);
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(/new secret for vendor-x \(shown once\): whsec_/);
    expect((await cli(['partners', 'add', 'vendor-x'])).stderr).toContain('already exists');
    expect((await cli(['partners', 'remove', 'vendor-x'])).code).toBe(0);
    await expect.poll(async () => (await send('vendor-x', secret!, 'task.create', { title: 'gone' })).status, { timeout: 10_000 }).toBe(404);
  });

  it('refuses to store a partner without an encryption key, and a bad partner key, with a message and exit 1', async () => {
    const noKey = await cli(['partners', 'add', 'acme'], { PROJECTX_ENCRYPTION_KEY: '' });
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain('set PROJECTX_ENCRYPTION_KEY');
    const badKey = await cli(['partners', 'add', 'Not A Key']);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toContain('is not a partner key');
  });

  it('lists, shows and replays a quarantined delivery with a fixed body', async () => {
    const rejected = await send('generic', GENERIC_SECRET, 'task.create', { title: '' });
    expect(rejected.status).toBe(422);
    const id = rejected.answer.error!.details!.id;
    expect((await cli(['webhooks', 'quarantine', 'list'])).stdout).toContain(`${id}  generic  task.create`);
    const shown = await cli(['webhooks', 'quarantine', 'show', id]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, partner: 'generic', status: 'quarantined', error: { code: 'schema_invalid' } });

    const stillBad = await cli(['webhooks', 'quarantine', 'replay', id]);
    expect(stillBad.code).toBe(1);
    expect(stillBad.stderr).toContain('still does not fit');
    const fixed = path.join(dir, 'fixed.json');
    await writeFile(fixed, JSON.stringify({ type: 'task.create', timestamp: new Date().toISOString(), data: { title: 'Fixed by the operator' } }));
    const replayed = await cli(['webhooks', 'quarantine', 'replay', id, '--body-file', fixed]);
    expect(replayed.code).toBe(0);
    await expect.poll(() => statusOf(id), { timeout: 15_000 }).toBe('processed');
    const audit = await tdb.db.selectFrom('audit_log').select(['actor', 'detail']).where('action', '=', 'webhook_delivery.replay').where('object_id', '=', id).executeTakeFirstOrThrow();
    expect(audit).toMatchObject({ actor: 'anonymous:cli', detail: { from: 'quarantined', bodyReplaced: true } });
  });

  it('marks a delivery the domain refuses as failed, and replays it once the cause is fixed', async () => {
    const accepted = await send('generic', GENERIC_SECRET, 'task.create', { title: 'Needs a control', control_ids: ['ZZ-9'] });
    expect(accepted.status).toBe(202);
    const id = accepted.answer.id!;
    await expect.poll(() => statusOf(id), { timeout: 15_000 }).toBe('failed');
    expect((await cli(['webhooks', 'dead', 'list'])).stdout).toContain(`${id}  generic  task.create`);
    await createControl(tdb.db, { id: 'ZZ-9', title: 'A control made for the replay' });
    expect((await cli(['webhooks', 'dead', 'replay', id])).code).toBe(0);
    await expect.poll(() => statusOf(id), { timeout: 15_000 }).toBe('processed');
    expect((await cli(['webhooks', 'dead', 'replay', id])).stderr).toContain('is processed, not failed');
  });

  it('lists a delivery whose job was lost (still received after 30 minutes) as dead, and replays it', async () => {
    const body = JSON.stringify({ type: 'task.create', data: { title: 'Lost with its worker' } });
    const row = await tdb.db
      .insertInto('inbound_events')
      .values({ source: 'webhook:generic', delivery_id: `msg_lost_${randomUUID()}`, kind: 'task.create', headers: '{}', body: Buffer.from(body), received_at: new Date(Date.now() - 3_600_000) })
      .returning('id')
      .executeTakeFirstOrThrow();
    expect((await cli(['webhooks', 'dead', 'list'])).stdout).toContain(`${row.id}  generic  task.create`);
    expect((await cli(['webhooks', 'dead', 'replay', row.id])).code).toBe(0);
    await expect.poll(() => statusOf(row.id), { timeout: 15_000 }).toBe('processed');
  });
});

