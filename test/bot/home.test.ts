/**
 * The personal home (Slack App Home, Teams `tasks` in a personal chat): of the newest 100 pending tasks, the
 * approvals waiting for the user, whether their policy names the user, a role of theirs or a control they own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderHome } from '../../src/bot/home.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';

describe('the personal home', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx.close());

  it('shows the approvals waiting for the user among newer ones for someone else, by name, role and control ownership', async () => {
    const me = await fx.user({ roles: ['approver'], name: 'Me' });
    const someoneElse = await fx.user({ roles: ['approver'], name: 'Someone Else' });
    const control = await fx.control({ ownerId: me.id });
    const byName = await fx.task({ type: 'approval', title: 'Named me', policy: { approverUserIds: [me.id] } });
    const byRole = await fx.task({ type: 'approval', title: 'Any approver', policy: { approverRoles: ['approver'] } });
    const byControl = await fx.task({ type: 'approval', title: 'Owner of the control', policy: { controlOwners: true }, controlIds: [control] });
    const mine = await fx.task({ type: 'approval', title: 'Requested by me', requesterId: me.id, policy: { approverUserIds: [me.id, someoneElse.id] } });
    for (let i = 0; i < 60; i++) await fx.task({ type: 'approval', title: `For someone else ${i}`, policy: { approverUserIds: [someoneElse.id] } });

    const home = await renderHome(fx.tdb.db, () => Promise.resolve([]), me, 'Teams');
    const text = home.blocks.map((block) => ('text' in block ? block.text : '')).join('\n');
    expect(text).toContain('Approvals waiting for you (3)');
    for (const task of [byName, byRole, byControl]) expect(text).toContain(`*${task.ref}*`);
    // Requested by me: someone else decides it (separation of duties).
    expect(text).not.toContain(`*${mine.ref}*`);
    expect(text).not.toContain('For someone else');
  });
});
