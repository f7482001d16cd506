/**
 * Slack flows that end in jobs, through the whole service against the fake Slack Web API: evidence uploaded
 * in the modal (downloaded with the bot token, checked, hashed, stored, confirmed to the uploader), App Home
 * published on open, and a first-contact user linked by their verified Slack email.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isSlackFileUrl } from '../../../src/bot/slack/evidence-upload.ts';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { createUser, findUserByIdentity } from '../../../src/domain/users.ts';
import type { Service } from '../../../src/main.ts';
import { type SlackService, startSlackService } from '../../support/slack-service.ts';
import type { FakeSlack } from '../../fakes/slack/server.ts';
import type { TestDatabase } from '../../support/database.ts';
import { captureLogs } from '../../support/logs.ts';
import { appHomeOpenedBody, evidenceSubmissionBody, signedRequest, slashCommandBody } from '../../support/slack.ts';

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('Slack flows', () => {
  let tdb: TestDatabase;
  let fake: FakeSlack;
  let service: Service;
  let evidenceDir: string;
  let uploaderId: string;
  const logs = captureLogs({ level: 'info' });

  let env: SlackService;
  beforeAll(async () => {
    evidenceDir = await mkdtemp(path.join(tmpdir(), 'projectx-slack-evidence-'));
    env = await startSlackService(logs.logger, { EVIDENCE_LOCAL_DIR: evidenceDir, EVIDENCE_MAX_BYTES: String(10 * 1024 * 1024), CLAMAV_URL: inject('clamav').url });
    ({ tdb, fake, service } = env);
    uploaderId = await env.linkedUser({ email: 'uma@example.test', name: 'Uma Uploader', roles: ['contributor', 'approver'], slackId: 'WUMA' });
    await createControl(tdb.db, { id: 'AC-2', title: 'Account management' });
  });
  afterAll(async () => {
    await env?.close();
    await rm(evidenceDir, { recursive: true, force: true });
  });

  const post = (body: string, contentType?: string) => fetch(`${service.http.url}/slack/events`, signedRequest(body, contentType ? { contentType } : {}));

  it('opens the evidence modal at once from /projectx evidence AC-2', async () => {
    const res = await post(slashCommandBody({ team_id: fake.teamId, enterprise_id: '', user_id: 'WUMA', text: 'evidence AC-2', trigger_id: 'trg-evidence-1' }));
    expect(await res.json()).toMatchObject({ response_type: 'ephemeral', text: 'Opening the evidence upload form for control AC-2.' });
    await expect.poll(() => fake.callsTo('views.open').length, { timeout: 5000 }).toBe(1);
    const view = fake.callsTo('views.open')[0]!.params.view as { callback_id: string; blocks: { element: { type: string; max_files?: number } }[] };
    expect(view.callback_id).toBe('evidence_upload');
    expect(view.blocks[0]!.element).toMatchObject({ type: 'file_input', max_files: 10 });
  });

  it('stores two uploaded files with their hashes, refuses a wrong type and an oversized file, and confirms to the uploader', async () => {
    fake.addFile({ id: 'FPDF0001', name: 'access-review.pdf', mimetype: 'application/pdf', content: PDF });
    fake.addFile({ id: 'FPNG0001', name: 'diagram.png', mimetype: 'image/png', content: PNG });
    fake.addFile({ id: 'FEXE0001', name: 'tool.pdf', mimetype: 'application/pdf', content: Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200, 0x90)]) });
    fake.addFile({ id: 'FBIG0001', name: 'huge.pdf', mimetype: 'application/pdf', content: Buffer.concat([PDF, Buffer.alloc(10 * 1024 * 1024 + 1, 0x20)]) });
    const res = await post(evidenceSubmissionBody({ userId: 'WUMA', teamId: fake.teamId, fileIds: ['FPDF0001', 'FPNG0001', 'FEXE0001', 'FBIG0001'], controlId: 'AC-2' }));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');

    await expect.poll(async () => (await tdb.db.selectFrom('evidence').select('sha256').execute()).map((row) => row.sha256).sort(), { timeout: 15_000 }).toEqual([sha(PDF), sha(PNG)].sort());
    const links = await tdb.db.selectFrom('evidence_links').selectAll().execute();
    expect(links.map((link) => `${link.kind}:${link.target}:${link.source}`)).toEqual(['control:AC-2:slack', 'control:AC-2:slack']);
    // The confirmation comes last: wait for it, then look at everything the job did.
    await expect.poll(async () => (await tdb.db.selectFrom('slack_messages').select('channel_id').where('message_key', 'like', 'evidence-confirmation:%').executeTakeFirst())?.channel_id, { timeout: 15_000 }).toBeTruthy();
    const dm = await tdb.db.selectFrom('slack_messages').select('channel_id').where('message_key', 'like', 'evidence-confirmation:%').executeTakeFirstOrThrow();
    await expect.poll(() => fake.messages(dm.channel_id!).length, { timeout: 5000 }).toBe(1);
    // Downloaded with the bot token; the oversized file was refused from files.info's size, before any download.
    expect(fake.downloads.filter((download) => download.authorized).map((download) => download.fileId).sort()).toEqual(['FEXE0001', 'FPDF0001', 'FPNG0001']);
    const confirmation = fake.messages(dm.channel_id!)[0]!.text;
    expect(confirmation).toContain(`access-review.pdf: stored, SHA-256 \`${sha(PDF)}\`, scanned clean`);
    expect(confirmation).toContain(`diagram.png: stored, SHA-256 \`${sha(PNG)}\`, scanned clean`);
    expect(confirmation).toMatch(/tool\.pdf: refused, .*not accepted as evidence/);
    expect(confirmation).toContain('huge.pdf: refused, larger than the 10 MB limit');
  });

  it('refuses a submission with no files or no control inside the modal, and enqueues nothing', async () => {
    const res = await post(evidenceSubmissionBody({ userId: 'WUMA', teamId: fake.teamId, fileIds: [], viewId: 'VEMPTY', hash: 'h2' }));
    expect(await res.json()).toEqual({ response_action: 'errors', errors: { files: 'Choose at least one file.', control: 'Choose the control this evidence is for.' } });
  });

  it('downloads files only from Slack (or the configured API host)', () => {
    expect(isSlackFileUrl('https://files.slack.com/files-pri/T1-F1/download/a.pdf', undefined)).toBe(true);
    expect(isSlackFileUrl('https://evil.example/files-pri/T1-F1/download/a.pdf', undefined)).toBe(false);
    expect(isSlackFileUrl('http://files.slack.com/files-pri/T1-F1/a.pdf', undefined)).toBe(false);
    expect(isSlackFileUrl('https://files.slack.com.evil.example/x', undefined)).toBe(false);
    expect(isSlackFileUrl(`${fake.origin}/files-pri/T1-F1/download/a.pdf`, fake.apiUrl)).toBe(true);
    expect(isSlackFileUrl('http://127.0.0.2:1/files-pri/x', fake.apiUrl)).toBe(false);
  });

  it('publishes App Home when it is opened: approvals waiting with buttons, tasks, integrations', async () => {
    const requester = await createUser(tdb.db, { email: 'rex@example.test', displayName: 'Rex', roles: ['contributor'] });
    if (!requester.ok) throw new Error(requester.refusal.message);
    const task = await createTask(service.domain, CLI_ACTOR, { type: 'approval', title: 'Quarterly access review', requesterId: requester.value.id, policy: { approverUserIds: [uploaderId] } });
    if (!task.ok) throw new Error(task.refusal.message);
    const res = await post(appHomeOpenedBody({ userId: 'WUMA', teamId: fake.teamId, eventId: 'EvHOME1' }), 'application/json');
    expect(res.status).toBe(200);
    await expect.poll(() => fake.publishedHome('WUMA'), { timeout: 15_000 }).toBeDefined();
    const home = JSON.stringify(fake.publishedHome('WUMA')!.blocks);
    expect(home).toContain('Approvals waiting for you (1)');
    expect(home).toContain(`${task.value.ref}* Quarterly access review`);
    expect(home).toContain('"action_id":"approve"');
    expect(home).toContain('Integrations');
  });

  it('links a first-contact Slack user by their verified email, and audits it', async () => {
    const created = await createUser(tdb.db, { email: 'vic@example.test', displayName: 'Vic', roles: ['viewer'] });
    if (!created.ok) throw new Error(created.refusal.message);
    fake.addUser({ id: 'WVIC', teamId: fake.teamId, realName: 'Vic', email: 'vic@example.test' });
    const first = await post(slashCommandBody({ team_id: fake.teamId, enterprise_id: '', user_id: 'WVIC', text: 'tasks', trigger_id: 'trg-vic-1' }));
    expect(await first.json()).toMatchObject({ text: expect.stringContaining('/projectx link') });
    await expect.poll(async () => (await findUserByIdentity(tdb.db, { surface: 'slack', tenant: fake.teamId, externalId: 'WVIC' }))?.email, { timeout: 15_000 }).toBe('vic@example.test');
    const later = await post(slashCommandBody({ team_id: fake.teamId, enterprise_id: '', user_id: 'WVIC', text: 'tasks', trigger_id: 'trg-vic-2' }));
    expect(await later.json()).toMatchObject({ text: expect.stringContaining('open assigned to you') });
    const audit = await tdb.db.selectFrom('audit_log').selectAll().where('action', '=', 'identity.link').where('object_id', '=', 'vic@example.test').execute();
    expect(audit).toMatchObject([{ outcome: 'success', detail: { via: 'slack_verified_email' } }]);
  });
});
