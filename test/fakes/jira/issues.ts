/**
 * The issue endpoints of the fake Jira (`/rest/api/{3,2}/issue…`, `/attachment/content/{id}`), per the notes (A3)
 * and the Jira OpenAPI:
 * - `GET /issue/{idOrKey}?fields&properties&expand` (default fields `*all`); unknown or invisible → 404.
 * - `POST /issue` `{fields:{project, issuetype, summary, description, labels, assignee, reporter, duedate, priority,
 *   parent, customfield_…}, update?, properties?}` → 201 `{id, key, self}`; `PUT /issue/{idOrKey}` `{fields, update}`
 *   (`labels: [{add}|{remove}|{set}]`, `comment: [{add:{body}}]`, `<field>: [{set}]`) → 204 (200 with the issue when
 *   `returnIssue=true`). Validation answers `{"errorMessages":[],"errors":{<field>: <message>}}`: "You must specify a
 *   summary of the issue.", "Specify a valid project ID or key", "Field 'x' cannot be set. It is not on the
 *   appropriate screen, or unknown.", "Operation value must be an Atlassian Document (see the Atlassian Document
 *   Format)" for a v3 description that is not ADF, "User 'x' cannot be assigned issues." (Jira's wordings, from
 *   memory of real answers); the others are marked GUESS.
 * - Transitions (ids stable per target status, ./fixtures.ts STATUSES): GET `{expand, transitions}` to every other
 *   status; POST `{transition:{id}, fields?, update?}` → 204; unknown → 400 "Transition id 'x' is not valid for this
 *   issue."; no id → 400 "Missing 'transition' identifier"; not a number → "'transition' identifier must be an
 *   integer" (quoted in mozilla/jira-bugzilla-integration#303).
 * - `PUT /issue/{k}/assignee` `{accountId}` (DC `{name}`; null or "-1" unassigns) → 204.
 * - Comments: GET offset page `{comments, maxResults, total, startAt}` (maxResults default 5000, as the OpenAPI
 *   says), POST `{body}` (ADF on v3, a string on v2) → 201 the comment; empty → "Comment body can not be empty!".
 * - Properties: GET list `{keys}`, GET `{key, value}` / 404, PUT (≤ 32,768 chars, key ≤ 255) → 201 created / 200
 *   updated, DELETE → 204.
 * - Remote links: GET (all, or `?globalId=` one), POST upserts by `globalId` → 200 updated / 201 created `{id, self}`.
 * - `GET /attachment/content/{id}` → 303 to a signed media URL on the fake; `redirect=false` → 200 the bytes.
 * Every accepted write counts toward the issue's write count, bumps `updated` and is subject to the per-issue limit
 * (a refused write changes nothing).
 */
import type { ApiContext } from './context.ts';
import {
  BODY_UNPARSEABLE,
  ERROR_ISSUE_NOT_FOUND,
  ISSUE_TYPES,
  PRIORITIES,
  STATUSES,
  errorBody,
  errorPropertyNotFound,
  errorTransition,
} from './fixtures.ts';
import { type IssuePatch, addComment, applyPatch, newIssue } from './records.ts';
import { adfText, commentJson, isAdf, issueJson, parseFields, statusJson } from './render.ts';
import type { StoredIssue } from './store.ts';
import { isValidDate } from './time.ts';
import { type Answer, isObject, json, noContent, parseJson, show, writeLimiter } from './wire.ts';

const NOT_SETTABLE = (f: string): string => `Field '${f}' cannot be set. It is not on the appropriate screen, or unknown.`;
const NOT_ADF = 'Operation value must be an Atlassian Document (see the Atlassian Document Format)';
const GET_ISSUE_EXPAND = 'renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations'; // GUESS: the usual list
type Json = Record<string, unknown>;

/** A path segment, decoded (a malformed escape stays as it came). */
export function segment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
function findIssue(ctx: ApiContext, idOrKey: string): StoredIssue | Answer {
  return ctx.store.visible(segment(idOrKey)) ?? json(404, ERROR_ISSUE_NOT_FOUND);
}
const isIssue = (v: StoredIssue | Answer): v is StoredIssue => 'num' in v;

function body(ctx: ApiContext): { value: unknown } | { refused: Answer } {
  const parsed = parseJson(ctx.body);
  return parsed === 'invalid' ? { refused: json(400, BODY_UNPARSEABLE) } : { value: parsed };
}

/** Runs an accepted write on `issue`: the per-issue limit first; `run` validates (returning its refusal) or commits. */
function write(ctx: ApiContext, issue: StoredIssue, run: () => Answer): Answer {
  if (ctx.settings.perIssueWriteLimits) {
    const refusal = writeLimiter.refusal(issue, ctx.nowMs);
    if (refusal) return refusal;
  }
  const answer = run();
  if (answer.status < 300) {
    issue.writes++;
    writeLimiter.record(issue, ctx.nowMs);
  }
  return answer;
}
/** Bumps `updated` for writes that change no field (comments, properties, links, assignee no-ops). */
const touch = (ctx: ApiContext, issue: StoredIssue): void => ctx.store.change(issue, (i) => {
  i.updated = ctx.nowMs;
});

function userRef(ctx: ApiContext, v: unknown): string | null | undefined {
  if (v === null) return null;
  const ref = isObject(v) ? (v.accountId ?? v.name ?? v.id) : v;
  if (ref === null || ref === '-1') return null;
  return typeof ref === 'string' ? ctx.store.user(ref)?.accountId : undefined;
}
function issueRef(ctx: ApiContext, v: unknown): StoredIssue | undefined {
  const ref = isObject(v) ? (v.key ?? v.id) : v;
  return typeof ref === 'string' || typeof ref === 'number' ? ctx.store.visible(String(ref)) : undefined;
}
function richText(ctx: ApiContext, v: unknown): { text: string | null; adf?: unknown } | undefined {
  if (v === null) return { text: null };
  if (ctx.render.version === '3') return isAdf(v) ? { text: adfText(v), adf: v } : undefined;
  return typeof v === 'string' ? { text: v } : undefined;
}

interface Edit {
  patch: IssuePatch;
  errors: Record<string, string>;
  comments: { text: string; adf?: unknown }[];
  project?: string;
}
/** `fields` and `update` of a create/edit/transition body, validated. */
function parseEdit(ctx: ApiContext, fieldsIn: unknown, updateIn: unknown, mode: 'create' | 'edit' | 'transition', issue?: StoredIssue): Edit {
  const edit: Edit = { patch: {}, errors: {}, comments: [] };
  const { patch, errors } = edit;
  const fields: Json = isObject(fieldsIn) ? { ...fieldsIn } : {};
  const update = isObject(updateIn) ? updateIn : {};
  let labels = issue ? [...issue.labels] : [];
  let labelsTouched = false;
  for (const [field, ops] of Object.entries(update)) {
    for (const op of Array.isArray(ops) ? ops : []) {
      if (!isObject(op)) continue;
      if (field === 'labels') {
        labelsTouched = true;
        if (typeof op.add === 'string' && !labels.includes(op.add)) labels.push(op.add);
        if (typeof op.remove === 'string') labels = labels.filter((l) => l !== op.remove);
        if (Array.isArray(op.set)) labels = op.set.map(String);
      } else if (field === 'comment' && isObject(op.add)) {
        const text = richText(ctx, op.add.body);
        if (!text || text.text === null || text.text.trim() === '') errors.comment = text ? 'Comment body can not be empty!' : NOT_ADF;
        else edit.comments.push({ text: text.text, ...(text.adf !== undefined ? { adf: text.adf } : {}) });
      } else if ('set' in op) fields[field] = op.set;
      else errors[field] = NOT_SETTABLE(field);
    }
  }
  if (labelsTouched) fields.labels = labels;
  for (const [field, value] of Object.entries(fields)) {
    switch (field) {
      case 'project': {
        if (mode !== 'create') {
          errors.project = NOT_SETTABLE('project');
          break;
        }
        const ref = isObject(value) ? (value.key ?? value.id) : value;
        const project = typeof ref === 'string' ? ctx.store.project(ref) : undefined;
        if (project) edit.project = project.key;
        else errors.project = 'Specify a valid project ID or key';
        break;
      }
      case 'summary':
        if (typeof value !== 'string' || value.trim() === '') errors.summary = 'You must specify a summary of the issue.';
        else if (value.length > 255) errors.summary = 'Summary must be less than 255 characters.';
        else patch.summary = value;
        break;
      case 'issuetype': {
        const ref = isObject(value) ? (value.id ?? value.name) : value;
        const type = ISSUE_TYPES.find((t) => t.id === ref || t.name.toLowerCase() === String(ref).toLowerCase());
        if (type) patch.issuetype = type.name;
        else errors.issuetype = 'Specify a valid issue type'; // GUESS
        break;
      }
      case 'description': {
        const text = richText(ctx, value);
        if (text) patch.description = text;
        else errors.description = ctx.render.version === '3' ? NOT_ADF : 'Operation value must be a string';
        break;
      }
      case 'labels':
        if (!Array.isArray(value) || value.some((l) => typeof l !== 'string')) errors.labels = 'Operation value must be an array of strings'; // GUESS
        else if (value.some((l: string) => /\s/.test(l))) errors.labels = `The label '${String(value.find((l: string) => /\s/.test(l)))}' contains spaces which is invalid.`; // GUESS
        else patch.labels = [...new Set(value as string[])];
        break;
      case 'assignee':
      case 'reporter': {
        const who = userRef(ctx, value);
        if (who === undefined) errors[field] = field === 'assignee' ? `User '${String(isObject(value) ? (value.accountId ?? value.name) : value)}' cannot be assigned issues.` : 'Specify a valid value for reporter'; // reporter: GUESS
        else patch[field] = who;
        break;
      }
      case 'duedate':
        if (value === null || value === '') patch.duedate = null;
        else if (typeof value === 'string' && isValidDate(value)) patch.duedate = value;
        else errors.duedate = `Error parsing date string: ${show(value)}`;
        break;
      case 'priority': {
        const ref = isObject(value) ? (value.name ?? value.id) : value;
        const p = PRIORITIES.find((x) => x.id === ref || x.name.toLowerCase() === String(ref).toLowerCase());
        if (p) patch.priority = p.name;
        else errors.priority = 'The priority selected is invalid.'; // GUESS
        break;
      }
      case 'parent': {
        if (value === null) {
          patch.parentNum = null;
          break;
        }
        const parent = issueRef(ctx, value);
        if (parent && parent.num !== issue?.num) patch.parentNum = parent.num;
        else errors.parent = 'Could not find issue by id or key.'; // GUESS
        break;
      }
      default:
        if (/^customfield_\d+$/.test(field) && ctx.store.customFields.has(field)) (patch.customFields ??= {})[field] = value;
        else errors[field] = NOT_SETTABLE(field);
    }
  }
  if (mode === 'create') {
    if (!('project' in fields)) errors.project = 'Specify a valid project ID or key';
    if (!('issuetype' in fields)) errors.issuetype = 'Specify an issue type'; // GUESS
    if (!('summary' in fields)) errors.summary = 'You must specify a summary of the issue.';
  }
  return edit;
}

/** Commits an edit: the field patch (with its changelog), the comments, and the bump of `updated`. */
function commit(ctx: ApiContext, issue: StoredIssue, edit: Edit, also?: (i: StoredIssue) => void): void {
  applyPatch(ctx.store, issue, edit.patch, ctx.nowMs, ctx.caller.accountId, also);
  for (const c of edit.comments) addComment(ctx.store, issue, c, ctx.nowMs, ctx.caller.accountId);
}
const invalid = (errors: Record<string, string>): Answer => json(400, errorBody([], errors));

export function createIssue(ctx: ApiContext): Answer {
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  if (!isObject(read.value)) return json(400, errorBody(['Invalid request payload. Refer to the REST API documentation and try again.']));
  const edit = parseEdit(ctx, read.value.fields, read.value.update, 'create');
  const props = Array.isArray(read.value.properties) ? read.value.properties.filter(isObject) : [];
  if (Object.keys(edit.errors).length || edit.project === undefined) return invalid(edit.errors);
  const issue = newIssue(ctx.store, edit.project, edit.patch, { created: ctx.nowMs, updated: ctx.nowMs }, ctx.caller.accountId);
  for (const p of props) if (typeof p.key === 'string') issue.properties.set(p.key, p.value);
  for (const c of edit.comments) addComment(ctx.store, issue, c, ctx.nowMs, ctx.caller.accountId);
  ctx.store.add(issue);
  return json(201, { id: issue.id, key: issue.key, self: `${ctx.render.base}/rest/api/${ctx.render.version}/issue/${issue.id}` });
}

export function getIssue(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const props = ctx.query.getAll('properties').flatMap((p) => p.split(',')).filter((p) => p !== '');
  const fields = ctx.query.getAll('fields');
  return json(200, issueJson(issue, parseFields(fields.length ? fields : undefined, '*all'), ctx.render, { expand: GET_ISSUE_EXPAND, properties: props }));
}

export function editIssue(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  const value = isObject(read.value) ? read.value : {};
  return write(ctx, issue, () => {
    const edit = parseEdit(ctx, value.fields, value.update, 'edit', issue);
    if (Object.keys(edit.errors).length) return invalid(edit.errors);
    commit(ctx, issue, edit);
    if (ctx.query.get('returnIssue') === 'true') return json(200, issueJson(issue, parseFields(undefined, '*all'), ctx.render, { expand: GET_ISSUE_EXPAND }));
    return noContent();
  });
}

export function getTransitions(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const transitions = STATUSES.filter((s) => s.id !== issue.status.id).map((s) => ({
    id: s.transitionId, name: s.name, to: statusJson(s, ctx.render), hasScreen: false, isGlobal: true, isInitial: false, isAvailable: true, isConditional: false, isLooped: false,
  }));
  return json(200, { expand: 'transitions', transitions });
}

export function doTransition(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  const value = isObject(read.value) ? read.value : {};
  const ref = isObject(value.transition) ? value.transition.id : undefined;
  if (ref === undefined || ref === null) return json(400, errorBody(["Missing 'transition' identifier"]));
  const id = show(ref);
  if (!/^\d+$/.test(id)) return json(400, errorBody(["'transition' identifier must be an integer"]));
  const target = STATUSES.find((s) => s.transitionId === id);
  if (!target || target.id === issue.status.id) return json(400, errorTransition(id));
  return write(ctx, issue, () => {
    const edit = parseEdit(ctx, value.fields, value.update, 'transition', issue);
    if (Object.keys(edit.errors).length) return invalid(edit.errors);
    const from = issue.status.name;
    edit.patch.status = target;
    commit(ctx, issue, edit);
    issue.transitions.push({ id: target.transitionId, name: target.name, from, to: target.name, at: ctx.nowMs, by: ctx.caller.accountId });
    return noContent();
  });
}

export function assign(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  const value = isObject(read.value) ? read.value : {};
  const ref = 'accountId' in value ? value.accountId : value.name;
  const who = userRef(ctx, ref === undefined ? null : ref);
  if (who === undefined) return json(400, errorBody([], { assignee: `User '${String(ref)}' cannot be assigned issues.` }));
  return write(ctx, issue, () => {
    commit(ctx, issue, { patch: { assignee: who }, errors: {}, comments: [] });
    return noContent();
  });
}

export function listComments(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const startAt = Math.max(0, Number.parseInt(ctx.query.get('startAt') ?? '0', 10) || 0);
  const maxResults = Math.max(0, Number.parseInt(ctx.query.get('maxResults') ?? '5000', 10) || 5000);
  const all = ctx.query.get('orderBy') === '-created' ? [...issue.comments].reverse() : issue.comments;
  const comments = all.slice(startAt, startAt + maxResults).map((c) => commentJson(issue, c, ctx.render));
  return json(200, { comments, maxResults, total: all.length, startAt });
}

export function postComment(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  const value = isObject(read.value) ? read.value : {};
  const text = richText(ctx, value.body);
  if (!text || text.text === null || text.text.trim() === '') return invalid({ comment: text || value.body === undefined ? 'Comment body can not be empty!' : NOT_ADF });
  return write(ctx, issue, () => {
    const comment = addComment(ctx.store, issue, { text: text.text ?? '', ...(text.adf !== undefined ? { adf: text.adf } : {}) }, ctx.nowMs, ctx.caller.accountId);
    touch(ctx, issue);
    return json(201, commentJson(issue, comment, ctx.render));
  });
}

export function listProperties(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const self = (key: string): string => `${ctx.render.base}/rest/api/${ctx.render.version}/issue/${issue.id}/properties/${encodeURIComponent(key)}`;
  return json(200, { keys: [...issue.properties.keys()].map((key) => ({ self: self(key), key })) });
}

export function property(ctx: ApiContext, idOrKey: string, rawKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  const key = segment(rawKey);
  if (ctx.method === 'GET') return issue.properties.has(key) ? json(200, { key, value: issue.properties.get(key) }) : json(404, errorPropertyNotFound(key));
  if (ctx.method === 'DELETE') {
    if (!issue.properties.has(key)) return json(404, errorPropertyNotFound(key));
    return write(ctx, issue, () => {
      issue.properties.delete(key);
      touch(ctx, issue);
      return noContent();
    });
  }
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  if (read.value === undefined) return json(400, BODY_UNPARSEABLE);
  // GUESS: the wordings of these two refusals (the limits are the OpenAPI's).
  if (key.length > 255) return json(400, errorBody(['The property key cannot be longer than 255 characters.']));
  if (ctx.body.toString('utf8').length > 32_768) return json(400, errorBody(['The property value cannot be longer than 32768 characters.']));
  return write(ctx, issue, () => {
    const existed = issue.properties.has(key);
    issue.properties.set(key, read.value);
    touch(ctx, issue);
    return { status: existed ? 200 : 201 };
  });
}

const linkJson = (ctx: ApiContext, issue: StoredIssue, link: StoredIssue['remoteLinks'][number]): Json => ({
  id: link.id, self: `${ctx.render.base}/rest/api/${ctx.render.version}/issue/${issue.key}/remotelink/${link.id}`,
  ...(link.globalId !== undefined ? { globalId: link.globalId } : {}), ...(link.application !== undefined ? { application: link.application } : {}),
  ...(link.relationship !== undefined ? { relationship: link.relationship } : {}), object: link.object,
});

export function remoteLinks(ctx: ApiContext, idOrKey: string): Answer {
  const issue = findIssue(ctx, idOrKey);
  if (!isIssue(issue)) return issue;
  if (ctx.method === 'GET') {
    const globalId = ctx.query.get('globalId');
    if (globalId === null) return json(200, issue.remoteLinks.map((l) => linkJson(ctx, issue, l)));
    const link = issue.remoteLinks.find((l) => l.globalId === globalId);
    return link ? json(200, linkJson(ctx, issue, link)) : json(404, errorBody(['No remote link with the given globalId exists on this issue.'])); // GUESS
  }
  const read = body(ctx);
  if ('refused' in read) return read.refused;
  const value = isObject(read.value) ? read.value : {};
  const object = isObject(value.object) ? value.object : undefined;
  // GUESS: wording; Jira requires object.url and object.title.
  if (!object || typeof object.url !== 'string' || typeof object.title !== 'string') return invalid({ title: "'title' and 'url' of the object are required." });
  return write(ctx, issue, () => {
    const globalId = typeof value.globalId === 'string' ? value.globalId : undefined;
    const existing = globalId === undefined ? undefined : issue.remoteLinks.find((l) => l.globalId === globalId);
    const fields = {
      ...(globalId !== undefined ? { globalId } : {}), ...(value.application !== undefined ? { application: value.application } : {}),
      ...(typeof value.relationship === 'string' ? { relationship: value.relationship } : {}), object,
    };
    const link = existing ?? { id: ctx.store.nextId(), object };
    Object.assign(link, fields);
    if (!existing) issue.remoteLinks.push(link);
    touch(ctx, issue);
    return json(existing ? 200 : 201, { id: link.id, self: linkJson(ctx, issue, link).self });
  });
}

export function attachmentContent(ctx: ApiContext, id: string): Answer {
  const found = ctx.store.attachmentsById.get(id);
  // GUESS: the wording of the 404.
  if (!found || found.issue.hidden) return json(404, errorBody([`The attachment with id '${id}' does not exist`]));
  if (ctx.query.get('redirect') === 'false') return { status: 200, raw: found.attachment.content, contentType: found.attachment.mimeType };
  return { status: 303, headers: { Location: ctx.mediaUrl(id) } };
}
