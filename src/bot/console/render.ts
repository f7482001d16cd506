/** Renders the message model as terminal text; buttons are numbered so the shell can press them. */
import type { Button, Message } from '../message.ts';

export interface RenderedText {
  text: string;
  /** Buttons in the order they are numbered ([1], [2], …). */
  buttons: Button[];
}

const plain = (text: string) => text.replace(/\*([^*]+)\*/g, '$1').replace(/`([^`]+)`/g, '$1');

export function renderText(message: Message): RenderedText {
  const lines: string[] = [];
  const buttons: Button[] = [];
  for (const block of message.blocks) {
    if (block.type === 'header') lines.push(`== ${plain(block.text)} ==`);
    else if (block.type === 'section') {
      lines.push(plain(block.text));
      for (const field of block.fields ?? []) lines.push(`  ${field.label}: ${plain(field.value)}`);
    } else if (block.type === 'context') lines.push(`  (${plain(block.text)})`);
    else if (block.type === 'links') lines.push(...block.links.map((link) => `  ${link.label}: ${link.url}`));
    else {
      lines.push(
        block.buttons
          .map((button) => {
            buttons.push(button);
            return `[${buttons.length}] ${button.label}`;
          })
          .join('   '),
      );
    }
  }
  return { text: lines.join('\n'), buttons };
}
