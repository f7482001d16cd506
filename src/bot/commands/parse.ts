/**
 * Parses `/projectx <verb> [args]` into a typed command. Never throws: bad input becomes a `ParseError` with
 * a message written for the person (the right syntax, and the closest verb when the verb is unknown).
 */
import { closest, distance } from 'fastest-levenshtein';
import { normalizeIncidentNumber } from '../../domain/incidents.ts';
import { parseTaskRef } from '../../domain/tasks.ts';
import { CONTROL_ID } from '../../domain/controls.ts';
import { sentences } from '../message.ts';

export type Command =
  | { verb: 'help' }
  | { verb: 'tasks'; all: boolean }
  | { verb: 'task'; taskId: string }
  | { verb: 'approve'; taskId: string; reason?: string }
  | { verb: 'deny'; taskId: string; reason: string }
  | { verb: 'ack'; number: string }
  | { verb: 'incident'; number: string }
  | { verb: 'evidence'; target?: { kind: 'control'; id: string } | { kind: 'task'; id: string } }
  | { verb: 'status' }
  | { verb: 'link' };

export type Verb = Command['verb'];

export interface ParseError {
  code: 'empty' | 'too_long' | 'unknown_command' | 'bad_arguments' | 'unbalanced_quotes';
  message: string;
  verb?: Verb;
}

export type ParseResult = { ok: true; command: Command } | { ok: false; error: ParseError };

export const USAGE: Readonly<Record<Verb, string>> = {
  help: '/projectx help',
  tasks: '/projectx tasks [--all]',
  task: '/projectx task <id>',
  approve: '/projectx approve <id> [reason]',
  deny: '/projectx deny <id> <reason>',
  ack: '/projectx ack <incident number>',
  incident: '/projectx incident <number>',
  evidence: '/projectx evidence [control id | task id]',
  status: '/projectx status',
  link: '/projectx link',
};

// A Map, not an object literal: `constructor` or `__proto__` typed as a verb must not find Object's properties.
const ALIASES: ReadonlyMap<string, Verb> = new Map([
  ['?', 'help'],
  ['acknowledge', 'ack'],
  ['inc', 'incident'],
  ['mytasks', 'tasks'],
]);
const VERBS = Object.keys(USAGE) as Verb[];

/** Longest command text we read; Slack caps slash-command text well below this. */
export const MAX_COMMAND_LENGTH = 4000;

/** Splits on whitespace, keeping "double", 'single' and “smart” quoted runs together. */
export function tokenize(text: string): string[] | undefined {
  const tokens: string[] = [];
  const pattern = /"([^"]*)"|'([^']*)'|“([^”]*)”|‘([^’]*)’|(\S+)/gu;
  for (const match of text.matchAll(pattern)) {
    const token = match[1] ?? match[2] ?? match[3] ?? match[4] ?? match[5] ?? '';
    if (match[5] !== undefined && /^["'“‘]/u.test(match[5])) return undefined; // an opening quote never closed
    tokens.push(token);
  }
  return tokens;
}

/** The first 40 characters (not UTF-16 units: an emoji is never cut in half) of text echoed back. */
const clip = (text: string, max = 40) => {
  const chars = [...text];
  return chars.length > max ? `${chars.slice(0, max).join('')}…` : text;
};

const fail = (code: ParseError['code'], message: string, verb?: Verb): ParseResult => ({ ok: false, error: verb ? { code, message, verb } : { code, message } });
const usage = (verb: Verb, problem: string): ParseResult => fail('bad_arguments', sentences(problem, `Usage: \`${USAGE[verb]}\``), verb);

export function parseCommand(input: string): ParseResult {
  if (input.length > MAX_COMMAND_LENGTH) return fail('too_long', `That command is ${input.length} characters long; the limit is ${MAX_COMMAND_LENGTH}. Try \`/projectx help\`.`);
  const text = input.replace(/^\s*\/projectx\b/i, '').trim();
  if (!text) return fail('empty', 'Tell me what to do, for example `/projectx tasks`. `/projectx help` lists everything.');
  const tokens = tokenize(text);
  if (!tokens) return fail('unbalanced_quotes', 'A quote was opened but never closed. Put the whole reason in matching quotes, or leave quotes out.');
  const [first = '', ...args] = tokens;
  const word = first.toLowerCase();
  const verb = (VERBS as string[]).includes(word) ? (word as Verb) : ALIASES.get(word);
  if (!verb) {
    const shown = clip(first);
    const probe = [...word].slice(0, 40).join('');
    const suggestion = closest(probe, VERBS) as Verb;
    const near = distance(probe, suggestion) <= Math.max(2, Math.floor(suggestion.length / 2));
    return fail('unknown_command', `I don't know "${shown}".${near ? ` Did you mean \`${USAGE[suggestion]}\`?` : ''} \`/projectx help\` lists what you can do.`);
  }
  const rest = () => args.slice(1).join(' ').trim();

  switch (verb) {
    case 'help':
    case 'status':
      return { ok: true, command: { verb } };
    case 'tasks': {
      const unknown = args.filter((arg) => arg !== '--all' && arg !== 'all');
      if (unknown.length > 0) return usage(verb, `"${clip(unknown[0]!)}" is not an option of tasks`);
      return { ok: true, command: { verb, all: args.length > 0 } };
    }
    case 'task':
    case 'approve':
    case 'deny': {
      if (!args[0]) return usage(verb, 'Which task?');
      const taskId = parseTaskRef(args[0]);
      if (!taskId) return usage(verb, `"${clip(args[0])}" is not a task id (like T-42)`);
      if (verb === 'task') return args.length > 1 ? usage(verb, 'task takes only an id') : { ok: true, command: { verb, taskId } };
      const reason = rest();
      if (verb === 'deny') return reason ? { ok: true, command: { verb, taskId, reason } } : usage(verb, 'A denial needs a reason');
      return { ok: true, command: reason ? { verb, taskId, reason } : { verb, taskId } };
    }
    case 'ack':
    case 'incident': {
      if (!args[0]) return usage(verb, 'Which incident?');
      const number = normalizeIncidentNumber(args[0]);
      if (!number) return usage(verb, `"${clip(args[0])}" is not an incident number (like INC0012345)`);
      if (args.length > 1) return usage(verb, `${verb} takes one incident number`);
      return { ok: true, command: { verb, number } };
    }
    case 'evidence': {
      if (args.length === 0) return { ok: true, command: { verb } };
      if (args.length > 1) return usage(verb, 'evidence takes at most one control or task');
      const taskId = /^(#|t-?)\d/i.test(args[0]!) ? parseTaskRef(args[0]!) : undefined;
      if (taskId) return { ok: true, command: { verb, target: { kind: 'task', id: taskId } } };
      const control = args[0]!.toUpperCase();
      if (CONTROL_ID.test(control)) return { ok: true, command: { verb, target: { kind: 'control', id: control } } };
      return usage(verb, `"${clip(args[0]!)}" is neither a control id (like AC-2) nor a task id (like T-42)`);
    }
    case 'link':
      return args.length > 0 ? usage(verb, 'link takes no arguments') : { ok: true, command: { verb } };
  }
}
