/** `/projectx approve <id> [reason]` and `/projectx deny <id> <reason>`, and the Approve/Deny buttons. */
import { type Decision, decide } from '../../../domain/approvals.ts';
import { type Reply, okReply, refusedReply, textMessage } from '../../message.ts';
import type { CommandContext } from '../context.ts';

export async function decideTask(ctx: CommandContext, command: { taskId: string; reason?: string }, decision: Decision): Promise<Reply> {
  const result = await decide(ctx.domain, ctx.actor, command.taskId, decision, command.reason);
  if (!result.ok) return refusedReply(result.refusal.code, result.refusal.message);
  const { task, final, approvals, quorum } = result.value;
  if (decision === 'deny') return { ...okReply(textMessage(`You denied ${task.ref}: it is now denied.`)), task };
  const text = final ? `You approved ${task.ref}: it is now approved (${approvals} of ${quorum}).` : `Your approval of ${task.ref} is recorded (${approvals} of ${quorum}); it needs ${quorum - approvals} more.`;
  return { ...okReply(textMessage(text)), task };
}
