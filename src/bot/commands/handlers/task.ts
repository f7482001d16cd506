/** `/projectx task <id>`: one task, with Approve/Deny when this user may decide it. */
import { can } from '../../../domain/permissions.ts';
import { eligibleApprovers, getTask, taskRef } from '../../../domain/tasks.ts';
import { type Reply, okReply, refusedReply } from '../../message.ts';
import { renderTask } from '../../render.ts';
import type { CommandContext } from '../context.ts';

export async function task(ctx: CommandContext, command: { taskId: string }): Promise<Reply> {
  const user = ctx.actor.user!;
  const found = await getTask(ctx.domain.db, command.taskId);
  if (!found) return refusedReply('task_not_found', `There is no task ${taskRef(command.taskId)}.`);
  const approvers = found.policy ? await eligibleApprovers(ctx.domain.db, found) : [];
  const involved = [found.assigneeId, found.requesterId, ...approvers].includes(user.id);
  if (!involved && !can(user, 'tasks.read_all')) return refusedReply('forbidden', `You are not involved in ${found.ref}.`);
  const mayDecide = can(user, 'tasks.decide') && approvers.includes(user.id) && user.id !== found.requesterId && user.id !== found.assigneeId;
  const ids = [found.assigneeId, found.requesterId].filter((id): id is string => id !== null);
  const rows = ids.length > 0 ? await ctx.domain.db.selectFrom('users').select(['id', 'display_name']).where('id', 'in', ids).execute() : [];
  const names = Object.fromEntries(rows.map((row) => [row.id, row.display_name]));
  return okReply(renderTask(found, { buttons: mayDecide, names }));
}
