/**
 * ServiceNow encoded queries (`sysparm_query`): parsing and evaluation for the fake.
 *
 * Grammar and operators from the docs (ServiceNow/ServiceNowDocs @ cb48b5c, c_TableAPI.md "sysparm_query",
 * platform-user-interface/c_EncodedQueryStrings.md and r_OpAvailableFiltersQueries.md):
 * - `^` joins conditions with AND; `^OR` ORs a condition with the one before it and binds tighter than `^`
 *   (`a^b^ORc` is a AND (b OR c)); `^NQ` starts a new query ORed with the previous block.
 * - Operators: = != > >= < <= IN, NOT IN, STARTSWITH, ENDSWITH, LIKE, NOT LIKE, ISEMPTY, ISNOTEMPTY, ANYTHING,
 *   EMPTYSTRING, BETWEEN (a@b), SAMEAS, NSAMEAS; `ORDERBYfield` / `ORDERBYDESCfield`, several, in order.
 * - "Column names, operators, and values are case-sensitive": every comparison here is.
 * - "If part of a query is invalid, such as an invalid field name, the instance ignores the invalid part" (unless
 *   glide.invalid_query.returns_no_rows is true): terms with an unknown field or no known operator are dropped and
 *   reported in `ignored`. Dot-walked fields (`caller_id.name`) are not modelled and count as unknown.
 * - Empty values behave like SQL NULL (ServiceNow KB0715430): `!=`, `NOT IN`, `NOT LIKE`, `SAMEAS`, `NSAMEAS` and the
 *   range operators never match an empty field; `field=NULL` / `field!=NULL` test emptiness (KB0745159).
 * - `javascript:gs.dateGenerate('2026-01-01','00:00:00')` is read as '2026-01-01 00:00:00'; other scripts are invalid.
 * Values compare as numbers when both sides are short decimal numbers (integer fields such as priority), else as
 * strings; 'YYYY-MM-DD HH:mm:ss' dates sort lexically, so sys_updated_on comparisons are string comparisons.
 */

export type Op =
  | '=' | '!=' | '>' | '>=' | '<' | '<='
  | 'IN' | 'NOT IN' | 'STARTSWITH' | 'ENDSWITH' | 'LIKE' | 'NOT LIKE'
  | 'ISEMPTY' | 'ISNOTEMPTY' | 'ANYTHING' | 'EMPTYSTRING' | 'BETWEEN' | 'SAMEAS' | 'NSAMEAS';

export interface Condition {
  field: string;
  op: Op;
  value: string;
}
export interface OrderBy {
  field: string;
  desc: boolean;
}
/** OR of blocks (`^NQ`); a block is an AND of groups (`^`); a group is an OR of conditions (`^OR`). */
export interface ParsedQuery {
  blocks: Condition[][][];
  orderBy: OrderBy[];
  /** Terms ServiceNow would ignore. */
  ignored: string[];
}

/** Longest first, so `NOT IN` wins over `IN`, `>=` over `>`, `ISNOTEMPTY` over nothing else that prefixes it. */
const OPERATORS: readonly Op[] = [
  'ISNOTEMPTY', 'ISEMPTY', 'EMPTYSTRING', 'ANYTHING', 'NOT IN', 'NOT LIKE', 'STARTSWITH', 'ENDSWITH', 'BETWEEN',
  'NSAMEAS', 'SAMEAS', 'LIKE', 'IN', '!=', '>=', '<=', '=', '>', '<',
];
const UNARY = new Set<Op>(['ISNOTEMPTY', 'ISEMPTY', 'EMPTYSTRING', 'ANYTHING']);
const DATE_GENERATE = /^javascript:gs\.dateGenerate\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)$/;

function parseCondition(term: string, isField: (f: string) => boolean): Condition | undefined {
  const field = /^[a-z0-9_.]+/.exec(term)?.[0];
  if (field === undefined || !isField(field)) return undefined;
  const rest = term.slice(field.length);
  const op = OPERATORS.find((o) => rest.startsWith(o));
  if (op === undefined) return undefined;
  let value = rest.slice(op.length);
  if (UNARY.has(op) && value !== '') return undefined;
  if (value.startsWith('javascript:')) {
    const date = DATE_GENERATE.exec(value);
    if (!date) return undefined;
    value = `${date[1] ?? ''} ${date[2] ?? ''}`;
  }
  if ((op === 'SAMEAS' || op === 'NSAMEAS') && !isField(value)) return undefined;
  return { field, op, value };
}

export function parseQuery(query: string, isField: (field: string) => boolean): ParsedQuery {
  const blocks: Condition[][][] = [[]];
  const orderBy: OrderBy[] = [];
  const ignored: string[] = [];
  let group: Condition[] | undefined; // the group a following `^OR` joins (none after an ignored term)
  for (const raw of query.split('^')) {
    let term = raw;
    if (term === '' || term === 'EQ') continue; // `^EQ` ends queries copied from a list filter
    const orderDesc = term.startsWith('ORDERBYDESC');
    if (orderDesc || term.startsWith('ORDERBY')) {
      const field = term.slice(orderDesc ? 11 : 7);
      if (isField(field)) orderBy.push({ field, desc: orderDesc });
      else ignored.push(raw);
      continue;
    }
    if (term.startsWith('NQ')) {
      blocks.push([]);
      group = undefined;
      term = term.slice(2);
      if (term === '') continue;
    }
    const or = term.startsWith('OR');
    const condition = parseCondition(or ? term.slice(2) : term, isField);
    if (!condition) {
      ignored.push(raw);
      if (!or) group = undefined;
      continue;
    }
    if (or && group) group.push(condition);
    else blocks[blocks.length - 1]?.push((group = [condition]));
  }
  return { blocks, orderBy, ignored };
}

const NUMERIC = /^-?\d{1,15}(\.\d+)?$/;
/** Numbers as numbers when both sides are short decimals, else plain string order (dates sort lexically). */
export function compareValues(a: string, b: string): number {
  if (NUMERIC.test(a) && NUMERIC.test(b)) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

export function matchCondition(c: Condition, get: (field: string) => string): boolean {
  const v = get(c.field);
  const isNull = c.value === 'NULL';
  switch (c.op) {
    case '=': return isNull ? v === '' : v === c.value;
    case '!=': return isNull ? v !== '' : v !== '' && v !== c.value;
    case '>': return v !== '' && compareValues(v, c.value) > 0;
    case '>=': return v !== '' && compareValues(v, c.value) >= 0;
    case '<': return v !== '' && compareValues(v, c.value) < 0;
    case '<=': return v !== '' && compareValues(v, c.value) <= 0;
    case 'IN': return c.value.split(',').includes(v);
    case 'NOT IN': return v !== '' && !c.value.split(',').includes(v);
    case 'STARTSWITH': return v.startsWith(c.value);
    case 'ENDSWITH': return v.endsWith(c.value);
    case 'LIKE': return v.includes(c.value);
    case 'NOT LIKE': return v !== '' && !v.includes(c.value);
    case 'ISEMPTY': case 'EMPTYSTRING': return v === '';
    case 'ISNOTEMPTY': return v !== '';
    case 'ANYTHING': return true;
    case 'BETWEEN': {
      const [lo = '', hi = ''] = c.value.split('@');
      return v !== '' && compareValues(v, lo) >= 0 && compareValues(v, hi) <= 0;
    }
    case 'SAMEAS': return v !== '' && v === get(c.value);
    case 'NSAMEAS': { const o = get(c.value); return v !== '' && o !== '' && v !== o; }
  }
}

export function matches(q: ParsedQuery, get: (field: string) => string): boolean {
  return q.blocks.some((block) => block.every((group) => group.some((c) => matchCondition(c, get))));
}

/** The ORDERBY comparator; records without ORDERBY keep their order (Array.prototype.sort is stable). */
export function orderComparator(orderBy: readonly OrderBy[], get: (r: Record<string, string>, f: string) => string) {
  return (a: Record<string, string>, b: Record<string, string>): number => {
    for (const { field, desc } of orderBy) {
      const d = compareValues(get(a, field), get(b, field));
      if (d !== 0) return desc ? -d : d;
    }
    return 0;
  };
}
