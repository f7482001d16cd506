/**
 * The Teams surface's turn logic, on the command layer Slack uses: a message runs the `/projectx` language (the
 * answer is an Adaptive Card from the message model); a card click (`adaptiveCard/action` invoke with
 * `Action.Execute`, or the `Action.Submit` fallback, which arrives as a message with a `value`) runs the same
 * action as the Slack button, decided by the same domain policy. Deny asks for a reason: the answer to the click
 * is a card with a required text input, whose submit (verb `deny_with_reason`) denies with it.
 *
 * No botbuilder here: a turn is the activity and a way to send (the adapter, src/bot/teams/adapter.ts, provides
 * both). What a click answers is the invoke response Teams expects: HTTP 200 with a card (replacing the clicked
 * one for the clicker) or a message (notes §5: user-facing errors as 200 with a message body).
 */
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import type { IdentityDirectory } from '../../domain/identity-cache.ts';
import { findUserByIdentity } from '../../domain/users.ts';
import type { CommandContext, IntegrationHealth } from '../commands/context.ts';
import { runAction, runCommand } from '../commands/dispatch.ts';
import type { Message, Reply } from '../message.ts';
import { ADAPTIVE_CARD_CONTENT_TYPE, type AdaptiveCard, cardText, toAdaptiveCard } from './cards.ts';
import { commandText, teamsIdentity } from './commands.ts';

type Activity = Record<string, unknown>;

export interface TeamsTurn {
  activity: Activity;
  /** Replies in the activity's conversation. */
  send(reply: { text: string; card: AdaptiveCard }): Promise<void>;
}

export interface TeamsSurfaceDeps {
  domain: DomainDeps;
  integrations: () => Promise<IntegrationHealth[]>;
  identities?: IdentityDirectory | undefined;
  /** The bot's own id in conversations (`28:<app id>`), whose mentions are stripped. */
  botId?: string | undefined;
}

/** An invoke's answer: HTTP status and body. */
export interface InvokeAnswer {
  status: number;
  body: { statusCode: number; type: string; value: unknown };
}

export const DENY_WITH_REASON = 'deny_with_reason';
const REASON_INPUT = 'reason';

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);
const field = (value: unknown, key: string) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);

export async function handleTeamsTurn(deps: TeamsSurfaceDeps, turn: TeamsTurn, tenant: string | undefined): Promise<InvokeAnswer | undefined> {
  const { activity } = turn;
  const ctx = await contextFor(deps, activity, tenant);
  if (activity.type === 'invoke' && activity.name === 'adaptiveCard/action') {
    const action = field(activity.value, 'action');
    if (str(field(action, 'type')) !== 'Action.Execute') return { status: 400, body: { statusCode: 400, type: 'application/vnd.microsoft.error', value: { code: 'NotSupported', message: 'only Action.Execute is supported' } } };
    return answerClick(await click(ctx, str(field(action, 'verb')) ?? '', field(action, 'data')));
  }
  if (activity.type !== 'message') return undefined;
  // The Action.Submit fallback of our buttons: a message carrying the button's data as its value.
  const submitted = field(activity, 'value');
  if (submitted && typeof str(field(submitted, 'verb')) === 'string') {
    const answer = await click(ctx, str(field(submitted, 'verb'))!, submitted);
    await turn.send(answer.kind === 'card' ? { text: answer.text, card: answer.card } : { text: answer.text, card: toAdaptiveCard({ text: answer.text, blocks: [] }) });
    return undefined;
  }
  const reply = await runCommand(ctx, commandText(activity, deps.botId) || 'help');
  await turn.send({ text: reply.message.text, card: toAdaptiveCard(reply.message) });
  return undefined;
}

type ClickAnswer = { kind: 'card'; text: string; card: AdaptiveCard } | { kind: 'message'; text: string };

async function click(ctx: CommandContext, verb: string, data: unknown): Promise<ClickAnswer> {
  const value = str(field(data, 'value')) ?? str(field(data, 'taskId')) ?? '';
  if (verb === DENY_WITH_REASON) {
    const reason = str(field(data, REASON_INPUT))?.trim() ?? '';
    if (!reason) return { kind: 'card', text: 'A denial needs a reason.', card: reasonCard(value, 'A denial needs a reason.') };
    return answerFor(await runCommand(ctx, `deny ${value} ${reason.replace(/\s+/g, ' ').slice(0, 500)}`));
  }
  const reply = await runAction(ctx, verb, value);
  if (reply.modal?.kind === 'deny_reason') return { kind: 'card', text: reply.message.text, card: reasonCard(reply.modal.taskId, reply.message.text) };
  return answerFor(reply);
}

function answerFor(reply: Reply): ClickAnswer {
  return reply.outcome === 'ok' ? { kind: 'card', text: reply.message.text, card: toAdaptiveCard(reply.message) } : { kind: 'message', text: reply.message.text };
}

function answerClick(answer: ClickAnswer): InvokeAnswer {
  return answer.kind === 'card'
    ? { status: 200, body: { statusCode: 200, type: ADAPTIVE_CARD_CONTENT_TYPE, value: answer.card } }
    : { status: 200, body: { statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: answer.text } };
}

/** The card asking why: a required text input and a Deny that submits it (verb `deny_with_reason`). */
function reasonCard(taskId: string, prompt: string): AdaptiveCard {
  const message: Message = { text: prompt, blocks: [{ type: 'section', text: prompt }] };
  const card = toAdaptiveCard(message);
  card.body.push({ type: 'Input.Text', id: REASON_INPUT, label: 'Reason', isRequired: true, errorMessage: 'A denial needs a reason.', isMultiline: true, maxLength: 500, placeholder: cardText('Why is this denied?') });
  card.actions = [{ type: 'Action.Execute', title: 'Deny', verb: DENY_WITH_REASON, data: { taskId }, style: 'destructive' }];
  return card;
}

async function contextFor(deps: TeamsSurfaceDeps, activity: Activity, tenant: string | undefined): Promise<CommandContext> {
  const identity = teamsIdentity(activity, tenant);
  const user = identity ? await (deps.identities ? deps.identities.resolve(identity) : findUserByIdentity(deps.domain.db, identity)) : undefined;
  const actor: Actor = identity ? { surface: 'teams', user, identity } : { surface: 'teams', user };
  return { domain: deps.domain, actor, integrations: deps.integrations };
}
