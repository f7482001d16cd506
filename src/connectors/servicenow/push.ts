/**
 * Writes back to ServiceNow, through the connectors' push queue (src/connectors/sdk/push.ts: in order, waiting
 * while the write circuit is open):
 *
 * - `incident.acknowledge`, from `/projectx ack INC…`: a work note naming who acknowledged and when, plus the
 *   state and assignment group the instance is configured with (`ack.state`, default 2 "In Progress";
 *   `ack.assignmentGroup`). The incident ServiceNow answers with is recorded in the ledger at once, so the next
 *   pull finds its own change already there: no change, no event (echo suppression).
 * - `task.create`, from a remediation task created in ProjectX: a record in ServiceNow's `task` table with
 *   `correlation_id` `projectx:task:<id>`. Safe to repeat: an existing record with that correlation id is
 *   reused, not duplicated. The ServiceNow record is linked to the task (`servicenow:task:<sys_id>`). Tasks that
 *   came from ServiceNow (linked to an incident of it) are not sent back.
 */
import { z } from 'zod';
import type { Db } from '../../db/database.ts';
import type { DomainEvent } from '../../domain/events.ts';
import { getTask } from '../../domain/tasks.ts';
import type { PushDefinition, PushIntent } from '../sdk/contract.ts';
import { recordAnswer } from '../sdk/ledger.ts';
import type { ServiceNowClient, ServiceNowSettings } from './client.ts';
import { INCIDENT_FIELDS } from './mapper.ts';
import { incidents } from './sync.ts';

const TASK_FIELDS = ['sys_id', 'number', 'correlation_id', 'short_description', 'state'];
const CORRELATION_PREFIX = 'projectx:task:';

const acknowledge = z.object({ sysId: z.string().regex(/^[0-9a-f]{32}$/), workNote: z.string().min(1).max(4000), state: z.string().optional(), assignmentGroup: z.string().optional() });
const createTask = z.object({ taskId: z.string().min(1), shortDescription: z.string().min(1).max(160), description: z.string().max(4000), priority: z.enum(['1', '2', '3', '4', '5']) });

export const serviceNowPush: PushDefinition<ServiceNowSettings, ServiceNowClient> = {
  operations: {
    'incident.acknowledge': {
      payload: acknowledge,
      send: ({ client, payload }) =>
        client.http.send({
          method: 'PATCH',
          path: `/api/now/table/incident/${payload.sysId}`,
          query: { sysparm_fields: INCIDENT_FIELDS.join(','), sysparm_exclude_reference_link: 'true' },
          json: { work_notes: payload.workNote, ...(payload.state ? { state: payload.state } : {}), ...(payload.assignmentGroup ? { assignment_group: payload.assignmentGroup } : {}) },
          // The same note and state again change nothing that matters: safe to resend after a lost answer.
          idempotent: true,
        }),
      sent: async ({ trx, connector, instance, response, runtime, now }) => {
        const record = (response as { result?: unknown } | undefined)?.result;
        if (record === undefined) return { recorded: false };
        // Stored like a pulled record: our own change is then no change to the next pull, and whatever else
        // changed in the incident meanwhile takes effect now (the mirror, a P1 escalation).
        const stored = await recordAnswer(trx, { runtime, connector, instance, model: incidents, record, now });
        const number = (record as { number?: unknown }).number;
        return { recorded: !stored.rejected, changed: stored.changed, ...(typeof number === 'string' ? { number } : {}) };
      },
    },
    'task.create': {
      payload: createTask,
      send: async ({ client, payload }) => {
        const correlation = `${CORRELATION_PREFIX}${payload.taskId}`;
        const existing = await client.http.send<{ result: { sys_id: string }[] }>({ method: 'GET', path: '/api/now/table/task', query: { sysparm_query: `correlation_id=${correlation}`, sysparm_fields: TASK_FIELDS.join(','), sysparm_limit: 1 } });
        if (!existing.ok) return existing;
        const found = existing.value.body?.result?.[0];
        if (found) return { ok: true, value: { ...existing.value, body: { result: found } } };
        return client.http.send({
          method: 'POST',
          path: '/api/now/table/task',
          query: { sysparm_fields: TASK_FIELDS.join(',') },
          json: { short_description: payload.shortDescription, description: payload.description, priority: payload.priority, correlation_id: correlation, correlation_display: 'ProjectX' },
        });
      },
      sent: async ({ trx, instance, payload, response }) => {
        const result = (response as { result?: { sys_id?: unknown; number?: unknown } } | undefined)?.result;
        const sysId = typeof result?.sys_id === 'string' ? result.sys_id : undefined;
        if (!sysId) return { linked: false };
        await trx
          .insertInto('task_links')
          .values({ task_id: payload.taskId, kind: 'external', target: `servicenow:task:${sysId}`, url: `${instance.settings.baseUrl.replace(/\/$/, '')}/task.do?sys_id=${sysId}` })
          .onConflict((oc) => oc.doNothing())
          .execute();
        return { linked: true, sysId, number: typeof result?.number === 'string' ? result.number : null };
      },
    },
  },

  async fromEvent(event: DomainEvent, { db }: { db: Db }): Promise<PushIntent[]> {
    if (event.type === 'incident.acknowledged') {
      const source = typeof event.data?.source === 'string' ? event.data.source : '';
      const externalId = typeof event.data?.externalId === 'string' ? event.data.externalId : '';
      if (!source.startsWith('servicenow') || !externalId) return [];
      const name = source === 'servicenow' ? 'default' : source.slice('servicenow:'.length);
      const instance = await db.selectFrom('integration_configs').select(['id', 'settings']).where('type', '=', 'servicenow').where('name', '=', name).executeTakeFirst();
      if (!instance) return [];
      const ack = (instance.settings as { ack?: { state?: string; assignmentGroup?: string } }).ack ?? {};
      const who = typeof event.data?.byEmail === 'string' ? event.data.byEmail : 'a ProjectX user';
      return [
        {
          instanceId: instance.id,
          operation: 'incident.acknowledge',
          recordKey: `incident/${externalId}`,
          payload: { sysId: externalId, workNote: `Acknowledged in ProjectX by ${who} at ${event.occurredAt}.`, state: ack.state ?? '2', ...(ack.assignmentGroup ? { assignmentGroup: ack.assignmentGroup } : {}) },
        },
      ];
    }
    if (event.type === 'task.created' && event.subject.kind === 'task') {
      const task = await getTask(db, event.subject.id);
      if (!task || task.type !== 'remediation') return [];
      // A task raised from a ServiceNow record is ServiceNow's already: not sent back (no echo).
      if (task.links.some((link) => link.target.startsWith('servicenow:'))) return [];
      const targets = await db.selectFrom('integration_configs').select(['id', 'settings']).where('type', '=', 'servicenow').where('enabled', '=', true).execute();
      return targets
        .filter((instance) => (instance.settings as { pushRemediationTasks?: boolean }).pushRemediationTasks !== false)
        .map((instance) => ({
          instanceId: instance.id,
          operation: 'task.create',
          recordKey: `task/${task.id}`,
          payload: { taskId: task.id, shortDescription: `${task.ref} ${task.title}`.slice(0, 160), description: (task.description ?? '').slice(0, 4000), priority: task.priority === 'high' ? '2' : task.priority === 'low' ? '4' : '3' },
        }));
    }
    return [];
  },
};
