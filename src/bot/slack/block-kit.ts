/**
 * Renders the surface-neutral message model as Slack Block Kit. Buttons carry the action id and value the
 * command layer understands (`approve` / `deny` with the task id).
 */
import type { Block, Message } from '../message.ts';

export type SlackBlock = Record<string, unknown>;

/**
 * Slack's control characters. Everything we render passes through this, so text that came from people or from
 * other systems (task titles, reasons, incident descriptions) cannot ping `<!channel>` or spoof `<url|link>`;
 * our own formatting uses only *bold* and `code`, which stay.
 */
export const escapeMrkdwn = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const mrkdwn = (text: string) => ({ type: 'mrkdwn', text: escapeMrkdwn(text).slice(0, 3000) });
/** Links are the one place we emit Slack's <url|label> syntax, built from escaped parts. */
const mrkdwnRaw = (text: string) => ({ type: 'mrkdwn', text: text.slice(0, 3000) });
const plain = (text: string) => ({ type: 'plain_text', text: text.slice(0, 150), emoji: true });

function renderBlock(block: Block): SlackBlock {
  switch (block.type) {
    case 'header':
      return { type: 'header', text: plain(block.text) };
    case 'section':
      return block.fields && block.fields.length > 0
        ? { type: 'section', text: mrkdwn(block.text), fields: block.fields.slice(0, 10).map((field) => mrkdwn(`*${field.label}*\n${field.value}`)) }
        : { type: 'section', text: mrkdwn(block.text) };
    case 'context':
      return { type: 'context', elements: [mrkdwn(block.text)] };
    case 'links':
      // Slack's link syntax <url|label>; characters that would break it are escaped per Slack's formatting rules.
      return { type: 'context', elements: [mrkdwnRaw(block.links.map((link) => `<${link.url.replace(/[<>|]/g, encodeURIComponent)}|${escapeMrkdwn(link.label)}>`).join('  ·  '))] };
    case 'actions':
      return {
        type: 'actions',
        elements: block.buttons.map((button) => ({
          type: 'button',
          action_id: button.actionId,
          value: button.value,
          text: plain(button.label),
          ...(button.style ? { style: button.style } : {}),
        })),
      };
  }
}

export function toBlocks(message: Message): SlackBlock[] {
  return message.blocks.slice(0, 50).map(renderBlock);
}

/** The body of an ephemeral answer to a slash command or a `response_url`. */
export function ephemeral(message: Message): { response_type: 'ephemeral'; text: string; blocks: SlackBlock[] } {
  return { response_type: 'ephemeral', text: escapeMrkdwn(message.text).slice(0, 3000), blocks: toBlocks(message) };
}
