/**
 * Issue writes as Jira makes them, shared by the test-facing API (`createIssue`, `updateIssue`, `addComment`, …)
 * and the REST handlers: building a stored issue, applying a patch with its changelog, comments and attachments,
 * and the test-side view of an issue.
 *
 * Changelog items carry `{field, fieldtype, fieldId, from, fromString, to, toString}` like the webhook docs'
 * example (which predates `fieldId`; Cloud adds it): ids in from/to where the field has them (status, priority,
 * issue type, assignee accountId), display strings in fromString/toString, labels space-separated.
 */
import { ISSUE_TYPES, PRIORITIES, type StatusDef } from './fixtures.ts';
import { type JiraStore, type StoredComment, type StoredIssue, statusByName } from './store.ts';
import type { ChangelogItem, IssueInput, IssueTypeName, JiraIssueView, PriorityName } from './types.ts';

/** A validated change to an issue's fields. */
export interface IssuePatch {
  summary?: string;
  issuetype?: IssueTypeName;
  status?: StatusDef;
  assignee?: string | null;
  reporter?: string | null;
  labels?: string[];
  duedate?: string | null;
  priority?: PriorityName;
  description?: { text: string | null; adf?: unknown };
  parentNum?: number | null;
  customFields?: Record<string, unknown>;
}

const fail = (message: string): never => {
  throw new Error(`fake Jira: ${message}`);
};

/** A test-side patch (IssueInput names) as an IssuePatch; throws on values the site does not have. */
export function patchFromInput(store: JiraStore, input: Partial<IssueInput>): IssuePatch {
  const patch: IssuePatch = {};
  if (input.summary !== undefined) patch.summary = input.summary;
  if (input.issuetype !== undefined) patch.issuetype = ISSUE_TYPES.find((t) => t.name === input.issuetype)?.name ?? fail(`no issue type ${input.issuetype}`);
  if (input.status !== undefined) patch.status = statusByName(input.status) ?? fail(`no status ${input.status}`);
  if (input.assignee !== undefined) patch.assignee = input.assignee === null ? null : (store.user(input.assignee)?.accountId ?? fail(`no user ${input.assignee}`));
  if (input.reporter !== undefined) patch.reporter = input.reporter === null ? null : (store.user(input.reporter)?.accountId ?? fail(`no user ${input.reporter}`));
  if (input.labels !== undefined) patch.labels = [...input.labels];
  if (input.duedate !== undefined) patch.duedate = input.duedate;
  if (input.priority !== undefined) patch.priority = PRIORITIES.find((p) => p.name === input.priority)?.name ?? fail(`no priority ${input.priority}`);
  if (input.description !== undefined) patch.description = { text: input.description };
  if (input.parent !== undefined) patch.parentNum = store.get(input.parent)?.num ?? fail(`no parent issue ${input.parent}`);
  if (input.customFields !== undefined) patch.customFields = { ...input.customFields };
  return patch;
}

/** A new issue (not yet in the store): id and key allocated, defaults applied, `patch` on top. */
export function newIssue(store: JiraStore, projectKey: string, patch: IssuePatch, times: { created: number; updated: number }, reporter: string): StoredIssue {
  const project = store.project(projectKey) ?? fail(`no project ${projectKey}`);
  const { id, num, key } = store.allocate(project);
  for (const field of Object.keys(patch.customFields ?? {})) if (!store.customFields.has(field)) store.customFields.set(field, field);
  return {
    id, num, key, project,
    summary: patch.summary ?? '',
    issuetype: patch.issuetype ?? 'Task',
    status: patch.status ?? statusByName('To Do')!,
    assignee: patch.assignee ?? null,
    reporter: patch.reporter === undefined ? reporter : patch.reporter,
    labels: patch.labels ?? [],
    duedate: patch.duedate ?? null,
    priority: patch.priority ?? 'Medium',
    description: patch.description?.text ?? null,
    ...(patch.description?.adf !== undefined ? { descriptionAdf: patch.description.adf } : {}),
    parentNum: patch.parentNum ?? null,
    created: times.created,
    updated: times.updated,
    customFields: patch.customFields ?? {},
    properties: new Map(),
    remoteLinks: [],
    comments: [],
    attachments: [],
    transitions: [],
    changelog: [],
    writes: 0,
    writeTimes: [],
    hidden: false,
  };
}

const userName = (store: JiraStore, accountId: string | null): string | null => (accountId === null ? null : (store.user(accountId)?.displayName ?? accountId));
const item = (field: string, from: string | null, fromString: string | null, to: string | null, toString: string | null, fieldtype = 'jira', fieldId = field): ChangelogItem =>
  ({ field, fieldtype, fieldId, from, fromString, to, toString });
const text = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : JSON.stringify(v));

/** The changelog items `patch` makes on `issue` (fields whose value changes). */
export function changelogItems(store: JiraStore, issue: StoredIssue, patch: IssuePatch): ChangelogItem[] {
  const items: ChangelogItem[] = [];
  if (patch.summary !== undefined && patch.summary !== issue.summary) items.push(item('summary', null, issue.summary, null, patch.summary));
  if (patch.issuetype !== undefined && patch.issuetype !== issue.issuetype) {
    const id = (n: string): string | null => ISSUE_TYPES.find((t) => t.name === n)?.id ?? null;
    items.push(item('issuetype', id(issue.issuetype), issue.issuetype, id(patch.issuetype), patch.issuetype));
  }
  if (patch.status !== undefined && patch.status.id !== issue.status.id) items.push(item('status', issue.status.id, issue.status.name, patch.status.id, patch.status.name));
  if (patch.assignee !== undefined && patch.assignee !== issue.assignee) {
    items.push(item('assignee', issue.assignee, userName(store, issue.assignee), patch.assignee, userName(store, patch.assignee)));
  }
  if (patch.reporter !== undefined && patch.reporter !== issue.reporter) {
    items.push(item('reporter', issue.reporter, userName(store, issue.reporter), patch.reporter, userName(store, patch.reporter)));
  }
  if (patch.labels !== undefined && patch.labels.join(' ') !== issue.labels.join(' ')) items.push(item('labels', null, issue.labels.join(' '), null, patch.labels.join(' ')));
  if (patch.duedate !== undefined && patch.duedate !== issue.duedate) items.push(item('duedate', issue.duedate, issue.duedate, patch.duedate, patch.duedate));
  if (patch.priority !== undefined && patch.priority !== issue.priority) {
    const id = (n: string): string | null => PRIORITIES.find((p) => p.name === n)?.id ?? null;
    items.push(item('priority', id(issue.priority), issue.priority, id(patch.priority), patch.priority));
  }
  if (patch.description !== undefined && patch.description.text !== issue.description) items.push(item('description', null, issue.description, null, patch.description.text));
  if (patch.parentNum !== undefined && patch.parentNum !== issue.parentNum) {
    const key = (n: number | null): string | null => (n === null ? null : (store.issueByNum(n)?.key ?? null));
    items.push(item('IssueParentAssociation', issue.parentNum === null ? null : String(issue.parentNum), key(issue.parentNum), patch.parentNum === null ? null : String(patch.parentNum), key(patch.parentNum), 'jira', 'parent'));
  }
  for (const [field, value] of Object.entries(patch.customFields ?? {})) {
    const old = issue.customFields[field] ?? null;
    if (JSON.stringify(old) !== JSON.stringify(value)) items.push(item(store.customFields.get(field) ?? field, null, text(old), null, text(value), 'custom', field));
  }
  return items;
}

/** Applies `patch` at `at` by `by`: moves `updated`, records the changelog entry; returns its items. */
export function applyPatch(store: JiraStore, issue: StoredIssue, patch: IssuePatch, at: number, by: string, also?: (i: StoredIssue) => void): ChangelogItem[] {
  const items = changelogItems(store, issue, patch);
  for (const field of Object.keys(patch.customFields ?? {})) if (!store.customFields.has(field)) store.customFields.set(field, field);
  store.change(issue, (i) => {
    if (patch.summary !== undefined) i.summary = patch.summary;
    if (patch.issuetype !== undefined) i.issuetype = patch.issuetype;
    if (patch.status !== undefined) i.status = patch.status;
    if (patch.assignee !== undefined) i.assignee = patch.assignee;
    if (patch.reporter !== undefined) i.reporter = patch.reporter;
    if (patch.labels !== undefined) i.labels = [...patch.labels];
    if (patch.duedate !== undefined) i.duedate = patch.duedate;
    if (patch.priority !== undefined) i.priority = patch.priority;
    if (patch.description !== undefined) {
      i.description = patch.description.text;
      if (patch.description.adf !== undefined) i.descriptionAdf = patch.description.adf;
      else delete i.descriptionAdf;
    }
    if (patch.parentNum !== undefined) i.parentNum = patch.parentNum;
    if (patch.customFields !== undefined) Object.assign(i.customFields, patch.customFields);
    also?.(i);
    i.updated = at;
  });
  if (items.length) issue.changelog.push({ id: String(store.nextId()), author: by, created: at, items });
  return items;
}

export function addComment(store: JiraStore, issue: StoredIssue, body: { text: string; adf?: unknown }, at: number, by: string): StoredComment {
  const comment: StoredComment = { id: String(store.nextId()), body: body.text, ...(body.adf !== undefined ? { adf: body.adf } : {}), author: by, created: at, updated: at };
  issue.comments.push(comment);
  return comment;
}

const date = (ms: number): Date => new Date(ms);
export function viewOf(issue: StoredIssue, store: JiraStore): JiraIssueView {
  const parent = issue.parentNum === null ? undefined : store.issueByNum(issue.parentNum) ?? [...store.deleted.values()].find((d) => d.num === issue.parentNum);
  return {
    id: issue.id,
    key: issue.key,
    project: issue.project.key,
    summary: issue.summary,
    issuetype: issue.issuetype,
    status: issue.status.name,
    statusCategory: issue.status.category,
    assignee: issue.assignee,
    reporter: issue.reporter,
    labels: [...issue.labels],
    duedate: issue.duedate,
    priority: issue.priority,
    description: issue.description,
    ...(issue.descriptionAdf !== undefined ? { descriptionAdf: structuredClone(issue.descriptionAdf) } : {}),
    parent: parent?.key ?? null,
    created: date(issue.created),
    updated: date(issue.updated),
    customFields: structuredClone(issue.customFields),
    properties: Object.fromEntries([...issue.properties].map(([k, v]) => [k, structuredClone(v)])),
    remoteLinks: structuredClone(issue.remoteLinks),
    comments: issue.comments.map((c) => ({ id: c.id, body: c.body, ...(c.adf !== undefined ? { adf: structuredClone(c.adf) } : {}), author: c.author, created: date(c.created), updated: date(c.updated) })),
    attachments: issue.attachments.map((a) => ({ id: a.id, filename: a.filename, mimeType: a.mimeType, size: a.content.length, author: a.author, created: date(a.created) })),
    transitions: issue.transitions.map((t) => ({ ...t, at: date(t.at) })),
    changelog: issue.changelog.map((c) => ({ id: c.id, author: c.author, created: date(c.created), items: structuredClone(c.items) })),
    writeCount: issue.writes,
    hidden: issue.hidden,
  };
}
