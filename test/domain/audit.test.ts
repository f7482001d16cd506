/**
 * The audit log is append-only and hash-chained: the application cannot update or delete rows, and the chain
 * detects an edited row, a deleted row in the middle, and rows deleted from the end.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_ACTOR } from '../../src/domain/actor.ts';
import { appendAudit, verifyAuditChain } from '../../src/domain/audit.ts';
import { runWithContext } from '../../src/logger.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { spawnCli } from '../support/cli.ts';

describe('audit log', () => {
  let fx: DomainFixture;
  beforeAll(async () => {
    fx = await domainFixture();
  });
  afterAll(() => fx.close());

  const append = (tenant: string, action: string, detail: Record<string, unknown> = {}) =>
    fx.tdb.db.transaction().execute((trx) => appendAudit(trx, { tenant, actor: CLI_ACTOR, action, objectType: 'test', objectId: action, outcome: 'success', at: fx.clock.now(), detail }));

  /** Tampering needs the append-only trigger out of the way, as a database superuser could do. */
  const tamper = (statement: ReturnType<typeof sql>) =>
    fx.tdb.db.connection().execute(async (conn) => {
      await sql`set session_replication_role = replica`.execute(conn);
      try {
        await statement.execute(conn);
      } finally {
        await sql`set session_replication_role = origin`.execute(conn);
      }
    });

  it('chains rows per tenant and verifies an intact chain; carries the correlation id', async () => {
    await runWithContext({ correlationId: 'corr-audit-1' }, () => append('t-intact', 'one', { nested: { b: 2, a: [1, 'x'] }, unicode: 'ünïcødé ✓' }));
    await append('t-intact', 'two');
    await append('t-other', 'elsewhere');
    // What the row's canonical JSON is split around, inside `detail`, and text that JSON must escape.
    await append('t-intact', 'three', { seq: 0, surface: 'x', nested: { seq: 0, surface: '"seq":0,"surface":' }, text: 'quote " backslash \\ newline \n tab \t emoji 🦉' });
    const report = await verifyAuditChain(fx.tdb.db, 't-intact');
    expect(report).toEqual({ tenant: 't-intact', rows: 3, breaks: [] });
    const rows = await fx.tdb.db.selectFrom('audit_log').select(['seq', 'correlation_id', 'prev_hash', 'hash']).where('tenant', '=', 't-intact').orderBy('seq').execute();
    expect(rows.map((row) => Number(row.seq))).toEqual([1, 2, 3]);
    expect(rows[0]?.correlation_id).toBe('corr-audit-1');
    expect(rows[1]?.prev_hash).toBe(rows[0]?.hash);
  });

  it('refuses UPDATE and DELETE from the application', async () => {
    await append('t-locked', 'x');
    await expect(fx.tdb.db.updateTable('audit_log').set({ action: 'y' }).where('tenant', '=', 't-locked').execute()).rejects.toThrow(/append-only/);
    await expect(fx.tdb.db.deleteFrom('audit_log').where('tenant', '=', 't-locked').execute()).rejects.toThrow(/append-only/);
  });

  it('detects an edited row', async () => {
    for (const action of ['a', 'b', 'c']) await append('t-edit', action);
    await tamper(sql`update audit_log set detail = '{"approved": true}'::jsonb where tenant = 't-edit' and seq = 2`);
    const report = await verifyAuditChain(fx.tdb.db, 't-edit');
    expect(report.breaks).toEqual([{ seq: 2, reason: 'hash_mismatch', detail: expect.stringContaining('edited') }]);
  });

  it('detects a deleted row in the middle', async () => {
    for (const action of ['a', 'b', 'c', 'd']) await append('t-delete', action);
    await tamper(sql`delete from audit_log where tenant = 't-delete' and seq = 2`);
    const report = await verifyAuditChain(fx.tdb.db, 't-delete');
    expect(report.breaks.map((broken) => [broken.seq, broken.reason])).toEqual([
      [3, 'missing_rows'],
      [3, 'link_mismatch'],
    ]);
  });

  it('detects rows deleted from the end', async () => {
    for (const action of ['a', 'b', 'c']) await append('t-tail', action);
    await tamper(sql`delete from audit_log where tenant = 't-tail' and seq = 3`);
    const report = await verifyAuditChain(fx.tdb.db, 't-tail');
    expect(report.breaks).toEqual([{ seq: 3, reason: 'head_mismatch', detail: expect.stringContaining('ends at row 2') }]);
  });

  it('chains a row when its change commits, in the order written, and keeps nothing of a change rolled back', async () => {
    const tenant = 't-commit';
    const rowsOf = () => fx.tdb.db.selectFrom('audit_log').select(['seq', 'action']).where('tenant', '=', tenant).orderBy('seq').execute();
    await fx.tdb.db.transaction().execute(async (trx) => {
      await appendAudit(trx, { tenant, actor: CLI_ACTOR, action: 'first', objectType: 'test', outcome: 'success', at: fx.clock.now() });
      await appendAudit(trx, { tenant, actor: CLI_ACTOR, action: 'second', objectType: 'test', outcome: 'success', at: fx.clock.now() });
      // Nothing is chained, and no head is taken, before the commit: another change of the tenant can commit first.
      expect(await rowsOf()).toEqual([]);
      await append(tenant, 'committed meanwhile');
    });
    await expect(
      fx.tdb.db.transaction().execute(async (trx) => {
        await appendAudit(trx, { tenant, actor: CLI_ACTOR, action: 'rolled back', objectType: 'test', outcome: 'success', at: fx.clock.now() });
        throw new Error('the change fails');
      }),
    ).rejects.toThrow('the change fails');
    expect((await rowsOf()).map((row) => [Number(row.seq), row.action])).toEqual([
      [1, 'committed meanwhile'],
      [2, 'first'],
      [3, 'second'],
    ]);
    expect(await fx.tdb.db.selectFrom('audit_pending').select('id').where('tenant', '=', tenant).execute()).toEqual([]);
    expect(await verifyAuditChain(fx.tdb.db, tenant)).toEqual({ tenant, rows: 3, breaks: [] });
  });

  it('serializes concurrent appends into one unbroken chain', async () => {
    await Promise.all(Array.from({ length: 30 }, (_, i) => append('t-concurrent', `n${i}`)));
    expect(await verifyAuditChain(fx.tdb.db, 't-concurrent')).toEqual({ tenant: 't-concurrent', rows: 30, breaks: [] });
  });

  it('`projectx audit verify` exits 0 on an intact chain and 1 naming the break', async () => {
    for (const action of ['a', 'b']) await append('default', action);
    const intact = spawnCli(['audit', 'verify'], { env: { DATABASE_URL: fx.tdb.url } });
    expect((await intact.exited).code).toBe(0);
    expect(intact.stdout()).toMatch(/audit chain of tenant default: \d+ rows, intact/);
    await tamper(sql`update audit_log set actor = 'user:someone-else' where tenant = 'default' and seq = 1`);
    const broken = spawnCli(['audit', 'verify'], { env: { DATABASE_URL: fx.tdb.url } });
    expect((await broken.exited).code).toBe(1);
    expect(broken.stderr()).toContain('row 1: hash_mismatch');
  });
});
