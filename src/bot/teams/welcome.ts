/**
 * The card the bot posts when it is installed or added to a conversation: what it does there and how to start.
 * A personal chat gets the full list (files go there); a team or group chat learns to @mention the bot.
 */
import { COMMANDS } from '../commands/registry.ts';
import type { Message } from '../message.ts';
import type { ConversationKind } from './commands.ts';

export function welcomeMessage(kind: ConversationKind): Message {
  const intro =
    kind === 'personal'
      ? 'Hi, I am ProjectX. Here you can see what waits for you (`tasks`), approve or deny (`approve T-1`, `deny T-1 <reason>`), acknowledge incidents (`ack INC0012345`) and send evidence: attach files to a message here and name the control (`evidence AC-2`).'
      : 'Hi, I am ProjectX. @mention me with a command (`@ProjectX tasks`, `@ProjectX ack INC0012345`); approvals and alerts routed here arrive as cards with buttons. Evidence files go to me in a personal chat.';
  const text = `${intro} If your account is not linked yet, type \`link\`.`;
  return {
    text,
    blocks: [
      { type: 'header', text: 'Welcome to ProjectX' },
      { type: 'section', text },
      { type: 'context', text: COMMANDS.map((command) => command.verb).join(' · ') },
    ],
  };
}
