/**
 * The real `projectx` binary as a child process: the two commands of the README, config errors, shutdown.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';

const isListening = (line: Record<string, unknown>) => typeof line.url === 'string' && String(line.msg).includes('listening on');

describe('projectx start with an empty environment', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'projectx-e2e-'));
    // mkdtemp makes it 0700; a clone in a normal directory is reachable by the postgres user (see embedded.test.ts
    // for the closed-parent case).
    await chmod(dir, 0o755);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('starts an embedded PostgreSQL, serves /healthz, and exits 0 on SIGTERM; data survives a restart', async () => {
    // Only PORT=0 (a free port, not 3000, which something else may hold); the data dir is the default .data of cwd.
    const first = spawnCli(['start'], { env: { PORT: '0' }, cwd: dir });
    const listening = await first.waitForLog(isListening);
    const res = await fetch(`${String(listening.url)}/healthz`);
    expect(res.status).toBe(200);
    expect((await fetch(`${String(listening.url)}/readyz`)).status).toBe(200);
    first.child.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    const messages = first.stdout();
    expect(messages).toContain('"msg":"database migrated"');
    expect(messages).toContain('Slack: not configured (set SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)');
    expect(messages).toContain('"msg":"shut down"');

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

  it('projectx migrate applies migrations on the embedded server and exits 0', async () => {
    const run = spawnCli(['migrate'], { env: {}, cwd: dir });
    expect((await run.exited).code).toBe(0);
    expect(run.stdout()).toContain('database schema is up to date');
  });
});

describe('projectx with bad input', () => {
  it('exits 1 naming each bad variable, never printing a secret', async () => {
    const run = spawnCli(['start'], { env: { PORT: 'abc', SLACK_BOT_TOKEN: 'xoxp-hunter2-do-not-print', PUBLIC_URL: 'nope' } });
    expect((await run.exited).code).toBe(1);
    const stderr = run.stderr();
    expect(stderr).toContain('PORT: must be a whole number from 0 to 65535 (got "abc")');
    expect(stderr).toContain('SLACK_BOT_TOKEN: must be a bot token');
    expect(stderr).toContain('PUBLIC_URL: must be a URL');
    expect(stderr).not.toContain('hunter2');
  });

  it('exits 2 with the usage on an unknown command or option', async () => {
    const unknown = spawnCli(['strat'], { env: {} });
    expect((await unknown.exited).code).toBe(2);
    expect(unknown.stderr()).toContain('unknown command "strat"');
    expect(unknown.stderr()).toContain('Usage: projectx');
    const badRole = spawnCli(['start', '--role', 'boss'], { env: {} });
    expect((await badRole.exited).code).toBe(2);
    expect(badRole.stderr()).toContain('--role must be one of all, web, worker (got "boss")');
  });

  it('exits 1 with a readable message when the database cannot be reached', async () => {
    const run = spawnCli(['start'], { env: { DATABASE_URL: 'postgres://app:pw-hunter2-xyz@127.0.0.1:1/none', PORT: '0' } });
    expect((await run.exited).code).toBe(1);
    expect(run.stderr()).toMatch(/^projectx: .*ECONNREFUSED/m);
    expect(run.stderr() + run.stdout()).not.toContain('pw-hunter2-xyz');
  });
});

describe('projectx start against DATABASE_URL', () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase();
  });
  afterAll(() => tdb.drop());

  it('never lets a seeded secret reach a log line, whatever the requests carry', async () => {
    const seeded = 'seeded-signing-secret-0b5e7d';
    const run = spawnCli(['start'], {
      env: { DATABASE_URL: tdb.url, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', SLACK_SIGNING_SECRET: seeded, GENERIC_WEBHOOK_SECRET: `whsec_${seeded}` },
    });
    const { url } = await run.waitForLog(isListening);
    await fetch(`${String(url)}/nowhere?secret=${seeded}`, { headers: { authorization: `Bearer ${seeded}`, 'x-slack-signature': `v0=${seeded}` } });
    await fetch(`${String(url)}/healthz`, { method: 'POST', body: seeded });
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(0);
    expect(run.stdout()).toContain('"msg":"request"');
    expect(run.stdout()).toContain('Generic partner webhook: configured');
    expect(run.stdout() + run.stderr()).not.toContain(seeded);
  });
});
