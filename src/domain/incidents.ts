/**
 * Incidents mirrored from source systems (ServiceNow first): upserted by (source, external id) with a content
 * hash so that an unchanged record makes no noise, and acknowledged from chat. Acknowledging is idempotent:
 * a second ack answers who acknowledged first and changes nothing.
 */
import { createHash } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import canonicalize from 'canonicalize';
import type { Database, IncidentsTable } from '../db/schema.ts';
import type { Actor } from './actor.ts';
import { formatTime } from './approvals.ts';
import { appendAudit, auditRefusal } from './audit.ts';
import type { DomainDeps } from './deps.ts';
import { newEvent } from './events.ts';
import { can } from './permissions.ts';
import { type Result, ok, refuse } from './result.ts';

export interface Incident {
  id: string;
  sourceSystem: string;
  externalId: string;
  number: string;
  priority: number;
  state: string;
  shortDescription: string;
  acknowledgedBy: string | null;
  acknowledgedAt: Date | null;
  updatedAt: Date;
}

const toIncident = (row: Selectable<IncidentsTable>): Incident => ({
  id: row.id,
  sourceSystem: row.source_system,
  externalId: row.external_id,
  number: row.number,
  priority: row.priority,
  state: row.state,
  shortDescription: row.short_description,
  acknowledgedBy: row.acknowledged_by,
  acknowledgedAt: row.acknowledged_at,
  updatedAt: row.updated_at,
});

export const INCIDENT_NUMBER = /^[A-Z]{2,10}\d{4,12}$/;

export function normalizeIncidentNumber(text: string): string | undefined {
  const number = text.trim().toUpperCase();
  return INCIDENT_NUMBER.test(number) ? number : undefined;
}

export async function findIncidentsByNumber(db: Kysely<Database>, number: string): Promise<Incident[]> {
  return (await db.selectFrom('incidents').selectAll().where('number', '=', number).execute()).map(toIncident);
}

export async function listOpenIncidents(db: Kysely<Database>, filter: { maxPriority?: number; acknowledgedBy?: string; limit?: number }): Promise<Incident[]> {
  let query = db.selectFrom('incidents').selectAll().where('state', 'not in', ['resolved', 'closed', 'cancelled']).orderBy('priority').orderBy('updated_at', 'desc').limit(filter.limit ?? 20);
  if (filter.maxPriority !== undefined) query = query.where('priority', '<=', filter.maxPriority);
  if (filter.acknowledgedBy !== undefined) query = query.where('acknowledged_by', '=', filter.acknowledgedBy);
  return (await query.execute()).map(toIncident);
}

/** Incidents for an operator's list: newest change first, optionally open ones only or up to a priority. */
export async function listIncidents(db: Kysely<Database>, filter: { open?: boolean; maxPriority?: number; limit: number }): Promise<Incident[]> {
  let query = db.selectFrom('incidents').selectAll().orderBy('updated_at', 'desc').orderBy('id', 'desc').limit(filter.limit);
  if (filter.open) query = query.where('state', 'not in', ['resolved', 'closed', 'cancelled']);
  if (filter.maxPriority !== undefined) query = query.where('priority', '<=', filter.maxPriority);
  return (await query.execute()).map(toIncident);
}

export interface IncidentInput {
  sourceSystem: string;
  externalId: string;
  number: string;
  priority: number;
  state: string;
  shortDescription: string;
}

/**
 * Inserts or updates an incident. Returns whether it was created or changed; an identical record (same
 * content hash) changes nothing and emits nothing.
 */
export async function upsertIncident(deps: DomainDeps, actor: Actor, input: IncidentInput): Promise<Result<{ incident: Incident; created: boolean; changed: boolean }>> {
  const number = normalizeIncidentNumber(input.number);
  if (!number) return refuse('invalid_incident_number', `"${input.number}" is not an incident number (like INC0012345)`);
  if (!Number.isInteger(input.priority) || input.priority < 1 || input.priority > 5) return refuse('invalid_priority', 'priority must be 1 (highest) to 5');
  const now = deps.clock.now();
  const content = { number, priority: input.priority, state: input.state, shortDescription: input.shortDescription };
  const contentHash = createHash('sha256').update(canonicalize(content) ?? '').digest('hex');
  return deps.db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('incidents').selectAll().where('source_system', '=', input.sourceSystem).where('external_id', '=', input.externalId).forUpdate().executeTakeFirst();
    if (existing && existing.content_hash === contentHash) return ok({ incident: toIncident(existing), created: false, changed: false });
    const values = { number, priority: input.priority, state: input.state, short_description: input.shortDescription, content_hash: contentHash, updated_at: now };
    const row = existing
      ? await trx.updateTable('incidents').set(values).where('id', '=', existing.id).returningAll().executeTakeFirstOrThrow()
      : await trx.insertInto('incidents').values({ ...values, source_system: input.sourceSystem, external_id: input.externalId, created_at: now }).returningAll().executeTakeFirstOrThrow();
    const incident = toIncident(row);
    await appendAudit(trx, { actor, action: existing ? 'incident.update' : 'incident.create', objectType: 'incident', objectId: number, outcome: 'success', at: now, detail: { priority: incident.priority, state: incident.state, source: incident.sourceSystem } });
    await deps.events.emit(
      trx,
      newEvent(
        {
          type: existing ? 'incident.updated' : 'incident.created',
          subject: { kind: 'incident', id: incident.id, label: number },
          summary: `${number} (P${incident.priority}) ${incident.shortDescription}`,
          priority: incident.priority,
          data: { state: incident.state, source: incident.sourceSystem, externalId: incident.externalId, previousPriority: existing?.priority ?? null },
        },
        now,
      ),
    );
    return ok({ incident, created: !existing, changed: true });
  });
}

export interface AckOutcome {
  incident: Incident;
  /** False when someone had already acknowledged it (nothing changed). */
  acknowledgedNow: boolean;
  acknowledgedByName: string;
}

export async function acknowledgeIncident(deps: DomainDeps, actor: Actor, numberText: string): Promise<Result<AckOutcome>> {
  const now = deps.clock.now();
  const number = normalizeIncidentNumber(numberText);
  const refused = async (code: string, message: string) => {
    await auditRefusal(deps.db, { actor, action: 'incident.acknowledge', objectType: 'incident', objectId: number ?? numberText.slice(0, 64), at: now, code, message });
    return refuse<AckOutcome>(code, message);
  };
  if (!actor.user) return refused('not_linked', 'link your chat account to ProjectX first: `/projectx link`');
  if (!can(actor.user, 'incidents.acknowledge')) return refused('forbidden', 'acknowledging incidents needs the responder role');
  if (!number) return refused('invalid_incident_number', `"${numberText}" is not an incident number (like INC0012345)`);
  const matches = await findIncidentsByNumber(deps.db, number);
  if (matches.length === 0) return refused('incident_not_found', `no incident ${number}`);
  if (matches.length > 1) return refused('ambiguous_incident', `${number} exists in ${matches.map((m) => m.sourceSystem).join(' and ')}`);
  const incident = matches[0]!;
  const user = actor.user;

  return deps.db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('incidents')
      .set({ acknowledged_by: user.id, acknowledged_at: now, updated_at: now })
      .where('id', '=', incident.id)
      .where('acknowledged_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!row) {
      const current = await trx
        .selectFrom('incidents')
        .leftJoin('users', 'users.id', 'incidents.acknowledged_by')
        .selectAll('incidents')
        .select('users.display_name')
        .where('incidents.id', '=', incident.id)
        .executeTakeFirstOrThrow();
      await appendAudit(trx, { actor, action: 'incident.acknowledge', objectType: 'incident', objectId: number, outcome: 'success', at: now, detail: { alreadyAcknowledged: true } });
      return ok({ incident: toIncident(current), acknowledgedNow: false, acknowledgedByName: current.display_name ?? 'someone' });
    }
    const acked = toIncident(row);
    await appendAudit(trx, { actor, action: 'incident.acknowledge', objectType: 'incident', objectId: number, outcome: 'success', at: now, detail: { priority: acked.priority } });
    await deps.events.emit(
      trx,
      newEvent(
        {
          type: 'incident.acknowledged',
          subject: { kind: 'incident', id: acked.id, label: number },
          summary: `${number} acknowledged by ${user.displayName} at ${formatTime(now)}`,
          priority: acked.priority,
          data: { by: user.id, byEmail: user.email, source: acked.sourceSystem, externalId: acked.externalId },
        },
        now,
      ),
    );
    return ok({ incident: acked, acknowledgedNow: true, acknowledgedByName: user.displayName });
  });
}
