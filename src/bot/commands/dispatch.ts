/**
 * The surface-agnostic entry point: text in, reply out. Parses, authorizes centrally against the linked user,
 * runs the handler, and audits every refusal. Surfaces (Slack, Teams, console) call `runCommand` for slash
 * commands and `runAction` for button presses.
 */
import { auditRefusal } from '../../domain/audit.ts';
import { can } from '../../domain/permissions.ts';
import { normalizeIncidentNumber } from '../../domain/incidents.ts';
import { parseTaskRef } from '../../domain/tasks.ts';
import { type Reply, okReply, refusedReply, textMessage } from '../message.ts';
import type { CommandContext } from './context.ts';
import { parseCommand } from './parse.ts';
import { commandFor } from './registry.ts';

const NOT_LINKED =
  'Your chat account is not linked to a ProjectX user, so you can only use `/projectx help` and `/projectx link`. Run `/projectx link` to get linked.';

export async function runCommand(ctx: CommandContext, text: string): Promise<Reply> {
  const parsed = parseCommand(text);
  if (!parsed.ok) return refusedReply(parsed.error.code, parsed.error.message);
  const spec = commandFor(parsed.command.verb);
  if (!can(ctx.actor.user, spec.permission)) {
    const message = ctx.actor.user ? `\`${spec.usage}\` needs a role you do not have (you have ${ctx.actor.user.roles.join(', ') || 'none'}).` : NOT_LINKED;
    const code = ctx.actor.user ? 'forbidden' : 'not_linked';
    await auditRefusal(ctx.domain.db, { actor: ctx.actor, action: `command.${spec.verb}`, objectType: 'command', objectId: spec.verb, at: ctx.domain.clock.now(), code, message });
    return refusedReply(code, message);
  }
  return spec.run(ctx, parsed.command);
}

/**
 * A button press. `approve` decides at once; `deny` asks the surface for a reason first (the reason form then
 * calls `runCommand` with `deny <id> <reason>`); `ack` acknowledges the incident it names.
 */
export async function runAction(ctx: CommandContext, actionId: string, value: string): Promise<Reply> {
  if (actionId === 'ack' && normalizeIncidentNumber(value)) return runCommand(ctx, `ack ${normalizeIncidentNumber(value)}`);
  const taskId = parseTaskRef(value);
  if ((actionId === 'approve' || actionId === 'deny') && taskId) {
    if (actionId === 'approve') return runCommand(ctx, `approve ${taskId}`);
    if (!can(ctx.actor.user, 'tasks.decide')) return runCommand(ctx, `deny ${taskId} (no reason)`);
    return okReply(textMessage(`Why are you denying T-${taskId}?`), { kind: 'deny_reason', taskId, taskRef: `T-${taskId}` });
  }
  await auditRefusal(ctx.domain.db, { actor: ctx.actor, action: 'action.unknown', objectType: 'action', objectId: actionId.slice(0, 64), at: ctx.domain.clock.now(), code: 'unknown_action', message: 'unknown button' });
  return refusedReply('unknown_action', 'That button is not recognised (the message may be out of date).');
}
