/** `/projectx evidence [control|task]`: asks the surface to open the upload form, checking the target first. */
import { getControl } from '../../../domain/controls.ts';
import { getTask, taskRef } from '../../../domain/tasks.ts';
import { type Reply, okReply, refusedReply, sentence, textMessage } from '../../message.ts';
import type { CommandContext } from '../context.ts';

export async function evidence(ctx: CommandContext, command: { target?: { kind: 'control' | 'task'; id: string } }): Promise<Reply> {
  const target = command.target;
  if (target?.kind === 'control' && !(await getControl(ctx.domain.db, target.id))) return refusedReply('unknown_control', sentence(`There is no control ${target.id}`));
  if (target?.kind === 'task' && !(await getTask(ctx.domain.db, target.id))) return refusedReply('task_not_found', `There is no task ${taskRef(target.id)}.`);
  const label = target ? (target.kind === 'control' ? `control ${target.id}` : `task ${taskRef(target.id)}`) : 'a control or task you choose';
  return okReply(
    textMessage(sentence(`Opening the evidence upload form for ${label}`)),
    target?.kind === 'control' ? { kind: 'evidence_upload', controlId: target.id } : target?.kind === 'task' ? { kind: 'evidence_upload', taskId: target.id } : { kind: 'evidence_upload' },
  );
}
