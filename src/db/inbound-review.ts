/**
 * Which inbound deliveries (`inbound_events`) wait for an operator, for the `quarantine` and `dead` verbs of
 * every source (webhooks, email): quarantined ones, and dead ones, which failed for good or are still
 * 'received' long after they arrived (their job was lost with its worker, so nothing will process them).
 */
import type { ExpressionBuilder } from 'kysely';
import type { Database, InboundEventStatus } from './schema.ts';

export type ReviewArea = 'quarantine' | 'dead';

/** How long a delivery may stay 'received' before it counts as dead. */
export const STALLED_AFTER_MS = 30 * 60_000;

const stalledBefore = (now: Date) => new Date(now.getTime() - STALLED_AFTER_MS);

/** The `where` of a listing. */
export function awaitingReview(eb: ExpressionBuilder<Database, 'inbound_events'>, area: ReviewArea, now: Date) {
  if (area === 'quarantine') return eb('status', '=', 'quarantined');
  return eb.or([eb('status', '=', 'failed'), eb.and([eb('status', '=', 'received'), eb('received_at', '<', stalledBefore(now))])]);
}

/** The same test for one row (before a replay). */
export function isAwaitingReview(row: { status: InboundEventStatus; received_at: Date }, area: ReviewArea, now: Date): boolean {
  if (area === 'quarantine') return row.status === 'quarantined';
  return row.status === 'failed' || (row.status === 'received' && row.received_at < stalledBefore(now));
}
