/**
 * The real `projectx` binary as a child process: the two commands of the README, config errors, shutdown.
 * Each test has its own working directory (so a developer's .env never leaks in) and kills what it started.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { killAll, spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';

const isListening = (line: Record<string, unknown>) => typeof line.url === 'string' && String(line.msg).includes('listening on');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'projectx-e2e-'));
  // mkdtemp makes it 0700; a clone in a normal directory is reachable by the postgres user (the closed-parent
  // case is in test/db/embedded.test.ts).
  await chmod(dir, 0o755);
});
afterEach(async () => {
  killAll();
  await rm(dir, { recursive: true, force: true });
});

describe('projectx start with an empty environment', () => {
  it('starts an embedded PostgreSQL, serves /healthz, and exits 0 on SIGTERM; data survives a restart', async () => {
    // Only PORT=0 (a free port, not 3000, which something else may hold); the data dir is the default .data of cwd.
    const first = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    const listening = await first.waitForLog(isListening);
    const res = await fetch(`${String(listening.url)}/healthz`);
    expect(res.status).toBe(200);
    expect((await fetch(`${String(listening.url)}/readyz`)).status).toBe(200);
    first.child.kill('SIGTERM');
    // Exit 0 means the shutdown finished inside its budget (past it, the process exits 1 by itself).
    expect(await first.exited).toEqual({ code: 0, signal: null });
    const messages = first.stdout();
    expect(messages).toContain('"msg":"database migrated"');
    expect(messages).toContain('Slack: not configured (set SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)');
    expect(messages).toContain('"clean":true,"msg":"shut down"');

    const second = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    await second.waitForLog(isListening);
    expect(second.stdout()).toContain('"created":false');
    expect(second.stdout()).toContain('"msg":"database schema is up to date"');
    second.child.kill('SIGINT');
    expect((await second.exited).code).toBe(0);
  });

  it('takes over the embedded server left running by a process killed with SIGKILL', async () => {
    const killed = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    await killed.waitForLog(isListening);
    killed.child.kill('SIGKILL');
    expect(await killed.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const next = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    const { url } = await next.waitForLog(isListening);
    expect(next.stdout()).toContain('left running by a process that is gone');
    expect((await fetch(`${String(url)}/readyz`)).status).toBe(200);
    next.child.kill('SIGTERM');
    expect((await next.exited).code).toBe(0);
  });

  it('lets a second process use the running embedded server without owning it', async () => {
    const service = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    await service.waitForLog((line) => String(line.msg).startsWith('Evidence store: Google Drive'));
    const migrate = spawnCli(['migrate'], { env: {}, cwd: dir });
    expect((await migrate.exited).code).toBe(0);
    expect(migrate.stdout()).toContain('already running for another projectx process; using it');
    expect(migrate.stdout()).toContain('database schema is up to date');
    // The service's server is still there.
    service.child.kill('SIGTERM');
    expect((await service.exited).code).toBe(0);
    expect(service.stdout()).not.toContain('exited on its own');
  });

  it('pretty-prints logs on a terminal, JSON otherwise', async () => {
    // `script` gives the child a pseudo-terminal; `migrate` is short and logs a line.
    const tty = spawnCli([], { env: {}, cwd: dir, viaScript: ['migrate'] });
    expect((await tty.exited).code).toBe(0);
    expect(tty.stdout()).toContain('INFO');
    expect(tty.stdout()).toMatch(/applied \d+ migration\(s\)/);
    expect(tty.stdout()).not.toContain('{"level"');
  });
});

describe('projectx with bad input', () => {
  it('exits 1 naming each bad variable, never printing a secret', async () => {
    const run = spawnCli(['start'], { env: { PORT: 'abc', SLACK_BOT_TOKEN: 'xoxp-hunter2-do-not-print', PUBLIC_URL: 'nope' }, cwd: dir });
    expect((await run.exited).code).toBe(1);
    const stderr = run.stderr();
    expect(stderr).toContain('PORT: must be a whole number from 0 to 65535 (got "abc")');
    expect(stderr).toContain('SLACK_BOT_TOKEN: must be a bot token');
    expect(stderr).toContain('PUBLIC_URL: must be a URL');
    expect(stderr).not.toContain('hunter2');
  });

  it('exits 2 with the usage on an unknown command or option', async () => {
    const unknown = spawnCli(['strat'], { env: {}, cwd: dir });
    expect((await unknown.exited).code).toBe(2);
    expect(unknown.stderr()).toContain('unknown command "strat"');
    expect(unknown.stderr()).toContain('Usage: projectx');
    const badRole = spawnCli(['start', '--role', 'boss'], { env: {}, cwd: dir });
    expect((await badRole.exited).code).toBe(2);
    expect(badRole.stderr()).toContain('--role must be one of all, web, worker (got "boss")');
  });

  it('exits 1 naming DATABASE_URL (never its password) when the database cannot be reached, for start, migrate and operator verbs', async () => {
    for (const args of [['start'], ['migrate'], ['users', 'list']]) {
      const run = spawnCli(args, { env: { DATABASE_URL: 'postgres://app:pw-hunter2-xyz@127.0.0.1:1/none', PORT: '0' }, cwd: dir });
      expect((await run.exited).code).toBe(1);
      expect(run.stderr()).toContain('cannot reach the database named by DATABASE_URL (postgres://app:****@127.0.0.1:1/none): connect ECONNREFUSED 127.0.0.1:1');
      expect(run.stderr() + run.stdout()).not.toContain('pw-hunter2-xyz');
    }
  });

  it('refuses to start half configured, naming what is set and what is missing', async () => {
    const slack = spawnCli(['start'], { env: { SLACK_SIGNING_SECRET: 'signing-secret-hunter2', PORT: '0' }, cwd: dir });
    expect((await slack.exited).code).toBe(1);
    expect(slack.stderr()).toContain('Slack is half configured: SLACK_SIGNING_SECRET is set, but SLACK_BOT_TOKEN is missing (or set SLACK_CLIENT_ID and SLACK_CLIENT_SECRET)');
    expect(slack.stderr()).not.toContain('hunter2');
    const servicenow = spawnCli(['start', '--role', 'worker'], { env: { SERVICENOW_BASE_URL: 'https://example.service-now.com', SERVICENOW_USER: 'integration', PORT: '0' }, cwd: dir });
    expect((await servicenow.exited).code).toBe(1);
    expect(servicenow.stderr()).toContain('ServiceNow is half configured: SERVICENOW_BASE_URL, SERVICENOW_USER are set, but SERVICENOW_PASSWORD is missing (or set SERVICENOW_OAUTH_CLIENT_ID and SERVICENOW_OAUTH_CLIENT_SECRET)');
  });
});

describe('projectx start against DATABASE_URL', () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase();
  });
  afterAll(() => tdb.drop());

  it('reads a .env in its working directory without overriding the real environment', async () => {
    await writeFile(path.join(dir, '.env'), `DATABASE_URL=${tdb.url}\nHOST=127.0.0.1\nPORT=1\nGENERIC_WEBHOOK_SECRET=whsec_ZnJvbS1kb3RlbnYtZnJvbS1kb3RlbnYtMTIz\n`);
    const run = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    const { url } = await run.waitForLog(isListening);
    expect(String(url)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(String(url)).not.toMatch(/:1$/);
    // The generic partner exists (its secret came from .env): its URL asks for a signature rather than answering 404.
    const generic = await fetch(`${String(url)}/api/integration/webhook/generic`, { method: 'POST', body: '{}' });
    expect(generic.status).toBe(401);
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(run.stdout()).not.toContain('whsec_ZnJvbS1kb3RlbnYtZnJvbS1kb3RlbnYtMTIz');
  });

  it('exits 1 naming PORT and HOST, without a stack, when the port is already in use', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      const run = spawnCli(['start'], { env: { DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: String(port) }, cwd: dir });
      expect((await run.exited).code).toBe(1);
      expect(run.stderr()).toMatch(new RegExp(`^projectx: port ${port} on 127\\.0\\.0\\.1 is already in use \\(PORT=${port}, HOST=127\\.0\\.0\\.1\\); set PORT to another port, or PORT=0 for any free one`, 'm'));
      expect(run.stderr()).not.toMatch(/^\s+at /m);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});
