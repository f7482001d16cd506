/**
 * The operator CLI through the real binary: each verb's own help (exit 0) and usage errors (exit 2, one usage
 * line), `--json` on every list, progress lines at a terminal and JSON otherwise (logs likewise: pretty at a
 * terminal, JSON lines on stderr otherwise), and `projectx shell` echoing what is typed at a terminal. A
 * terminal is script(1)'s pseudo-terminal; the database is a test database (DATABASE_URL).
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { usageLine } from '../../src/cli/verb.ts';
import { verbsOf } from '../../src/module.ts';
import { modules } from '../../src/modules.ts';
import { type FakeServiceNow, incidentFields, startFakeServiceNow } from '../fakes/servicenow/server.ts';
import { killAll, spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';

const KEY = `k1:${randomBytes(32).toString('base64')}`;
/** What a pseudo-terminal adds: colours and cursor moves, and \r before each \n. */
const ESCAPES = new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g');
const plain = (text: string) => text.replace(ESCAPES, '').replace(/\r+\n/g, '\n');

let dir: string;
let tdb: TestDatabase;
let env: Record<string, string>;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'projectx-operator-cli-'));
  await chmod(dir, 0o755);
  tdb = await createTestDatabase();
  env = { DATABASE_URL: tdb.url, PROJECTX_ENCRYPTION_KEY: KEY };
});
afterEach(() => killAll());
afterAll(async () => {
  await tdb?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: readonly string[], extra: Record<string, string> = {}) {
  const run = spawnCli(args, { env: { ...env, ...extra }, cwd: dir });
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

describe('help', () => {
  it('prints a verb\'s own usage for --help, help <verb> and the bare verb, exit 0, with no database', async () => {
    // No DATABASE_URL: help must not start the embedded server (it would take seconds and leave a .data here).
    for (const args of [['users', '--help'], ['help', 'users'], ['users']]) {
      const run = spawnCli(args, { env: {}, cwd: dir });
      expect((await run.exited).code, args.join(' ')).toBe(0);
      const users = verbsOf(modules).find((verb) => verb.name === 'users')!;
      expect(run.stdout().split('\n')[0]).toBe(`projectx users: ${users.summary}`);
      for (const command of users.commands) expect(run.stdout()).toContain(usageLine(command));
      // Only this verb: not the list of every verb.
      expect(run.stdout()).not.toContain('partners');
    }
    const one = spawnCli(['users', 'add', '--help'], { env: {}, cwd: dir });
    expect((await one.exited).code).toBe(0);
    expect(one.stdout()).toMatch(/^Usage: projectx users add <email> \[--name "<name>"\] \[--role <role>\]\.\.\.\n\nRoles: /);
    const start = spawnCli(['start', '--help'], { env: {}, cwd: dir });
    expect((await start.exited).code).toBe(0);
    expect(start.stdout()).toContain('Usage: projectx start [--role all|web|worker]');
  });

  it('lists every verb once for projectx help', async () => {
    const run = await cli(['help']);
    expect(run.code).toBe(0);
    for (const verb of verbsOf(modules)) expect(run.stdout).toMatch(new RegExp(`^  ${verb.name} +${verb.summary.replace(/[()|.*+?]/g, '\\$&')}$`, 'm'));
  });
});

describe('usage errors', () => {
  it('exit 2 with the message and the one relevant usage line', async () => {
    const missing = await cli(['users', 'add']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe('error: give the email address\nUsage: projectx users add <email> [--name "<name>"] [--role <role>]...\n');

    const badOption = await cli(['tasks', 'list', '--stat', 'open']);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr.split('\n').filter(Boolean)).toEqual([expect.stringMatching(/^error: Unknown option '--stat'/), 'Usage: projectx tasks list [--state <state>]... [--limit <n>] [--json]']);

    const unknown = await cli(['partners', 'frob']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('error: unknown command "partners frob"\nUsage: projectx partners add|list|rotate-secret|remove … (projectx help partners shows each)\n');
  });

  it('exit 1 (not 2) when the command was right but could not be done', async () => {
    const run = await cli(['users', 'roles', 'nobody@example.test', 'admin']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe('no user with email nobody@example.test (add one with: projectx users add nobody@example.test --role …)\n');
  });
});

describe('--json on every list', () => {
  it('prints one JSON array for each list command of every verb', async () => {
    // Something in most lists.
    expect((await cli(['users', 'add', 'ada@example.test', '--name', 'Ada', '--role', 'admin'])).code).toBe(0);
    expect((await cli(['controls', 'add', 'AC-2', '--title', 'Account management', '--owner', 'ada@example.test'])).code).toBe(0);
    expect((await cli(['tasks', 'create', '--type', 'review', '--title', 'Review access', '--control', 'AC-2'])).code).toBe(0);
    expect((await cli(['incidents', 'add', 'INC0012345', '--priority', '2', '--description', 'Payments slow'])).code).toBe(0);
    expect((await cli(['partners', 'add', 'acme'])).code).toBe(0);
    const added = await cli(['subscriptions', 'add', '--url', 'https://hooks.example.test/projectx', '--event', 'task.*']);
    expect(added.code).toBe(0);
    const subscription = /added subscription ([0-9a-f-]{36})/.exec(added.stdout)![1]!;
    const positionals: Record<string, string[]> = { 'subscriptions deliveries': [subscription] };

    const lists = verbsOf(modules).flatMap((verb) => verb.commands.filter((command) => command.list).map((command) => [verb.name, ...command.name.split(' ')]));
    expect(lists.length).toBeGreaterThanOrEqual(16);
    // Three binaries at a time: each spends most of its second starting up.
    for (let at = 0; at < lists.length; at += 3) {
      await Promise.all(
        lists.slice(at, at + 3).map(async (words) => {
          const run = await cli([...words, ...(positionals[words.join(' ')] ?? []), '--json']);
          expect(run.code, `${words.join(' ')}: ${run.stderr}`).toBe(0);
          expect(Array.isArray(JSON.parse(run.stdout)), words.join(' ')).toBe(true);
        }),
      );
    }
    const users = JSON.parse((await cli(['users', 'list', '--json'])).stdout) as unknown[];
    expect(users).toEqual([{ id: expect.any(String) as unknown, email: 'ada@example.test', name: 'Ada', roles: ['admin'], active: true }]);
    const incidents = JSON.parse((await cli(['incidents', 'list', '--json'])).stdout) as unknown[];
    expect(incidents).toEqual([expect.objectContaining({ number: 'INC0012345', priority: 2, state: 'new' })]);
    const audit = JSON.parse((await cli(['audit', 'list', '--action', 'control.*', '--json'])).stdout) as unknown[];
    expect(audit).toEqual([expect.objectContaining({ action: 'control.create', objectId: 'AC-2', actor: 'anonymous:cli', outcome: 'success' })]);
  }, 120_000);
});

describe('long operations', () => {
  let servicenow: FakeServiceNow;
  let snEnv: Record<string, string>;
  beforeAll(async () => {
    servicenow = await startFakeServiceNow({ pageLatencyMs: 150 });
    servicenow.insertMany('incident', 2_000, (i) => incidentFields({ number: `INC${String(7_000_000 + i)}`, priority: '4', state: '1' }, servicenow.url));
    snEnv = { SERVICENOW_BASE_URL: servicenow.url, SERVICENOW_OAUTH_CLIENT_ID: 'be3aeb583ace210011c15b24a43e25d8', SERVICENOW_OAUTH_CLIENT_SECRET: 'client_password' };
  });
  afterAll(() => servicenow?.close());

  it('shows pages, records and time on a terminal while a sync runs, then a line per run', async () => {
    const tty = spawnCli([], { env: { ...env, ...snEnv }, cwd: dir, viaScript: ['sync', 'servicenow', '--model', 'incident', '--full', '--wait'] });
    expect((await tty.exited).code).toBe(0);
    const out = plain(tty.stdout());
    // The progress line rewrites itself (\r) with what has been done so far and the time.
    expect(out).toMatch(/\rservicenow: [\d,]+ pages, [\d,]+ records; 0 of 1 run\(s\) done \(\d+\.\d s\)/);
    expect(out).toMatch(/^servicenow:default incident succeeded: \d+ pages, 2,000 records \(2,000 created, 0 updated, 0 unchanged, 0 rejected\) in \d+\.\d s$/m);
    expect(out).not.toContain('{"runId"');
  });

  it('prints each run as JSON when stdout is not a terminal, with no progress line', async () => {
    const run = await cli(['sync', 'servicenow', '--model', 'incident', '--full', '--wait'], snEnv);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain('\r');
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ status: 'succeeded', connector: 'servicenow', model: 'incident', seen: 2_000, unchanged: 2_000 });
  });

  it('reconciles now with the same two faces: progress at a terminal, JSON otherwise', async () => {
    const tty = spawnCli([], { env: { ...env, ...snEnv }, cwd: dir, viaScript: ['reconcile', 'servicenow', '--model', 'incident', '--wait'] });
    expect((await tty.exited).code).toBe(0);
    const out = plain(tty.stdout());
    expect(out).toMatch(/\rservicenow: [\d,]+ ids compared; 0 of 1 run\(s\) done \(\d+\.\d s\)/);
    expect(out).toMatch(/^servicenow:default incident succeeded: 2,000 ids upstream, 2,000 synced; 0 gone upstream \(flagged\), 0 missed by the syncs, 0 back in \d+\.\d s$/m);

    // Every model that can list its ids, a JSON line each; its logs go to stderr, as JSON lines.
    const run = await cli(['reconcile', 'servicenow', '--wait'], { ...snEnv, LOG_LEVEL: 'info' });
    expect(run.code).toBe(0);
    const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { model: string });
    expect(lines.map((line) => line.model).sort()).toEqual(['change_request', 'incident']);
    expect(lines.find((line) => line.model === 'incident')).toMatchObject({ status: 'succeeded', remote: 2_000, local: 2_000, missing: 0, orphans: 0 });
    const logs = run.stderr.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: string; msg: string });
    expect(logs).toContainEqual(expect.objectContaining({ level: 'info', msg: 'reconciliation finished' }));

    // At a terminal the same logs are pretty.
    const pretty = spawnCli([], { env: { ...env, ...snEnv, LOG_LEVEL: 'info' }, cwd: dir, viaScript: ['reconcile', 'servicenow', '--model', 'incident', '--wait'] });
    expect((await pretty.exited).code).toBe(0);
    expect(plain(pretty.stdout())).toMatch(/INFO.*reconciliation finished/);
    expect(pretty.stdout()).not.toContain('{"level"');
  });

  it('rotates the key with a progress line at a terminal and JSON otherwise', async () => {
    const next = `k2:${randomBytes(32).toString('base64')}`;
    const tty = spawnCli([], { env: { ...env, ...snEnv, PROJECTX_ENCRYPTION_KEY: `${next},${KEY}` }, cwd: dir, viaScript: ['credentials', 'rotate-key'] });
    expect((await tty.exited).code).toBe(0);
    const out = plain(tty.stdout());
    expect(out).toMatch(/\rre-encrypting [a-zA-Z ]+ \(1 of \d\): 0 re-encrypted, 0 already current \(\d+\.\d s\)/);
    expect(out).toMatch(/^re-encrypted \d+ secret\(s\) under key k2 \(.*\); 0 already under it$/m);
    const again = await cli(['credentials', 'rotate-key'], { ...snEnv, PROJECTX_ENCRYPTION_KEY: `${next},${KEY}` });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ keyId: 'k2', reencrypted: 0 });
  });
});

describe('projectx shell at a terminal', () => {
  it('echoes what the person types, and answers it', async () => {
    expect((await cli(['users', 'add', 'sam@example.test', '--name', 'Sam', '--role', 'viewer'])).code).toBe(0);
    const shell = spawnCli([], { env, cwd: dir, viaScript: ['shell', '--as', 'sam@example.test'], stdin: 'pipe' });
    const output = () => plain(shell.stdout());
    await expect.poll(output, { timeout: 20_000 }).toContain('projectx> ');
    // Raw mode: Enter arrives as \r, and nothing is echoed unless readline echoes it.
    shell.child.stdin!.write('status\r');
    await expect.poll(output, { timeout: 20_000 }).toContain('Integration health');
    shell.child.stdin!.write('exit\r');
    expect((await shell.exited).code).toBe(0);
    expect(output()).toContain('projectx> status\n');
    expect(output()).toContain('projectx> exit');
  });
});
