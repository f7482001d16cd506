/**
 * jira-sync: a full sync of N issues from the fake Jira (test/fakes/jira, Cloud mode, real HTTP on 127.0.0.1) with
 * 20 ms of latency on every search page, through the real path (src/connectors/jira: basic auth with an API token,
 * `POST /rest/api/3/search/jql` by `(updated, id)` with `nextPageToken`, pages of 100 as Jira Cloud serves full
 * fields; src/connectors/sdk/sync.ts: the read-ahead, validation, content hash, the ledger upsert, the remediation
 * tasks and their links (src/connectors/jira/tasks.ts), an audit row, a checkpoint and the run's counts per page,
 * one transaction per page), in a process of its own (bench/jira-sync/sync.ts) whose wall time, CPU time and
 * peak RSS are reported.
 *
 * The issues: two projects (SEC, OPS), realistic summaries and one- or two-sentence descriptions (served as ADF),
 * labels (about 8% naming a control, `control:AC-2`, most of them controls ProjectX has), priorities, issue types,
 * statuses across To Do / In Progress / In Review / Done, due dates on some, assignees from 12 Jira users (6 of
 * them ProjectX users by email, 4 outside ones, 2 whose email Jira hides; 15% unassigned), `updated` spread over a
 * year at second resolution plus bulk edits (one block of 500 issues in 8 sharing one millisecond), so that page
 * boundaries fall inside ties.
 *
 * The ceiling, measured in the same run, is the sum of:
 * - the fake's page latency × the search pages the sync needed: the wait no sequential client avoids;
 * - a direct bulk upsert of the same N ledger rows into `external_records` (the ledger's statement without its
 *   `returning`, 10,000 rows a statement, each its own transaction; content and hash computed as the ledger does:
 *   `issueContent`, canonicalize, sha256), from issues read from the same fake (bulkfetch, outside the timing);
 * - a direct insert of the same N remediation tasks with their `external` links and their control links, as
 *   tasks.ts writes them (its `insert … select from unnest` statement, 10,000 rows a statement, then the control
 *   links by one `unnest` insert per 10,000 tasks), each statement its own transaction.
 * The ceiling rows are checked to be the sync's rows (the ledger's hashes, the tasks' fields, the control links'
 * count); then `external_records`, `tasks` and `task_links` are truncated (and a CHECKPOINT taken) so that the
 * ceiling writes into empty tables, as the sync did. Not in the ceiling: parsing and validating the pages,
 * hashing, the per-page lookups (users, controls, existing links), the audit row, checkpoint and counts, and a
 * commit per page: what the sync does "in between". The ceiling adds the wait and the writes, while the sync
 * overlaps its writes with the wait for the next page (read-ahead), so the ratio may pass 1.0 when the writes fit
 * inside the wait; BENCH_PAGE_LATENCY_MS=0 compares the sync's own work with the writes alone.
 * Targets (the issue): records/s at least 60% of the ceiling's; peak RSS at 100,000 issues at most 1.2 × that at
 * 50,000 (the sync streams page by page). Every run checks that the sync created exactly N tasks and N ledger rows
 * (a mismatch fails the bench). A second table says where the machine's CPU went during the sync and during the
 * ceiling's writes (from /proc: the bench process with the fake, the sync process, PostgreSQL, everything else;
 * with DATABASE_URL the server is not ours and counts as "everything else"), and how much WAL each wrote.
 *
 * Environment: DATABASE_URL (a server to create the bench database on; else an embedded PostgreSQL),
 * BENCH_QUICK=1 (5,000 and 10,000 issues), BENCH_SIZES (comma list; default 50000,100000),
 * BENCH_PAGE_LATENCY_MS (20), BENCH_CPU_PROF (a directory: write a CPU profile of each sync process; read it with
 * `node bench/lib/cpuprofile.ts <file>`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import canonicalize from 'canonicalize';
import { sql } from 'kysely';
import type { JiraSettings } from '../../src/connectors/jira/client.ts';
import { jira } from '../../src/connectors/jira/index.ts';
import { type IssueRecord, assigneeOf, controlIdsOf, issueContent, issueRecord, plainText, positionOf, priorityOf, stateOf } from '../../src/connectors/jira/mapper.ts';
import { issueFieldsFor } from '../../src/connectors/jira/sync.ts';
import { issueTarget, issueUrl } from '../../src/connectors/jira/mapper.ts';
import { Keyring } from '../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv, loadInstance } from '../../src/connectors/sdk/instances.ts';
import type { RunSummary } from '../../src/connectors/sdk/sync.ts';
import { type Db, createDatabase } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { type FakeJira, type IssueInput, type IssueTypeName, type JiraUser, type PriorityName, startFakeJira } from '../../test/fakes/jira/server.ts';
import { type CpuUsage, benchmarkGroups, cpuUsage, sampleCpu } from '../lib/cpu.ts';
import { benchDatabase, durabilitySettings } from '../lib/database.ts';

const quick = process.env.BENCH_QUICK === '1';
const sizes = (process.env.BENCH_SIZES ?? (quick ? '5000,10000' : '50000,100000')).split(',').map(Number).filter((n) => n > 0);
/** Jira Cloud serves at most 100 issues a page when fields other than id/key are asked; the fake caps the same. */
const PAGE_SIZE = 100;
const latencyMs = Number(process.env.BENCH_PAGE_LATENCY_MS ?? 20);
const profileDir = process.env.BENCH_CPU_PROF;
const TARGET_RATIO = 0.6;
const MEMORY_GROWTH_LIMIT = 1.2;
const BATCH = 10_000;
const EMAIL = 'px-bot@example.com';
const API_TOKEN = 'api-token-secret';
const logger = createLogger({ level: 'warn', destination: process.stderr });
const key = randomBytes(32);
const keyring = new Keyring([{ id: 'bench', key }]);
const child = fileURLToPath(new URL('./sync.ts', import.meta.url));

/** ProjectX users (assignees found by email) and the controls issues may name. */
const PEOPLE = [
  { email: 'alice.nguyen@example.com', name: 'Alice Nguyen' },
  { email: 'bram.dekker@example.com', name: 'Bram Dekker' },
  { email: 'chiara.rossi@example.com', name: 'Chiara Rossi' },
  { email: 'dev.patel@example.com', name: 'Dev Patel' },
  { email: 'emma.larsen@example.com', name: 'Emma Larsen' },
  { email: 'farid.haddad@example.com', name: 'Farid Haddad' },
];
const CONTROLS = ['AC-2', 'AC-6', 'IA-5', 'SC-7', 'CM-6', 'SI-2', 'AU-6'];
/** Named by labels; the last two are no ProjectX control (the link is skipped). */
const CONTROL_LABELS = ['control:AC-2', 'control:AC-6', 'control:IA-5', 'control:SC-7', 'control:CM-6', 'control:SI-2', 'control:AU-6', 'control:AU-9', 'control:PE-3'];

interface Row {
  records: number;
  seconds: number;
  cpuSeconds: number;
  maxRssBytes: number;
  requests: number;
  pages: number;
  ledgerSeconds: number;
  tasksSeconds: number;
  tasks: number;
  ledgerRows: number;
  controlLinks: number;
  summary: RunSummary;
  syncCpu: CpuUsage | undefined;
  ceilingCpu: CpuUsage | undefined;
  syncWalBytes: number;
  ceilingWalBytes: number;
}

const database = await benchDatabase({
  name: `projectx_bench_jirasync_${Date.now().toString(36)}`,
  logger,
  seed: async (db) => {
    const now = new Date();
    await db.insertInto('users').values(PEOPLE.map((person) => ({ email: person.email, display_name: person.name, roles: ['contributor' as const], created_at: now }))).execute();
    await db.insertInto('controls').values(CONTROLS.map((id) => ({ id, title: `Control ${id}`, created_at: now }))).execute();
  },
});
const db = createDatabase({ connectionString: database.url, max: 2 });
const rows: Row[] = [];
try {
  for (const size of sizes) {
    const fake = await startFakeJira({ email: EMAIL, apiToken: API_TOKEN, pageLatencyMs: latencyMs });
    try {
      createIssues(fake, size);
      await emptyTables(db);
      const name = `bench${size}`;
      const settings = { baseUrl: fake.url, deployment: 'cloud', authMode: 'pat', email: EMAIL, projectKeys: ['SEC', 'OPS'], pageSize: PAGE_SIZE };
      const instanceId = (await ensureInstanceFromEnv(db, keyring, jira, { name, settings, credentials: { api_token: API_TOKEN } }))!;
      const instance = await loadInstance(db, keyring, jira, instanceId);
      const before = fake.requests.length;
      const walBefore = await walPosition(db);
      const result = await syncInChild(database.url, instanceId);
      const syncWalBytes = await walSince(db, walBefore);
      const requests = fake.requests.slice(before);
      const pages = requests.filter((request) => request.path === '/rest/api/3/search/jql').length;
      if (result.summary.status !== 'succeeded' || result.summary.counts.created !== size) throw new Error(`the sync did not import every issue: ${JSON.stringify(result.summary)}`);

      // What the sync wrote: exactly N ledger rows and N tasks, each linked to its issue once.
      const ledger = await db.selectFrom('external_records').select(['external_id', 'content_hash']).where('config_id', '=', instanceId).where('model', '=', 'issue').execute();
      const synced = await db
        .selectFrom('task_links')
        .innerJoin('tasks', 'tasks.id', 'task_links.task_id')
        .select(['task_links.target', 'task_links.url', 'tasks.title', 'tasks.description', 'tasks.state', 'tasks.priority', 'tasks.assignee_id', 'tasks.external_assignee', 'tasks.due_at', 'tasks.labels'])
        .where('task_links.kind', '=', 'external')
        .where('task_links.target', 'like', `jira:${name}:issue:%`)
        .execute();
      const controlLinks = Number((await db.selectFrom('task_links').select((eb) => eb.fn.countAll<string>().as('n')).where('kind', '=', 'control').executeTakeFirstOrThrow()).n);
      const distinctTasks = new Set(synced.map((task) => task.target)).size;
      const share = (count: number) => `${((100 * count) / Math.max(1, synced.length)).toFixed(0)}%`;
      console.error(`  ${size}: tasks: ${share(synced.filter((task) => task.assignee_id).length)} assigned to a ProjectX user, ${share(synced.filter((task) => task.external_assignee).length)} to an outside one; ${share(synced.filter((task) => task.state === 'done').length)} done, ${share(synced.filter((task) => task.state === 'in_progress').length)} in progress; ${share(synced.filter((task) => task.labels.length > 0).length)} labelled`);
      console.error(`  ${size}: the sync created ${synced.length} tasks (${distinctTasks} issues linked) and ${ledger.length} ledger rows, ${controlLinks} control links`);
      if (ledger.length !== size || synced.length !== size || distinctTasks !== size) throw new Error(`the sync created ${synced.length} tasks and ${ledger.length} ledger rows for ${size} issues`);

      // The ceiling's rows, from the same issues, checked against what the sync wrote.
      const ceiling = await ceilingRows(db, fake, instance.settings, name, ledger.map((row) => row.external_id));
      const hashById = new Map(ledger.map((row) => [row.external_id, row.content_hash]));
      const wrongHash = ceiling.ledger.filter((row) => hashById.get(row.externalId) !== row.hash).length;
      const syncedByTarget = new Map(synced.map((task) => [task.target, task]));
      const wrongTask = ceiling.tasks.filter((row) => {
        const task = syncedByTarget.get(row.target);
        return !task || taskKey(row) !== taskKey({ url: task.url, title: task.title, description: task.description, state: task.state, priority: task.priority, assigneeId: task.assignee_id, externalAssignee: task.external_assignee, dueAt: task.due_at, labels: task.labels });
      }).length;
      const ceilingControlLinks = ceiling.tasks.reduce((n, row) => n + row.controls.length, 0);
      if (ceiling.ledger.length !== size || wrongHash > 0 || wrongTask > 0 || ceilingControlLinks !== controlLinks) {
        throw new Error(`the ceiling's rows are not the sync's: ${ceiling.ledger.length} ledger rows, ${wrongHash} with another hash, ${wrongTask} tasks differ, ${ceilingControlLinks} control links against ${controlLinks}`);
      }

      await emptyTables(db);
      const cpuBefore = sampleCpu();
      const ceilingWal = await walPosition(db);
      const { ledgerSeconds, tasksSeconds } = await writeCeiling(db, instanceId, ceiling);
      const ceilingWalBytes = await walSince(db, ceilingWal);
      const cpuAfter = sampleCpu();
      const ceilingCpu = cpuBefore && cpuAfter ? cpuUsage(cpuBefore, cpuAfter, benchmarkGroups({})) : undefined;
      const written = await db.selectFrom('tasks').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
      if (Number(written.n) !== size) throw new Error(`the ceiling wrote ${written.n} tasks of ${size}`);
      await emptyTables(db);

      rows.push({ records: size, seconds: result.seconds, cpuSeconds: result.cpuSeconds, maxRssBytes: result.maxRssBytes, requests: requests.length, pages, ledgerSeconds, tasksSeconds, tasks: synced.length, ledgerRows: ledger.length, controlLinks, summary: result.summary, syncCpu: result.cpu, ceilingCpu, syncWalBytes, ceilingWalBytes });
      console.error(`  ${size}: sync ${result.seconds.toFixed(1)} s, ${pages} pages, peak RSS ${(result.maxRssBytes / 2 ** 20).toFixed(0)} MiB; ceiling writes: ledger ${ledgerSeconds.toFixed(1)} s, tasks + links ${tasksSeconds.toFixed(1)} s`);
    } finally {
      await fake.close();
    }
  }

  const settings = await durabilitySettings(database.url);
  const pagesLatency = (row: Row) => (row.pages * latencyMs) / 1000;
  const ceilingOf = (row: Row) => pagesLatency(row) + row.ledgerSeconds + row.tasksSeconds;
  console.log(`\n### jira-sync (full sync of two projects' issues into remediation tasks; pages of ${PAGE_SIZE}; ${latencyMs} ms latency per page in the fake; ${database.where}; ${settings}; node ${process.version}; sync, fake and PostgreSQL share this machine's cores)\n`);
  console.log('| records | sync s | records/s | upstream requests | pages | peak RSS MiB | sync CPU s | ceiling: latency × pages s | ceiling: ledger upsert s | ceiling: tasks + links s | ceiling s | ceiling records/s | sync / ceiling |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    const ceilingSeconds = ceilingOf(row);
    console.log(
      `| ${row.records} | ${row.seconds.toFixed(1)} | ${Math.round(row.records / row.seconds)} | ${row.requests} | ${row.pages} | ${(row.maxRssBytes / 2 ** 20).toFixed(0)} | ${row.cpuSeconds.toFixed(1)} | ${pagesLatency(row).toFixed(1)} | ${row.ledgerSeconds.toFixed(1)} | ${row.tasksSeconds.toFixed(1)} | ${ceilingSeconds.toFixed(1)} | ${Math.round(row.records / ceilingSeconds)} | ${(ceilingSeconds / row.seconds).toFixed(2)} |`,
    );
  }
  console.log('\nWhere the CPU went (average cores busy, from /proc; the bench process runs the fake Jira and writes the ceiling; "other" is everything else, kernel time included) and the WAL each phase wrote:\n');
  console.log('| records | phase | seconds | bench process | sync process | PostgreSQL | other | PostgreSQL CPU s | WAL MiB |');
  console.log('|---:|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    for (const [phase, cpu, wal] of [['sync process, start to result', row.syncCpu, row.syncWalBytes], ['ceiling writes', row.ceilingCpu, row.ceilingWalBytes]] as const) {
      const g = (name: string) => cpu?.groups[name] ?? 0;
      const cells = cpu ? [cpu.seconds.toFixed(1), g('client').toFixed(2), g('sync').toFixed(2), g('postgres').toFixed(2), cpu.other.toFixed(2), (g('postgres') * cpu.seconds).toFixed(1)] : ['n/a', 'n/a', 'n/a', 'n/a', 'n/a', 'n/a'];
      console.log(`| ${row.records} | ${phase} | ${cells.join(' | ')} | ${(wal / 2 ** 20).toFixed(0)} |`);
    }
  }
  console.log('\n#### summary\n');
  for (const row of rows) {
    const ratio = ceilingOf(row) / row.seconds;
    console.log(`- ${row.records} issues: the sync created ${row.tasks} tasks and ${row.ledgerRows} ledger rows (${row.controlLinks} control links; run counts: ${JSON.stringify(row.summary.counts)})`);
    console.log(`- ${row.records} issues: ${Math.round(row.records / row.seconds)} records/s, ${(ratio * 100).toFixed(0)}% of the ceiling's rate → ${ratio >= TARGET_RATIO ? 'MET' : 'NOT MET'} (target ≥ ${TARGET_RATIO * 100}%)`);
  }
  if (rows.length >= 2) {
    const [small, large] = [rows[0]!, rows.at(-1)!];
    const growth = large.maxRssBytes / small.maxRssBytes;
    console.log(`- peak RSS ${(small.maxRssBytes / 2 ** 20).toFixed(0)} MiB at ${small.records} issues, ${(large.maxRssBytes / 2 ** 20).toFixed(0)} MiB at ${large.records}: ×${growth.toFixed(2)} → ${growth <= MEMORY_GROWTH_LIMIT ? 'MET' : 'NOT MET'} (target ≤ ×${MEMORY_GROWTH_LIMIT}: memory does not grow with the dataset)`);
  }
} finally {
  await db.destroy();
  await database.close();
}

/**
 * One full sync in bench/jira-sync/sync.ts, a process of its own, and where the machine's CPU went meanwhile:
 * sampled when the process starts and when it reports (before it closes its database sessions, whose CPU time
 * would be lost with them).
 */
function syncInChild(url: string, instanceId: string) {
  type Answer = { summary: RunSummary; seconds: number; cpuSeconds: number; maxRssBytes: number };
  return new Promise<Answer & { cpu: CpuUsage | undefined }>((resolve, reject) => {
    const execArgv = profileDir ? [...process.execArgv, '--cpu-prof', `--cpu-prof-dir=${profileDir}`] : process.execArgv;
    const before = sampleCpu();
    const proc = fork(child, [], { env: { ...process.env, BENCH_DATABASE_URL: url, BENCH_KEY: key.toString('base64'), BENCH_INSTANCE_ID: instanceId }, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let answer: (Answer & { cpu: CpuUsage | undefined }) | undefined;
    proc.once('message', (message) => {
      const after = sampleCpu();
      answer = { ...(message as Answer), cpu: before && after ? cpuUsage(before, after, benchmarkGroups({ sync: proc.pid })) : undefined };
      proc.send('close');
    });
    proc.once('exit', (code) => (code === 0 && answer ? resolve(answer) : reject(new Error(`sync process exited (${code}) ${answer ? '' : 'without its result'}`))));
  });
}

/** Empty tables for the next measurement: the ledger, the tasks and their links; then a checkpoint, so that neither side writes the other's dirty pages. */
async function emptyTables(db: Db): Promise<void> {
  await sql`truncate external_records, task_links, tasks cascade`.execute(db);
  await sql`checkpoint`.execute(db);
}

async function walPosition(db: Db): Promise<string> {
  return (await sql<{ lsn: string }>`select pg_current_wal_lsn()::text as lsn`.execute(db)).rows[0]!.lsn;
}

/** Bytes of WAL written since `from` (by anyone on the server: the bench is the only writer). */
async function walSince(db: Db, from: string): Promise<number> {
  return Number((await sql<{ bytes: string }>`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${from}::pg_lsn)::text as bytes`.execute(db)).rows[0]!.bytes);
}

/** A small seeded generator (mulberry32): the same issues every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, weighted: readonly (readonly [T, number])[]): T {
  let at = rand() * weighted.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [value, weight] of weighted) if ((at -= weight) < 0) return value;
  return weighted.at(-1)![0];
}

function createIssues(fake: FakeJira, count: number): void {
  const rand = random(20261207);
  const users: JiraUser[] = [
    ...PEOPLE.map((person, i) => fake.addUser({ displayName: person.name, emailAddress: i === 2 ? person.email.toUpperCase() : person.email })),
    fake.addUser({ displayName: 'Grace Obi', emailAddress: 'grace.obi@vendor.example' }),
    fake.addUser({ displayName: 'Hiro Tanaka', emailAddress: 'hiro@mssp.example' }),
    fake.addUser({ displayName: 'Ines Moreau', emailAddress: 'ines.moreau@auditco.example' }),
    fake.addUser({ displayName: 'Jon Berg', emailAddress: 'jon.berg@contractor.example' }),
    fake.addUser({ displayName: 'Kai Private', emailAddress: null }),
    fake.addUser({ displayName: 'Lena Hidden', emailAddress: null }),
  ];
  const services = ['payments-api', 'auth-gateway', 'billing-db', 'vpn', 'ci-runners', 'data-lake', 'hr-portal', 'edge-proxy', 'k8s-prod', 'sso'];
  const hosts = ['web-01', 'web-02', 'db-prod-3', 'bastion-1', 'worker-17', 'lb-eu-1', 'build-04', 'mail-relay'];
  const teams = ['contractors', 'finance', 'support', 'former employees', 'on-call', 'data science'];
  const labelPool = ['pentest', 'soc2', 'iso27001', 'vuln-scan', 'audit-2026', 'access-review', 'backlog', 'quick-win'];
  const summaries = [
    (n: number) => `Rotate ${services[n % services.length]} service account credentials`,
    (n: number) => `Patch CVE-2026-${String(1000 + (n % 9000))} on ${hosts[n % hosts.length]}`,
    (n: number) => `Remove stale access for ${teams[n % teams.length]} in ${services[n % services.length]}`,
    (n: number) => `Enforce MFA on ${services[n % services.length]} admin accounts`,
    (n: number) => `Review firewall rule ${n % 500} on ${hosts[n % hosts.length]}`,
    (n: number) => `Encrypt backups of ${services[n % services.length]} at rest`,
    (n: number) => `Update the incident runbook for ${services[n % services.length]}`,
  ];
  const sentences = [
    'Found during the quarterly access review.',
    'The scanner flagged this as high severity on the last run.',
    'Evidence must be attached before the auditor visit.',
    'Owner confirmed the fix is scheduled for the next maintenance window.',
    'See the linked finding for the affected assets and the scan output.',
    'This blocks the SOC 2 Type II renewal.',
  ];
  const t0 = Date.parse('2025-12-01T00:00:00Z');
  const year = 365 * 86_400;
  fake.createIssues(count, (i) => {
    const block = Math.floor(i / 500);
    // One block of 500 in 8 is a bulk edit: all stamped the same millisecond. The rest: any second of a year.
    const updated = block % 8 === 5 ? t0 + ((block * 7919) % year) * 1000 + 123 : t0 + Math.floor(rand() * year) * 1000;
    const labels = labelPool.filter(() => rand() < 0.12);
    if (rand() < 0.08) labels.push(CONTROL_LABELS[Math.floor(rand() * CONTROL_LABELS.length)]!);
    const assignee = rand() < 0.15 ? null : users[Math.floor(rand() * users.length)]!.accountId;
    const due = rand() < 0.3 ? new Date(updated + Math.floor(rand() * 90) * 86_400_000).toISOString().slice(0, 10) : null;
    const input: IssueInput = {
      project: rand() < 0.6 ? 'SEC' : 'OPS',
      summary: summaries[i % summaries.length]!(Math.floor(rand() * 100_000)),
      issuetype: pick<IssueTypeName>(rand, [['Task', 70], ['Bug', 20], ['Story', 10]]),
      status: pick(rand, [['To Do', 40], ['In Progress', 20], ['In Review', 5], ['Done', 35]]),
      assignee,
      labels,
      duedate: due,
      priority: pick<PriorityName>(rand, [['Highest', 3], ['High', 17], ['Medium', 50], ['Low', 25], ['Lowest', 5]]),
      description: rand() < 0.5 ? sentences[i % sentences.length]! : `${sentences[i % sentences.length]} ${sentences[(i + 3) % sentences.length]}`,
      created: new Date(updated - Math.floor(rand() * 60 * 86_400) * 1000),
      updated: new Date(updated),
    };
    return input;
  });
}

interface LedgerRow {
  externalId: string;
  number: string;
  hash: string;
  updatedAt: string;
  data: string;
}

interface TaskRow {
  target: string;
  url: string;
  title: string;
  description: string | null;
  state: string;
  priority: string;
  assigneeId: string | null;
  externalAssignee: string | null;
  dueAt: Date | null;
  labels: string[];
  controls: string[];
}

/** A task's fields as one string, to compare the ceiling's tasks with the sync's. */
function taskKey(row: Omit<TaskRow, 'target' | 'controls' | 'url'> & { url: string | null }): string {
  return JSON.stringify([row.url, row.title, row.description, row.state, row.priority, row.assigneeId, row.externalAssignee, row.dueAt?.toISOString() ?? null, row.labels]);
}

/**
 * The ledger rows and the tasks the sync writes for these issues, computed as the ledger (ledger.ts: content,
 * canonical JSON, sha256) and tasks.ts do, from the issues read from the fake by id (`issue/bulkfetch`, 100 a
 * request, the fields the sync asks for; no page latency on bulkfetch).
 */
async function ceilingRows(db: Db, fake: FakeJira, settings: JiraSettings, instanceName: string, ids: string[]): Promise<{ ledger: LedgerRow[]; tasks: TaskRow[] }> {
  const fields = issueFieldsFor(settings);
  const authorization = `Basic ${Buffer.from(`${EMAIL}:${API_TOKEN}`).toString('base64')}`;
  const users = await db.selectFrom('users').select(['id', 'email']).where('active', '=', true).execute();
  const userByEmail = new Map(users.map((user) => [user.email.toLowerCase(), user.id]));
  const known = new Set((await db.selectFrom('controls').select('id').execute()).map((row) => row.id));
  const labelPattern = new RegExp(settings.controlLabelPattern, 'i');
  const records: IssueRecord[] = [];
  const chunks: string[][] = [];
  for (let at = 0; at < ids.length; at += 100) chunks.push(ids.slice(at, at + 100));
  const fetchChunk = async (chunk: string[]) => {
    const response = await fetch(`${fake.url}/rest/api/3/issue/bulkfetch`, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body: JSON.stringify({ issueIdsOrKeys: chunk, fields }) });
    if (!response.ok) throw new Error(`bulkfetch answered ${response.status}`);
    for (const raw of ((await response.json()) as { issues: unknown[] }).issues) records.push(issueRecord.parse(raw));
  };
  for (let at = 0; at < chunks.length; at += 4) await Promise.all(chunks.slice(at, at + 4).map(fetchChunk));

  const ledger: LedgerRow[] = [];
  const tasks: TaskRow[] = [];
  for (const record of records) {
    const data = canonicalize(issueContent(record)) ?? '{}';
    ledger.push({ externalId: record.id, number: record.key, hash: createHash('sha256').update(data).digest('hex'), updatedAt: new Date(positionOf(record).updatedMs).toISOString(), data });
    const assignee = assigneeOf(record);
    const assigneeId = assignee?.email ? (userByEmail.get(assignee.email) ?? null) : null;
    tasks.push({
      target: issueTarget(instanceName, record.id),
      url: issueUrl(settings, record.key),
      title: `${record.key} ${record.fields.summary}`.trim().slice(0, 500),
      description: plainText(record.fields.description) || null,
      state: stateOf(record, settings.stateMapping),
      priority: priorityOf(record),
      assigneeId,
      externalAssignee: assignee && !assigneeId ? (assignee.email ?? assignee.name ?? assignee.accountId) : null,
      dueAt: record.fields.duedate ? new Date(`${record.fields.duedate}T23:59:59.999Z`) : null,
      labels: [...record.fields.labels].sort(),
      controls: controlIdsOf(record, { labelPattern, field: settings.controlField }).filter((id) => known.has(id)),
    });
  }
  return { ledger, tasks };
}

/** The ceiling's database part: the ledger rows, then the tasks with their links, 10,000 rows a statement. */
async function writeCeiling(db: Db, instanceId: string, rows: { ledger: LedgerRow[]; tasks: TaskRow[] }): Promise<{ ledgerSeconds: number; tasksSeconds: number }> {
  const now = new Date();
  const ledgerStarted = performance.now();
  for (let offset = 0; offset < rows.ledger.length; offset += BATCH) {
    const batch = rows.ledger.slice(offset, offset + BATCH);
    await sql`
      insert into external_records (config_id, model, external_id, number, content_hash, source_updated_at, data, first_seen_at, updated_at)
      select ${instanceId}::uuid, 'issue', r.external_id, r.number, r.content_hash, r.source_updated_at, r.data::jsonb, ${now}::timestamptz, ${now}::timestamptz
      from unnest(${batch.map((row) => row.externalId)}::text[], ${batch.map((row) => row.number)}::text[], ${batch.map((row) => row.hash)}::text[], ${batch.map((row) => row.updatedAt)}::text[], ${batch.map((row) => row.data)}::text[])
        as r(external_id, number, content_hash, source_updated_at, data)
      on conflict (config_id, model, external_id) do update
        set number = excluded.number, content_hash = excluded.content_hash, source_updated_at = excluded.source_updated_at, data = excluded.data, updated_at = excluded.updated_at, missing_since = null
        where external_records.content_hash <> excluded.content_hash`.execute(db);
  }
  const ledgerSeconds = (performance.now() - ledgerStarted) / 1000;

  const tasksStarted = performance.now();
  for (let offset = 0; offset < rows.tasks.length; offset += BATCH) {
    const batch = rows.tasks.slice(offset, offset + BATCH);
    const inserted = await sql<{ id: string; target: string }>`
      with input as (
        select nextval(pg_get_serial_sequence('tasks', 'id')) as id, t.*
        from unnest(${batch.map((row) => row.target)}::text[], ${batch.map((row) => row.url)}::text[], ${batch.map((row) => row.title)}::text[], ${batch.map((row) => row.description)}::text[], ${batch.map((row) => row.state)}::text[], ${batch.map((row) => row.priority)}::text[], ${batch.map((row) => row.assigneeId)}::uuid[], ${batch.map((row) => row.externalAssignee)}::text[], ${batch.map((row) => row.dueAt)}::timestamptz[], ${batch.map((row) => JSON.stringify(row.labels))}::text[])
          as t(target, url, title, description, state, priority, assignee_id, external_assignee, due_at, labels)
      ), tasks_in as (
        insert into tasks (id, type, title, description, state, priority, assignee_id, external_assignee, due_at, labels, created_at, updated_at)
        overriding system value
        select id, 'remediation', title, description, state, priority, assignee_id, external_assignee, due_at, array(select jsonb_array_elements_text(labels::jsonb)), ${now}::timestamptz, ${now}::timestamptz
        from input
      ), links_in as (
        insert into task_links (task_id, kind, target, url) select id, 'external', target, url from input
      )
      select id::text, target from input`.execute(db);
    const taskIdOf = new Map(inserted.rows.map((row) => [row.target, row.id]));
    const links = batch.flatMap((row) => row.controls.map((control) => ({ taskId: taskIdOf.get(row.target)!, control })));
    if (links.length > 0) {
      await sql`
        insert into task_links (task_id, kind, target, url)
        select l.task_id, 'control', l.target, null from unnest(${links.map((link) => link.taskId)}::bigint[], ${links.map((link) => link.control)}::text[]) as l(task_id, target)
        on conflict do nothing`.execute(db);
    }
  }
  return { ledgerSeconds, tasksSeconds: (performance.now() - tasksStarted) / 1000 };
}
