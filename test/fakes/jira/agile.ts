/**
 * The Jira Software (agile) API of the fake Jira, `/rest/agile/1.0`, per the notes (A7: Jira Software OpenAPI,
 * jira.js `src/agile/models/sprint.ts`):
 * - `GET /board?type=&projectKeyOrId=&startAt&maxResults`, `GET /board/{id}/sprint?state=closed,active&startAt&maxResults`:
 *   offset pages `{maxResults, startAt, total, isLast, values}` (maxResults default 50).
 * - Sprints `{id, self, state, name, startDate, endDate, completeDate (closed only), originBoardId, goal}`, dates like
 *   `2015-04-11T15:22:00.000+10:00` in the user's zone (notes A2).
 * - `GET /sprint/{id}`, `GET /sprint/{id}/issue?fields&startAt&maxResults` → `{expand, startAt, maxResults, total,
 *   issues}` in rank order, with `fields.sprint` (the open sprint holding the issue) and `fields.closedSprints`.
 * - `GET /board/{id}/configuration` with `estimation: {type: 'field', field: {fieldId: 'customfield_10016',
 *   displayName: 'Story point estimate'}}`.
 * 404 wordings ("Board does not exist or you do not have permission to see it.") and the kanban refusal ("The board
 * does not support sprints") are Jira Software's as commonly quoted; not from a published example.
 */
import type { ApiContext } from './context.ts';
import { STORY_POINTS_FIELD, errorBody } from './fixtures.ts';
import { issueJson, parseFields } from './render.ts';
import type { Board, Sprint, StoredIssue } from './store.ts';
import { formatSprintTime } from './time.ts';
import { type Answer, json } from './wire.ts';

type Json = Record<string, unknown>;
const intParam = (ctx: ApiContext, name: string, fallback: number): number => {
  const n = Number.parseInt(ctx.query.get(name) ?? '', 10);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
};
function page<T>(ctx: ApiContext, items: T[], render: (item: T) => Json): Answer {
  const startAt = intParam(ctx, 'startAt', 0);
  const maxResults = Math.max(1, intParam(ctx, 'maxResults', 50));
  const values = items.slice(startAt, startAt + maxResults).map(render);
  return json(200, { maxResults, startAt, total: items.length, isLast: startAt + values.length >= items.length, values });
}

export function boardJson(ctx: ApiContext, b: Board): Json {
  return {
    id: b.id, self: `${ctx.render.base}/rest/agile/1.0/board/${b.id}`, name: b.name, type: b.type,
    location: {
      projectId: Number(b.project.id), displayName: `${b.project.name} (${b.project.key})`, projectName: b.project.name, projectKey: b.project.key,
      projectTypeKey: 'software', avatarURI: `${ctx.render.base}/rest/api/2/universal_avatar/view/type/project/avatar/10400?size=small`, name: b.project.name,
    },
  };
}
export function sprintJson(base: string, zone: string, s: Sprint): Json {
  const date = (key: string, ms: number | undefined): Json => (ms === undefined ? {} : { [key]: formatSprintTime(ms, zone) });
  return {
    id: s.id, self: `${base}/rest/agile/1.0/sprint/${s.id}`, state: s.state, name: s.name,
    ...date('startDate', s.startDate), ...date('endDate', s.endDate), ...(s.state === 'closed' ? date('completeDate', s.completeDate) : {}),
    originBoardId: s.boardId, goal: s.goal ?? '',
  };
}

const boardNotFound = (): Answer => json(404, errorBody(['Board does not exist or you do not have permission to see it.']));
const sprintNotFound = (): Answer => json(404, errorBody(['Sprint does not exist or you do not have permission to see it.']));

/** The agile routes; undefined when `rest` is none of them. */
export function agileApi(ctx: ApiContext): Answer | undefined {
  const { rest, store } = ctx;
  const sprint = (s: Sprint): Json => sprintJson(ctx.render.base, ctx.render.zone, s);
  if (rest === '/board') {
    const type = ctx.query.get('type');
    const project = ctx.query.get('projectKeyOrId');
    const wanted = project === null ? undefined : store.project(project);
    const boards = store.boards.filter((b) => (type === null || type.split(',').includes(b.type)) && (project === null || b.project === wanted));
    return page(ctx, boards, (b) => boardJson(ctx, b));
  }
  let m = /^\/board\/(\d+)(\/sprint|\/configuration)?$/.exec(rest);
  if (m) {
    const board = store.boards.find((b) => b.id === Number(m![1]));
    if (!board) return boardNotFound();
    if (m[2] === undefined) return json(200, boardJson(ctx, board));
    if (m[2] === '/configuration') {
      return json(200, {
        id: board.id, name: board.name, type: board.type, self: `${ctx.render.base}/rest/agile/1.0/board/${board.id}/configuration`,
        location: { type: 'project', id: board.project.id }, filter: { id: String(10000 + board.id), self: `${ctx.render.base}/rest/api/2/filter/${10000 + board.id}` },
        columnConfig: { columns: [{ name: 'To Do', statuses: [{ id: '10000' }] }, { name: 'In Progress', statuses: [{ id: '3' }, { id: '10001' }] }, { name: 'Done', statuses: [{ id: '10002' }, { id: '10003' }] }], constraintType: 'none' },
        estimation: { type: 'field', field: { ...STORY_POINTS_FIELD } },
        ranking: { rankCustomFieldId: 10019 },
      });
    }
    if (board.type !== 'scrum') return json(400, errorBody(['The board does not support sprints']));
    const states = ctx.query.get('state')?.split(',').map((s) => s.trim());
    return page(ctx, store.sprints.filter((s) => s.boardId === board.id && (!states || states.includes(s.state))), sprint);
  }
  m = /^\/sprint\/(\d+)(\/issue)?$/.exec(rest);
  if (m) {
    const found = store.sprints.find((s) => s.id === Number(m[1]));
    if (!found) return sprintNotFound();
    if (m[2] === undefined) return json(200, sprint(found));
    const issues = found.issues.map((id) => store.get(id)).filter((i): i is StoredIssue => i !== undefined && !i.hidden);
    const sel = parseFields(ctx.query.getAll('fields').length ? ctx.query.getAll('fields') : undefined, '*navigable');
    const startAt = intParam(ctx, 'startAt', 0);
    const maxResults = Math.max(1, intParam(ctx, 'maxResults', 50));
    const wants = (f: string): boolean => !sel.exclude.has(f) && (sel.mode !== 'list' || sel.include.has(f));
    const rendered = issues.slice(startAt, startAt + maxResults).map((issue) => {
      const out = issueJson(issue, sel, ctx.render);
      const fields = out.fields as Json | undefined;
      if (fields) {
        const holding = store.sprints.filter((s) => s.issues.includes(issue.id));
        if (wants('sprint')) fields.sprint = holding.map(sprint).find((s) => s.state !== 'closed') ?? null;
        if (wants('closedSprints')) fields.closedSprints = holding.filter((s) => s.state === 'closed').map(sprint);
      }
      return out;
    });
    return json(200, { expand: 'schema,names', startAt, maxResults, total: issues.length, issues: rendered });
  }
  return undefined;
}
