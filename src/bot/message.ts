/**
 * The surface-neutral message model. Command handlers and notifications answer with these; Slack renders them
 * as Block Kit, Teams as Adaptive Cards, the console as text. Buttons carry an action id (`approve`, `deny`)
 * and a value (the task id); pressing one runs the same domain operation as the matching command.
 */
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
}

export const textMessage = (text: string, extra: Block[] = []): Message => ({ text, blocks: [{ type: 'section', text }, ...extra] });

export const okReply = (message: Message, modal?: ModalRequest): Reply => (modal ? { outcome: 'ok', message, modal } : { outcome: 'ok', message });

export const refusedReply = (code: string, text: string): Reply => ({ outcome: 'refused', code, message: textMessage(text) });
