/** `projectx audit …`: read the audit log, and verify its hash chain. */
import { type AuditRow, listAudit, verifyAuditChain } from '../../domain/audit.ts';
import { UsageError, limitOption, one, parse } from '../args.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

const OUTCOMES: readonly AuditRow['outcome'][] = ['success', 'refused', 'error'];

export const auditVerb = defineVerb({
  name: 'audit',
  summary: 'The hash-chained audit log: list it, verify it',
  commands: [
    {
      name: 'list',
      usage: 'audit list [--actor <actor>] [--action <action or prefix.*>] [--object <id>] [--outcome success|refused|error] [--since <date>] [--before <seq>] [--limit <n>] [--tenant <tenant>]',
      summary: 'Newest first; --before <seq> pages back from a row. Actors are recorded as user:<id>, cli, system:<via>, slack:<team>/<user>.',
      list: true,
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, {
          actor: { type: 'string' },
          action: { type: 'string' },
          object: { type: 'string' },
          outcome: { type: 'string' },
          since: { type: 'string' },
          before: { type: 'string' },
          limit: { type: 'string' },
          tenant: { type: 'string' },
        });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const outcome = one(values.outcome) as AuditRow['outcome'] | undefined;
        if (outcome !== undefined && !OUTCOMES.includes(outcome)) throw new UsageError(`--outcome must be one of ${OUTCOMES.join(', ')}`);
        const since = one(values.since);
        if (since !== undefined && Number.isNaN(Date.parse(since))) throw new UsageError('--since takes a date or time, like 2026-12-01 or 2026-12-01T09:00:00Z');
        const before = one(values.before);
        if (before !== undefined && !/^\d{1,15}$/.test(before)) throw new UsageError('--before takes a row number (seq)');
        const rows = await listAudit(ctx.db, {
          tenant: one(values.tenant),
          actor: one(values.actor),
          action: one(values.action),
          objectId: one(values.object),
          outcome,
          since: since !== undefined ? new Date(since) : undefined,
          beforeSeq: before !== undefined ? Number(before) : undefined,
          limit: limitOption(values.limit, 50),
        });
        printList(io, rows, {
          line: (row) => `${row.seq}\t${row.at.toISOString()}\t${row.actor}\t${row.action}\t${row.objectType}${row.objectId ? `:${row.objectId}` : ''}\t${row.outcome}${row.outcome !== 'success' && typeof row.detail.code === 'string' ? ` (${row.detail.code})` : ''}`,
          json: (row) => ({ ...row }),
          empty: 'no audit rows match',
        });
        return 0;
      },
    },
    {
      name: 'verify',
      usage: 'audit verify [--tenant <tenant>]',
      summary: 'Walks the hash chain; exit 1 when a row was edited or removed.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { tenant: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const report = await verifyAuditChain(ctx.db, one(values.tenant));
        if (report.breaks.length === 0) {
          io.out(`audit chain of tenant ${report.tenant}: ${report.rows} rows, intact`);
          return 0;
        }
        io.err(`audit chain of tenant ${report.tenant}: ${report.rows} rows, ${report.breaks.length} break(s):`);
        for (const broken of report.breaks) io.err(`  row ${broken.seq}: ${broken.reason}: ${broken.detail}`);
        return 1;
      },
    },
  ],
});
