/**
 * Evidence expiry and renewal. Evidence counts for a control until its `valid_until` (given at upload, or the
 * control's renewal period from when it was linked). Once a day (`evidence.renewals`, src/jobs/tasks) every
 * control whose newest evidence expires within 30 days gets one renewal task (type `evidence_request`, for the
 * control owner, due when the evidence expires), and its assignee is reminded 30, 7 and 1 days before and once
 * when it is overdue (`evidence.renewal_due`, routed to their DM). New evidence for the control closes the task.
 */
import type { Kysely } from 'kysely';
import type { Database, RenewalStage } from '../db/schema.ts';
import { SYSTEM_ACTOR } from './actor.ts';
import type { DomainDeps } from './deps.ts';
import { newEvent } from './events.ts';
import { createTask, transitionTask } from './tasks.ts';

const DAY_MS = 86_400_000;
const RENEWAL_ACTOR = { ...SYSTEM_ACTOR, via: 'evidence-renewal' };

/** Until when new evidence counts for each control: `given`, else the control's renewal period from `now`. */
export async function validUntilFor(db: Kysely<Database>, controlIds: readonly string[], now: Date, given?: Date): Promise<Map<string, Date | null>> {
  if (controlIds.length === 0) return new Map();
  const rows = await db.selectFrom('controls').select(['id', 'renewal_days']).where('id', 'in', controlIds).execute();
  return new Map(rows.map((row) => [row.id, given ?? (row.renewal_days ? new Date(now.getTime() + row.renewal_days * DAY_MS) : null)]));
}

/** The owners of these controls (each once). */
export async function controlOwners(db: Kysely<Database>, controlIds: readonly string[]): Promise<string[]> {
  if (controlIds.length === 0) return [];
  const rows = await db.selectFrom('controls').select('owner_id').distinct().where('id', 'in', controlIds).where('owner_id', 'is not', null).execute();
  return rows.flatMap((row) => (row.owner_id ? [row.owner_id] : []));
}

/** The reminder step `validUntil` has reached at `now`, or undefined when it is more than 30 days away. */
export function renewalStage(validUntil: Date, now: Date): RenewalStage | undefined {
  const left = validUntil.getTime() - now.getTime();
  if (left <= 0) return 'overdue';
  if (left <= DAY_MS) return '1';
  if (left <= 7 * DAY_MS) return '7';
  if (left <= 30 * DAY_MS) return '30';
  return undefined;
}

const STAGE_ORDER: readonly RenewalStage[] = ['30', '7', '1', 'overdue'];

/**
 * Closes the open renewals of these controls that `evidenceId` replaces (it is other evidence, and valid longer
 * or without end): their tasks become done.
 */
export async function closeRenewals(deps: DomainDeps, controlIds: readonly string[], evidenceId: string): Promise<number> {
  const open = await deps.db
    .selectFrom('evidence_renewals as r')
    .innerJoin('evidence_links as l', (join) => join.on('l.evidence_id', '=', evidenceId).on('l.kind', '=', 'control').onRef('l.target', '=', 'r.control_id'))
    .select(['r.evidence_id', 'r.control_id', 'r.task_id', 'r.valid_until', 'l.valid_until as new_valid_until'])
    .where('r.control_id', 'in', controlIds)
    .where('r.closed_at', 'is', null)
    .where('r.evidence_id', '<>', evidenceId)
    .execute();
  let closed = 0;
  for (const renewal of open.filter((row) => row.new_valid_until === null || row.new_valid_until > row.valid_until)) {
    const done = await transitionTask(deps, RENEWAL_ACTOR, renewal.task_id, 'done', `new evidence for ${renewal.control_id}`);
    // Already done or cancelled by someone: the renewal is over all the same.
    await deps.db.updateTable('evidence_renewals').set({ closed_at: deps.clock.now(), closed_by_evidence: evidenceId }).where('evidence_id', '=', renewal.evidence_id).where('control_id', '=', renewal.control_id).where('closed_at', 'is', null).execute();
    if (done.ok) closed++;
  }
  return closed;
}

export interface RenewalSummary {
  /** Renewal tasks opened. */
  opened: number;
  /** Reminders sent (one per step reached). */
  reminded: number;
  /** Renewals closed because newer evidence exists. */
  closed: number;
}

/**
 * The daily pass: for each control's newest expiring evidence, the renewal task (opened once) and the reminder of
 * the step reached (once per step); renewals that newer evidence replaced are closed.
 */
export async function runRenewals(deps: DomainDeps): Promise<RenewalSummary> {
  const now = deps.clock.now();
  const summary: RenewalSummary = { opened: 0, reminded: 0, closed: 0 };
  // Renewals left open although newer evidence arrived (its closing failed): close them now.
  const superseded = await deps.db
    .selectFrom('evidence_renewals as r')
    .innerJoin('evidence_links as newer', (join) => join.onRef('newer.target', '=', 'r.control_id').on('newer.kind', '=', 'control').onRef('newer.evidence_id', '<>', 'r.evidence_id'))
    .select(['r.control_id', 'newer.evidence_id'])
    .where('r.closed_at', 'is', null)
    .where((eb) => eb.or([eb('newer.valid_until', 'is', null), eb('newer.valid_until', '>', eb.ref('r.valid_until'))]))
    .execute();
  for (const row of superseded) summary.closed += await closeRenewals(deps, [row.control_id], row.evidence_id);

  // Each control's newest evidence (by expiry; evidence without expiry means the control is covered), expiring within 30 days.
  const horizon = new Date(now.getTime() + 30 * DAY_MS);
  const expiring = await deps.db
    .selectFrom('evidence_links as l')
    .innerJoin('controls as c', 'c.id', 'l.target')
    .innerJoin('evidence as e', 'e.id', 'l.evidence_id')
    .select(['l.evidence_id', 'l.target as control_id', 'l.valid_until', 'c.owner_id', 'c.title', 'e.original_name', 'e.sha256'])
    .where('l.kind', '=', 'control')
    .where('l.valid_until', '<=', horizon)
    .where((eb) =>
      eb.not(eb.exists(eb.selectFrom('evidence_links as other').select('other.evidence_id').whereRef('other.target', '=', 'l.target').where('other.kind', '=', 'control').whereRef('other.evidence_id', '<>', 'l.evidence_id').where((eb) => eb.or([eb('other.valid_until', 'is', null), eb('other.valid_until', '>', eb.ref('l.valid_until'))])))),
    )
    .execute();
  for (const item of expiring) {
    const validUntil = item.valid_until!;
    const stage = renewalStage(validUntil, now);
    if (!stage) continue;
    const existing = await deps.db.selectFrom('evidence_renewals').selectAll().where('evidence_id', '=', item.evidence_id).where('control_id', '=', item.control_id).executeTakeFirst();
    if (existing?.closed_at) continue;
    if (existing && STAGE_ORDER.indexOf(existing.stage) >= STAGE_ORDER.indexOf(stage)) continue;
    const name = item.original_name ?? `${item.sha256.slice(0, 12)}…`;
    let taskId = existing?.task_id;
    let taskRef: string | undefined;
    if (!taskId) {
      const task = await createTask(deps, RENEWAL_ACTOR, {
        type: 'evidence_request',
        title: `Renew evidence for ${item.control_id}: ${name} expires ${validUntil.toISOString().slice(0, 10)}`,
        description: `The evidence ${name} for ${item.control_id} (${item.title}) is valid until ${validUntil.toISOString().slice(0, 10)}. Upload its renewal (\`evidence ${item.control_id}\`); new evidence for the control closes this task.`,
        assigneeId: item.owner_id ?? undefined,
        dueAt: validUntil,
        controlIds: [item.control_id],
      });
      if (!task.ok) throw Object.assign(new Error(`the renewal task for ${item.control_id} could not be opened: ${task.refusal.message}`), { code: task.refusal.code });
      taskId = task.value.id;
      taskRef = task.value.ref;
      summary.opened++;
    }
    const ref = taskRef ?? `T-${taskId}`;
    const when = stage === 'overdue' ? `expired on ${validUntil.toISOString().slice(0, 10)}` : `expires in ${stage} day${stage === '1' ? '' : 's'} (${validUntil.toISOString().slice(0, 10)})`;
    await deps.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('evidence_renewals')
        .values({ evidence_id: item.evidence_id, control_id: item.control_id, task_id: taskId, valid_until: validUntil, stage, reminded_at: now })
        .onConflict((oc) => oc.columns(['evidence_id', 'control_id']).doUpdateSet({ stage, reminded_at: now }))
        .execute();
      await deps.events.emit(
        trx,
        newEvent(
          {
            type: 'evidence.renewal_due',
            subject: { kind: 'task', id: taskId, label: ref },
            summary: `Evidence for ${item.control_id} (${name}) ${when}: renew it (${ref})`,
            controlIds: [item.control_id],
            ...(item.owner_id ? { assigneeId: item.owner_id } : {}),
            data: { evidenceId: item.evidence_id, stage, validUntil: validUntil.toISOString() },
          },
          now,
        ),
      );
    });
    summary.reminded++;
  }
  return summary;
}
