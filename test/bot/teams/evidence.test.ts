/**
 * Evidence files from a Teams personal chat, end to end in the running service against the fakes and a small
 * file server of our own on 127.0.0.1 (listed in TEAMS_FILE_HOSTS, as a tenant's SharePoint host would be
 * allowed): files attached with `evidence AC-2` are downloaded by a job with a plain GET, checked by content,
 * hashed, stored, linked and confirmed in the chat with their SHA-256; an oversized file, one of a type not
 * accepted and one on a foreign host are refused (the foreign one never fetched); a target named first is used
 * for the files sent next; without one a card asks which control, and only the sender's first choice stages the
 * upload; a redelivered message stages nothing twice; unlinked people and viewers get the command layer's
 * refusal; `evidence` in a channel explains how to upload.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type IncomingHttpHeaders, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isTeamsFileUrl } from '../../../src/bot/teams/evidence-upload.ts';
import { loadConfig } from '../../../src/config.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { captureLogs } from '../../support/logs.ts';
import { type TeamsPerson, type TeamsService, startTeamsService } from '../../support/teams-service.ts';
import { tempPath } from '../../support/temp.ts';

const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');
const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200, 0x90)]);
const HUGE = Buffer.concat([PDF, Buffer.alloc(10 * 1024 * 1024 + 1, 0x20)]);
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
/** Download URLs carry a token in their query string, as SharePoint's do: it must never reach a log. */
const TOKEN = `tempauth-${randomUUID()}`;
const FILE_DOWNLOAD_INFO = 'application/vnd.microsoft.teams.file.download.info';

describe('Teams evidence files', () => {
  let env: TeamsService;
  let files: Server;
  let origin: string;
  const served = new Map<string, Buffer>();
  const requests: { path: string; headers: IncomingHttpHeaders }[] = [];
  const logs = captureLogs({ level: 'info' });
  let megan: TeamsPerson;

  beforeAll(async () => {
    files = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://files');
      requests.push({ path: url.pathname, headers: req.headers });
      if (url.searchParams.get('tempauth') !== TOKEN) return void res.writeHead(401).end();
      if (url.pathname === '/hop') return void res.writeHead(302, { location: `https://evil.example.test/stolen.pdf?tempauth=${TOKEN}` }).end();
      const bytes = served.get(url.pathname);
      if (!bytes) return void res.writeHead(404).end();
      // Sent in chunks without a Content-Length: the size limit is enforced on the content itself.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let at = 0; at < bytes.length; at += 1024 * 1024) res.write(bytes.subarray(at, at + 1024 * 1024));
      res.end();
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    const { port } = files.address() as AddressInfo;
    origin = `http://127.0.0.1:${port}`;
    env = await startTeamsService(logs.logger, { env: { TEAMS_FILE_HOSTS: `127.0.0.1:${port}`, EVIDENCE_LOCAL_DIR: tempPath('teams-evidence'), EVIDENCE_MAX_BYTES: String(10 * 1024 * 1024), CLAMAV_URL: inject('clamav').url } });
    megan = await env.person({ email: 'megan@example.test', name: 'Megan Bowen', roles: ['contributor'] });
    for (const [id, title] of [['AC-2', 'Account management'], ['AC-3', 'Access enforcement']] as const) {
      const control = await createControl(env.tdb.db, { id, title });
      if (!control.ok) throw new Error(control.refusal.message);
    }
    await env.installPersonal(megan);
  });
  afterAll(async () => {
    await env?.close();
    await new Promise((resolve) => files?.close(resolve));
  });

  /** A file the server serves at `/<name>`, as a Teams file attachment whose downloadUrl carries the token. */
  const serve = (name: string, bytes: Buffer) => {
    served.set(`/${name}`, bytes);
    return attachment(name, `${origin}/${name}?tempauth=${TOKEN}`);
  };
  const attachment = (name: string, downloadUrl: string) => ({
    contentType: FILE_DOWNLOAD_INFO,
    contentUrl: `https://contoso-my.sharepoint.com/personal/megan_contoso_com/Documents/Microsoft Teams Chat Files/${name}`,
    name,
    content: { downloadUrl, uniqueId: randomUUID(), fileType: name.split('.').pop() },
  });
  const withFiles = (from: TeamsPerson, text: string, attachments: unknown[]) => ({ ...env.message(from, text), attachments });
  const deliveryOf = (activity: Record<string, unknown>) =>
    env.tdb.db.selectFrom('inbound_events').select(['id', 'status', 'processed_at', 'result']).where('source', '=', 'teams').where('delivery_id', '=', `message:${(activity.conversation as { id: string }).id}:${activity.id as string}`).executeTakeFirstOrThrow();
  const confirmationOf = async (inboundId: string) => {
    const row = await env.tdb.db.selectFrom('teams_messages').select(['activity_id', 'conversation_id']).where('message_key', '=', `evidence-confirmation:${inboundId}`).where('status', '=', 'posted').executeTakeFirst();
    return row ? env.posted(row.conversation_id).find((post) => post.id === row.activity_id)?.body.text : undefined;
  };
  const linksTo = async (target: string) =>
    (await env.tdb.db.selectFrom('evidence_links').innerJoin('evidence', 'evidence.id', 'evidence_links.evidence_id').select(['evidence.sha256', 'evidence_links.source']).where('evidence_links.target', '=', target).execute()).map((row) => `${row.sha256}:${row.source}`).sort();
  const lastText = (conversationId: string) => env.posted(conversationId).at(-1)?.body.text;
  const textsSince = (conversationId: string, count: number) => env.posted(conversationId).slice(count).map((post) => post.body.text);

  it('stores two files sent with `evidence AC-2`, refuses an oversized file, a wrong type and foreign hosts, and confirms with the hashes', async () => {
    const chat = env.personalChat(megan);
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(1); // the welcome card
    const before = env.posted(chat).length;
    const message = withFiles(megan, 'evidence AC-2', [
      serve('access-review.pdf', PDF),
      serve('diagram.png', PNG),
      serve('huge.pdf', HUGE),
      serve('tool.pdf', EXE),
      attachment('stolen.pdf', `https://evil.example.test/stolen.pdf?tempauth=${TOKEN}`),
      attachment('bounced.pdf', `${origin}/hop?tempauth=${TOKEN}`),
    ]);
    expect((await env.post(message)).status).toBe(200);
    // Two posts, each by its own job (in either order): the reply, then (after the downloads) the confirmation.
    await expect.poll(() => textsSince(chat, before), { timeout: 20_000 }).toContain("Checking 6 files for control AC-2. I will confirm here with each file's SHA-256.");

    const delivery = await deliveryOf(message);
    await expect.poll(() => confirmationOf(delivery.id), { timeout: 30_000 }).toBeDefined();
    const confirmation = (await confirmationOf(delivery.id))!;
    expect(confirmation.split('\n')).toEqual([
      'Evidence for control AC-2:',
      `• access-review.pdf: stored, SHA-256 \`${sha(PDF)}\`, scanned clean`,
      `• diagram.png: stored, SHA-256 \`${sha(PNG)}\`, scanned clean`,
      '• huge.pdf: refused, huge.pdf is larger than the 10 MB limit',
      expect.stringMatching(/^• tool\.pdf: refused, .*not accepted as evidence/),
      "• stolen.pdf: refused, the download address is not your organisation's SharePoint or OneDrive",
      '• bounced.pdf: refused, the download was redirected to an address that is not allowed',
    ]);
    // Stored and linked: exactly the two accepted files, with the hashes of their bytes.
    expect((await env.tdb.db.selectFrom('evidence').select('sha256').execute()).map((row) => row.sha256).sort()).toEqual([sha(PDF), sha(PNG)].sort());
    expect(await linksTo('AC-2')).toEqual([`${sha(PDF)}:teams`, `${sha(PNG)}:teams`].sort());
    // Plain GETs without Authorization, each file once; the foreign host was never asked (it is not ours, and
    // the redirect to it was not followed).
    expect(requests.map((request) => request.path).sort()).toEqual(['/access-review.pdf', '/diagram.png', '/hop', '/huge.pdf', '/tool.pdf']);
    expect(requests.every((request) => request.headers.authorization === undefined)).toBe(true);
    // Refusals logged by host, never with the download URL's token.
    expect(logs.lines().filter((line) => line.host === 'evil.example.test' || line.redirectHost === 'evil.example.test')).toHaveLength(2);
    expect(logs.text()).not.toContain(TOKEN);
    // Nor does any column hold it: the download addresses are sealed beside the delivery (AES-GCM), not in its body or result.
    const stored = await env.tdb.db.selectFrom('inbound_events').select(['body', 'result', 'sealed']).where('source', '=', 'teams').execute();
    expect(stored.some((row) => row.sealed !== null)).toBe(true);
    for (const row of stored) expect(`${row.body.toString('utf8')} ${JSON.stringify(row.result)} ${JSON.stringify(row.sealed)}`).not.toContain(TOKEN);
    expect(JSON.stringify(await env.tdb.db.selectFrom('inbound_job_outbox').selectAll().execute())).not.toContain(TOKEN);
    // The confirmation card carries the same lines.
    const card = env.posted(chat).find((post) => post.body.text === confirmation)!.body.attachments?.[0]?.content;
    expect(JSON.stringify(card)).toContain(sha(PDF));

    // The channel delivers the message again: nothing is staged or stored a second time.
    const settled = await deliveryOf(message);
    expect((await env.post(message)).status).toBe(200);
    expect(await deliveryOf(message)).toEqual(settled);
    expect(await env.tdb.db.selectFrom('inbound_job_outbox').select('id').execute()).toEqual([]);
    expect(await env.tdb.db.selectFrom('teams_messages').select('id').where('message_key', 'like', 'evidence-confirmation:%').execute()).toHaveLength(1);
    expect(requests).toHaveLength(5);
  });

  it('uses a target named first for the files sent next, within 15 minutes', async () => {
    const chat = env.personalChat(megan);
    let count = env.posted(chat).length;
    await env.post(env.message(megan, 'evidence AC-3'));
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(++count);
    expect(lastText(chat)).toBe('Attach the files to your next message here within 15 minutes; they will be stored as evidence for control AC-3.');

    const policy = Buffer.from(`%PDF-1.4\n% access policy ${randomUUID()}\n%%EOF\n`);
    const message = withFiles(megan, '', [serve('policy.pdf', policy)]);
    await env.post(message);
    await expect.poll(() => textsSince(chat, count), { timeout: 20_000 }).toContain("Checking 1 file for control AC-3. I will confirm here with each file's SHA-256.");
    const delivery = await deliveryOf(message);
    await expect.poll(() => confirmationOf(delivery.id), { timeout: 30_000 }).toBe(`Evidence for control AC-3:\n• policy.pdf: stored, SHA-256 \`${sha(policy)}\`, scanned clean`);
    expect(textsSince(chat, count)).toHaveLength(2);
    expect(await linksTo('AC-3')).toEqual([`${sha(policy)}:teams`]);
    // Used up by the upload.
    expect(await env.tdb.db.selectFrom('teams_evidence_targets').selectAll().execute()).toEqual([]);
  });

  it('asks which control when none is named (or the one named has expired), and stages the sender’s first choice only', async () => {
    const chat = env.personalChat(megan);
    const count = env.posted(chat).length;
    // A target named 16 minutes ago no longer counts.
    await env.post(env.message(megan, 'evidence AC-3'));
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(count + 1);
    await env.tdb.db.updateTable('teams_evidence_targets').set({ named_at: new Date(Date.now() - 16 * 60 * 1000) }).execute();

    const log = Buffer.from(`%PDF-1.4\n% login log ${randomUUID()}\n%%EOF\n`);
    const message = withFiles(megan, 'here is the log', [serve('login-log.pdf', log)]);
    await env.post(message);
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(count + 2);
    const delivery = await deliveryOf(message);
    const card = env.posted(chat).at(-1)!.body.attachments?.[0]?.content as { body: Record<string, unknown>[]; actions: Record<string, unknown>[] };
    expect(lastText(chat)).toBe('Which control is this file evidence for?');
    expect(card.body.find((element) => element.type === 'Input.ChoiceSet')).toMatchObject({
      id: 'control',
      style: 'filtered',
      isRequired: true,
      choices: [
        { title: 'AC-2 Account management', value: 'AC-2' },
        { title: 'AC-3 Access enforcement', value: 'AC-3' },
      ],
    });
    expect(card.actions).toEqual([expect.objectContaining({ type: 'Action.Execute', verb: 'evidence_target', data: { delivery: delivery.id } })]);
    expect(requests.some((request) => request.path === '/login-log.pdf')).toBe(false); // nothing fetched before the choice

    // Someone else's click on the card is refused.
    const olga = await env.person({ email: 'olga@example.test', name: 'Olga Other', roles: ['contributor'] });
    const theirs = await env.post(env.click(olga, 'evidence_target', { delivery: delivery.id, control: 'AC-3' }, chat));
    expect(await theirs.json()).toMatchObject({ statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: 'Only the person who sent the files can choose what they are evidence for.' });

    // Teams merges the chosen value into the action's data.
    const first = await env.post(env.click(megan, 'evidence_target', { delivery: delivery.id, control: 'ac-2' }, chat));
    const answer = (await first.json()) as { type: string; value: { body: { text: string }[] } };
    expect(answer.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(answer.value.body[0]!.text).toBe("Checking 1 file for control AC-2. I will confirm here with each file's SHA-256.");
    const second = await env.post(env.click(megan, 'evidence_target', { delivery: delivery.id, control: 'AC-3' }, chat));
    expect(((await second.json()) as { value: { body: { text: string }[] } }).value.body[0]!.text).toBe('Those files are already on their way as evidence for control AC-2; I will confirm here.');

    await expect.poll(() => confirmationOf(delivery.id), { timeout: 30_000 }).toBe(`Evidence for control AC-2:\n• login-log.pdf: stored, SHA-256 \`${sha(log)}\`, scanned clean`);
    expect(await linksTo('AC-2')).toContain(`${sha(log)}:teams`);
    expect(await linksTo('AC-3')).not.toContain(`${sha(log)}:teams`);
    expect(requests.filter((request) => request.path === '/login-log.pdf')).toHaveLength(1);
  });

  it('refuses files from unlinked people and viewers with the command layer’s words, and stages nothing', async () => {
    const stranger = await env.person({ email: 'stan@example.test', name: 'Stan Stranger', roles: ['contributor'], linked: false });
    const viewer = await env.person({ email: 'vera@example.test', name: 'Vera Viewer', roles: ['viewer'] });
    for (const [person, expected] of [
      [stranger, /not linked to a ProjectX user/],
      [viewer, /needs a role you do not have \(you have viewer\)/],
    ] as const) {
      const chat = await env.installPersonal(person);
      await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(1);
      const message = withFiles(person, 'evidence AC-2', [serve(`from-${person.name.split(' ')[0]!.toLowerCase()}.pdf`, PDF)]);
      await env.post(message);
      await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(2);
      expect(lastText(chat)).toMatch(expected);
      expect((await deliveryOf(message)).result).not.toHaveProperty('evidence');
    }
    expect(await env.tdb.db.selectFrom('audit_log').select('action').where('outcome', '=', 'refused').where('action', '=', 'command.evidence').execute()).toHaveLength(2);
  });

  it('answers `evidence` in a channel with how to upload, and refuses more than 10 files at once', async () => {
    const channel = await env.installInChannel('Audit');
    await expect.poll(() => env.posted(channel).length, { timeout: 20_000 }).toBe(1);
    await env.post(env.message(megan, 'evidence AC-2', { conversationId: channel, kind: 'channel' }));
    await expect.poll(() => env.posted(channel).length, { timeout: 20_000 }).toBe(2);
    expect(lastText(channel)).toMatch(/^Evidence files are sent to me in a personal chat: open a chat with ProjectX, attach the files .* name the control or task in it, like `evidence AC-2`/);

    const chat = env.personalChat(megan);
    const count = env.posted(chat).length;
    const many = withFiles(megan, 'evidence AC-2', Array.from({ length: 11 }, (_, n) => attachment(`f${n}.pdf`, `${origin}/f${n}.pdf?tempauth=${TOKEN}`)));
    await env.post(many);
    await expect.poll(() => env.posted(chat).length, { timeout: 20_000 }).toBe(count + 1);
    expect(lastText(chat)).toBe('At most 10 files at a time; nothing was stored. Send them in smaller batches.');
    expect((await deliveryOf(many)).result).not.toHaveProperty('evidence');
  });

  it('downloads only from SharePoint and OneDrive hosts over https, or the hosts of TEAMS_FILE_HOSTS', () => {
    const allowed = (url: string, extra?: string[]) => isTeamsFileUrl(new URL(url), extra);
    expect(allowed('https://contoso.sharepoint.com/sites/x/_layouts/15/download.aspx?UniqueId=1&tempauth=t')).toBe(true);
    expect(allowed('https://contoso-my.sharepoint.com/personal/m/_layouts/15/download.aspx?tempauth=t')).toBe(true);
    expect(allowed('https://contoso.sharepoint.us/x')).toBe(true);
    expect(allowed('http://contoso.sharepoint.com/x')).toBe(false);
    expect(allowed('https://contoso.sharepoint.com:8443/x')).toBe(false);
    expect(allowed('https://contoso.sharepoint.com.evil.test/x')).toBe(false);
    expect(allowed('https://a.b.sharepoint.com/x')).toBe(false);
    expect(allowed('https://evilsharepoint.com/x')).toBe(false);
    expect(allowed('https://user:pw@contoso.sharepoint.com/x')).toBe(false);
    expect(allowed('http://127.0.0.1:8080/x', ['127.0.0.1:8080'])).toBe(true);
    expect(allowed('http://127.0.0.1:8081/x', ['127.0.0.1:8080'])).toBe(false);
    expect(allowed('https://files.example.test/x', ['files.example.test'])).toBe(true);
    expect(allowed('ftp://files.example.test/x', ['files.example.test'])).toBe(false);

    expect(loadConfig({ TEAMS_FILE_HOSTS: ' Files.Example.test , 127.0.0.1:8080 ' })).toMatchObject({ ok: true, config: { TEAMS_FILE_HOSTS: ['files.example.test', '127.0.0.1:8080'] } });
    for (const bad of ['https://files.example.test', 'files.example.test/path', '127.0.0.1:99999', ',']) {
      expect(loadConfig({ TEAMS_FILE_HOSTS: bad }), bad).toEqual({ ok: false, problems: [expect.stringMatching(/^TEAMS_FILE_HOSTS: must be comma-separated hosts with an optional port, no scheme or path/)] });
    }
  });
});
