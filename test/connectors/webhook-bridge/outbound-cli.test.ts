/**
 * `projectx subscriptions …`: the verb called directly with a recording Io, then once through the real binary.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/args.ts';
import type { OperatorContext } from '../../../src/cli/context.ts';
import type { Logger } from '../../../src/logger.ts';
import { usageLine } from '../../../src/cli/verb.ts';
import { verbsOf } from '../../../src/module.ts';
import { modules } from '../../../src/modules.ts';
import { DecryptionError, Keyring, isEnvelope } from '../../../src/connectors/sdk/crypto.ts';
import { createSubscriptionsVerb, subscriptionsVerb } from '../../../src/connectors/webhook-bridge/outbound/cli.ts';
import { deliverWebhook, enqueueSubscriptionDeliveries } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { createOutboundTransport } from '../../../src/connectors/webhook-bridge/outbound/destination.ts';
import { subscriptionSecret, subscriptionUrl } from '../../../src/connectors/webhook-bridge/outbound/subscriptions.ts';
import { runVerb } from '../../../src/cli/dispatch.ts';
import { sql } from 'kysely';
import { newEvent } from '../../../src/domain/events.ts';
import { createEventSink } from '../../../src/jobs/domain-events.ts';
import type { OutboundJobDeps } from '../../../src/connectors/webhook-bridge/outbound/deliver.ts';
import { operatorContext, recordingIo, runOperator } from '../../support/operator.ts';
import { type WebhookReceiver, startWebhookReceiver } from '../../fakes/webhook-receiver.ts';
import { killAll, spawnCli } from '../../support/cli.ts';
import { type DomainFixture, auditRows, domainFixture } from '../../support/domain.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { captureLogs } from '../../support/logs.ts';
import { localEvidencePipeline } from '../../support/temp.ts';

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

/** What the delivery job gets, on the fixture's database, delivering to loopback only. */
function outboundDeps(logger: Logger, evidenceDir: string): OutboundJobDeps {
  return {
    db: fixture.tdb.db,
    logger,
    clock: fixture.clock,
    metrics: createMetrics({ defaultMetrics: false }),
    config: context().config,
    jobs: fixture.jobs,
    events: createEventSink(fixture.jobs),
    notifiers: [],
    rerenderers: [],
    evidence: localEvidencePipeline(evidenceDir),
    keyring,
    connectors: [],
    integrations: () => Promise.resolve([]),
    outboundTransport: createOutboundTransport({ allowedNetworks: ['127.0.0.1/32'] }),
  };
}

/** How a subscription URL is shown anywhere: its origin and a short hash of the whole URL. */
const shown = (url: string) => `${new URL(url).origin}/…#${createHash('sha256').update(url).digest('hex').slice(0, 8)}`;

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
    expect(out).toEqual([`added subscription ${id}: ${shown(receiver.url)} (task.*, incident.created)`, `signing secret (shown only now; give it to the receiver): ${secret}`]);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);

    const row = await fixture.tdb.db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ url: null, url_display: shown(receiver.url), event_types: ['task.*', 'incident.created'], description: 'Acme SIEM', enabled: true });
    expect(isEnvelope(row.url_encrypted)).toBe(true);
    expect(subscriptionUrl(keyring, row)).toBe(receiver.url);
    expect(() => subscriptionUrl(keyring, { ...row, id: randomUUID() })).toThrow(DecryptionError);
    expect(isEnvelope(row.secret)).toBe(true);
    expect(JSON.stringify(row)).not.toContain(secret.slice('whsec_'.length));
    expect(subscriptionSecret(keyring, row)).toBe(secret);
    // The ciphertext is bound to its subscription: copied to another row it does not decrypt.
    expect(() => subscriptionSecret(keyring, { id: randomUUID(), secret: row.secret })).toThrow(DecryptionError);

    const listed = await run(['list']);
    expect(listed.out.find((line) => line.startsWith(id))).toBe(`${id}\t${shown(receiver.url)}\ttask.*,incident.created\tenabled\tlast: none\tAcme SIEM`);
    expect(listed.out.join('\n')).not.toContain(secret);
    const [audit] = await auditRows(fixture, id);
    expect(audit).toMatchObject({ action: 'webhook_subscription.add', actor: 'anonymous:cli', outcome: 'success', detail: { url: shown(receiver.url), eventTypes: ['task.*', 'incident.created'] } });
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

  it('refuses what can be refused without the network before resolving the host: credentials, scheme, malformed, event types', async () => {
    const lookups: string[] = [];
    const verb = createSubscriptionsVerb({
      resolve: (hostname) => {
        lookups.push(hostname);
        return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
      },
    });
    const add = async (url: string, event = 'task.*', ctx = context()) => {
      const recorded = recordingIo();
      const outcome = await runVerb(ctx, verb, ['add', '--url', url, '--event', event], recorded.io).then(
        (code) => ({ code, error: undefined }),
        (error: unknown) => ({ code: undefined, error: error as { exitCode?: number; code?: string; message: string } }),
      );
      return { ...outcome, err: recorded.err };
    };
    const credentials = await add('https://user:pw@does-not-exist.invalid/hooks/projectx');
    expect(credentials.error).toMatchObject({ exitCode: 1, code: 'invalid_url', message: 'the URL must not carry credentials (user:password@); the signature authenticates us to the receiver' });
    expect(credentials.err).toEqual([]);
    expect((await add('ftp://does-not-exist.invalid/hooks')).error).toMatchObject({ exitCode: 1, code: 'invalid_url', message: expect.stringContaining('https or http') as unknown });
    const malformed = await add('https://does-not-exist.invalid:99999/t0ken-in-a-bad-url');
    expect(malformed.error).toMatchObject({ exitCode: 1, code: 'invalid_url' });
    expect(malformed.error?.message).not.toContain('t0ken-in-a-bad-url');
    expect((await add('https://does-not-exist.invalid/hooks', 'task.exploded')).error).toMatchObject({ exitCode: 1, code: 'unknown_event_type' });
    expect((await add('https://does-not-exist.invalid/hooks', 'task.*', context({ keyring: undefined }))).error).toMatchObject({ exitCode: 1, message: expect.stringContaining('set PROJECTX_ENCRYPTION_KEY') as unknown });
    expect(lookups).toEqual([]);

    // What passes all of that is resolved, and a name that does not resolve yet is only a warning.
    const unresolved = await add('https://does-not-exist.invalid/hooks/projectx');
    expect(unresolved.code).toBe(0);
    expect(lookups).toEqual(['does-not-exist.invalid']);
    expect(unresolved.err).toEqual(['warning: does-not-exist.invalid did not resolve (ENOTFOUND); deliveries will be retried until it does']);
  });

  it('with the system resolver too, a URL with credentials gets the credentials error and no DNS warning', async () => {
    const recorded = recordingIo();
    await expect(runVerb(context(), subscriptionsVerb, ['add', '--url', 'https://user:pw@does-not-exist.invalid/hooks', '--event', 'task.*'], recorded.io)).rejects.toMatchObject({ exitCode: 1, code: 'invalid_url', message: expect.stringContaining('must not carry credentials') as unknown });
    expect(recorded.err).toEqual([]);
  });

  it("keeps a subscription URL's token out of the database, the logs and the views, and still delivers to the URL", async () => {
    const token = `tok_${randomBytes(12).toString('hex')}`;
    const query = `sig_${randomBytes(12).toString('hex')}`;
    const url = `${new URL(receiver.url).origin}/hooks/${token}?key=${query}`;
    const { id, out } = await added(url, ['task.created']);
    expect(out[0]).toBe(`added subscription ${id}: ${shown(url)} (task.created)`);
    expect(shown(url)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/…#[0-9a-f]{8}$/);

    const logs = captureLogs();
    const deps = outboundDeps(logs.logger, 'outbound-token-evidence');
    const jobContext = () => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name: deliverWebhook.name, retryCount: 0 } });
    const deliver = async () => {
      const event = newEvent({ type: 'task.created', subject: { kind: 'task', id: randomUUID(), label: 'T-9' }, summary: 'T-9 created' }, fixture.clock.now());
      await enqueueSubscriptionDeliveries(deps, fixture.tdb.db, event);
      const delivery = await fixture.tdb.db.selectFrom('webhook_deliveries').select('id').where('subscription_id', '=', id).where('message_id', '=', `msg_${event.id.replaceAll('-', '')}`).executeTakeFirstOrThrow();
      await deliverWebhook.handler({ deliveryId: delivery.id, attempt: 1 }, jobContext());
    };
    const before = receiver.received.length;
    receiver.answer(204, 500);
    await deliver();
    await deliver();
    await deps.outboundTransport?.close();
    // Decrypted to deliver: the receiver was called at the whole URL, twice.
    expect(receiver.received.length).toBe(before + 2);

    // A dump of every table: the token is nowhere (not the subscription, its deliveries, the audit log or the queue).
    const tables = await sql<{ schema: string; name: string }>`select table_schema as schema, table_name as name from information_schema.tables where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`.execute(fixture.tdb.db);
    expect(tables.rows.map((table) => table.name)).toContain('webhook_subscriptions');
    for (const table of tables.rows) {
      const found = await sql<{ n: string }>`select count(*) as n from ${sql.table(`${table.schema}.${table.name}`)} t where t::text like ${`%${token}%`} or t::text like ${`%${query}%`}`.execute(fixture.tdb.db);
      expect(found.rows[0]!.n, `${table.schema}.${table.name}`).toBe('0');
    }
    const dump = await sql<{ row: string }>`select t::text as row from webhook_subscriptions t where id = ${id}`.execute(fixture.tdb.db);
    expect(dump.rows[0]!.row).toContain(shown(url));
    expect(logs.text()).not.toContain(token);
    expect(logs.text()).toContain(shown(url));

    // The operator's views show the origin and the hash only.
    const views = [await run(['list']), await run(['list', '--json']), await run(['deliveries', id]), await run(['enable', id])];
    for (const view of views) expect(view.out.join('\n')).not.toContain(token);
    expect(views[0]!.out.find((line) => line.startsWith(id))).toContain(shown(url));
    expect(JSON.parse(views[1]!.out.join('\n'))).toEqual(expect.arrayContaining([expect.objectContaining({ id, endpoint: shown(url) })]));
  });

  it('removes and re-enables by id (audited); an unknown id exits 1', async () => {
    const { id } = await added();
    await fixture.tdb.db.updateTable('webhook_subscriptions').set({ enabled: false, disabled_reason: 'the endpoint answered 410 Gone at 2026-11-22T09:00:00.000Z' }).where('id', '=', id).execute();
    expect((await run(['list'])).out.find((line) => line.startsWith(id))).toContain('\tdisabled (the endpoint answered 410 Gone at 2026-11-22T09:00:00.000Z)\t');
    expect((await run(['enable', id])).out).toEqual([`enabled ${id}: ${shown(receiver.url)}`]);
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
    const deps = outboundDeps(captureLogs().logger, 'outbound-cli-evidence');
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
    expect(list.stdout()).toContain(`${id}\t${shown('http://127.0.0.1:9/from-the-binary')}\tincident.*\tenabled\tlast: none`);
    expect(list.stdout()).not.toContain('from-the-binary');
    expect(list.stdout() + list.stderr()).not.toContain(secret!);

    const keyless = spawnCli(['subscriptions', 'add', '--url', 'http://127.0.0.1:9/x', '--event', 'task.*'], { env: { DATABASE_URL: fixture.tdb.url }, cwd: dir });
    expect((await keyless.exited).code).toBe(1);
    expect(keyless.stderr()).toContain('set PROJECTX_ENCRYPTION_KEY');
  });
});
