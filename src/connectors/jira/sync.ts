/**
 * Pulling Jira issues, incrementally and without loss or repeats:
 *
 *   <scope> AND updated >= <epoch ms> ORDER BY updated ASC, id ASC
 *
 * - The bound is an unquoted number: epoch milliseconds, the same instant for every Jira user. A quoted
 *   `"yyyy/MM/dd HH:mm"` is read in the searching user's profile time zone and has minute precision, which is
 *   how other connectors lost or repeated issues (jira-onetrust.md A2).
 * - The checkpoint is the last stored record's `(updated, id)`, never the clock: Jira's search index lags its
 *   writes, so "now" could pass issues not yet searchable. Ordering by id within one `updated` keeps issues that
 *   share a timestamp (a bulk edit: a thousand in one minute) in one total order.
 * - One run pages with Cloud's `nextPageToken` (enhanced search, `/rest/api/3/search/jql`), or Data Center's
 *   `startAt` (`/rest/api/2/search`), to the end. Each page is stored with its checkpoint in one transaction by
 *   the runner (src/connectors/sdk/sync.ts).
 * - A new run starts `overlapSeconds` (10 minutes by default) before its checkpoint, for issues the index showed
 *   late; re-read issues hash the same and cost nothing. A run resumed after a crash or a rate limit starts at
 *   its own checkpoint and drops what it already stored: issues at or before that `(updated, id)`.
 * - Reconciliation lists ids only (`fields=id`), ascending by id, and asks again for the ones that seem gone.
 */
import { type PullStep, defineModel } from '../sdk/contract.ts';
import { z } from 'zod';
import type { UpstreamFailure } from '../sdk/http-client.ts';
import type { JiraClient, JiraSettings } from './client.ts';
import { applyIssues, issuesGone, staleTaskMessages } from './tasks.ts';
import { ISSUE_FIELDS, type IssueRecord, issueContent, issueRecord, jiraTimeMs, positionOf } from './mapper.ts';

export const issueCursor = z.object({ updatedMs: z.number().int().nonnegative(), id: z.number().int().nonnegative() });
export type IssueCursor = z.infer<typeof issueCursor>;

/** JQL string literal: quotes and backslashes escaped. */
const quote = (value: string) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** The issues an instance syncs: its projects, and its filter when it has one. */
export function scopeJql(settings: Pick<JiraSettings, 'projectKeys' | 'jqlFilter'>): string {
  const projects = `project in (${settings.projectKeys.map(quote).join(', ')})`;
  return settings.jqlFilter ? `${projects} AND (${settings.jqlFilter})` : projects;
}

export function incrementalJql(settings: Pick<JiraSettings, 'projectKeys' | 'jqlFilter'>, fromMs: number | undefined): string {
  return `${scopeJql(settings)}${fromMs === undefined ? '' : ` AND updated >= ${Math.max(0, Math.floor(fromMs))}`} ORDER BY updated ASC, id ASC`;
}

const after = (a: IssueCursor, b: IssueCursor) => a.updatedMs > b.updatedMs || (a.updatedMs === b.updatedMs && a.id > b.id);

export function issueFieldsFor(settings: Pick<JiraSettings, 'controlField'>): string[] {
  return settings.controlField ? [...ISSUE_FIELDS, settings.controlField] : [...ISSUE_FIELDS];
}

export async function* pullIssues(input: { client: JiraClient; settings: JiraSettings; cursor: IssueCursor | null; resumed: boolean; signal: AbortSignal }): AsyncIterable<PullStep<IssueCursor>> {
  const { client, settings } = input;
  const from = input.cursor === null ? undefined : input.resumed ? input.cursor.updatedMs : input.cursor.updatedMs - settings.overlapSeconds * 1000;
  const jql = incrementalJql(settings, from);
  const fields = issueFieldsFor(settings);
  let cursor = input.cursor;
  let nextPageToken: string | undefined;
  let startAt = 0;
  while (!input.signal.aborted) {
    const answer = await client.search({ jql, fields, maxResults: settings.pageSize, nextPageToken, startAt });
    if (!answer.ok) {
      yield answer;
      return;
    }
    const page = answer.value.body;
    let records = page.issues;
    let last: IssueCursor | undefined;
    for (const record of records) {
      const position = readPosition(record);
      if (position && (!last || after(position, last))) last = position;
    }
    if (input.resumed && input.cursor) {
      // Already stored by this run before it stopped.
      const stored = input.cursor;
      records = records.filter((record) => {
        const position = readPosition(record);
        return !position || after(position, stored);
      });
    }
    if (last && (!cursor || after(last, cursor))) cursor = last;
    if (page.issues.length > 0 && !last) {
      // No record of the page has a usable position: the next checkpoint could not be trusted.
      yield { ok: false, failure: invalidResponse(answer.value.status, answer.value.attempts) };
      return;
    }
    if (page.issues.length > 0 && cursor) yield { ok: true, page: { records, cursor, requests: answer.value.attempts } };
    if (page.isLast || page.issues.length === 0) return;
    if (client.deployment === 'cloud') {
      if (!page.nextPageToken) return;
      nextPageToken = page.nextPageToken;
    } else {
      startAt += page.issues.length;
    }
  }
}

function readPosition(record: unknown): IssueCursor | undefined {
  const candidate = record as { id?: unknown; fields?: { updated?: unknown } } | null;
  if (typeof candidate?.id !== 'string' || !/^\d{1,15}$/.test(candidate.id) || typeof candidate.fields?.updated !== 'string') return undefined;
  const updatedMs = jiraTimeMs(candidate.fields.updated);
  return Number.isFinite(updatedMs) ? { updatedMs, id: Number(candidate.id) } : undefined;
}

const invalidResponse = (status: number, attempts: number): UpstreamFailure => ({ kind: 'http', code: 'invalid_response', status, body: undefined, attempts });

/** Every issue id in scope, ascending in byte order (as the ledger compares them), in pages of up to 5,000 ids. */
export async function* listIssueIds(input: { client: JiraClient; settings: JiraSettings; signal: AbortSignal }): AsyncIterable<{ ok: true; ids: string[] } | { ok: false; failure: UpstreamFailure }> {
  // Jira orders ids numerically; the ledger compares text. Collected whole (ids only: 100,000 ids are a few MB)
  // and sorted as text before they are handed on.
  const ids: string[] = [];
  let nextPageToken: string | undefined;
  let startAt = 0;
  const jql = `${scopeJql(input.settings)} ORDER BY id ASC`;
  for (;;) {
    if (input.signal.aborted) {
      yield { ok: false, failure: { kind: 'network', code: 'interrupted', attempts: 0 } };
      return;
    }
    const answer = await input.client.search({ jql, fields: ['id'], maxResults: input.client.deployment === 'cloud' ? 5000 : 1000, nextPageToken, startAt });
    if (!answer.ok) {
      yield answer;
      return;
    }
    for (const issue of answer.value.body.issues) {
      const id = (issue as { id?: unknown }).id;
      if (typeof id === 'string' && /^\d{1,18}$/.test(id)) ids.push(id);
    }
    const page = answer.value.body;
    if (page.isLast || page.issues.length === 0) break;
    if (input.client.deployment === 'cloud') {
      if (!page.nextPageToken) break;
      nextPageToken = page.nextPageToken;
    } else startAt += page.issues.length;
  }
  ids.sort();
  for (let index = 0; index < ids.length; index += 10_000) yield { ok: true, ids: ids.slice(index, index + 10_000) };
}


/**
 * Issues by id, read from Jira's database rather than its search index (Cloud: `POST /issue/bulkfetch`, 100 at
 * a time; Data Center, whose index is near real time: a search `id in (…)`). Issues outside the instance's
 * scope (another project, or not matching its filter) are neither returned nor missing: a webhook may name
 * them, the sync does not own them. `missing`: ids Jira did not return (deleted, or no longer visible to us).
 */
export async function fetchIssues(input: { client: JiraClient; settings: JiraSettings; ids: readonly string[] }): Promise<{ ok: true; records: unknown[]; missing: string[] } | { ok: false; failure: UpstreamFailure }> {
  const { client, settings } = input;
  const ids = input.ids.filter((id) => /^\d{1,18}$/.test(id));
  if (ids.length === 0) return { ok: true, records: [], missing: [] };
  const fields = issueFieldsFor(settings);
  let issues: unknown[];
  if (client.deployment === 'cloud') {
    const answer = await client.send<{ issues?: unknown }>({ method: 'POST', path: '/issue/bulkfetch', json: { issueIdsOrKeys: ids, fields }, idempotent: true });
    if (!answer.ok) return answer;
    if (!Array.isArray(answer.value.body?.issues)) return { ok: false, failure: invalidResponse(answer.value.status, answer.value.attempts) };
    issues = answer.value.body.issues;
  } else {
    const answer = await client.search({ jql: `id in (${ids.join(', ')}) ORDER BY id ASC`, fields, maxResults: ids.length });
    if (!answer.ok) return answer;
    issues = answer.value.body.issues;
  }
  const returned = new Set(issues.map((issue) => (issue as { id?: unknown }).id).filter((id): id is string => typeof id === 'string'));
  const missing = ids.filter((id) => !returned.has(id));
  const projectOf = (issue: unknown) => (issue as { fields?: { project?: { key?: unknown } } }).fields?.project?.key;
  let records = issues.filter((issue) => {
    const key = projectOf(issue);
    return typeof key === 'string' && settings.projectKeys.includes(key);
  });
  if (settings.jqlFilter && records.length > 0) {
    // The filter is JQL: Jira decides which of them match it.
    const inScope = await client.search({ jql: `id in (${records.map((issue) => (issue as { id: string }).id).join(', ')}) AND (${settings.jqlFilter}) ORDER BY id ASC`, fields: ['id'], maxResults: records.length });
    if (!inScope.ok) return inScope;
    const matching = new Set(inScope.value.body.issues.map((issue) => (issue as { id?: unknown }).id));
    records = records.filter((issue) => matching.has((issue as { id: string }).id));
  }
  return { ok: true, records, missing };
}

export const issues = defineModel<JiraSettings, JiraClient, IssueRecord, IssueCursor>({
  name: 'issue',
  record: issueRecord,
  cursor: issueCursor,
  schedule: { everySeconds: 300, jitterSeconds: 30 },
  externalId: (record) => record.id,
  label: (record) => record.key,
  updatedAt: (record) => new Date(positionOf(record).updatedMs).toISOString(),
  content: issueContent,
  pull: ({ client, instance, cursor, resumed, signal }) => pullIssues({ client, settings: instance.settings, cursor, resumed, signal }),
  listIds: ({ client, instance, signal }) => listIssueIds({ client, settings: instance.settings, signal }),
  fetchByIds: ({ client, instance, ids }) => fetchIssues({ client, settings: instance.settings, ids }),
  apply: applyIssues,
  onMissing: issuesGone,
  staleSubjects: staleTaskMessages,
});
