/**
 * Email out. The whole service with Slack on the fake and SMTP pointed at a local relay (smtp-server on
 * 127.0.0.1 that wants a login): when the fake Slack fails posts for good, the notifications arrive by email
 * instead; a routed email the relay refuses for now is retried; the SMTP password is never written. Then the
 * runbook's retry schedule, on the real job policy: a refused send comes back 10 minutes later, not sooner.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { createEmailNotifier } from '../../../src/connectors/email/notifier.ts';
import { type MailSender, createMailSender } from '../../../src/connectors/email/transport.ts';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { createControl } from '../../../src/domain/controls.ts';
import { addRule } from '../../../src/domain/routing.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { createUser } from '../../../src/domain/users.ts';
import { createEventSink, deliverEmailNotification } from '../../../src/jobs/domain-events.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { type JobRuntime, startJobRuntime } from '../../../src/jobs/runtime.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { type SlackService, startSlackService } from '../../support/slack-service.ts';
import { type SmtpSink, startSmtpSink } from './smtp-sink.ts';
import { localEvidencePipeline, tempPath } from '../../support/temp.ts';

const USERNAME = 'projectx-relay';
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

describe('email out, through the service', () => {
  let sink: SmtpSink;
  let env: SlackService;
  // No secrets given to the logger: what is not in the logs was never written, not scrubbed afterwards.
  const logs = captureLogs({ level: 'debug' });

  beforeAll(async () => {
    sink = await startSmtpSink({ username: USERNAME, password: PASSWORD });
    env = await startSlackService(logs.logger, {
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(sink.port),
      SMTP_USERNAME: USERNAME,
      SMTP_PASSWORD: PASSWORD,
      SMTP_FROM_ADDRESS: 'projectx@example.test',
      EMAIL_FALLBACK_ADDRESS: 'compliance-team@example.test',
      EVIDENCE_LOCAL_DIR: tempPath('email-out-evidence'),
    });
  });
  afterAll(async () => {
    await env?.close();
    await sink?.close();
  });

  const mailsAbout = (ref: string) => sink.messages.filter((sent) => sent.mail.subject?.includes(`${ref} `));
  const notifications = (subjectId: string) =>
    env.tdb.db.selectFrom('notifications').select(['id', 'event_type', 'surface', 'target_kind', 'target', 'status', 'error']).where('subject_id', '=', subjectId).orderBy('surface').orderBy('event_type').orderBy('target').execute();

  it('emails the fallback address, the approver and the assignee when Slack fails their notifications for good', async () => {
    const { fake } = env;
    fake.failAlways('chat.postMessage', { error: 'channel_not_found' });
    try {
      const annId = await env.linkedUser({ email: 'ann@example.test', name: 'Ann Approver', roles: ['approver'], slackId: 'WANN' });
      // Bob has no Slack account linked: his DM is refused before any post (no_slack_identity).
      const bob = await createUser(env.tdb.db, { email: 'bob@example.test', displayName: 'Bob Assignee', roles: ['contributor'] });
      if (!bob.ok) throw new Error(bob.refusal.message);
      const created = await createTask(env.service.domain, CLI_ACTOR, {
        type: 'approval',
        title: 'Grant vendor access',
        assigneeId: bob.value.id,
        policy: { approverUserIds: [annId] },
        external: [{ system: 'jira', id: 'SEC-7', url: 'https://jira.example.test/browse/SEC-7' }],
      });
      if (!created.ok) throw new Error(created.refusal.message);
      const task = created.value;

      // The approval request to #compliance-delivery (to the fallback address) and to Ann; the assignment to Bob.
      await expect.poll(() => mailsAbout(task.ref).length, { timeout: 20_000 }).toBe(3);
      const received = mailsAbout(task.ref)
        .map((sent) => ({ from: sent.from, to: sent.to, subject: sent.mail.subject, user: sent.user }))
        .sort((a, b) => a.to[0]!.localeCompare(b.to[0]!));
      expect(received).toEqual([
        { from: 'projectx@example.test', to: ['ann@example.test'], subject: `[ProjectX] ${task.ref} needs a decision: Grant vendor access`, user: USERNAME },
        { from: 'projectx@example.test', to: ['bob@example.test'], subject: `[ProjectX] ${task.ref} assigned: Grant vendor access`, user: USERNAME },
        { from: 'projectx@example.test', to: ['compliance-team@example.test'], subject: `[ProjectX] ${task.ref} needs a decision: Grant vendor access`, user: USERNAME },
      ]);
      const toAnn = mailsAbout(task.ref).find((sent) => sent.to[0] === 'ann@example.test')!.mail;
      expect(toAnn.text).toContain('Sent by email because it could not be delivered to you in Slack (slack_channel_not_found: Slack refused: channel_not_found).');
      expect(toAnn.text).toContain('Open SEC-7 in Jira: https://jira.example.test/browse/SEC-7');
      expect(toAnn.text!.split('Decide in Slack or Teams: ').length - 1).toBe(1);
      expect(toAnn.text).toContain(`Decide in Slack or Teams: /projectx approve ${task.ref} [reason] or /projectx deny ${task.ref} <reason>`);
      expect(toAnn.html).toContain('<a href="https://jira.example.test/browse/SEC-7">Open SEC-7 in Jira</a>');
      expect(toAnn.headers.get('auto-submitted')).toBe('auto-generated');
      const toBob = mailsAbout(task.ref).find((sent) => sent.to[0] === 'bob@example.test')!.mail;
      expect(toBob.text).toContain('could not be delivered to you in Slack (no_slack_identity: that user has no linked Slack account)');
      const toTeam = mailsAbout(task.ref).find((sent) => sent.to[0] === 'compliance-team@example.test')!.mail;
      expect(toTeam.text).toContain('Sent by email because it could not be delivered to channel compliance-delivery in Slack (slack_channel_not_found');

      await expect.poll(async () => (await notifications(task.id)).filter((row) => row.surface === 'email').map((row) => row.status), { timeout: 15_000 }).toEqual(['sent', 'sent', 'sent']);
      const rows = await notifications(task.id);
      expect(rows.map((row) => [row.surface, row.event_type, row.target_kind, row.target, row.status])).toEqual([
        ['email', 'task.approval_requested', 'email', 'compliance-team@example.test', 'sent'],
        ['email', 'task.approval_requested', 'approvers_dm', `user:${annId}`, 'sent'],
        ['email', 'task.assigned', 'assignee_dm', `user:${bob.value.id}`, 'sent'],
        ['slack', 'task.approval_requested', 'channel', 'compliance-delivery', 'undeliverable'],
        ['slack', 'task.approval_requested', 'approvers_dm', `user:${annId}`, 'undeliverable'],
        ['slack', 'task.assigned', 'assignee_dm', `user:${bob.value.id}`, 'undeliverable'],
      ]);
      expect(logs.lines().filter((line) => line.msg === 'notification falls back to email')).toHaveLength(3);
    } finally {
      fake.failAlways('chat.postMessage', null);
    }
  });

  it('retries a routed email the relay refused for now (a 451, then a refused login) until it is sent', async () => {
    await createControl(env.tdb.db, { id: 'EM-1', title: 'Email routed control' });
    await addRule(env.tdb.db, { eventPattern: 'task.created', surface: 'email', targetKind: 'email', target: 'auditor@example.test', controlId: 'EM-1' });
    sink.refuseNext('data', 451, 'Mailbox busy, try again later');
    sink.refuseNext('auth', 535, 'Authentication credentials invalid');
    const created = await createTask(env.service.domain, CLI_ACTOR, { type: 'review', title: 'Quarterly email check', controlIds: ['EM-1'] });
    if (!created.ok) throw new Error(created.refusal.message);
    const task = created.value;

    await expect.poll(() => sink.messages.filter((sent) => sent.to[0] === 'auditor@example.test' && sent.mail.subject?.includes(task.ref)).length, { timeout: 20_000 }).toBe(1);
    const row = await env.tdb.db.selectFrom('notifications').selectAll().where('subject_id', '=', task.id).where('surface', '=', 'email').executeTakeFirstOrThrow();
    await expect.poll(async () => (await env.tdb.db.selectFrom('notifications').select('status').where('id', '=', row.id).executeTakeFirstOrThrow()).status, { timeout: 15_000 }).toBe('sent');
    // The handler marks the row sent before it returns; pg-boss completes the job just after: wait for that.
    const job = async () => (await env.service.jobs.boss.findJobs(deliverEmailNotification.name, { data: { payload: { notificationId: row.id } } }))[0];
    await expect.poll(async () => (await job())?.state, { timeout: 15_000 }).toBe('completed');
    // fastJobs: the retry comes at once here; the 10-minute delay of the real policy is checked below.
    expect(await job()).toMatchObject({ state: 'completed', retryCount: 2 });
    expect(logs.text()).toContain('Mailbox busy, try again later');
    expect(logs.text()).toContain('Authentication credentials invalid');
    expect(sink.logins.filter((login) => !login.accepted)).toEqual([{ username: USERNAME, accepted: false }]);
  });

  it('never writes the SMTP password: not in logs, notifications or job records', async () => {
    expect(sink.logins.filter((login) => login.accepted).length).toBeGreaterThan(0); // it was used
    const variants = [PASSWORD, Buffer.from(PASSWORD).toString('base64'), Buffer.from(`\u0000${USERNAME}\u0000${PASSWORD}`).toString('base64')];
    const text = logs.text();
    for (const variant of variants) expect(text).not.toContain(variant);
    const stored = await sql<{ n: string }>`
      select (select count(*) from notifications where error like ${`%${PASSWORD}%`} or message::text like ${`%${PASSWORD}%`})
           + (select count(*) from projectx_jobs.job where data::text like ${`%${PASSWORD}%`} or output::text like ${`%${PASSWORD}%`}) as n`.execute(env.tdb.db);
    expect(stored.rows[0]?.n).toBe('0');
  });
});

describe('email out: the retry schedule of the runbook', () => {
  let fixture: DomainFixture;
  let sink: SmtpSink;
  let mail: MailSender;
  let workers: JobRuntime;
  const logs = captureLogs();

  beforeAll(async () => {
    fixture = await domainFixture();
    sink = await startSmtpSink();
    const config = loadConfig({ SMTP_HOST: '127.0.0.1', SMTP_PORT: String(sink.port), SMTP_FROM_ADDRESS: 'projectx@example.test' });
    if (!config.ok) throw new Error(config.problems.join('; '));
    mail = createMailSender(config.config, logs.logger)!;
    // The real policy of the email delivery job (only polling made fast), so its retry is really deferred.
    const definition = { ...deliverEmailNotification, policy: { ...deliverEmailNotification.policy, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } };
    workers = await startJobRuntime({ connectionString: fixture.tdb.url, definitions: [definition], logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false });
    const deps: JobDeps = {
      db: fixture.tdb.db,
      logger: logs.logger,
      clock: fixture.clock,
      metrics: createMetrics({ defaultMetrics: false }),
      config: config.config,
      jobs: workers,
      events: createEventSink(workers),
      notifiers: [createEmailNotifier(fixture.tdb.db, mail)],
      rerenderers: [],
      evidence: localEvidencePipeline('email-retry-evidence'),
      connectors: [],
      integrations: () => Promise.resolve([]),
    };
    await workers.work(deps);
  });
  afterAll(async () => {
    await workers?.stop(2000);
    mail?.close();
    await sink?.close();
    await fixture?.close();
  });

  it('declares retries every 10 minutes without backoff, six of them, then the dead-letter queue', async () => {
    const queue = await fixture.jobs.boss.getQueue(deliverEmailNotification.name);
    expect(queue).toMatchObject({ retryDelay: 600, retryBackoff: false, retryLimit: 6, deadLetter: 'notify.deliver.email.dead' });
  });

  it('puts a send the relay refused for now back 10 minutes later, the notification failed meanwhile', async () => {
    sink.refuseNext('data', 451, 'Greylisted, try again in 5 minutes');
    const row = await fixture.tdb.db
      .insertInto('notifications')
      .values({ event_id: 'evt-retry-1', event_type: 'task.created', surface: 'email', target_kind: 'email', target: 'auditor@example.test', message: JSON.stringify({ text: 'T-1 created', blocks: [] }) })
      .returning('id')
      .executeTakeFirstOrThrow();
    const jobId = await fixture.jobs.enqueue(deliverEmailNotification, { notificationId: row.id });

    await expect.poll(async () => (await fixture.jobs.boss.getJobById(deliverEmailNotification.name, jobId!))?.state, { timeout: 15_000 }).toBe('retry');
    const job = (await fixture.jobs.boss.getJobById(deliverEmailNotification.name, jobId!))!;
    const now = (await sql<{ now: Date }>`select now()`.execute(fixture.tdb.db)).rows[0]!.now;
    const waitSeconds = (job.startAfter.getTime() - now.getTime()) / 1000;
    expect(waitSeconds).toBeGreaterThan(570);
    expect(waitSeconds).toBeLessThanOrEqual(600);
    expect(job).toMatchObject({ retryCount: 0, retryDelay: 600, retryBackoff: false });
    expect(await fixture.tdb.db.selectFrom('notifications').select(['status', 'error']).where('id', '=', row.id).executeTakeFirstOrThrow()).toEqual({
      status: 'failed',
      error: 'smtp_451: the mail relay answered: 451 Greylisted, try again in 5 minutes',
    });
    expect(sink.messages).toHaveLength(0);
  });
});
