/**
 * Jira's JSON shapes for what the fake holds: issues (v3 with ADF, v2 with strings), users, statuses, priorities,
 * issue types, projects, comments, attachments, the field list, and the `fields` parameter.
 *
 * Built from the fixtures (test/fixtures/jira/): the issue envelope `{expand, id, self, key, fields}` and the key
 * order of projects, comments and attachments follow the legacy search example (a real answer's order, where the
 * enhanced-search example is alphabetised); project avatar URLs and user avatar URLs follow both examples; the
 * `description` ADF document is the example's. Where the examples are loose this deviates, on purpose:
 * - attachment `id` is a string (the OpenAPI schema's type; the example writes a number), `content` is
 *   `<base>/rest/api/3/attachment/content/<id>` without the example's stray `/jira` prefix;
 * - `comment` is the page object `{comments, self, maxResults, total, startAt}` real answers carry (the examples
 *   show a bare array), each comment `{self, id, author, body, updateAuthor, created, updated, jsdPublic}`;
 * - `updated` is a timestamp (the example's `"updated": 1` is a placeholder).
 * Status, status category, priority, issue type and user objects are the shapes every Jira Cloud answer carries
 * (GUESS where a value is this site's own, e.g. issue type ids and icons).
 * Search with only `fields=id` (the enhanced search's default) answers `{"id": "…"}` per issue (GUESS from the
 * docs' "returns IDs only").
 */
import { ISSUE_TYPES, PRIORITIES, STATUS_CATEGORIES, type StatusDef } from './fixtures.ts';
import type { JiraStore, Project, StoredAttachment, StoredComment, StoredIssue } from './store.ts';
import { formatJiraTime } from './time.ts';
import type { IssueTypeName, JiraUser, PriorityName } from './types.ts';

export interface RenderContext {
  /** Origin of self links: the site URL, or the gateway's `<apiUrl>/ex/jira/<cloudId>`. */
  base: string;
  version: '2' | '3';
  zone: string;
  mode: 'cloud' | 'dc';
  store: JiraStore;
}
type Json = Record<string, unknown>;

const AVATAR_CDN = 'https://avatar-management--avatars.server-location.prod.public.atl-paas.net/initials';
export function avatarUrls(displayName: string): Json {
  const initials = displayName.split(/\s+/).map((w) => w[0] ?? '').join('').slice(0, 2).toUpperCase() || 'U';
  const at = (size: number): string => `${AVATAR_CDN}/${initials}-5.png?size=${size}&s=${size}`;
  return { '48x48': at(48), '24x24': at(24), '16x16': at(16), '32x32': at(32) };
}

export function userJson(user: JiraUser, ctx: RenderContext): Json {
  const email = user.emailAddress === null ? {} : { emailAddress: user.emailAddress };
  if (ctx.mode === 'dc') {
    return {
      self: `${ctx.base}/rest/api/2/user?username=${encodeURIComponent(user.name)}`, key: user.key, name: user.name, ...email,
      avatarUrls: avatarUrls(user.displayName), displayName: user.displayName, active: user.active, timeZone: user.timeZone,
    };
  }
  return {
    self: `${ctx.base}/rest/api/${ctx.version}/user?accountId=${encodeURIComponent(user.accountId)}`, accountId: user.accountId, ...email,
    avatarUrls: avatarUrls(user.displayName), displayName: user.displayName, active: user.active, timeZone: user.timeZone, accountType: user.accountType,
  };
}
const userOrNull = (accountId: string | null, ctx: RenderContext): Json | null => {
  const user = accountId === null ? undefined : ctx.store.user(accountId);
  return user ? userJson(user, ctx) : null;
};

export function statusJson(status: StatusDef, ctx: RenderContext): Json {
  const cat = STATUS_CATEGORIES[status.category];
  return {
    self: `${ctx.base}/rest/api/${ctx.version}/status/${status.id}`, description: '', iconUrl: `${ctx.base}/`, name: status.name, id: status.id,
    statusCategory: { self: `${ctx.base}/rest/api/${ctx.version}/statuscategory/${cat.id}`, id: cat.id, key: cat.key, colorName: cat.colorName, name: cat.name },
  };
}
export function priorityJson(name: PriorityName, ctx: RenderContext): Json {
  const p = PRIORITIES.find((x) => x.name === name) ?? PRIORITIES[2]!;
  return { self: `${ctx.base}/rest/api/${ctx.version}/priority/${p.id}`, iconUrl: `${ctx.base}/images/icons/priorities/${p.icon}`, name: p.name, id: p.id };
}
export function issueTypeJson(name: IssueTypeName, ctx: RenderContext): Json {
  const t = ISSUE_TYPES.find((x) => x.name === name) ?? ISSUE_TYPES[1]!;
  return {
    self: `${ctx.base}/rest/api/${ctx.version}/issuetype/${t.id}`, id: t.id, description: t.description,
    iconUrl: `${ctx.base}/rest/api/2/universal_avatar/view/type/issuetype/avatar/${t.avatarId}?size=medium`, name: t.name,
    subtask: t.subtask, avatarId: t.avatarId, hierarchyLevel: t.hierarchyLevel,
  };
}
export function projectJson(project: Project, ctx: RenderContext): Json {
  const avatar = (size: string): string => `${ctx.base}/secure/projectavatar?size=${size}&pid=${project.id}`;
  return {
    self: `${ctx.base}/rest/api/${ctx.version}/project/${project.id}`, id: project.id, key: project.key, name: project.name, projectTypeKey: 'software',
    simplified: false, avatarUrls: { '48x48': avatar('large'), '24x24': avatar('small'), '16x16': avatar('xsmall'), '32x32': avatar('medium') },
  };
}

/** The minimal ADF document of the notes (A3) around plain text; paragraphs per blank-line-separated block. */
export function adfDocument(text: string): Json {
  const blocks = text.split(/\n{2,}/);
  return { type: 'doc', version: 1, content: blocks.map((b) => ({ type: 'paragraph', content: b === '' ? [] : [{ type: 'text', text: b }] })) };
}
/** The text of an ADF document (text nodes, paragraphs joined by blank lines). */
export function adfText(doc: unknown): string {
  const walk = (node: unknown): string => {
    if (typeof node !== 'object' || node === null) return '';
    const n = node as { type?: unknown; text?: unknown; content?: unknown };
    if (n.type === 'text' && typeof n.text === 'string') return n.text;
    if (n.type === 'hardBreak') return '\n';
    const children = Array.isArray(n.content) ? n.content.map(walk) : [];
    return n.type === 'doc' ? children.join('\n\n') : children.join('');
  };
  return walk(doc);
}
/** A v3 write's rich text must be an ADF document. */
export const isAdf = (v: unknown): boolean =>
  typeof v === 'object' && v !== null && (v as Json).type === 'doc' && Array.isArray((v as Json).content);

export function commentJson(issue: StoredIssue, c: StoredComment, ctx: RenderContext): Json {
  const author = userOrNull(c.author, ctx);
  return {
    self: `${ctx.base}/rest/api/${ctx.version}/issue/${issue.id}/comment/${c.id}`, id: c.id, author,
    body: ctx.version === '3' ? (c.adf ?? adfDocument(c.body)) : c.body, updateAuthor: author,
    created: formatJiraTime(c.created, ctx.zone), updated: formatJiraTime(c.updated, ctx.zone), jsdPublic: true,
  };
}
export function attachmentJson(a: StoredAttachment, ctx: RenderContext): Json {
  const image = a.mimeType.startsWith('image/') ? { thumbnail: `${ctx.base}/rest/api/3/attachment/thumbnail/${a.id}` } : {};
  return {
    self: `${ctx.base}/rest/api/${ctx.version}/attachments/${a.id}`, id: a.id, filename: a.filename, author: userOrNull(a.author, ctx),
    created: formatJiraTime(a.created, ctx.zone), size: a.content.length, mimeType: a.mimeType,
    content: `${ctx.base}/rest/api/3/attachment/content/${a.id}`, ...image,
  };
}

/** The `fields` parameter, resolved. */
export interface FieldSelection {
  mode: 'list' | 'all' | 'navigable';
  include: Set<string>;
  exclude: Set<string>;
  /** Only `id` (and `key`) asked: the cheap, 5000-a-page selection. */
  idOrKeyOnly: boolean;
  /** Exactly `id`: issues answer `{id}` only. */
  idOnly: boolean;
}
/** `values`: every `fields` parameter (each may be a comma list); `fallback` when none is given. */
export function parseFields(values: readonly string[] | undefined, fallback: '*all' | '*navigable' | 'id'): FieldSelection {
  const items = (values ?? []).flatMap((v) => v.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const list = items.length ? items : [fallback];
  const positive = list.filter((s) => !s.startsWith('-'));
  const exclude = new Set(list.filter((s) => s.startsWith('-')).map((s) => s.slice(1)));
  const mode = positive.includes('*all') ? 'all' : positive.includes('*navigable') || positive.length === 0 ? 'navigable' : 'list';
  const include = new Set(positive.filter((s) => !s.startsWith('*')));
  const idOrKeyOnly = mode === 'list' && [...include].every((f) => f === 'id' || f === 'key');
  return { mode, include, exclude, idOrKeyOnly, idOnly: idOrKeyOnly && include.size === 1 && include.has('id') };
}

const SYSTEM_FIELDS = [
  'summary', 'issuetype', 'project', 'status', 'priority', 'assignee', 'reporter', 'labels', 'duedate', 'created', 'updated',
  'description', 'parent', 'comment', 'attachment',
] as const;
const NOT_NAVIGABLE = new Set(['comment', 'attachment']);

function fieldValue(issue: StoredIssue, field: string, ctx: RenderContext): unknown {
  switch (field) {
    case 'summary': return issue.summary;
    case 'issuetype': return issueTypeJson(issue.issuetype, ctx);
    case 'project': return projectJson(issue.project, ctx);
    case 'status': return statusJson(issue.status, ctx);
    case 'priority': return priorityJson(issue.priority, ctx);
    case 'assignee': return userOrNull(issue.assignee, ctx);
    case 'reporter': return userOrNull(issue.reporter, ctx);
    case 'labels': return [...issue.labels];
    case 'duedate': return issue.duedate;
    case 'created': return formatJiraTime(issue.created, ctx.zone);
    case 'updated': return formatJiraTime(issue.updated, ctx.zone);
    case 'description':
      if (issue.description === null) return null;
      return ctx.version === '3' ? (issue.descriptionAdf ?? adfDocument(issue.description)) : issue.description;
    case 'parent': {
      const parent = issue.parentNum === null ? undefined : ctx.store.issueByNum(issue.parentNum);
      if (!parent) return undefined;
      return {
        id: parent.id, key: parent.key, self: `${ctx.base}/rest/api/${ctx.version}/issue/${parent.id}`,
        fields: { summary: parent.summary, status: statusJson(parent.status, ctx), priority: priorityJson(parent.priority, ctx), issuetype: issueTypeJson(parent.issuetype, ctx) },
      };
    }
    case 'comment':
      return {
        comments: issue.comments.map((c) => commentJson(issue, c, ctx)), self: `${ctx.base}/rest/api/${ctx.version}/issue/${issue.id}/comment`,
        maxResults: issue.comments.length, total: issue.comments.length, startAt: 0,
      };
    case 'attachment': return issue.attachments.map((a) => attachmentJson(a, ctx));
    default:
      return field in issue.customFields ? issue.customFields[field] : ctx.store.customFields.has(field) ? null : undefined;
  }
}

/** The `fields` object for a selection. */
export function fieldsJson(issue: StoredIssue, sel: FieldSelection, ctx: RenderContext): Json {
  const custom = [...ctx.store.customFields.keys()];
  const candidates: string[] = sel.mode === 'list' ? [...sel.include].filter((f) => f !== 'id' && f !== 'key') : [...SYSTEM_FIELDS, ...custom];
  const out: Json = {};
  for (const field of candidates) {
    if (sel.exclude.has(field) || (sel.mode === 'navigable' && NOT_NAVIGABLE.has(field))) continue;
    const value = fieldValue(issue, field, ctx);
    if (value !== undefined) out[field] = value;
  }
  return out;
}

/** An issue as search, GET issue and bulkfetch answer it. `properties`: the requested issue property keys. */
export function issueJson(issue: StoredIssue, sel: FieldSelection, ctx: RenderContext, options: { expand?: string; properties?: readonly string[] } = {}): Json {
  const props = options.properties?.length
    ? { properties: Object.fromEntries(options.properties.filter((k) => issue.properties.has(k)).map((k) => [k, issue.properties.get(k)])) }
    : {};
  if (sel.idOnly && !options.properties?.length) return { id: issue.id };
  return {
    expand: options.expand ?? '', id: issue.id, self: `${ctx.base}/rest/api/${ctx.version}/issue/${issue.id}`, key: issue.key,
    fields: fieldsJson(issue, sel, ctx), ...props,
  };
}

/** GET /field: the system fields the fake models and the site's custom fields. */
export function fieldList(store: JiraStore): Json[] {
  const sys = (id: string, name: string, clauseNames: string[], schema: Json | undefined, extra: Json = {}): Json => ({
    id, key: id, name, custom: false, orderable: true, navigable: !NOT_NAVIGABLE.has(id), searchable: true, clauseNames, ...(schema ? { schema } : {}), ...extra,
  });
  const system = (type: string, id: string, more: Json = {}): Json => ({ type, ...more, system: id });
  return [
    sys('issuekey', 'Key', ['id', 'issue', 'issuekey', 'key'], undefined, { orderable: false }),
    sys('summary', 'Summary', ['summary'], system('string', 'summary')),
    sys('issuetype', 'Issue Type', ['issuetype', 'type'], system('issuetype', 'issuetype')),
    sys('project', 'Project', ['project'], system('project', 'project')),
    sys('status', 'Status', ['status'], system('status', 'status')),
    sys('priority', 'Priority', ['priority'], system('priority', 'priority')),
    sys('assignee', 'Assignee', ['assignee'], system('user', 'assignee')),
    sys('reporter', 'Reporter', ['reporter'], system('user', 'reporter')),
    sys('labels', 'Labels', ['labels'], system('array', 'labels', { items: 'string' })),
    sys('duedate', 'Due date', ['due', 'duedate'], system('date', 'duedate')),
    sys('created', 'Created', ['created', 'createdDate'], system('datetime', 'created'), { orderable: false }),
    sys('updated', 'Updated', ['updated', 'updatedDate'], system('datetime', 'updated'), { orderable: false }),
    sys('description', 'Description', ['description'], system('string', 'description')),
    sys('parent', 'Parent', ['parent'], undefined),
    sys('comment', 'Comment', ['comment'], system('comments-page', 'comment')),
    sys('attachment', 'Attachment', ['attachments'], system('array', 'attachment', { items: 'attachment' })),
    ...[...store.customFields].map(([id, name]) => {
      const n = Number(id.replace('customfield_', ''));
      const schema = id === 'customfield_10016'
        ? { type: 'number', custom: 'com.pyxis.greenhopper.jira:jsw-story-points', customId: n }
        : id === 'customfield_10020'
          ? { type: 'array', items: 'json', custom: 'com.pyxis.greenhopper.jira:gh-sprint', customId: n }
          : { type: 'string', custom: 'com.atlassian.jira.plugin.system.customfieldtypes:textfield', customId: n };
      return { id, key: id, name, untranslatedName: name, custom: true, orderable: true, navigable: true, searchable: true, clauseNames: [`cf[${n}]`, name], schema };
    }),
  ];
}
