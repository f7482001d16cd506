/**
 * The JQL subset the fake Jira understands: a tokenizer, a recursive-descent parser and a compiler to a predicate
 * plus the ranges a search can binary-search on.
 *
 * Subset (field names case-insensitive; keywords too):
 * - `project = X` / `!=` / `in (X, Y)` / `not in` (key, id or name)
 * - `updated|created` (`updatedDate`, `createdDate`) `= != > >= < <=` with an unquoted integer (epoch ms; with
 *   `epochPrecision: 'minute'` floored to its minute), a quoted or bare `yyyy/MM/dd HH:mm`, `yyyy-MM-dd HH:mm`,
 *   `yyyy/MM/dd`, `yyyy-MM-dd` read in the user's zone (notes A2), a relative `-5m` `-2h` `-1d` `-1w`, or `now()`.
 *   A quoted date is the instant its minute (or day) starts; `=` matches that whole minute (or day). GUESS: how
 *   Jira compares `<=` against a minute-precision value is not documented; here it is the minute's first instant.
 * - `id`, `issuekey`, `key` with `= != > >= < <= in, not in` (ids as numbers; a key compares by its issue's id; a key
 *   the user cannot see → 400 "An issue with key 'X' does not exist for field 'key'." as Jira answers)
 * - `labels = x` / `!=` / `in (…)` / `not in` / `is [not] EMPTY`
 * - `status`, `statusCategory` (names, keys new/indeterminate/done, ids), `issuetype` / `type`, `parent`
 * - `assignee`, `reporter`: accountId (or DC name), `currentUser()`, `is [not] EMPTY`; `priority` (name or id)
 * - `summary ~ "x"`, `description ~`, `text ~` (and `!~`): a case-insensitive substring, an approximation of Jira's
 *   word search
 * - other real fields (resolution, sprint, component, …) → 400 saying the fake does not model them
 * - `AND`, `OR`, `NOT`, parentheses; `ORDER BY updated|created|id|key|issuekey [ASC|DESC], …` (≤ 7 fields)
 * As in Jira, `!=` and `not in` never match an empty field (`assignee != x` leaves unassigned issues out).
 * Errors are JqlError(message) → 400 `{"errorMessages":[message],"errors":{}}`. The messages are Jira's where they
 * are widely quoted ("Field 'x' does not exist or you do not have permission to view it.", "The value 'X' does not
 * exist for the field 'project'.", "Error in the JQL Query: …" with line/character, the date-format sentence);
 * the rest are worded like them (GUESS).
 */
import type { JiraStore, StoredIssue } from './store.ts';
import { statusByName } from './store.ts';
import { ISSUE_TYPES, PRIORITIES, STATUS_CATEGORIES } from './fixtures.ts';
import { zonedToUtc } from './time.ts';

export class JqlError extends Error {}

type Token = { type: 'word' | 'string' | 'op' | '(' | ')' | ',' | 'eof'; text: string; pos: number };
type Value = { kind: 'string' | 'word' | 'func' | 'empty'; text: string; pos: number };
type Op = '=' | '!=' | '>' | '>=' | '<' | '<=' | '~' | '!~' | 'in' | 'not in' | 'is' | 'is not';
export type Node =
  | { kind: 'and' | 'or'; items: Node[] }
  | { kind: 'not'; item: Node }
  | { kind: 'clause'; field: string; fieldPos: number; op: Op; values: Value[] };
export type SortField = 'updated' | 'created' | 'id';
export interface ParsedJql {
  where: Node | undefined;
  orderBy: { field: SortField; desc: boolean }[];
}

const where = (pos: number): string => `(line 1, character ${pos + 1})`;
const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'is', 'empty', 'null', 'order', 'by', 'asc', 'desc']);

function tokenize(jql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < jql.length) {
    const c = jql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      tokens.push({ type: c, text: c, pos: i++ });
      continue;
    }
    if (c === '"' || c === "'") {
      let text = '';
      let j = i + 1;
      for (; j < jql.length && jql[j] !== c; j++) text += jql[j] === '\\' && j + 1 < jql.length ? jql[++j] : jql[j];
      if (j >= jql.length) throw new JqlError(`Error in the JQL Query: The quoted string '${text}' has not been completed. ${where(i)}`);
      tokens.push({ type: 'string', text, pos: i });
      i = j + 1;
      continue;
    }
    const op = /^(!=|!~|>=|<=|=|>|<|~)/.exec(jql.slice(i))?.[0];
    if (op) {
      tokens.push({ type: 'op', text: op, pos: i });
      i += op.length;
      continue;
    }
    const word = /^[^\s"'(),=!<>~]+/.exec(jql.slice(i))?.[0];
    if (!word) throw new JqlError(`Error in the JQL Query: The character '${c}' is a reserved JQL character. ${where(i)}`);
    tokens.push({ type: 'word', text: word, pos: i });
    i += word.length;
  }
  tokens.push({ type: 'eof', text: 'EOF', pos: jql.length });
  return tokens;
}

class Parser {
  private i = 0;
  private readonly tokens: Token[];
  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }
  private peek(): Token {
    return this.tokens[this.i]!;
  }
  private next(): Token {
    return this.tokens[this.i++]!;
  }
  private isWord(word: string, t = this.peek()): boolean {
    return t.type === 'word' && t.text.toLowerCase() === word;
  }

  query(): ParsedJql {
    const whereNode = this.isWord('order') || this.peek().type === 'eof' ? undefined : this.or();
    const orderBy: ParsedJql['orderBy'] = [];
    if (this.isWord('order')) {
      this.next();
      if (!this.isWord('by')) throw new JqlError(`Error in the JQL Query: Expecting 'BY' but got '${this.peek().text}'. ${where(this.peek().pos)}`);
      this.next();
      for (;;) {
        const t = this.next();
        if (t.type !== 'word' && t.type !== 'string') throw new JqlError(`Error in the JQL Query: Expecting a field name but got '${t.text}'. ${where(t.pos)}`);
        let desc = false;
        if (this.isWord('asc') || this.isWord('desc')) desc = this.next().text.toLowerCase() === 'desc';
        orderBy.push({ field: sortField(t.text), desc });
        if (this.peek().type !== ',') break;
        this.next();
      }
      if (orderBy.length > 7) throw new JqlError('The ORDER BY clause can contain a maximum of 7 fields.');
    }
    const end = this.peek();
    if (end.type !== 'eof') {
      const expected = whereNode ? "either 'OR' or 'AND'" : 'a field name';
      throw new JqlError(`Error in the JQL Query: Expecting ${expected} but got '${end.text}'. ${where(end.pos)}`);
    }
    return { where: whereNode, orderBy };
  }

  private or(): Node {
    const items = [this.and()];
    while (this.isWord('or')) {
      this.next();
      items.push(this.and());
    }
    return items.length === 1 ? items[0]! : { kind: 'or', items };
  }
  private and(): Node {
    const items = [this.unary()];
    while (this.isWord('and')) {
      this.next();
      items.push(this.unary());
    }
    return items.length === 1 ? items[0]! : { kind: 'and', items };
  }
  private unary(): Node {
    if (this.isWord('not')) {
      this.next();
      return { kind: 'not', item: this.unary() };
    }
    if (this.peek().type === '(') {
      this.next();
      const inner = this.or();
      const close = this.next();
      if (close.type !== ')') throw new JqlError(close.type === 'eof' ? "Error in the JQL Query: Expecting ')' before the end of the query." : `Error in the JQL Query: Expecting ')' but got '${close.text}'. ${where(close.pos)}`);
      return inner;
    }
    return this.clause();
  }
  private clause(): Node {
    const f = this.next();
    if ((f.type !== 'word' && f.type !== 'string') || (f.type === 'word' && KEYWORDS.has(f.text.toLowerCase()))) {
      throw new JqlError(`Error in the JQL Query: Expecting a field name but got '${f.text}'. ${where(f.pos)}`);
    }
    const o = this.next();
    let op: Op;
    if (o.type === 'op') op = o.text as Op;
    else if (this.isWord('in', o)) op = 'in';
    else if (this.isWord('not', o) && this.isWord('in')) {
      this.next();
      op = 'not in';
    } else if (this.isWord('is', o)) {
      op = 'is';
      if (this.isWord('not')) {
        this.next();
        op = 'is not';
      }
    } else {
      throw new JqlError(
        `Error in the JQL Query: Expecting operator but got '${o.text}'. The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'. ${where(o.pos)}`,
      );
    }
    let values: Value[];
    if (op === 'in' || op === 'not in') {
      const open = this.next();
      if (open.type !== '(') throw new JqlError(`Error in the JQL Query: Expecting '(' but got '${open.text}'. ${where(open.pos)}`);
      values = [this.value()];
      while (this.peek().type === ',') {
        this.next();
        values.push(this.value());
      }
      const close = this.next();
      if (close.type !== ')') throw new JqlError(close.type === 'eof' ? "Error in the JQL Query: Expecting ')' before the end of the query." : `Error in the JQL Query: Expecting ')' but got '${close.text}'. ${where(close.pos)}`);
    } else {
      values = [this.value()];
      if ((op === 'is' || op === 'is not') && values[0]!.kind !== 'empty') {
        throw new JqlError(`Error in the JQL Query: Expecting 'EMPTY' or 'NULL' but got '${values[0]!.text}'. ${where(values[0]!.pos)}`);
      }
    }
    return { kind: 'clause', field: f.text, fieldPos: f.pos, op, values };
  }
  private value(): Value {
    const t = this.next();
    if (t.type === 'string') return { kind: 'string', text: t.text, pos: t.pos };
    if (t.type === 'word' && (this.isWord('empty', t) || this.isWord('null', t))) return { kind: 'empty', text: t.text, pos: t.pos };
    if (t.type === 'word' && !KEYWORDS.has(t.text.toLowerCase())) {
      if (this.peek().type === '(') {
        this.next();
        while (this.peek().type !== ')' && this.peek().type !== 'eof') this.next();
        if (this.next().type !== ')') throw new JqlError("Error in the JQL Query: Expecting ')' before the end of the query.");
        return { kind: 'func', text: t.text, pos: t.pos };
      }
      return { kind: 'word', text: t.text, pos: t.pos };
    }
    throw new JqlError(`Error in the JQL Query: Expecting either a value, list or function but got '${t.text}'. ${where(t.pos)}`);
  }
}

const FIELD_ALIASES: Readonly<Record<string, string>> = {
  project: 'project', updated: 'updated', updateddate: 'updated', created: 'created', createddate: 'created', id: 'id',
  issuekey: 'key', key: 'key', labels: 'labels', status: 'status', statuscategory: 'statusCategory', issuetype: 'issuetype',
  type: 'issuetype', assignee: 'assignee', reporter: 'reporter', parent: 'parent', priority: 'priority', summary: 'summary',
  description: 'description', text: 'text',
};
/** Real Jira fields outside the subset: named as such, so a test knows the fake (not the query) is the limit. */
const UNMODELLED = new Set(['resolution', 'resolved', 'resolutiondate', 'component', 'fixversion', 'affectedversion', 'sprint', 'epic link',
  'watcher', 'watchers', 'creator', 'due', 'duedate', 'environment', 'comment', 'worklogdate', 'timespent', 'votes', 'filter', 'level', 'cf']);
const unknownField = (name: string): JqlError => (UNMODELLED.has(name.toLowerCase().replace(/\[.*$/, ''))
  ? new JqlError(`The fake Jira does not model the JQL field '${name}' (see test/fakes/jira/jql.ts for the subset).`)
  : new JqlError(`Field '${name}' does not exist or you do not have permission to view it.`));

function sortField(name: string): SortField {
  const field = FIELD_ALIASES[name.toLowerCase()];
  if (field === undefined) throw unknownField(name);
  if (field === 'updated' || field === 'created' || field === 'id') return field;
  if (field === 'key') return 'id';
  throw new JqlError(`The fake Jira cannot sort by '${name}' (ORDER BY updated, created, id or key).`);
}

export function parseJql(jql: string): ParsedJql {
  return new Parser(tokenize(jql)).query();
}

export interface JqlContext {
  store: JiraStore;
  zone: string;
  nowMs: number;
  epochMinute: boolean;
  /** accountId of the caller (currentUser()). */
  currentUser: string;
}
/** [lo, hi) on a number line; Infinity where unbounded. */
export type Range = [number, number];
export interface CompiledJql {
  match: (issue: StoredIssue) => boolean;
  /** Conservative bounds implied by the top-level conjunction: every match lies inside them. */
  updated: Range;
  num: Range;
}

const FULL: Range = [-Infinity, Infinity];
const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const DATE = /^(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$/;

/** A date value as the interval it names: [start, end). */
function dateInterval(field: string, v: Value, ctx: JqlContext): Range {
  const invalid = (): JqlError => new JqlError(
    `Date value '${v.text}' for field '${field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.`,
  );
  if (v.kind === 'func') {
    if (v.text.toLowerCase() === 'now') return [ctx.nowMs, ctx.nowMs + 1];
    throw new JqlError(`Unable to find JQL function '${v.text}()'.`);
  }
  if (v.kind === 'word' && /^-?\d+$/.test(v.text)) {
    const ms = Number(v.text);
    const at = ctx.epochMinute ? Math.floor(ms / 60_000) * 60_000 : ms;
    return [at, at + 1];
  }
  const rel = /^([-+]?)(\d+)([mhdw])$/.exec(v.text);
  if (rel) {
    const at = ctx.nowMs + (rel[1] === '-' ? -1 : 1) * Number(rel[2]) * (UNIT_MS[rel[3]!] ?? 0);
    return [at, at + 1];
  }
  const d = DATE.exec(v.text.trim());
  if (!d) throw invalid();
  const [year, month, day] = [Number(d[1]), Number(d[2]), Number(d[3])];
  if (month < 1 || month > 12 || day < 1 || day > 31) throw invalid();
  if (d[4] === undefined) {
    const start = zonedToUtc(ctx.zone, year, month, day);
    return [start, zonedToUtc(ctx.zone, year, month, day + 1)];
  }
  const [hour, minute] = [Number(d[4]), Number(d[5])];
  if (hour > 23 || minute > 59) throw invalid();
  const start = zonedToUtc(ctx.zone, year, month, day, hour, minute);
  return [start, start + 60_000];
}

/** A comparison of a number against an interval value, and the bounds it implies. */
function compare(op: Op, [start, end]: Range): { test: (x: number) => boolean; range: Range } {
  switch (op) {
    case '=': return { test: (x) => x >= start && x < end, range: [start, end] };
    case '!=': return { test: (x) => x < start || x >= end, range: FULL };
    case '>': return { test: (x) => x > start, range: [start + 1, Infinity] };
    case '>=': return { test: (x) => x >= start, range: [start, Infinity] };
    case '<': return { test: (x) => x < start, range: [-Infinity, start] };
    default: return { test: (x) => x <= start, range: [-Infinity, start + 1] };
  }
}

type Leaf = { match: (i: StoredIssue) => boolean; updated?: Range; num?: Range };

function setClause<T>(
  field: string,
  op: Op,
  values: Value[],
  resolve: (v: Value) => T,
  get: (i: StoredIssue) => readonly T[],
): Leaf {
  const unsupported = (): JqlError => new JqlError(`The operator '${op}' is not supported by the '${field}' field.`);
  if (op === 'is' || op === 'is not') {
    const empty = op === 'is';
    return { match: (i) => (get(i).length === 0) === empty };
  }
  if (!['=', '!=', 'in', 'not in'].includes(op)) throw unsupported();
  if (values.some((v) => v.kind === 'empty')) {
    // `field = EMPTY` / `field != EMPTY` as Jira reads them.
    const empty = op === '=' || op === 'in';
    return { match: (i) => (get(i).length === 0) === empty };
  }
  const wanted = new Set(values.map(resolve));
  if (op === '=' || op === 'in') return { match: (i) => get(i).some((x) => wanted.has(x)) };
  return { match: (i) => { const have = get(i); return have.length > 0 && !have.some((x) => wanted.has(x)); } };
}

function leaf(node: Extract<Node, { kind: 'clause' }>, ctx: JqlContext): Leaf {
  const name = node.field;
  const field = FIELD_ALIASES[name.toLowerCase()];
  if (field === undefined) throw unknownField(name);
  const { op, values } = node;
  const noValue = (v: Value): JqlError => new JqlError(`The value '${v.text}' does not exist for the field '${name}'.`);
  const text = (v: Value): string => v.text;
  switch (field) {
    case 'project':
      return setClause(name, op, values, (v) => ctx.store.project(text(v))?.id ?? (() => { throw noValue(v); })(), (i) => [i.project.id]);
    case 'labels':
      return setClause(name, op, values, text, (i) => i.labels);
    case 'priority':
      return setClause(name, op, values, (v) => PRIORITIES.find((p) => p.name.toLowerCase() === text(v).toLowerCase() || p.id === text(v))?.name ?? (() => { throw noValue(v); })(), (i) => [i.priority]);
    case 'summary':
    case 'description':
    case 'text': {
      // GUESS-level approximation: Jira's text search is word-based with stemming; here a case-insensitive substring.
      if ((op !== '~' && op !== '!~') || values.length !== 1 || values[0]!.kind === 'empty') throw new JqlError(`The operator '${op}' is not supported by the '${name}' field.`);
      const needle = values[0]!.text.replace(/[*?]/g, '').toLowerCase();
      const haystack = (i: StoredIssue): string =>
        (field === 'summary' ? i.summary : field === 'description' ? (i.description ?? '') : `${i.summary}\n${i.description ?? ''}`).toLowerCase();
      return op === '~' ? { match: (i) => haystack(i).includes(needle) } : { match: (i) => !haystack(i).includes(needle) };
    }
    case 'status':
      return setClause(name, op, values, (v) => statusByName(text(v))?.id ?? (() => { throw noValue(v); })(), (i) => [i.status.id]);
    case 'statusCategory':
      return setClause(name, op, values, (v) => {
        const t = text(v).toLowerCase();
        const cat = Object.values(STATUS_CATEGORIES).find((c) => c.key === t || c.name.toLowerCase() === t || String(c.id) === t);
        if (!cat) throw noValue(v);
        return cat.key;
      }, (i) => [i.status.category]);
    case 'issuetype':
      return setClause(name, op, values, (v) => {
        const t = ISSUE_TYPES.find((x) => x.name.toLowerCase() === text(v).toLowerCase() || x.id === text(v));
        if (!t) throw noValue(v);
        return t.name;
      }, (i) => [i.issuetype]);
    case 'assignee':
    case 'reporter': {
      const resolve = (v: Value): string => {
        if (v.kind === 'func') {
          if (v.text.toLowerCase() === 'currentuser') return ctx.currentUser;
          throw new JqlError(`Unable to find JQL function '${v.text}()'.`);
        }
        const user = ctx.store.user(text(v)) ?? [...ctx.store.users.values()].find((u) => u.emailAddress !== null && u.emailAddress.toLowerCase() === text(v).toLowerCase());
        if (!user) throw noValue(v);
        return user.accountId;
      };
      return setClause(name, op, values, resolve, (i) => {
        const who = field === 'assignee' ? i.assignee : i.reporter;
        return who === null ? [] : [who];
      });
    }
    case 'updated':
    case 'created': {
      if (op === 'is' || op === 'is not') return { match: () => op === 'is not' };
      if (!['=', '!=', '>', '>=', '<', '<='].includes(op) || values.length !== 1) throw new JqlError(`The operator '${op}' is not supported by the '${name}' field.`);
      const { test, range } = compare(op, dateInterval(name, values[0]!, ctx));
      const get = field === 'updated' ? (i: StoredIssue): number => i.updated : (i: StoredIssue): number => i.created;
      return field === 'updated' ? { match: (i) => test(get(i)), updated: range } : { match: (i) => test(get(i)) };
    }
    case 'id':
    case 'key':
    case 'parent': {
      const resolve = (v: Value): number => {
        if (/^\d+$/.test(v.text)) return Number(v.text);
        const issue = ctx.store.visible(v.text);
        if (!issue) throw new JqlError(`An issue with key '${v.text}' does not exist for field '${name}'.`);
        return issue.num;
      };
      if (field === 'parent') return setClause(name, op, values, resolve, (i) => (i.parentNum === null ? [] : [i.parentNum]));
      if (op === 'in' || op === 'not in' || op === '=' || op === '!=') {
        if (values.some((v) => v.kind === 'empty')) return { match: () => op === '!=' || op === 'not in' };
        const nums = values.map(resolve);
        const wanted = new Set(nums);
        const positive = op === 'in' || op === '=';
        return positive
          ? { match: (i) => wanted.has(i.num), num: [Math.min(...nums), Math.max(...nums) + 1] }
          : { match: (i) => !wanted.has(i.num) };
      }
      if (op === '~' || op === '!~' || op === 'is' || op === 'is not') throw new JqlError(`The operator '${op}' is not supported by the '${name}' field.`);
      const n = resolve(values[0]!);
      const { test, range } = compare(op, [n, n + 1]);
      return { match: (i) => test(i.num), num: range };
    }
    default:
      throw unknownField(name);
  }
}

const intersect = (a: Range, b: Range): Range => [Math.max(a[0], b[0]), Math.min(a[1], b[1])];

function build(node: Node, ctx: JqlContext): Leaf {
  switch (node.kind) {
    case 'clause':
      return leaf(node, ctx);
    case 'not': {
      const inner = build(node.item, ctx);
      return { match: (i) => !inner.match(i) };
    }
    case 'or': {
      const items = node.items.map((n) => build(n, ctx));
      return { match: (i) => items.some((x) => x.match(i)) };
    }
    case 'and': {
      const items = node.items.map((n) => build(n, ctx));
      let updated = FULL;
      let num = FULL;
      for (const x of items) {
        if (x.updated) updated = intersect(updated, x.updated);
        if (x.num) num = intersect(num, x.num);
      }
      return { match: (i) => items.every((x) => x.match(i)), updated, num };
    }
  }
}

/** Compiles the WHERE part (validating every value against the store); undefined WHERE matches everything. */
export function compileJql(parsed: ParsedJql, ctx: JqlContext): CompiledJql {
  if (!parsed.where) return { match: () => true, updated: FULL, num: FULL };
  const built = build(parsed.where, ctx);
  return { match: built.match, updated: built.updated ?? FULL, num: built.num ?? FULL };
}
