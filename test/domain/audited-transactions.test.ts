/**
 * Audited changes that arrive together commit together: one transaction (so one chain lock and one WAL flush)
 * for the batch, each change in its own savepoint and its caller's context, so one that fails is rolled back
 * alone and the chain stays whole.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ACTOR } from '../../src/domain/actor.ts';
import { appendAudit, verifyAuditChain } from '../../src/domain/audit.ts';
import { createAuditedTransactions } from '../../src/domain/audited-transactions.ts';
import { runWithContext } from '../../src/logger.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';

describe('audited changes, group-committed', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx.close());

  it('commits changes that arrive together in one transaction; a failing one is rolled back alone; each audit row keeps its own correlation id', async () => {
    const tenant = 't-batched';
    const audited = createAuditedTransactions(fx.tdb.db);
    const change = (i: number) =>
      runWithContext({ correlationId: `corr-${i}` }, () =>
        audited.run(async (trx) => {
          await appendAudit(trx, { tenant, actor: CLI_ACTOR, action: `change.${i}`, objectType: 'test', objectId: `n${i}`, outcome: 'success', at: fx.clock.now() });
          if (i === 4) throw new Error('change 4 fails after its audit row');
          const { rows } = await sql<{ txid: string }>`select txid_current()::text as txid`.execute(trx);
          return rows[0]!.txid;
        }),
      );
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => change(i)));
    expect(outcomes[4]).toMatchObject({ status: 'rejected', reason: { message: 'change 4 fails after its audit row' } });
    const txids = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    expect(txids).toHaveLength(9);
    // The first ran alone (nothing was waiting); the eight that arrived meanwhile shared one transaction.
    expect(new Set(txids.slice(1)).size).toBe(1);
    expect(txids[0]).not.toBe(txids[1]);

    const rows = await fx.tdb.db.selectFrom('audit_log').select(['seq', 'action', 'correlation_id']).where('tenant', '=', tenant).orderBy('seq').execute();
    expect(rows.map((row) => row.action)).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => `change.${i}`));
    expect(rows.map((row) => row.correlation_id)).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9].map((i) => `corr-${i}`));
    expect(await verifyAuditChain(fx.tdb.db, tenant)).toEqual({ tenant, rows: 9, breaks: [] });
  });
});
