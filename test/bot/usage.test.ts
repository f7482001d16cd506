/**
 * Every command's refusals read as sentences: for each command in the registry, wrong arguments of every kind
 * go through the command layer (parse, authorize, handler) as an admin would send them, and no reply carries
 * doubled punctuation ("Which incident?. Usage: …"). Every command that takes arguments has a usage refusal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandContext } from '../../src/bot/commands/context.ts';
import { runCommand } from '../../src/bot/commands/dispatch.ts';
import { USAGE } from '../../src/bot/commands/parse.ts';
import { COMMANDS } from '../../src/bot/commands/registry.ts';
import { type Reply, sentence, sentences } from '../../src/bot/message.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';

/** Argument lists that are wrong for some command: none, too many, of the wrong kind, ending in punctuation. */
const PROBES = ['', 'now!', 'what?', 'T-1.', 'T-x', 'T-999999 extra', '--mine', 'INC-12', 'INC0012345 INC0012346', 'AC-2 T-7', '42'];

/** Commands that take any text after the verb, so they have no usage refusal. */
const TAKES_ANY_TEXT = new Set(['help', 'status']);

const DOUBLED = /[?!.]\./u;

const texts = (reply: Reply) => [reply.message.text, ...reply.message.blocks.flatMap((block) => ('text' in block ? [block.text] : []))];

describe('usage refusals', () => {
  let fixture: DomainFixture;
  let ctx: CommandContext;
  beforeAll(async () => {
    fixture = await domainFixture();
    const admin = await fixture.user({ roles: ['admin'] });
    ctx = { domain: fixture.deps, actor: { surface: 'slack', user: admin, identity: { surface: 'slack', tenant: 'T1', externalId: 'U-USAGE' } }, integrations: () => Promise.resolve([]) };
  });
  afterAll(() => fixture.close());

  it.each(COMMANDS.map((command) => command.verb))('%s: no reply doubles its punctuation, and wrong arguments show the usage', async (verb) => {
    const usageRefusals: string[] = [];
    for (const args of PROBES) {
      const reply = await runCommand(ctx, `${verb} ${args}`.trim());
      for (const text of texts(reply)) expect(text, `${verb} ${args}`).not.toMatch(DOUBLED);
      if (reply.code === 'bad_arguments') usageRefusals.push(reply.message.text);
    }
    if (TAKES_ANY_TEXT.has(verb)) {
      expect(usageRefusals).toEqual([]);
    } else {
      expect(usageRefusals.length).toBeGreaterThan(0);
      for (const text of usageRefusals) expect(text).toMatch(new RegExp(`[.?!] Usage: \`${USAGE[verb].replace(/[[\]]/gu, '\\$&')}\`$`, 'u'));
    }
  });

  it('joins sentences with one full stop between them', () => {
    expect(sentences('Which incident?', 'Usage: `x`')).toBe('Which incident? Usage: `x`');
    expect(sentences('Stop!', 'Usage: `x`')).toBe('Stop! Usage: `x`');
    expect(sentences('Done.', 'Usage: `x`')).toBe('Done. Usage: `x`');
    expect(sentences('task takes only an id', 'Usage: `x`')).toBe('task takes only an id. Usage: `x`');
    expect(sentences('', 'one ', ' two')).toBe('one. two');
    expect(sentence('There is no control AC-2.')).toBe('There is no control AC-2.');
    expect(sentence('There is no control AC-2')).toBe('There is no control AC-2.');
  });
});
