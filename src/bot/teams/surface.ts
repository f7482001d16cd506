/**
 * The Teams surface's turn logic, on the command layer Slack uses: a message runs the `/projectx` language (the
 * answer is an Adaptive Card from the message model); a card click (`adaptiveCard/action` invoke with
 * `Action.Execute`, or the `Action.Submit` fallback, which arrives as a message with a `value`) runs the same
 * action as the Slack button, decided by the same domain policy. Deny asks for a reason: the answer to the click
 * is a card with a required text input, whose submit (verb `deny_with_reason`) denies with it. A `refresh`
 * invoke (Teams asking for an approver's own view of a shared card) is answered with the buttons for an
 * eligible approver and the status for anyone else. `tasks` in a personal chat is the personal home.
 *
 * Database work only: a turn returns what to answer, and nothing here calls Teams. A click's answer is the
 * invoke response (HTTP 200 with a card replacing the clicked one for the clicker, or a message: notes §5,
 * user-facing errors as 200 with a message body); a message's reply is sent by a job (src/bot/teams/module.ts).
 * No botbuilder here: a turn is the activity (src/bot/teams/adapter.ts is the only seam).
 */
import type { Actor } from '../../domain/actor.ts';
import type { DomainDeps } from '../../domain/deps.ts';
import type { IdentityDirectory } from '../../domain/identity-cache.ts';
import { findIncidentsByNumber, normalizeIncidentNumber } from '../../domain/incidents.ts';
import { can } from '../../domain/permissions.ts';
import { parseTaskRef } from '../../domain/tasks.ts';
import { findUserByIdentity } from '../../domain/users.ts';
import type { CommandContext, IntegrationHealth } from '../commands/context.ts';
import { runAction, runCommand } from '../commands/dispatch.ts';
import { parseCommand } from '../commands/parse.ts';
import { renderHome } from '../home.ts';
import type { Message, Reply } from '../message.ts';
import { ADAPTIVE_CARD_CONTENT_TYPE, type AdaptiveCard, cardText, toAdaptiveCard } from './cards.ts';
import { commandText, conversationKind, teamsIdentity } from './commands.ts';
import { EVIDENCE_TARGET_VERB, chooseEvidenceTarget, evidenceTurn } from './evidence.ts';
import type { TeamsEvidence } from './evidence-upload.ts';
import { REFRESH_VERB, subjectCard, viewerCard } from './notifier.ts';

type Activity = Record<string, unknown>;

export interface TeamsSurfaceDeps {
  domain: DomainDeps;
  integrations: () => Promise<IntegrationHealth[]>;
  identities?: IdentityDirectory | undefined;
  /** The bot's own id in conversations (`28:<app id>`), whose mentions are stripped. */
  botId?: string | undefined;
  /** Files' download addresses can be kept sealed (a keyring): without it, evidence files are refused. */
  keepsFiles?: boolean;
}

/** An invoke's answer: HTTP status and body. */
export interface InvokeAnswer {
  status: number;
  body: { statusCode: number; type: string; value: unknown };
}

/** A card to send in the activity's conversation (by a job). */
export interface TeamsReply {
  text: string;
  card: AdaptiveCard;
}

/**
 * What a turn decided: the invoke's answer, and/or a reply to send; `unlinked`: the asker is not linked yet;
 * `evidence`: files to keep on the delivery (and to stage for upload when they have a target), written with it;
 * `staged`: the turn itself staged work in the outbox (a chosen evidence target), to relay soon.
 */
export interface TurnOutcome {
  invoke?: InvokeAnswer;
  reply?: TeamsReply;
  unlinked?: boolean;
  evidence?: TeamsEvidence;
  staged?: boolean;
}

export const DENY_WITH_REASON = 'deny_with_reason';
const REASON_INPUT = 'reason';

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);
const field = (value: unknown, key: string) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);

/** `delivery`: the activity's recorded delivery (a card waiting for an evidence target names it). */
export async function handleTeamsTurn(deps: TeamsSurfaceDeps, activity: Activity, tenant: string | undefined, delivery?: { inboundId: string }): Promise<TurnOutcome> {
  const ctx = await contextFor(deps, activity, tenant);
  const unlinked = ctx.actor.identity !== undefined && ctx.actor.user === undefined;
  const outcome = await turn(deps, ctx, activity, delivery?.inboundId);
  return unlinked ? { ...outcome, unlinked } : outcome;
}

async function turn(deps: TeamsSurfaceDeps, ctx: CommandContext, activity: Activity, inboundId: string | undefined): Promise<TurnOutcome> {
  if (activity.type === 'invoke' && activity.name === 'adaptiveCard/action') {
    const action = field(activity.value, 'action');
    if (str(field(action, 'type')) !== 'Action.Execute') return { invoke: { status: 400, body: { statusCode: 400, type: 'application/vnd.microsoft.error', value: { code: 'NotSupported', message: 'only Action.Execute is supported' } } } };
    const verb = str(field(action, 'verb')) ?? '';
    if (verb === REFRESH_VERB) return { invoke: cardAnswer(await refreshView(ctx, field(action, 'data'))) };
    if (verb === EVIDENCE_TARGET_VERB) {
      const chosen = await chooseEvidenceTarget(ctx, field(action, 'data'));
      return chosen.staged ? { invoke: answerClick(chosen.answer), staged: true } : { invoke: answerClick(chosen.answer) };
    }
    return { invoke: answerClick(await click(ctx, verb, field(action, 'data'))) };
  }
  if (activity.type !== 'message') return {};
  // The Action.Submit fallback of our buttons: a message carrying the button's data as its value.
  const submitted = field(activity, 'value');
  if (submitted && typeof str(field(submitted, 'verb')) === 'string') {
    const answer = await click(ctx, str(field(submitted, 'verb'))!, submitted);
    return { reply: answer.kind === 'card' ? { text: answer.text, card: answer.card } : { text: answer.text, card: toAdaptiveCard({ text: answer.text, blocks: [{ type: 'section', text: answer.text }] }) } };
  }
  // Files in a personal chat, or the `evidence` verb anywhere (src/bot/teams/evidence.ts).
  const evidence = await evidenceTurn(ctx, activity, commandText(activity, deps.botId), inboundId, { keepsFiles: deps.keepsFiles ?? false });
  if (evidence) return evidence.evidence ? { reply: evidence.reply, evidence: evidence.evidence } : { reply: evidence.reply };
  const text = commandText(activity, deps.botId) || 'help';
  // `tasks` in a personal chat is the home: approvals with buttons, my tasks, urgent incidents, health.
  if (conversationKind(activity) === 'personal' && ctx.actor.user && isPlainTasks(text)) {
    const home = await renderHome(ctx.domain.db, ctx.integrations, ctx.actor.user, 'Teams');
    return { reply: { text: home.text, card: toAdaptiveCard(home) } };
  }
  const reply = await runCommand(ctx, text);
  return { reply: { text: reply.message.text, card: toAdaptiveCard(reply.message) } };
}

function isPlainTasks(text: string): boolean {
  const parsed = parseCommand(text);
  return parsed.ok && parsed.command.verb === 'tasks' && !text.includes('--all');
}

type ClickAnswer = { kind: 'card'; text: string; card: AdaptiveCard } | { kind: 'message'; text: string };

async function click(ctx: CommandContext, verb: string, data: unknown): Promise<ClickAnswer> {
  const value = str(field(data, 'value')) ?? str(field(data, 'taskId')) ?? '';
  if (verb === DENY_WITH_REASON) {
    const reason = str(field(data, REASON_INPUT))?.trim() ?? '';
    if (!reason) return { kind: 'card', text: 'A denial needs a reason.', card: reasonCard(value, 'A denial needs a reason.') };
    return answerFor(ctx, await runCommand(ctx, `deny ${value} ${reason.replace(/\s+/g, ' ').slice(0, 500)}`), { kind: 'task', value });
  }
  const reply = await runAction(ctx, verb, value);
  if (reply.modal?.kind === 'deny_reason') return { kind: 'card', text: reply.message.text, card: reasonCard(reply.modal.taskId, reply.message.text) };
  return answerFor(ctx, reply, verb === 'ack' ? { kind: 'incident', value } : { kind: 'task', value });
}

/**
 * A decision or acknowledgement that went through replaces the clicked card, for the clicker, with the subject
 * as it is now and what happened; a refusal is a message (the card stays as it was).
 */
async function answerFor(ctx: CommandContext, reply: Reply, about: { kind: 'task' | 'incident'; value: string }): Promise<ClickAnswer> {
  if (reply.outcome !== 'ok') return { kind: 'message', text: reply.message.text };
  const subject = await subjectOf(ctx, about);
  const view = subject ? await subjectCard(ctx.domain.db, subject, 'personal', undefined, reply.task ? { task: reply.task } : undefined) : undefined;
  if (!view) return { kind: 'card', text: reply.message.text, card: toAdaptiveCard(reply.message) };
  view.card.body.push({ type: 'TextBlock', text: cardText(reply.message.text), wrap: true, isSubtle: true, size: 'Small' });
  return { kind: 'card', text: reply.message.text, card: view.card };
}

async function subjectOf(ctx: CommandContext, about: { kind: 'task' | 'incident'; value: string }): Promise<{ kind: string; id: string } | undefined> {
  if (about.kind === 'task') {
    const id = parseTaskRef(about.value);
    return id ? { kind: 'task', id } : undefined;
  }
  const number = normalizeIncidentNumber(about.value);
  const [incident] = number ? await findIncidentsByNumber(ctx.domain.db, number) : [];
  return incident ? { kind: 'incident', id: incident.id } : undefined;
}

/**
 * Teams asks for the viewer's own version of a shared card (`refresh`, automatic or manual): an approver who may
 * decide the pending task gets the buttons, anyone else the status everyone sees. Answered in the invoke only
 * (updating the message as well would make Teams refresh again, in a loop: notes §5).
 */
async function refreshView(ctx: CommandContext, data: unknown): Promise<AdaptiveCard | string> {
  const kind = str(field(data, 'kind'));
  const id = str(field(data, 'id'));
  if ((kind !== 'task' && kind !== 'incident') || !id || id.length > 64) return 'That card is out of date.';
  const user = ctx.actor.user;
  const card = await viewerCard(ctx.domain.db, { kind, id }, user && can(user, 'tasks.decide') ? user.id : undefined);
  return card ?? 'That card is out of date.';
}

function cardAnswer(card: AdaptiveCard | string): InvokeAnswer {
  return typeof card === 'string' ? answerClick({ kind: 'message', text: card }) : answerClick({ kind: 'card', text: card.fallbackText, card });
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
