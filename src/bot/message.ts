/**
 * The surface-neutral message model. Command handlers and notifications answer with these; Slack renders them
 * as Block Kit, Teams as Adaptive Cards, the console as text. Buttons carry an action id (`approve`, `deny`)
 * and a value (the task id); pressing one runs the same domain operation as the matching command.
 */
import type { Task } from '../domain/tasks.ts';

export interface Button {
  actionId: string;
  label: string;
  value: string;
  style?: 'primary' | 'danger';
}

export type Block =
  | { type: 'header'; text: string }
  | { type: 'section'; text: string; fields?: { label: string; value: string }[] }
  | { type: 'actions'; buttons: Button[] }
  | { type: 'context'; text: string }
  /** Deep links to where a thing lives (the source record in ServiceNow or Jira, the ProjectX page). */
  | { type: 'links'; links: { label: string; url: string }[] };

export interface Message {
  /** Plain-text fallback (notifications, screen readers, logs). */
  text: string;
  blocks: Block[];
}

/** A form the surface should open (Slack modal, Teams task module). */
export type ModalRequest =
  | { kind: 'evidence_upload'; controlId?: string; taskId?: string }
  | { kind: 'deny_reason'; taskId: string; taskRef: string };

export interface Reply {
  outcome: 'ok' | 'refused';
  /** Stable code of a refusal (`forbidden`, `not_linked`, `unknown_command`, …). */
  code?: string;
  message: Message;
  modal?: ModalRequest;
  /** The task as the command left it (a decision), so a surface can show it without reading it again. */
  task?: Task;
}

/**
 * Ends a sentence with a full stop unless it already ends with `.`, `?` or `!` (text that echoes what a person
 * typed, like a control id "AC-2.", must not read "There is no control AC-2..").
 *
 * @example sentence('There is no control AC-2.') // 'There is no control AC-2.'
 */
export function sentence(text: string): string {
  const trimmed = text.trim();
  return trimmed.length === 0 || /[.?!]$/u.test(trimmed) ? trimmed : `${trimmed}.`;
}

/**
 * Joins sentences with a space, each but the last ended by `sentence` (so a refusal built from parts never
 * reads "Which incident?. Usage: …"); the last is left as it is (often a code span, like a usage line).
 *
 * @example sentences('Which incident?', 'Usage: `/projectx ack <incident number>`') // 'Which incident? Usage: `/projectx ack <incident number>`'
 */
export function sentences(...parts: readonly string[]): string {
  const kept = parts.map((part) => part.trim()).filter((part) => part.length > 0);
  return kept.map((part, index) => (index === kept.length - 1 ? part : sentence(part))).join(' ');
}

export const textMessage = (text: string, extra: Block[] = []): Message => ({ text, blocks: [{ type: 'section', text }, ...extra] });

export const okReply = (message: Message, modal?: ModalRequest): Reply => (modal ? { outcome: 'ok', message, modal } : { outcome: 'ok', message });

export const refusedReply = (code: string, text: string): Reply => ({ outcome: 'refused', code, message: textMessage(text) });
