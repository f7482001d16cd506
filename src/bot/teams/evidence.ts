/**
 * Evidence in Teams, on the turn's side (database work only; the files are fetched by a job:
 * src/bot/teams/evidence-upload.ts). Bots receive files in personal chats only (notes §6), so:
 *
 * - a personal message with files (`application/vnd.microsoft.teams.file.download.info` attachments, at most
 *   10) is an upload. Its target is the one named in the message (`evidence AC-2`, `evidence T-1`), else the one
 *   the person named in the last 15 minutes, and the upload is staged with the delivery; with neither, the
 *   answer is a card asking which control (a filtered choice set, verb `evidence_target`), the files kept on
 *   the delivery until the sender chooses, once;
 * - `evidence AC-2` in a personal chat without files remembers the target for the files sent next;
 * - `evidence …` in a channel or group chat explains how to upload.
 *
 * Who may upload, and the refusal an unlinked or unauthorized person reads, is the command layer's
 * (`runCommand(ctx, 'evidence')`): the same text and the same audit as in Slack.
 */
import { z } from 'zod';
import { auditRefusal } from '../../domain/audit.ts';
import { getControl, searchControls } from '../../domain/controls.ts';
import { can } from '../../domain/permissions.ts';
import { taskRef } from '../../domain/tasks.ts';
import { storable } from '../../db/storable.ts';
import type { Db } from '../../db/database.ts';
import type { CommandContext } from '../commands/context.ts';
import { runCommand } from '../commands/dispatch.ts';
import { parseCommand } from '../commands/parse.ts';
import type { Message } from '../message.ts';
import { type AdaptiveCard, cardText, toAdaptiveCard } from './cards.ts';
import { conversationKind } from './commands.ts';
import { MAX_TEAMS_EVIDENCE_FILES, TEAMS_FILE_CONTENT_TYPE, type TeamsEvidence, type TeamsFile, stageChosenTarget, teamsEvidenceSchema } from './evidence-upload.ts';

type Activity = Record<string, unknown>;

export const EVIDENCE_TARGET_VERB = 'evidence_target';
const CONTROL_INPUT = 'control';
/** How long a target named with `evidence AC-2` waits for the files. */
export const TARGET_WINDOW_MS = 15 * 60 * 1000;
/** Controls offered on the card (the choice set filters them as the person types). */
const MAX_CHOICES = 50;

type Target = { controlId: string } | { taskId: string };

/** What an evidence turn decided: the reply, the files to keep on the delivery (staged when they have a target). */
export interface EvidenceOutcome {
  reply: { text: string; card: AdaptiveCard };
  evidence?: TeamsEvidence;
}

/** A click's answer (the clicked card replaced for the clicker, or a message); `staged`: an upload was staged. */
export type EvidenceClick = { answer: { kind: 'card'; text: string; card: AdaptiveCard } | { kind: 'message'; text: string }; staged?: boolean };

const attachmentSchema = z.object({
  contentType: z.literal(TEAMS_FILE_CONTENT_TYPE),
  name: z.string().trim().min(1).max(255).refine(storable),
  content: z.object({
    downloadUrl: z.string().min(1).max(8192).refine(storable),
    uniqueId: z.string().max(200).refine(storable).optional(),
    fileType: z.string().max(32).refine(storable).optional(),
  }),
});

const str = (value: unknown) => (typeof value === 'string' ? value : undefined);
const field = (value: unknown, key: string) => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);
const reply = (text: string, extra: Message['blocks'] = []) => ({ text, card: toAdaptiveCard({ text, blocks: [{ type: 'section', text }, ...extra] }) });
const label = (target: Target) => ('controlId' in target ? `control ${target.controlId}` : `task ${taskRef(target.taskId)}`);
const files = (count: number) => (count === 1 ? '1 file' : `${count} files`);

/** The file attachments of a message: none (undefined), the files, or why they cannot be taken. */
export function evidenceFilesOf(activity: Activity): { ok: true; files: TeamsFile[] } | { ok: false; message: string } | undefined {
  const attachments: unknown[] = Array.isArray(activity.attachments) ? activity.attachments : [];
  const indexes = attachments.flatMap((attachment, index) => (str(field(attachment, 'contentType')) === TEAMS_FILE_CONTENT_TYPE ? [index] : []));
  const offered = indexes.map((index) => attachments[index]);
  if (offered.length === 0) return undefined;
  if (offered.length > MAX_TEAMS_EVIDENCE_FILES) return { ok: false, message: `At most ${MAX_TEAMS_EVIDENCE_FILES} files at a time; nothing was stored. Send them in smaller batches.` };
  const parsed = z.array(attachmentSchema).safeParse(offered);
  if (!parsed.success) return { ok: false, message: 'Teams did not send the files in a form I can read (a file without a name or a download address); nothing was stored. Attach them again.' };
  return { ok: true, files: parsed.data.map(({ name, content }, position) => ({ name, index: indexes[position]!, ...(content.fileType ? { fileType: content.fileType } : {}), ...(content.uniqueId ? { uniqueId: content.uniqueId } : {}) })) };
}

/**
 * The evidence part of a message turn, or undefined when the message is not about evidence (no files in a
 * personal chat, and not the `evidence` verb). `text` is the message's command text (may be empty with files);
 * `inboundId` is the delivery the files stay on while the card waits for a choice; `keepsFiles`: the service has
 * a keyring to seal the files' download addresses with (without one, files are refused).
 */
export async function evidenceTurn(ctx: CommandContext, activity: Activity, text: string, inboundId: string | undefined, options: { keepsFiles: boolean }): Promise<EvidenceOutcome | undefined> {
  const personal = conversationKind(activity) === 'personal';
  const parsed = parseCommand(text);
  const asksEvidence = parsed.ok ? parsed.command.verb === 'evidence' : parsed.error.verb === 'evidence';
  const attached = personal ? evidenceFilesOf(activity) : undefined;
  if (!attached && !asksEvidence) return undefined;
  const user = ctx.actor.user;
  const identity = ctx.actor.identity;
  // Unlinked, or without the role: the command layer's refusal (and its audit), whatever else the message says.
  if (!can(user, 'evidence.upload') || !user || !identity) return { reply: replyOf(await runCommand(ctx, 'evidence')) };
  // The files' download addresses are bearer credentials, kept only encrypted (src/bot/teams/sealing.ts).
  if (attached && !options.keepsFiles) return { reply: reply('This ProjectX service cannot take evidence files from Teams: it has no encryption key to keep their download addresses with (PROJECTX_ENCRYPTION_KEY). Nothing was stored; ask an admin.') };

  let target: Target | undefined;
  if (asksEvidence) {
    const checked = await runCommand(ctx, text);
    if (checked.outcome !== 'ok') return { reply: attached ? reply(`${checked.message.text} Nothing was stored; send the files again with a control or task that exists.`) : replyOf(checked) };
    const modal = checked.modal?.kind === 'evidence_upload' ? checked.modal : undefined;
    target = modal?.controlId ? { controlId: modal.controlId } : modal?.taskId ? { taskId: modal.taskId } : undefined;
  }
  if (!attached) {
    if (!personal) {
      return { reply: reply('Evidence files are sent to me in a personal chat: open a chat with ProjectX, attach the files (up to 10, 10 MB each) to a message, and name the control or task in it, like `evidence AC-2`. Without one I ask which control.') };
    }
    if (!target) return { reply: reply('Attach the files (up to 10, 10 MB each) to a message here and name the control or task in it, like `evidence AC-2`. Without one I ask which control.') };
    await rememberTarget(ctx.domain.db, identity.tenant, identity.externalId, target, ctx.domain.clock.now());
    return { reply: reply(`Attach the files to your next message here within 15 minutes; they will be stored as evidence for ${label(target)}.`) };
  }
  if (!attached.ok) return { reply: reply(attached.message) };

  const conversationId = str(field(activity.conversation, 'id')) ?? '';
  const base: TeamsEvidence = { files: attached.files, userId: user.id, tenant: identity.tenant, aadObjectId: identity.externalId, conversationId };
  target ??= await rememberedTarget(ctx.domain.db, identity.tenant, identity.externalId, ctx.domain.clock.now());
  if (target) return { reply: checking(attached.files.length, target), evidence: { ...base, ...target } };

  const controls = await searchControls(ctx.domain.db, '', MAX_CHOICES);
  if (controls.length === 0 || !inboundId) {
    return { reply: reply('There is no control to choose from yet; nothing was stored. Send the files again naming a task, like `evidence T-42`.') };
  }
  const question = attached.files.length === 1 ? 'Which control is this file evidence for?' : `Which control are these ${attached.files.length} files evidence for?`;
  const card = toAdaptiveCard({ text: question, blocks: [{ type: 'section', text: question }, { type: 'context', text: attached.files.map((file) => file.name).join(', ') }] });
  card.body.push({
    type: 'Input.ChoiceSet',
    id: CONTROL_INPUT,
    label: 'Control',
    style: 'filtered',
    isRequired: true,
    errorMessage: 'Choose the control this evidence is for.',
    placeholder: 'Type to search controls',
    choices: controls.map((control) => ({ title: cardText(`${control.id} ${control.title}`).slice(0, 100), value: control.id })),
  });
  card.body.push({ type: 'TextBlock', text: cardText('For a task, send the files again with `evidence T-42`.'), wrap: true, isSubtle: true, size: 'Small' });
  card.actions = [{ type: 'Action.Execute', title: 'Store as evidence', verb: EVIDENCE_TARGET_VERB, data: { delivery: inboundId }, style: 'positive' }];
  return { reply: { text: question, card }, evidence: base };
}

/**
 * The choice from the card (`data.delivery`: the delivery holding the files; `data.control`: the input's
 * value, merged in by Teams): only the person who sent the files, only with the upload permission, once.
 */
export async function chooseEvidenceTarget(ctx: CommandContext, data: unknown): Promise<EvidenceClick> {
  const message = (text: string): EvidenceClick => ({ answer: { kind: 'message', text } });
  const inboundId = str(field(data, 'delivery')) ?? '';
  const controlId = str(field(data, CONTROL_INPUT))?.trim().toUpperCase() ?? '';
  const user = ctx.actor.user;
  const identity = ctx.actor.identity;
  if (!can(user, 'evidence.upload') || !user || !identity) return message((await runCommand(ctx, 'evidence')).message.text);
  if (!z.uuid().safeParse(inboundId).success) return message('That card is out of date.');
  if (!controlId) return message('Choose the control this evidence is for.');
  const row = await ctx.domain.db.selectFrom('inbound_events').select('result').where('id', '=', inboundId).where('source', '=', 'teams').executeTakeFirst();
  const pending = teamsEvidenceSchema.safeParse(field(row?.result, 'evidence'));
  if (!pending.success) return message('That card is out of date; send the files again.');
  const evidence = pending.data;
  if (evidence.tenant !== identity.tenant || evidence.aadObjectId !== identity.externalId) {
    const text = 'Only the person who sent the files can choose what they are evidence for.';
    await auditRefusal(ctx.domain.db, { actor: ctx.actor, action: 'evidence.record', objectType: 'inbound_event', objectId: inboundId, at: ctx.domain.clock.now(), code: 'not_the_uploader', message: text });
    return message(text);
  }
  const staged = targetOf(evidence);
  if (staged) return onTheirWay(staged);
  const control = await getControl(ctx.domain.db, controlId);
  if (!control) return message(`There is no control ${controlId.slice(0, 40)}.`);
  if ((await stageChosenTarget(ctx.domain.db, inboundId, control.id)) === 'already') {
    // Another click got there first (two clients, a double click): say where they went.
    const now = await ctx.domain.db.selectFrom('inbound_events').select('result').where('id', '=', inboundId).executeTakeFirst();
    const chosen = teamsEvidenceSchema.safeParse(field(now?.result, 'evidence'));
    return onTheirWay((chosen.success ? targetOf(chosen.data) : undefined) ?? { controlId: control.id });
  }
  const answer = checking(evidence.files.length, { controlId: control.id });
  return { answer: { kind: 'card', ...answer }, staged: true };
}

function targetOf(evidence: TeamsEvidence): Target | undefined {
  return evidence.controlId ? { controlId: evidence.controlId } : evidence.taskId ? { taskId: evidence.taskId } : undefined;
}

function onTheirWay(target: Target): EvidenceClick {
  return { answer: { kind: 'card', ...reply(`Those files are already on their way as evidence for ${label(target)}; I will confirm here.`) } };
}

function checking(count: number, target: Target) {
  return reply(`Checking ${files(count)} for ${label(target)}. I will confirm here with each file's SHA-256.`);
}

function replyOf(answer: { message: Message }) {
  return { text: answer.message.text, card: toAdaptiveCard(answer.message) };
}

async function rememberTarget(db: Db, tenant: string, aadObjectId: string, target: Target, now: Date): Promise<void> {
  const values = { control_id: 'controlId' in target ? target.controlId : null, task_id: 'taskId' in target ? target.taskId : null, named_at: now };
  await db
    .insertInto('teams_evidence_targets')
    .values({ tenant_id: tenant, aad_object_id: aadObjectId, ...values })
    .onConflict((oc) => oc.columns(['tenant_id', 'aad_object_id']).doUpdateSet(values))
    .execute();
}

async function rememberedTarget(db: Db, tenant: string, aadObjectId: string, now: Date): Promise<Target | undefined> {
  const row = await db
    .selectFrom('teams_evidence_targets')
    .select(['control_id', 'task_id'])
    .where('tenant_id', '=', tenant)
    .where('aad_object_id', '=', aadObjectId)
    .where('named_at', '>', new Date(now.getTime() - TARGET_WINDOW_MS))
    .executeTakeFirst();
  return row?.control_id ? { controlId: row.control_id } : row?.task_id ? { taskId: row.task_id } : undefined;
}
