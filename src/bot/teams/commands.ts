/**
 * What a Teams message asks: the `/projectx` command language without the slash. In a channel or group chat the
 * bot is @mentioned (`<at>ProjectX</at> approve T-1`): mentions of the bot are removed (matched by the mention
 * entities naming the bot's id, as Teams sends them), any other markup dropped, and an optional leading
 * `projectx` or `/projectx` is accepted too. Who is asking: the Entra object id (`aadObjectId`) in the
 * activity's tenant, which is what a Teams identity is linked by.
 */
import type { ChatIdentity } from '../../domain/actor.ts';

type Activity = Record<string, unknown>;

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);
const field = (value: unknown, key: string) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);

export type ConversationKind = 'personal' | 'groupChat' | 'channel';

export function conversationKind(activity: Activity): ConversationKind {
  const type = str(field(activity.conversation, 'conversationType'));
  return type === 'channel' ? 'channel' : type === 'groupChat' ? 'groupChat' : 'personal';
}

/** Entities Teams sends for mentions: `{ type: 'mention', mentioned: { id }, text: '<at>Name</at>' }`. */
function mentionsOf(activity: Activity, botId: string | undefined): string[] {
  const entities = Array.isArray(activity.entities) ? activity.entities : [];
  return entities.flatMap((entity) => {
    if (str(field(entity, 'type')) !== 'mention') return [];
    const mentioned = str(field(field(entity, 'mentioned'), 'id'));
    const text = str(field(entity, 'text'));
    return text && (!botId || mentioned === botId) ? [text] : [];
  });
}

/**
 * The command text of a message: the bot's mentions removed, other `<at>` and HTML markup dropped (Teams
 * sends some messages as HTML), whitespace collapsed, a leading `projectx` / `/projectx` removed.
 *
 * @example commandText({ text: '<at>ProjectX</at> approve T-1', entities: [...] }, '28:app') // 'approve T-1'
 */
export function commandText(activity: Activity, botId?: string): string {
  let text = str(activity.text) ?? '';
  for (const mention of mentionsOf(activity, botId)) text = text.split(mention).join(' ');
  text = text
    .replace(/<at>[^<]*<\/at>/g, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&nbsp;/g, ' ')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/\s+/g, ' ')
    .trim();
  return text.replace(/^\/?projectx\b\s*/i, '').slice(0, 4000);
}

/** The Teams identity behind an activity: the Entra object id in its tenant (undefined when either is missing). */
export function teamsIdentity(activity: Activity, tenant: string | undefined): ChatIdentity | undefined {
  const objectId = str(field(activity.from, 'aadObjectId'))?.toLowerCase();
  return objectId && tenant ? { surface: 'teams', tenant, externalId: objectId } : undefined;
}
