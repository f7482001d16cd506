/**
 * Teams activities recorded before they have effects: a redelivered message and a repeated card click are
 * repeats; an activity from a tenant that is not served, or that cannot be identified, is refused and kept with
 * why; a failed one is taken over by its redelivery.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toAdaptiveCard } from '../../../src/bot/teams/cards.ts';
import { activityTenant, allowedTenants, createTeamsInbox, settleTeamsActivity, teamsDeliveryId } from '../../../src/bot/teams/inbound.ts';
import { type DomainFixture, domainFixture } from '../../support/domain.ts';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/teams/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';

describe('Teams activities recorded once', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx?.close());
  const deps = () => ({ db: fx.tdb.db, clock: fx.clock, tenants: [TENANT] });
  const row = (deliveryId: string) => fx.tdb.db.selectFrom('inbound_events').select(['status', 'kind', 'error']).where('source', '=', 'teams').where('delivery_id', '=', deliveryId).executeTakeFirstOrThrow();

  it('reads the tenant from channelData or the conversation, and serves MICROSOFT_APP_TENANT_ID\'s alone unless TEAMS_ALLOWED_TENANTS says more', () => {
    expect(activityTenant(fixture('teams_message_personal_docs.json'))).toBe(TENANT);
    expect(activityTenant(fixture('teams_conversationUpdate_bot_added_to_team_docs.json'))).toBe('b28fdbfd-2b78-4f93-b0f8-8881793f0f8f');
    expect(allowedTenants({ MICROSOFT_APP_TENANT_ID: TENANT.toUpperCase() })).toEqual([TENANT]);
    expect(allowedTenants({ MICROSOFT_APP_TENANT_ID: TENANT, TEAMS_ALLOWED_TENANTS: ['a', 'b'] })).toEqual(['a', 'b']);
    expect(allowedTenants({})).toEqual([]);
  });

  it('records a message once: its redelivery is a repeat; a failed one is taken over by the next delivery', async () => {
    const message = fixture('teams_message_personal_docs.json');
    const first = await createTeamsInbox(deps()).record(message);
    expect(first.kind).toBe('new');
    expect(await createTeamsInbox(deps()).record(message)).toEqual({ kind: 'duplicate' });
    const id = teamsDeliveryId(message)!;
    expect(id).toBe(`message:${(message.conversation as { id: string }).id}:${message.id as string}`);
    if (first.kind !== 'new') throw new Error('not new');
    await settleTeamsActivity(deps(), first.inboundId, { code: 'processing_failed', message: 'boom' });
    expect(await row(id)).toMatchObject({ status: 'failed' });
    const again = await createTeamsInbox(deps()).record(message);
    expect(again.kind).toBe('new');
    if (again.kind !== 'new') throw new Error('not new');
    await settleTeamsActivity(deps(), again.inboundId);
    expect(await row(id)).toEqual({ status: 'processed', kind: 'message', error: null });
  });

  it('keys a card click by its own invoke id: the same click twice is one, another click is another', async () => {
    const click = fixture('teams_invoke_adaptiveCard_action_sdk_test.json');
    const tenants = [activityTenant(click)!];
    expect((await createTeamsInbox({ ...deps(), tenants }).record(click)).kind).toBe('new');
    expect((await createTeamsInbox({ ...deps(), tenants }).record(click)).kind).toBe('duplicate');
    expect((await createTeamsInbox({ ...deps(), tenants }).record({ ...click, id: 'f:another-click' })).kind).toBe('new');
  });

  it('refuses and keeps an activity from a tenant not served, or one that cannot be identified', async () => {
    const other = { ...fixture('teams_message_personal_docs.json'), id: 'from-elsewhere', channelData: { tenant: { id: '00000000-0000-0000-0000-000000000001' } } };
    expect(await createTeamsInbox(deps()).record(other)).toEqual({ kind: 'refused', code: 'tenant_not_allowed', message: 'tenant 00000000-0000-0000-0000-000000000001 is not served (TEAMS_ALLOWED_TENANTS)' });
    expect(await row(teamsDeliveryId(other)!)).toMatchObject({ status: 'quarantined', error: { code: 'tenant_not_allowed' } });
    for (const broken of [{ type: 'message' }, { ...fixture('teams_message_personal_docs.json'), id: 'nul\u0000id' }]) {
      expect(await createTeamsInbox(deps()).record(broken)).toMatchObject({ kind: 'refused', code: 'malformed_activity' });
    }
  });

  it('records activities that arrive together in one batch, outcomes riding along: repeats in the batch are one, replies staged in one outbox row, a bad outcome fails alone', async () => {
    const inbox = createTeamsInbox(deps());
    const base = fixture('teams_message_personal_docs.json');
    const activities = Array.from({ length: 12 }, (_, i) => ({ ...base, id: `batch-${i}` }));
    // Arriving together: the first is written at once, the other 11 (and a repeat of one) wait for the next batch.
    const recorded = await Promise.all([...activities, activities[5]!].map((activity) => inbox.record(activity)));
    const fresh = recorded.flatMap((delivery) => (delivery.kind === 'new' ? [delivery.inboundId] : []));
    expect(fresh).toHaveLength(12);
    expect(recorded.filter((delivery) => delivery.kind === 'duplicate')).toHaveLength(1);
    const reply = { text: 'hi', card: toAdaptiveCard({ text: 'hi', blocks: [{ type: 'section', text: 'hi' }] }) };
    const settled = await Promise.allSettled(
      fresh.map((id, i) => inbox.settle(id, i === 7 ? { reply: { ...reply, text: 'bad \u0000 byte' } } : i % 2 === 0 ? { reply } : {})),
    );
    // jsonb refuses a NUL: that outcome fails (its caller marks the delivery failed), the rest of its batch is written.
    expect(settled.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : 'rejected'))).toEqual(fresh.map((_, i) => (i === 7 ? 'rejected' : true)));
    const rows = await fx.tdb.db.selectFrom('inbound_events').select(['id', 'status', 'result']).where('id', 'in', fresh).execute();
    expect(rows.filter((row) => row.status === 'processed')).toHaveLength(11);
    expect(rows.find((row) => row.id === fresh[7])?.status).toBe('received');
    const staged = await fx.tdb.db.selectFrom('inbound_job_outbox').select('inbound_ids').where('job_name', '=', 'teams.replies').execute();
    const stagedIds = staged.flatMap((row) => row.inbound_ids).filter((id) => fresh.includes(id));
    expect(stagedIds.sort()).toEqual(fresh.filter((_, i) => i % 2 === 0).sort());
    // A settle for a delivery no longer 'received' writes nothing.
    expect(await inbox.settle(fresh[0]!, {})).toBe(false);
  });
});
