/**
 * `npm start` as a terminal runs it: Ctrl-C (SIGINT to the whole foreground process group) and a SIGTERM to npm
 * alone (a process manager) both end in the service's graceful shutdown, and npm exits with the service's 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('npm start', () => {
  let tdb: TestDatabase;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    tdb = await createTestDatabase();
  });
  afterAll(() => tdb.drop());
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.pid) process.kill(-child.pid, 'SIGKILL');
  });

  async function npmStart() {
    // Its own process group, as a terminal gives a foreground job: a signal to the group is what Ctrl-C sends.
    const child = spawn('npm', ['start'], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0' } });
    children.push(child);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (out.includes('listening on')) resolve();
        else if (child.exitCode !== null) reject(new Error(out));
        else return;
        clearInterval(poll);
      }, 50);
    });
    return { child, exited, out: () => out };
  }

  it('exits 0 after a graceful shutdown on Ctrl-C', async () => {
    const run = await npmStart();
    process.kill(-run.child.pid!, 'SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.out()).toContain('"clean":true,"msg":"shut down"');
    expect(run.out()).not.toContain('second signal');
  });

  it('passes a SIGTERM sent to npm on to the service, which shuts down gracefully', async () => {
    const run = await npmStart();
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(run.out()).toContain('"clean":true,"msg":"shut down"');
  });
});
