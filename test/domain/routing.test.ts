import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Notifier } from '../../src/bot/notifier.ts';
import { loadConfig } from '../../src/config.ts';
import { type DomainEvent, type DomainEventType, newEvent } from '../../src/domain/events.ts';
import { ok, refuse } from '../../src/domain/result.ts';
import { type RoutedTarget, addRule, removeRule, routeEvent, ruleMatches } from '../../src/domain/routing.ts';
import { createEventSink, routeDomainEvent } from '../../src/jobs/domain-events.ts';
import { serviceConnectors, serviceJobs } from '../support/jobs.ts';
import type { JobDeps } from '../../src/jobs/job-deps.ts';
import { type JobRuntime, startJobRuntime } from '../../src/jobs/runtime.ts';
import { createMetrics } from '../../src/metrics.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { type CapturedLogs, captureLogs } from '../support/logs.ts';
import { localEvidencePipeline } from '../support/temp.ts';

const event = (type: DomainEventType, extra: Partial<Omit<DomainEvent, 'id' | 'occurredAt' | 'type'>> = {}) =>
  newEvent({ type, subject: { kind: 'incident', id: '7', label: 'INC0007' }, summary: `${type} happened`, ...extra }, new Date('2026-11-22T09:00:00Z'));
const sorted = (targets: RoutedTarget[]) => [...targets].sort((a, b) => `${a.surface}|${a.kind}|${a.target}`.localeCompare(`${b.surface}|${b.kind}|${b.target}`));
const CHANNEL = (target: string): RoutedTarget => ({ surface: 'slack', kind: 'channel', target });

describe('ruleMatches', () => {
  const rule = (over: Partial<{ event_pattern: string; max_priority: number | null; control_id: string | null; enabled: boolean }> = {}) => ({
    event_pattern: 'incident.created',
    max_priority: null,
    control_id: null,
    enabled: true,
    ...over,
  });

  it('matches an exact type, or a prefix ending in *', () => {
    expect(ruleMatches(rule(), event('incident.created'))).toBe(true);
    expect(ruleMatches(rule(), event('incident.updated'))).toBe(false);
    expect(ruleMatches(rule({ event_pattern: 'incident.*' }), event('incident.acknowledged'))).toBe(true);
    expect(ruleMatches(rule({ event_pattern: 'incident.*' }), event('task.created'))).toBe(false);
    expect(ruleMatches(rule({ event_pattern: '*' }), event('evidence.recorded'))).toBe(true);
  });

  it('filters by highest priority (a missing priority does not pass), by control, and skips disabled rules', () => {
    const p1Only = rule({ event_pattern: 'incident.*', max_priority: 1 });
    expect(ruleMatches(p1Only, event('incident.created', { priority: 1 }))).toBe(true);
    expect(ruleMatches(p1Only, event('incident.created', { priority: 2 }))).toBe(false);
    expect(ruleMatches(p1Only, event('incident.created'))).toBe(false);
    const forAc2 = rule({ event_pattern: 'task.*', control_id: 'AC-2' });
    expect(ruleMatches(forAc2, event('task.created', { controlIds: ['AC-1', 'AC-2'] }))).toBe(true);
    expect(ruleMatches(forAc2, event('task.created', { controlIds: ['AC-3'] }))).toBe(false);
    expect(ruleMatches(forAc2, event('task.created'))).toBe(false);
    expect(ruleMatches(rule({ enabled: false }), event('incident.created'))).toBe(false);
  });
});

describe('routeEvent with the seeded default rules', () => {
  let fixture: DomainFixture;
  beforeAll(async () => {
    fixture = await domainFixture();
  });
  afterAll(() => fixture.close());
  const route = (e: DomainEvent) => routeEvent(fixture.tdb.db, e).then(sorted);

  it('sends new P1/P2 incidents to alerts-servicenow, approval requests and decisions to compliance-delivery, assignments and requests by DM', async () => {
    expect(await route(event('incident.created', { priority: 1 }))).toEqual(sorted([CHANNEL('alerts-servicenow')]));
    expect(await route(event('incident.created', { priority: 3 }))).toEqual([]);
    expect(await route(event('incident.updated', { priority: 1 }))).toEqual([]);
    const task = { kind: 'task' as const, id: '42', label: 'T-42' };
    expect(await route(event('task.assigned', { subject: task, assigneeId: 'u-1' }))).toEqual([{ surface: 'slack', kind: 'assignee_dm', target: 'user:u-1' }]);
    expect(await route(event('task.assigned', { subject: task }))).toEqual([]);
    expect(await route(event('task.created', { subject: task }))).toEqual([]);
    expect(await route(event('task.decided', { subject: task }))).toEqual([CHANNEL('compliance-delivery')]);
    expect(await route(event('task.approval_requested', { subject: task, approverIds: ['u-2', 'u-3', 'u-2'] }))).toEqual(sorted([
      { surface: 'slack', kind: 'approvers_dm', target: 'user:u-2' },
      { surface: 'slack', kind: 'approvers_dm', target: 'user:u-3' },
      CHANNEL('compliance-delivery'),
    ]));
  });

  it('de-duplicates a target that several rules route to, and stops routing to a removed rule', async () => {
    const duplicate = await addRule(fixture.tdb.db, { eventPattern: 'task.approval_requested', surface: 'slack', targetKind: 'channel', target: 'compliance-delivery' });
    const warRoom = await addRule(fixture.tdb.db, { eventPattern: 'incident.*', surface: 'teams', targetKind: 'channel', target: 'sev1-war-room', maxPriority: 1 });
    if (!duplicate.ok || !warRoom.ok) throw new Error('addRule refused a valid rule');
    expect(await route(event('task.approval_requested', { approverIds: ['u-9'] }))).toEqual(sorted([CHANNEL('compliance-delivery'), { surface: 'slack', kind: 'approvers_dm', target: 'user:u-9' }]));
    expect(await route(event('incident.updated', { priority: 1 }))).toEqual([{ surface: 'teams', kind: 'channel', target: 'sev1-war-room' }]);
    expect(await route(event('incident.updated', { priority: 3 }))).toEqual([]);

    expect(await removeRule(fixture.tdb.db, warRoom.value.id)).toBe(true);
    expect(await removeRule(fixture.tdb.db, warRoom.value.id)).toBe(false);
    expect(await removeRule(fixture.tdb.db, duplicate.value.id)).toBe(true);
    expect(await route(event('incident.updated', { priority: 1 }))).toEqual([]);
  });

  it('validates rules: the pattern, and a target for channel and email rules', async () => {
    for (const eventPattern of ['Incident.*', 'incident.', 'incident*', '*.created', '', 'task.assigned; drop table']) {
      expect(await addRule(fixture.tdb.db, { eventPattern, surface: 'slack', targetKind: 'assignee_dm' }), eventPattern).toMatchObject({ ok: false, refusal: { code: 'invalid_pattern' } });
    }
    expect(await addRule(fixture.tdb.db, { eventPattern: 'incident.*', surface: 'slack', targetKind: 'channel' })).toMatchObject({ ok: false, refusal: { code: 'missing_target' } });
    expect(await addRule(fixture.tdb.db, { eventPattern: 'incident.*', surface: 'email', targetKind: 'email', target: '' })).toMatchObject({ ok: false, refusal: { code: 'missing_target' } });
    const dm = await addRule(fixture.tdb.db, { eventPattern: 'task.decided', surface: 'teams', targetKind: 'assignee_dm', controlId: 'ac-2' });
    expect(dm).toMatchObject({ ok: true, value: { event_pattern: 'task.decided', target: null, control_id: 'AC-2', enabled: true } });
    if (dm.ok) await removeRule(fixture.tdb.db, dm.value.id);
  });
});

/** Workers for every job on the fixture's database, delivering through `notifiers`. */
async function startWorkers(fixture: DomainFixture, notifiers: Notifier[], logs: CapturedLogs): Promise<JobRuntime> {
  const config = loadConfig({});
  if (!config.ok) throw new Error(config.problems.join('; '));
  // The real jobs, with retries due at once and polling every 0.5 s, so a retried delivery takes no 10-20 s.
  const fast = serviceJobs.map((job) => ({ ...job, policy: { ...job.policy, retryDelaySeconds: 0, retryBackoff: false, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } }));
  const runtime = await startJobRuntime({ connectionString: fixture.tdb.url, definitions: fast, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), supervise: true });
  const deps: JobDeps = { db: fixture.tdb.db, logger: logs.logger, clock: fixture.clock, metrics: createMetrics({ defaultMetrics: false }), config: config.config, jobs: runtime, events: createEventSink(runtime), notifiers, rerenderers: [], evidence: localEvidencePipeline('routing-evidence'), connectors: serviceConnectors, integrations: () => Promise.resolve([]) };
  await runtime.work(deps);
  return runtime;
}

/** The notification rows of every event about a task, by event type then target. */
async function notificationsFor(fixture: DomainFixture, taskId: string) {
  const jobs = await fixture.jobs.boss.findJobs<{ payload: DomainEvent }>(routeDomainEvent.name, { data: { payload: { subject: { id: taskId } } } });
  const eventIds = [...new Set(jobs.map((job) => job.data.payload.id))];
  if (eventIds.length === 0) return [];
  return fixture.tdb.db.selectFrom('notifications').selectAll().where('event_id', 'in', eventIds).orderBy('event_type').orderBy('target').execute();
}

const allIn = (status: string, count: number) => (rows: { status: string }[]) => {
  expect(rows.map((row) => row.status)).toEqual(Array.from({ length: count }, () => status));
};

describe('the notification outbox, end to end', () => {
  let fixture: DomainFixture;
  let workers: JobRuntime;
  const logs = captureLogs();
  const calls: Parameters<Notifier['deliver']>[0][] = [];
  /** Targets whose first delivery is refused (as if rate-limited). */
  const flaky = new Set<string>();
  const slack: Notifier = {
    surface: 'slack',
    deliver(input) {
      calls.push(input);
      const attempt = calls.filter((call) => call.notificationId === input.notificationId).length;
      return Promise.resolve(attempt === 1 && flaky.has(input.target) ? refuse('rate_limited', 'slack asked us to slow down') : ok({ ref: `ts-${calls.length}` }));
    },
  };
  const callsFor = (notificationId: string) => calls.filter((call) => call.notificationId === notificationId);

  beforeAll(async () => {
    fixture = await domainFixture();
    workers = await startWorkers(fixture, [slack], logs);
  });
  afterAll(async () => {
    await workers?.stop(2000);
    await fixture?.close();
  });

  const approvalTask = async (title = 'Review access for Q4') => {
    const assignee = await fixture.user();
    const approver = await fixture.user({ roles: ['approver'] });
    const task = await fixture.task({ type: 'approval', assigneeId: assignee.id, title, policy: { approverUserIds: [approver.id] } });
    return { assignee, approver, task };
  };

  it('notifies the team channel, the approver and the assignee of a new approval task, each target exactly once', async () => {
    const { assignee, approver, task } = await approvalTask();
    await vi.waitFor(async () => allIn('sent', 3)(await notificationsFor(fixture, task.id)), { timeout: 15_000, interval: 100 });

    const rows = await notificationsFor(fixture, task.id);
    expect(rows.map((row) => [row.event_type, row.target_kind, row.target])).toEqual([
      ['task.approval_requested', 'channel', 'compliance-delivery'],
      ['task.approval_requested', 'approvers_dm', `user:${approver.id}`],
      ['task.assigned', 'assignee_dm', `user:${assignee.id}`],
    ]);
    for (const row of rows) {
      expect(callsFor(row.id)).toEqual([{ notificationId: row.id, kind: row.target_kind, target: row.target, message: row.message, subject: { kind: 'task', id: task.id } }]);
      expect(row).toMatchObject({ error: null, sent_at: fixture.clock.now() });
      expect(JSON.stringify(row.message)).toContain(`${task.ref} `);
    }
  });

  it('retries a refused delivery, which ends sent after the second attempt', async () => {
    const assignee = await fixture.user();
    flaky.add(`user:${assignee.id}`);
    const task = await fixture.task({ assigneeId: assignee.id });
    const dm = async () => (await notificationsFor(fixture, task.id)).find((row) => row.target === `user:${assignee.id}`);

    // The first attempt is refused (the row is 'failed' in between, too briefly to wait for); the job retries.
    await vi.waitFor(async () => expect(await dm()).toMatchObject({ status: 'sent', error: null }), { timeout: 15_000, interval: 100 });
    const row = await dm();
    expect(callsFor(row!.id)).toHaveLength(2);
    const [job] = await workers.boss.findJobs('notify.deliver', { data: { payload: { notificationId: row!.id } } });
    expect(job).toMatchObject({ state: 'completed', retryCount: 1 });
  });

  it('routes the same event again without creating or delivering duplicate notifications', async () => {
    const { task } = await approvalTask('Rerouted');
    await vi.waitFor(async () => allIn('sent', 3)(await notificationsFor(fixture, task.id)), { timeout: 15_000, interval: 100 });
    const before = await notificationsFor(fixture, task.id);

    const [original] = await fixture.jobs.boss.findJobs<{ payload: DomainEvent }>(routeDomainEvent.name, { data: { payload: { subject: { id: task.id }, type: 'task.approval_requested' } } });
    const assigned = original!.data.payload;
    await fixture.jobs.enqueue(routeDomainEvent, assigned);
    await fixture.jobs.enqueue(routeDomainEvent, assigned);
    const runs = () => fixture.jobs.boss.findJobs(routeDomainEvent.name, { data: { payload: { id: assigned.id } } });
    await vi.waitFor(async () => expect((await runs()).map((job) => job.state)).toEqual(['completed', 'completed', 'completed']), { timeout: 15_000, interval: 100 });

    const reruns = (await runs()).filter((job) => job.id !== assigned.id);
    expect(reruns.map((job) => job.output)).toEqual([{ targets: 2, created: 0 }, { targets: 2, created: 0 }]);
    expect(await notificationsFor(fixture, task.id)).toEqual(before);
    for (const row of before) expect(callsFor(row.id)).toHaveLength(1);
  });
});

describe('the notification outbox with no notifier for the surface', () => {
  let fixture: DomainFixture;
  let workers: JobRuntime;
  const logs = captureLogs();
  beforeAll(async () => {
    fixture = await domainFixture();
    workers = await startWorkers(fixture, [], logs);
  });
  afterAll(async () => {
    await workers?.stop(2000);
    await fixture?.close();
  });

  it('leaves each notification undeliverable, naming the surface, and warns', async () => {
    const assignee = await fixture.user();
    const approver = await fixture.user({ roles: ['approver'] });
    const task = await fixture.task({ type: 'approval', assigneeId: assignee.id, policy: { approverUserIds: [approver.id] } });
    await vi.waitFor(async () => allIn('undeliverable', 3)(await notificationsFor(fixture, task.id)), { timeout: 15_000, interval: 100 });
    for (const row of await notificationsFor(fixture, task.id)) expect(row).toMatchObject({ error: 'no slack notifier is configured', sent_at: null });
    expect(logs.lines().filter((line) => line.msg === 'notification undeliverable: surface not configured')).toHaveLength(3);
  });
});
