/**
 * Closed sprints of the configured scrum boards (Jira Software's agile API, `/rest/agile/1.0`), every 15 minutes:
 * `GET /board/{id}/sprint?state=closed` (offset pages), and for a sprint closed since the board's checkpoint its
 * issues (`GET /sprint/{id}/issue?fields=status`). There is no "closed since" filter, so the checkpoint is the
 * latest `completeDate` seen per board, and only later ones are read in full.
 *
 * A sprint that closes (after the board's first sync: closed sprints found then are history, kept quietly) tells
 * the owners of the board's programme (the owners of its controls) which remediation tasks it left open, in one
 * `integration.sprint_closed` event (routed to their DMs by default; the alert channel by the integration rule).
 */
import { sql } from 'kysely';
import { z } from 'zod';
import { newEvent } from '../../domain/events.ts';
import { taskRef } from '../../domain/tasks.ts';
import type { PullStep } from '../sdk/contract.ts';
import { defineModel } from '../sdk/contract.ts';
import type { JiraClient, JiraSettings } from './client.ts';
import { issueTarget, jiraTimeMs } from './mapper.ts';

export const sprintCursor = z.object({ boards: z.record(z.string(), z.number()) });
export type SprintCursor = z.infer<typeof sprintCursor>;

export const sprintRecord = z.object({
  id: z.number().int().positive(),
  name: z.string(),
  state: z.literal('closed'),
  completeDate: z.string(),
  boardId: z.number().int().positive(),
  goal: z.string().optional(),
  /** Read when the sprint closed after the board's checkpoint: its issues, and whether each is done. */
  issues: z.array(z.object({ id: z.string(), done: z.boolean() })),
  /** False for sprints found closed by a board's first sync: history, not news. */
  news: z.boolean(),
});
export type SprintRecord = z.infer<typeof sprintRecord>;

const sprintPage = z.object({ values: z.array(z.looseObject({ id: z.number(), name: z.string(), state: z.string(), completeDate: z.string().optional(), goal: z.string().optional() })), isLast: z.boolean().optional(), total: z.number().optional(), startAt: z.number().optional() });
const issuePage = z.object({ issues: z.array(z.object({ id: z.string(), fields: z.object({ status: z.object({ statusCategory: z.object({ key: z.string() }).optional() }).optional() }).optional() })), total: z.number(), startAt: z.number() });

export async function* pullSprints(input: { client: JiraClient; settings: JiraSettings; cursor: SprintCursor | null }): AsyncIterable<PullStep<SprintCursor>> {
  const boards = { ...input.cursor?.boards };
  for (const board of input.settings.boards) {
    const since = boards[String(board.id)];
    const closed: { id: number; name: string; completeMs: number; completeDate: string; goal?: string | undefined }[] = [];
    let requests = 0;
    for (let startAt = 0; ; ) {
      const answer = await input.client.send<unknown>({ method: 'GET', path: `/rest/agile/1.0/board/${board.id}/sprint`, query: { state: 'closed', startAt, maxResults: 50 } });
      if (!answer.ok) {
        yield answer;
        return;
      }
      requests += answer.value.attempts;
      const page = sprintPage.safeParse(answer.value.body);
      if (!page.success) {
        yield { ok: false, failure: { kind: 'http', code: 'invalid_response', status: answer.value.status, body: undefined, attempts: answer.value.attempts } };
        return;
      }
      for (const sprint of page.data.values) {
        const completeMs = sprint.completeDate ? jiraTimeMs(sprint.completeDate) : Number.NaN;
        if (sprint.state === 'closed' && Number.isFinite(completeMs)) closed.push({ id: sprint.id, name: sprint.name, completeMs, completeDate: sprint.completeDate!, goal: sprint.goal });
      }
      startAt += page.data.values.length;
      if (page.data.isLast !== false || page.data.values.length === 0) break;
    }
    const fresh = closed.filter((sprint) => since === undefined || sprint.completeMs > since);
    const records: SprintRecord[] = [];
    for (const sprint of fresh) {
      const issues: SprintRecord['issues'] = [];
      if (since !== undefined) {
        for (let startAt = 0; ; ) {
          const answer = await input.client.send<unknown>({ method: 'GET', path: `/rest/agile/1.0/sprint/${sprint.id}/issue`, query: { fields: 'status', startAt, maxResults: 100 } });
          if (!answer.ok) {
            yield answer;
            return;
          }
          requests += answer.value.attempts;
          const page = issuePage.safeParse(answer.value.body);
          if (!page.success) break;
          issues.push(...page.data.issues.map((issue) => ({ id: issue.id, done: issue.fields?.status?.statusCategory?.key === 'done' })));
          startAt = page.data.startAt + page.data.issues.length;
          if (page.data.issues.length === 0 || startAt >= page.data.total) break;
        }
      }
      records.push({ id: sprint.id, name: sprint.name, state: 'closed', completeDate: sprint.completeDate, boardId: board.id, ...(sprint.goal ? { goal: sprint.goal } : {}), issues, news: since !== undefined });
    }
    boards[String(board.id)] = Math.max(since ?? 0, ...closed.map((sprint) => sprint.completeMs));
    yield { ok: true, page: { records, cursor: { boards: { ...boards } }, requests } };
  }
}

export const sprints = defineModel<JiraSettings, JiraClient, SprintRecord, SprintCursor>({
  name: 'sprint',
  record: sprintRecord,
  cursor: sprintCursor,
  schedule: { everySeconds: 900, jitterSeconds: 60 },
  externalId: (record) => String(record.id),
  label: (record) => record.name,
  updatedAt: (record) => new Date(jiraTimeMs(record.completeDate)).toISOString(),
  content: (record) => ({ name: record.name, state: record.state, completeDate: record.completeDate, boardId: record.boardId }),
  pull: ({ client, instance, cursor }) => pullSprints({ client, settings: instance.settings, cursor }),
  apply: async ({ trx, instance, changes, runtime, now }) => {
    for (const { record, created } of changes) {
      if (!created || !record.news) continue;
      const open = record.issues.filter((issue) => !issue.done).map((issue) => issueTarget(instance.name, issue.id));
      const tasks = open.length
        ? await trx
            .selectFrom('task_links')
            .innerJoin('tasks', 'tasks.id', 'task_links.task_id')
            .select(['tasks.id', 'tasks.title'])
            .where('task_links.kind', '=', 'external')
            .where('task_links.target', 'in', open)
            .where('tasks.type', '=', 'remediation')
            .where('tasks.state', 'not in', ['done', 'cancelled', 'approved', 'denied', 'expired'])
            .orderBy('tasks.id')
            .execute()
        : [];
      const program = instance.settings.boards.find((board) => board.id === record.boardId)?.program;
      const owners = program
        ? (await sql<{ owner_id: string }>`select distinct owner_id from controls where program_id = ${program} and owner_id is not null`.execute(trx)).rows.map((row) => row.owner_id)
        : [];
      const refs = tasks.map((task) => taskRef(task.id));
      await runtime.events.emit(
        trx,
        newEvent(
          {
            type: 'integration.sprint_closed',
            subject: { kind: 'integration', id: instance.id, label: `jira:${instance.name}` },
            summary:
              refs.length === 0
                ? `Sprint ${record.name} closed in Jira with no remediation task left open.`
                : `Sprint ${record.name} closed in Jira with ${refs.length} remediation task${refs.length === 1 ? '' : 's'} still open: ${tasks.slice(0, 20).map((task) => `${taskRef(task.id)} ${task.title}`).join('; ')}${refs.length > 20 ? '; …' : ''}`,
            priority: 3,
            approverIds: owners,
            data: { connector: 'jira', sprint: record.id, board: record.boardId, ...(program ? { program } : {}), outstanding: refs.slice(0, 200), outstandingCount: refs.length },
          },
          now,
        ),
      );
    }
  },
});
