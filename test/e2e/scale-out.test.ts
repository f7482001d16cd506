/**
 * Scale-out, proven (issue 13): the real binary as two web and two worker processes on one database. Signed
 * partner deliveries (tasks, evidence, alerts) and signed Slack slash commands (`/projectx approve T-n <trigger
 * id>`) go to both web processes while a worker, then a web process, is SIGKILLed and started again. Senders
 * retry with the same delivery id or trigger id on a connection error or a 5xx, alternating between the web
 * processes, as partners and Slack do. Then the database shows that every accepted request (2xx) had its effect
 * exactly once (none missing, none twice), and that the queue drained: every pg-boss job completed, the inbound
 * outbox empty, no delivery left 'received'.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { setTimeout as pause } from 'node:timers/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signStandardWebhook } from '../../src/connectors/webhook-bridge/signatures.ts';
import { createControl } from '../../src/domain/controls.ts';
import { type FakeSlack, startFakeSlack } from '../fakes/slack/server.ts';
import { type SeededApproval, seedApprovals } from '../support/approval-seed.ts';
import { killAll, spawnCli } from '../support/cli.ts';
import { type TestDatabase, createTestDatabase } from '../support/database.ts';
import { type FleetMember, fleetMember } from '../support/fleet.ts';
import { type Sent, pool, sendWithRetries } from '../support/retrying-sender.ts';
import { SIGNING_SECRET, signedRequest, slashCommandBody } from '../support/slack.ts';
import { tempPath } from '../support/temp.ts';

const DELIVERIES = 240;
const COMMANDS = 120;
const SENDERS = 8;
/** Each sender's pause between requests: spreads the run over seconds, so the kills and restarts land inside it. */
const PACE_MS = 60;
const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
type PartnerEvent = 'task.create' | 'evidence.attach' | 'notification.raise';
/**
 * Of every 40 deliveries: 24 tasks, 14 evidence files, 2 alerts. Alerts are posted to one Slack channel, which
 * takes a post a second at most (src/bot/slack/sender.ts): a dozen drain well inside the deadline.
 */
const eventOf = (index: number): PartnerEvent => (index % 40 < 24 ? 'task.create' : index % 40 < 38 ? 'evidence.attach' : 'notification.raise');

type Item =
  | { kind: 'partner'; id: string; event: PartnerEvent; body: string; sha256?: string }
  | { kind: 'slack'; trigger: string; approval: SeededApproval };

describe('scale-out: 2 web + 2 worker processes on one database', () => {
  const fileStarted = Date.now();
  let tdb: TestDatabase;
  let fake: FakeSlack;
  let approvals: SeededApproval[];
  let webs: FleetMember[];
  let workers: FleetMember[];
  let setupMs = 0;

  beforeAll(async () => {
    tdb = await createTestDatabase({ empty: true });
    fake = await startFakeSlack();
    const cwd = tempPath('scale-out');
    await mkdir(cwd, { recursive: true });
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATABASE_URL: tdb.url,
      GENERIC_WEBHOOK_SECRET: SECRET,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: fake.botToken,
      SLACK_API_URL: fake.apiUrl,
      PROJECTX_ENCRYPTION_KEY: `k1:${randomBytes(32).toString('base64')}`,
      EVIDENCE_LOCAL_DIR: `${cwd}/evidence`,
      // A command recorded by a web process that died before processing it is redelivered after this long
      // (default 60 s; shorter here so the file stays well inside two minutes).
      SLACK_REDELIVER_AFTER_SECONDS: '20',
    };
    const migrate = spawnCli(['migrate'], { env, cwd });
    const migrated = await migrate.exited;
    if (migrated.code !== 0) throw new Error(`projectx migrate exited ${migrated.code}:\n${migrate.stdout()}\n${migrate.stderr()}`);
    // The default routing posts every approval request and decision, and every evidence file, to one channel,
    // which takes a post a second at most: hundreds of them would take minutes to drain, which is not what this
    // file is about. Approval requests still go to the approvers' DMs (12 approvers: 10 each), partner alerts
    // to their channel.
    await tdb.db.updateTable('notification_rules').set({ enabled: false }).where('target_kind', '=', 'channel').where('event_pattern', '<>', 'partner.alert').execute();
    approvals = await seedApprovals(tdb, fake, { count: COMMANDS, approvers: 12 });
    const control = await createControl(tdb.db, { id: 'AC-2', title: 'Account management' });
    if (!control.ok) throw new Error(control.refusal.message);
    webs = await Promise.all(['web-a', 'web-b'].map((name) => fleetMember({ name, role: 'web', env, cwd })));
    workers = await Promise.all(['worker-a', 'worker-b'].map((name) => fleetMember({ name, role: 'worker', env, cwd })));
    await Promise.all([...webs, ...workers].map((member) => member.start()));
    setupMs = Date.now() - fileStarted;
  }, 60_000);

  afterAll(async () => {
    killAll();
    await fake?.close();
    await tdb?.drop();
  });

  it('processes every accepted delivery and command exactly once, and drains, across SIGKILLs of a worker and a web process', async () => {
    const [webA, webB] = webs as [FleetMember, FleetMember];
    const [workerA] = workers as [FleetMember, FleetMember];
    const items = buildItems(approvals);
    const total = items.length;
    const slackInFlight = new Map<string, number>();
    let done = 0;
    let sending = true;

    // Chaos, triggered by progress: worker-a at a fifth of the traffic, web-a from 45% as soon as Slack
    // commands are in flight at it (at 60% whatever is in flight). Each is started again at once.
    let workerChaos: Promise<{ atDone: number }> | undefined;
    const webChaos = (async () => {
      while (sending && !(done >= total * 0.45 && ((slackInFlight.get(webA.url) ?? 0) >= 2 || done >= total * 0.6))) await pause(5);
      const atDone = done;
      const slackAtKill = slackInFlight.get(webA.url) ?? 0;
      await webA.kill();
      const killedAt = Date.now();
      await webA.start();
      return { atDone, slackAtKill, killedAt, restartedAt: Date.now() };
    })();
    // The last tenth waits for web-a to be back, so the restarted process is seen taking traffic.
    const tailFrom = Math.floor(total * 0.9);

    const sendStarted = Date.now();
    const sent = await pool(items, SENDERS, async (item, index) => {
      if (index >= tailFrom) await webChaos;
      const answer = await send(item, [webA.url, webB.url], index % 2, slackInFlight);
      done++;
      if (!workerChaos && done >= total * 0.2) {
        const atDone = done;
        workerChaos = workerA.kill().then(async () => (await workerA.start(), { atDone }));
      }
      await pause(PACE_MS);
      return { item, answer };
    });
    sending = false;
    const sendMs = Date.now() - sendStarted;
    const [workerKill, webKill] = await Promise.all([workerChaos, webChaos]);

    // Wait for the queue to drain (or the deadline, leaving the file well inside two minutes), then look.
    const deadline = fileStarted + 105_000;
    let queue = await queueState(tdb);
    while (!drained(queue) && Date.now() < deadline) {
      await pause(500);
      queue = await queueState(tdb);
    }
    const effects = await countEffects(tdb, sent, (base) => (base === webA.url ? 'web-a' : 'web-b'));
    const redelivered = await Promise.all(webs.map(async (web) => scrape(web.url, 'slack_redeliveries_total{outcome="redelivered"}')));
    const notifications = await sql<{ target: string; status: string; n: number }>`select target_kind || ':' || target as target, status, count(*)::int as n from notifications group by 1, 2 order by 1, 2`.execute(tdb.db);
    const retriedJobs = await sql<{ name: string; n: number }>`select name, count(*)::int as n from projectx_jobs.job where retry_count > 0 group by name order by name`.execute(tdb.db);

    const report = {
      setupMs,
      sendMs,
      drainMs: Date.now() - sendStarted - sendMs,
      requests: { partner: DELIVERIES, slack: COMMANDS, retried: sent.filter(({ answer }) => answer.attempts.length > 1).length },
      workerKill,
      webKill: { ...webKill, restartMs: webKill.restartedAt - webKill.killedAt },
      restartedWebAnswered: sent.filter(({ answer }) => answer.attempts.some((attempt) => attempt.base === webA.url && attempt.at > webKill.restartedAt && typeof attempt.outcome === 'number' && attempt.outcome < 300)).length,
      slackRedeliveredSinceStart: redelivered,
      slackAnsweredEmpty: sent.flatMap(({ item, answer }) => (item.kind === 'slack' && answer.body === '' ? [`${item.trigger}: ${answer.attempts.map((attempt) => `${attempt.base === webA.url ? 'web-a' : 'web-b'}:${attempt.outcome}`).join(' > ')}`] : [])),
      retriedJobs: Object.fromEntries(retriedJobs.rows.map((row) => [row.name, row.n])),
      notifications: notifications.rows.map((row) => `${row.target} ${row.status} ${row.n}`),
      queue,
      effects,
    };
    console.info(`scale-out: ${JSON.stringify(report)}`);

    // The scenario happened: both kills mid-run, and the restarted web process took traffic.
    expect(workerA.starts).toBe(2);
    expect(webA.starts).toBe(2);
    expect(workerKill?.atDone).toBeLessThan(total);
    expect(webKill.atDone).toBeLessThan(total);
    expect(report.restartedWebAnswered).toBeGreaterThan(0);
    // The outcomes.
    expect({ notAccepted: effects.notAccepted, partner: effects.partner.problems, slack: effects.slack.problems, queue }).toEqual({
      notAccepted: [],
      partner: { missing: [], duplicated: [], unsettled: [] },
      slack: { missing: [], duplicated: [], unsettled: [] },
      queue: { received: {}, outbox: 0, unfinishedJobs: {} },
    });
  }, 120_000);
});

function buildItems(approvals: readonly SeededApproval[]): Item[] {
  const partner: Item[] = Array.from({ length: DELIVERIES }, (_, i) => {
    const id = `msg_${randomUUID().replaceAll('-', '')}`;
    const event = eventOf(i);
    const content = Buffer.from(`scale-out evidence for ${id}\n`);
    const data =
      event === 'task.create'
        ? { title: `Scale-out ${id}` }
        : event === 'evidence.attach'
          ? { name: `${id}.txt`, content_base64: content.toString('base64'), control_ids: ['AC-2'] }
          : { title: `Scale-out alert ${id}`, text: id, severity: 'low' };
    const body = JSON.stringify({ type: event, timestamp: new Date().toISOString(), data });
    return { kind: 'partner', id, event, body, ...(event === 'evidence.attach' ? { sha256: createHash('sha256').update(content).digest('hex') } : {}) };
  });
  const slack: Item[] = approvals.map((approval) => ({ kind: 'slack', trigger: `${Date.now()}.${randomBytes(6).toString('hex')}`, approval }));
  // Two partner deliveries, then a command, and so on.
  const items: Item[] = [];
  while (partner.length > 0 || slack.length > 0) items.push(...partner.splice(0, 2), ...slack.splice(0, 1));
  return items;
}

async function send(item: Item, bases: readonly string[], first: number, slackInFlight: Map<string, number>): Promise<Sent> {
  if (item.kind === 'partner') {
    return sendWithRetries({
      key: item.id,
      bases,
      first,
      request: () => ({
        path: '/api/integration/webhook/generic',
        init: { method: 'POST', body: item.body, headers: { 'content-type': 'application/json', ...signStandardWebhook([SECRET], item.id, Math.floor(Date.now() / 1000), Buffer.from(item.body)) } },
      }),
    });
  }
  const form = new URLSearchParams(slashCommandBody({ team_id: item.approval.teamId, user_id: item.approval.slackUserId, text: `approve ${item.approval.ref} ${item.trigger}`, trigger_id: item.trigger }));
  // A workspace outside Enterprise Grid: Slack sends no enterprise fields at all.
  form.delete('enterprise_id');
  form.delete('enterprise_name');
  const body = form.toString();
  return sendWithRetries({
    key: item.trigger,
    bases,
    first,
    inFlight: slackInFlight,
    // Slack marks a redelivery; the trigger id (the delivery's identity) stays the same.
    request: (_base, attempt) => ({ path: '/slack/events', init: signedRequest(body, attempt > 0 ? { headers: { 'x-slack-retry-num': String(attempt), 'x-slack-retry-reason': 'http_error' } } : {}) }),
  });
}

interface QueueState {
  /** Deliveries still 'received', by source. */
  received: Record<string, number>;
  outbox: number;
  /** pg-boss jobs not completed, by `queue:state`. */
  unfinishedJobs: Record<string, number>;
}

async function queueState(tdb: TestDatabase): Promise<QueueState> {
  const received = await tdb.db.selectFrom('inbound_events').select(['source', (eb) => eb.fn.countAll<string>().as('n')]).where('status', '=', 'received').groupBy('source').execute();
  const outbox = await tdb.db.selectFrom('inbound_job_outbox').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  const jobs = await sql<{ name: string; state: string; n: number }>`select name, state, count(*)::int as n from projectx_jobs.job where state <> 'completed' group by name, state`.execute(tdb.db);
  return {
    received: Object.fromEntries(received.map((row) => [row.source, Number(row.n)])),
    outbox: Number(outbox.n),
    unfinishedJobs: Object.fromEntries(jobs.rows.map((row) => [`${row.name}:${row.state}`, row.n])),
  };
}

const drained = (queue: QueueState) => Object.keys(queue.received).length === 0 && queue.outbox === 0 && Object.keys(queue.unfinishedJobs).length === 0;

const countBy = (rows: readonly { key: string | null; n: number | string }[]) => new Map(rows.map((row) => [row.key ?? '', Number(row.n)]));

/**
 * The domain effects of each accepted request, counted in the database, and what is wrong with them: missing
 * (no effect), duplicated (an effect or a processing record twice), unsettled (its delivery not 'processed').
 */
async function countEffects(tdb: TestDatabase, sent: readonly { item: Item; answer: Sent }[], nameOf: (base: string) => string) {
  const trail = (answer: Sent) => answer.attempts.map((attempt) => `${nameOf(attempt.base)}:${attempt.outcome}`).join(' > ');
  const accepted = sent.filter(({ answer }) => answer.status !== undefined && answer.status >= 200 && answer.status < 300);
  const notAccepted = sent.filter((entry) => !accepted.includes(entry)).map(({ answer }) => `${answer.key}: ${trail(answer)}`);
  const problems = () => ({ missing: [] as string[], duplicated: [] as string[], unsettled: [] as string[] });

  const partner = accepted.flatMap(({ item, answer }) => (item.kind === 'partner' ? [{ item, answer }] : []));
  const partnerProblems = problems();
  if (partner.length > 0) {
    const ids = partner.map(({ item }) => item.id);
    const inbound = await tdb.db.selectFrom('inbound_events').select(['delivery_id', 'status', 'result']).where('source', '=', 'webhook:generic').where('delivery_id', 'in', ids).execute();
    const records = countBy(await tdb.db.selectFrom('integration_events').select(['external_id as key', (eb) => eb.fn.countAll<string>().as('n')]).where('source', '=', 'webhook:generic').where('external_id', 'in', ids).groupBy('external_id').execute());
    const tasks = countBy(await tdb.db.selectFrom('tasks').select(['title as key', (eb) => eb.fn.countAll<string>().as('n')]).where('title', 'in', ids.map((id) => `Scale-out ${id}`)).groupBy('title').execute());
    const shas = partner.flatMap(({ item }) => (item.sha256 ? [item.sha256] : []));
    const evidence = countBy(await tdb.db.selectFrom('audit_log').select(['object_id as key', (eb) => eb.fn.countAll<string>().as('n')]).where('action', '=', 'evidence.record').where('outcome', '=', 'success').where('object_id', 'in', shas).groupBy('object_id').execute());
    // An alert's effect is its domain event's notification; the event id is in the delivery's result.
    const alertEvents = new Map(inbound.flatMap((row) => (typeof row.result?.event === 'string' ? [[row.delivery_id, row.result.event]] : [])));
    const eventIds = [...alertEvents.values()];
    const alerts = countBy(eventIds.length > 0 ? await tdb.db.selectFrom('notifications').select(['event_id as key', (eb) => eb.fn.countAll<string>().as('n')]).where('event_id', 'in', eventIds).groupBy('event_id').execute() : []);
    for (const { item, answer } of partner) {
      const statuses = inbound.filter((row) => row.delivery_id === item.id).map((row) => row.status);
      const effect = item.event === 'task.create' ? tasks.get(`Scale-out ${item.id}`) : item.event === 'evidence.attach' ? evidence.get(item.sha256!) : alerts.get(alertEvents.get(item.id) ?? '');
      const line = `${item.id} ${item.event}: effects ${effect ?? 0}, records ${records.get(item.id) ?? 0}, inbound [${statuses.join(',')}], answered ${answer.status} after ${trail(answer)}`;
      if (!effect) partnerProblems.missing.push(line);
      if ((effect ?? 0) > 1 || (records.get(item.id) ?? 0) > 1 || statuses.length > 1) partnerProblems.duplicated.push(line);
      if (statuses.join(',') !== 'processed') partnerProblems.unsettled.push(line);
    }
  }

  const slack = accepted.flatMap(({ item, answer }) => (item.kind === 'slack' ? [{ item, answer }] : []));
  const slackProblems = problems();
  if (slack.length > 0) {
    const triggers = slack.map(({ item }) => item.trigger);
    const decisions = countBy(await tdb.db.selectFrom('approval_decisions').select(['reason as key', (eb) => eb.fn.countAll<string>().as('n')]).where('reason', 'in', triggers).groupBy('reason').execute());
    const audits = countBy((await sql<{ key: string; n: number }>`select detail->>'reason' as key, count(*)::int as n from audit_log where action = 'task.approve' and detail->>'reason' = any(${triggers}) group by 1`.execute(tdb.db)).rows);
    const inbound = await tdb.db.selectFrom('inbound_events').select(['delivery_id', 'status']).where('source', '=', 'slack').where('delivery_id', 'in', triggers.map((trigger) => `command:${trigger}`)).execute();
    for (const { item, answer } of slack) {
      const statuses = inbound.filter((row) => row.delivery_id === `command:${item.trigger}`).map((row) => row.status);
      const decided = decisions.get(item.trigger) ?? 0;
      const audited = audits.get(item.trigger) ?? 0;
      const line = `${item.trigger} (approve ${item.approval.ref}): decisions ${decided}, audit rows ${audited}, inbound [${statuses.join(',')}], answered ${answer.status}${answer.body === '' ? ' (empty)' : ''} after ${trail(answer)}`;
      if (decided === 0) slackProblems.missing.push(line);
      if (decided > 1 || audited > 1 || statuses.length > 1) slackProblems.duplicated.push(line);
      if (statuses.join(',') !== 'processed') slackProblems.unsettled.push(line);
    }
  }
  return { notAccepted, partner: { accepted: partner.length, problems: partnerProblems }, slack: { accepted: slack.length, problems: slackProblems } };
}

/** A counter's value in a process's /metrics (0 when absent). */
async function scrape(base: string, series: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${series} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
