/**
 * Outbound subscriptions against a real subscriber on 127.0.0.1 that checks every delivery with the
 * `standardwebhooks` package: the fan-out from domain events, the retry schedule on an injected clock (attempts
 * are run by calling the job's handler, and the next attempt's job is read back from pg-boss), 410, the SSRF
 * guard before and during the connection, and what never reaches the logs or the database.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { MAX_ATTEMPTS, RETRY_SCHEDULE_SECONDS, deliverWebhook, enqueueSubscriptionDeliveries, webhookBody, webhookMessageId } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { type OutboundTransport, type Resolver, createOutboundTransport } from '../../../src/connectors/webhook-bridge/outbound/destination.ts';
import { type Subscription, addSubscription, enableSubscription } from '../../../src/connectors/webhook-bridge/outbound/subscriptions.ts';
import { type DomainEvent, type DomainEventType, newEvent } from '../../../src/domain/events.ts';
import { createEventSink } from '../../../src/jobs/domain-events.ts';
import { serviceJobs } from '../../support/jobs.ts';
import type { OutboundJobDeps as JobDeps } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { type JobRuntime, startJobRuntime } from '../../../src/jobs/runtime.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type ReceivedWebhook, type WebhookReceiver, startWebhookReceiver } from '../../fakes/webhook-receiver.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';
import { localEvidencePipeline } from '../../support/temp.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const logs = captureLogs();
const config = (() => {
  const loaded = loadConfig({});
  if (!loaded.ok) throw new Error(loaded.problems.join('; '));
  return loaded.config;
})();

/** Every secret handed out and every signature received in this file, to look for where they must not be. */
const secrets: string[] = [];
const signatures: string[] = [];

/** The standardwebhooks package's verdict on a received delivery (it checks the timestamp against the wall clock). */
function verified(secret: string, webhook: ReceivedWebhook): unknown {
  return new Webhook(secret).verify(webhook.body, webhook.headers);
}

/** The package's signature for a delivery at its own timestamp (for attempts the clock has moved days ahead of now). */
function expectedSignature(secret: string, webhook: ReceivedWebhook): string {
  return new Webhook(secret).sign(webhook.headers['webhook-id']!, new Date(Number(webhook.headers['webhook-timestamp']) * 1000), webhook.body);
}

let fixture: DomainFixture;
let receiver: WebhookReceiver;
const transports: OutboundTransport[] = [];
/** Every job the code under test enqueued (passed on to the real runtime). */
const enqueued: { name: string; payload: unknown; startAfter: unknown }[] = [];

beforeAll(async () => {
  fixture = await domainFixture();
  receiver = await startWebhookReceiver();
});
afterAll(async () => {
  for (const transport of transports) await transport.close();
  await receiver?.close();
  await fixture?.close();
});
beforeEach(async () => {
  // The package verifies against the wall clock: start each test's clock at the real time.
  fixture.clock.set(new Date());
  // Each test's events go to its own subscriptions only (rows stay, for the last test's look at the tables).
  await fixture.tdb.db.updateTable('webhook_subscriptions').set({ enabled: false, disabled_reason: 'an earlier test' }).execute();
  receiver.received.length = 0;
  enqueued.length = 0;
});

function deps(options: { allowed?: readonly string[]; resolve?: Resolver; timeoutMs?: number } = {}, fx: DomainFixture = fixture): JobDeps {
  const jobs: Pick<JobRuntime, 'enqueue'> = {
    enqueue(job, payload, enqueueOptions) {
      enqueued.push({ name: job.name, payload, startAfter: enqueueOptions?.startAfter });
      return fx.jobs.enqueue(job, payload, enqueueOptions);
    },
  };
  const transport = createOutboundTransport({ allowedNetworks: options.allowed ?? ['127.0.0.1/32'], ...(options.resolve ? { resolve: options.resolve } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}) });
  transports.push(transport);
  return {
    db: fx.tdb.db,
    logger: logs.logger,
    clock: fx.clock,
    metrics: createMetrics({ defaultMetrics: false }),
    config,
    jobs,
    events: createEventSink(fx.jobs),
    notifiers: [],
    rerenderers: [],
    evidence: localEvidencePipeline('outbound-evidence'),
    keyring,
    connectors: [],
    integrations: () => Promise.resolve([]),
    outboundTransport: transport,
  };
}

/** Runs one attempt as the worker would, with this file's logger. */
const attempt = (jobDeps: JobDeps, deliveryId: string, number: number) =>
  deliverWebhook.handler({ deliveryId, attempt: number }, { deps: jobDeps, logger: logs.logger, signal: new AbortController().signal, job: { id: randomUUID(), name: deliverWebhook.name, retryCount: 0 } });

async function subscribe(url: string, eventTypes: string[] = ['task.*'], fx: DomainFixture = fixture): Promise<{ subscription: Subscription; secret: string }> {
  const added = await addSubscription(fx.tdb.db, keyring, { url, eventTypes }, fx.clock.now());
  if (!added.ok) throw new Error(added.refusal.message);
  secrets.push(added.value.secret);
  return added.value;
}

function event(type: DomainEventType = 'task.created'): DomainEvent {
  return newEvent({ type, subject: { kind: 'task', id: randomUUID(), label: 'T-9' }, summary: 'T-9 Review the vendor', priority: 2 }, fixture.clock.now());
}

/** Fans the event out and returns the delivery to `subscription`. */
async function fanOut(jobDeps: JobDeps, subscription: Subscription, domainEvent = event()) {
  await enqueueSubscriptionDeliveries(jobDeps, fixture.tdb.db, domainEvent);
  return fixture.tdb.db.selectFrom('webhook_deliveries').selectAll().where('subscription_id', '=', subscription.id).where('message_id', '=', webhookMessageId(domainEvent.id)).executeTakeFirstOrThrow();
}

const delivery = (id: string) => fixture.tdb.db.selectFrom('webhook_deliveries').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const attemptsOf = (deliveryId: string) => fixture.tdb.db.selectFrom('webhook_delivery_attempts').selectAll().where('delivery_id', '=', deliveryId).orderBy('attempt').execute();
const subscriptionRow = (id: string) => fixture.tdb.db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
const keep = (webhook: ReceivedWebhook) => signatures.push(webhook.headers['webhook-signature'] ?? '');

describe('fan-out', () => {
  it('creates one delivery per matching enabled subscription (exact, prefix, *) and none twice for a re-routed event', async () => {
    const jobDeps = deps();
    const exact = await subscribe(receiver.url, ['incident.created']);
    const prefix = await subscribe(receiver.url, ['task.*']);
    const everything = await subscribe(receiver.url, ['*']);
    const otherPrefix = await subscribe(receiver.url, ['evidence.*', 'incident.*']);
    const domainEvent = event('incident.created');
    expect(await enqueueSubscriptionDeliveries(jobDeps, fixture.tdb.db, domainEvent)).toBe(3);
    expect(await enqueueSubscriptionDeliveries(jobDeps, fixture.tdb.db, domainEvent)).toBe(0);

    const rows = await fixture.tdb.db.selectFrom('webhook_deliveries').selectAll().where('message_id', '=', webhookMessageId(domainEvent.id)).execute();
    expect(rows.map((row) => row.subscription_id).sort()).toEqual([exact.subscription.id, everything.subscription.id, otherPrefix.subscription.id].sort());
    expect(rows.map((row) => row.subscription_id)).not.toContain(prefix.subscription.id);
    for (const row of rows) expect(row).toMatchObject({ status: 'pending', attempts: 0, event_type: 'incident.created', payload: domainEvent, next_attempt_at: fixture.clock.now() });
    // One first-attempt job per delivery, enqueued with the row.
    expect(enqueued.map((job) => job.payload).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual(
      rows.map((row) => ({ deliveryId: row.id, attempt: 1 })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    );
    for (const row of rows) expect(await fixture.jobs.boss.findJobs(deliverWebhook.name, { data: { payload: { deliveryId: row.id, attempt: 1 } } })).toHaveLength(1);
  });
});

describe('deliveries', () => {
  it('POSTs the event as a Standard Webhook the standardwebhooks package verifies', async () => {
    const jobDeps = deps();
    const { subscription, secret } = await subscribe(receiver.url);
    const domainEvent = event();
    const row = await fanOut(jobDeps, subscription, domainEvent);
    expect(await attempt(jobDeps, row.id, 1)).toEqual({ status: 'delivered' });

    expect(receiver.received).toHaveLength(1);
    const [webhook] = receiver.received as [ReceivedWebhook];
    keep(webhook);
    expect(verified(secret, webhook)).toEqual({ type: 'task.created', timestamp: domainEvent.occurredAt, data: domainEvent });
    expect(webhook.body).toBe(webhookBody(domainEvent));
    expect(webhook.body.startsWith('{"type":"task.created","timestamp":')).toBe(true);
    expect(webhook.headers).toMatchObject({
      'content-type': 'application/json',
      'webhook-id': `msg_${domainEvent.id.replaceAll('-', '')}`,
      'webhook-timestamp': String(Math.floor(fixture.clock.now().getTime() / 1000)),
    });
    expect(await delivery(row.id)).toMatchObject({ status: 'delivered', attempts: 1, last_status: 204, last_error: null, next_attempt_at: null, delivered_at: fixture.clock.now() });
    expect(await attemptsOf(row.id)).toEqual([expect.objectContaining({ attempt: 1, http_status: 204, error: null, attempted_at: fixture.clock.now() })]);
    expect(enqueued).toEqual([expect.objectContaining({ payload: { deliveryId: row.id, attempt: 1 } })]);
  });

  it('retries a 500 after 5 s (±10 %) with the same webhook-id and a fresh timestamp, then delivers', async () => {
    const jobDeps = deps();
    const { subscription, secret } = await subscribe(receiver.url);
    receiver.answer(500, 200);
    const row = await fanOut(jobDeps, subscription);
    const first = fixture.clock.now();
    const failed = await attempt(jobDeps, row.id, 1);
    expect(failed).toMatchObject({ status: 'pending' });

    const pending = await delivery(row.id);
    expect(pending).toMatchObject({ status: 'pending', attempts: 1, last_status: 500, last_error: 'HTTP 500' });
    const delayMs = pending.next_attempt_at!.getTime() - first.getTime();
    expect(delayMs).toBeGreaterThanOrEqual(4500);
    expect(delayMs).toBeLessThanOrEqual(5500);
    // The next attempt is a new job, due after the same delay (pg-boss's startAfter is in seconds).
    expect(enqueued.at(-1)).toEqual({ name: deliverWebhook.name, payload: { deliveryId: row.id, attempt: 2 }, startAfter: delayMs / 1000 });
    const [next] = await fixture.jobs.boss.findJobs(deliverWebhook.name, { data: { payload: { deliveryId: row.id, attempt: 2 } } });
    expect(next?.startAfter.getTime()).toBeGreaterThan(next!.createdOn.getTime() + 4000);

    // A duplicate of the first attempt's job sends nothing.
    expect(await attempt(jobDeps, row.id, 1)).toEqual({ skipped: 'attempt 1 is not due (1 made)' });
    expect(receiver.received).toHaveLength(1);

    fixture.clock.set(pending.next_attempt_at!);
    expect(await attempt(jobDeps, row.id, 2)).toEqual({ status: 'delivered' });
    const [one, two] = receiver.received as [ReceivedWebhook, ReceivedWebhook];
    for (const webhook of [one, two]) {
      keep(webhook);
      expect(verified(secret, webhook)).toMatchObject({ type: 'task.created' });
    }
    expect(two.headers['webhook-id']).toBe(one.headers['webhook-id']);
    expect(two.body).toBe(one.body);
    expect(Number(two.headers['webhook-timestamp']) - Number(one.headers['webhook-timestamp'])).toBe(Math.floor(pending.next_attempt_at!.getTime() / 1000) - Math.floor(first.getTime() / 1000));
    expect(two.headers['webhook-signature']).not.toBe(one.headers['webhook-signature']);
    expect((await attemptsOf(row.id)).map((a) => [a.attempt, a.http_status, a.error, a.attempted_at])).toEqual([
      [1, 500, 'HTTP 500', first],
      [2, 200, null, pending.next_attempt_at],
    ]);
  });

  it('follows the whole schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, each ±10 %), then fails', async () => {
    const jobDeps = deps();
    const { subscription, secret } = await subscribe(receiver.url);
    receiver.answer(...Array.from({ length: MAX_ATTEMPTS }, () => 503));
    const row = await fanOut(jobDeps, subscription);
    const delays: number[] = [];
    for (let number = 1; number <= MAX_ATTEMPTS; number++) {
      const before = fixture.clock.now();
      await attempt(jobDeps, row.id, number);
      const current = await delivery(row.id);
      expect(current.attempts).toBe(number);
      if (number === MAX_ATTEMPTS) {
        expect(current).toMatchObject({ status: 'failed', next_attempt_at: null, last_status: 503 });
        break;
      }
      expect(current.status).toBe('pending');
      const delayMs = current.next_attempt_at!.getTime() - before.getTime();
      delays.push(delayMs);
      expect(enqueued.at(-1)).toEqual({ name: deliverWebhook.name, payload: { deliveryId: row.id, attempt: number + 1 }, startAfter: delayMs / 1000 });
      fixture.clock.set(current.next_attempt_at!);
    }
    expect(RETRY_SCHEDULE_SECONDS).toEqual([0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]);
    delays.forEach((delayMs, index) => {
      const base = RETRY_SCHEDULE_SECONDS[index + 1]! * 1000;
      expect(delayMs, `delay before attempt ${index + 2}`).toBeGreaterThanOrEqual(base * 0.9);
      expect(delayMs, `delay before attempt ${index + 2}`).toBeLessThanOrEqual(base * 1.1);
    });
    // No eleventh attempt was enqueued; pg-boss holds exactly attempts 1-10.
    expect(enqueued.filter((job) => job.name === deliverWebhook.name)).toHaveLength(MAX_ATTEMPTS);
    const jobs = await fixture.jobs.boss.findJobs<{ payload: { attempt: number } }>(deliverWebhook.name, { data: { payload: { deliveryId: row.id } } });
    expect(jobs.map((job) => job.data.payload.attempt).sort((a, b) => a - b)).toEqual(Array.from({ length: MAX_ATTEMPTS }, (_, index) => index + 1));

    const attempts = await attemptsOf(row.id);
    expect(attempts.map((a) => a.http_status)).toEqual(Array.from({ length: MAX_ATTEMPTS }, () => 503));
    expect(receiver.received).toHaveLength(MAX_ATTEMPTS);
    receiver.received.forEach((webhook, index) => {
      keep(webhook);
      // One id throughout; each attempt signed at its own (the injected clock's) time.
      expect(webhook.headers['webhook-id']).toBe(row.message_id);
      expect(Number(webhook.headers['webhook-timestamp'])).toBe(Math.floor(attempts[index]!.attempted_at.getTime() / 1000));
      expect(webhook.headers['webhook-signature']).toBe(expectedSignature(secret, webhook));
    });
  });

  it('stops at a 410: the subscription is disabled, the delivery abandoned, and nothing more is sent', async () => {
    const jobDeps = deps();
    const { subscription } = await subscribe(receiver.url);
    receiver.answer(410);
    const gone = await fanOut(jobDeps, subscription);
    const queuedBefore = await fanOut(jobDeps, subscription);
    enqueued.length = 0;
    expect(await attempt(jobDeps, gone.id, 1)).toEqual({ status: 'abandoned' });

    expect(await delivery(gone.id)).toMatchObject({ status: 'abandoned', attempts: 1, last_status: 410, next_attempt_at: null });
    expect(await subscriptionRow(subscription.id)).toMatchObject({ enabled: false, disabled_reason: `the endpoint answered 410 Gone at ${fixture.clock.now().toISOString()}` });
    expect(enqueued).toEqual([]);
    // A stray job for the abandoned delivery, a delivery queued before the 410, and a new event: none is sent.
    expect(await attempt(jobDeps, gone.id, 2)).toEqual({ skipped: 'abandoned' });
    expect(await attempt(jobDeps, queuedBefore.id, 1)).toEqual({ abandoned: 'subscription disabled' });
    expect((await delivery(queuedBefore.id)).last_error).toMatch(/^subscription disabled: the endpoint answered 410 Gone/);
    expect(await enqueueSubscriptionDeliveries(jobDeps, fixture.tdb.db, event())).toBe(0);
    expect(receiver.received).toHaveLength(1);

    // Re-enabled by an operator, it receives new events again.
    expect(await enableSubscription(fixture.tdb.db, subscription.id, fixture.clock.now())).toMatchObject({ ok: true, value: { enabled: true, disabledReason: null } });
    const again = await fanOut(jobDeps, subscription);
    expect(await attempt(jobDeps, again.id, 1)).toEqual({ status: 'delivered' });
    expect(receiver.received).toHaveLength(2);
  });

  it('marks a delivery failed, not forever pending, when our own failure (no key to sign with) outlasts pg-boss retries', async () => {
    const { subscription } = await subscribe(receiver.url);
    const noKey = { ...deps(), keyring: undefined };
    const row = await fanOut(noKey, subscription);
    const run = (retryCount: number) =>
      deliverWebhook.handler({ deliveryId: row.id, attempt: 1 }, { deps: noKey, logger: logs.logger, signal: new AbortController().signal, job: { id: randomUUID(), name: deliverWebhook.name, retryCount } });
    await expect(run(0)).rejects.toThrow('no encryption key');
    expect((await delivery(row.id)).status).toBe('pending'); // pg-boss will try again
    await expect(run(5)).rejects.toThrow('no encryption key');
    expect(await delivery(row.id)).toMatchObject({ status: 'failed', last_error: expect.stringContaining('not sent: cannot sign webhooks') });
  });

  it('counts a timeout and a refused connection as failed attempts and schedules the next', async () => {
    const { subscription } = await subscribe(receiver.url);
    receiver.answer('hang');
    const slow = deps({ timeoutMs: 300 });
    const hung = await fanOut(slow, subscription);
    expect(await attempt(slow, hung.id, 1)).toMatchObject({ status: 'pending' });
    expect((await attemptsOf(hung.id))[0]).toMatchObject({ http_status: null, error: 'no answer within 300 ms' });

    const closed = await startWebhookReceiver();
    await closed.close();
    const nobody = await subscribe(closed.url);
    const jobDeps = deps();
    const refused = await fanOut(jobDeps, nobody.subscription);
    expect(await attempt(jobDeps, refused.id, 1)).toMatchObject({ status: 'pending' });
    expect((await attemptsOf(refused.id))[0]?.error).toContain('ECONNREFUSED');
  });
});

describe('the SSRF guard', () => {
  it('refuses 127.0.0.1 when no network is allowed: abandoned with the reason, nothing sent', async () => {
    const closedDoor = deps({ allowed: [] });
    const { subscription } = await subscribe(receiver.url);
    const row = await fanOut(closedDoor, subscription);
    expect(await attempt(closedDoor, row.id, 1)).toEqual({ status: 'abandoned' });
    const refused = await delivery(row.id);
    expect(refused).toMatchObject({ status: 'abandoned', last_status: null, next_attempt_at: null });
    expect(refused.last_error).toBe('127.0.0.1 is not a public address (loopback); webhooks are not sent there unless OUTBOUND_WEBHOOK_ALLOWED_NETWORKS allows it');
    expect((await attemptsOf(row.id))[0]).toMatchObject({ http_status: null, error: refused.last_error });
    expect(receiver.received).toEqual([]);
    expect(enqueued.filter((job) => (job.payload as { attempt: number }).attempt > 1)).toEqual([]);

    // The same destination, allowed: delivered.
    const allowed = deps({ allowed: ['127.0.0.1/32'] });
    const next = await fanOut(allowed, subscription);
    expect(await attempt(allowed, next.id, 1)).toEqual({ status: 'delivered' });
    expect(receiver.received).toHaveLength(1);
  });

  it('without a shared transport, builds one per attempt from OUTBOUND_WEBHOOK_ALLOWED_NETWORKS', async () => {
    const { subscription } = await subscribe(receiver.url);
    const withConfig = (allowed: string) => {
      const loaded = loadConfig({ OUTBOUND_WEBHOOK_ALLOWED_NETWORKS: allowed });
      if (!loaded.ok) throw new Error(loaded.problems.join('; '));
      return { ...deps(), config: loaded.config, outboundTransport: undefined };
    };
    const closed = withConfig('');
    const refused = await fanOut(closed, subscription);
    expect(await attempt(closed, refused.id, 1)).toEqual({ status: 'abandoned' });
    const open = withConfig('127.0.0.0/8');
    const delivered = await fanOut(open, subscription);
    expect(await attempt(open, delivered.id, 1)).toEqual({ status: 'delivered' });
    expect(receiver.received).toHaveLength(1);
  });

  it('connects to the address it checked: a name resolving to 127.0.0.1 is delivered only through our resolver', async () => {
    const resolve: Resolver = (hostname) => Promise.resolve(hostname === 'receiver.test' ? [{ address: '127.0.0.1', family: 4 }] : Promise.reject(Object.assign(new Error('not found'), { code: 'ENOTFOUND' })));
    const jobDeps = deps({ allowed: ['127.0.0.1/32'], resolve });
    const { subscription, secret } = await subscribe(`http://receiver.test:${receiver.port}/hooks/projectx`);
    const row = await fanOut(jobDeps, subscription);
    expect(await attempt(jobDeps, row.id, 1)).toEqual({ status: 'delivered' });
    const [webhook] = receiver.received as [ReceivedWebhook];
    keep(webhook);
    expect(webhook.headers.host).toBe(`receiver.test:${receiver.port}`);
    expect(verified(secret, webhook)).toMatchObject({ type: 'task.created' });
  });

  it('refuses at connect time a name that rebinds to 127.0.0.1 after passing the check (DNS rebinding)', async () => {
    // The first answer (the check) is a public address; every later one (the connection's lookup) is loopback.
    let lookups = 0;
    const resolve: Resolver = () => Promise.resolve([{ address: lookups++ === 0 ? '93.184.215.14' : '127.0.0.1', family: 4 }]);
    const jobDeps = deps({ allowed: [], resolve });
    const { subscription } = await subscribe(`http://rebind.test:${receiver.port}/hooks/projectx`);
    const row = await fanOut(jobDeps, subscription);
    expect(await attempt(jobDeps, row.id, 1)).toEqual({ status: 'abandoned' });
    expect(lookups).toBe(2);
    expect((await delivery(row.id)).last_error).toBe(
      'rebind.test resolves to 127.0.0.1, which is not a public address (loopback); webhooks are not sent there unless OUTBOUND_WEBHOOK_ALLOWED_NETWORKS allows it',
    );
    expect(receiver.received).toEqual([]);
  });
});

describe('domain events, end to end through the workers', () => {
  // A database and a subscriber of its own: nothing queued by the tests above runs here.
  let own: DomainFixture;
  let subscriber: WebhookReceiver;
  let workers: JobRuntime;
  beforeAll(async () => {
    own = await domainFixture();
    own.clock.set(new Date());
    subscriber = await startWebhookReceiver();
    const fast = serviceJobs.map((job) => ({ ...job, policy: { ...job.policy, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 } }));
    workers = await startJobRuntime({ connectionString: own.tdb.url, definitions: fast, logger: logs.logger, metrics: createMetrics({ defaultMetrics: false }), supervise: true });
    await workers.work({ ...deps({}, own), jobs: workers, events: createEventSink(workers) } satisfies JobDeps);
  });
  afterAll(async () => {
    await workers?.stop(2000);
    await subscriber?.close();
    await own?.close();
  });

  it('delivers the events of a new task to its subscriber, each signed and verified', async () => {
    const { subscription, secret } = await subscribe(subscriber.url, ['task.created', 'task.assigned'], own);
    await subscribe(subscriber.url, ['incident.*'], own);
    const assignee = await own.user();
    const task = await own.task({ title: 'Rotate the signing key', assigneeId: assignee.id });

    const types = () => subscriber.received.map((webhook) => (JSON.parse(webhook.body) as { type: string }).type).sort();
    await expect.poll(types, { timeout: 15_000 }).toEqual(['task.assigned', 'task.created']);
    for (const webhook of subscriber.received) {
      keep(webhook);
      const body = verified(secret, webhook) as { type: string; data: DomainEvent };
      expect(body.data.subject).toEqual({ kind: 'task', id: task.id, label: task.ref });
      expect(webhook.headers['webhook-id']).toBe(webhookMessageId(body.data.id));
    }
    const statuses = async () => (await own.tdb.db.selectFrom('webhook_deliveries').select('status').where('subscription_id', '=', subscription.id).execute()).map((row) => row.status);
    await expect.poll(statuses, { timeout: 5000 }).toEqual(['delivered', 'delivered']);
  });
});

describe('secrets', () => {
  it('never logs or stores a secret or a signature', async () => {
    expect(secrets.length).toBeGreaterThan(5);
    expect(signatures.length).toBeGreaterThan(5);
    const text = logs.text();
    expect(text).toContain('webhook delivered');
    const stored = JSON.stringify(
      await Promise.all(['webhook_subscriptions', 'webhook_deliveries', 'webhook_delivery_attempts'].map((table) => fixture.tdb.db.selectFrom(table as 'webhook_deliveries').selectAll().execute())),
    );
    for (const value of [...secrets, ...secrets.map((secret) => secret.slice('whsec_'.length)), ...signatures]) {
      expect(text).not.toContain(value);
      expect(stored).not.toContain(value);
    }
  });
});
