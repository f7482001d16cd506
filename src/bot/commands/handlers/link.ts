/** `/projectx link`: tells a linked user who they are; gives an unlinked chat user a one-time code to link. */
import { issueLinkCode } from '../../../domain/users.ts';
import { type Reply, okReply, refusedReply, textMessage } from '../../message.ts';
import type { CommandContext } from '../context.ts';

export async function link(ctx: CommandContext): Promise<Reply> {
  const { user, identity } = ctx.actor;
  if (user) return okReply(textMessage(`You are linked to ProjectX as ${user.displayName} <${user.email}> (${user.roles.join(', ') || 'no roles'}).`));
  if (!identity) return refusedReply('not_linked', 'This surface has no chat identity to link.');
  const code = await issueLinkCode(ctx.domain.db, identity, ctx.domain.clock.now());
  return okReply(
    textMessage(
      `To link this chat account, give a ProjectX admin this code (valid 15 minutes): *${code}*\n` +
        `They run \`projectx users link-code ${code} <your email>\`. Then \`/projectx help\` shows what you can do.`,
    ),
  );
}
