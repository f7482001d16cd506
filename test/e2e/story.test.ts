/**
 * A newcomer's whole story from a terminal, through the real `projectx` binary on a real database: add users
 * and a control, create a task needing approval, have a self-approval refused, approve as an approver (in
 * `chat` and by pressing a button in `shell`), upload evidence, and verify the audit chain.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, killAll, spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';

/**
 * Fourteen real `projectx` processes one after another, each about 2 s to start on a 2-core machine (it loads every
 * module; botbuilder alone takes 0.65 s to import): the default 30 s per test is too tight for this one.
 */
const STORY_TIMEOUT_MS = 120_000;

describe('a terminal story', () => {
  let tdb: TestDatabase;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    tdb = await createTestDatabase();
    dir = await mkdtemp(path.join(tmpdir(), 'projectx-story-'));
    await chmod(dir, 0o755);
    env = { DATABASE_URL: tdb.url, EVIDENCE_LOCAL_DIR: path.join(dir, 'evidence') };
  });
  afterAll(async () => {
    killAll();
    await tdb.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const run = async (...args: string[]) => {
    const child = spawnCli(args, { env, cwd: dir });
    const { code } = await child.exited;
    return { code, out: child.stdout(), err: child.stderr() };
  };

  it('goes from an empty database to an approved task and a verified audit chain', async () => {
    expect(await run('users', 'add', 'ada@example.test', '--name', 'Ada Admin', '--role', 'admin')).toMatchObject({ code: 0 });
    expect(await run('users', 'add', 'ann@example.test', '--name', 'Ann Approver', '--role', 'approver')).toMatchObject({ code: 0 });
    expect(await run('users', 'add', 'rob@example.test', '--name', 'Rob Requester', '--role', 'approver,contributor')).toMatchObject({ code: 0 });
    expect(await run('controls', 'add', 'AC-2', '--title', 'Account management', '--owner', 'ann@example.test')).toMatchObject({ code: 0 });

    const created = await run('tasks', 'create', '--type', 'approval', '--title', 'Grant prod access to Rob', '--requester', 'rob@example.test', '--approver-role', 'approver', '--control', 'AC-2');
    expect(created).toMatchObject({ code: 0, out: expect.stringMatching(/^created (T-\d+) \(pending_approval\) Grant prod access to Rob/) });
    const ref = /created (T-\d+)/.exec(created.out)![1]!;

    // Rob is an approver, but he asked for it: separation of duties.
    const self = await run('chat', '--as', 'rob@example.test', `approve ${ref}`);
    expect(self.code).toBe(1);
    expect(self.err).toContain(`you requested ${ref}; someone else must decide it`);

    const listed = await run('chat', '--as', 'ann@example.test', 'tasks');
    expect(listed).toMatchObject({ code: 0, out: expect.stringContaining(`${ref} Grant prod access to Rob`) });
    expect(listed.out).toContain('[1] Approve   [2] Deny');

    const approved = await run('chat', '--as', 'ann@example.test', `/projectx approve ${ref} "ticket CHG0001 checked"`);
    expect(approved).toMatchObject({ code: 0, out: expect.stringContaining(`You approved ${ref}: it is now approved (1 of 1).`) });
    const late = await run('chat', '--as', 'ada@example.test', `approve ${ref}`);
    expect(late.code).toBe(1);
    expect(late.err).toMatch(new RegExp(`${ref} was already approved by Ann Approver at \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC`));

    const typo = await run('chat', '--as', 'ann@example.test', 'aprove T-1');
    expect(typo.code).toBe(1);
    expect(typo.err).toContain('Did you mean /projectx approve <id> [reason]?');

    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
    await writeFile(path.join(dir, 'access-review.pdf'), pdf);
    const uploaded = await run('evidence', 'add', '--as', 'rob@example.test', '--control', 'AC-2', path.join(dir, 'access-review.pdf'));
    expect(uploaded).toMatchObject({ code: 0, out: expect.stringContaining(`sha256 ${createHash('sha256').update(pdf).digest('hex')}`) });
    expect(uploaded.out).toContain('application/pdf');

    const verified = await run('audit', 'verify');
    expect(verified).toMatchObject({ code: 0, out: expect.stringMatching(/audit chain of tenant default: \d+ rows, intact/) });
    const actions = await tdb.db.selectFrom('audit_log').select(['action', 'outcome']).orderBy('seq').execute();
    expect(actions).toEqual(
      expect.arrayContaining([
        { action: 'user.create', outcome: 'success' },
        { action: 'control.create', outcome: 'success' },
        { action: 'task.create', outcome: 'success' },
        { action: 'task.approve', outcome: 'refused' },
        { action: 'task.approve', outcome: 'success' },
        { action: 'evidence.record', outcome: 'success' },
      ]),
    );
  }, STORY_TIMEOUT_MS);

  it('presses buttons in `projectx shell`, asking for a reason on Deny', async () => {
    await run('users', 'add', 'dee@example.test', '--name', 'Dee Decider', '--role', 'approver');
    const created = await run('tasks', 'create', '--type', 'approval', '--title', 'Open firewall port', '--approver', 'dee@example.test');
    const ref = /created (T-\d+)/.exec(created.out)![1]!;
    const shell = spawn(process.execPath, [BIN, 'shell', '--as', 'dee@example.test'], { env, cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    shell.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    shell.stdin.end(`task ${ref}\npress 2\nno change ticket\ntask ${ref}\nexit\n`);
    const code = await new Promise<number | null>((resolve) => shell.on('close', resolve));
    expect(code).toBe(0);
    expect(out).toContain(`== ${ref} Open firewall port ==`);
    expect(out).toContain(`Why are you denying ${ref}?`);
    expect(out).toContain(`You denied ${ref}: it is now denied.`);
    expect(out).toContain('State: denied');
    const [decision] = await tdb.db.selectFrom('approval_decisions').select(['decision', 'reason', 'surface']).where('task_id', '=', ref.slice(2)).execute();
    expect(decision).toEqual({ decision: 'deny', reason: 'no change ticket', surface: 'console' });
  });

  it('explains a missing user and bad usage with a non-zero exit', async () => {
    const nobody = await run('chat', '--as', 'ghost@example.test', 'help');
    expect(nobody).toMatchObject({ code: 1, err: expect.stringContaining('no user with email ghost@example.test') });
    const usage = await run('tasks', 'create', '--type', 'chore', '--title', 'x');
    expect(usage).toMatchObject({ code: 2, err: expect.stringContaining('--type must be one of review, remediation, approval, evidence_request') });
  });
});
