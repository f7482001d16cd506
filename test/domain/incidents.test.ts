/** Incidents: upsert by source + external id with a content hash; acknowledging is idempotent and audited. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ACTOR, type Actor } from '../../src/domain/actor.ts';
import { acknowledgeIncident, upsertIncident } from '../../src/domain/incidents.ts';
import { type DomainFixture, auditRows, domainFixture, eventsFor } from '../support/domain.ts';

describe('incidents', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx.close());

  const input = (overrides = {}) => ({ sourceSystem: 'servicenow', externalId: 'a1b2c3', number: 'INC0012345', priority: 1, state: 'new', shortDescription: 'Payments API down', ...overrides });

  it('creates once, ignores an identical record, and updates (with an event) only on change', async () => {
    const created = await upsertIncident(fx.deps, CLI_ACTOR, input());
    expect(created).toMatchObject({ ok: true, value: { created: true, changed: true } });
    if (!created.ok) return;
    const same = await upsertIncident(fx.deps, CLI_ACTOR, input());
    expect(same).toMatchObject({ ok: true, value: { created: false, changed: false } });
    const changed = await upsertIncident(fx.deps, CLI_ACTOR, input({ state: 'in_progress' }));
    expect(changed).toMatchObject({ ok: true, value: { created: false, changed: true, incident: { state: 'in_progress' } } });
    expect(await eventsFor(fx, created.value.incident.id)).toEqual(['incident.created', 'incident.updated']);
    expect(await upsertIncident(fx.deps, CLI_ACTOR, input({ externalId: 'x', number: 'bogus' }))).toMatchObject({ ok: false, refusal: { code: 'invalid_incident_number' } });
    expect(await upsertIncident(fx.deps, CLI_ACTOR, input({ externalId: 'y', number: 'INC0099999', priority: 9 }))).toMatchObject({ ok: false, refusal: { code: 'invalid_priority' } });
  });

  it('acknowledges once: the second ack says who was first and changes nothing; both are audited', async () => {
    await upsertIncident(fx.deps, CLI_ACTOR, input({ externalId: 'ack-1', number: 'INC0000001' }));
    const first: Actor = { surface: 'slack', user: await fx.user({ roles: ['responder'], name: 'Olga Oncall' }) };
    const second: Actor = { surface: 'slack', user: await fx.user({ roles: ['responder'], name: 'Pete' }) };
    const acked = await acknowledgeIncident(fx.deps, first, 'inc0000001');
    expect(acked).toMatchObject({ ok: true, value: { acknowledgedNow: true, acknowledgedByName: 'Olga Oncall', incident: { acknowledgedBy: first.user!.id } } });
    fx.clock.advance(5000);
    const again = await acknowledgeIncident(fx.deps, second, 'INC0000001');
    expect(again).toMatchObject({ ok: true, value: { acknowledgedNow: false, acknowledgedByName: 'Olga Oncall', incident: { acknowledgedBy: first.user!.id } } });
    if (!acked.ok || !again.ok) return;
    expect(again.value.incident.acknowledgedAt).toEqual(acked.value.incident.acknowledgedAt);
    expect((await eventsFor(fx, acked.value.incident.id)).filter((type) => type === 'incident.acknowledged')).toHaveLength(1);
    expect((await auditRows(fx, 'INC0000001')).map((row) => row.detail)).toEqual(expect.arrayContaining([{ priority: 1 }, { alreadyAcknowledged: true }]));
  });

  it('makes exactly one acknowledgement out of ten simultaneous ones', async () => {
    await upsertIncident(fx.deps, CLI_ACTOR, input({ externalId: 'race', number: 'INC0000002' }));
    const responders = await Promise.all(Array.from({ length: 10 }, () => fx.user({ roles: ['responder'] })));
    const results = await Promise.all(responders.map((user) => acknowledgeIncident(fx.deps, { surface: 'slack', user }, 'INC0000002')));
    expect(results.filter((result) => result.ok && result.value.acknowledgedNow)).toHaveLength(1);
    expect(results.filter((result) => result.ok && !result.value.acknowledgedNow)).toHaveLength(9);
  });

  it.each([
    ['a viewer', ['viewer'] as const, 'INC0000003', 'forbidden'],
    ['an unknown incident', ['responder'] as const, 'INC0404040', 'incident_not_found'],
    ['a malformed number', ['responder'] as const, 'drop table', 'invalid_incident_number'],
  ])('refuses %s, with an audit row', async (_label, roles, number, code) => {
    const user = await fx.user({ roles: [...roles] });
    expect(await acknowledgeIncident(fx.deps, { surface: 'slack', user }, number)).toMatchObject({ ok: false, refusal: { code } });
    const refusals = await fx.tdb.db.selectFrom('audit_log').selectAll().where('actor', '=', `user:${user.id}`).execute();
    expect(refusals).toMatchObject([{ action: 'incident.acknowledge', outcome: 'refused', detail: { code } }]);
  });
});
