/**
 * The modals: the evidence upload form (file_input, up to 10 files; a control picker answered from our
 * database; notes) and the reason form a Deny button opens. Shapes follow Slack's Block Kit reference (the
 * file_input example in ../shared/fixtures/slack_file_input_modal_view_docs.json).
 */
import type { ModalRequest } from '../message.ts';

export const DENY_REASON_VIEW = 'deny_reason';
export const EVIDENCE_VIEW = 'evidence_upload';

const text = (value: string) => ({ type: 'plain_text' as const, text: value, emoji: true });

export function denyReasonModal(taskId: string, taskRef: string) {
  return {
    type: 'modal' as const,
    callback_id: DENY_REASON_VIEW,
    private_metadata: taskId,
    title: text(`Deny ${taskRef}`.slice(0, 24)),
    submit: text('Deny'),
    close: text('Cancel'),
    blocks: [
      {
        type: 'input',
        block_id: 'reason',
        label: text('Why are you denying it?'),
        element: { type: 'plain_text_input', action_id: 'reason_input', multiline: true, min_length: 1, max_length: 2000 },
      },
    ],
  };
}

export function evidenceModal(request: Extract<ModalRequest, { kind: 'evidence_upload' }>) {
  const target = request.controlId ? { kind: 'control', id: request.controlId } : request.taskId ? { kind: 'task', id: request.taskId } : undefined;
  return {
    type: 'modal' as const,
    callback_id: EVIDENCE_VIEW,
    private_metadata: JSON.stringify(target ?? {}),
    title: text('Upload evidence'),
    submit: text('Upload'),
    close: text('Cancel'),
    blocks: [
      {
        type: 'input',
        block_id: 'files',
        label: text('Files (up to 10, 10 MB each)'),
        element: { type: 'file_input', action_id: 'files_input', max_files: 10 },
      },
      {
        type: 'input',
        block_id: 'control',
        optional: Boolean(target),
        label: text(target ? `Control (optional; this goes to ${target.kind} ${target.id})` : 'Control'),
        element: {
          type: 'external_select',
          action_id: 'control_picker',
          min_query_length: 0,
          placeholder: text('Search controls'),
          ...(request.controlId ? { initial_option: { text: text(request.controlId), value: request.controlId } } : {}),
        },
      },
      {
        type: 'input',
        block_id: 'notes',
        optional: true,
        label: text('Notes'),
        element: { type: 'plain_text_input', action_id: 'notes_input', multiline: true, max_length: 2000 },
      },
    ],
  };
}
