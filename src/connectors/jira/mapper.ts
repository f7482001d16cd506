/**
 * Jira issues as we read them and what they become here. Shapes from the search responses in
 * ../shared/fixtures (jira_search_jql_v3_response_openapi.json, jira_search_v3_legacy_startAt_response_openapi.json)
 * and the webhook example (jira_webhook_issue_updated_docs.json): Cloud's REST v3 writes `description` as an
 * Atlassian Document Format tree, Data Center's v2 (and every webhook body) as a plain string; users carry an
 * `accountId` on Cloud and a `name`/`key` on Data Center; `emailAddress` is missing when the person's privacy
 * settings hide it.
 *
 * Timestamps look like `2021-01-17T12:34:00.000+0000`: the offset is the API user's profile time zone, so the
 * same instant reads differently for two users. Only the instant (epoch milliseconds) is used here.
 */
import { z } from 'zod';
import type { TaskPriority, TaskState } from '../../db/schema.ts';

/** `2021-01-17T12:34:00.000+0000` (also `+00:00` and `Z`). */
const JIRA_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})$/;

/** Epoch milliseconds of a Jira timestamp; NaN when it is not one. */
export function jiraTimeMs(value: string): number {
  if (!JIRA_TIME.test(value)) return Number.NaN;
  return Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
}

const jiraTime = z.string().refine((value) => Number.isFinite(jiraTimeMs(value)), { message: 'must be a Jira timestamp like 2021-01-17T12:34:00.000+0000' });

const user = z
  .object({
    accountId: z.string().optional(),
    /** Data Center's user name and key (Cloud has only accountId). */
    name: z.string().optional(),
    key: z.string().optional(),
    emailAddress: z.string().optional(),
    displayName: z.string().optional(),
  })
  .nullable()
  .optional();

export const issueFields = z.looseObject({
  summary: z.string().default(''),
  status: z.object({ name: z.string(), id: z.string().optional(), statusCategory: z.object({ key: z.string() }).optional() }),
  assignee: user,
  labels: z.array(z.string()).default([]),
  duedate: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date like 2026-12-31')
    .nullable()
    .optional(),
  priority: z.object({ name: z.string() }).nullable().optional(),
  issuetype: z.object({ name: z.string(), hierarchyLevel: z.number().optional() }).optional(),
  project: z.object({ key: z.string() }),
  updated: jiraTime,
  created: jiraTime.optional(),
  /** ADF (REST v3), a string (REST v2, webhooks) or null. */
  description: z.unknown().optional(),
  parent: z.object({ key: z.string() }).nullable().optional(),
  /** Attachments' metadata (ids as strings on Cloud, numbers in some answers). */
  attachment: z.array(z.object({ id: z.union([z.string(), z.number()]).transform(String) })).optional(),
  /** The comment page the issue carries (its first comments and the total). */
  comment: z.object({ total: z.number().optional(), comments: z.array(z.object({ id: z.string() })).optional() }).nullable().optional(),
});

export const issueRecord = z.object({
  id: z.string().regex(/^\d{1,18}$/, 'must be a numeric issue id'),
  key: z.string().regex(/^[A-Z][A-Z0-9_]*-\d+$/, 'must be an issue key like SEC-12'),
  fields: issueFields,
});
export type IssueRecord = z.infer<typeof issueRecord>;

/** The fields a sync asks for (plus the control field when one is configured). */
export const ISSUE_FIELDS = ['summary', 'status', 'assignee', 'labels', 'duedate', 'priority', 'issuetype', 'project', 'updated', 'created', 'description', 'parent', 'attachment', 'comment'] as const;

/** The text of an ADF document (paragraphs on lines of their own), or a v2 string as it is. */
export function plainText(description: unknown, limit = 4000): string {
  if (typeof description === 'string') return description.slice(0, limit);
  const out: string[] = [];
  const walk = (node: unknown, depth: number) => {
    if (depth > 64 || typeof node !== 'object' || node === null) return;
    const { type, text, content } = node as { type?: unknown; text?: unknown; content?: unknown };
    if (typeof text === 'string') out.push(text);
    if (type === 'hardBreak') out.push('\n');
    if (Array.isArray(content)) for (const child of content) walk(child, depth + 1);
    if (type === 'paragraph' || type === 'heading' || type === 'listItem') out.push('\n');
  };
  walk(description, 0);
  return out.join('').replace(/\n{3,}/g, '\n\n').trim().slice(0, limit);
}

/** A minimal ADF document of plain text (one paragraph per line), as Cloud's REST v3 requires for descriptions and comments. */
export function adf(text: string): { type: 'doc'; version: 1; content: unknown[] } {
  const paragraphs = text.split(/\n/).map((line) => (line ? { type: 'paragraph', content: [{ type: 'text', text: line }] } : { type: 'paragraph', content: [] }));
  return { type: 'doc', version: 1, content: paragraphs.length ? paragraphs : [{ type: 'paragraph', content: [] }] };
}

/** Who is assigned, as the fields that identify a person (Cloud: accountId; Data Center: name). */
export function assigneeOf(record: IssueRecord): { accountId: string | null; email: string | null; name: string | null } | null {
  const person = record.fields.assignee;
  if (!person) return null;
  return { accountId: person.accountId ?? person.key ?? person.name ?? null, email: person.emailAddress?.toLowerCase() ?? null, name: person.displayName ?? person.name ?? null };
}

/** The control ids an issue names: labels matching the configured pattern, and the configured field's value(s). */
export function controlIdsOf(record: IssueRecord, config: { labelPattern: RegExp | undefined; field: string | undefined }): string[] {
  const ids = new Set<string>();
  if (config.labelPattern) {
    for (const label of record.fields.labels) {
      const match = config.labelPattern.exec(label);
      if (match) ids.add((match[1] ?? match[0]).toUpperCase());
    }
  }
  if (config.field) {
    const value = (record.fields as Record<string, unknown>)[config.field];
    for (const item of Array.isArray(value) ? value : [value]) {
      const text = typeof item === 'string' ? item : typeof item === 'object' && item !== null ? ((item as { value?: unknown }).value ?? (item as { name?: unknown }).name) : undefined;
      if (typeof text === 'string' && text.trim()) ids.add(text.trim().toUpperCase());
    }
  }
  return [...ids].sort();
}

/** What of an issue matters here: hashed by the ledger (`updated` is not: a touch that changes nothing is no change). */
export function issueContent(record: IssueRecord): Record<string, unknown> {
  const { fields } = record;
  const assignee = assigneeOf(record);
  return {
    key: record.key,
    summary: fields.summary,
    status: fields.status.name,
    statusCategory: fields.status.statusCategory?.key ?? null,
    assignee,
    labels: [...fields.labels].sort(),
    duedate: fields.duedate ?? null,
    priority: fields.priority?.name ?? null,
    issuetype: fields.issuetype?.name ?? null,
    project: fields.project.key,
    parent: fields.parent?.key ?? null,
    description: plainText(fields.description),
    // A new comment or attachment is a change: its issue's extras are fetched (./extras.ts).
    attachments: (fields.attachment ?? []).map((file) => file.id).sort(),
    comments: { total: fields.comment?.total ?? fields.comment?.comments?.length ?? 0, last: fields.comment?.comments?.at(-1)?.id ?? null },
  };
}

/** Status category → task state, unless the project's mapping names the status (or its category) otherwise. */
export const DEFAULT_STATE_BY_CATEGORY: Readonly<Record<string, TaskState>> = { new: 'open', indeterminate: 'in_progress', done: 'done' };
export const REMEDIATION_STATES = ['open', 'in_progress', 'done', 'cancelled'] as const satisfies readonly TaskState[];

export function stateOf(record: IssueRecord, mapping: Readonly<Record<string, Readonly<Record<string, (typeof REMEDIATION_STATES)[number]>>>>): TaskState {
  const project = mapping[record.fields.project.key] ?? {};
  const fallback = mapping['*'] ?? {};
  const status = record.fields.status.name;
  const category = record.fields.status.statusCategory?.key ?? 'indeterminate';
  return project[status] ?? project[category] ?? fallback[status] ?? fallback[category] ?? DEFAULT_STATE_BY_CATEGORY[category] ?? 'in_progress';
}

export function priorityOf(record: IssueRecord): TaskPriority {
  const name = record.fields.priority?.name?.toLowerCase() ?? '';
  if (name === 'highest' || name === 'high' || name === 'critical' || name === 'blocker') return 'high';
  if (name === 'low' || name === 'lowest' || name === 'minor' || name === 'trivial') return 'low';
  return 'normal';
}

/** The task link of an issue: `jira:<instance name>:issue:<issue id>` (ids are stable; keys change when an issue moves). */
export const issueTarget = (instanceName: string, issueId: string) => `jira:${instanceName}:issue:${issueId}`;
export const issueUrl = (settings: { baseUrl: string }, key: string) => `${settings.baseUrl.replace(/\/+$/, '')}/browse/${key}`;

/** The issue's position in the sync order: (updated, id). */
export function positionOf(record: { id: string; fields: { updated: string } }): { updatedMs: number; id: number } {
  return { updatedMs: jiraTimeMs(record.fields.updated), id: Number(record.id) };
}
