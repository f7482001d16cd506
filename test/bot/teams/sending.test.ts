/**
 * Sending to Teams in the running service, against the fake Bot Connector: a notification routed to a stored
 * channel arrives once; a 429 is waited out through the queue without a second post; a 403 (the bot uninstalled
 * or blocked) marks the conversation inactive and the notification goes by email instead, as Slack failures do;
 * a lost response is never posted again. And the sender's pacing, within Teams' per-conversation limits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEAMS_PACE, TeamsSender } from '../../../src/bot/teams/sender.ts';
import { toAdaptiveCard } from '../../../src/bot/teams/cards.ts';
import { CLI_ACTOR } from '../../../src/domain/actor.ts';
import { addRule } from '../../../src/domain/routing.ts';
import { createTask } from '../../../src/domain/tasks.ts';
import { type SmtpSink, startSmtpSink } from '../../connectors/email/smtp-sink.ts';
import { manualClock } from '../../support/clock.ts';
import { captureLogs } from '../../support/logs.ts';
import { type TeamsService, startTeamsService } from '../../support/teams-service.ts';

describe('Teams sending: routed notifications, rate limits, blocked conversations, lost responses', () => {
  let env: TeamsService;
  let sink: SmtpSink;
  const logs = captureLogs({ level: 'info' });

  beforeAll(async () => {
    sink = await startSmtpSink();
    env = await startTeamsService(logs.logger, { env: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(sink.port), SMTP_FROM_ADDRESS: 'projectx@example.test', EMAIL_FALLBACK_ADDRESS: 'compliance@example.test' } });
  });
  afterAll(async () => {
    await env?.close();
    await sink?.close();
  });

  /** A channel with the bot in it, where task.* notifications are routed. */
  const routedChannel = async (name: string) => {
    const channel = await env.installInChannel(name);
    await expect.poll(() => env.posted(channel).length, { timeout: 20_000 }).toBe(1); // the welcome card
    const rule = await addRule(env.tdb.db, { eventPattern: 'task.created', surface: 'teams', targetKind: 'channel', target: channel });
    if (!rule.ok) throw new Error(rule.refusal.message);
    return channel;
  };
  const newTask = async (title: string) => {
    const task = await createTask(env.service.domain, CLI_ACTOR, { type: 'remediation', title });
    if (!task.ok) throw new Error(task.refusal.message);
    return task.value;
  };
  /** The notification about a task to one target (every channel of these tests gets task.created). */
  const notification = (taskId: string, target: string) => env.tdb.db.selectFrom('notifications').select(['status', 'error']).where('subject_id', '=', taskId).where('surface', '=', 'teams').where('target', '=', target).executeTakeFirst();

  it('delivers a domain event to a stored channel proactively, once; a 429 is waited out without a second post', async () => {
    const channel = await routedChannel('Remediation');
    const first = await newTask('Patch the VPN appliance');
    await expect.poll(async () => (await notification(first.id, channel))?.status, { timeout: 20_000 }).toBe('sent');
    expect(env.posted(channel).filter((post) => post.body.text?.includes(first.ref))).toHaveLength(1);

    // Teams answers 429 (Retry-After: 1) to the next send: the job comes back then; one post in the end.
    env.connector.failNext(1, { status: 429, retryAfterSeconds: 1 }, channel);
    const second = await newTask('Rotate the database password');
    await expect.poll(async () => (await notification(second.id, channel))?.status, { timeout: 20_000 }).toBe('sent');
    const attempts = env.connector.calls.filter((call) => call.method === 'POST' && call.path.startsWith(`/v3/conversations/${channel}/activities`) && JSON.stringify(call.body).includes(second.ref));
    expect(attempts.map((call) => call.status)).toEqual([429, 201]);
    expect(env.posted(channel).filter((post) => post.body.text?.includes(second.ref))).toHaveLength(1);
  });

  it('a 502 from Teams fails the delivery job (nothing swallows it), and its retry through the queue posts it once', async () => {
    const channel = await routedChannel('Flaky');
    env.connector.failNext(1, { status: 502 }, channel);
    env.connector.failNext(1, { status: 412 }, channel);
    const task = await newTask('Archive the old audit logs');
    await expect.poll(async () => (await notification(task.id, channel))?.status, { timeout: 20_000 }).toBe('sent');
    const attempts = env.connector.calls.filter((call) => call.method === 'POST' && call.path.startsWith(`/v3/conversations/${channel}/activities`) && JSON.stringify(call.body).includes(task.ref));
    expect(attempts.map((call) => call.status)).toEqual([502, 412, 201]);
    expect(env.posted(channel).filter((post) => post.body.text?.includes(task.ref))).toHaveLength(1);
    // Each failed attempt failed its pg-boss job (retried by the queue), rather than completing it quietly.
    const metrics = await (await fetch(`${env.service.http.url}/metrics`)).text();
    expect(Number(/job_runs_total\{queue="notify.deliver",outcome="failed"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(2);
  });

  it('a 403 marks the conversation inactive and the notification goes by email; later ones go by email at once', async () => {
    const channel = await routedChannel('Uninstalled');
    env.connector.failNext(1, { status: 403 }, channel);
    const task = await newTask('Review firewall rules');
    await expect.poll(async () => (await notification(task.id, channel))?.status, { timeout: 20_000 }).toBe('undeliverable');
    expect((await notification(task.id, channel))?.error).toMatch(/teams_conversation_blocked/);
    expect(await env.tdb.db.selectFrom('teams_conversations').select(['active', 'inactive_reason']).where('conversation_id', '=', channel).executeTakeFirst()).toEqual({ active: false, inactive_reason: 'Teams answered 403 MessageWritesBlocked' });
    await expect.poll(() => sink.messages.filter((message) => message.mail.subject?.includes(task.ref) || message.mail.text?.includes(task.ref)).length, { timeout: 20_000 }).toBe(1);
    const email = sink.messages.find((message) => message.mail.text?.includes(task.ref))!;
    expect(email.to).toEqual(['compliance@example.test']);
    expect(email.mail.text).toMatch(/could not be delivered to channel .* in Teams/);

    const later = await newTask('Review VPN rules');
    await expect.poll(async () => (await notification(later.id, channel))?.error, { timeout: 20_000 }).toMatch(/teams_conversation_inactive/);
    expect(env.posted(channel).filter((post) => post.body.text?.includes(later.ref))).toEqual([]);
  });

  it('a send whose response is lost is not posted again: at most once, and the notification goes by email', async () => {
    const channel = await routedChannel('Lossy');
    env.connector.failNext(1, { lost: true }, channel);
    const task = await newTask('Renew the TLS certificate');
    await expect.poll(async () => (await notification(task.id, channel))?.status, { timeout: 20_000 }).toBe('undeliverable');
    expect((await notification(task.id, channel))?.error).toMatch(/teams_outcome_unknown/);
    // It did arrive, once; Teams has no way to look it up, so it is never sent a second time.
    expect(env.posted(channel).filter((post) => post.body.text?.includes(task.ref))).toHaveLength(1);
    expect(await env.tdb.db.selectFrom('teams_messages').select('status').where('conversation_id', '=', channel).where('subject_id', '=', task.id).execute()).toEqual([{ status: 'unknown' }]);
  });

  it('paces each conversation within 7 a second and 60 in 30 seconds, and says how long to wait', async () => {
    const conversation = await routedChannel('Paced');
    // After the welcome card's send (at the real time), so that only these sends are in the windows.
    const clock = manualClock(new Date(Date.now() + 3_600_000));
    const posts: string[] = [];
    const sender = new TeamsSender({ db: env.tdb.db, clock, logger: logs.logger, adapter: { send: () => Promise.resolve({ id: `1:${posts.push('x')}` }), update: () => Promise.resolve() } });
    const card = toAdaptiveCard({ text: 'x', blocks: [] });
    const post = (key: string) => sender.post({ key, conversationId: conversation, text: 'x', card });
    expect(TEAMS_PACE).toEqual([{ windowMs: 1000, max: 7 }, { windowMs: 30_000, max: 60 }]);
    for (let i = 0; i < 7; i++) expect((await post(`a${i}`)).ok).toBe(true);
    expect(await post('a7')).toEqual({ ok: false, refusal: expect.objectContaining({ code: 'paced', retryAfterSeconds: 1 }) });
    // 60 in 30 s: a second at a time, 7 per second until 60, then wait until the first leaves the window.
    let sent = 7;
    while (sent < 60) {
      clock.advance(1000);
      for (let i = 0; i < 7 && sent < 60; i++, sent++) expect((await post(`b${sent}`)).ok).toBe(true);
    }
    clock.advance(1000);
    const refused = await post('c');
    expect(refused).toEqual({ ok: false, refusal: expect.objectContaining({ code: 'paced' }) });
    expect(refused.ok ? 0 : refused.refusal.retryAfterSeconds).toBeGreaterThan(20);
    clock.advance(30_000);
    expect((await post('c')).ok).toBe(true);
    expect(posts).toHaveLength(61);
  });
});
