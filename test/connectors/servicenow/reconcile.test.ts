/**
 * Nightly reconciliation against the fake ServiceNow: ids only, merged page by page with the ledger; deletions
 * flagged (and cleared when a record comes back), records the syncs missed brought in by a queued full sync.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../../src/connectors/sdk/instances.ts';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { connectorReconcile, connectorSync } from '../../../src/jobs/connector-sync.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { type FakeServiceNow, fieldValue, incidentFields, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { type DomainFixture, domainFixture, fixtureJobDeps } from '../../support/domain.ts';

let fx: DomainFixture;
let sn: FakeServiceNow;
let deps: JobDeps;
let instanceId: string;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const at = (seconds: number) => new Date(Date.parse('2026-11-01T00:00:00Z') + seconds * 1000);
const context = (name: string) => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name, retryCount: 0 } });

beforeAll(async () => {
  fx = await domainFixture();
  sn = await startFakeServiceNow();
  deps = fixtureJobDeps(fx, { keyring });
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: 'default', settings: { baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8', pageSize: 1000 }, credentials: { client_secret: 'client_password' } }))!;
});
afterAll(async () => {
  await sn.close();
  await fx.close();
});

const sync = (full = false) => connectorSync.handler(connectorSync.schema.parse({ connector: 'servicenow', instanceId, model: 'incident', runId: randomUUID(), trigger: 'manual', full }), context(connectorSync.name)) as Promise<{ counts: Record<string, number> }>;
const reconcileNow = () => connectorReconcile.handler({ connector: 'servicenow', instanceId, model: 'incident' }, context(connectorReconcile.name)) as Promise<Record<string, unknown>>;
const flagged = async () => (await fx.tdb.db.selectFrom('external_records').select('external_id').where('config_id', '=', instanceId).where('missing_since', 'is not', null).execute()).map((row) => row.external_id).sort();

describe('ServiceNow reconciliation', () => {
  it('flags deletions, finds what the syncs missed and queues a full sync for it, ids only', async () => {
    sn.insertMany('incident', 25_000, (i) => incidentFields({ number: `INC${String(1_000_000 + i)}`, priority: '4', state: '2' }, sn.url), (i) => at(i));
    expect((await sync()).counts).toMatchObject({ created: 25_000 });
    const before = sn.requests.length;
    expect(await reconcileNow()).toMatchObject({ status: 'succeeded', remote: 25_000, local: 25_000, missing: 0, orphans: 0 });
    const listing = sn.requests.slice(before);
    expect(listing.map((request) => request.query.sysparm_fields)).toEqual(['sys_id', 'sys_id', 'sys_id']); // 10,000 ids a page
    expect(await fx.jobs.boss.findJobs('connector.sync', { data: { payload: { trigger: 'reconcile' } } })).toHaveLength(0);

    // Three deleted in ServiceNow; two that a sync never saw (stamped long before its checkpoint).
    const ids = (await fx.tdb.db.selectFrom('external_records').select('external_id').where('config_id', '=', instanceId).orderBy('external_id').execute()).map((row) => row.external_id);
    const deleted = [ids[0]!, ids[12_345]!, ids.at(-1)!];
    for (const id of deleted) sn.remove('incident', id);
    const missed = [sn.insert('incident', incidentFields({ number: 'INC2000001', priority: '4', state: '1' }, sn.url), at(-5000)), sn.insert('incident', incidentFields({ number: 'INC2000002', priority: '4', state: '1' }, sn.url), at(-4000))];
    expect((await sync()).counts).toMatchObject({ created: 0 });

    const found = await reconcileNow();
    expect(found).toMatchObject({ status: 'succeeded', remote: 24_999, local: 25_000, missing: 3, orphans: 2, fullSync: expect.any(String) });
    expect(await flagged()).toEqual([...deleted].sort());
    const [event] = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.reconciled' } } });
    expect(event!.data.payload.summary).toContain('3 record(s) no longer in ServiceNow (flagged), 2 the syncs had missed (a full sync is queued)');
    expect((event!.data.payload.data as { orphanSample: string[] }).orphanSample.sort()).toEqual(missed.map((record) => fieldValue(record.sys_id)).sort());
    const queued = await fx.jobs.boss.findJobs<{ payload: { full: boolean; runId: string } }>('connector.sync', { data: { payload: { trigger: 'reconcile' } } });
    expect(queued.map((job) => job.data.payload)).toEqual([expect.objectContaining({ full: true, runId: found.fullSync })]);

    // The queued full sync brings the missed ones in; a deleted record that comes back is unflagged.
    await connectorSync.handler(connectorSync.schema.parse({ connector: 'servicenow', instanceId, model: 'incident', runId: found.fullSync, trigger: 'reconcile', full: true }), context(connectorSync.name));
    const back = await fx.tdb.db.selectFrom('external_records').select('number').where('config_id', '=', instanceId).where('external_id', '=', deleted[0]!).executeTakeFirstOrThrow();
    sn.insert('incident', incidentFields({ number: back.number, sys_id: deleted[0], priority: '4', state: '2' }, sn.url));
    await sync();
    const last = await reconcileNow();
    expect(last).toMatchObject({ missing: 0, orphans: 0, reappeared: 1 });
    expect(await flagged()).toEqual([deleted[1], deleted[2]].sort());
    const run = await fx.tdb.db.selectFrom('integration_runs').select(['trigger', 'status', 'counts']).where('id', '=', String(last.runId)).executeTakeFirstOrThrow();
    expect(run).toMatchObject({ status: 'succeeded', counts: { remote: 25_000, reappeared: 1 } });
  });

  it('judges nothing from a listing cut short: a hibernating instance (HTML) or a stopped worker', async () => {
    const before = await flagged();
    // The second page of ids comes back as ServiceNow's hibernation page.
    sn.failNext(1, { kind: 'hibernating' }, { method: 'GET', pathPrefix: '/api/now/table/incident', queryIncludes: 'sys_id>' });
    await expect(reconcileNow()).rejects.toMatchObject({ code: 'invalid_response' });
    expect(await flagged()).toEqual(before);
    const stopped = new AbortController();
    stopped.abort();
    await expect(connectorReconcile.handler({ connector: 'servicenow', instanceId, model: 'incident' }, { ...context(connectorReconcile.name), signal: stopped.signal })).rejects.toMatchObject({ code: 'interrupted' });
    expect(await flagged()).toEqual(before);
    const events = await fx.jobs.boss.findJobs('domain.event', { data: { payload: { type: 'integration.reconciled' } } });
    expect(events).toHaveLength(1); // only the first test's
  });
});
