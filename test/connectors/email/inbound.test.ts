/**
 * Email in, through the whole service (role all, real jobs) on its own database: nodemailer sends to the
 * service's SMTP listener as the organisation's MTA would. Attachments become evidence, partner mail becomes a
 * webhook delivery of that partner, and whatever cannot be processed is quarantined with the message kept,
 * then replayed with `projectx email quarantine replay` once its cause is fixed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { createTransport } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { OperatorContext } from '../../../src/cli/context.ts';
import { emailVerb } from '../../../src/connectors/email/cli.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { loadConfig } from '../../../src/config.ts';
import { startSmtpListener } from '../../../src/connectors/email/listener.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { addPartner } from '../../../src/connectors/webhook-bridge/partners.ts';
import { type Db, createDatabase } from '../../../src/db/database.ts';
import { migrateToLatest } from '../../../src/db/migrate.ts';
import { migrations } from '../../../src/db/migrations/index.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { createUser } from '../../../src/domain/users.ts';
import { type Service, startService } from '../../../src/main.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type TestDatabase, createTestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { fastJobs } from '../../support/slack-service.ts';

const KEY = randomBytes(32);
const GENERIC_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const DOMAIN = 'projectx.example.test';
/** The smallest well-formed PDF and PNG (real magic bytes: evidence types are checked by content). */
const PDF = Buffer.from('%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n');
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('email in', () => {
  let tdb: TestDatabase;
  let service: Service;
  let evidenceDir: string;
  let ctx: OperatorContext;
  const logs = captureLogs({ level: 'info' });
  let coraId: string;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    evidenceDir = await mkdtemp(path.join(tmpdir(), 'projectx-email-evidence-'));
    const config = loadConfig({
      DATABASE_URL: tdb.url,
      HOST: '127.0.0.1',
      PORT: '0',
      SMTP_INBOUND_PORT: '0',
      EVIDENCE_LOCAL_DIR: evidenceDir,
      CLAMAV_URL: inject('clamav').url,
      GENERIC_WEBHOOK_SECRET: GENERIC_SECRET,
      PROJECTX_ENCRYPTION_KEY: `k1:${KEY.toString('base64')}`,
    });
    if (!config.ok) throw new Error(config.problems.join('; '));
    service = await startService({ config: config.config, role: 'all', logger: logs.logger, jobs: fastJobs });
    ctx = operatorContext(service, { config: config.config });
    await createControl(tdb.db, { id: 'AC-2', title: 'Account management' });
    const cora = await createUser(tdb.db, { email: 'cora@example.test', displayName: 'Cora Contributor', roles: ['contributor'] });
    if (!cora.ok) throw new Error(cora.refusal.message);
    coraId = cora.value.id;
    await createUser(tdb.db, { email: 'vic@example.test', displayName: 'Vic Viewer', roles: ['viewer'] });
  });
  afterAll(async () => {
    await service?.stop();
    await tdb?.drop();
    await rm(evidenceDir, { recursive: true, force: true });
  });

  /** The organisation's MTA relaying to our listener (plain SMTP on loopback, no login). */
  const mta = () => createTransport({ host: '127.0.0.1', port: service.listeners.find((listener) => listener.name === 'smtp')!.port, secure: false, ignoreTLS: true, logger: false });
  const compose = (mail: ConstructorParameters<typeof MailComposer>[0]) => new MailComposer(mail).compile().build();
  const relay = (raw: Buffer, from: string, to: string) => mta().sendMail({ envelope: { from, to: [to] }, raw });
  const queuedId = (response: string) => /queued as ([0-9a-f-]{36})/.exec(response)?.[1] ?? '';
  const message = (id: string) => tdb.db.selectFrom('inbound_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  /** The raw message a recipient's row refers to (stored once for all its recipients). */
  const bodyOf = async (id: string) => (await tdb.db.selectFrom('inbound_events as e').innerJoin('inbound_bodies as b', 'b.sha256', 'e.body_sha256').select('b.body').where('e.id', '=', id).executeTakeFirstOrThrow()).body;
  const settled = async (id: string) => {
    await expect.poll(async () => (await message(id)).status, { timeout: 15_000 }).not.toBe('received');
    return message(id);
  };
  const evidenceOf = (control: string) =>
    tdb.db
      .selectFrom('evidence')
      .innerJoin('evidence_links', 'evidence_links.evidence_id', 'evidence.id')
      .select(['evidence.sha256', 'evidence.media_type', 'evidence.original_name', 'evidence.source', 'evidence.uploaded_by', 'evidence.size_bytes'])
      .where('evidence_links.kind', '=', 'control')
      .where('evidence_links.target', '=', control)
      .orderBy('evidence.original_name')
      .execute();

  it('records both attachments of a message sent over SMTP as evidence for the control, with the raw message kept', async () => {
    const raw = await compose({
      from: 'Cora Contributor <cora@example.test>',
      to: `evidence+AC-2@${DOMAIN}`,
      subject: 'Q4 access review',
      text: 'The review and a screenshot of the group.',
      attachments: [
        { filename: 'access-review.pdf', content: PDF, contentType: 'application/pdf' },
        { filename: 'group.png', content: PNG, contentType: 'image/png' },
      ],
    });
    const sent = await relay(raw, 'cora@example.test', `evidence+AC-2@${DOMAIN}`);
    expect(sent.response).toMatch(/^250 OK: queued as [0-9a-f-]{36}$/);

    await expect.poll(async () => (await evidenceOf('AC-2')).length, { timeout: 15_000 }).toBe(2);
    expect(await evidenceOf('AC-2')).toEqual([
      { sha256: sha256(PDF), media_type: 'application/pdf', original_name: 'access-review.pdf', source: 'email', uploaded_by: coraId, size_bytes: String(PDF.length) },
      { sha256: sha256(PNG), media_type: 'image/png', original_name: 'group.png', source: 'email', uploaded_by: coraId, size_bytes: String(PNG.length) },
    ]);
    const row = await settled(queuedId(sent.response));
    expect(row).toMatchObject({ source: 'email', kind: 'evidence', status: 'processed', error: null, headers: { 'envelope-from': 'cora@example.test', 'envelope-to': `evidence+ac-2@${DOMAIN}`, 'remote-address': '127.0.0.1' } });
    expect((await bodyOf(row.id)).equals(raw)).toBe(true);
    expect(row.result).toMatchObject({ from: 'cora@example.test', evidence: [{ name: 'access-review.pdf', sha256: sha256(PDF), links: ['control:AC-2'], scan: 'clean' }, { name: 'group.png', sha256: sha256(PNG), links: ['control:AC-2'], scan: 'clean' }] });
    const audited = await tdb.db.selectFrom('audit_log').select(['actor', 'outcome']).where('action', '=', 'evidence.record').where('object_id', 'in', [sha256(PDF), sha256(PNG)]).execute();
    expect(audited).toEqual([
      { actor: `user:${coraId}`, outcome: 'success' },
      { actor: `user:${coraId}`, outcome: 'success' },
    ]);
  });

  it('stores a message the MTA sends again once, and quarantines another with the same Message-ID', async () => {
    const raw = await compose({ from: 'cora@example.test', to: `evidence+AC-2@${DOMAIN}`, subject: 'again', messageId: '<again.1@example.test>', attachments: [{ filename: 'notes.txt', content: 'again and again\n' }] });
    const first = await relay(raw, 'cora@example.test', `evidence+AC-2@${DOMAIN}`);
    const second = await relay(raw, 'cora@example.test', `evidence+AC-2@${DOMAIN}`);
    expect(queuedId(second.response)).toBe(queuedId(first.response));
    expect((await settled(queuedId(first.response))).status).toBe('processed');

    const other = await compose({ from: 'cora@example.test', to: `evidence+AC-2@${DOMAIN}`, subject: 'other content', messageId: '<again.1@example.test>', attachments: [{ filename: 'other.txt', content: 'something else\n' }] });
    const third = await relay(other, 'cora@example.test', `evidence+AC-2@${DOMAIN}`);
    const kept = await message(queuedId(third.response));
    expect(kept).toMatchObject({ status: 'quarantined', error: { code: 'duplicate_message_id' } });
    expect((await bodyOf(kept.id)).equals(other)).toBe(true);
  });

  it('stores a message sent to several of our addresses once, and processes it for each address on its own', async () => {
    await createControl(tdb.db, { id: 'AC-3', title: 'Account review' });
    const raw = await compose({
      from: 'Cora Contributor <cora@example.test>',
      to: [`evidence+AC-2@${DOMAIN}`, `evidence+AC-3@${DOMAIN}`, `nobody@${DOMAIN}`],
      subject: 'one message, three of our addresses',
      messageId: `<many.${randomBytes(4).toString('hex')}@example.test>`,
      attachments: [{ filename: 'shared-evidence.csv', content: `user,access\nshared,${randomBytes(4).toString('hex')}\n`, contentType: 'text/csv' }],
    });
    const recipients = [`evidence+AC-2@${DOMAIN}`, `evidence+AC-3@${DOMAIN}`, `nobody@${DOMAIN}`];
    const send = () => mta().sendMail({ envelope: { from: 'cora@example.test', to: recipients }, raw });
    const sent = await send();
    const ids = /queued as (.*)$/.exec(sent.response)![1]!.split(', ');
    expect(ids).toHaveLength(3);
    const rows = await Promise.all(ids.map(settled));
    expect(rows.map((row) => [row.headers['envelope-to'], row.status])).toEqual([
      [`evidence+ac-2@${DOMAIN}`, 'processed'],
      [`evidence+ac-3@${DOMAIN}`, 'processed'],
      [`nobody@${DOMAIN}`, 'quarantined'],
    ]);
    expect((await evidenceOf('AC-3')).map((row) => row.original_name)).toEqual(['shared-evidence.csv']);
    expect((await evidenceOf('AC-2')).map((row) => row.original_name)).toContain('shared-evidence.csv');

    // The message is stored once, whatever the number of recipients; each row refers to it.
    const stored = await tdb.db.selectFrom('inbound_bodies').select(['sha256', (eb) => eb.fn('octet_length', [eb.ref('body')]).as('bytes')]).where('sha256', '=', sha256(raw)).execute();
    expect(stored).toEqual([{ sha256: sha256(raw), bytes: raw.length }]);
    const own = await tdb.db.selectFrom('inbound_events').select(['body_sha256', (eb) => eb.fn('octet_length', [eb.ref('body')]).as('bytes')]).where('id', 'in', ids).execute();
    expect(own).toEqual(ids.map(() => ({ body_sha256: sha256(raw), bytes: 0 })));

    // The MTA sends it again: still one row per recipient and one body.
    expect((await send()).response).toBe(sent.response);
    expect(await tdb.db.selectFrom('inbound_events').select('id').where('body_sha256', '=', sha256(raw)).execute()).toHaveLength(3);
    expect(await tdb.db.selectFrom('inbound_bodies').select('sha256').where('sha256', '=', sha256(raw)).execute()).toHaveLength(1);

    // The operator sees and replays the one recipient that waits, with the message read back.
    const listed = await runOperator(ctx, emailVerb, ['quarantine', 'list']);
    expect(listed.out.filter((line) => line.startsWith(ids[2]!))).toEqual([expect.stringContaining(`to nobody@${DOMAIN}  unmapped_recipient:`)]);
    const shown = JSON.parse((await runOperator(ctx, emailVerb, ['quarantine', 'show', ids[2]!])).out.join('\n')) as { message: Record<string, unknown> };
    expect(shown.message).toMatchObject({ subject: 'one message, three of our addresses', attachments: [{ name: 'shared-evidence.csv', type: 'text/csv' }] });
    expect((await runOperator(ctx, emailVerb, ['quarantine', 'replay', ids[2]!])).code).toBe(0);
    await expect.poll(async () => (await message(ids[2]!)).processed_at, { timeout: 15_000 }).not.toBeNull();
    expect(await message(ids[2]!)).toMatchObject({ status: 'quarantined', error: { code: 'unmapped_recipient' } });
    expect((await message(ids[0]!)).status).toBe('processed');

    // Deleting the rows (as pruning processed ones does) frees the body with the last of them.
    await tdb.db.deleteFrom('inbound_events').where('id', 'in', ids.slice(0, 2)).execute();
    expect(await tdb.db.selectFrom('inbound_bodies').select('sha256').where('sha256', '=', sha256(raw)).execute()).toHaveLength(1);
    await tdb.db.deleteFrom('inbound_events').where('id', '=', ids[2]!).execute();
    expect(await tdb.db.selectFrom('inbound_bodies').select('sha256').where('sha256', '=', sha256(raw)).execute()).toHaveLength(0);
  });

  it('keeps mail to an address that maps to nothing in quarantine, not bounced and not dropped', async () => {
    const sent = await mta().sendMail({ from: 'cora@example.test', to: `help@${DOMAIN}`, subject: 'hello', text: 'anyone?' });
    expect(await settled(queuedId(sent.response))).toMatchObject({ status: 'quarantined', error: { code: 'unmapped_recipient' } });
  });

  it('refuses a client outside SMTP_INBOUND_ALLOWED_NETWORKS before it can send anything', async () => {
    const elsewhere = await startSmtpListener({ db: service.db, jobs: service.jobs, clock: service.domain.clock, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, allowedNetworks: ['10.0.0.0/8'] });
    try {
      const send = createTransport({ host: '127.0.0.1', port: elsewhere.port, secure: false, ignoreTLS: true, logger: false }).sendMail({ from: 'cora@example.test', to: `evidence+AC-2@${DOMAIN}`, subject: 'from outside', text: 'hi' });
      await expect(send).rejects.toMatchObject({ responseCode: 554 });
    } finally {
      await elsewhere.close();
    }
  });

  it('answers 552 to a message over the size limit and 451 when it cannot be stored, accepting neither', async () => {
    const emailRows = async () => (await tdb.db.selectFrom('inbound_events').select((eb) => eb.fn.countAll<string>().as('n')).where('source', '=', 'email').executeTakeFirstOrThrow()).n;
    const before = await emailRows();
    const listen = (db: Db, maxBytes?: number) =>
      startSmtpListener({ db, jobs: service.jobs, clock: service.domain.clock, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, maxBytes, allowedNetworks: ['127.0.0.0/8'] });
    const small = await listen(service.db, 4096);
    // A database that cannot be reached: the message is not stored, so it must not be answered 250.
    const unreachable = createDatabase({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    const broken = await listen(unreachable);
    try {
      const send = (port: number, text: string) => createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, logger: false }).sendMail({ from: 'cora@example.test', to: `evidence+AC-2@${DOMAIN}`, subject: 'limits', text });
      await expect(send(small.port, 'x'.repeat(10_000))).rejects.toMatchObject({ responseCode: 552 });
      await expect(send(broken.port, 'hello')).rejects.toMatchObject({ responseCode: 451 });
    } finally {
      await small.close();
      await broken.close();
      await unreachable.destroy();
    }
    expect(await emailRows()).toBe(before);
  });

  it('quarantines, never drops, mail from an unknown or unauthorized sender, to an unknown control or partner, or that is no message at all', async () => {
    const attachment = [{ filename: 'evidence.txt', content: 'evidence\n' }];
    const cases = [
      { code: 'unknown_sender', from: 'mallory@example.test', to: `evidence+AC-2@${DOMAIN}`, raw: await compose({ from: 'mallory@example.test', to: `evidence+AC-2@${DOMAIN}`, subject: 's', attachments: attachment }) },
      { code: 'forbidden', from: 'vic@example.test', to: `evidence+AC-2@${DOMAIN}`, raw: await compose({ from: 'vic@example.test', to: `evidence+AC-2@${DOMAIN}`, subject: 's', attachments: attachment }) },
      { code: 'unknown_target', from: 'cora@example.test', to: `evidence+NOPE-9@${DOMAIN}`, raw: await compose({ from: 'cora@example.test', to: `evidence+NOPE-9@${DOMAIN}`, subject: 's', attachments: attachment }) },
      { code: 'unknown_partner', from: 'ops@vendor.example', to: `partner+nosuch@${DOMAIN}`, raw: await compose({ from: 'ops@vendor.example', to: `partner+nosuch@${DOMAIN}`, subject: 's', text: '{"type":"task.create","data":{"title":"x"}}' }) },
      { code: 'unparseable', from: 'cora@example.test', to: `evidence+AC-2@${DOMAIN}`, raw: Buffer.from('\u0000\u0001 this is not an email message \u00ff\r\n') },
    ];
    for (const test of cases) {
      const sent = await relay(test.raw, test.from, test.to);
      const row = await settled(queuedId(sent.response));
      expect(row, test.code).toMatchObject({ status: 'quarantined', error: { code: test.code, message: expect.any(String) } });
      expect((await bodyOf(row.id)).equals(test.raw), test.code).toBe(true);
    }
    expect((await message(queuedId((await relay(cases[0]!.raw, cases[0]!.from, cases[0]!.to)).response))).error).toEqual({ code: 'unknown_sender', message: 'no active ProjectX user has the email address mallory@example.test' });

    const listed = await runOperator(ctx, emailVerb, ['quarantine', 'list']);
    expect(listed.code).toBe(0);
    for (const test of cases) expect(listed.out.some((line) => line.includes(`to ${test.to.toLowerCase()}`) && line.includes(`${test.code}:`)), test.code).toBe(true);
  });

  it('processes a quarantined message once its cause is fixed (projectx email quarantine replay)', async () => {
    const raw = await compose({ from: 'Rae <rae@example.test>', to: `evidence+AC-2@${DOMAIN}`, subject: 'late evidence', attachments: [{ filename: 'rae.csv', content: 'user,access\nrae,read\n' }] });
    const id = queuedId((await relay(raw, 'rae@example.test', `evidence+AC-2@${DOMAIN}`)).response);
    expect((await settled(id)).error).toMatchObject({ code: 'unknown_sender' });

    const shown = await runOperator(ctx, emailVerb, ['quarantine', 'show', id]);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.out.join('\n'))).toMatchObject({ id, status: 'quarantined', message: { from: '"Rae" <rae@example.test>', subject: 'late evidence', attachments: [{ name: 'rae.csv', type: 'text/csv' }] } });

    await createUser(tdb.db, { email: 'rae@example.test', displayName: 'Rae', roles: ['contributor'] });
    const replayed = await runOperator(ctx, emailVerb, ['quarantine', 'replay', id]);
    expect(replayed.code).toBe(0);
    expect(replayed.out).toEqual([`message ${id} (to evidence+ac-2@${DOMAIN}) queued for processing again`]);
    await expect.poll(async () => (await message(id)).status, { timeout: 15_000 }).toBe('processed');
    expect((await evidenceOf('AC-2')).map((row) => row.original_name)).toContain('rae.csv');
    const audit = await tdb.db.selectFrom('audit_log').select(['actor', 'detail']).where('action', '=', 'email_message.replay').where('object_id', '=', id).executeTakeFirstOrThrow();
    expect(audit).toMatchObject({ actor: 'anonymous:cli', detail: { from: 'quarantined', code: 'unknown_sender' } });
  });

  it("hands partner mail from a listed sender to the webhook bridge, which performs the partner's mapped action", async () => {
    const added = await addPartner(tdb.db, new Keyring([{ id: 'k1', key: randomBytes(32) }]), { key: 'vendor', scheme: 'standard', emailSenders: ['@vendor.example'] });
    if (!added.ok) throw new Error(added.refusal.message);
    const raw = await compose({ from: 'ops@vendor.example', to: `partner+vendor@${DOMAIN}`, subject: 'new finding', text: 'Hello,\n{"type":"task.create","data":{"title":"Vendor finding, by email"}}\n-- \nThis message was scanned for viruses.' });
    const id = queuedId((await relay(raw, 'ops@vendor.example', `partner+vendor@${DOMAIN}`)).response);
    const row = await settled(id);
    expect(row).toMatchObject({ status: 'processed', kind: 'partner', result: { from: 'ops@vendor.example', partner: 'vendor', action: 'create_task', delivery: expect.any(String) } });
    const delivery = (row.result as { delivery: string }).delivery;
    await expect.poll(async () => (await message(delivery)).status, { timeout: 15_000 }).toBe('processed');
    expect(await message(delivery)).toMatchObject({ source: 'webhook:vendor', delivery_id: `email:${id}`, kind: 'task.create', result: { action: 'create_task', created: true } });
    const task = await tdb.db.selectFrom('tasks').select('title').where('title', '=', 'Vendor finding, by email').execute();
    expect(task).toHaveLength(1);

    const unfit = await compose({ from: 'ops@vendor.example', to: `partner+vendor@${DOMAIN}`, subject: 'x', text: '{"type":"vendor.unknown_event","data":{}}' });
    const quarantined = await settled(queuedId((await relay(unfit, 'ops@vendor.example', `partner+vendor@${DOMAIN}`)).response));
    expect(quarantined).toMatchObject({ status: 'quarantined', error: { code: 'unmapped_event', eventType: 'vendor.unknown_event' } });
  });

  it('quarantines partner mail from anyone not listed for the partner, and mail with more than one sender', async () => {
    const forged = await compose({ from: 'mallory@evil.example', to: `partner+vendor@${DOMAIN}`, subject: 'x', text: '{"type":"task.create","data":{"title":"Forged"}}' });
    expect(await settled(queuedId((await relay(forged, 'mallory@evil.example', `partner+vendor@${DOMAIN}`)).response))).toMatchObject({ status: 'quarantined', error: { code: 'unauthorized_sender' } });
    const generic = await compose({ from: 'ops@vendor.example', to: `partner+generic@${DOMAIN}`, subject: 'x', text: '{"type":"task.create","data":{"title":"No senders"}}' });
    expect(await settled(queuedId((await relay(generic, 'ops@vendor.example', `partner+generic@${DOMAIN}`)).response))).toMatchObject({ status: 'quarantined', error: { code: 'unauthorized_sender' } });
    // Two From lines: mailparser would keep the last (a user), while the MTA's DMARC checked the first.
    const twoFroms = Buffer.from(`From: mallory@evil.example\r\nFrom: cora@example.test\r\nTo: evidence+AC-2@${DOMAIN}\r\nSubject: two senders\r\nMessage-ID: <two-froms-${randomBytes(4).toString('hex')}@evil.example>\r\n\r\nhello\r\n`);
    expect(await settled(queuedId((await relay(twoFroms, 'mallory@evil.example', `evidence+AC-2@${DOMAIN}`)).response))).toMatchObject({ status: 'quarantined', error: { code: 'ambiguous_sender' } });
  });
});

describe('email stored before messages were shared (migration 20261207_1000)', () => {
  const MIGRATION = '20261207_1000_subscription_urls_email_bodies';
  let empty: TestDatabase;
  beforeAll(async () => {
    empty = await createTestDatabase({ empty: true });
  });
  afterAll(() => empty?.drop());

  it('moves each stored message into one shared body, which the rows then refer to', async () => {
    const names = Object.keys(migrations).sort();
    const before = await new Migrator({ db: empty.db, provider: { getMigrations: () => Promise.resolve(migrations) } }).migrateTo(names[names.indexOf(MIGRATION) - 1]!);
    expect(before.error).toBeUndefined();
    const raw = Buffer.from(`From: cora@example.test\r\nTo: evidence+AC-2@${DOMAIN}, evidence+AC-3@${DOMAIN}\r\nSubject: before\r\nMessage-ID: <before.1@example.test>\r\n\r\nhello\r\n`);
    // As the listener wrote it before: the whole message in each recipient's row.
    for (const to of [`evidence+ac-2@${DOMAIN}`, `evidence+ac-3@${DOMAIN}`]) {
      await sql`insert into inbound_events (source, delivery_id, kind, status, headers, body) values ('email', ${`${to}:<before.1@example.test>`}, 'evidence', 'quarantined', ${JSON.stringify({ 'envelope-to': to })}::jsonb, ${raw})`.execute(empty.db);
    }
    await sql`insert into inbound_events (source, delivery_id, kind, body) values ('webhook:acme', 'msg_1', 'task.create', ${Buffer.from('{}')})`.execute(empty.db);

    await migrateToLatest(empty.db);
    const rows = await empty.db.selectFrom('inbound_events').select(['source', 'body_sha256', (eb) => eb.fn('octet_length', [eb.ref('body')]).as('bytes')]).orderBy('source').execute();
    expect(rows).toEqual([
      { source: 'email', body_sha256: sha256(raw), bytes: 0 },
      { source: 'email', body_sha256: sha256(raw), bytes: 0 },
      { source: 'webhook:acme', body_sha256: null, bytes: 2 },
    ]);
    const bodies = await empty.db.selectFrom('inbound_bodies').selectAll().execute();
    expect(bodies.map((body) => [body.sha256, body.body.equals(raw)])).toEqual([[sha256(raw), true]]);
  });
});
