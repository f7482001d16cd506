/** `/projectx help`: only what this user may do; unlinked users learn how to link. */
import { type Permission, permissionsOf } from '../../../domain/permissions.ts';
import { type Reply, okReply, textMessage } from '../../message.ts';
import type { CommandContext } from '../context.ts';

export function help(ctx: CommandContext, commands: readonly { usage: string; summary: string; permission: Permission }[]): Promise<Reply> {
  const allowed = permissionsOf(ctx.actor.user);
  const lines = commands.filter((command) => allowed.has(command.permission)).map((command) => `\`${command.usage}\`: ${command.summary}`);
  const intro = ctx.actor.user
    ? `ProjectX commands for ${ctx.actor.user.displayName} (${ctx.actor.user.roles.join(', ') || 'no roles'}):`
    : 'Your chat account is not linked to a ProjectX user yet, so you can only read help and ask to be linked.';
  return Promise.resolve(okReply(textMessage([intro, ...lines].join('\n'))));
}
