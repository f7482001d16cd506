/**
 * The inbound mailboxes: which recipient address means which adapter. The local part decides, the domain does
 * not (the organisation's MTA decides which domains reach us):
 *
 * - `evidence+AC-2@…` records each attachment as evidence for control AC-2; `evidence+T-42@…` for task T-42;
 * - `partner+acme@…` reads a JSON payload from the message and maps it with partner acme's event mapping.
 *
 * Checked when the MTA names the recipient (RCPT TO), so mail for any other mailbox is refused before it is
 * accepted (the MTA returns it to the sender), and again when a message is processed.
 */
import { CONTROL_ID } from '../../domain/controls.ts';
import { parseTaskRef } from '../../domain/tasks.ts';
import { PARTNER_KEY } from '../webhook-bridge/partners.ts';

export type Mailbox =
  | { kind: 'evidence'; address: string; controlIds: string[]; taskIds: string[] }
  | { kind: 'partner'; address: string; partner: string };

/** The mailbox an address names, or undefined when it is none of ours. Case does not matter. */
export function parseMailbox(address: string): Mailbox | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const normalized = address.trim().toLowerCase();
  const local = address.slice(0, at).trim();
  const plus = local.indexOf('+');
  if (plus <= 0) return undefined;
  const box = local.slice(0, plus).toLowerCase();
  const tag = local.slice(plus + 1);
  if (box === 'evidence') {
    if (/^T-\d+$/i.test(tag)) {
      const taskId = parseTaskRef(tag);
      return taskId ? { kind: 'evidence', address: normalized, controlIds: [], taskIds: [taskId] } : undefined;
    }
    return CONTROL_ID.test(tag) ? { kind: 'evidence', address: normalized, controlIds: [tag.toUpperCase()], taskIds: [] } : undefined;
  }
  if (box === 'partner') {
    const key = tag.toLowerCase();
    return PARTNER_KEY.test(key) ? { kind: 'partner', address: normalized, partner: key } : undefined;
  }
  return undefined;
}
