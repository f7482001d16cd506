/**
 * Writes back to Jira, through the connectors' push queue (src/connectors/sdk/push.ts: in order per instance,
 * waiting while the write circuit is open, a rate limit spending no attempt):
 *
 * - `issue.create`, from a remediation task created in ProjectX (not one that came from a connected system): an
 *   issue in the instance's push project with an ADF description, the task's labels, a marker label
 *   `projectx-task-<id>`, a `projectx` issue property carrying the task id, and the assignee (the Jira account
 *   with the ProjectX user's email). Jira has no idempotency key, so before creating, the marker is searched for:
 *   a create whose answer was lost is found, not made twice. (Issue properties cannot be searched by a 3LO app,
 *   so the label is the searchable half of the marker.)
 * - `issue.transition`, from a task's state changed in ProjectX: the transition to the status the state maps to
 *   (the project's `stateMapping`, else the status category: open → To Do, in progress, done), found among the
 *   issue's transitions by its target; none needed when the issue is there already.
 * - `issue.assign`, from a task assigned in ProjectX; `issue.comment`, from a comment added in ProjectX.
 *
 * Each answer is the issue as it stands after the write (read back), recorded like a pulled record (`sent`):
 * the next pull reads our own change as no change (echo suppression), and what someone else changed in it
 * meanwhile takes effect at once. Changes that came from Jira (events `by: jira:<instance>`) are never sent back.
 *
 * Jira limits writes per issue (20 per 2 s, 100 per 30 s: 429 `jira-per-issue-on-write`): before each write the
 * instance's writes to that issue in those windows are counted (from the push log, shared by every process), and
 * a write that would go over waits for the window instead.
 */
import { sql } from 'kysely';
import { z } from 'zod';
import type { Db } from '../../db/database.ts';
import type { TaskState } from '../../db/schema.ts';
import type { DomainEvent } from '../../domain/events.ts';
import { getTask } from '../../domain/tasks.ts';
import type { PushDefinition, PushIntent } from '../sdk/contract.ts';
import type { UpstreamResult } from '../sdk/http-client.ts';
import { recordAnswer } from '../sdk/ledger.ts';
import type { JiraClient, JiraSettings } from './client.ts';
import { DEFAULT_STATE_BY_CATEGORY, adf, issueTarget, issueUrl } from './mapper.ts';
import { issueFieldsFor, issues } from './sync.ts';

export const markerLabel = (taskId: string) => `projectx-task-${taskId}`;
/** Jira's per-issue write limits (rate-limiting docs): at most this many writes in each window. */
export const PER_ISSUE_LIMITS = [
  { writes: 20, windowMs: 2_000 },
  { writes: 100, windowMs: 30_000 },
] as const;

const create = z.object({ taskId: z.string().min(1), projectKey: z.string().min(1), issueType: z.string().min(1), summary: z.string().min(1).max(255), description: z.string().max(30_000), labels: z.array(z.string()), assigneeEmail: z.email().optional(), dueDate: z.string().optional(), priority: z.string().optional() });
const transition = z.object({ issueId: z.string().regex(/^\d+$/), to: z.enum(['open', 'in_progress', 'done', 'cancelled']) });
const assign = z.object({ issueId: z.string().regex(/^\d+$/), assigneeEmail: z.email().nullable() });
const comment = z.object({ issueId: z.string().regex(/^\d+$/), text: z.string().min(1).max(30_000) });

type Answer = UpstreamResult<unknown>;

/** The issue as it stands now (what `sent` records). */
const readIssue = (client: JiraClient, settings: JiraSettings, id: string): Promise<Answer> => client.send({ method: 'GET', path: `/issue/${id}`, query: { fields: issueFieldsFor(settings).join(',') } });

/** Jira's account for a ProjectX user's email (Cloud: accountId; Data Center: the user name), if Jira has one. */
async function accountFor(client: JiraClient, email: string): Promise<UpstreamResult<string | null>> {
  const found = await client.send<unknown>({ method: 'GET', path: '/user/search', query: client.deployment === 'cloud' ? { query: email } : { username: email } });
  if (!found.ok) return found;
  const users = Array.isArray(found.value.body) ? (found.value.body as { accountId?: unknown; name?: unknown; emailAddress?: unknown }[]) : [];
  const match = users.find((user) => typeof user.emailAddress === 'string' && user.emailAddress.toLowerCase() === email.toLowerCase());
  const id = client.deployment === 'cloud' ? match?.accountId : match?.name;
  return { ok: true, value: { ...found.value, body: typeof id === 'string' ? id : null } };
}

/** The assignee field: Cloud names accounts by accountId, Data Center by user name. */
const assigneeField = (client: JiraClient, account: string | null) => (account === null ? null : client.deployment === 'cloud' ? { accountId: account } : { name: account });

/**
 * Whether one more write to this issue would exceed Jira's per-issue limits, counting this instance's writes sent
 * to it in each window; when it would, the time the oldest of them leaves the window.
 */
async function perIssueWait(db: Db, instanceId: string, recordKey: string, now: Date): Promise<Date | undefined> {
  const since = new Date(now.getTime() - PER_ISSUE_LIMITS[1].windowMs);
  const sent = await db.selectFrom('integration_pushes').select('sent_at').where('config_id', '=', instanceId).where('record_key', '=', recordKey).where('status', '=', 'sent').where('sent_at', '>', since).orderBy('sent_at', 'desc').limit(PER_ISSUE_LIMITS[1].writes).execute();
  for (const limit of PER_ISSUE_LIMITS) {
    const inWindow = sent.filter((row) => row.sent_at && row.sent_at.getTime() > now.getTime() - limit.windowMs);
    if (inWindow.length >= limit.writes) return new Date(inWindow[limit.writes - 1]!.sent_at!.getTime() + limit.windowMs + 1);
  }
  return undefined;
}

/** A write that would go over the per-issue limit: deferred like Jira's own 429 (no attempt spent). */
async function guarded(db: Db, instanceId: string, issueId: string, now: Date, write: () => Promise<Answer>): Promise<Answer> {
  const wait = await perIssueWait(db, instanceId, `issue/${issueId}`, now);
  if (wait) return { ok: false, failure: { kind: 'deferred', code: 'rate_limited', status: undefined, retryAt: wait, attempts: 0 } };
  return write();
}

/** The status a task state maps to in this project: a status the mapping names, else the default category's. */
function wantedStatus(settings: JiraSettings, projectKey: string, state: TaskState): { names: string[]; category: string | undefined } {
  const names = Object.entries({ ...settings.stateMapping['*'], ...settings.stateMapping[projectKey] })
    .filter(([status, mapped]) => mapped === state && !['new', 'indeterminate', 'done'].includes(status))
    .map(([status]) => status);
  const category = Object.entries(DEFAULT_STATE_BY_CATEGORY).find(([, mapped]) => mapped === state)?.[0] ?? (state === 'cancelled' ? 'done' : undefined);
  return { names, category };
}

const recordIssue: NonNullable<PushDefinition['operations'][string]['sent']> = async ({ trx, connector, instance, response, runtime, now }) => {
  if (!response || typeof response !== 'object') return { recorded: false };
  const stored = await recordAnswer(trx, { runtime, connector, instance, model: issues, record: response, now });
  return { recorded: !stored.rejected, changed: stored.changed };
};

export const jiraPush: PushDefinition<JiraSettings, JiraClient> = {
  operations: {
    'issue.create': {
      payload: create,
      send: async ({ client, instance, payload, runtime }) => {
        const marker = markerLabel(payload.taskId);
        // Made before? (an answer lost in flight, a crash after the create)
        const existing = await client.search({ jql: `project = "${payload.projectKey}" AND labels = "${marker}" ORDER BY id ASC`, fields: issueFieldsFor(instance.settings), maxResults: 1 });
        if (!existing.ok) return existing;
        const found = existing.value.body.issues[0];
        if (found) return { ok: true, value: { ...existing.value, body: found } };
        const account = payload.assigneeEmail ? await accountFor(client, payload.assigneeEmail) : undefined;
        if (account && !account.ok) return account;
        const fields = {
          project: { key: payload.projectKey },
          issuetype: { name: payload.issueType },
          summary: payload.summary,
          description: client.deployment === 'cloud' ? adf(payload.description || payload.summary) : payload.description || payload.summary,
          labels: [...new Set([...payload.labels.map((label: string) => label.replace(/\s+/g, '_')), marker])],
          ...(account?.value.body ? { assignee: assigneeField(client, account.value.body) } : {}),
          ...(payload.dueDate ? { duedate: payload.dueDate } : {}),
          ...(payload.priority ? { priority: { name: payload.priority } } : {}),
        };
        const created = await client.send<{ id?: unknown }>({ method: 'POST', path: '/issue', json: { fields, properties: [{ key: 'projectx', value: { taskId: payload.taskId } }] }, idempotent: false });
        if (!created.ok) return created;
        const id = typeof created.value.body?.id === 'string' ? created.value.body.id : undefined;
        if (!id) return { ok: false, failure: { kind: 'http', code: 'invalid_response', status: created.value.status, body: undefined, attempts: created.value.attempts } };
        runtime.logger.info({ connector: 'jira', instance: instance.name, task: payload.taskId, issue: id }, 'remediation task created in Jira');
        return readIssue(client, instance.settings, id);
      },
      sent: async (input) => {
        const issue = input.response as { id?: unknown; key?: unknown } | undefined;
        if (typeof issue?.id !== 'string' || typeof issue.key !== 'string') return { linked: false };
        const payload = input.payload as z.infer<typeof create>;
        // Linked first: the recorded issue then updates this task instead of becoming another.
        await input.trx
          .insertInto('task_links')
          .values({ task_id: payload.taskId, kind: 'external', target: issueTarget(input.instance.name, issue.id), url: issueUrl(input.instance.settings, issue.key) })
          .onConflict((oc) => oc.doNothing())
          .execute();
        return { linked: true, issue: issue.key, ...(await recordIssue(input)) };
      },
    },
    'issue.transition': {
      payload: transition,
      send: async ({ client, instance, payload, runtime }) => {
        const current = await readIssue(client, instance.settings, payload.issueId);
        if (!current.ok) return current;
        const fields = (current.value.body as { fields?: { project?: { key?: string }; status?: { name?: string; statusCategory?: { key?: string } } } }).fields;
        const wanted = wantedStatus(instance.settings, fields?.project?.key ?? '', payload.to);
        const matches = (status: { name?: string; statusCategory?: { key?: string } } | undefined) => (wanted.names.length ? wanted.names.includes(status?.name ?? '') : status?.statusCategory?.key === wanted.category);
        if (matches(fields?.status)) return current;
        const offered = await client.send<{ transitions?: { id: string; to?: { name?: string; statusCategory?: { key?: string } } }[] }>({ method: 'GET', path: `/issue/${payload.issueId}/transitions` });
        if (!offered.ok) return offered;
        const chosen = offered.value.body?.transitions?.find((candidate) => matches(candidate.to));
        if (!chosen) return { ok: false, failure: { kind: 'http', code: 'no_transition', status: 409, body: { message: `no transition of issue ${payload.issueId} leads to ${wanted.names.join(' or ') || wanted.category}` }, attempts: offered.value.attempts } };
        const moved = await guarded(runtime.db, instance.id, payload.issueId, runtime.clock.now(), () => client.send({ method: 'POST', path: `/issue/${payload.issueId}/transitions`, json: { transition: { id: chosen.id } }, idempotent: true }));
        if (!moved.ok) return moved;
        return readIssue(client, instance.settings, payload.issueId);
      },
      sent: recordIssue,
    },
    'issue.assign': {
      payload: assign,
      send: async ({ client, instance, payload, runtime }) => {
        const account = payload.assigneeEmail ? await accountFor(client, payload.assigneeEmail) : { ok: true as const, value: { status: 200, headers: {}, body: null, attempts: 0 } };
        if (!account.ok) return account;
        const assigned = await guarded(runtime.db, instance.id, payload.issueId, runtime.clock.now(), () => client.send({ method: 'PUT', path: `/issue/${payload.issueId}/assignee`, json: client.deployment === 'cloud' ? { accountId: account.value.body } : { name: account.value.body } }));
        if (!assigned.ok) return assigned;
        return readIssue(client, instance.settings, payload.issueId);
      },
      sent: recordIssue,
    },
    'issue.comment': {
      payload: comment,
      send: async ({ client, instance, payload, runtime }) => {
        const body = client.deployment === 'cloud' ? adf(payload.text) : payload.text;
        const added = await guarded(runtime.db, instance.id, payload.issueId, runtime.clock.now(), () => client.send({ method: 'POST', path: `/issue/${payload.issueId}/comment`, json: { body }, idempotent: false }));
        if (!added.ok) return added;
        return readIssue(client, instance.settings, payload.issueId);
      },
      sent: recordIssue,
    },
  },

  async fromEvent(event: DomainEvent, { db }: { db: Db }): Promise<PushIntent[]> {
    if (event.subject.kind !== 'task') return [];
    // What Jira itself changed is not sent back to it.
    const said = [event.data?.by, event.data?.source].filter((value): value is string => typeof value === 'string');
    if (said.some((value) => value.startsWith('jira:'))) return [];
    const task = await getTask(db, event.subject.id);
    if (!task || task.type !== 'remediation') return [];
    const instances = await db.selectFrom('integration_configs').select(['id', 'name', 'settings']).where('type', '=', 'jira').where('enabled', '=', true).execute();
    if (event.type === 'task.created') {
      // A task that came from a connected system (Jira, ServiceNow, a partner) lives there already.
      if (task.links.some((link) => link.kind === 'external')) return [];
      const assignee = task.assigneeId ? await db.selectFrom('users').select('email').where('id', '=', task.assigneeId).executeTakeFirst() : undefined;
      return instances.flatMap((instance) => {
        const settings = instance.settings as Partial<JiraSettings>;
        if (settings.push === false) return [];
        const projectKey = settings.push?.projectKey ?? settings.projectKeys?.[0];
        if (!projectKey) return [];
        return [
          {
            instanceId: instance.id,
            operation: 'issue.create',
            recordKey: `task/${task.id}`,
            payload: {
              taskId: task.id,
              projectKey,
              issueType: settings.push?.issueType ?? 'Task',
              summary: task.title.slice(0, 255),
              description: task.description ?? '',
              labels: task.labels,
              ...(assignee ? { assigneeEmail: assignee.email } : {}),
              ...(task.dueAt ? { dueDate: task.dueAt.toISOString().slice(0, 10) } : {}),
              priority: task.priority === 'high' ? 'High' : task.priority === 'low' ? 'Low' : 'Medium',
            },
          },
        ];
      });
    }
    // The other writes are about a task already linked to an issue of an instance.
    const linked = instances.flatMap((instance) => {
      const link = task.links.find((candidate) => candidate.kind === 'external' && candidate.target.startsWith(`jira:${instance.name}:issue:`));
      return link ? [{ instanceId: instance.id, issueId: link.target.split(':').at(-1)! }] : [];
    });
    if (event.type === 'task.state_changed') {
      const to = event.data?.to;
      if (to !== 'open' && to !== 'in_progress' && to !== 'done' && to !== 'cancelled') return [];
      return linked.map(({ instanceId, issueId }) => ({ instanceId, operation: 'issue.transition', recordKey: `issue/${issueId}`, payload: { issueId, to } }));
    }
    if (event.type === 'task.assigned') {
      const email = task.assigneeId ? ((await db.selectFrom('users').select('email').where('id', '=', task.assigneeId).executeTakeFirst())?.email ?? null) : null;
      return linked.map(({ instanceId, issueId }) => ({ instanceId, operation: 'issue.assign', recordKey: `issue/${issueId}`, payload: { issueId, assigneeEmail: email } }));
    }
    if (event.type === 'task.commented') {
      const text = typeof event.data?.text === 'string' ? event.data.text : '';
      if (!text) return [];
      const who = typeof event.data?.by === 'string' ? event.data.by : 'ProjectX';
      return linked.map(({ instanceId, issueId }) => ({ instanceId, operation: 'issue.comment', recordKey: `issue/${issueId}`, payload: { issueId, text: `${text}\n\n(from ProjectX, ${who})` } }));
    }
    return [];
  },
};

/** Pending writes and waiting webhook deliveries of every Jira instance: `jira_sync_backlog`. */
export async function jiraBacklog(db: Db): Promise<{ kind: 'writes' | 'deliveries'; count: number }[]> {
  const rows = await sql<{ kind: 'writes' | 'deliveries'; count: string }>`
    select 'writes' as kind, count(*)::text as count from integration_pushes p join integration_configs c on c.id = p.config_id where c.type = 'jira' and p.status = 'pending'
    union all
    select 'deliveries', count(*)::text from inbound_events where source like 'jira:%' and status = 'received'`.execute(db);
  return rows.rows.map((row) => ({ kind: row.kind, count: Number(row.count) }));
}
