/** What domain operations need: the database, where events go, and the time. Built by src/main.ts. */
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import type { EventSink } from './events.ts';

export interface DomainDeps {
  db: Db;
  events: EventSink;
  clock: Clock;
}
