/**
 * Record writes as ServiceNow makes them, shared by the test-facing API (`fake.insert` / `update`) and the Table API
 * (POST / PATCH / PUT): value normalisation, system fields, numbering, and journal fields.
 *
 * - All values are strings; a reference is stored as its sys_id (`{ link, value }` or `{ value }` on input), and a
 *   `{ link }` naming a table makes that field a reference on this table.
 * - Inserts get sys_id (32 hex), number (table prefix + 7 digits) unless given, sys_created_on / sys_updated_on
 *   ('YYYY-MM-DD HH:mm:ss' UTC, second resolution), sys_created_by / sys_updated_by, sys_mod_count '0'; updates bump
 *   sys_updated_on, sys_updated_by and sys_mod_count. Over HTTP the system fields of a body are ignored (the docs:
 *   fields prefixed "sys_" "are automatically generated and cannot be updated"; sys_id may be given on insert).
 * - work_notes and comments are journal fields: a write adds a journal entry, and the field reads back as "", as in
 *   the fixtures (work_notes: "", comments: "").
 */
import { randomBytes } from 'node:crypto';
import type { Row, TableStore } from './store.ts';
import type { JournalEntry } from './types.ts';

/** Number prefixes of ServiceNow's task tables (incident INC, change_request CHG, …); other tables get no number. */
export const NUMBER_PREFIX: Readonly<Record<string, string>> = {
  incident: 'INC', change_request: 'CHG', problem: 'PRB', task: 'TASK', sc_request: 'REQ', sc_req_item: 'RITM',
  sc_task: 'SCTASK', change_task: 'CTASK',
};
const JOURNAL_FIELDS = ['work_notes', 'comments'] as const;
type JournalField = (typeof JOURNAL_FIELDS)[number];
const isJournalField = (f: string): f is JournalField => (JOURNAL_FIELDS as readonly string[]).includes(f);
const SYSTEM = ['sys_created_on', 'sys_created_by', 'sys_updated_on', 'sys_updated_by', 'sys_mod_count'];
/** Fields ignored in a write: over HTTP all system fields; from a test, those the `at` argument governs. */
const SKIP = {
  httpInsert: new Set(SYSTEM),
  httpUpdate: new Set([...SYSTEM, 'sys_id']),
  testUpdate: new Set(['sys_id', 'sys_updated_on', 'sys_mod_count']),
  none: new Set<string>(),
};

export const formatTime = (d: Date): string => d.toISOString().slice(0, 19).replace('T', ' ');
export const newSysId = (): string => randomBytes(16).toString('hex');

function text(store: TableStore, field: string, value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object' && 'value' in value && typeof value.value === 'string') {
    const link = 'link' in value && typeof value.link === 'string' ? value.link : '';
    const table = /\/api\/now\/(?:v\d+\/)?table\/([^/?]+)\//.exec(link)?.[1];
    if (table !== undefined && !store.refs.has(field)) store.refs.set(field, table);
    return value.value;
  }
  throw new TypeError(`fake ServiceNow: ${store.name}.${field} must be a string, number, boolean or {link,value}: ${JSON.stringify(value)}`);
}

export function createJournal() {
  const entries = new Map<string, JournalEntry[]>();
  const key = (table: string, sysId: string): string => `${table}/${sysId}`;
  return {
    list: (table: string, sysId: string): JournalEntry[] => [...(entries.get(key(table, sysId)) ?? [])],
    add(table: string, sysId: string, notes: { element: JournalField; value: string }[], at: string, by: string): void {
      if (!notes.length) return;
      const list = entries.get(key(table, sysId)) ?? [];
      for (const note of notes) list.push({ ...note, at, by });
      entries.set(key(table, sysId), list);
    },
  };
}
export type Journal = ReturnType<typeof createJournal>;

export interface WriteContext {
  journal: Journal;
  /** sys_updated_on (and sys_created_on) of this write. */
  at: string;
  /** The user or OAuth client making the write. */
  by: string;
  via: 'http' | 'test';
}

function normalize(store: TableStore, fields: Record<string, unknown>, skip: Set<string>) {
  const values: Record<string, string> = {};
  const notes: { element: JournalField; value: string }[] = [];
  for (const field of Object.keys(fields)) {
    if (skip.has(field)) continue;
    const value = text(store, field, fields[field]);
    if (isJournalField(field)) {
      if (value !== '') notes.push({ element: field, value });
      values[field] = '';
    } else values[field] = value;
  }
  return { values, notes };
}

/** A new row (not yet added to the store). `sysId` is used when the fields give none. */
export function createRow(store: TableStore, fields: Record<string, unknown>, ctx: WriteContext, sysId?: string): Row {
  const { values, notes } = normalize(store, fields, ctx.via === 'http' ? SKIP.httpInsert : SKIP.none);
  const row = values as Row;
  row.sys_id ||= sysId ?? newSysId();
  const prefix = NUMBER_PREFIX[store.name];
  if (prefix !== undefined && !row.number) row.number = `${prefix}${String(++store.numberCounter).padStart(7, '0')}`;
  row.sys_created_on ||= ctx.at;
  row.sys_created_by ||= ctx.by;
  row.sys_updated_on ||= ctx.at;
  row.sys_updated_by ||= ctx.by;
  row.sys_mod_count ||= '0';
  ctx.journal.add(store.name, row.sys_id, notes, row.sys_updated_on, ctx.by);
  return row;
}

/** Applies a patch to a stored row: sys_updated_on = ctx.at, sys_mod_count + 1, journal entries. */
export function patchRow(store: TableStore, row: Row, patch: Record<string, unknown>, ctx: WriteContext): void {
  const { values, notes } = normalize(store, patch, ctx.via === 'http' ? SKIP.httpUpdate : SKIP.testUpdate);
  store.change(row, (r) => {
    Object.assign(r, values);
    r.sys_updated_on = ctx.at;
    r.sys_updated_by = ctx.via === 'test' && values.sys_updated_by ? values.sys_updated_by : ctx.by;
    r.sys_mod_count = String(Number(r.sys_mod_count ?? '0') + 1);
  });
  ctx.journal.add(store.name, row.sys_id, notes, ctx.at, ctx.by);
}
