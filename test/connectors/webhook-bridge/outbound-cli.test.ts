/**
 * `projectx subscriptions …`: the verb called directly with a recording Io, then once through the real binary.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/args.ts';
import type { OperatorContext } from '../../../src/cli/context.ts';
import { usageLine } from '../../../src/cli/verb.ts';
import { verbsOf } from '../../../src/module.ts';
import { modules } from '../../../src/modules.ts';
import { LocalEvidenceStore } from '../../../src/connectors/evidence-stores/local.ts';
import { DecryptionError, Keyring, isEnvelope } from '../../../src/connectors/sdk/crypto.ts';
import { subscriptionsVerb } from '../../../src/connectors/webhook-bridge/outbound/cli.ts';
import { deliverWebhook, enqueueSubscriptionDeliveries } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { createOutboundTransport } from '../../../src/connectors/webhook-bridge/outbound/destination.ts';
import { subscriptionSecret } from '../../../src/connectors/webhook-bridge/outbound/subscriptions.ts';
import { newEvent } from '../../../src/domain/events.ts';
import { createEventSink } from '../../../src/jobs/domain-events.ts';
import type { OutboundJobDeps } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { type WebhookReceiver, startWebhookReceiver } from '../../fakes/webhook-receiver.ts';
import { killAll, spawnCli } from '../../support/cli.ts';
import { type DomainFixture, auditRows, domainFixture } from '../../support/domain.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { captureLogs } from '../../support/logs.ts';
import { tempPath } from '../../support/temp.ts';

const key = randomBytes(32);
const keyring = new Keyring([{ id: 'k1', key }]);

let fixture: DomainFixture;
let receiver: WebhookReceiver;
beforeAll(async () => {
  fixture = await domainFixture();
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  await receiver?.close();
  await fixture?.close();
});

function context(options: { keyring?: Keyring | undefined; allowed?: string } = {}): OperatorContext {
  return operatorContext(fixture, { env: { OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: options.allowed ?? '127.0.0.1/32' }, keyring: 'keyring' in options ? options.keyring : keyring });
}

const run = (args: string[], ctx = context()) => runOperator(ctx, subscriptionsVerb, args);

/** Adds a subscription through the verb; returns its id and secret, read from what was printed. */
async function added(url = receiver.url, events = ['task.*']) {
  const { code, out } = await run(['add', '--url', url, ...events.flatMap((event) => ['--event', event]), '--description', 'Acme SIEM']);
  expect(code).toBe(0);
  const id = /^added subscription ([0-9a-f-]{36}): /.exec(out[0] ?? '')?.[1];
  const secret = /(whsec_[A-Za-z0-9+/=]+)$/.exec(out[1] ?? '')?.[1];
  if (!id || !secret) throw new Error(`unexpected output: ${out.join('\n')}`);
  return { id, secret, out };
}

describe('subscriptions (the verb)', () => {
  it('is wired into the operator CLI', () => {
    const verb = verbsOf(modules).find((candidate) => candidate.name === 'subscriptions');
    expect(verb?.commands.map(usageLine)).toContain('projectx subscriptions add --url <url> --event <type or prefix.*>... [--description "<text>"]');
  });

  it('adds a subscription, printing its id and its secret once; list never shows the secret', async () => {
    const { id, secret, out } = await added(receiver.url, ['task.*', 'incident.created']);
    expect(out).toEqual([`added subscription ${id}: ${receiver.url} (task.*, incident.created)`, `signing secret (shown only now; give it to the receiver): ${secret}`]);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

    const row = await fixture.tdb.db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ url: receiver.url, event_types: ['task.*', 'incident.created'], description: 'Acme SIEM', enabled: true });
    expect(isEnvelope(row.secret)).toBe(true);
    expect(JSON.stringify(row)).not.toContain(secret.slice('whsec_'.length));
    expect(subscriptionSecret(keyring, row)).toBe(secret);
    // The ciphertext is bound to its subscription: copied to another row it does not decrypt.
    expect(() => subscriptionSecret(keyring, { id: randomUUID(), secret: row.secret })).toThrow(DecryptionError);

    const listed = await run(['list']);
    expect(listed.out.find((line) => line.startsWith(id))).toBe(`${id}\t${receiver.url}\ttask.*,incident.created\tenabled\tlast: none\tAcme SIEM`);
    expect(listed.out.join('\n')).not.toContain(secret);
    const [audit] = await auditRows(fixture, id);
    expect(audit).toMatchObject({ action: 'webhook_subscription.add', actor: 'anonymous:cli', outcome: 'success', detail: { url: receiver.url, eventTypes: ['task.*', 'incident.created'] } });
    expect(JSON.stringify(audit)).not.toContain(secret);
  });

  it('refuses to add without an encryption key, saying which variable to set, and stores nothing', async () => {
    const before = await fixture.tdb.db.selectFrom('webhook_subscriptions').select('id').execute();
    await expect(run(['add', '--url', receiver.url, '--event', 'task.*'], context({ keyring: undefined }))).rejects.toMatchObject({
      exitCode: 1,
      message: expect.stringContaining('set PROJECTX_ENCRYPTION_KEY') as unknown,
    });
    expect(await fixture.tdb.db.selectFrom('webhook_subscriptions').select('id').execute()).toEqual(before);
  });

  it('refuses bad endpoints and event types with the reason, and a loopback endpoint unless it is allowed', async () => {
    await expect(run(['add', '--url', 'https://ann:pw@hooks.example.com/', '--event', 'task.*'])).rejects.toMatchObject({ exitCode: 1, code: 'invalid_url' });
    await expect(run(['add', '--url', receiver.url, '--event', 'task.exploded'])).rejects.toMatchObject({ exitCode: 1, code: 'unknown_event_type' });
    await expect(run(['add', '--url', receiver.url, '--event', 'task.*'], context({ allowed: '' }))).rejects.toMatchObject({
      exitCode: 1,
      message: `refused: 127.0.0.1 is not a public address (loopback); webhooks are not sent there unless OUTBOUND_WEBHOOK_ALLOWED_NETWORKS allows it`,
    });
    await expect(run(['add', '--url', receiver.url])).rejects.toBeInstanceOf(UsageError);
    await expect(run(['add', '--event', 'task.*'])).rejects.toBeInstanceOf(UsageError);
    await expect(run(['frobnicate'])).rejects.toBeInstanceOf(UsageError);
  });

  it('removes and re-enables by id (audited); an unknown id exits 1', async () => {
    const { id } = await added();
    await fixture.tdb.db.updateTable('webhook_subscriptions').set({ enabled: false, disabled_reason: 'the endpoint answered 410 Gone at 2026-11-22T09:00:00.000Z' }).where('id', '=', id).execute();
    expect((await run(['list'])).out.find((line) => line.startsWith(id))).toContain('\tdisabled (the endpoint answered 410 Gone at 2026-11-22T09:00:00.000Z)\t');
    expect((await run(['enable', id])).out).toEqual([`enabled ${id}: ${receiver.url}`]);
    expect((await fixture.tdb.db.selectFrom('webhook_subscriptions').select(['enabled', 'disabled_reason']).where('id', '=', id).executeTakeFirstOrThrow())).toEqual({ enabled: true, disabled_reason: null });
    expect((await run(['remove', id])).out).toEqual([`removed ${id} (and its delivery log)`]);
    expect((await auditRows(fixture, id)).map((row) => row.action)).toEqual(['webhook_subscription.add', 'webhook_subscription.enable', 'webhook_subscription.remove']);

    for (const verb of ['remove', 'enable']) {
      await expect(run([verb, id])).rejects.toMatchObject({ exitCode: 1, message: `no subscription ${id}` });
      await expect(run([verb, 'not-a-uuid'])).rejects.toMatchObject({ exitCode: 1, message: 'no subscription not-a-uuid' });
    }
  });

  it('lists recent deliveries with every attempt', async () => {
    const { id } = await added();
    fixture.clock.set('2026-11-22T09:00:00.000Z');
    const deps: OutboundJobDeps = {
      db: fixture.tdb.db,
      logger: captureLogs().logger,
      clock: fixture.clock,
      metrics: createMetrics({ defaultMetrics: false }),
      config: context().config,
      jobs: fixture.jobs,
      events: createEventSink(fixture.jobs),
      notifiers: [],
      rerenderers: [],
      evidenceStore: new LocalEvidenceStore(tempPath('outbound-cli-evidence')),
      keyring,
      connectors: [],
      integrations: () => Promise.resolve([]),
      outboundTransport: createOutboundTransport({ allowedNetworks: ['127.0.0.1/32'] }),
    };
    const event = newEvent({ type: 'task.created', subject: { kind: 'task', id: randomUUID(), label: 'T-7' }, summary: 'T-7 created' }, fixture.clock.now());
    await enqueueSubscriptionDeliveries(deps, fixture.tdb.db, event);
    const delivery = await fixture.tdb.db.selectFrom('webhook_deliveries').selectAll().where('subscription_id', '=', id).executeTakeFirstOrThrow();
    const context_ = (n: number) => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name: deliverWebhook.name, retryCount: n } });
    receiver.answer(502, 200);
    await deliverWebhook.handler({ deliveryId: delivery.id, attempt: 1 }, context_(0));
    const pending = await run(['deliveries', id]);
    const nextAt = (await fixture.tdb.db.selectFrom('webhook_deliveries').select('next_attempt_at').where('id', '=', delivery.id).executeTakeFirstOrThrow()).next_attempt_at!;
    expect(pending.out[0]).toBe(`${delivery.id}\ttask.created\t${delivery.message_id}\tpending\t1 attempt(s)\t2026-11-22T09:00:00.000Z\tnext ${nextAt.toISOString()}\tHTTP 502`);
    expect(pending.out[1]).toMatch(/^ {2}#1\t2026-11-22T09:00:00\.000Z\tHTTP 502\t\d+ ms$/);

    fixture.clock.set(nextAt);
    await deliverWebhook.handler({ deliveryId: delivery.id, attempt: 2 }, context_(0));
    const delivered = await run(['deliveries', id, '--limit', '5']);
    expect(delivered.out[0]).toBe(`${delivery.id}\ttask.created\t${delivery.message_id}\tdelivered\t2 attempt(s)\t2026-11-22T09:00:00.000Z`);
    expect(delivered.out.slice(1).map((line) => line.split('\t').slice(0, 3).join('\t'))).toEqual(['  #1\t2026-11-22T09:00:00.000Z\tHTTP 502', `  #2\t${nextAt.toISOString()}\tHTTP 200`]);
    expect((await run(['list'])).out.find((line) => line.startsWith(id))).toContain(`\tlast: delivered HTTP 200 ${nextAt.toISOString()}`);
    await deps.outboundTransport?.close();

    await expect(run(['deliveries', randomUUID()])).rejects.toMatchObject({ exitCode: 1 });
    await expect(run(['deliveries', id, '--limit', 'lots'])).rejects.toBeInstanceOf(UsageError);
  });
});

describe('projectx subscriptions (the binary)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'projectx-subscriptions-'));
    await chmod(dir, 0o755);
  });
  afterEach(() => killAll());
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('adds with the secret shown once, lists without it, and refuses without PROJECTX_ENCRYPTION_KEY', async () => {
    const env = { DATABASE_URL: fixture.tdb.url, PROJECTX_ENCRYPTION_KEY: `k1:${key.toString('base64')}`, OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32' };
    const add = spawnCli(['subscriptions', 'add', '--url', 'http://127.0.0.1:9/from-the-binary', '--event', 'incident.*'], { env, cwd: dir });
    expect((await add.exited).code).toBe(0);
    const secret = /whsec_\S+/.exec(add.stdout())?.[0];
    const id = /added subscription ([0-9a-f-]{36})/.exec(add.stdout())?.[1];
    expect(secret).toBeDefined();
    expect(id).toBeDefined();
    // Written with the same key, readable by the worker's keyring.
    const row = await fixture.tdb.db.selectFrom('webhook_subscriptions').select(['id', 'secret']).where('id', '=', id!).executeTakeFirstOrThrow();
    expect(subscriptionSecret(keyring, row)).toBe(secret);

    const list = spawnCli(['subscriptions', 'list'], { env, cwd: dir });
    expect((await list.exited).code).toBe(0);
    expect(list.stdout()).toContain(`${id}\thttp://127.0.0.1:9/from-the-binary\tincident.*\tenabled\tlast: none`);
    expect(list.stdout() + list.stderr()).not.toContain(secret!);

    const keyless = spawnCli(['subscriptions', 'add', '--url', 'http://127.0.0.1:9/x', '--event', 'task.*'], { env: { DATABASE_URL: fixture.tdb.url }, cwd: dir });
    expect((await keyless.exited).code).toBe(1);
    expect(keyless.stderr()).toContain('set PROJECTX_ENCRYPTION_KEY');
  });
});
