/** Renders domain objects and events as surface-neutral messages. */
import { formatTime } from '../domain/approvals.ts';
import type { DomainEvent } from '../domain/events.ts';
import type { Incident } from '../domain/incidents.ts';
import type { Task } from '../domain/tasks.ts';
import type { Block, Button, Message } from './message.ts';

export function approvalButtons(task: Pick<Task, 'id'>): Button[] {
  return [
    { actionId: 'approve', label: 'Approve', value: task.id, style: 'primary' },
    { actionId: 'deny', label: 'Deny', value: task.id, style: 'danger' },
  ];
}

/** A task card; pending approvals carry Approve/Deny unless `buttons` is false. */
export function renderTask(task: Task, options: { buttons?: boolean; names?: Record<string, string> } = {}): Message {
  const name = (id: string | null) => (id ? (options.names?.[id] ?? id) : 'nobody');
  const fields = [
    { label: 'State', value: task.state.replace('_', ' ') },
    { label: 'Type', value: task.type.replace('_', ' ') },
    { label: 'Assignee', value: task.assigneeId ? name(task.assigneeId) : (task.externalAssignee ?? 'nobody') },
    { label: 'Requester', value: name(task.requesterId) },
  ];
  if (task.dueAt) fields.push({ label: 'Due', value: formatTime(task.dueAt) });
  if (task.policy) {
    fields.push({ label: 'Approvals needed', value: String(task.policy.quorum) });
    if (task.policy.expiresAt) fields.push({ label: 'Decide by', value: formatTime(new Date(task.policy.expiresAt)) });
  }
  if (task.labels.length > 0) fields.push({ label: 'Labels', value: task.labels.join(', ') });
  const links = task.links.map((link) => (link.kind === 'incident' ? `incident ${link.target}` : link.kind === 'program' ? `programme ${link.target}` : linkLabel(link)));
  const blocks: Block[] = [
    { type: 'header', text: `${task.ref} ${task.title}` },
    { type: 'section', text: task.description ?? task.title, fields },
  ];
  if (links.length > 0) blocks.push({ type: 'context', text: `Linked: ${links.join(', ')}` });
  const deepLinks = task.links.filter((link) => link.url && /^https?:\/\//.test(link.url)).map((link) => ({ label: `Open ${linkLabel(link)}`, url: link.url! }));
  if (deepLinks.length > 0) blocks.push({ type: 'links', links: deepLinks });
  if (options.buttons !== false && task.state === 'pending_approval') blocks.push({ type: 'actions', buttons: approvalButtons(task) });
  return { text: `${task.ref} ${task.title} (${task.state.replace('_', ' ')})`, blocks };
}

/** How a link reads: a Jira issue by its key (`SEC-12 in Jira`, from its browse URL), anything else by its target. */
function linkLabel(link: Task['links'][number]): string {
  const key = link.target.startsWith('jira:') && link.url ? /\/browse\/([A-Z][A-Z0-9_]*-\d+)$/.exec(link.url)?.[1] : undefined;
  return key ? `${key} in Jira` : link.target;
}

/** Acknowledge, on an incident nobody has acknowledged: the same as `ack <number>`. */
export function ackButton(incident: Pick<Incident, 'number'>): Button {
  return { actionId: 'ack', label: 'Acknowledge', value: incident.number, style: 'primary' };
}

/** An incident card; an open one nobody acknowledged carries Acknowledge. */
export function renderIncident(incident: Incident, acknowledgedByName?: string): Message {
  const ack = incident.acknowledgedAt ? `acknowledged by ${acknowledgedByName ?? 'someone'} at ${formatTime(incident.acknowledgedAt)}` : 'not acknowledged';
  const message: Message = {
    text: `${incident.number} (P${incident.priority}) ${incident.shortDescription}: ${ack}`,
    blocks: [
      { type: 'header', text: `${incident.number} ${incident.shortDescription}` },
      {
        type: 'section',
        text: incident.shortDescription,
        fields: [
          { label: 'Priority', value: `P${incident.priority}` },
          { label: 'State', value: incident.state },
          { label: 'Source', value: incident.sourceSystem },
          { label: 'Acknowledged', value: ack },
        ],
      },
    ],
  };
  if (!incident.acknowledgedAt && !['resolved', 'closed', 'cancelled'].includes(incident.state)) message.blocks.push({ type: 'actions', buttons: [ackButton(incident)] });
  return message;
}

/** The notification for a domain event. */
export function renderEvent(event: DomainEvent): Message {
  const blocks: Block[] = [{ type: 'section', text: event.summary }];
  if (event.type === 'task.approval_requested') blocks.push({ type: 'actions', buttons: approvalButtons({ id: event.subject.id }) });
  blocks.push({ type: 'context', text: `${event.type} · ${event.occurredAt.slice(0, 16).replace('T', ' ')} UTC` });
  return { text: event.summary, blocks };
}
