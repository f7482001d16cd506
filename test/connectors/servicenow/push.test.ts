/**
 * Writes back to ServiceNow through the push queue, against the fake ServiceNow and a real database: an
 * acknowledgement from chat becomes a work note and a state change, our own change is not read back as a change,
 * remediation tasks become `task` records once, and while the write circuit is open (degraded mode) writes wait,
 * pulls go on, and the waiting writes go out in order when it closes.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../../src/connectors/sdk/instances.ts';
import { servicenow } from '../../../src/connectors/servicenow/index.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { acknowledgeIncident } from '../../../src/domain/incidents.ts';
import type { User } from '../../../src/domain/users.ts';
import { connectorPush, connectorPushSweep } from '../../../src/jobs/connector-push.ts';
import { pushesVerb } from '../../../src/connectors/sdk/cli.ts';
import { servicenowAttachments } from '../../../src/connectors/servicenow/attachments.ts';
import { connectorSync } from '../../../src/jobs/connector-sync.ts';
import { routeDomainEvent } from '../../../src/jobs/domain-events.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { type FakeServiceNow, fieldValue, incidentFields, startFakeServiceNow } from '../../fakes/servicenow/server.ts';
import { type DomainFixture, domainFixture, fixtureJobDeps } from '../../support/domain.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';

let fx: DomainFixture;
let sn: FakeServiceNow;
let deps: JobDeps;
let responder: User;
let instanceId: string;
const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
const jobContext = (name: string) => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name, retryCount: 0 } });
/** A moment on the service clock, a second after the last one: records are stamped as ServiceNow would stamp them now. */
const at = (_order: number) => {
  fx.clock.advance(1000);
  return fx.clock.now();
};

beforeAll(async () => {
  fx = await domainFixture();
  sn = await startFakeServiceNow({ now: () => fx.clock.now() });
  deps = fixtureJobDeps(fx, { keyring });
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: 'default', settings: { baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8' }, credentials: { client_secret: 'client_password' } }))!;
  responder = await fx.user({ email: 'rita@example.test', name: 'Rita Responder', roles: ['responder'] });
});
afterAll(async () => {
  await sn.close();
  await fx.close();
});

async function sync(): Promise<{ counts: Record<string, number> }> {
  return (await connectorSync.handler(connectorSync.schema.parse({ connector: 'servicenow', instanceId, model: 'incident', runId: randomUUID(), trigger: 'manual' }), jobContext(connectorSync.name))) as { counts: Record<string, number> };
}
/** Routes every queued domain event of `type` not routed yet (as the domain.event job would). */
const routed = new Set<string>();
async function route(type: string): Promise<void> {
  for (const job of await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type } } })) {
    if (routed.has(job.data.payload.id)) continue;
    routed.add(job.data.payload.id);
    await routeDomainEvent.handler(routeDomainEvent.schema.parse(job.data.payload), jobContext(routeDomainEvent.name));
  }
}
const drain = () => connectorPush.handler({ connector: 'servicenow', instanceId }, jobContext(connectorPush.name)) as Promise<{ sent: number; waiting?: string }>;
const patches = () => sn.requests.filter((request) => request.method === 'PATCH').map((request) => ({ path: request.path, status: request.status }));
const pushes = () => fx.tdb.db.selectFrom('integration_pushes').select(['operation', 'record_key', 'status', 'attempts']).where('config_id', '=', instanceId).orderBy('id').execute();

async function ack(number: string): Promise<void> {
  const result = await acknowledgeIncident(fx.deps, { surface: 'console', user: responder }, number);
  if (!result.ok) throw new Error(result.refusal.message);
  await route('incident.acknowledged');
}

describe('a new P1 incident', () => {
  it('becomes one high-priority review task, assigned as configured, and one alert in the routed channel, across re-syncs', async () => {
    await fx.tdb.db.updateTable('integration_configs').set({ settings: JSON.stringify({ baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8', reviewAssignee: 'rita@example.test' }) }).where('id', '=', instanceId).execute();
    const record = sn.insert('incident', incidentFields({ number: 'INC0900001', priority: '1', state: '1', short_description: 'Checkout is down' }, sn.url), at(0));
    await sync();
    await route('incident.created');
    await sync();
    await connectorSync.handler(connectorSync.schema.parse({ connector: 'servicenow', instanceId, model: 'incident', runId: randomUUID(), trigger: 'manual', full: true }), jobContext(connectorSync.name));
    routed.clear(); // and the routing job runs again for the same event
    await route('incident.created');
    const incident = await fx.tdb.db.selectFrom('incidents').select('id').where('external_id', '=', fieldValue(record.sys_id)).executeTakeFirstOrThrow();
    const tasks = await fx.tdb.db.selectFrom('tasks').innerJoin('task_links', 'task_links.task_id', 'tasks.id').select(['tasks.id', 'tasks.type', 'tasks.priority', 'tasks.assignee_id', 'tasks.title']).where('task_links.kind', '=', 'incident').where('task_links.target', '=', incident.id).execute();
    expect(tasks).toEqual([{ id: expect.any(String), type: 'review', priority: 'high', assignee_id: responder.id, title: 'Review P1 INC0900001' }]);
    const alerts = await fx.tdb.db.selectFrom('notifications').select(['target', 'event_type']).where('subject_id', '=', incident.id).execute();
    expect(alerts).toEqual([{ target: 'alerts-servicenow', event_type: 'incident.created' }]);

    // Its attachments become evidence of the review task, tagged as from ServiceNow, each once; a type evidence
    // does not keep is remembered as refused, not fetched again.
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');
    sn.attach('incident', fieldValue(record.sys_id), { fileName: 'timeline.pdf', contentType: 'application/pdf', content: pdf });
    sn.attach('incident', fieldValue(record.sys_id), { fileName: 'tool.exe', contentType: 'application/octet-stream', content: Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00]) });
    const mirror = await fx.jobs.boss.findJobs<{ payload: { instanceId: string; incidentSysId: string; incidentId: string } }>('servicenow.attachments', { data: { payload: { incidentId: incident.id } } });
    expect(mirror.length).toBeGreaterThan(0);
    const run = () => servicenowAttachments.handler(servicenowAttachments.schema.parse(mirror[0]!.data.payload), jobContext(servicenowAttachments.name));
    expect(await run()).toEqual({ listed: 2, mirrored: 1, refused: 1 });
    expect(await run()).toEqual({ listed: 2, mirrored: 0, refused: 0 });
    const evidence = await fx.tdb.db.selectFrom('evidence').innerJoin('evidence_links', 'evidence_links.evidence_id', 'evidence.id').select(['evidence.source', 'evidence.original_name', 'evidence.sha256', 'evidence.scan_status', 'evidence_links.kind', 'evidence_links.target']).where('evidence.source', '=', 'servicenow').execute();
    expect(evidence).toEqual([{ source: 'servicenow', original_name: 'timeline.pdf', sha256: createHash('sha256').update(pdf).digest('hex'), scan_status: 'clean', kind: 'task', target: tasks[0]!.id }]);
    await fx.tdb.db.updateTable('integration_configs').set({ settings: JSON.stringify({ baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8' }) }).where('id', '=', instanceId).execute();
  });
});

describe('ServiceNow writes', () => {
  it('sends an acknowledgement as a work note and a state change, once, and does not read it back as a change', async () => {
    const record = sn.insert('incident', incidentFields({ number: 'INC0100001', priority: '2', state: '1', short_description: 'Disk full' }, sn.url), at(1));
    expect((await sync()).counts).toMatchObject({ created: 1 });
    await ack('INC0100001');
    await route('incident.acknowledged'); // the routing job run twice: still one write
    expect(await pushes()).toEqual([{ operation: 'incident.acknowledge', record_key: `incident/${fieldValue(record.sys_id)}`, status: 'pending', attempts: 0 }]);
    const queued = await fx.jobs.boss.findJobs('connector.push', { data: { payload: { instanceId } } });
    expect(queued.length).toBeGreaterThan(0);

    expect(await drain()).toMatchObject({ sent: 1 });
    const journal = sn.journal('incident', fieldValue(record.sys_id));
    expect(journal).toEqual([expect.objectContaining({ element: 'work_notes', value: expect.stringMatching(/^Acknowledged in ProjectX by rita@example\.test at 2026-/) })]);
    expect(fieldValue(sn.get('incident', fieldValue(record.sys_id))!.state)).toBe('2');
    expect(await pushes()).toEqual([expect.objectContaining({ status: 'sent', attempts: 1 })]);
    const mirror = await fx.tdb.db.selectFrom('incidents').select(['state', 'acknowledged_by']).where('number', '=', 'INC0100001').executeTakeFirstOrThrow();
    expect(mirror).toEqual({ state: 'in_progress', acknowledged_by: responder.id });

    // Our own change comes back with the next pull: no change, no event.
    expect((await sync()).counts).toMatchObject({ created: 0, updated: 0 });
    expect(await drain()).toMatchObject({ sent: 0 });
    expect(sn.journal('incident', fieldValue(record.sys_id))).toHaveLength(1);
  });

  it('takes in what else changed in the incident, as ServiceNow answers our write (someone raised it to P1)', async () => {
    const record = sn.insert('incident', incidentFields({ number: 'INC0100009', priority: '3', state: '1', short_description: 'Slow logins' }, sn.url), at(1));
    await sync();
    await ack('INC0100009');
    sn.update('incident', fieldValue(record.sys_id), { priority: '1' }); // in ServiceNow, before our write lands
    expect(await drain()).toMatchObject({ sent: 1 });
    const incident = await fx.tdb.db.selectFrom('incidents').select(['id', 'priority', 'state']).where('number', '=', 'INC0100009').executeTakeFirstOrThrow();
    expect(incident).toMatchObject({ priority: 1, state: 'in_progress' });
    const events = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { subject: { id: incident.id } } } });
    expect(events.map((job) => job.data.payload.type).sort()).toEqual(['incident.acknowledged', 'incident.updated']);
    expect(events.find((job) => job.data.payload.type === 'incident.updated')!.data.payload).toMatchObject({ priority: 1, data: { review: true } });
    // And the next pull finds nothing new.
    expect((await sync()).counts).toMatchObject({ created: 0, updated: 0 });
  });

  it('creates a ServiceNow task for a remediation task, once, linked back to the task', async () => {
    const task = await fx.task({ type: 'remediation', title: 'Rotate the leaked key', description: 'Found in the audit', priority: 'high' });
    await route('task.created');
    await fx.task({ type: 'review', title: 'Not sent' });
    await route('task.created');
    expect(await drain()).toMatchObject({ sent: 1 });
    const created = sn.requests.filter((request) => request.method === 'POST' && request.path === '/api/now/table/task');
    expect(created).toHaveLength(1);
    const link = await fx.tdb.db.selectFrom('task_links').select(['target', 'url']).where('task_id', '=', task.id).where('kind', '=', 'external').executeTakeFirstOrThrow();
    const sysId = link.target.replace('servicenow:task:', '');
    expect(sn.get('task', sysId)).toMatchObject({ correlation_id: `projectx:task:${task.id}`, short_description: `${task.ref} Rotate the leaked key`, priority: '2' });
    expect(link.url).toBe(`${sn.url}/task.do?sys_id=${sysId}`);

    // Sent again (a lost answer, a replay): the existing record is found by its correlation id, not duplicated.
    await fx.tdb.db.updateTable('integration_pushes').set({ status: 'pending' }).where('record_key', '=', `task/${task.id}`).execute();
    expect(await drain()).toMatchObject({ sent: 1 });
    expect(sn.requests.filter((request) => request.method === 'POST' && request.path === '/api/now/table/task')).toHaveLength(1);
  });

  it('waits in degraded mode while ServiceNow fails, keeps pulling, and sends the waiting writes in order when it recovers', async () => {
    const records = ['INC0200001', 'INC0200002', 'INC0200003'].map((number, index) => sn.insert('incident', incidentFields({ number, priority: '3', state: '1' }, sn.url), at(100 + index)));
    await sync();
    sn.failAlways({ status: 500 }, { method: 'PATCH' });
    await ack('INC0200001');
    // Five failures in a row open the write circuit; the write is not given up.
    for (let attempt = 1; attempt <= 5; attempt++) {
      if (attempt > 1) fx.clock.advance(10 * 60_000); // past the backoff before this attempt
      const outcome = await drain();
      expect(outcome.sent).toBe(0);
    }
    const degraded = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.degraded' } } });
    expect(degraded.map((job) => job.data.payload.summary)).toEqual([expect.stringContaining('ServiceNow writes (default): circuit open after repeated failures (upstream_error); changes wait and will be sent in order when it recovers. Runbook RB-002.')]);
    expect(await pushes()).toContainEqual({ operation: 'incident.acknowledge', record_key: `incident/${fieldValue(records[0]!.sys_id)}`, status: 'pending', attempts: 5 });

    // Pulls go on (their circuit is their own), and new writes wait without a call.
    sn.update('incident', fieldValue(records[2]!.sys_id), { short_description: 'changed meanwhile' });
    expect((await sync()).counts).toMatchObject({ updated: 1 });
    await ack('INC0200002');
    await ack('INC0200003');
    const before = patches().length;
    expect(await drain()).toMatchObject({ sent: 0, waiting: 'circuit_open' });
    expect(patches()).toHaveLength(before);

    // ServiceNow is back: after the cooldown one probe goes, succeeds, closes the circuit, and the rest follow in order.
    sn.failAlways(undefined, { method: 'PATCH' });
    fx.clock.advance(60_000);
    expect(await drain()).toMatchObject({ sent: 3 });
    expect(patches().slice(before).map((request) => request.path)).toEqual(records.map((record) => `/api/now/table/incident/${fieldValue(record.sys_id)}`));
    for (const record of records) expect(sn.journal('incident', fieldValue(record.sys_id))).toHaveLength(1);
    expect((await pushes()).filter((row) => row.status !== 'sent')).toEqual([]);
    const recovered = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.recovered' } } });
    expect(recovered).toHaveLength(1);
  });

  it('fails a write that keeps failing on its own once a later write goes through, and does not hold the rest', async () => {
    const [poison, fine] = ['INC0400001', 'INC0400002'].map((number) => sn.insert('incident', incidentFields({ number, priority: '3', state: '1' }, sn.url), at(0)));
    await sync();
    // A business rule in ServiceNow fails every update of this one incident.
    const only = { method: 'PATCH', pathPrefix: `/api/now/table/incident/${fieldValue(poison!.sys_id)}` };
    sn.failAlways({ status: 500 }, only);
    await ack('INC0400001');
    await ack('INC0400002');
    let outcome = await drain();
    for (let attempt = 2; attempt <= 5 && outcome.sent === 0; attempt++) {
      fx.clock.advance(10 * 60_000);
      outcome = await drain();
    }
    sn.failAlways(undefined, only);
    expect(outcome).toMatchObject({ sent: 1 });
    const rows = (await pushes()).slice(-2);
    expect(rows).toEqual([
      expect.objectContaining({ record_key: `incident/${fieldValue(poison!.sys_id)}`, status: 'failed', attempts: 5 }),
      expect.objectContaining({ record_key: `incident/${fieldValue(fine!.sys_id)}`, status: 'sent' }),
    ]);
    // The circuit never opened: it was this write, not ServiceNow.
    const circuit = await fx.tdb.db.selectFrom('integration_circuits').select('state').where('config_id', '=', instanceId).where('direction', '=', 'write').executeTakeFirstOrThrow();
    expect(circuit.state).toBe('closed');
  });

  it('wakes the sender of a due write that nobody woke (its routing job died in between), every minute', async () => {
    const record = sn.insert('incident', incidentFields({ number: 'INC0500001', priority: '3', state: '1' }, sn.url), at(0));
    await sync();
    await fx.tdb.db.insertInto('integration_pushes').values({ config_id: instanceId, operation: 'incident.acknowledge', record_key: `incident/${fieldValue(record.sys_id)}`, payload: JSON.stringify({ sysId: fieldValue(record.sys_id), workNote: 'Acknowledged in ProjectX.' }), next_attempt_at: fx.clock.now(), created_at: fx.clock.now() }).execute();
    const before = (await fx.jobs.boss.findJobs('connector.push', { data: { payload: { instanceId } } })).length;
    expect(connectorPushSweep.schedule?.cron).toBe('* * * * *');
    expect(await connectorPushSweep.handler({}, jobContext(connectorPushSweep.name))).toEqual({ woken: 1 });
    expect((await fx.jobs.boss.findJobs('connector.push', { data: { payload: { instanceId } } })).length).toBeGreaterThan(before);
    expect(await drain()).toMatchObject({ sent: 1 });
  });

  it('pages the on-call route once when ServiceNow refuses our credentials for writes twice in a row', async () => {
    sn.insert('incident', incidentFields({ number: 'INC0600001', priority: '3', state: '1' }, sn.url), at(0));
    await sync();
    const configure = (secret: string) => ensureInstanceFromEnv(fx.tdb.db, keyring, servicenow, { name: 'default', settings: { baseUrl: sn.url, clientId: 'be3aeb583ace210011c15b24a43e25d8' }, credentials: { client_secret: secret } });
    await configure('a-secret-that-is-wrong');
    await ack('INC0600001');
    const alerts = () => fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.auth_failing', subject: { id: instanceId } } } });
    const before = (await alerts()).length;
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await drain()).toMatchObject({ sent: 0 });
      fx.clock.advance(10 * 60_000);
    }
    expect(await alerts()).toHaveLength(before + 1);
    expect((await alerts()).at(-1)!.data.payload.summary).toContain('refused our credentials twice in a row: its token endpoint answered HTTP 401 (oauth_client_refused)');
    await configure('client_password');
    expect(await drain()).toMatchObject({ sent: 1 });
  });

  it('marks a write the system refuses for good as failed, alerts, and goes on with the next', async () => {
    const ok = sn.insert('incident', incidentFields({ number: 'INC0300002', priority: '3', state: '1' }, sn.url), at(200));
    const gone = sn.insert('incident', incidentFields({ number: 'INC0300001', priority: '3', state: '1' }, sn.url), at(199));
    await sync();
    sn.remove('incident', fieldValue(gone.sys_id)); // deleted in ServiceNow meanwhile: 404
    await ack('INC0300001');
    await ack('INC0300002');
    expect(await drain()).toMatchObject({ sent: 1 });
    const rows = (await pushes()).slice(-2);
    expect(rows).toEqual([expect.objectContaining({ record_key: `incident/${fieldValue(gone.sys_id)}`, status: 'failed' }), expect.objectContaining({ record_key: `incident/${fieldValue(ok.sys_id)}`, status: 'sent' })]);
    const failed = await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'integration.push_failed', data: { recordKey: `incident/${fieldValue(gone.sys_id)}` } } } });
    expect(failed.map((job) => job.data.payload.summary)).toEqual([expect.stringContaining('failed for good (not_found: refused with HTTP 404)')]);

    // An operator sees it and puts it back in line.
    const ctx = operatorContext(fx, { config: deps.config, keyring });
    const listed = await runOperator(ctx, pushesVerb, ['list']);
    expect(listed.code).toBe(0);
    const line = listed.out.find((text) => text.includes(`incident/${fieldValue(gone.sys_id)}`));
    expect(line).toMatch(new RegExp(`^\\d+  .*  servicenow:default  incident.acknowledge incident/${fieldValue(gone.sys_id)}  attempts 1  not_found: refused with HTTP 404$`));
    const id = line!.split(' ')[0]!;
    expect((await runOperator(ctx, pushesVerb, ['replay', id])).code).toBe(0);
    expect((await pushes()).find((row) => row.record_key === `incident/${fieldValue(gone.sys_id)}`)).toMatchObject({ status: 'pending', attempts: 0 });
    const audited = await fx.tdb.db.selectFrom('audit_log').select('action').where('object_id', '=', id).execute();
    expect(audited).toEqual([{ action: 'integration.push.replay' }]);
    await expect(runOperator(ctx, pushesVerb, ['replay', id])).rejects.toThrow(`no failed write ${id}`);
  });
});
