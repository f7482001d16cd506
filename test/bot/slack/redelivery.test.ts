/**
 * Nothing a Slack request carries is left behind: response URLs are kept encrypted (never in the stored body),
 * a delivery left 'received' by a process that stopped is redelivered by the sweep (and its command's answer
 * posted to its response URL), a delivery that never gets through ends failed in `projectx slack dead list`,
 * from where `replay` hands it back; and an accepted evidence form is staged with its delivery in one
 * transaction.
 */
import type { Hono } from 'hono';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ATTEMPTS, type HonoSlackReceiver } from '../../../src/bot/slack/receiver.ts';
import { slackVerb } from '../../../src/bot/slack/cli.ts';
import { sealBody, unsealBody } from '../../../src/bot/slack/sealing.ts';
import { Keyring, isEnvelope } from '../../../src/connectors/sdk/crypto.ts';
import { decide } from '../../../src/domain/approvals.ts';
import { linkIdentity } from '../../../src/domain/users.ts';
import { runWithContext } from '../../../src/logger.ts';
import type { Metrics } from '../../../src/metrics.ts';
import { type FakeSlack, startFakeSlack } from '../../fakes/slack/server.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { evidenceSubmissionBody, signedRequest, slackWebApp, slashCommandBody } from '../../support/slack.ts';

const keyring = new Keyring([{ id: 'k1', key: Buffer.alloc(32, 7) }]);

describe('Slack deliveries at rest and after a crash', () => {
  let fx: DomainFixture;
  let fake: FakeSlack;
  let web: Hono;
  let receiver: HonoSlackReceiver;
  let metrics: Metrics;
  const logs = captureLogs({ level: 'warn' });

  beforeAll(async () => {
    fx = await domainFixture();
    fx.clock.set(new Date());
    fake = await startFakeSlack();
    const app = slackWebApp(fx, { logger: logs.logger, keyring, env: { SLACK_API_URL: fake.apiUrl, SLACK_REDELIVER_AFTER_SECONDS: '30' } });
    ({ web, metrics } = app);
    receiver = app.surface.receiver;
  });
  afterAll(async () => {
    await fake?.close();
    await fx?.close();
  });

  const post = (body: string) => web.request('/slack/events', signedRequest(body, { now: fx.clock.now() }));
  const linked = async (roles: Parameters<DomainFixture['user']>[0], slackUser: string) => {
    const user = await fx.user(roles);
    await linkIdentity(fx.tdb.db, user.id, { surface: 'slack', tenant: 'T111', externalId: slackUser }, 'test');
    return user;
  };
  const row = (deliveryId: string) => fx.tdb.db.selectFrom('inbound_events').selectAll().where('delivery_id', '=', deliveryId).executeTakeFirstOrThrow();
  /** What a process that stopped right after recording leaves: the delivery 'received', as the receiver stores it. */
  const leftByADeadProcess = async (deliveryId: string, body: Record<string, unknown>, kind: string, attempts = 1) => {
    const sealed = sealBody(body, deliveryId, keyring);
    const received = new Date(fx.clock.now().getTime() - 31_000);
    return (await fx.tdb.db.insertInto('inbound_events').values({ source: 'slack', delivery_id: deliveryId, kind, body: sealed.body, sealed: sealed.sealed, headers: '{}', received_at: received, attempts }).returning('id').executeTakeFirstOrThrow()).id;
  };

  it('keeps a command\'s response_url only encrypted: the stored body has none, the envelope opens to it', async () => {
    await linked({ roles: ['viewer'] }, 'USEAL');
    const responseUrl = fake.responseUrl();
    const res = await post(slashCommandBody({ text: 'help', user_id: 'USEAL', team_id: 'T111', trigger_id: 'trg-sealed', response_url: responseUrl }));
    expect(res.status).toBe(200);
    await receiver.flush();
    const stored = await row('command:trg-sealed');
    const path = new URL(responseUrl).pathname;
    expect(stored.body.toString('utf8')).not.toContain(path);
    expect(stored.body.toString('utf8')).not.toContain('response_url');
    expect(JSON.stringify(stored.sealed)).not.toContain(path);
    expect(isEnvelope(stored.sealed)).toBe(true);
    expect(unsealBody(stored.body, stored.sealed, stored.delivery_id, keyring)).toMatchObject({ command: '/projectx', text: 'help', response_url: responseUrl });
    // Bound to its delivery: moved to another row, it does not open.
    expect(unsealBody(stored.body, stored.sealed, 'command:another', keyring).response_url).toBeUndefined();
    // A body recorded as Slack sent it, before sealing, still reads (for a replay).
    expect(unsealBody(Buffer.from('payload=%7B%22type%22%3A%22block_actions%22%7D'), null, 'action:x', keyring)).toEqual({ type: 'block_actions' });
  });

  it('redelivers a command its process left unprocessed, once, and posts the answer to its response_url', async () => {
    await linked({ roles: ['viewer'] }, 'UCRASH');
    const responseUrl = fake.responseUrl();
    const body = Object.fromEntries(new URLSearchParams(slashCommandBody({ text: 'help', user_id: 'UCRASH', team_id: 'T111', trigger_id: 'trg-crashed', response_url: responseUrl })));
    const id = await leftByADeadProcess('command:trg-crashed', body, 'slash_command');
    // Not yet: a delivery younger than SLACK_REDELIVER_AFTER_SECONDS may still be in its process's hands.
    const young = await leftByADeadProcess('command:trg-young', { ...body, trigger_id: 'trg-young' }, 'slash_command');
    await fx.tdb.db.updateTable('inbound_events').set({ received_at: fx.clock.now() }).where('id', '=', young).execute();

    const [first, second] = await Promise.all([receiver.redeliver(), receiver.redeliver()]);
    expect(first + second).toBe(1);
    await receiver.flush();
    await expect.poll(async () => (await row('command:trg-crashed')).status, { timeout: 5000 }).toBe('processed');
    expect((await row('command:trg-crashed')).attempts).toBe(2);
    expect((await row('command:trg-young')).status).toBe('received');
    await expect.poll(() => fake.responses(responseUrl).length, { timeout: 5000 }).toBe(1);
    expect(fake.responses(responseUrl)[0]).toMatchObject({ response_type: 'ephemeral', text: expect.stringContaining('ProjectX') });
    expect(await metrics.registry.getSingleMetricAsString('slack_redeliveries_total')).toContain('outcome="redelivered"} 1');
    expect(id).toBeTruthy();
  });

  it('marks processed, without running it again, a command whose process stopped after its effect committed', async () => {
    const approver = await linked({ roles: ['approver'] }, 'UDONE');
    const task = await fx.task({ type: 'approval', title: 'Decided before the crash', policy: { approverUserIds: [approver.id] } });
    const responseUrl = fake.responseUrl();
    const body = Object.fromEntries(new URLSearchParams(slashCommandBody({ text: `approve ${task.ref}`, user_id: 'UDONE', team_id: 'T111', trigger_id: 'trg-done', response_url: responseUrl })));
    // The request's process recorded the command, decided the task (audited under the request's correlation id)
    // and stopped before it marked the delivery processed.
    const id = await leftByADeadProcess('command:trg-done', body, 'slash_command');
    await fx.tdb.db.updateTable('inbound_events').set({ correlation_id: 'corr-done' }).where('id', '=', id).execute();
    const decided = await runWithContext({ correlationId: 'corr-done' }, () => decide(fx.deps, { surface: 'slack', user: approver, identity: { surface: 'slack', tenant: 'T111', externalId: 'UDONE' } }, task.id, 'approve'));
    expect(decided.ok).toBe(true);
    const before = await metrics.registry.getSingleMetricAsString('slack_redeliveries_total');
    const taken = await receiver.redeliver();
    expect(taken).toBe(0);
    expect(await row('command:trg-done')).toMatchObject({ status: 'processed', attempts: 2 });
    // No second attempt at the decision: no refusal audited, nothing posted.
    const audited = await fx.tdb.db.selectFrom('audit_log').select(['outcome']).where('action', '=', 'task.approve').where('object_id', '=', task.ref).execute();
    expect(audited).toEqual([{ outcome: 'success' }]);
    expect(fake.responses(responseUrl)).toEqual([]);
    expect(before).not.toContain('outcome="already_done"');
    expect(await metrics.registry.getSingleMetricAsString('slack_redeliveries_total')).toContain('outcome="already_done"} 1');
  });

  it('records a command with its request\'s correlation id', async () => {
    await linked({ roles: ['viewer'] }, 'UCORR');
    const res = await post(slashCommandBody({ text: 'help', user_id: 'UCORR', team_id: 'T111', trigger_id: 'trg-corr', response_url: fake.responseUrl() }));
    expect(res.status).toBe(200);
    await receiver.flush();
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect((await row('command:trg-corr')).correlation_id).toBe(res.headers.get('x-request-id'));
  });

  it('gives up after its attempts, lists it in slack dead list, and replays it from there', async () => {
    await linked({ roles: ['viewer'] }, 'UDEAD');
    const body = Object.fromEntries(new URLSearchParams(slashCommandBody({ text: 'help', user_id: 'UDEAD', team_id: 'T111', trigger_id: 'trg-dead' })));
    const id = await leftByADeadProcess('command:trg-dead', body, 'slash_command', MAX_ATTEMPTS);
    await receiver.redeliver();
    await receiver.flush();
    expect(await row('command:trg-dead')).toMatchObject({ status: 'failed', error: { code: 'not_processed', message: `still unprocessed after ${MAX_ATTEMPTS} attempts (the process handling it stopped each time)` } });
    expect(logs.text()).toContain('left for an operator (projectx slack dead list)');

    const ctx = operatorContext(fx);
    const listed = await runOperator(ctx, slackVerb, ['dead', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.out.join('\n')).toMatch(new RegExp(`^${id}  slash_command  .*  attempts: ${MAX_ATTEMPTS + 1}  not_processed: still unprocessed`, 'm'));
    const shown = await runOperator(ctx, slackVerb, ['dead', 'show', id]);
    expect(JSON.parse(shown.out.join('\n'))).toMatchObject({ id, kind: 'slash_command', status: 'failed', body: { text: 'help', trigger_id: 'trg-dead' } });

    const replayed = await runOperator(ctx, slackVerb, ['dead', 'replay', id]);
    expect(replayed).toMatchObject({ code: 0, out: [expect.stringContaining('handed back for processing')] });
    expect(await row('command:trg-dead')).toMatchObject({ status: 'received', attempts: 0, error: null });
    await receiver.redeliver();
    await receiver.flush();
    await expect.poll(async () => (await row('command:trg-dead')).status, { timeout: 5000 }).toBe('processed');
    const audit = await fx.tdb.db.selectFrom('audit_log').select(['action', 'object_id', 'outcome']).where('action', '=', 'slack.delivery.replay').execute();
    expect(audit).toEqual([{ action: 'slack.delivery.replay', object_id: id, outcome: 'success' }]);
    // Only dead deliveries can be replayed; bad ids are usage errors.
    await expect(runOperator(ctx, slackVerb, ['dead', 'replay', id])).rejects.toThrow(expect.objectContaining({ exitCode: 1, message: `Slack delivery ${id} is processed, not failed` }));
    await expect(runOperator(ctx, slackVerb, ['dead', 'replay', 'nope'])).rejects.toThrow(expect.objectContaining({ exitCode: 2 }));
  });

  it('stages an accepted evidence form with its delivery in one transaction: the delivery is processed only with its upload staged', async () => {
    const uploader = await linked({ roles: ['contributor'] }, 'UEVID');
    const res = await post(evidenceSubmissionBody({ userId: 'UEVID', teamId: 'T111', fileIds: ['F0EVID1', 'F0EVID2'], controlId: 'AC-2', viewId: 'VSTAGED' }));
    expect(res.status).toBe(200);
    await receiver.flush();
    const stored = await fx.tdb.db.selectFrom('inbound_events').selectAll().where('delivery_id', 'like', 'view:VSTAGED:1700000000.abcdef:view_submission:%').executeTakeFirstOrThrow();
    expect(stored.status).toBe('processed');
    expect(stored.result).toEqual({ upload: { fileIds: ['F0EVID1', 'F0EVID2'], userId: uploader.id, slackUserId: 'UEVID', tenant: 'T111', controlId: 'AC-2' } });
    const staged = await fx.tdb.db.selectFrom('inbound_job_outbox').select(['job_name', 'inbound_ids']).where(sql<boolean>`${stored.id}::uuid = any(inbound_ids)`).execute();
    expect(staged).toEqual([{ job_name: 'slack.evidence-submissions', inbound_ids: [stored.id] }]);

    // Slack's retry of the same form is a repeat: answered, nothing staged twice.
    expect((await post(evidenceSubmissionBody({ userId: 'UEVID', teamId: 'T111', fileIds: ['F0EVID1', 'F0EVID2'], controlId: 'AC-2', viewId: 'VSTAGED' }))).status).toBe(200);
    await receiver.flush();
    const again = await fx.tdb.db.selectFrom('inbound_job_outbox').select('id').where(sql<boolean>`${stored.id}::uuid = any(inbound_ids)`).execute();
    expect(again).toHaveLength(1);
  });
});
