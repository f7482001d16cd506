/**
 * Teams delivery of routed notifications and re-rendering of the cards already posted, the Teams counterpart of
 * src/bot/slack/notifier.ts, through the one sender (src/bot/teams/sender.ts).
 *
 * Targets: a `channel` rule names a stored conversation by its id (`19:…@thread.tacv2`, `a:…`) or a channel by
 * the name Teams gave it when the bot was added; `user:<id>` (assignee and approver DMs) is the personal chat of
 * that user's linked Teams identity, stored when they installed the app or wrote to the bot. Where there is
 * none, the refusal is permanent and the notification falls back to email.
 *
 * Cards about a task or incident show it as it is now (src/bot/render-subject.ts). In a personal chat the one
 * person there sees the buttons; in a channel or group chat everyone sees the status, and `refresh.userIds`
 * names the task's approvers (their Teams ids, at most 60) so that each of them fetches a view with Approve and
 * Deny (the `refresh` invoke, answered in src/bot/teams/surface.ts).
 */
import type { Db } from '../../db/database.ts';
import { ok, refuse, type Result } from '../../domain/result.ts';
import { type Task, eligibleApprovers, getTask } from '../../domain/tasks.ts';
import type { Logger } from '../../logger.ts';
import type { Message } from '../message.ts';
import type { Notifier, Rerenderer } from '../notifier.ts';
import { renderSubject } from '../render-subject.ts';
import { type AdaptiveCard, toAdaptiveCard } from './cards.ts';
import type { TeamsSender } from './sender.ts';

export const REFRESH_VERB = 'refresh';

export type Audience = 'personal' | 'shared';

/** Ids of the Teams users (MRIs) linked to these ProjectX users, in the tenants the bot serves. */
async function teamsUserIds(db: Db, userIds: readonly string[]): Promise<string[]> {
  if (userIds.length === 0) return [];
  const rows = await db
    .selectFrom('identity_links')
    .innerJoin('teams_users', (join) => join.onRef('teams_users.tenant_id', '=', 'identity_links.tenant').onRef('teams_users.aad_object_id', '=', 'identity_links.external_id'))
    .select('teams_users.mri')
    .where('identity_links.surface', '=', 'teams')
    .where('identity_links.user_id', 'in', [...userIds])
    .execute();
  return [...new Set(rows.map((row) => row.mri))];
}

/**
 * The card for a subject as one audience sees it: `personal` with its buttons; `shared` without a pending
 * task's Approve and Deny, refreshed per approver instead. The message is the fallback when the subject is gone.
 */
export async function subjectCard(db: Db, subject: { kind: string; id: string }, audience: Audience, fallback?: Message, loaded?: { task: Task }): Promise<{ text: string; card: AdaptiveCard } | undefined> {
  const current = await currentSubject(db, subject, fallback, loaded);
  if (!current) return undefined;
  return audience === 'personal' || !current.pending ? personalCard(current.message) : sharedCard(db, current.message, current.pending, subject);
}

/**
 * The card a viewer of a shared card gets when Teams asks for their own version (`refresh`): the buttons for a
 * user who may decide the pending task (keeping the refresh, so their view follows the task), the status for
 * anyone else. One read of the task and its approvers.
 */
export async function viewerCard(db: Db, subject: { kind: string; id: string }, userId: string | undefined): Promise<AdaptiveCard | undefined> {
  const current = await currentSubject(db, subject);
  if (!current) return undefined;
  if (!current.pending) return personalCard(current.message).card;
  const shared = await sharedCard(db, current.message, current.pending, subject);
  const { task, approvers } = current.pending;
  const decides = userId !== undefined && userId !== task.requesterId && userId !== task.assigneeId && approvers.includes(userId);
  return decides ? { ...personalCard(current.message).card, ...(shared.card.refresh ? { refresh: shared.card.refresh } : {}) } : shared.card;
}

/**
 * The subject rendered as it is now; for a task waiting for a decision, the task and its eligible approvers.
 * `loaded`: the task as a command just left it (read in the same request), not read again.
 */
async function currentSubject(db: Db, subject: { kind: string; id: string }, fallback?: Message, loaded?: { task: Task }): Promise<{ message: Message; pending?: { task: Task; approvers: string[] } } | undefined> {
  const task = subject.kind !== 'task' ? undefined : loaded?.task.id === subject.id ? loaded.task : await getTask(db, subject.id);
  const message = (await renderSubject(db, subject, subject.kind === 'task' ? { task } : undefined)) ?? fallback;
  if (!message) return undefined;
  if (task?.state !== 'pending_approval') return { message };
  return { message, pending: { task, approvers: await eligibleApprovers(db, task) } };
}

const personalCard = (message: Message) => ({ text: message.text, card: toAdaptiveCard(message) });

/** Status for everyone, `refresh.userIds` naming the approvers' Teams ids (at most 60). */
async function sharedCard(db: Db, message: Message, pending: { task: Task; approvers: string[] }, subject: { kind: string; id: string }): Promise<{ text: string; card: AdaptiveCard }> {
  const shared: Message = {
    text: message.text,
    blocks: [...message.blocks.filter((block) => block.type !== 'actions'), { type: 'context', text: `Approvers see Approve and Deny on this card, or type \`approve ${pending.task.ref}\` to the bot.` }],
  };
  const userIds = await teamsUserIds(db, pending.approvers);
  return { text: shared.text, card: toAdaptiveCard(shared, { refresh: { userIds, verb: REFRESH_VERB, data: { kind: subject.kind, id: subject.id } } }) };
}

/** The audience of a stored conversation: one person, or many. */
export const audienceOf = (kind: string): Audience => (kind === 'personal' ? 'personal' : 'shared');

export function createTeamsNotifier(db: Db, sender: TeamsSender): Notifier {
  return {
    surface: 'teams',
    async deliver({ notificationId, target, message, subject }) {
      const conversation = await resolveTarget(db, target);
      if (!conversation.ok) return conversation;
      const rendered = subject ? await subjectCard(db, subject, audienceOf(conversation.value.kind), message) : undefined;
      const posted = await sender.post({
        key: notificationId,
        conversationId: conversation.value.id,
        ...(rendered ?? { text: message.text, card: toAdaptiveCard(message) }),
        ...(subject ? { subject } : {}),
      });
      return posted.ok ? ok({ ref: `${conversation.value.id}/${posted.value.activityId}` }) : posted;
    },
  };
}

/** The stored conversation a routing target names. */
async function resolveTarget(db: Db, target: string): Promise<Result<{ id: string; kind: string }>> {
  if (target.startsWith('user:')) {
    const links = await db.selectFrom('identity_links').select(['tenant', 'external_id']).where('user_id', '=', target.slice(5)).where('surface', '=', 'teams').execute();
    if (links.length === 0) return refuse('no_teams_identity', 'that user has no linked Teams account', { permanent: true });
    for (const link of links) {
      const personal = await db
        .selectFrom('teams_conversations')
        .select(['conversation_id', 'kind'])
        .where('kind', '=', 'personal')
        .where('tenant_id', '=', link.tenant)
        .where('user_aad_object_id', '=', link.external_id)
        .orderBy('active', 'desc')
        .orderBy('updated_at', 'desc')
        .executeTakeFirst();
      if (personal) return ok({ id: personal.conversation_id, kind: personal.kind });
    }
    return refuse('no_teams_conversation', 'that user has not installed the ProjectX app in Teams (no personal chat with the bot)', { permanent: true });
  }
  const byId = await db.selectFrom('teams_conversations').select(['conversation_id', 'kind']).where('conversation_id', '=', target).executeTakeFirst();
  if (byId) return ok({ id: byId.conversation_id, kind: byId.kind });
  const byName = await db.selectFrom('teams_conversations').select(['conversation_id', 'kind']).where('kind', '=', 'channel').where((eb) => eb(eb.fn('lower', ['channel_name']), '=', target.replace(/^#/, '').toLowerCase())).limit(2).execute();
  if (byName.length === 1) return ok({ id: byName[0]!.conversation_id, kind: byName[0]!.kind });
  if (byName.length > 1) return refuse('ambiguous_teams_channel', `more than one Teams channel is named ${target}: route to its conversation id instead`, { permanent: true });
  return refuse('unknown_teams_conversation', `no Teams channel or conversation ${target} is known: add the bot to it first`, { permanent: true });
}

export function createTeamsRerenderer(db: Db, sender: TeamsSender, logger: Logger): Rerenderer {
  return {
    surface: 'teams',
    async rerender(subject) {
      const messages = await db
        .selectFrom('teams_messages')
        .innerJoin('teams_conversations', 'teams_conversations.conversation_id', 'teams_messages.conversation_id')
        .select(['teams_messages.conversation_id', 'teams_messages.activity_id', 'teams_conversations.kind'])
        .where('teams_messages.subject_kind', '=', subject.kind)
        .where('teams_messages.subject_id', '=', subject.id)
        .where('teams_messages.status', '=', 'posted')
        .where('teams_conversations.active', '=', true)
        .execute();
      let updated = 0;
      const cards = new Map<string, Awaited<ReturnType<typeof subjectCard>>>();
      for (const { conversation_id: conversationId, activity_id: activityId, kind } of messages) {
        if (!activityId) continue;
        const audience = audienceOf(kind);
        if (!cards.has(audience)) cards.set(audience, await subjectCard(db, subject, audience));
        const rendered = cards.get(audience);
        if (!rendered) return ok({ updated });
        const result = await sender.update({ conversationId, activityId, ...rendered });
        if (result.ok) updated++;
        else if (result.refusal.permanent) logger.warn({ conversation: conversationId.slice(0, 80), code: result.refusal.code }, 'a posted Teams card can no longer be updated');
        else return result; // paced, rate-limited or unreachable: the job comes back (updates are idempotent)
      }
      return ok({ updated });
    },
  };
}
