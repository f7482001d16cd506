/** `/projectx tasks [--all]`: my open tasks and the approvals waiting on me; `--all` (approvers) every open task. */
import { can } from '../../../domain/permissions.ts';
import { type Task, eligibleApprovers, listTasks } from '../../../domain/tasks.ts';
import { type Block, type Reply, okReply, refusedReply } from '../../message.ts';
import { approvalButtons } from '../../render.ts';
import type { CommandContext } from '../context.ts';

const OPEN_STATES = ['open', 'in_progress', 'pending_approval'] as const;

export async function tasks(ctx: CommandContext, command: { all: boolean }): Promise<Reply> {
  const user = ctx.actor.user!;
  const { db } = ctx.domain;
  if (command.all && !can(user, 'tasks.read_all')) return refusedReply('forbidden', '`--all` needs the approver role; `/projectx tasks` shows yours.');
  const mine = await listTasks(db, command.all ? { states: OPEN_STATES, limit: 50 } : { assigneeId: user.id, states: OPEN_STATES });
  const pending = command.all ? [] : await listTasks(db, { states: ['pending_approval'], limit: 100 });
  const awaitingMe: Task[] = [];
  for (const task of pending) {
    if (task.requesterId === user.id || task.assigneeId === user.id) continue;
    if (can(user, 'tasks.decide') && (await eligibleApprovers(db, task)).includes(user.id)) awaitingMe.push(task);
  }
  const blocks: Block[] = [];
  const line = (task: Task) => `*${task.ref}* ${task.title} · ${task.state.replace('_', ' ')}${task.dueAt ? ` · due ${task.dueAt.toISOString().slice(0, 10)}` : ''}`;
  if (awaitingMe.length > 0) {
    blocks.push({ type: 'header', text: `Waiting for your decision (${awaitingMe.length})` });
    for (const task of awaitingMe.slice(0, 10)) blocks.push({ type: 'section', text: line(task) }, { type: 'actions', buttons: approvalButtons(task) });
  }
  blocks.push({ type: 'header', text: command.all ? `Open tasks (${mine.length})` : `Your open tasks (${mine.length})` });
  if (mine.length === 0) blocks.push({ type: 'context', text: 'Nothing open.' });
  for (const task of mine) blocks.push({ type: 'section', text: line(task) });
  const text = `${awaitingMe.length} waiting for your decision, ${mine.length} open${command.all ? '' : ' assigned to you'}`;
  return okReply({ text, blocks });
}
