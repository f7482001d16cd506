/**
 * What a Teams message asks, from Microsoft's documented payloads: the bot's @mention stripped in a channel,
 * other markup dropped, an optional `projectx` prefix accepted; who asks is the Entra object id in the tenant.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { commandText, conversationKind, teamsIdentity } from '../../../src/bot/teams/commands.ts';
import { activityTenant } from '../../../src/bot/teams/inbound.ts';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/teams/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;

describe('Teams messages as commands', () => {
  it('strips the bot\'s mention in a channel message (the docs\' payload, addressed to us)', () => {
    const message = fixture('teams_message_channel_mention_docs.json');
    const botId = '29:08q2j2o3jc09au90eucae';
    expect(commandText({ ...message, text: '<at>@Pranav Smith</at> approve T-12' }, botId)).toBe('approve T-12');
    // Someone else's mention is markup, dropped; the words stay.
    expect(commandText({ ...message, text: 'ack <at>Jane</at> INC0012345', entities: [] }, botId)).toBe('ack INC0012345');
  });

  it('accepts plain text, HTML, and a projectx or /projectx prefix', () => {
    expect(commandText({ text: 'tasks' })).toBe('tasks');
    expect(commandText({ text: '<div><div>/projectx   task&nbsp;T-1</div></div>' })).toBe('task T-1');
    expect(commandText({ text: 'ProjectX help' })).toBe('help');
    expect(commandText({})).toBe('');
  });

  it('tells personal, group and channel conversations apart, and who is asking', () => {
    const personal = fixture('teams_message_personal_docs.json');
    expect(conversationKind(personal)).toBe('personal');
    expect(conversationKind(fixture('teams_conversationUpdate_bot_added_to_team_docs.json'))).toBe('channel');
    expect(conversationKind({ conversation: { conversationType: 'groupChat' } })).toBe('groupChat');
    expect(teamsIdentity(personal, activityTenant(personal))).toEqual({ surface: 'teams', tenant: '72f988bf-86f1-41af-91ab-2d7cd011db47', externalId: '7faf8ab2-3d56-4244-b585-20c8a42ed2b8' });
    expect(teamsIdentity({ from: { id: '29:x' } }, 'tenant')).toBeUndefined();
  });
});
