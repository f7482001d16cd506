/**
 * Every inbound Slack shape, checked at the edge before Bolt or a listener sees it. A correctly signed request
 * can still be malformed (a proxy mangled it, Slack changed a shape, someone holds the signing secret and
 * fuzzes us); Bolt and our listeners read `body.user.id`, `view.state.values.x.y` and the like without asking,
 * and a TypeError there was a 500. Here each type we serve is held to the fields we read (zod, passthrough:
 * Slack adds fields all the time), every string must be storable in PostgreSQL text (no NUL, no lone
 * surrogate: the same rule as the webhook path's), and identifiers have a sane length.
 *
 * What a refusal looks like to Slack: a slash command is answered 200 with an ephemeral explanation (the user
 * sees why); an event is answered 200 (a retry would be just as malformed); an interaction (button, modal,
 * options, shortcut) is answered 400, where Slack shows its own error and nothing of ours could be shown.
 * https://api.slack.com/interactivity/handling#payloads, https://api.slack.com/apis/events-api#callback-field
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { storable, storableDeep } from '../../db/storable.ts';
import { DENY_REASON_VIEW, EVIDENCE_VIEW } from './modals.ts';

type Body = Record<string, unknown>;

/** How a refused request is answered. */
export type RefusalAnswer = 'ephemeral' | 'empty' | 'bad_request';

export interface Refusal {
  code: 'malformed_payload' | 'unstorable_text' | 'unsupported_payload';
  message: string;
  answer: RefusalAnswer;
}

/** A delivery's id (what makes a repeat recognisable) and kind, both storable. */
export interface Delivery {
  id: string;
  kind: string;
}

export type PayloadCheck = { ok: true; delivery: Delivery | undefined; skip?: 'rate_limited' } | { ok: false; delivery: Delivery; refusal: Refusal };

const id = z.string().min(1).max(255);
/** Slack sends absent optional ids as empty strings in places (a command's `enterprise_id=`). */
const optionalId = z.string().max(255).optional();
const who = z.looseObject({ id });
/** Workspace context: a team (null on some org-wide payloads, then the enterprise speaks for it). */
const team = z.looseObject({ id }).nullish();
const interaction = {
  user: who,
  team,
  enterprise: z.looseObject({ id }).nullish(),
  api_app_id: optionalId,
  trigger_id: optionalId,
  response_url: z.string().max(2000).optional(),
};
/** A team, an enterprise, or the user's team: someone whose installation answers. */
const hasWorkspace = (body: { team?: { id: string } | null | undefined; enterprise?: { id: string } | null | undefined; user: Body }) =>
  Boolean(body.team?.id ?? body.enterprise?.id ?? (typeof body.user.team_id === 'string' && body.user.team_id));

const slashCommand = z.looseObject({
  command: z.string().regex(/^\/[^\s]{1,64}$/),
  text: z.string().max(4000),
  user_id: id,
  team_id: id,
  enterprise_id: optionalId,
  trigger_id: id,
  channel_id: optionalId,
  response_url: z.string().max(2000).optional(),
});

const eventCallback = z.looseObject({
  type: z.literal('event_callback'),
  event_id: id,
  team_id: optionalId,
  enterprise_id: optionalId.nullable(),
  event: z.looseObject({ type: z.string().min(1).max(100) }),
  authorizations: z.array(z.looseObject({ team_id: optionalId.nullable(), enterprise_id: optionalId.nullable() })).optional(),
}).refine((body) => Boolean(body.team_id ?? body.enterprise_id ?? body.authorizations?.[0]?.team_id ?? body.authorizations?.[0]?.enterprise_id), { message: 'names no workspace' });

const blockActions = z.looseObject({
  type: z.literal('block_actions'),
  ...interaction,
  actions: z.array(z.looseObject({ action_id: id, action_ts: id, value: z.string().max(2000).optional() })).min(1).max(25),
}).refine(hasWorkspace, { message: 'names no workspace' });

const stateValues = z.record(z.string(), z.record(z.string(), z.looseObject({})));
const view = z.looseObject({ id, hash: optionalId, callback_id: z.string().max(255), private_metadata: z.string().max(3000).optional(), state: z.looseObject({ values: stateValues }) });

const viewSubmission = z.looseObject({ type: z.literal('view_submission'), ...interaction, view }).refine(hasWorkspace, { message: 'names no workspace' });

const viewClosed = z.looseObject({ type: z.literal('view_closed'), ...interaction, view: z.looseObject({ id, hash: optionalId, callback_id: z.string().max(255) }) }).refine(hasWorkspace, { message: 'names no workspace' });

const blockSuggestion = z.looseObject({ type: z.literal('block_suggestion'), ...interaction, action_id: id, value: z.string().max(2000) }).refine(hasWorkspace, { message: 'names no workspace' });

/** What the evidence modal's listener reads of its state: files (an array of file objects) and a picked control. */
const evidenceState = z.looseObject({
  files: z.looseObject({ files_input: z.looseObject({ files: z.array(z.looseObject({ id: z.string().regex(/^F[A-Z0-9]{1,40}$/) })).max(100).nullish() }) }).optional(),
  control: z.looseObject({ control_picker: z.looseObject({ selected_option: z.looseObject({ value: z.string().min(1).max(255) }).nullish() }) }).optional(),
});

/** The deny-reason modal's one text input. */
const denyReasonState = z.looseObject({ reason: z.looseObject({ reason_input: z.looseObject({ value: z.string().max(3000).nullish() }) }).optional() });

/** Per modal (callback id): the state its listener reads. A Map: a callback id like `constructor` finds nothing. */
const VIEW_STATES = new Map<string, { schema: z.ZodType; message: string }>([
  [EVIDENCE_VIEW, { schema: evidenceState, message: 'the evidence form\'s values are malformed (files must be a list of Slack files)' }],
  [DENY_REASON_VIEW, { schema: denyReasonState, message: 'the denial form\'s reason is malformed' }],
]);

/** The shapes we serve, by type, with how a refusal of each is answered. */
const SHAPES = new Map<string, { schema: z.ZodType; answer: RefusalAnswer }>([
  ['event_callback', { schema: eventCallback, answer: 'empty' }],
  ['block_actions', { schema: blockActions, answer: 'bad_request' }],
  ['view_submission', { schema: viewSubmission, answer: 'bad_request' }],
  ['view_closed', { schema: viewClosed, answer: 'bad_request' }],
  ['block_suggestion', { schema: blockSuggestion, answer: 'bad_request' }],
]);

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const str = (value: unknown) => (typeof value === 'string' ? value : '');

/** An id longer than the column's 500 characters becomes its hash (cutting it could split a character). */
const bounded = (delivery: Delivery): Delivery => (delivery.id.length <= 500 ? delivery : { ...delivery, id: `${delivery.kind}:sha256:${createHash('sha256').update(delivery.id).digest('hex')}` });

/** The delivery id Slack gives (or that identifies a repeat), and what kind of request it is. Unchecked input. */
export function deliveryOf(body: Body, rawBody: Uint8Array): Delivery | undefined {
  const type = typeof body.type === 'string' ? body.type : undefined;
  if (type === 'event_callback') return bounded({ id: `event:${str(body.event_id)}`, kind: 'event_callback' });
  if (type === 'block_suggestion') return undefined; // a read; Slack does not retry it
  if (type === 'block_actions') {
    const action = (Array.isArray(body.actions) ? body.actions[0] : undefined) as Body | undefined;
    const team = str((body.team as Body | undefined)?.id);
    const user = str((body.user as Body | undefined)?.id);
    return bounded({ id: `action:${team}:${user}:${str(action?.action_ts)}:${str(action?.action_id)}`, kind: 'block_actions' });
  }
  if (type === 'view_submission' || type === 'view_closed') {
    const view = body.view as Body | undefined;
    // A form answered with errors is resubmitted with the same view id and hash: its values tell the
    // corrected submission from Slack's retry of the same one.
    const values = type === 'view_submission' ? `:${sha256(Buffer.from(JSON.stringify((view?.state as Body | undefined)?.values ?? null) ?? '')).slice(0, 16)}` : '';
    return bounded({ id: `view:${str(view?.id)}:${str(view?.hash)}:${type}${values}`, kind: type });
  }
  if (typeof body.command === 'string') {
    // trigger_id is unique per invocation; the body hash covers the rare request without one.
    return bounded({ id: `command:${str(body.trigger_id) || sha256(rawBody)}`, kind: 'slash_command' });
  }
  return { id: `body:${sha256(rawBody)}`, kind: type ?? 'unknown' };
}

/**
 * Checks a parsed, signed body. Accepted: its delivery (undefined for a read Slack does not retry) and whether
 * to skip Bolt (`app_rate_limited` is a notice, not a request). Refused: why, how to answer, and a storable
 * delivery to record the refusal under (its own id when that is storable, else the body's hash).
 */
export function checkPayload(body: Body, rawBody: Uint8Array): PayloadCheck {
  const isCommand = typeof body.command === 'string';
  const type = typeof body.type === 'string' ? body.type : undefined;
  const answer: RefusalAnswer = isCommand ? 'ephemeral' : (type && SHAPES.get(type)?.answer) || (type === 'event_callback' ? 'empty' : 'bad_request');
  const refuse = (code: Refusal['code'], message: string): PayloadCheck => {
    const given = deliveryOf(body, rawBody);
    const delivery = given && storable(given.id) && storable(given.kind) && given.kind.length <= 64 ? given : { id: `refused:${sha256(rawBody)}`, kind: type && storable(type) && type.length <= 64 ? type : 'unknown' };
    return { ok: false, delivery, refusal: { code, message, answer } };
  };

  if (!storableDeep(body, 64)) return refuse('unstorable_text', 'the request holds a NUL character or broken Unicode, which cannot be stored');
  if (type === 'app_rate_limited') return { ok: true, delivery: undefined, skip: 'rate_limited' };
  let schema: z.ZodType | undefined;
  if (isCommand) schema = slashCommand;
  else if (type === 'shortcut' || type === 'message_action') return refuse('unsupported_payload', `this app offers no ${type === 'shortcut' ? 'global shortcut' : 'message shortcut'}`);
  else schema = type ? SHAPES.get(type)?.schema : undefined;
  if (!schema) return refuse('unsupported_payload', type ? `requests of type "${type.slice(0, 40).toWellFormed()}" are not served here` : 'the request is neither a slash command nor a typed Slack payload');

  const parsed = schema.safeParse(body);
  if (!parsed.success) return refuse('malformed_payload', `the ${isCommand ? 'slash command' : type} is malformed: ${describeIssues(parsed.error)}`);
  if (type === 'view_submission') {
    const submitted = body.view as { callback_id: string; state: { values: unknown } };
    const state = VIEW_STATES.get(submitted.callback_id);
    if (state && !state.schema.safeParse(submitted.state.values).success) return refuse('malformed_payload', state.message);
  }
  return { ok: true, delivery: deliveryOf(body, rawBody) };
}

/** Which fields are wrong (never their values): `missing or malformed: view.state.values, user.id`. */
function describeIssues(error: z.ZodError): string {
  const paths = [...new Set(error.issues.map((issue) => (issue.path.length > 0 ? issue.path.map(String).join('.').slice(0, 80).toWellFormed() : issue.message.slice(0, 80).toWellFormed())))];
  return `missing or malformed: ${paths.slice(0, 4).join(', ')}${paths.length > 4 ? ', …' : ''}`;
}
