/**
 * Group commit for audited changes. An audit append holds its tenant's chain lock until commit (src/domain/audit.ts),
 * so changes that append one after another queue on that lock for a commit (a WAL flush) each: on a busy tenant
 * the flush, not the work, caps how many decisions a second can be made. Here changes that arrive while a batch
 * is being written run together in the next one: one transaction, one lock, one flush for all of them.
 *
 * Each change runs in a savepoint of its own, in its caller's async context (the audit row's correlation id and
 * the log lines are its request's), so one that throws (a lost compare-and-set, a constraint) is rolled back
 * alone and its caller gets the error, while the others commit. A change must only use the transaction it is
 * given: one that waited for another connection while the batch holds the chain lock could wait forever.
 * When the commit itself fails, the shared Batcher runs each change again in a transaction of its own, so
 * only what fails alone fails. A caller is answered only after its change committed.
 *
 * Without a writer (the CLI, one-off tools) the same change runs in a plain transaction of its own.
 */
import { AsyncResource } from 'node:async_hooks';
import { type Transaction, sql } from 'kysely';
import type { Db } from '../db/database.ts';
import { Batcher } from '../db/batcher.ts';
import type { Database } from '../db/schema.ts';
import type { Logger } from '../logger.ts';

export type Change<T> = (trx: Transaction<Database>) => Promise<T>;

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export interface AuditedTransactions {
  run<T>(change: Change<T>): Promise<T>;
  /** Resolves when every change added so far has committed or failed. */
  flush(): Promise<void>;
}

export function createAuditedTransactions(db: Db, options: { logger?: Logger; maxBatch?: number } = {}): AuditedTransactions {
  const batcher = new Batcher<Change<unknown>, Outcome>((changes) => db.transaction().execute((trx) => runEach(trx, changes)), {
    maxBatch: options.maxBatch ?? 50,
    onBatchFailure: (error, items) => options.logger?.warn({ err: error, items }, 'a batch of audited changes failed to commit; running them one by one'),
  });
  return {
    async run<T>(change: Change<T>): Promise<T> {
      const outcome = await batcher.add(AsyncResource.bind(change));
      if (!outcome.ok) throw outcome.error;
      return outcome.value as T;
    },
    flush: () => batcher.flush(),
  };
}

async function runEach(trx: Transaction<Database>, changes: readonly Change<unknown>[]): Promise<Outcome[]> {
  if (changes.length === 1) return [{ ok: true, value: await changes[0]!(trx) }];
  const outcomes: Outcome[] = [];
  for (const change of changes) {
    await sql`savepoint audited_change`.execute(trx);
    try {
      const value = await change(trx);
      await sql`release savepoint audited_change`.execute(trx);
      outcomes.push({ ok: true, value });
    } catch (error) {
      await sql`rollback to savepoint audited_change`.execute(trx);
      outcomes.push({ ok: false, error });
    }
  }
  return outcomes;
}

/** Runs an audited change through the deps' writer when there is one, else in a transaction of its own. */
export function auditedTransaction<T>(deps: { db: Db; audited?: AuditedTransactions | undefined }, change: Change<T>): Promise<T> {
  return deps.audited ? deps.audited.run(change) : deps.db.transaction().execute(change);
}
