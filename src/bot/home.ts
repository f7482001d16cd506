/**
 * The personal home, on every chat surface: approvals waiting for the user (with buttons), their open tasks,
 * evidence requested of them, incidents they acknowledged or open P1/P2 ones, and a line of health per
 * integration; an unlinked user sees how to link. Slack publishes it as App Home (src/bot/slack/home.ts); Teams
 * answers `tasks` in a personal chat with it (src/bot/teams/surface.ts).
 */
import type { IntegrationHealth } from './commands/context.ts';
import type { Db } from '../db/database.ts';
import { listOpenIncidents } from '../domain/incidents.ts';
import { can } from '../domain/permissions.ts';
import { type Task, eligibleApprovers, listTasks } from '../domain/tasks.ts';
import type { User } from '../domain/users.ts';
import type { Block, Message } from './message.ts';
import { ackButton, approvalButtons } from './render.ts';

const line = (task: Task) => `*${task.ref}* ${task.title} · ${task.state.replace('_', ' ')}${task.dueAt ? ` · due ${task.dueAt.toISOString().slice(0, 10)}` : ''}`;

export async function renderHome(db: Db, integrations: () => Promise<IntegrationHealth[]>, user: User | undefined, surface: 'Slack' | 'Teams'): Promise<Message> {
  if (!user) {
    const text = `Your ${surface} account is not linked to ProjectX yet. Type \`${surface === 'Slack' ? '/projectx link' : 'link'}\` to get linked.`;
    return { text, blocks: [{ type: 'header', text: 'ProjectX' }, { type: 'section', text }] };
  }
  const blocks: Block[] = [{ type: 'header', text: `ProjectX for ${user.displayName}` }];
  // Of the newest 100 pending tasks, those that could be the user's to decide (checked in SQL): their policies say.
  const pending = can(user, 'tasks.decide') ? await listTasks(db, { states: ['pending_approval'], limit: 100, mayBeDecidedBy: user.id }) : [];
  const waiting: Task[] = [];
  for (const task of pending) {
    if (task.requesterId !== user.id && task.assigneeId !== user.id && (await eligibleApprovers(db, task)).includes(user.id)) waiting.push(task);
  }
  blocks.push({ type: 'header', text: `Approvals waiting for you (${waiting.length})` });
  if (waiting.length === 0) blocks.push({ type: 'context', text: 'Nothing waits on you.' });
  for (const task of waiting.slice(0, 10)) blocks.push({ type: 'section', text: line(task) }, { type: 'actions', buttons: approvalButtons(task) });

  const mine = await listTasks(db, { assigneeId: user.id, states: ['open', 'in_progress', 'pending_approval'] });
  const evidence = mine.filter((task) => task.type === 'evidence_request');
  const others = mine.filter((task) => task.type !== 'evidence_request');
  blocks.push({ type: 'header', text: `Your tasks (${others.length})` });
  blocks.push(...(others.length ? others.slice(0, 15).map((task): Block => ({ type: 'section', text: line(task) })) : [{ type: 'context' as const, text: 'No open tasks.' }]));
  if (evidence.length > 0) {
    blocks.push({ type: 'header', text: `Evidence requested of you (${evidence.length})` });
    for (const task of evidence.slice(0, 10)) blocks.push({ type: 'section', text: `${line(task)} · upload with \`/projectx evidence ${task.ref}\`` });
  }

  const acked = await listOpenIncidents(db, { acknowledgedBy: user.id, limit: 10 });
  const urgent = (await listOpenIncidents(db, { maxPriority: 2, limit: 10 })).filter((incident) => !acked.some((a) => a.id === incident.id));
  blocks.push({ type: 'header', text: 'Incidents' });
  const incidents = [...acked, ...urgent];
  if (incidents.length === 0) blocks.push({ type: 'context', text: 'No open P1/P2 incidents, none acknowledged by you.' });
  for (const incident of incidents) {
    const state = incident.acknowledgedBy === user.id ? 'acknowledged by you' : incident.acknowledgedAt ? 'acknowledged' : '*not acknowledged*';
    blocks.push({ type: 'section', text: `*${incident.number}* P${incident.priority} ${incident.shortDescription} · ${state}` });
    if (!incident.acknowledgedAt) blocks.push({ type: 'actions', buttons: [ackButton(incident)] });
  }

  const health = await integrations();
  blocks.push({ type: 'header', text: 'Integrations' });
  blocks.push({ type: 'context', text: health.map((row) => `${row.title}: ${row.status === 'not_built' ? 'not built in this version' : row.status.replace('_', ' ')}`).join(' · ') });
  return { text: `ProjectX for ${user.displayName}`, blocks };
}

