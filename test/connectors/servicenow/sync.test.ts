/**
 * ServiceNow incident sync, end to end against the fake ServiceNow (real HTTP on 127.0.0.1) and a real
 * database: the sync runner, the keyset pull, OAuth, the ledger and the domain mirror. Each test has an
 * instance of its own, so runs do not see each other's records.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBreaker } from '../../../src/connectors/sdk/breaker.ts';
import type { ConnectorInstance, ConnectorRuntime } from '../../../src/connectors/sdk/contract.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv, loadInstance } from '../../../src/connectors/sdk/instances.ts';
import { type RunSummary, runSync } from '../../../src/connectors/sdk/sync.ts';
import type { ServiceNowSettings } from '../../../src/connectors/servicenow/client.ts';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import { incidentRecord } from '../../../src/connectors/servicenow/mapper.ts';
import { keysetQuery } from '../../../src/connectors/servicenow/sync.ts';
import { createMetrics } from '../../../src/metrics.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { routeEvent } from '../../../src/domain/routing.ts';
import { FIXTURE_INCIDENT } from '../../fakes/servicenow/fixtures.ts';
import { type FakeServiceNow, type FakeServiceNowOptions, changeRequestFields, fieldValue, incidentFields, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';
import { captureLogs } from '../../support/logs.ts';

let fx: DomainFixture;
let runtime: ConnectorRuntime;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const CLIENT = { id: 'be3aeb583ace210011c15b24a43e25d8', secret: 'client_password' };
const T0 = Date.parse('2026-11-01T00:00:00Z');
const at = (seconds: number) => new Date(T0 + seconds * 1000);

const fakes: FakeServiceNow[] = [];
beforeAll(async () => {
  fx = await domainFixture();
  runtime = { db: fx.tdb.db, logger: captureLogs().logger, clock: fx.clock, metrics: createMetrics({ defaultMetrics: false }), events: fx.deps.events };
});
afterAll(async () => {
  await Promise.all(fakes.map((fake) => fake.close()));
  await fx.close();
});

/** A fake ServiceNow of the test's own. */
async function fakeServiceNow(options: FakeServiceNowOptions = {}): Promise<FakeServiceNow> {
  const fake = await startFakeServiceNow(options);
  fakes.push(fake);
  return fake;
}

/** A ServiceNow instance of its own (its records, checkpoint and token apart from other tests'). */
async function instanceFor(sn: FakeServiceNow, settings: Partial<ServiceNowSettings> = {}): Promise<ConnectorInstance<ServiceNowSettings>> {
  const name = `t${randomBytes(3).toString('hex')}`;
  const id = await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, {
    name,
    settings: { baseUrl: sn.url, clientId: CLIENT.id, pageSize: 500, overlapSeconds: 60, ...settings },
    credentials: { client_secret: CLIENT.secret },
  });
  return loadInstance(fx.tdb.db, keyring, servicenow, id!);
}

async function sync(instance: ConnectorInstance<ServiceNowSettings>, options: { full?: boolean; runId?: string; finalAttempt?: boolean } = {}): Promise<RunSummary> {
  const client = servicenow.createClient(instance, { ...runtime, keyring });
  try {
    return await runSync({
      runtime,
      connector: servicenow,
      instance,
      client,
      breaker: createBreaker({ ...runtime, instance, connector: servicenow, direction: 'read' }),
      request: { runId: options.runId ?? crypto.randomUUID(), model: 'incident', full: options.full ?? false, trigger: 'manual' },
      finalAttempt: options.finalAttempt ?? true,
      signal: new AbortController().signal,
    });
  } finally {
    await client.close();
  }
}

const ledger = (instance: ConnectorInstance) => fx.tdb.db.selectFrom('external_records').select(['external_id', 'number', 'content_hash', 'source_updated_at']).where('config_id', '=', instance.id).where('model', '=', 'incident').execute();
const mirrored = (instance: ConnectorInstance) => fx.tdb.db.selectFrom('incidents').select(['external_id', 'number', 'priority', 'state']).where('source_system', '=', `servicenow:${instance.name}`).execute();

describe('ServiceNow incident sync', () => {
  it('asks for each page after the last record stored, ties included (keyset on sys_updated_on, sys_id)', () => {
    expect(keysetQuery(null)).toBe('ORDERBYsys_updated_on^ORDERBYsys_id');
    expect(keysetQuery({ updatedOn: '2026-11-01 00:00:05', sysId: 'a'.repeat(32) })).toBe(`sys_updated_on=2026-11-01 00:00:05^sys_id>${'a'.repeat(32)}^NQsys_updated_on>2026-11-01 00:00:05^ORDERBYsys_updated_on^ORDERBYsys_id`);
    expect(keysetQuery({ updatedOn: '2026-11-01 00:00:05', sysId: '' })).toBe('sys_updated_on>=2026-11-01 00:00:05^ORDERBYsys_updated_on^ORDERBYsys_id');
  });

  it('imports 10,000 incidents, then only what changed after 100 updates', async () => {
    const sn = await fakeServiceNow();
    // Three records per second: every page boundary falls inside a group sharing one sys_updated_on.
    sn.insertMany('incident', 10_000, (i) => incidentFields({ number: `INC${String(1_000_000 + i).padStart(7, '0')}`, priority: String((i % 4) + 2), state: '1', short_description: `Incident ${i}` }, sn.url), (i) => at(Math.floor(i / 3)));
    const instance = await instanceFor(sn);
    const before = sn.requests.length;
    const first = await sync(instance);
    expect(first).toMatchObject({ status: 'succeeded', counts: { seen: 10_000, created: 10_000, updated: 0, unchanged: 0, rejected: 0, pages: 20 } });
    expect(await ledger(instance)).toHaveLength(10_000);
    expect(await mirrored(instance)).toHaveLength(10_000);
    const listCalls = sn.requests.slice(before).filter((request) => request.path === '/api/now/table/incident');
    expect(listCalls).toHaveLength(21); // 20 full pages, then an empty answer: the end
    expect(listCalls.at(-1)!.status).toBe(200);
    expect(listCalls.every((request) => request.query.sysparm_fields?.split(',').includes('sys_updated_on') && request.query.sysparm_limit === '500')).toBe(true);
    expect(sn.tokenRequests()).toBe(1);

    // 100 updates, later: the next run reads them (and re-reads the 60 s overlap, unchanged).
    const ids = (await ledger(instance)).map((row) => row.external_id).slice(0, 100);
    for (const [index, id] of ids.entries()) sn.update('incident', id, { short_description: `Updated ${index}` }, at(5000 + index));
    const second = await sync(instance);
    expect(second).toMatchObject({ status: 'succeeded', counts: { created: 0, updated: 100, rejected: 0 } });
    expect(second.counts.seen - 100).toBe(second.counts.unchanged);
    expect(second.counts.pages).toBe(1);
    const run = await fx.tdb.db.selectFrom('integration_runs').selectAll().where('id', '=', second.runId).executeTakeFirstOrThrow();
    expect(run).toMatchObject({ status: 'succeeded', model: 'incident', config_id: instance.id });
    expect(run.cursor_after).toEqual({ updatedOn: '2026-11-01 01:24:59', sysId: ids[99] });
    expect(run.payload_hashes).toHaveLength(1);

    // Nothing changed: a third run writes nothing.
    const third = await sync(instance);
    expect(third.counts).toMatchObject({ created: 0, updated: 0 });
    const metrics = await runtime.metrics.registry.metrics();
    expect(metrics).toContain('sync_records_total{connector="servicenow",model="incident",outcome="created"} 10000');
    expect(metrics).toMatch(/upstream_requests_total\{connector="servicenow",status="200"\} \d+/);
  });

  it('gets every one of 1,000 records sharing one sys_updated_on across pages, each once', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 1000, (i) => incidentFields({ number: `INC${String(2_000_000 + i)}`, priority: '4', state: '2' }, sn.url), at(100));
    sn.insertMany('incident', 10, (i) => incidentFields({ number: `INC${String(2_100_000 + i)}`, priority: '4', state: '2' }, sn.url), at(101));
    const instance = await instanceFor(sn, { pageSize: 300 });
    const run = await sync(instance);
    expect(run).toMatchObject({ status: 'succeeded', counts: { seen: 1010, created: 1010, updated: 0, unchanged: 0, pages: 4 } });
    expect(await ledger(instance)).toHaveLength(1010);
    // Pages 2-4 continued inside the tie: the rest at that second after the last sys_id, then what follows.
    const queries = sn.requests.filter((request) => request.path === '/api/now/table/incident').map((request) => request.query.sysparm_query);
    expect(queries[1]).toMatch(/^sys_updated_on=2026-11-01 00:01:40\^sys_id>[0-9a-f]{32}\^NQsys_updated_on>2026-11-01 00:01:40\^ORDERBY/);
  });

  it('picks up records changed while it runs, and late commits inside the overlap window next time', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 1200, (i) => incidentFields({ number: `INC${String(3_000_000 + i)}`, priority: '3', state: '1' }, sn.url), (i) => at(i));
    const instance = await instanceFor(sn, { pageSize: 400 });
    sn.setPageLatency(150);
    const running = sync(instance);
    // Once the first page is answered, change one of its records and add a new one.
    await vi.waitFor(() => expect(sn.requests.filter((request) => request.path === '/api/now/table/incident' && request.status === 200).length).toBeGreaterThanOrEqual(1), { timeout: 10_000, interval: 5 });
    const firstId = await firstSysId(sn); // on the first page, already stored
    sn.update('incident', firstId, { short_description: 'changed during the sync' }, at(5000));
    const added = sn.insert('incident', incidentFields({ number: 'INC3999999', priority: '3', state: '1' }, sn.url), at(5001));
    const first = await running;
    sn.setPageLatency(0);
    expect(first.status).toBe('succeeded');

    // A record whose update committed late, stamped inside the window before the checkpoint.
    const late = sn.insert('incident', incidentFields({ number: 'INC3999998', priority: '3', state: '1' }, sn.url), at(4990));
    const second = await sync(instance);
    expect(second.counts).toMatchObject({ created: 1, updated: 0 });
    const rows = await ledger(instance);
    expect(rows).toHaveLength(1202);
    expect(new Set(rows.map((row) => row.external_id)).size).toBe(1202);
    expect(rows.map((row) => row.external_id)).toEqual(expect.arrayContaining([fieldValue(added.sys_id), fieldValue(late.sys_id)]));
    const changed = await fx.tdb.db.selectFrom('external_records').select('data').where('config_id', '=', instance.id).where('external_id', '=', firstId).executeTakeFirstOrThrow();
    expect(changed.data).toMatchObject({ short_description: 'changed during the sync' });
    expect(first.counts.created + second.counts.created).toBe(1202);
    expect(first.counts.updated).toBe(1); // the changed record, read again at its new place in this same run
  });

  it('rides out a 429 storm: short waits honoured inside a call, long ones handed back with the time, no hot loop', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 50, (i) => incidentFields({ number: `INC${String(4_000_000 + i)}`, priority: '3', state: '1' }, sn.url), (i) => at(i));
    const instance = await instanceFor(sn, { pageSize: 20 });
    const table = { method: 'GET', pathPrefix: '/api/now/table/incident' };
    // A short Retry-After is waited out inside the call.
    sn.failNext(1, { status: 429, retryAfterSeconds: 1 }, table);
    const short = await sync(instance);
    expect(short).toMatchObject({ status: 'succeeded', counts: { created: 50 } });

    // A long one ends the attempt at once with the time to come back; the same run resumes from its checkpoint.
    sn.insertMany('incident', 30, (i) => incidentFields({ number: `INC${String(4_100_000 + i)}`, priority: '3', state: '1' }, sn.url), (i) => at(1000 + i));
    sn.failNext(3, { status: 429, retryAfterSeconds: 120 }, table);
    const runId = crypto.randomUUID();
    const requestsBefore = sn.requests.length;
    const attempts: RunSummary[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      const summary = await sync(instance, { runId });
      attempts.push(summary);
      if (summary.status !== 'deferred') break;
      const retryAt = Date.parse(summary.retryAt!);
      expect(retryAt - fx.clock.now().getTime()).toBe(120_000); // Retry-After 120 s on the service clock, not a backoff of our own
    }
    expect(attempts.map((attempt) => attempt.status)).toEqual(['deferred', 'deferred', 'deferred', 'succeeded']);
    // The 30 new records, and the 50 old ones re-read through the 60 s overlap window, unchanged.
    expect(attempts.at(-1)!.counts).toMatchObject({ created: 30, unchanged: 50, pages: 4 });
    // One request per deferred attempt: nothing retried the 429 in a loop.
    const made = sn.requests.slice(requestsBefore).filter((request) => request.path === '/api/now/table/incident');
    expect(made.map((request) => request.status)).toEqual([429, 429, 429, 200, 200, 200, 200, 200]);
    const run = await fx.tdb.db.selectFrom('integration_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();
    expect(run).toMatchObject({ status: 'succeeded', error_codes: ['rate_limited'] });
    expect(await runtime.metrics.registry.metrics()).toMatch(/rate_limited_total\{connector="servicenow"\} [4-9]/);
  });

  it('gets a new token when the old one expires mid-sync, and carries on', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 900, (i) => incidentFields({ number: `INC${String(5_000_000 + i)}`, priority: '3', state: '1' }, sn.url), (i) => at(i));
    const instance = await instanceFor(sn, { pageSize: 300 });
    sn.setPageLatency(100);
    const running = sync(instance);
    await vi.waitFor(() => expect(sn.requests.filter((request) => request.path === '/api/now/table/incident' && request.status === 200).length).toBeGreaterThanOrEqual(1), { timeout: 10_000, interval: 5 });
    sn.expireTokens();
    const summary = await running;
    sn.setPageLatency(0);
    expect(summary).toMatchObject({ status: 'succeeded', counts: { created: 900 } });
    expect(sn.tokenRequests()).toBe(2);
    expect(sn.requests.filter((request) => request.path === '/api/now/table/incident').map((request) => request.status)).toContain(401);
  });

  it('keeps a record that fails validation aside with one alert, and goes on with the rest of the page', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 20, (i) => incidentFields({ number: `INC${String(6_000_000 + i)}`, priority: i === 7 ? '9' : '3', state: '1' }, sn.url), (i) => at(i));
    const instance = await instanceFor(sn);
    const first = await sync(instance);
    expect(first).toMatchObject({ status: 'partial', counts: { seen: 20, created: 19, rejected: 1 }, errorCodes: ['record_rejected'] });
    expect(await ledger(instance)).toHaveLength(19);
    const kept = await fx.tdb.db.selectFrom('integration_events').selectAll().where('config_id', '=', instance.id).execute();
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({ source: 'servicenow:incident', event_type: 'record_rejected', status: 'rejected', payload: { number: 'INC6000007', priority: '9' } });
    expect(JSON.stringify(kept[0]!.error)).toContain('priority');
    expect(await eventTypes(instance.id)).toEqual(['integration.record_rejected']);

    // A full re-sync meets it again: still kept once, no second alert.
    const again = await sync(instance, { full: true });
    expect(again.counts).toMatchObject({ rejected: 1, unchanged: 19 });
    expect(await fx.tdb.db.selectFrom('integration_events').select('id').where('config_id', '=', instance.id).execute()).toHaveLength(1);
    expect(await eventTypes(instance.id)).toEqual(['integration.record_rejected']);
  });

  it('announces a new P1 incident once across re-syncs, and a P3 raised to P1 once', async () => {
    const sn = await fakeServiceNow();
    const p1 = sn.insert('incident', incidentFields({ number: 'INC7000001', priority: '1', state: '1', short_description: 'Payments down' }, sn.url), at(1));
    const p3 = sn.insert('incident', incidentFields({ number: 'INC7000002', priority: '3', state: '1' }, sn.url), at(2));
    const instance = await instanceFor(sn);
    await sync(instance);
    await sync(instance, { full: true });
    sn.update('incident', fieldValue(p1.sys_id), { short_description: 'Payments down (EU)' }, at(10));
    await sync(instance);
    const p1Incident = await incidentId(instance, fieldValue(p1.sys_id));
    expect(await eventTypes(p1Incident)).toEqual(['incident.created']);
    const p3Incident = await incidentId(instance, fieldValue(p3.sys_id));
    expect(await eventTypes(p3Incident)).toEqual([]);

    sn.update('incident', fieldValue(p3.sys_id), { priority: '1' }, at(20));
    await sync(instance);
    await sync(instance, { full: true });
    expect(await eventTypes(p3Incident)).toEqual(['incident.updated']);
    const [event] = await fx.jobs.boss.findJobs<{ payload: { priority: number; summary: string } }>('domain.event', { data: { payload: { subject: { id: p1Incident } } } });
    expect(event!.data.payload).toMatchObject({ priority: 1, summary: 'INC7000001 (P1) Payments down' });
  });

  it('resumes a failed run from its last committed page, same run, without reading what it stored again', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 100, (i) => incidentFields({ number: `INC${String(8_000_000 + i)}`, priority: '3', state: '1' }, sn.url), (i) => at(i));
    const instance = await instanceFor(sn, { pageSize: 25 });
    const runId = crypto.randomUUID();
    // The page after record 49 (page 3) answers 500, which is not retried inside a call: the attempt ends.
    const page3 = { method: 'GET', pathPrefix: '/api/now/table/incident', queryIncludes: 'sys_updated_on=2026-11-01 00:00:49^' };
    sn.failAlways({ status: 500 }, page3);
    const before = sn.requests.length;
    const first = await sync(instance, { runId, finalAttempt: false });
    sn.failAlways(undefined, page3);
    expect(first).toMatchObject({ status: 'retrying', errorCodes: ['upstream_error'], counts: { pages: 2, created: 50 } });
    const open = await fx.tdb.db.selectFrom('integration_runs').select(['status', 'error_codes']).where('id', '=', runId).executeTakeFirstOrThrow();
    expect(open).toEqual({ status: 'running', error_codes: ['upstream_error'] });

    const resumed = await sync(instance, { runId });
    expect(resumed).toMatchObject({ status: 'succeeded', counts: { created: 100, pages: 4 } });
    const lists = sn.requests.slice(before).filter((request) => request.path === '/api/now/table/incident');
    const served = lists.filter((request) => request.status === 200).length;
    // The retry started right after page 2's last record (no overlap window for a resumed run).
    const retried = lists.find((request, index) => index > 0 && lists[index - 1]!.status === 500)!;
    expect(retried.query.sysparm_query).toMatch(/^sys_updated_on=2026-11-01 00:00:49\^sys_id>/);
    expect(served).toBe(5); // pages 1-2, then 3-4 and the empty end
    expect(await ledger(instance)).toHaveLength(100);
  });

  it('pages the on-call route once when ServiceNow refuses our credentials twice in a row, and recovers', async () => {
    const sn = await fakeServiceNow();
    sn.insert('incident', incidentFields({ number: 'INC9100001', priority: '3', state: '1' }, sn.url), at(1));
    const name = `auth${randomBytes(3).toString('hex')}`;
    const configure = (secret: string) => ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name, settings: { baseUrl: sn.url, clientId: CLIENT.id }, credentials: { client_secret: secret } });
    const id = (await configure('not-the-right-secret'))!;
    const instance = () => loadInstance(fx.tdb.db, keyring, servicenow, id);
    for (let attempt = 0; attempt < 3; attempt++) {
      const summary = await sync(await instance(), { finalAttempt: false });
      expect(summary).toMatchObject({ status: 'retrying', errorCodes: ['oauth_client_refused'] });
    }
    const alerts = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.auth_failing', subject: { id } } } });
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.data.payload).toMatchObject({ priority: 1, summary: expect.stringContaining('refused our credentials twice in a row: its token endpoint answered HTTP 401 (oauth_client_refused)') });
    expect(alerts[0]!.data.payload.summary).toContain('Runbook RB-002');
    expect(JSON.stringify(alerts[0]!.data.payload)).not.toContain('not-the-right-secret');
    expect((await routeEvent(fx.tdb.db, alerts[0]!.data.payload)).map((target) => target.target)).toEqual(expect.arrayContaining(['oncall']));
    expect(await fx.tdb.db.selectFrom('integration_health_metrics').select(['status', 'consecutive_failures']).where('config_id', '=', id).executeTakeFirstOrThrow()).toEqual({ status: 'down', consecutive_failures: 3 });

    // Another kind of failure in between starts the count anew: one more refusal after it pages nobody.
    const before = alerts.length;
    sn.failNext(1, { status: 500 }, { method: 'GET', pathPrefix: '/api/now/table/incident' });
    await configure(CLIENT.secret);
    expect(await sync(await instance(), { finalAttempt: false })).toMatchObject({ status: 'retrying', errorCodes: ['upstream_error'] });
    // (as a final attempt would have recorded it)
    await fx.tdb.db.updateTable('integration_health_metrics').set({ last_error_code: 'upstream_error', consecutive_failures: 1 }).where('config_id', '=', id).execute();
    await configure('not-the-right-secret');
    await sync(await instance(), { finalAttempt: false });
    expect(await fx.jobs.boss.findJobs('domain.event', { data: { payload: { type: 'integration.auth_failing', subject: { id } } } })).toHaveLength(before);

    await configure(CLIENT.secret);
    // Five failures in a row opened the read circuit: the next run is the probe, after the cooldown.
    expect(await sync(await instance())).toMatchObject({ status: 'deferred', errorCodes: ['circuit_open'] });
    fx.clock.advance(60_000);
    expect(await sync(await instance())).toMatchObject({ status: 'succeeded', counts: { created: 1 } });
    expect(await fx.tdb.db.selectFrom('integration_health_metrics').select(['status', 'consecutive_failures']).where('config_id', '=', id).executeTakeFirstOrThrow()).toEqual({ status: 'healthy', consecutive_failures: 0 });
  });

  it("reads the docs' incident example, whose references are { link, value }, with each reference as its sys_id", () => {
    const parsed = incidentRecord.safeParse(FIXTURE_INCIDENT);
    expect(parsed.success && parsed.data).toMatchObject({ number: 'INC0000046', assignment_group: '8a4dde73c6112278017a6a4baf547aa7', assigned_to: '' });
    const withDisplay = { ...FIXTURE_INCIDENT, assigned_to: { display_value: 'Beth Anglin', link: 'https://instance.servicenow.com/api/now/table/sys_user/46d44a23a9fe19810012d100cca80666', value: '46d44a23a9fe19810012d100cca80666' } };
    expect(incidentRecord.parse(withDisplay).assigned_to).toBe('46d44a23a9fe19810012d100cca80666');
    expect(incidentRecord.safeParse({ ...FIXTURE_INCIDENT, assigned_to: { link: 'https://instance.servicenow.com/x' } }).success).toBe(false);
  });

  it('syncs records whose references arrive as objects ({ link, value }, { display_value, link, value }) as it does sys_id strings', async () => {
    const group = '8a4dde73c6112278017a6a4baf547aa7';
    const user = '46c6f9efa9fe198101ddf5eed9adf6e7';
    // An instance that answers references as objects although we ask for plain sys_ids.
    const sn = await fakeServiceNow({ referenceShape: 'link' });
    sn.insert('incident', incidentFields({ number: 'INC9250001', priority: '2', state: '2', assignment_group: group, assigned_to: user }, sn.url), at(1));
    sn.insert('change_request', changeRequestFields({ number: 'CHG9250001', assignment_group: group }, sn.url), at(1));
    const asked = sn.requests.length;
    const instance = await instanceFor(sn);
    expect(await sync(instance)).toMatchObject({ status: 'succeeded', counts: { seen: 1, created: 1, rejected: 0 } });
    expect(sn.requests.slice(asked).find((request) => request.path === '/api/now/table/incident')?.query).toMatchObject({ sysparm_exclude_reference_link: 'true' });
    const stored = await fx.tdb.db.selectFrom('external_records').select('data').where('config_id', '=', instance.id).where('model', '=', 'incident').executeTakeFirstOrThrow();
    expect(stored.data).toMatchObject({ number: 'INC9250001', assignment_group: group, assigned_to: user });
    expect(await fx.tdb.db.selectFrom('integration_events').select('id').where('config_id', '=', instance.id).execute()).toEqual([]);
    expect(await mirrored(instance)).toEqual([{ external_id: expect.any(String) as unknown, number: 'INC9250001', priority: 2, state: 'in_progress' }]);

    const client = servicenow.createClient(instance, { ...runtime, keyring });
    try {
      const changes = await runSync({ runtime, connector: servicenow, instance, client, breaker: createBreaker({ ...runtime, instance, connector: servicenow, direction: 'read' }), request: { runId: crypto.randomUUID(), model: 'change_request', full: false, trigger: 'manual' }, finalAttempt: true, signal: new AbortController().signal });
      expect(changes).toMatchObject({ status: 'succeeded', counts: { created: 1, rejected: 0 } });
    } finally {
      await client.close();
    }

    // The same records with display values, then as plain sys_ids: the same content, so nothing changed.
    sn.setReferenceShape('display');
    expect(await sync(instance, { full: true })).toMatchObject({ status: 'succeeded', counts: { seen: 1, unchanged: 1, updated: 0, rejected: 0 } });
    sn.setReferenceShape('as-requested');
    expect(await sync(instance, { full: true })).toMatchObject({ status: 'succeeded', counts: { seen: 1, unchanged: 1, updated: 0, rejected: 0 } });
  });

  it('does not stall on an incident number that moved to another record (the stale mirror row keeps a marked number)', async () => {
    const sn = await fakeServiceNow();
    const old = sn.insert('incident', incidentFields({ number: 'INC9200001', priority: '3', state: '1' }, sn.url), at(1));
    const instance = await instanceFor(sn);
    await sync(instance);
    sn.remove('incident', fieldValue(old.sys_id));
    const reused = sn.insert('incident', incidentFields({ number: 'INC9200001', priority: '2', state: '1' }, sn.url), at(2));
    expect(await sync(instance)).toMatchObject({ status: 'succeeded', counts: { created: 1 } });
    const rows = await mirrored(instance);
    expect(rows.find((row) => row.external_id === fieldValue(reused.sys_id))).toMatchObject({ number: 'INC9200001', priority: 2 });
    expect(rows.find((row) => row.external_id === fieldValue(old.sys_id))?.number).toBe(`INC9200001~${fieldValue(old.sys_id).slice(0, 8)}`);

    // Two records with one number in one page (ServiceNow allows it after an import): both arrive.
    const twins = [sn.insert('incident', incidentFields({ number: 'INC9200002', priority: '3', state: '1' }, sn.url), at(3)), sn.insert('incident', incidentFields({ number: 'INC9200002', priority: '4', state: '1' }, sn.url), at(4))];
    expect(await sync(instance)).toMatchObject({ status: 'succeeded', counts: { created: 2 } });
    const numbers = (await mirrored(instance)).filter((row) => twins.some((twin) => fieldValue(twin.sys_id) === row.external_id)).map((row) => row.number).sort();
    expect(numbers).toEqual(['INC9200002', `INC9200002~${fieldValue(twins[1]!.sys_id).slice(0, 8)}`]);
  });

  it('records a run that fails on our side (not the system) as failed on its last attempt, with the instance unhealthy', async () => {
    const sn = await fakeServiceNow();
    sn.insert('incident', incidentFields({ number: 'INC9300001', priority: '3', state: '1' }, sn.url), at(1));
    const instance = await instanceFor(sn);
    // The mirror refuses the page: a constraint of ours, not ServiceNow's answer.
    await sql`alter table incidents add constraint test_no_p3 check (priority <> 3) not valid`.execute(fx.tdb.db);
    try {
      const runId = crypto.randomUUID();
      await expect(sync(instance, { runId, finalAttempt: false })).rejects.toThrow(/test_no_p3/);
      expect(await fx.tdb.db.selectFrom('integration_runs').select(['status', 'error_codes']).where('id', '=', runId).executeTakeFirstOrThrow()).toEqual({ status: 'running', error_codes: ['23514'] });
      await expect(sync(instance, { runId, finalAttempt: true })).rejects.toThrow(/test_no_p3/);
      expect(await fx.tdb.db.selectFrom('integration_runs').select(['status']).where('id', '=', runId).executeTakeFirstOrThrow()).toEqual({ status: 'failed' });
      expect(await fx.tdb.db.selectFrom('integration_health_metrics').select(['status', 'last_error_code']).where('config_id', '=', instance.id).executeTakeFirstOrThrow()).toEqual({ status: 'degraded', last_error_code: '23514' });
    } finally {
      await sql`alter table incidents drop constraint test_no_p3`.execute(fx.tdb.db);
    }
  });

  it('resumes a run from its own last page even when another run moved the checkpoint meanwhile', async () => {
    const sn = await fakeServiceNow();
    sn.insertMany('incident', 60, (i) => incidentFields({ number: `INC${String(9_400_000 + i)}`, priority: '3', state: '1' }, sn.url), (i) => at(i));
    const instance = await instanceFor(sn, { pageSize: 20 });
    const full = crypto.randomUUID();
    // The full run stores one page, then ServiceNow asks it to come back in two minutes.
    sn.failNext(1, { status: 429, retryAfterSeconds: 120 }, { method: 'GET', pathPrefix: '/api/now/table/incident', queryIncludes: 'sys_updated_on=2026-11-01 00:00:19^' });
    expect(await sync(instance, { runId: full, full: true })).toMatchObject({ status: 'deferred', counts: { pages: 1, created: 20 } });
    // Meanwhile a scheduled run takes the model's checkpoint to the end.
    expect(await sync(instance)).toMatchObject({ status: 'succeeded', counts: { created: 40 } });
    const before = sn.requests.length;
    expect(await sync(instance, { runId: full, full: true })).toMatchObject({ status: 'succeeded', counts: { pages: 3, seen: 60, created: 20 } });
    // It went on after its own first page (not from the beginning, not from the other run's end).
    expect(sn.requests[before]!.query.sysparm_query).toMatch(/^sys_updated_on=2026-11-01 00:00:19\^sys_id>/);
  });
});

const eventTypes = async (subjectId: string) => (await fx.jobs.boss.findJobs<{ payload: { type: string } }>('domain.event', { data: { payload: { subject: { id: subjectId } } } })).map((job) => job.data.payload.type).sort();
const incidentId = async (instance: ConnectorInstance, externalId: string) => (await fx.tdb.db.selectFrom('incidents').select('id').where('source_system', '=', `servicenow:${instance.name}`).where('external_id', '=', externalId).executeTakeFirstOrThrow()).id;

/** The sys_id of the record with the earliest update stamp (through the fake's Table API shape). */
async function firstSysId(sn: FakeServiceNow): Promise<string> {
  const response = await fetch(`${sn.url}/api/now/table/incident?sysparm_limit=1&sysparm_query=ORDERBYsys_updated_on^ORDERBYsys_id&sysparm_fields=sys_id`, { headers: { authorization: `Basic ${Buffer.from('admin:admin').toString('base64')}` } });
  const body = (await response.json()) as { result: { sys_id: string }[] };
  return body.result[0]!.sys_id;
}
