/**
 * Attachments of synced ServiceNow incidents mirrored into evidence (source `servicenow`), linked to the
 * incident's tasks in ProjectX (evidence always belongs to a control or a task: an incident with no task has
 * nowhere to put it, so only incidents we track with a task, such as a P1's review task, are mirrored).
 *
 * `servicenow.attachments` lists the incident's attachments (Attachment API), downloads each one not mirrored
 * yet and ingests it like any evidence (type checked by content, SHA-256 while stored, 10 MB limit). Each mirrored
 * attachment is remembered in the ledger (model `attachment`), so a repeat mirrors nothing twice; one the
 * evidence rules refuse (a type we do not keep, too large) is remembered as refused, with the reason, and not
 * fetched again.
 */
import { Readable } from 'node:stream';
import { z } from 'zod';
import { ingestEvidence } from '../evidence-stores/ingest.ts';
import { outcomeFields } from '../evidence-stores/pipeline.ts';
import { SYSTEM_ACTOR } from '../../domain/actor.ts';
import { withConnectorInstance } from '../../jobs/connector-context.ts';
import { defineJob } from '../../jobs/define-job.ts';
import type { JobDeps } from '../../jobs/job-deps.ts';
import type { ConnectorDefinition } from '../sdk/contract.ts';
import type { Logger } from '../../logger.ts';
import type { ServiceNowClient, ServiceNowSettings } from './client.ts';

const attachment = z.object({ sys_id: z.string().regex(/^[0-9a-f]{32}$/), file_name: z.string().min(1).max(255), content_type: z.string().optional(), size_bytes: z.string().optional() });

export const servicenowAttachments = defineJob({
  name: 'servicenow.attachments',
  schema: z.object({ instanceId: z.uuid(), incidentSysId: z.string().regex(/^[0-9a-f]{32}$/), incidentId: z.uuid() }),
  policy: { retryLimit: 5, retryDelaySeconds: 30, retryBackoff: true, batchSize: 1 },
  handler: async (job, { deps, logger }: { deps: JobDeps; logger: Logger }) => {
    const tasks = (await deps.db.selectFrom('task_links').select('task_id').where('kind', '=', 'incident').where('target', '=', job.incidentId).execute()).map((row) => row.task_id);
    if (tasks.length === 0) return { skipped: 'no_task' };
    // The connector from the service's list, not imported: its definition enqueues this job (no import cycle).
    const servicenow = deps.connectors.find((connector): connector is ConnectorDefinition<ServiceNowSettings, ServiceNowClient> => connector.id === 'servicenow');
    if (!servicenow) return { skipped: 'no_connector' };
    return withConnectorInstance(deps, logger, servicenow, job.instanceId, async ({ instance, client }) => {
      const listed = await client.http.send<{ result: unknown[] }>({ method: 'GET', path: '/api/now/attachment', query: { sysparm_query: `table_name=incident^table_sys_id=${job.incidentSysId}`, sysparm_limit: 100 } });
      if (!listed.ok) throw Object.assign(new Error(`ServiceNow attachments could not be listed (${listed.failure.code})`), { code: listed.failure.code });
      const files = (Array.isArray(listed.value.body?.result) ? listed.value.body.result : []).flatMap((raw) => {
        const parsed = attachment.safeParse(raw);
        return parsed.success ? [parsed.data] : [];
      });
      const known = new Set(
        files.length === 0
          ? []
          : (await deps.db.selectFrom('external_records').select('external_id').where('config_id', '=', instance.id).where('model', '=', 'attachment').where('external_id', 'in', files.map((file) => file.sys_id)).execute()).map((row) => row.external_id),
      );
      let mirrored = 0;
      let refused = 0;
      for (const file of files.filter((candidate) => !known.has(candidate.sys_id))) {
        const download = await client.http.send<Buffer>({ method: 'GET', path: `/api/now/attachment/${file.sys_id}/file`, binary: true });
        if (!download.ok) throw Object.assign(new Error(`ServiceNow attachment ${file.sys_id} could not be downloaded (${download.failure.code})`), { code: download.failure.code });
        const result = await ingestEvidence({ db: deps.db, events: deps.events, clock: deps.clock }, deps.evidence, { ...SYSTEM_ACTOR, via: 'servicenow' }, { content: Readable.from([download.value.body]), fileName: file.file_name, source: 'servicenow', taskIds: tasks });
        const outcome = result.ok ? outcomeFields(result.value) : { refused: result.refusal.code, reason: result.refusal.message };
        if (result.ok) mirrored++;
        else refused++;
        await deps.db
          .insertInto('external_records')
          .values({ config_id: instance.id, model: 'attachment', external_id: file.sys_id, number: file.file_name, content_hash: result.ok ? result.value.sha256 : 'refused', source_updated_at: null, data: JSON.stringify({ incident: job.incidentSysId, fileName: file.file_name, ...outcome }) })
          .onConflict((oc) => oc.columns(['config_id', 'model', 'external_id']).doNothing())
          .execute();
      }
      return { listed: files.length, mirrored, refused };
    });
  },
});
