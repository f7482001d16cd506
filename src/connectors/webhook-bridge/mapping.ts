/**
 * What a partner's webhook means to us: its event type is mapped to one of our actions, and the action's
 * input is validated by that action's schema. This runs when a delivery arrives (a payload that fails goes to
 * quarantine and is answered 422 with the errors), again when it is processed, and when an operator replays a
 * quarantined delivery, so the three always agree.
 *
 * A mapping entry may name where each input field comes from, as RFC 6901 JSON pointers into the payload
 * (GitHub and Jira send their own shapes), e.g. `{ "jira:issue_updated": { "action": "comment_task", "fields":
 * { "task_ref": "/issue/fields/customfield_10042", "text": "/changelog/items/0/toString" } } }`. Without
 * `fields`, the input is the payload's `data` object (Standard Webhooks' envelope) or the whole payload.
 */
import { z } from 'zod';
import { CONTROL_ID } from '../../domain/controls.ts';
import type { WebhookScheme } from '../../db/schema.ts';
import { storableDeep } from '../../db/storable.ts';

export const ACTIONS = ['create_task', 'attach_evidence', 'comment_task', 'notify'] as const;
export type ActionName = (typeof ACTIONS)[number];


const controlIds = z.array(z.string().trim().regex(CONTROL_ID, 'a control id such as AC-2')).max(20);
const taskRef = z.string().trim().regex(/^(T-)?\d+$/i, 'a task reference such as T-42');

export const actionSchemas = {
  create_task: z.object({
    title: z.string().trim().min(1).max(200),
    description: z.string().max(4000).optional(),
    type: z.enum(['review', 'remediation', 'evidence_request']).default('review'),
    priority: z.enum(['low', 'normal', 'high']).default('normal'),
    control_ids: controlIds.optional(),
    assignee_email: z.email().optional(),
    url: z.url({ protocol: /^https?$/ }).optional(),
  }),
  attach_evidence: z
    .object({
      name: z.string().trim().min(1).max(255),
      // Inline (base64); the request body limit bounds it first, then the evidence limit (EVIDENCE_MAX_BYTES) when it is staged.
      content_base64: z.base64(),
      control_ids: controlIds.optional(),
      task_ref: taskRef.optional(),
    })
    .refine((input) => (input.control_ids?.length ?? 0) > 0 || input.task_ref !== undefined, { message: 'name a control (control_ids) or a task (task_ref)', path: ['control_ids'] }),
  comment_task: z.object({ task_ref: taskRef, text: z.string().trim().min(1).max(4000) }),
  notify: z.object({
    title: z.string().trim().min(1).max(200),
    text: z.string().max(4000).default(''),
    severity: z.enum(['info', 'low', 'medium', 'high', 'critical']).default('medium'),
    url: z.url({ protocol: /^https?$/ }).optional(),
  }),
} satisfies Record<ActionName, z.ZodType>;

export type ActionInput<A extends ActionName> = z.output<(typeof actionSchemas)[A]>;

const JSON_POINTER = /^(\/([^~/]|~[01])*)*$/;
export const mappingSchema = z.record(
  z.string().trim().min(1).max(200),
  z.object({
    action: z.enum(ACTIONS),
    fields: z.record(z.string().min(1).max(100), z.string().regex(JSON_POINTER, 'a JSON pointer such as /issue/key')).optional(),
    // Which tasks a partner may comment on or attach evidence to: the ones its own deliveries created
    // (default), or any task (an operator's explicit choice for a trusted system).
    tasks: z.enum(['own', 'any']).default('own'),
  }),
);
export type Mapping = z.output<typeof mappingSchema>;

/** The `generic` partner's mapping (and the default for new partners): our action names as event types. */
export const DEFAULT_MAPPING: Mapping = {
  'task.create': { action: 'create_task', tasks: 'own' },
  'evidence.attach': { action: 'attach_evidence', tasks: 'own' },
  'task.comment': { action: 'comment_task', tasks: 'own' },
  'notification.raise': { action: 'notify', tasks: 'own' },
};

export type Interpretation =
  | { ok: true; eventType: string; action: ActionName; input: Record<string, unknown>; tasks: 'own' | 'any' }
  | { ok: false; reason: 'invalid_json' | 'missing_event_type' | 'unmapped_event' | 'schema_invalid'; message: string; eventType?: string; issues?: { path: string; message: string }[] };

/** What the delivery asks for, or why it cannot be processed (the quarantine reason). */
export function interpret(input: { scheme: WebhookScheme; mapping: Mapping; body: Uint8Array; headers: Record<string, string> }): Interpretation {
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(input.body).toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid_json', message: 'the body is not JSON' };
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return { ok: false, reason: 'invalid_json', message: 'the body is not a JSON object' };
  // PostgreSQL text and jsonb take neither NUL nor lone surrogates (JSON can spell both as escapes): such a
  // payload is refused here, as unfit, rather than failing the transaction it would be stored in.
  if (!safely(() => storableDeep(payload))) return { ok: false, reason: 'invalid_json', message: 'the body contains a NUL character or invalid Unicode' };
  const body = payload as Record<string, unknown>;
  // Event types are echoed into the delivery's record and the error message: bounded.
  const candidates = eventTypes(input.scheme, body, input.headers).map((type) => type.slice(0, 200));
  if (candidates.length === 0) return { ok: false, reason: 'missing_event_type', message: missingTypeMessage(input.scheme) };
  const eventType = candidates.find((candidate) => Object.hasOwn(input.mapping, candidate));
  if (eventType === undefined) {
    return { ok: false, reason: 'unmapped_event', eventType: candidates[0]!, message: `no action is mapped to event type "${candidates[0]}" (mapped: ${Object.keys(input.mapping).join(', ') || 'none'})` };
  }
  const entry = input.mapping[eventType]!;
  const raw = entry.fields ? Object.fromEntries(Object.entries(entry.fields).map(([field, pointer]) => [field, resolvePointer(body, pointer)])) : input.scheme === 'standard' ? body.data : body;
  const parsed = actionSchemas[entry.action].safeParse(raw ?? {});
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message }));
    return { ok: false, reason: 'schema_invalid', eventType, message: `the payload does not fit action ${entry.action}: ${issues.map((issue) => `${issue.path}: ${issue.message}`).join('; ')}`, issues };
  }
  return { ok: true, eventType, action: entry.action, input: parsed.data, tasks: entry.tasks };
}

/** False also when the check itself fails (a payload nested deeper than the stack). */
function safely(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}


/** Candidate event types, most specific first (GitHub: `issues.opened`, then `issues`). */
function eventTypes(scheme: WebhookScheme, body: Record<string, unknown>, headers: Record<string, string>): string[] {
  const str = (value: unknown) => (typeof value === 'string' && value.trim() ? value.trim() : undefined);
  if (scheme === 'github') {
    const event = str(headers['x-github-event']);
    const action = str(body.action);
    return event ? [...(action ? [`${event}.${action}`] : []), event] : [];
  }
  const type = scheme === 'jira' ? str(body.webhookEvent) : str(body.type);
  return type ? [type] : [];
}

function missingTypeMessage(scheme: WebhookScheme): string {
  if (scheme === 'github') return 'the X-GitHub-Event header is missing';
  if (scheme === 'jira') return 'the payload has no "webhookEvent"';
  return 'the payload has no "type"';
}

/**
 * RFC 6901 evaluation (a dozen lines; the pointers are validated by `mappingSchema`, and the libraries for it
 * add more than they save). Undefined when the path does not exist.
 */
export function resolvePointer(document: unknown, pointer: string): unknown {
  if (pointer === '') return document;
  let current: unknown = document;
  for (const token of pointer.slice(1).split('/')) {
    const key = token.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(current)) current = /^(0|[1-9]\d*)$/.test(key) ? current[Number(key)] : undefined;
    else if (current !== null && typeof current === 'object' && Object.hasOwn(current, key)) current = (current as Record<string, unknown>)[key];
    else return undefined;
    if (current === undefined) return undefined;
  }
  return current;
}
