/**
 * A notification as an email: a subject line, a plain-text body and a simple HTML body carrying the same
 * blocks, deep links included. Email has no buttons, so an Approve/Deny row becomes the chat commands that do
 * the same.
 */
import type { Block, Message } from '../../bot/message.ts';

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

const SUBJECT_MAX = 150;

/**
 * The notification's own message first (what happened), then `current`, the subject as it is now (the task
 * or incident card with its deep links), when there is one. With a current card, only its Approve/Deny row
 * counts: a task decided since the event shows none.
 *
 * @example
 * renderEmail({ text: 'T-42 needs your approval', blocks: [{ type: 'section', text: 'T-42 needs your approval' }] });
 */
export function renderEmail(message: Message, current?: Message): RenderedEmail {
  const blocks = current ? [...message.blocks.filter((block) => block.type !== 'actions'), ...current.blocks] : message.blocks;
  const oneLine = message.text.replace(/\s+/g, ' ').trim();
  const subject = `[ProjectX] ${oneLine.length > SUBJECT_MAX ? `${oneLine.slice(0, SUBJECT_MAX - 1)}…` : oneLine}`;
  const text = `${blocks.map(blockText).join('\n\n')}\n\n-- \nSent by ProjectX Integrations.\n`;
  const html = [
    '<!doctype html><html><body style="font-family: sans-serif; font-size: 14px; line-height: 1.4">',
    ...blocks.map(blockHtml),
    '<p style="color: #888; font-size: 12px">Sent by ProjectX Integrations.</p>',
    '</body></html>',
  ].join('\n');
  return { subject, text, html };
}

function blockText(block: Block): string {
  switch (block.type) {
    case 'header':
      return `${block.text}\n${'='.repeat(Math.min(block.text.length, 72))}`;
    case 'section':
      return [block.text, ...(block.fields ?? []).map((field) => `${field.label}: ${field.value}`)].join('\n');
    case 'context':
      return block.text;
    case 'links':
      return safeLinks(block).map((link) => `${link.label}: ${link.url}`).join('\n');
    case 'actions':
      return decideHint(block);
  }
}

function blockHtml(block: Block): string {
  switch (block.type) {
    case 'header':
      return `<h2 style="font-size: 18px">${escapeHtml(block.text)}</h2>`;
    case 'section': {
      const fields = (block.fields ?? []).map((field) => `<tr><td style="color: #555; padding-right: 12px">${escapeHtml(field.label)}</td><td>${escapeHtml(field.value)}</td></tr>`);
      return `<p>${escapeHtml(block.text)}</p>${fields.length > 0 ? `\n<table>${fields.join('')}</table>` : ''}`;
    }
    case 'context':
      return `<p style="color: #666; font-size: 12px">${escapeHtml(block.text)}</p>`;
    case 'links':
      return `<p>${safeLinks(block).map((link) => `<a href="${escapeHtml(link.url)}">${escapeHtml(link.label)}</a>`).join(' · ')}</p>`;
    case 'actions':
      return `<p>${escapeHtml(decideHint(block))}</p>`;
  }
}

/** Only web links: a `javascript:` or `file:` URL never becomes a link in a mail client. */
function safeLinks(block: Extract<Block, { type: 'links' }>) {
  return block.links.filter((link) => /^https?:\/\//i.test(link.url));
}

/** Approve/Deny buttons carry the task id; email readers decide with the matching chat command. */
function decideHint(block: Extract<Block, { type: 'actions' }>): string {
  const commands = block.buttons.flatMap((button) => {
    if (button.actionId === 'approve') return [`/projectx approve T-${button.value} [reason]`];
    if (button.actionId === 'deny') return [`/projectx deny T-${button.value} <reason>`];
    return [];
  });
  return commands.length > 0 ? `Decide in Slack or Teams: ${commands.join(' or ')}` : '';
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char] ?? char);
}
