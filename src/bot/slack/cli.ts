/**
 * `projectx slack …`: operator commands of the Slack module. `slack install-link` makes a single-use link that
 * lets one workspace install the app (install-links.ts) without being in SLACK_ALLOWED_WORKSPACES; `slack dead
 * list|show|replay` (dead-letters.ts) shows and replays deliveries whose processing failed.
 */
import { userInfo } from 'node:os';
import { CommandFailed, UsageError, one, parse } from '../../cli/args.ts';
import { type VerbCommand, defineVerb } from '../../cli/verb.ts';
import { CLI_ACTOR } from '../../domain/actor.ts';
import { appendAudit } from '../../domain/audit.ts';
import { deadLetterCommands } from './dead-letters.ts';
import { INSTALL_LINK_MAX_TTL_MS, createInstallLink, installLinkUrl } from './install-links.ts';

const UNITS: Record<string, number> = { m: 60_000, h: 3_600_000 };

/** `--expires 30m|12h|24h`: from 1 minute to 24 hours; anything else is a usage error. */
export function expiresOption(value: unknown): number {
  const raw = one(value);
  if (raw === undefined) return INSTALL_LINK_MAX_TTL_MS;
  const match = /^(\d{1,4})([mh])$/.exec(raw.trim());
  const ms = match ? Number(match[1]) * UNITS[match[2]!]! : 0;
  if (ms < 60_000 || ms > INSTALL_LINK_MAX_TTL_MS) throw new UsageError('--expires takes minutes or hours, from 1m to 24h (e.g. 30m, 2h)');
  return ms;
}

/** Who runs the CLI, as recorded with what they create (`cli:<os user>`). */
function operator(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export const installLinkCommands: readonly VerbCommand[] = [
  {
    name: 'install-link',
    usage: 'slack install-link [--expires <30m|2h|24h>]',
    summary: 'Prints a single-use link that installs ProjectX in one Slack workspace (default and at most 24 h).',
    async run(ctx, args, io) {
      const { values, positionals } = parse(args, { expires: { type: 'string' } });
      if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
      const ttlMs = expiresOption(values.expires);
      const { PUBLIC_URL, SLACK_CLIENT_ID, SLACK_CLIENT_SECRET } = ctx.config;
      if (!SLACK_CLIENT_ID || !SLACK_CLIENT_SECRET) throw new CommandFailed('Slack installs need SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (see .env.example)');
      if (!PUBLIC_URL) throw new CommandFailed('an install link is an address of this service: set PUBLIC_URL (see .env.example)');
      const now = ctx.domain.clock.now();
      const createdBy = operator();
      const link = await ctx.db.transaction().execute(async (trx) => {
        const created = await createInstallLink(trx, { createdBy, ttlMs, now });
        await appendAudit(trx, { actor: CLI_ACTOR, action: 'slack.install_link.create', objectType: 'slack_install_link', objectId: created.id, outcome: 'success', at: now, detail: { createdBy, expiresAt: created.expiresAt.toISOString() } });
        return created;
      });
      io.out(installLinkUrl(PUBLIC_URL, link.token));
      io.err(`single use, valid until ${link.expiresAt.toISOString()}: whoever opens it can install ProjectX in one Slack workspace (the link is not stored; only its hash is)`);
      return 0;
    },
  },
];

export const slackVerb = defineVerb({
  name: 'slack',
  summary: 'Slack: single-use install links, and deliveries waiting for an operator',
  commands: [...installLinkCommands, ...deadLetterCommands],
});
