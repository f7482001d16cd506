/**
 * App Home, published by a job when a user opens it: approvals waiting for them (with buttons), their open
 * tasks, evidence requested of them, incidents they acknowledged or open P1/P2 ones, and a line of health per
 * integration. An unlinked user sees how to link.
 */
import { z } from 'zod';
import type { IntegrationHealth } from '../commands/context.ts';
import type { Db } from '../../db/database.ts';
import { listOpenIncidents } from '../../domain/incidents.ts';
import { can } from '../../domain/permissions.ts';
import { type Task, eligibleApprovers, listTasks } from '../../domain/tasks.ts';
import { type User, findUserByIdentity } from '../../domain/users.ts';
import { type JobContext, defineJob } from '../../jobs/define-job.ts';
import type { SlackJobDeps } from './job-deps.ts';
import type { Block, Message } from '../message.ts';
import { approvalButtons } from '../render.ts';
import { toBlocks } from './block-kit.ts';

const line = (task: Task) => `*${task.ref}* ${task.title} · ${task.state.replace('_', ' ')}${task.dueAt ? ` · due ${task.dueAt.toISOString().slice(0, 10)}` : ''}`;

export async function renderHome(db: Db, integrations: () => Promise<IntegrationHealth[]>, user: User | undefined): Promise<Message> {
  if (!user) {
    const text = 'Your Slack account is not linked to ProjectX yet. Type `/projectx link` to get linked.';
    return { text, blocks: [{ type: 'header', text: 'ProjectX' }, { type: 'section', text }] };
  }
  const blocks: Block[] = [{ type: 'header', text: `ProjectX for ${user.displayName}` }];
  const pending = can(user, 'tasks.decide') ? await listTasks(db, { states: ['pending_approval'], limit: 100 }) : [];
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
  }

  const health = await integrations();
  blocks.push({ type: 'header', text: 'Integrations' });
  blocks.push({ type: 'context', text: health.map((row) => `${row.title}: ${row.status === 'not_built' ? 'not built in this version' : row.status.replace('_', ' ')}`).join(' · ') });
  return { text: `ProjectX for ${user.displayName}`, blocks };
}

export const slackPublishHome = defineJob({
  name: 'slack.publish-home',
  schema: z.object({ slackUserId: z.string(), tenant: z.string() }),
  policy: { retryDelaySeconds: 5, retryLimit: 3 },
  handler: async ({ slackUserId, tenant }, { deps }: JobContext<SlackJobDeps>) => {
    if (!deps.slack) throw Object.assign(new Error('Slack is not configured on this worker (SLACK_BOT_TOKEN)'), { code: 'slack_not_configured' });
    const user = await findUserByIdentity(deps.db, { surface: 'slack', tenant, externalId: slackUserId });
    const home = await renderHome(deps.db, deps.integrations, user);
    const client = await deps.slack.tokens.clientFor(tenant);
    await client.views.publish({ user_id: slackUserId, view: { type: 'home', blocks: toBlocks(home) as never } });
    return { linked: Boolean(user) };
  },
});
