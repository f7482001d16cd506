/**
 * Renders the surface-neutral message model (src/bot/message.ts) as an Adaptive Card for Teams, never as Slack
 * text pasted in. Buttons become `Action.Execute` (Universal Actions: the click arrives as an
 * `adaptiveCard/action` invoke carrying `verb` = the action id and `data.value`), each with an `Action.Submit`
 * fallback for clients without Universal Actions. A card can carry `refresh.userIds`, so the people named
 * there (approvers, at most 60) fetch their own view (with buttons) while everyone else sees the card as sent.
 *
 * Text: our formatting uses `*bold*` and `` `code` ``; Adaptive Cards' markdown has bold (`**`) and no code
 * spans, so bold is translated and code is shown as plain text. Text from people and other systems (titles,
 * reasons) may hold markdown of its own: its link syntax is escaped (`\[`, `\]`; Teams' card markdown follows
 * CommonMark escapes, [unconfirmed] beyond the docs' examples), so only our `links` blocks become links, as
 * `Action.OpenUrl` buttons over http(s) URLs.
 */
import type { Block, Button, Message } from '../message.ts';

export const ADAPTIVE_CARD_CONTENT_TYPE = 'application/vnd.microsoft.card.adaptive';
/** The schema version Teams renders with Universal Actions (desktop, web and mobile). */
export const CARD_VERSION = '1.5';
/** Teams shows at most 60 user ids in `refresh.userIds`. */
const MAX_REFRESH_USERS = 60;

export type AdaptiveElement = Record<string, unknown>;
export interface AdaptiveCard {
  type: 'AdaptiveCard';
  $schema: string;
  version: string;
  body: AdaptiveElement[];
  actions?: AdaptiveElement[];
  refresh?: { action: AdaptiveElement; userIds: string[] };
  msteams: { width: 'Full' };
  fallbackText: string;
}

/**
 * Escapes link syntax in text we did not write, translates our own `*bold*` (between single stars) to
 * `**bold**` and drops the backticks of code spans.
 */
export function cardText(text: string): string {
  const escaped = text.replace(/[\\[\]]/g, (char) => `\\${char}`);
  return escaped
    .replace(/`([^`]*)`/g, '$1')
    .replace(/(^|[\s(])\*([^*\s][^*]*?[^*\s]|[^*\s])\*(?=[\s).,:;!?]|$)/gm, '$1**$2**')
    .slice(0, 4000);
}

function actionFor(button: Button): AdaptiveElement {
  return {
    type: 'Action.Execute',
    title: button.label.slice(0, 50),
    verb: button.actionId,
    data: { value: button.value },
    ...(button.style ? { style: button.style === 'primary' ? 'positive' : 'destructive' } : {}),
    // Clients without Universal Actions send the same data as a message-back submit.
    fallback: { type: 'Action.Submit', title: button.label.slice(0, 50), data: { verb: button.actionId, value: button.value } },
  };
}

const isWebUrl = (url: string) => URL.canParse(url) && ['http:', 'https:'].includes(new URL(url).protocol);

function renderBlock(block: Block): AdaptiveElement | undefined {
  switch (block.type) {
    case 'header':
      return { type: 'TextBlock', text: cardText(block.text).slice(0, 200), size: 'Large', weight: 'Bolder', wrap: true };
    case 'section': {
      const text = { type: 'TextBlock', text: cardText(block.text), wrap: true };
      if (!block.fields || block.fields.length === 0) return text;
      return { type: 'Container', items: [text, { type: 'FactSet', facts: block.fields.slice(0, 20).map((field) => ({ title: cardText(field.label).slice(0, 100), value: cardText(field.value).slice(0, 1000) })) }] };
    }
    case 'context':
      return { type: 'TextBlock', text: cardText(block.text), isSubtle: true, size: 'Small', wrap: true };
    case 'links': {
      const links = block.links.filter((link) => isWebUrl(link.url));
      return links.length === 0 ? undefined : { type: 'ActionSet', actions: links.slice(0, 5).map((link) => ({ type: 'Action.OpenUrl', title: link.label.slice(0, 50), url: link.url })) };
    }
    case 'actions':
      return { type: 'ActionSet', actions: block.buttons.slice(0, 5).map(actionFor) };
  }
}

/**
 * The card for a message. `refresh`: the people (Teams MRIs, `29:…`) who get their own view when they open it,
 * and the verb and data the bot is asked to render it with (`refresh` with the subject's id, say).
 */
export function toAdaptiveCard(message: Message, options: { refresh?: { userIds: readonly string[]; verb: string; data: Record<string, unknown> } } = {}): AdaptiveCard {
  const body = message.blocks.slice(0, 50).flatMap((block) => {
    const element = renderBlock(block);
    return element ? [element] : [];
  });
  const refresh = options.refresh;
  return {
    type: 'AdaptiveCard',
    $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
    version: CARD_VERSION,
    body: body.length > 0 ? body : [{ type: 'TextBlock', text: cardText(message.text), wrap: true }],
    ...(refresh ? { refresh: { action: { type: 'Action.Execute', verb: refresh.verb, data: refresh.data }, userIds: refresh.userIds.slice(0, MAX_REFRESH_USERS) } } : {}),
    msteams: { width: 'Full' },
    fallbackText: message.text.slice(0, 1000),
  };
}

/** A card as an activity attachment. */
export function cardAttachment(card: AdaptiveCard): { contentType: string; content: AdaptiveCard } {
  return { contentType: ADAPTIVE_CARD_CONTENT_TYPE, content: card };
}
