/**
 * One ServiceNow table in memory: its rows, the columns seen so far, its reference fields, and an index that lets
 * the Table API page through 200,000 rows without a scan-and-sort per request.
 *
 * Rows live in a Map (insertion order: the answer order without ORDERBY) and in an array kept sorted by
 * (sys_updated_on, sys_id), maintained by binary-search insertion and removal. A query that is a plain conjunction
 * ordered by sys_updated_on[, sys_id] (or by sys_id under one `sys_updated_on=` value), in one direction, or `^NQ`
 * blocks of such ranges that meet (the keyset continuation), is answered from that array: its sys_updated_on / sys_id conditions become a binary-searched range and the other conditions
 * filter the range. Anything else falls back to filter + stable sort. Ties on sys_updated_on come in sys_id order
 * on the fast path (ServiceNow leaves that order unspecified).
 */
import { REFERENCE_FIELDS } from './fixtures.ts';
import { type Condition, type ParsedQuery, matchCondition, matches, orderComparator } from './query.ts';
import type { SnRecord } from './types.ts';

export type Row = { sys_id: string; sys_updated_on: string; [field: string]: string };
/** How a reference field is written on the wire: its sys_id, `{ link, value }`, or `{ display_value, link, value }`. */
export type WireReferences = 'value' | 'link' | 'display';

const MAX = '\uffff';
const NUMERIC = /^-?\d{1,15}(\.\d+)?$/;
const cmpKey = (r: Row, u: string, id: string): number =>
  r.sys_updated_on < u ? -1 : r.sys_updated_on > u ? 1 : r.sys_id < id ? -1 : r.sys_id > id ? 1 : 0;
const rowGet = (r: Record<string, string>, f: string): string => r[f] ?? '';

export class TableStore {
  readonly name: string;
  readonly byId = new Map<string, Row>();
  private readonly sorted: Row[] = [];
  private readonly columns: string[] = [];
  private readonly columnSet = new Set<string>();
  /** field -> referenced table (defaults, plus tables named by `{ link }` values written to this table). */
  readonly refs = new Map<string, string>(REFERENCE_FIELDS);
  numberCounter = 0;

  constructor(name: string) {
    this.name = name;
  }

  has(field: string): boolean {
    return this.columnSet.has(field);
  }
  addColumns(row: Record<string, string>): void {
    for (const key in row) {
      if (!this.columnSet.has(key)) {
        this.columnSet.add(key);
        this.columns.push(key);
      }
    }
  }

  /** First index whose (sys_updated_on, sys_id) is > (u, id) when strict, else >= (u, id). */
  private bound(u: string, id: string, strict: boolean): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = cmpKey(this.sorted[mid]!, u, id);
      if (c < 0 || (strict && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  add(row: Row): void {
    if (this.byId.has(row.sys_id)) throw new Error(`fake ServiceNow: ${this.name} already has sys_id ${row.sys_id}`);
    this.byId.set(row.sys_id, row);
    this.addColumns(row);
    this.sorted.splice(this.bound(row.sys_updated_on, row.sys_id, false), 0, row);
  }
  /** Bulk add: one sort at the end instead of one splice per row. */
  addMany(rows: Row[]): void {
    for (const row of rows) {
      if (this.byId.has(row.sys_id)) throw new Error(`fake ServiceNow: ${this.name} already has sys_id ${row.sys_id}`);
      this.byId.set(row.sys_id, row);
      this.addColumns(row);
      this.sorted.push(row);
    }
    this.sorted.sort((a, b) => cmpKey(a, b.sys_updated_on, b.sys_id));
  }
  /** Applies `change` to a row, keeping the sorted index right when the change moves its key. */
  change(row: Row, change: (r: Row) => void): void {
    this.unindex(row);
    change(row);
    this.addColumns(row);
    this.sorted.splice(this.bound(row.sys_updated_on, row.sys_id, false), 0, row);
  }
  remove(row: Row): void {
    this.unindex(row);
    this.byId.delete(row.sys_id);
  }
  private unindex(row: Row): void {
    const at = this.bound(row.sys_updated_on, row.sys_id, false);
    if (this.sorted[at] === row) this.sorted.splice(at, 1);
  }

  /** Matching rows: `total` (for X-Total-Count) and the page [offset, offset + limit). */
  select(q: ParsedQuery, offset: number, limit: number): { total: number; rows: Row[] } {
    const range = this.plan(q);
    if (!range) {
      const found = [...this.byId.values()].filter((r) => matches(q, (f) => rowGet(r, f)));
      if (q.orderBy.length) found.sort(orderComparator(q.orderBy, rowGet));
      return { total: found.length, rows: found.slice(offset, offset + limit) };
    }
    const { lo, hi, residual, desc } = range;
    const at = (i: number): Row => this.sorted[desc ? hi - 1 - i : lo + i]!;
    const size = Math.max(0, hi - lo);
    const rows: Row[] = [];
    if (residual.length === 0) {
      for (let i = offset; i < Math.min(size, offset + limit); i++) rows.push(at(i));
      return { total: size, rows };
    }
    let total = 0;
    for (let i = 0; i < size; i++) {
      const r = at(i);
      if (!residual.every((c) => matchCondition(c, (f) => rowGet(r, f)))) continue;
      if (total >= offset && total < offset + limit) rows.push(r);
      total++;
    }
    return { total, rows };
  }

  /**
   * The index range answering `q`, or undefined when it needs the fallback. Several `^NQ` blocks are answered
   * from the index when each is a plain range and together they cover one contiguous stretch of it: the keyset
   * continuation `sys_updated_on=T^sys_id>S^NQsys_updated_on>T^ORDERBYsys_updated_on^ORDERBYsys_id` is one.
   */
  private plan(q: ParsedQuery): { lo: number; hi: number; residual: Condition[]; desc: boolean } | undefined {
    if (q.blocks.length <= 1) return this.planBlock(q.blocks[0], q);
    const ranges = q.blocks.map((block) => this.planBlock(block, q));
    if (ranges.some((range) => !range || range.residual.length > 0)) return undefined;
    const sorted = (ranges as NonNullable<(typeof ranges)[number]>[]).filter((range) => range.hi > range.lo).sort((a, b) => a.lo - b.lo);
    if (sorted.length === 0) return ranges[0];
    let { lo, hi } = sorted[0]!;
    for (const range of sorted.slice(1)) {
      if (range.lo > hi) return undefined; // a gap: not one stretch
      hi = Math.max(hi, range.hi);
      lo = Math.min(lo, range.lo);
    }
    return { lo, hi, residual: [], desc: sorted[0]!.desc };
  }

  private planBlock(block: ParsedQuery['blocks'][number] | undefined, q: ParsedQuery): { lo: number; hi: number; residual: Condition[]; desc: boolean } | undefined {
    const first = q.orderBy[0];
    if (!block || !first || block.some((g) => g.length !== 1)) return undefined;
    const desc = first.desc;
    if (q.orderBy.some((o) => o.desc !== desc)) return undefined;
    const conditions = block.map((g) => g[0]!);
    const rangeable = (c: Condition): boolean => ['=', '>', '>=', '<', '<='].includes(c.op) && c.value !== 'NULL' && !NUMERIC.test(c.value);
    const fixed = conditions.find((c) => c.field === 'sys_updated_on' && c.op === '=' && rangeable(c))?.value;
    const order = q.orderBy.map((o) => o.field).join(',');
    if (order !== 'sys_updated_on' && order !== 'sys_updated_on,sys_id' && !(order === 'sys_id' && fixed !== undefined)) return undefined;
    let lo = 0;
    let hi = this.sorted.length;
    const residual: Condition[] = [];
    for (const c of conditions) {
      const onUpdated = c.field === 'sys_updated_on' && rangeable(c);
      const onId = c.field === 'sys_id' && fixed !== undefined && rangeable(c);
      if (!onUpdated && !onId) {
        residual.push(c);
        continue;
      }
      // Bounds on the (sys_updated_on, sys_id) key: a sys_updated_on value spans ids '' .. MAX; a sys_id under a
      // fixed sys_updated_on is one point of the key.
      const [u, idLow, idHigh] = onUpdated ? [c.value, '', MAX] : [fixed ?? '', c.value, c.value];
      if (c.op === '=' || c.op === '>=' || c.op === '>') lo = Math.max(lo, c.op === '>' ? this.bound(u, idHigh, true) : this.bound(u, idLow, false));
      if (c.op === '=' || c.op === '<=' || c.op === '<') hi = Math.min(hi, c.op === '<' ? this.bound(u, idLow, false) : this.bound(u, idHigh, true));
    }
    return { lo, hi: Math.max(lo, hi), residual, desc };
  }

  /**
   * A row in the Table API's shape; `fields` is sysparm_fields (unknown names are ignored, as documented).
   * References (non-empty) as `references` says: the sys_id (`value`), `{ link, value }` (`link`), or
   * `{ display_value, link, value }` (`display`, with `displayOf` naming the referenced record).
   */
  toWire(row: Row, base: string, references: WireReferences, fields?: readonly string[], displayOf?: (table: string, sysId: string) => string): SnRecord {
    const out: SnRecord = {};
    for (const field of fields ?? this.columns) {
      if (!this.columnSet.has(field)) continue;
      const value = row[field] ?? '';
      const table = this.refs.get(field);
      if (table === undefined || value === '' || references === 'value') {
        out[field] = value;
        continue;
      }
      const link = `${base}/api/now/table/${table}/${value}`;
      out[field] = references === 'link' ? { link, value } : { display_value: displayOf?.(table, value) ?? value, link, value };
    }
    return out;
  }
}
