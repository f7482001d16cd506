/**
 * The module list (src/modules.ts) is the service's one registry: what each module declares (routes, jobs,
 * verbs, metrics, readiness checks) must really be wired into a running service and the CLI, declarations
 * must not collide, and the import graph keeps the composition root and non-chat code free of chat surfaces.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageLine } from '../src/cli/verb.ts';
import { run } from '../src/cli/main.ts';
import { loadConfig } from '../src/config.ts';
import { NOT_BUILT } from '../src/connectors/catalog.ts';
import { type Service, startService } from '../src/main.ts';
import { jobsOf, verbsOf } from '../src/module.ts';
import { modules } from '../src/modules.ts';
import { type FakeServiceNow, startFakeServiceNow } from './fakes/servicenow/server.ts';
import { type FakeJira, startFakeJira } from './fakes/jira/server.ts';
import { type FakeSlack, startFakeSlack } from './fakes/slack/server.ts';
import { type TestDatabase, createTestDatabase } from './support/database.ts';
import { captureLogs } from './support/logs.ts';
import { SIGNING_SECRET } from './support/slack.ts';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const CHAT_SURFACES = ['bot/slack/', 'bot/console/', 'bot/teams/'];

describe('the module list', () => {
  it('has each module once, under a stable id, none of them an integration still marked "not built"', () => {
    const ids = modules.map((module) => module.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z][a-z0-9-]*$/);
    for (const entry of NOT_BUILT) expect(ids, `${entry.id} is built: remove it from NOT_BUILT in src/connectors/catalog.ts`).not.toContain(entry.id);
    for (const module of modules) if (module.connector) expect(module.connector.id).toBe(module.id);
  });

  it('gives every job, verb, metric and readiness check to exactly one module', () => {
    const jobs = jobsOf(modules).map((job) => job.name);
    expect(jobs.filter((name, index) => jobs.indexOf(name) !== index)).toEqual([]);
    const verbs = verbsOf(modules).map((verb) => verb.name);
    expect(verbs.filter((name, index) => verbs.indexOf(name) !== index)).toEqual([]);
    expect(verbs).not.toContain('start');
    expect(verbs).not.toContain('migrate');
    expect(verbs).not.toContain('help');
    for (const key of ['metrics', 'readiness'] as const) {
      const names = modules.flatMap((module) => module[key] ?? []);
      expect(names.filter((name, index) => names.indexOf(name) !== index), key).toEqual([]);
    }
    for (const module of modules) for (const staged of module.stagedJobs ?? []) expect(module.jobs, `${module.id} stages ${staged.name}`).toContain(staged);
  });

  it('declares each verb\'s commands with a usage line that starts with their words', () => {
    for (const verb of verbsOf(modules)) {
      expect(verb.commands.length, verb.name).toBeGreaterThan(0);
      const names = verb.commands.map((command) => command.name);
      expect(new Set(names).size, verb.name).toBe(names.length);
      if (names.includes('')) expect(names, `${verb.name}: a verb without subcommands has one command`).toEqual(['']);
      for (const command of verb.commands) expect(command.usage.startsWith([verb.name, command.name].filter(Boolean).join(' ')), `${verb.name} ${command.name}`).toBe(true);
    }
  });
});

describe('the import graph', () => {
  const files = listTs(SRC);
  /** Value imports only (`import type` is erased): what a file needs at run time, as paths relative to src/. */
  const imports = new Map(
    files.map((file) => {
      const text = readFileSync(path.join(SRC, file), 'utf8');
      const targets = [...text.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?\sfrom\s+'(\.[^']+)'/gms)].map((match) => path.posix.normalize(path.posix.join(path.posix.dirname(file), match[1]!)));
      return [file, targets] as const;
    }),
  );

  it('has no import cycle', () => {
    expect(cycles(imports)).toEqual([]);
  });

  it('keeps src/main.ts free of every surface and connector: it imports and names none', () => {
    const text = readFileSync(path.join(SRC, 'main.ts'), 'utf8');
    const code = text.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    for (const target of imports.get('main.ts')!) {
      expect(CHAT_SURFACES.some((surface) => target.startsWith(surface)), target).toBe(false);
      if (target.startsWith('connectors/')) expect(['connectors/catalog.ts', 'connectors/health.ts'].includes(target) || target.startsWith('connectors/sdk/'), target).toBe(true);
    }
    for (const module of modules.filter((candidate) => candidate.kind !== 'platform')) expect(code.toLowerCase(), module.id).not.toMatch(new RegExp(`\\b${module.id}\\b`));
  });

  it('lets no code outside src/bot/ import a chat surface (the module list imports each surface\'s module.ts)', () => {
    const offenders = [...imports].flatMap(([file, targets]) =>
      file.startsWith('bot/') ? [] : targets.filter((target) => CHAT_SURFACES.some((surface) => target.startsWith(surface)) && !(file === 'modules.ts' && target.endsWith('/module.ts'))).map((target) => `${file} -> ${target}`),
    );
    expect(offenders).toEqual([]);
  });
});

describe('every module wired into a running service (role all, everything configured)', () => {
  let tdb: TestDatabase;
  let slack: FakeSlack;
  let servicenow: FakeServiceNow;
  let jiraFake: FakeJira;
  let service: Service;

  beforeAll(async () => {
    tdb = await createTestDatabase();
    slack = await startFakeSlack();
    servicenow = await startFakeServiceNow();
    jiraFake = await startFakeJira({ email: 'px-bot@example.com', apiToken: 'jira-api-token' });
    const config = loadConfig({
      DATABASE_URL: tdb.url,
      HOST: '127.0.0.1',
      PORT: '0',
      PROJECTX_ENCRYPTION_KEY: `k1:${randomBytes(32).toString('base64')}`,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_APP_LEVEL_TOKEN: slack.socketMode().appToken,
      SLACK_CLIENT_ID: '123.456',
      SLACK_CLIENT_SECRET: 'slack-client-secret',
      SLACK_API_URL: slack.apiUrl,
      PUBLIC_URL: 'https://projectx.example.test',
      SMTP_HOST: '127.0.0.1',
      SMTP_FROM_ADDRESS: 'projectx@example.test',
      SMTP_INBOUND_PORT: '0',
      SERVICENOW_BASE_URL: servicenow.url,
      SERVICENOW_OAUTH_CLIENT_ID: 'be3aeb583ace210011c15b24a43e25d8',
      SERVICENOW_OAUTH_CLIENT_SECRET: 'client_password',
      SERVICENOW_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      GENERIC_WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
      JIRA_BASE_URL: jiraFake.url,
      JIRA_PROJECT_KEYS: 'SEC',
      JIRA_PAT: 'jira-api-token',
      JIRA_USER_EMAIL: 'px-bot@example.com',
      JIRA_WEBHOOK_SECRET: 'jira-webhook-secret',
      MICROSOFT_APP_ID: '00000000-0000-4000-8000-0000000000aa',
      MICROSOFT_APP_PASSWORD: 'teams-app-password',
      MICROSOFT_APP_TENANT_ID: '72f988bf-86f1-41af-91ab-2d7cd011db47',
    });
    if (!config.ok) throw new Error(config.problems.join('; '));
    service = await startService({ config: config.config, role: 'all', logger: captureLogs({ level: 'fatal' }).logger });
    await slack.socketMode().connected();
  });
  afterAll(async () => {
    await service?.stop();
    await slack?.close();
    await servicenow?.close();
    await jiraFake?.close();
    await tdb?.drop();
  });

  it('serves every route a module declares (each answers as itself, not as an unknown route)', async () => {
    const routes = modules.flatMap((module) => (module.routes ?? []).map((route) => ({ module: module.id, ...route })));
    expect(routes.length).toBeGreaterThan(0);
    for (const route of routes) {
      const url = `${service.http.url}${route.path.replace(':key', 'generic').replace(':connector', 'servicenow')}`;
      const res = await fetch(url, { method: route.method, redirect: 'manual', ...(route.method === 'GET' ? {} : { body: '{}', headers: { 'content-type': 'application/json' } }) });
      const body = res.headers.get('content-type')?.includes('json') ? ((await res.json()) as { error?: { code?: string } }) : (await res.text(), {});
      expect(body.error?.code, `${route.module}: ${route.method} ${route.path} answered ${res.status}`).not.toBe('not_found');
    }
  });

  it('runs a worker for every job of every module, each on its own queue', async () => {
    const working = service.jobs.working();
    for (const job of jobsOf(modules)) {
      expect(working, job.name).toContain(job.name);
      expect(await service.jobs.boss.getQueue(job.name), job.name).not.toBeNull();
    }
  });

  it('asks every declared readiness check at /readyz, and each is ready', async () => {
    const res = await fetch(`${service.http.url}/readyz`);
    const body = (await res.json()) as { status: string; checks: Record<string, string> };
    expect(res.status).toBe(200);
    for (const name of modules.flatMap((module) => module.readiness ?? [])) expect(body.checks[name], name).toBe('ok');
  });

  it('exports every declared metric at /metrics', async () => {
    const text = await (await fetch(`${service.http.url}/metrics`)).text();
    for (const name of modules.flatMap((module) => module.metrics ?? [])) expect(text, name).toContain(`# TYPE ${name} `);
  });

  it('listens on what the modules open besides HTTP (the SMTP listener)', () => {
    expect(service.listeners).toEqual([{ module: 'email', name: 'smtp', host: '127.0.0.1', port: expect.any(Number) as unknown }]);
  });

  it('offers every declared verb through the CLI, with its own help', async () => {
    for (const verb of verbsOf(modules)) {
      const stdout = new PassThrough();
      let printed = '';
      stdout.on('data', (chunk: Buffer) => (printed += chunk.toString()));
      const code = await run(['help', verb.name], {}, modules, { stdout, stderr: new PassThrough(), stdin: new PassThrough() });
      expect(code, verb.name).toBe(0);
      for (const command of verb.commands) expect(printed, `${verb.name} ${command.name}`).toContain(usageLine(command));
    }
  });
});

function listTs(root: string, dir = ''): string[] {
  return readdirSync(path.join(root, dir)).flatMap((name) => {
    const relative = dir ? `${dir}/${name}` : name;
    if (statSync(path.join(root, relative)).isDirectory()) return listTs(root, relative);
    return relative.endsWith('.ts') ? [relative] : [];
  });
}

/** Strongly connected components of more than one file (Tarjan): each is an import cycle. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (node: string) => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    for (const target of graph.get(node) ?? []) {
      if (!graph.has(target)) continue;
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (stack.includes(target)) low.set(node, Math.min(low.get(node)!, index.get(target)!));
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || graph.get(node)?.includes(node)) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!index.has(node)) visit(node);
  return found;
}
