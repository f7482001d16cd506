/**
 * The console surface: a chat session in a terminal, like Hubot's shell adapter. A line is a `/projectx`
 * command (the `/projectx` is optional); `press N` presses button N of the last message; a Deny button asks
 * for the reason on the next line. Used by `projectx shell` (interactive) and `projectx chat` (one command).
 */
import type { CommandContext } from '../commands/context.ts';
import { runAction, runCommand } from '../commands/dispatch.ts';
import type { Button, Reply } from '../message.ts';
import { renderText } from './render.ts';

export interface ConsoleOutput {
  text: string;
  refused: boolean;
}

export class ConsoleSession {
  readonly #ctx: CommandContext;
  #buttons: Button[] = [];
  #awaitingReasonFor: string | undefined;

  constructor(ctx: CommandContext) {
    this.#ctx = ctx;
  }

  /** The prompt to show: a pending deny asks for its reason. */
  get prompt(): string {
    return this.#awaitingReasonFor ? `reason for denying T-${this.#awaitingReasonFor}> ` : 'projectx> ';
  }

  async handle(line: string): Promise<ConsoleOutput> {
    const input = line.trim();
    if (this.#awaitingReasonFor) {
      const taskId = this.#awaitingReasonFor;
      this.#awaitingReasonFor = undefined;
      if (!input) return { text: 'Deny cancelled (no reason given).', refused: true };
      return this.#show(await runCommand(this.#ctx, `deny ${taskId} ${input}`));
    }
    const press = /^press\s+(\d+)$/i.exec(input);
    if (press) {
      const button = this.#buttons[Number(press[1]) - 1];
      if (!button) return { text: this.#buttons.length ? `There is no button ${press[1]}; the last message has ${this.#buttons.length}.` : 'The last message has no buttons.', refused: true };
      return this.#show(await runAction(this.#ctx, button.actionId, button.value));
    }
    return this.#show(await runCommand(this.#ctx, input));
  }

  #show(reply: Reply): ConsoleOutput {
    const rendered = renderText(reply.message);
    this.#buttons = rendered.buttons;
    let text = rendered.text;
    if (reply.modal?.kind === 'deny_reason') this.#awaitingReasonFor = reply.modal.taskId;
    if (reply.modal?.kind === 'evidence_upload') {
      const target = reply.modal.controlId ? ` --control ${reply.modal.controlId}` : reply.modal.taskId ? ` --task ${reply.modal.taskId}` : ' --control <id>';
      text += `\n(In a terminal, upload with: projectx evidence add --as <you>${target} <file>…)`;
    }
    return { text, refused: reply.outcome === 'refused' };
  }
}
