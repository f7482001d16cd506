/** What domain operations need: the database, where events go, and the time. Built by src/main.ts. */
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import type { AuditedTransactions } from './audited-transactions.ts';
import type { EventSink } from './events.ts';

export interface DomainDeps {
  db: Db;
  events: EventSink;
  clock: Clock;
  /** Group commit for the busiest audited changes (decisions); without it each runs in its own transaction. */
  audited?: AuditedTransactions | undefined;
}
