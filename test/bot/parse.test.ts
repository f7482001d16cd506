import { describe, expect, it } from 'vitest';
import { type Command, MAX_COMMAND_LENGTH, type ParseError, type ParseResult, USAGE, parseCommand } from '../../src/bot/commands/parse.ts';

function command(text: string): Command {
  const result = parseCommand(text);
  if (!result.ok) throw new Error(`expected "${text.slice(0, 60)}" to parse, got ${result.error.code}: ${result.error.message}`);
  return result.command;
}

function failure(text: string): ParseError {
  const result = parseCommand(text) as ParseResult | undefined;
  if (result === undefined) throw new Error(`parseCommand(${JSON.stringify(text.slice(0, 60))}) returned undefined instead of a ParseResult`);
  if (result.ok) throw new Error(`expected "${text.slice(0, 60)}" to be refused, got ${JSON.stringify(result.command)}`);
  return result.error;
}

describe('parseCommand: every verb', () => {
  it.each<[string, Command]>([
    ['help', { verb: 'help' }],
    ['?', { verb: 'help' }],
    ['status', { verb: 'status' }],
    ['link', { verb: 'link' }],
    ['tasks', { verb: 'tasks', all: false }],
    ['tasks --all', { verb: 'tasks', all: true }],
    ['tasks all', { verb: 'tasks', all: true }],
    ['mytasks', { verb: 'tasks', all: false }],
    ['task T-42', { verb: 'task', taskId: '42' }],
    ['task 42', { verb: 'task', taskId: '42' }],
    ['task #42', { verb: 'task', taskId: '42' }],
    ['task t42', { verb: 'task', taskId: '42' }],
    ['task T-0042', { verb: 'task', taskId: '42' }],
    ['approve T-42', { verb: 'approve', taskId: '42' }],
    ['approve T-42 looks good to me', { verb: 'approve', taskId: '42', reason: 'looks good to me' }],
    ['deny 7 no evidence attached', { verb: 'deny', taskId: '7', reason: 'no evidence attached' }],
    ['ack INC0012345', { verb: 'ack', number: 'INC0012345' }],
    ['ack inc0012345', { verb: 'ack', number: 'INC0012345' }],
    ['acknowledge Inc0012345', { verb: 'ack', number: 'INC0012345' }],
    ['incident INC0012345', { verb: 'incident', number: 'INC0012345' }],
    ['inc inc0000001', { verb: 'incident', number: 'INC0000001' }],
    ['evidence', { verb: 'evidence' }],
    ['evidence AC-2', { verb: 'evidence', target: { kind: 'control', id: 'AC-2' } }],
    ['evidence ac-2', { verb: 'evidence', target: { kind: 'control', id: 'AC-2' } }],
    ['evidence T-7', { verb: 'evidence', target: { kind: 'task', id: '7' } }],
    ['evidence #7', { verb: 'evidence', target: { kind: 'task', id: '7' } }],
  ])('%s', (text, expected) => {
    expect(command(text)).toEqual(expected);
  });

  it('accepts a leading /projectx (any case), upper-case verbs and surrounding whitespace', () => {
    expect(command('/projectx tasks --all')).toEqual({ verb: 'tasks', all: true });
    expect(command('  /PROJECTX   APPROVE   t-3  ')).toEqual({ verb: 'approve', taskId: '3' });
    expect(command('\tstatus\n')).toEqual({ verb: 'status' });
  });
});

describe('parseCommand: quotes', () => {
  it('keeps "double", \'single\' and “smart” quoted reasons as one token', () => {
    expect(command('deny T-1 "missing the Q3 report"')).toEqual({ verb: 'deny', taskId: '1', reason: 'missing the Q3 report' });
    expect(command("deny T-1 'missing the Q3 report'")).toEqual({ verb: 'deny', taskId: '1', reason: 'missing the Q3 report' });
    expect(command('deny T-1 “missing the Q3 report”')).toEqual({ verb: 'deny', taskId: '1', reason: 'missing the Q3 report' });
    expect(command('approve T-1 ‘fine by me’')).toEqual({ verb: 'approve', taskId: '1', reason: 'fine by me' });
  });

  it('keeps apostrophes inside words', () => {
    expect(command("deny T-1 vendor didn't send it")).toEqual({ verb: 'deny', taskId: '1', reason: "vendor didn't send it" });
  });

  it.each(['deny T-1 "never closed', "deny T-1 'never closed", 'deny T-1 “never closed', '"help', 'tasks "'])('%s → unbalanced_quotes', (text) => {
    const error = failure(text);
    expect(error.code).toBe('unbalanced_quotes');
    expect(error.message).toMatch(/quote/i);
  });

  it('treats an empty quoted reason as no reason', () => {
    expect(command('approve T-1 ""')).toEqual({ verb: 'approve', taskId: '1' });
    const error = failure('deny T-1 ""');
    expect(error.code).toBe('bad_arguments');
    expect(error.message).toContain(USAGE.deny);
  });
});

describe('parseCommand: malformed input is answered, never thrown', () => {
  it.each(['', '   ', '\n\t ', '/projectx', '  /projectx  '])('%j → empty, pointing at help', (text) => {
    const error = failure(text);
    expect(error.code).toBe('empty');
    expect(error.message).toContain('/projectx help');
  });

  it('suggests the closest verb for a near miss', () => {
    const error = failure('aprove T-1');
    expect(error.code).toBe('unknown_command');
    expect(error.message).toContain('"aprove"');
    expect(error.message).toContain(`Did you mean \`${USAGE.approve}\``);
    expect(failure('staus').message).toContain(USAGE.status);
  });

  it('makes no suggestion for a far-off verb, but still points at help', () => {
    const error = failure('xyzzyplugh now');
    expect(error.code).toBe('unknown_command');
    expect(error.message).not.toContain('Did you mean');
    expect(error.message).toContain('/projectx help');
  });

  // BUG (src/bot/commands/parse.ts:74): ALIASES is a plain object literal, so `ALIASES['constructor']` and
  // `ALIASES['__proto__']` are inherited from Object.prototype; the verb becomes a function/object, no switch
  // case matches, and parseCommand returns undefined (runCommand then throws a TypeError).
  it.each(['constructor', '__proto__', 'CONSTRUCTOR now'])('%s (an Object.prototype key) → unknown_command', (text) => {
    expect(failure(text).code).toBe('unknown_command');
  });

  it('handles unicode verbs: emoji, RTL text, combining marks', () => {
    for (const text of ['🚀', '👍🏽 T-1', 'موافقة T-1', 'אשר', 'ZA̡͊͠͝LGΌ']) {
      const error = failure(text);
      expect(error.code).toBe('unknown_command');
      expect(error.message).toContain('/projectx help');
    }
    // A combining accent on an otherwise right verb is a near miss, not silence.
    expect(failure('appr\u0301ove T-1').message).toContain(USAGE.approve);
  });

  it('keeps unicode arguments intact in reasons', () => {
    for (const reason of ['🚫 not ready 🙅', 'لا يوجد دليل كافٍ', 'cafe\u0301 ñ\u0303 Z̤͔ͧ', '審査が必要です']) {
      expect(command(`deny T-9 "${reason}"`)).toEqual({ verb: 'deny', taskId: '9', reason });
    }
    const error = failure('task 🚀');
    expect(error.code).toBe('bad_arguments');
    expect(error.message).toContain(USAGE.task);
  });

  // BUG (src/bot/commands/parse.ts:76, :89, :97, :107, :118): echoed input is cut with
  // `.slice(0, 40)`, which counts UTF-16 code units and can split an emoji's surrogate pair, leaving a lone
  // surrogate in the message sent to Slack/Teams.
  it('truncates echoed input without splitting a character', () => {
    const long = `x${'🚀'.repeat(30)}`;
    for (const text of [long, `task ${long}`, `ack ${long}`, `tasks ${long}`]) {
      const error = failure(text);
      expect(error.message.isWellFormed(), error.message).toBe(true);
    }
  });

  it('refuses 10 KB of text as too_long, but parses a command exactly at the limit', () => {
    const huge = `approve T-1 ${'a'.repeat(10 * 1024)}`;
    const error = failure(huge);
    expect(error.code).toBe('too_long');
    expect(error.message).toContain(String(MAX_COMMAND_LENGTH));
    expect(failure('x'.repeat(MAX_COMMAND_LENGTH + 1)).code).toBe('too_long');

    const prefix = 'approve T-1 ';
    const atLimit = prefix + 'r'.repeat(MAX_COMMAND_LENGTH - prefix.length);
    expect(atLimit).toHaveLength(MAX_COMMAND_LENGTH);
    expect(command(atLimit)).toEqual({ verb: 'approve', taskId: '1', reason: 'r'.repeat(MAX_COMMAND_LENGTH - prefix.length) });
  });

  it.each<[string, keyof typeof USAGE, RegExp]>([
    ['deny T-1', 'deny', /needs a reason/],
    ['deny', 'deny', /Which task/],
    ['approve', 'approve', /Which task/],
    ['approve T-x', 'approve', /"T-x" is not a task id/],
    ['task 1234567890123456', 'task', /not a task id/],
    ['task -3', 'task', /not a task id/],
    ['task T-42 please', 'task', /only an id/],
    ['tasks --mine', 'tasks', /"--mine" is not an option/],
    ['ack', 'ack', /Which incident/],
    ['ack 12345', 'ack', /"12345" is not an incident number/],
    ['ack INC-12', 'ack', /not an incident number/],
    ['ack INC0012345 INC0012346', 'ack', /one incident number/],
    ['incident INC0012345 now', 'incident', /one incident number/],
    ['evidence AC-2 T-7', 'evidence', /at most one/],
    ['evidence 42', 'evidence', /neither a control id/],
    ['link me', 'link', /no arguments/],
  ])('%s → bad_arguments with the usage', (text, verb, problem) => {
    const error = failure(text);
    expect(error).toMatchObject({ code: 'bad_arguments', verb });
    expect(error.message).toMatch(problem);
    expect(error.message).toContain(`Usage: \`${USAGE[verb]}\``);
  });

  it('never throws on odd input and always explains a refusal', () => {
    const odd = ['\u0000', '\u202e', '#', '--all', '“”', '‘', '"""', "''", '/projectxtasks', 'task ##1', 'evidence t-', '\uD83D', 'deny T-1 \uDE80', ' '.repeat(5000)];
    for (const text of odd) {
      const result = parseCommand(text);
      expect(result, JSON.stringify(text)).toBeDefined();
      if (!result.ok) expect(result.error.message.length).toBeGreaterThan(0);
    }
  });
});
