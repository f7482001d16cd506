/**
 * Search for the fake Jira: the enhanced search (`/rest/api/{3,2}/search/jql`, Cloud), the legacy offset search
 * (`/rest/api/2/search`, Data Center), `search/approximate-count` and `issue/bulkfetch`.
 *
 * Enhanced search (notes A1; fixtures jira_search_jql_v3_*): GET with query parameters or POST with the same as
 * JSON; `jql` must be bounded (no WHERE → 400, raycast#21425's body); `fields` defaults to `id`; `maxResults`
 * defaults to 50, must be 1-5000 (backlot measured the range), and is capped at `maxResultsCap` (100) unless only
 * id/key are asked (5000); `properties` ≤ 5; `expand`, `fieldsByKeys`, `failFast`, `reconcileIssues` accepted (the
 * fake is strongly consistent, so reconciliation changes nothing). Answer `{issues, isLast, nextPageToken?}`, no
 * `total`, no token on the last page.
 * The token is a keyset position (a search-after): base64url JSON of the JQL's hash, the sort values of the last
 * issue served and when it was minted. Pages are exact while issues change (an issue changed between pages moves
 * in the order and is served where it now sorts); a token with another JQL, or older than 7 days, or unreadable
 * → 400 (wordings GUESSED, see ./fixtures.ts).
 * Ordering: ORDER BY updated/created/id/key, then id ascending; without ORDER BY, `key DESC` (GUESS). `updated` and
 * `id`/`key` orders are read from the store's sorted arrays inside the JQL's bounds (O(log n + page)); `created`
 * falls back to filter and sort.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiContext } from './context.ts';
import {
  BODY_UNPARSEABLE,
  ERROR_BAD_PAGE_TOKEN,
  ERROR_MAX_RESULTS,
  ERROR_TOKEN_OTHER_JQL,
  ERROR_UNBOUNDED_JQL,
  errorBody,
} from './fixtures.ts';
import { type CompiledJql, JqlError, type ParsedJql, type SortField, compileJql, parseJql } from './jql.ts';
import { type FieldSelection, issueJson, parseFields } from './render.ts';
import type { ScanOrder, StoredIssue } from './store.ts';
import { type Answer, isObject, json, parseJson, show } from './wire.ts';

const TOKEN_TTL_MS = 7 * 86_400_000;
type Order = { field: SortField; desc: boolean }[];
type Params = Record<string, unknown>;

/** Query parameters or a JSON body as one bag, or the 400 for a body Jira cannot read (backlot's measured texts). */
function requestParams(ctx: ApiContext, lists: readonly string[]): { params: Params } | { refused: Answer } {
  if (ctx.method === 'POST') {
    const body = parseJson(ctx.body);
    if (body === 'invalid') return { refused: json(400, BODY_UNPARSEABLE) };
    if (body === undefined) return { params: {} };
    if (!isObject(body)) return { refused: json(400, { errorMessages: ['Invalid request payload. Refer to the REST API documentation and try again.'] }) };
    return { params: body };
  }
  const out: Params = {};
  for (const [key, value] of ctx.query) {
    if (lists.includes(key)) out[key] = [...((out[key] as string[] | undefined) ?? []), ...value.split(',')];
    else out[key] ??= value;
  }
  return { params: out };
}
const stringList = (v: unknown): string[] | undefined =>
  Array.isArray(v) ? v.map(show) : typeof v === 'string' ? v.split(',') : v === undefined ? undefined : [show(v)];

/** An integer parameter; `problem` answers the RFC 7807 400 Jira gives a GET value it cannot convert (backlot). */
function intParam(ctx: ApiContext, params: Params, name: string, fallback: number): number | Answer {
  const raw = params[name];
  if (raw === undefined || raw === null || raw === '') return fallback;
  const n = typeof raw === 'number' ? raw : Number(show(raw).trim());
  if (Number.isInteger(n)) return n;
  return {
    status: 400, contentType: 'application/problem+json;charset=UTF-8',
    body: { type: 'about:blank', title: 'Bad Request', status: 400, detail: `Failed to convert '${name}' with value: '${show(raw)}'`, instance: `/rest/api/${ctx.render.version}${ctx.rest}` },
  };
}

function normalizeOrder(parsed: ParsedJql): Order {
  const order: Order = [];
  for (const o of parsed.orderBy.length ? parsed.orderBy : [{ field: 'id' as const, desc: true }]) {
    if (order.some((x) => x.field === o.field)) continue;
    order.push(o);
    if (o.field === 'id') return order;
  }
  order.push({ field: 'id', desc: false });
  return order;
}
const sortValue = (issue: StoredIssue, field: SortField): number => (field === 'updated' ? issue.updated : field === 'created' ? issue.created : issue.num);
const sortKey = (issue: StoredIssue, order: Order): number[] => order.map((o) => sortValue(issue, o.field));
function compareKeys(a: number[], b: number[], order: Order): number {
  for (let i = 0; i < order.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return order[i]!.desc ? -d : d;
  }
  return 0;
}

/** Matching visible issues in `order`, after the keyset position `after`, lazily. */
function* ordered(ctx: ApiContext, compiled: CompiledJql, order: Order, after: number[] | undefined): Generator<StoredIssue> {
  const [first, second] = order;
  let scan: { order: ScanOrder; range: [number, number] } | undefined;
  if (first?.field === 'id') scan = { order: { index: 'num', primaryDesc: first.desc, numDesc: first.desc }, range: compiled.num };
  else if (first?.field === 'updated' && second?.field === 'id') scan = { order: { index: 'updated', primaryDesc: first.desc, numDesc: second.desc }, range: compiled.updated };
  if (scan) {
    const position = after && (scan.order.index === 'num' ? { primary: after[0]!, num: after[0]! } : { primary: after[0]!, num: after[1]! });
    for (const issue of ctx.store.scan(scan.order, scan.range[0], scan.range[1], position)) {
      if (!issue.hidden && compiled.match(issue)) yield issue;
    }
    return;
  }
  const all = ctx.store.all().filter((i) => !i.hidden && compiled.match(i));
  const keys = new Map(all.map((i) => [i, sortKey(i, order)]));
  all.sort((a, b) => compareKeys(keys.get(a)!, keys.get(b)!, order));
  let lo = 0;
  if (after) {
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKeys(keys.get(all[mid]!)!, after, order) <= 0) lo = mid + 1;
      else hi = mid;
    }
  }
  for (let i = lo; i < all.length; i++) yield all[i]!;
}

/** Parses and compiles `jql`, or answers Jira's 400. */
function compile(ctx: ApiContext, jql: string): { parsed: ParsedJql; compiled: CompiledJql } | Answer {
  try {
    const parsed = parseJql(jql);
    const compiled = compileJql(parsed, {
      store: ctx.store, zone: ctx.settings.timeZone, nowMs: ctx.nowMs, epochMinute: ctx.settings.epochMinute, currentUser: ctx.caller.accountId,
    });
    return { parsed, compiled };
  } catch (err) {
    if (err instanceof JqlError) return json(400, errorBody([err.message]));
    throw err;
  }
}
const jqlHash = (jql: string): string => createHash('sha256').update(jql.trim()).digest('base64url').slice(0, 16);

function properties(params: Params): string[] | Answer {
  const keys = (stringList(params.properties) ?? []).map((s) => s.trim()).filter((s) => s !== '');
  // GUESS: the limit is documented ("up to 5"), the refusal's wording is not.
  return keys.length > 5 ? json(400, errorBody(['The number of issue properties requested exceeds the maximum of 5.'])) : keys;
}

/** GET/POST search/jql. */
export async function enhancedSearch(ctx: ApiContext): Promise<Answer> {
  const read = requestParams(ctx, ['fields', 'properties', 'reconcileIssues']);
  if ('refused' in read) return read.refused;
  const { params } = read;
  const rawToken = typeof params.nextPageToken === 'string' && params.nextPageToken !== '' ? params.nextPageToken : undefined;
  let token: { h: string; k: number[]; t: number } | undefined;
  if (rawToken !== undefined) {
    try {
      token = JSON.parse(Buffer.from(rawToken, 'base64url').toString('utf8')) as typeof token;
    } catch {
      token = undefined;
    }
    if (!token || typeof token.h !== 'string' || !Array.isArray(token.k) || typeof token.t !== 'number') return json(400, ERROR_BAD_PAGE_TOKEN);
  }
  const maxResults = intParam(ctx, params, 'maxResults', 50);
  if (typeof maxResults !== 'number') return maxResults;
  if (maxResults < 1 || maxResults > 5000) return json(400, ERROR_MAX_RESULTS);
  const jql = typeof params.jql === 'string' ? params.jql : '';
  const props = properties(params);
  if (!Array.isArray(props)) return props;
  const compiledOr = compile(ctx, jql);
  if ('status' in compiledOr) return compiledOr;
  const { parsed, compiled } = compiledOr;
  if (!parsed.where) return json(400, ERROR_UNBOUNDED_JQL);
  if (token && token.h !== jqlHash(jql)) return json(400, ERROR_TOKEN_OTHER_JQL);
  if (token && ctx.nowMs - token.t > TOKEN_TTL_MS) return json(400, ERROR_BAD_PAGE_TOKEN);

  const sel = parseFields(stringList(params.fields), 'id');
  const limit = Math.min(maxResults, sel.idOrKeyOnly ? 5000 : ctx.settings.maxResultsCap);
  const order = normalizeOrder(parsed);
  const page: StoredIssue[] = [];
  let more = false;
  for (const issue of ordered(ctx, compiled, order, token?.k)) {
    if (page.length === limit) {
      more = true;
      break;
    }
    page.push(issue);
  }
  if (ctx.settings.pageLatencyMs > 0) await sleep(ctx.settings.pageLatencyMs);
  const last = page.at(-1);
  const next = more && last ? Buffer.from(JSON.stringify({ h: jqlHash(jql), k: sortKey(last, order), t: ctx.nowMs })).toString('base64url') : undefined;
  return json(200, {
    issues: page.map((i) => issueJson(i, sel, ctx.render, { properties: props })),
    isLast: !more,
    ...(next !== undefined ? { nextPageToken: next } : {}),
  });
}

/** GET/POST /rest/api/2/search on Data Center: offset paging with `total` (legacy fixture's envelope). */
export async function offsetSearch(ctx: ApiContext): Promise<Answer> {
  const read = requestParams(ctx, ['fields', 'properties']);
  if ('refused' in read) return read.refused;
  const { params } = read;
  const startAt = intParam(ctx, params, 'startAt', 0);
  if (typeof startAt !== 'number') return startAt;
  const maxResults = intParam(ctx, params, 'maxResults', 50);
  if (typeof maxResults !== 'number') return maxResults;
  const compiledOr = compile(ctx, typeof params.jql === 'string' ? params.jql : '');
  if ('status' in compiledOr) return compiledOr;
  const { parsed, compiled } = compiledOr;
  const sel: FieldSelection = parseFields(stringList(params.fields), '*navigable');
  // DC clamps maxResults to jira.search.views.default.max (1000 by default); negatives read as 0.
  const limit = Math.max(0, Math.min(maxResults, 1000));
  const from = Math.max(0, startAt);
  const page: StoredIssue[] = [];
  let total = 0;
  for (const issue of ordered(ctx, compiled, normalizeOrder(parsed), undefined)) {
    if (total >= from && page.length < limit) page.push(issue);
    total++;
  }
  if (ctx.settings.pageLatencyMs > 0) await sleep(ctx.settings.pageLatencyMs);
  return json(200, { expand: 'names,schema', startAt: from, maxResults: limit, total, issues: page.map((i) => issueJson(i, sel, ctx.render)) });
}

/** POST search/approximate-count `{jql}` → `{count}` (exact here). */
export function approximateCount(ctx: ApiContext): Answer {
  const body = parseJson(ctx.body);
  if (body === 'invalid') return json(400, BODY_UNPARSEABLE);
  const jql = isObject(body) && typeof body.jql === 'string' ? body.jql : '';
  const compiledOr = compile(ctx, jql);
  if ('status' in compiledOr) return compiledOr;
  if (!compiledOr.parsed.where) return json(400, ERROR_UNBOUNDED_JQL);
  let count = 0;
  for (const issue of ctx.store.all()) if (!issue.hidden && compiledOr.compiled.match(issue)) count++;
  return json(200, { count });
}

/** POST issue/bulkfetch: deleted and invisible issues are in neither list (notes A2). */
export function bulkFetch(ctx: ApiContext): Answer {
  const body = parseJson(ctx.body);
  if (body === 'invalid') return json(400, BODY_UNPARSEABLE);
  const ids = isObject(body) && Array.isArray(body.issueIdsOrKeys) ? body.issueIdsOrKeys.map(String) : undefined;
  // GUESS: the wordings of these two refusals.
  if (!ids || ids.length === 0) return json(400, errorBody([], { issueIdsOrKeys: 'issueIdsOrKeys must not be empty.' }));
  if (ids.length > 100) return json(400, errorBody(['The number of issues requested exceeds the maximum of 100.']));
  const props = properties(isObject(body) ? body : {});
  if (!Array.isArray(props)) return props;
  const sel = parseFields(stringList(isObject(body) ? body.fields : undefined), '*navigable');
  const issues: Record<string, unknown>[] = [];
  const issueErrors: { id: string; errorMessage: string }[] = [];
  const seen = new Set<string>();
  for (const idOrKey of ids) {
    if (!/^\d+$/.test(idOrKey) && !/^[A-Za-z][A-Za-z0-9_]*-\d+$/.test(idOrKey)) {
      issueErrors.push({ id: idOrKey, errorMessage: `Invalid issue id or key: ${idOrKey}` });
      continue;
    }
    const issue = ctx.store.visible(idOrKey);
    if (!issue || seen.has(issue.id)) continue;
    seen.add(issue.id);
    issues.push(issueJson(issue, sel, ctx.render, { properties: props }));
  }
  return json(200, { expand: '', issues, issueErrors });
}
