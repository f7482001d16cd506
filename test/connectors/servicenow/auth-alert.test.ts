/**
 * The on-call page for credentials that keep failing says what happened, so the on-call looks in the right place:
 * the token endpoint refused us (the OAuth client or the integration user), or it could not be reached (the
 * network or the instance: nothing refused anything). Real token endpoints on 127.0.0.1: the fake ServiceNow
 * refusing a wrong secret (401), a bare server answering 400 invalid_client as RFC 6749 §5.2 allows, the fake
 * answering 503, and a closed port.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBreaker } from '../../../src/connectors/sdk/breaker.ts';
import type { ConnectorRuntime } from '../../../src/connectors/sdk/contract.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv, loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { type RunSummary, runSync } from '../../../src/connectors/sdk/sync.ts';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { createMetrics } from '../../../src/metrics.ts';
import { type FakeServiceNow, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';

let fx: DomainFixture;
let runtime: ConnectorRuntime;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const CLIENT = { id: 'be3aeb583ace210011c15b24a43e25d8', secret: 'client_password' };
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  fx = await domainFixture();
  runtime = { db: fx.tdb.db, logger: captureLogs().logger, clock: fx.clock, metrics: createMetrics({ defaultMetrics: false }), events: fx.deps.events };
});
afterAll(async () => {
  for (const close of closers) await close();
  await fx.close();
});

async function fakeServiceNow(): Promise<FakeServiceNow> {
  const fake = await startFakeServiceNow();
  closers.push(() => fake.close());
  return fake;
}

/** A token endpoint that refuses every client the way RFC 6749 §5.2 allows: 400 with `invalid_client`. */
async function refusingTokenEndpoint(): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/oauth_token.do') res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_client', error_description: 'Client authentication failed' }));
      else res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"message":"User Not Authenticated"},"status":"failure"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A port nothing listens on: taken, then let go. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Two pulls (not the last attempts: the queue would retry) of an instance of its own at `baseUrl`. */
async function twoSyncs(baseUrl: string, secret = CLIENT.secret): Promise<{ id: string; summaries: RunSummary[] }> {
  const id = (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: `alert${randomBytes(3).toString('hex')}`, settings: { baseUrl, clientId: CLIENT.id, timeoutMs: 2000 }, credentials: { client_secret: secret } }))!;
  const summaries: RunSummary[] = [];
  for (let attempt = 0; attempt < 2; attempt++) {
    const instance = await loadInstance(fx.tdb.db, keyring, servicenow, id);
    const client = servicenow.createClient(instance, { ...runtime, keyring });
    try {
      summaries.push(
        await runSync({
          runtime,
          connector: servicenow,
          instance,
          client,
          breaker: createBreaker({ ...runtime, instance, connector: servicenow, direction: 'read' }),
          request: { runId: crypto.randomUUID(), model: 'incident', full: false, trigger: 'manual' },
          finalAttempt: false,
          signal: new AbortController().signal,
        }),
      );
    } finally {
      await client.close();
    }
  }
  return { id, summaries };
}

async function theAlert(id: string): Promise<DomainEvent> {
  const alerts = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.auth_failing', subject: { id } } } });
  expect(alerts).toHaveLength(1);
  return alerts[0]!.data.payload;
}

describe('the on-call alert for failing credentials', () => {
  it('says the credentials were refused when the token endpoint answers 401 to a wrong client secret', async () => {
    const sn = await fakeServiceNow();
    const { id, summaries } = await twoSyncs(sn.url, 'not-the-right-secret');
    expect(summaries.map((summary) => summary.errorCodes)).toEqual([['oauth_client_refused'], ['oauth_client_refused']]);
    const alert = await theAlert(id);
    expect(alert.summary).toContain('refused our credentials twice in a row: its token endpoint answered HTTP 401 (oauth_client_refused)');
    expect(alert.summary).toContain('Check the OAuth client');
    expect(alert.summary).not.toContain('could not reach');
    expect(alert.data).toMatchObject({ failure: 'refused', errorCode: 'oauth_client_refused', httpStatus: 401, runbookId: 'RB-002' });
    expect(JSON.stringify(alert)).not.toContain('not-the-right-secret');
  });

  it('says the credentials were refused when the token endpoint answers 400 invalid_client', async () => {
    const { id, summaries } = await twoSyncs(await refusingTokenEndpoint());
    expect(summaries.map((summary) => summary.errorCodes)).toEqual([['oauth_client_refused'], ['oauth_client_refused']]);
    const alert = await theAlert(id);
    expect(alert.summary).toContain('refused our credentials twice in a row: its token endpoint answered HTTP 400 invalid_client (oauth_client_refused)');
    expect(alert.data).toMatchObject({ failure: 'refused', httpStatus: 400 });
  });

  it('says the token endpoint could not be reached, and that nothing refused anything, when its port is closed', async () => {
    const { id, summaries } = await twoSyncs(await closedPort());
    expect(summaries.map((summary) => summary.errorCodes)).toEqual([['token_endpoint_unavailable'], ['token_endpoint_unavailable']]);
    const alert = await theAlert(id);
    expect(alert.summary).toContain('could not reach its token endpoint twice in a row (the connection failed)');
    expect(alert.summary).toContain('nothing refused our credentials');
    expect(alert.summary).toContain('Runbook RB-002');
    expect(alert.summary).not.toContain('refused our credentials twice');
    expect(alert.data).toMatchObject({ failure: 'unreachable', errorCode: 'token_endpoint_unavailable', runbookId: 'RB-002' });
  });

  it('says the token endpoint could not be reached when it answers 503', async () => {
    const sn = await fakeServiceNow();
    sn.failAlways({ status: 503 }, { pathPrefix: '/oauth_token.do' });
    const { id } = await twoSyncs(sn.url);
    const alert = await theAlert(id);
    expect(alert.summary).toContain('could not reach its token endpoint twice in a row (HTTP 503)');
    expect(alert.summary).not.toContain('refused our credentials twice');
    expect(alert.data).toMatchObject({ failure: 'unreachable', httpStatus: 503 });
  });

  it('counts refusals and outages apart: an outage then a refusal pages nobody', async () => {
    const sn = await fakeServiceNow();
    sn.failNext(3, { status: 503 }, { pathPrefix: '/oauth_token.do' });
    const id = (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: `mixed${randomBytes(3).toString('hex')}`, settings: { baseUrl: sn.url, clientId: CLIENT.id }, credentials: { client_secret: 'not-the-right-secret' } }))!;
    for (let attempt = 0; attempt < 2; attempt++) {
      const instance = await loadInstance(fx.tdb.db, keyring, servicenow, id);
      const client = servicenow.createClient(instance, { ...runtime, keyring });
      try {
        await runSync({ runtime, connector: servicenow, instance, client, breaker: createBreaker({ ...runtime, instance, connector: servicenow, direction: 'read' }), request: { runId: crypto.randomUUID(), model: 'incident', full: false, trigger: 'manual' }, finalAttempt: false, signal: new AbortController().signal });
      } finally {
        await client.close();
      }
    }
    expect(await fx.tdb.db.selectFrom('integration_health_metrics').select(['last_error_code', 'consecutive_failures']).where('config_id', '=', id).executeTakeFirstOrThrow()).toEqual({ last_error_code: 'oauth_client_refused', consecutive_failures: 1 });
    expect(await fx.jobs.boss.findJobs('domain.event', { data: { payload: { type: 'integration.auth_failing', subject: { id } } } })).toHaveLength(0);
  });
});
