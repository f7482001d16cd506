/** Users and identity links: one chat identity maps to one user; link codes are single-use and expire. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { can, permissionsOf } from '../../src/domain/permissions.ts';
import { createUser, findUserByIdentity, issueLinkCode, linkIdentity, redeemLinkCode } from '../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';

describe('users and identity links', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx.close());

  it('creates users with roles, refuses duplicates (case-insensitively), bad emails and unknown roles', async () => {
    expect(await createUser(fx.tdb.db, { email: 'Dana@Example.test', displayName: 'Dana', roles: ['approver'] })).toMatchObject({ ok: true, value: { email: 'dana@example.test', roles: ['approver'] } });
    expect(await createUser(fx.tdb.db, { email: 'dana@example.TEST', displayName: 'Dana 2', roles: [] })).toMatchObject({ ok: false, refusal: { code: 'user_exists' } });
    expect(await createUser(fx.tdb.db, { email: 'not-an-email', displayName: 'x', roles: [] })).toMatchObject({ ok: false, refusal: { code: 'invalid_email' } });
    expect(await createUser(fx.tdb.db, { email: 'e@example.test', displayName: 'x', roles: ['boss' as never] })).toMatchObject({ ok: false, refusal: { code: 'invalid_role' } });
  });

  it('maps Slack (team or enterprise + user), Teams (tenant + object id) and email identities to one user, never two', async () => {
    const user = await fx.user({ roles: ['responder'] });
    const other = await fx.user();
    const slack = { surface: 'slack' as const, tenant: 'E0ORG', externalId: 'U123' };
    const teams = { surface: 'teams' as const, tenant: 'tenant-guid', externalId: 'aad-object-id' };
    expect(await linkIdentity(fx.tdb.db, user.id, slack, 'test')).toMatchObject({ ok: true, value: { created: true } });
    expect(await linkIdentity(fx.tdb.db, user.id, slack, 'test')).toMatchObject({ ok: true, value: { created: false } });
    expect(await linkIdentity(fx.tdb.db, other.id, slack, 'test')).toMatchObject({ ok: false, refusal: { code: 'identity_taken' } });
    await linkIdentity(fx.tdb.db, user.id, teams, 'test');
    expect((await findUserByIdentity(fx.tdb.db, slack))?.id).toBe(user.id);
    expect((await findUserByIdentity(fx.tdb.db, teams))?.id).toBe(user.id);
    expect((await findUserByIdentity(fx.tdb.db, { surface: 'email', tenant: '', externalId: user.email.toUpperCase() }))?.id).toBe(user.id);
    expect(await findUserByIdentity(fx.tdb.db, { ...slack, tenant: 'T-OTHER' })).toBeUndefined();
  });

  it('link codes work once and expire after 15 minutes', async () => {
    const user = await fx.user();
    const identity = { surface: 'slack' as const, tenant: 'T1', externalId: 'ULINK' };
    const code = await issueLinkCode(fx.tdb.db, identity, fx.clock.now());
    expect(code).toMatch(/^[A-Z2-9]{8}$/);
    expect(await redeemLinkCode(fx.tdb.db, code.toLowerCase(), user.id, fx.clock.now())).toMatchObject({ ok: true, value: identity });
    expect(await redeemLinkCode(fx.tdb.db, code, user.id, fx.clock.now())).toMatchObject({ ok: false, refusal: { code: 'link_code_invalid' } });
    const late = await issueLinkCode(fx.tdb.db, { ...identity, externalId: 'ULATE' }, fx.clock.now());
    expect(await redeemLinkCode(fx.tdb.db, late, user.id, new Date(fx.clock.now().getTime() + 15 * 60_000 + 1))).toMatchObject({ ok: false, refusal: { code: 'link_code_invalid' } });
  });

  it('gives each role its permissions and unlinked users only help and link', () => {
    expect([...permissionsOf(undefined)].sort()).toEqual(['help', 'link']);
    const user = (roles: never[]) => ({ id: 'x', email: 'x@x.test', displayName: 'x', roles, active: true });
    expect(can(user(['viewer' as never]), 'tasks.decide')).toBe(false);
    expect(can(user(['approver' as never]), 'tasks.decide')).toBe(true);
    expect(can(user(['approver' as never]), 'incidents.acknowledge')).toBe(false);
    expect(can(user(['responder' as never]), 'incidents.acknowledge')).toBe(true);
    expect(can(user(['contributor' as never]), 'evidence.upload')).toBe(true);
    expect(can(user(['admin' as never]), 'admin')).toBe(true);
    expect(can({ ...user(['admin' as never]), active: false }, 'help')).toBe(true);
    expect(can({ ...user(['admin' as never]), active: false }, 'admin')).toBe(false);
  });
});
