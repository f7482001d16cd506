/**
 * Domain events: what happened, emitted inside the transaction of the change (so an event exists iff the
 * change committed). The sink is implemented by the job runtime (src/jobs/domain-events.ts), which routes each
 * event to notifications and, later, to pushes into external systems.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';

export type DomainEventType =
  | 'task.created'
  | 'task.assigned'
  | 'task.approval_requested'
  | 'task.approval_recorded'
  | 'task.decided'
  | 'task.state_changed'
  | 'incident.created'
  | 'incident.updated'
  | 'incident.acknowledged'
  | 'task.commented'
  /** A connected system's epic of critical priority moved to done (Jira): the delivery channel hears of it. */
  | 'task.epic_completed'
  /** A sprint of a connected system closed (Jira): its programme's owners hear of the remediation left open. */
  | 'integration.sprint_closed'
  | 'evidence.recorded'
  /** An evidence file for a control was refused or is held in quarantine: its owners hear of it. */
  | 'evidence.ingest_failed'
  /** Evidence for a control expires soon (30, 7, 1 days) or has: the renewal task's assignee is reminded. */
  | 'evidence.renewal_due'
  | 'partner.alert'
  | 'security.webhook_signature_failures'
  /** A virus scan found something in an evidence file: refused and quarantined (routed to the security channel). */
  | 'security.evidence_infected'
  | 'integration.degraded'
  | 'integration.recovered'
  | 'integration.record_rejected'
  | 'integration.auth_failing'
  | 'integration.push_failed'
  | 'integration.reconciled';

/** What an event is about; `integration`: a partner or connector (alerts raised by or about it). */
export const SUBJECT_KINDS = ['task', 'incident', 'evidence', 'integration'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

export interface DomainEvent {
  id: string;
  type: DomainEventType;
  occurredAt: string;
  /** What the event is about, for rendering and for routing filters. */
  subject: { kind: SubjectKind; id: string; label: string };
  summary: string;
  priority?: number;
  controlIds?: string[];
  assigneeId?: string;
  approverIds?: string[];
  data?: Record<string, unknown>;
}

export interface EventSink {
  /** Records the event through `trx`: it is delivered iff the transaction commits. */
  emit(trx: Kysely<Database>, event: DomainEvent): Promise<void>;
}

export function newEvent(input: Omit<DomainEvent, 'id' | 'occurredAt'>, now: Date): DomainEvent {
  return { id: randomUUID(), occurredAt: now.toISOString(), ...input };
}
