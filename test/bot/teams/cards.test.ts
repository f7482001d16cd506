/**
 * The message model as Adaptive Cards: an approval task renders with Action.Execute buttons (verb = the action
 * id the command layer runs, data.value = the task id, an Action.Submit fallback), a refresh naming the
 * approvers, facts for the fields, deep links as Action.OpenUrl; text people wrote cannot become a link.
 */
import { describe, expect, it } from 'vitest';
import { renderIncident, renderTask } from '../../../src/bot/render.ts';
import { ADAPTIVE_CARD_CONTENT_TYPE, cardAttachment, cardText, toAdaptiveCard } from '../../../src/bot/teams/cards.ts';
import type { Task } from '../../../src/domain/tasks.ts';

const task: Task = {
  id: '42',
  ref: 'T-42',
  type: 'approval',
  title: 'Grant prod access [click](https://evil.example)',
  description: 'Needs *two* approvals for `prod-db`',
  state: 'pending_approval',
  priority: 'high',
  requesterId: 'u-req',
  assigneeId: null,
  dueAt: null,
  policy: { approverUserIds: ['u-a', 'u-b'], quorum: 1 } as Task['policy'],
  version: 1,
  labels: [],
  externalAssignee: null,
  createdAt: new Date('2026-12-07T10:00:00Z'),
  updatedAt: new Date('2026-12-07T10:00:00Z'),
  links: [{ kind: 'control', target: 'AC-2', url: 'https://grc.example.com/controls/AC-2' }, { kind: 'incident', target: 'INC0012345', url: 'javascript:alert(1)' }],
};

describe('Adaptive Cards from the message model', () => {
  it('renders an approval with Action.Execute buttons the invoke handler can route, and a refresh for the approvers', () => {
    const card = toAdaptiveCard(renderTask(task, { names: { 'u-req': 'Rita Requester' } }), { refresh: { userIds: ['29:approver-a', '29:approver-b'], verb: 'refresh', data: { taskId: '42' } } });
    expect(card).toMatchObject({ type: 'AdaptiveCard', version: '1.5', msteams: { width: 'Full' }, refresh: { action: { type: 'Action.Execute', verb: 'refresh', data: { taskId: '42' } }, userIds: ['29:approver-a', '29:approver-b'] } });
    const actionSets = card.body.filter((element) => element.type === 'ActionSet');
    const buttons = actionSets.flatMap((set) => set.actions as Record<string, unknown>[]).filter((action) => action.type === 'Action.Execute');
    expect(buttons).toEqual([
      { type: 'Action.Execute', title: 'Approve', verb: 'approve', data: { value: '42' }, style: 'positive', fallback: { type: 'Action.Submit', title: 'Approve', data: { verb: 'approve', value: '42' } } },
      { type: 'Action.Execute', title: 'Deny', verb: 'deny', data: { value: '42' }, style: 'destructive', fallback: { type: 'Action.Submit', title: 'Deny', data: { verb: 'deny', value: '42' } } },
    ]);
    // Only http(s) deep links, as buttons.
    const links = actionSets.flatMap((set) => set.actions as Record<string, unknown>[]).filter((action) => action.type === 'Action.OpenUrl');
    expect(links).toEqual([{ type: 'Action.OpenUrl', title: 'Open AC-2', url: 'https://grc.example.com/controls/AC-2' }]);
    // Fields as facts; the requester by name.
    expect(JSON.stringify(card.body)).toContain('"facts":[{"title":"State","value":"pending approval"}');
    expect(JSON.stringify(card.body)).toContain('{"title":"Requester","value":"Rita Requester"}');
  });

  it('shapes a click as Teams sends it: the invoke value carries the verb and data the button was given', () => {
    const card = toAdaptiveCard(renderTask(task));
    const approve = card.body.flatMap((element) => (element.type === 'ActionSet' ? (element.actions as Record<string, unknown>[]) : [])).find((action) => action.verb === 'approve')!;
    // What Teams posts back for an Action.Execute (test/fixtures/teams/teams_invoke_adaptiveCard_action_sdk_test.json): type, verb, data.
    const invokeValue = { action: { type: approve.type, verb: approve.verb, data: approve.data }, trigger: 'manual' };
    expect(invokeValue).toEqual({ action: { type: 'Action.Execute', verb: 'approve', data: { value: '42' } }, trigger: 'manual' });
    expect(cardAttachment(card)).toEqual({ contentType: ADAPTIVE_CARD_CONTENT_TYPE, content: card });
  });

  it('translates our bold, drops code backticks, and keeps people\'s link syntax from becoming a link', () => {
    expect(cardText('Needs *two* approvals for `prod-db`')).toBe('Needs **two** approvals for prod-db');
    expect(cardText('Grant [click](https://evil.example)')).toBe('Grant \\[click\\](https://evil.example)');
    const card = toAdaptiveCard(renderTask(task));
    expect(JSON.stringify(card.body)).not.toContain('[click](');
    expect(card.fallbackText).toBe('T-42 Grant prod access [click](https://evil.example) (pending approval)');
  });

  it('renders an incident without buttons of its own, and any message with at least one element', () => {
    const card = toAdaptiveCard(renderIncident({ number: 'INC0012345', priority: 1, shortDescription: 'Payments API down', state: 'new', sourceSystem: 'servicenow', acknowledgedAt: null } as never));
    expect(card.body[0]).toEqual({ type: 'TextBlock', text: 'INC0012345 Payments API down', size: 'Large', weight: 'Bolder', wrap: true });
    expect(toAdaptiveCard({ text: 'plain', blocks: [] }).body).toEqual([{ type: 'TextBlock', text: 'plain', wrap: true }]);
  });
});
