/**
 * Comments and attachments of synced Jira issues (`jira.issue_extras`, queued by a sync page for the issues
 * whose comments or attachments changed, up to 100 a job):
 *
 * - comments are kept on the issue's task (`commentOnTask`: the task's history in the audit log, announced as
 *   `task.commented`), each once (its source is `jira:<instance>:comment:<id>`), never sent back to Jira;
 * - attachments are mirrored into evidence (source `jira`, linked to the task), downloaded
 *   (`/attachment/content/{id}?redirect=false`) and ingested like any evidence (type checked by content,
 *   SHA-256 while stored, the 10 MB limit). Each is remembered in the ledger (model `attachment`), so none is
 *   mirrored twice; one the evidence rules refuse is remembered as refused, with the reason, and not fetched again.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import { commentOnTask } from '../../domain/tasks.ts';
import { withConnectorInstance } from '../../jobs/connector-context.ts';
import { defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { Logger } from '../../logger.ts';
import { ingestEvidence } from '../evidence-stores/ingest.ts';
import { outcomeFields } from '../evidence-stores/pipeline.ts';
import type { ConnectorDefinition } from '../sdk/contract.ts';
import type { JiraClient, JiraSettings } from './client.ts';
import { issueTarget, plainText } from './mapper.ts';

const attachment = z.object({ id: z.union([z.string(), z.number()]).transform(String), filename: z.string().min(1).max(255), size: z.number().optional() });
const commentPage = z.object({ comments: z.array(z.object({ id: z.string(), body: z.unknown(), author: z.object({ displayName: z.string().optional() }).optional() })), total: z.number(), startAt: z.number() });

export const jiraIssueExtras = defineJob({
  name: 'jira.issue_extras',
  schema: z.object({ instanceId: z.uuid(), issueIds: z.array(z.string().regex(/^\d{1,18}$/)).min(1).max(100) }),
  policy: { retryLimit: 5, retryDelaySeconds: 30, retryBackoff: true, batchSize: 1 },
  handler: async (job, { deps, logger }: { deps: JobDeps; logger: Logger }) => {
    // The connector from the service's list, not imported: its sync queues this job (no import cycle).
    const jira = deps.connectors.find((connector): connector is ConnectorDefinition<JiraSettings, JiraClient> => connector.id === 'jira');
    if (!jira) return { skipped: 'no_connector' };
    return withConnectorInstance(deps, logger, jira, job.instanceId, async ({ instance, client }) => {
      const actor = { ...SYSTEM_ACTOR, via: `jira:${instance.name}` };
      const domain = { db: deps.db, events: deps.events, clock: deps.clock };
      let comments = 0;
      let mirrored = 0;
      let refused = 0;
      for (const issueId of job.issueIds) {
        const task = await deps.db.selectFrom('task_links').select('task_id').where('kind', '=', 'external').where('target', '=', issueTarget(instance.name, issueId)).executeTakeFirst();
        if (!task) continue;
        for (let startAt = 0; ; ) {
          const page = await client.send<unknown>({ method: 'GET', path: `/issue/${issueId}/comment`, query: { startAt, maxResults: 100, orderBy: 'created' } });
          if (!page.ok) {
            if (page.failure.kind === 'http' && page.failure.status === 404) break; // gone meanwhile: reconciliation's business
            throw Object.assign(new Error(`Jira comments of issue ${issueId} could not be read (${page.failure.code})`), { code: page.failure.code });
          }
          const parsed = commentPage.safeParse(page.value.body);
          if (!parsed.success) break;
          for (const comment of parsed.data.comments) {
            const text = plainText(comment.body, 3900);
            if (!text) continue;
            const added = await commentOnTask(domain, actor, task.task_id, `${comment.author?.displayName ?? 'Someone'} in Jira: ${text}`, `jira:${instance.name}:comment:${comment.id}`);
            if (added.ok && added.value.added) comments++;
          }
          startAt = parsed.data.startAt + parsed.data.comments.length;
          if (parsed.data.comments.length === 0 || startAt >= parsed.data.total) break;
        }
        const issue = await client.send<{ fields?: { attachment?: unknown[] } }>({ method: 'GET', path: `/issue/${issueId}`, query: { fields: 'attachment' } });
        if (!issue.ok) {
          if (issue.failure.kind === 'http' && issue.failure.status === 404) continue;
          throw Object.assign(new Error(`Jira issue ${issueId} could not be read (${issue.failure.code})`), { code: issue.failure.code });
        }
        const files = (issue.value.body?.fields?.attachment ?? []).flatMap((raw) => {
          const parsed = attachment.safeParse(raw);
          return parsed.success ? [parsed.data] : [];
        });
        const known = new Set(
          files.length === 0 ? [] : (await deps.db.selectFrom('external_records').select('external_id').where('config_id', '=', instance.id).where('model', '=', 'attachment').where('external_id', 'in', files.map((file) => file.id)).execute()).map((row) => row.external_id),
        );
        for (const file of files.filter((candidate) => !known.has(candidate.id))) {
          const download = await client.send<Buffer>({ method: 'GET', path: `/attachment/content/${file.id}`, query: { redirect: 'false' }, binary: true });
          if (!download.ok) throw Object.assign(new Error(`Jira attachment ${file.id} could not be downloaded (${download.failure.code})`), { code: download.failure.code });
          const result = await ingestEvidence(domain, deps.evidence, actor, { content: Readable.from([download.value.body]), fileName: file.filename, source: 'jira', taskIds: [task.task_id] });
          const outcome = result.ok ? outcomeFields(result.value) : { refused: result.refusal.code, reason: result.refusal.message };
          if (result.ok) mirrored++;
          else refused++;
          await deps.db
            .insertInto('external_records')
            .values({ config_id: instance.id, model: 'attachment', external_id: file.id, number: file.filename, content_hash: result.ok ? result.value.sha256 : 'refused', source_updated_at: null, data: JSON.stringify({ issue: issueId, fileName: file.filename, ...outcome }) })
            .onConflict((oc) => oc.columns(['config_id', 'model', 'external_id']).doNothing())
            .execute();
        }
      }
      return { issues: job.issueIds.length, comments, mirrored, refused };
    });
  },
});
