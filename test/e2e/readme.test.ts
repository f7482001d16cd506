/**
 * The README's examples, run as written through the real binary (and bash, for the partner delivery), so the
 * walkthrough cannot drift from what the service does. The terminal walkthrough's comments are claims:
 * `-> "text"` (exit 0, and stdout says it), `refused (exit 1): "text"` (exit 1, and stderr says it),
 * `type "a", then "b" -> "text"` (for `shell`: what is typed, and what it answers).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createControl } from '../../src/domain/controls.ts';
import { type Service, startService } from '../../src/main.ts';
import { killAll, spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { captureLogs } from '../support/logs.ts';
import { fastJobs } from '../support/slack-service.ts';

const README = new URL('../../README.md', import.meta.url);
const KEY = `k1:${randomBytes(32).toString('base64')}`;

/** The fenced block that follows `heading` (a line of the README). */
function blockAfter(readme: string, heading: string): string {
  const start = readme.indexOf('```sh\n', readme.indexOf(heading));
  return readme.slice(start + '```sh\n'.length, readme.indexOf('\n```', start));
}

/** Shell words of one command (quotes and backslash-newline continuations, as the README writes them). */
function words(command: string): string[] {
  return [...command.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((match) => match[1] ?? match[2] ?? match[3]!);
}

let dir: string;
let tdb: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'projectx-readme-'));
  await chmod(dir, 0o755);
  tdb = await createTestDatabase();
});
afterAll(async () => {
  killAll();
  await tdb?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('the README', () => {
  it('"Try it from a terminal" does what its comments say, line by line', async () => {
    const readme = await readFile(README, 'utf8');
    const block = blockAfter(readme, '## Try it from a terminal');
    // A real PDF for `evidence add` (evidence is checked by content).
    await writeFile(path.join(dir, 'access-review.pdf'), '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
    const commands = block.replace(/\\\n\s*/g, '').split('\n').filter((line) => line.startsWith('npm run projectx -- '));
    expect(commands.length).toBeGreaterThan(10);
    const env = { DATABASE_URL: tdb.url, EVIDENCE_LOCAL_DIR: path.join(dir, 'evidence') };
    for (const line of commands) {
      const [command = '', comment = ''] = line.slice('npm run projectx -- '.length).split(/\s+#\s+/);
      const args = words(command);
      const typed = args[0] === 'shell' ? [...comment.split('->')[0]!.matchAll(/"([^"]+)"/g)].map((match) => match[1]!) : [];
      const run = spawnCli(args, { env, cwd: dir, ...(args[0] === 'shell' ? { stdin: 'pipe' as const } : {}) });
      if (typed.length > 0) run.child.stdin!.end(`${[...typed, 'exit'].join('\n')}\n`);
      const { code } = await run.exited;
      const refused = /^refused \(exit 1\): "(.+)"$/.exec(comment);
      const answers = /-> "(.+)"$/.exec(comment);
      if (refused) {
        expect(code, line).toBe(1);
        expect(run.stderr(), line).toContain(refused[1]);
      } else {
        expect(code, `${line}\n${run.stderr()}`).toBe(0);
        if (answers) expect(run.stdout(), line).toContain(answers[1]);
      }
    }
    const audit = spawnCli(['audit', 'list', '--outcome', 'refused', '--json'], { env, cwd: dir });
    expect((await audit.exited).code).toBe(0);
    expect((JSON.parse(audit.stdout()) as { detail: { code: string } }[]).map((row) => row.detail.code).sort()).toEqual(['forbidden', 'self_approval']);
  }, 120_000);

  describe('partner webhooks', () => {
    let service: Service;
    beforeAll(async () => {
      const config = loadConfig({ DATABASE_URL: tdb.url, HOST: '127.0.0.1', PORT: '0', PROJECTX_ENCRYPTION_KEY: KEY });
      if (!config.ok) throw new Error(config.problems.join('; '));
      service = await startService({ config: config.config, role: 'all', logger: captureLogs({ level: 'fatal' }).logger, jobs: fastJobs });
    });
    afterAll(() => service?.stop());

    it('"A complete delivery" is accepted (202) when run with bash, openssl and curl, and becomes the task', async () => {
      const added = spawnCli(['partners', 'add', 'acme'], { env: { DATABASE_URL: tdb.url, PROJECTX_ENCRYPTION_KEY: KEY }, cwd: dir });
      expect((await added.exited).code).toBe(0);
      const secret = /whsec_\S+/.exec(added.stdout())![0];
      // The control the example names (the walkthrough above may have made it already).
      await createControl(tdb.db, { id: 'AC-2', title: 'Account management' });
      const readme = await readFile(README, 'utf8');
      const block = blockAfter(readme, 'A complete delivery to the partner `acme`');
      // Only the two values a reader fills in change: the secret printed above, and where this service listens.
      const script = block.replace(/^secret='whsec_…'/m, `secret='${secret}'`).replace(/^url=http:\/\/127\.0\.0\.1:3000\//m, `url=${service.http.url}/`);
      expect(script).not.toBe(block);
      const { stdout } = await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', script], { cwd: dir });
      expect(JSON.parse(stdout.split('\n')[0]!)).toEqual({ id: expect.any(String) as unknown, status: 'accepted' });
      await expect
        .poll(async () => (await tdb.db.selectFrom('tasks').select(['title']).where('title', '=', 'Review vendor access').execute()).length, { timeout: 15_000 })
        .toBe(1);
    });
  });
});
