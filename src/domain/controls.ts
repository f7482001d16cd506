/** Controls (e.g. `AC-2`) with an owner, grouped in programs. */
import type { Db } from '../db/database.ts';
import { type Result, ok, refuse } from './result.ts';

export interface Control {
  id: string;
  title: string;
  ownerId: string | null;
  programId: string | null;
}

export const CONTROL_ID = /^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9.()]+)+$/;

export async function createControl(db: Db, input: { id: string; title: string; ownerId?: string | undefined; programId?: string | undefined; renewalDays?: number | undefined }): Promise<Result<Control>> {
  const id = input.id.trim().toUpperCase();
  if (!CONTROL_ID.test(id)) return refuse('invalid_control_id', `"${input.id}" is not a control id (like AC-2 or ISO-A.5.1)`);
  if (input.renewalDays !== undefined && (!Number.isInteger(input.renewalDays) || input.renewalDays < 1 || input.renewalDays > 3650)) return refuse('invalid_renewal_period', 'the renewal period is a whole number of days from 1 to 3650');
  if (input.programId) {
    await db.insertInto('programs').values({ id: input.programId, name: input.programId }).onConflict((oc) => oc.doNothing()).execute();
  }
  const row = await db
    .insertInto('controls')
    .values({ id, title: input.title.trim(), owner_id: input.ownerId ?? null, program_id: input.programId ?? null, renewal_days: input.renewalDays ?? null })
    .onConflict((oc) => oc.doNothing())
    .returningAll()
    .executeTakeFirst();
  if (!row) return refuse('control_exists', `control ${id} already exists`);
  return ok({ id: row.id, title: row.title, ownerId: row.owner_id, programId: row.program_id });
}

export async function getControl(db: Db, id: string): Promise<Control | undefined> {
  const row = await db.selectFrom('controls').selectAll().where('id', '=', id.trim().toUpperCase()).executeTakeFirst();
  return row ? { id: row.id, title: row.title, ownerId: row.owner_id, programId: row.program_id } : undefined;
}

export async function searchControls(db: Db, query: string, limit = 20): Promise<Control[]> {
  const pattern = `%${query.trim().replace(/[%_\\]/g, (c) => `\\${c}`)}%`;
  const rows = await db
    .selectFrom('controls')
    .selectAll()
    .where((eb) => eb.or([eb('id', 'ilike', pattern), eb('title', 'ilike', pattern)]))
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((row) => ({ id: row.id, title: row.title, ownerId: row.owner_id, programId: row.program_id }));
}
