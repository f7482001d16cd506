/**
 * ServiceNow records as we read them (Table API) and what they become here. Shapes from the Table API examples
 * in ../shared/fixtures (servicenow_table_*).
 *
 * We ask for every value as a string (`sysparm_exclude_reference_link=true`, `sysparm_display_value=false`), but
 * a reference field may still arrive as an object, depending on the query options and the instance: `{ link,
 * value }` (the fixtures' shape, without the exclude option) or `{ display_value, link, value }`
 * (sysparm_display_value=all). Either way a reference is its sys_id here, so the content hash of a record does
 * not depend on how it was sent.
 */
import { z } from 'zod';

/** `YYYY-MM-DD HH:mm:ss`, UTC, second resolution: ServiceNow's glide date-time as the Table API returns it. */
export const GLIDE_DATE_TIME = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
const sysId = z.string().regex(/^[0-9a-f]{32}$/, 'must be a 32-character sys_id');
const glideTime = z.string().regex(GLIDE_DATE_TIME, 'must be a date-time like 2026-01-31 23:59:59');
const optionalText = z.string().optional().default('');
/** A reference field: the sys_id as a string, or an object carrying it as `value` (its link and display value dropped). */
const reference = z
  .union([z.string(), z.object({ value: z.string(), link: z.string().optional(), display_value: z.string().nullable().optional() }).transform((ref) => ref.value)], { message: 'must be a sys_id or a reference object with a value' })
  .optional()
  .default('');

export const INCIDENT_FIELDS = ['sys_id', 'number', 'short_description', 'priority', 'state', 'impact', 'urgency', 'active', 'assignment_group', 'assigned_to', 'correlation_id', 'sys_updated_on'] as const;

export const incidentRecord = z.object({
  sys_id: sysId,
  number: z.string().regex(/^[A-Z]{2,10}\d{4,12}$/, 'must be a record number like INC0012345'),
  short_description: optionalText,
  priority: z.enum(['1', '2', '3', '4', '5'], { message: 'must be 1 to 5' }),
  state: z.string().regex(/^-?\d+$/, 'must be a state code'),
  impact: optionalText,
  urgency: optionalText,
  active: optionalText,
  assignment_group: reference,
  assigned_to: reference,
  correlation_id: optionalText,
  sys_updated_on: glideTime,
});
export type IncidentRecord = z.infer<typeof incidentRecord>;

export const CHANGE_FIELDS = ['sys_id', 'number', 'short_description', 'state', 'type', 'risk', 'priority', 'start_date', 'end_date', 'assignment_group', 'correlation_id', 'sys_updated_on'] as const;

export const changeRequestRecord = z.object({
  sys_id: sysId,
  number: z.string().regex(/^[A-Z]{2,10}\d{4,12}$/, 'must be a record number like CHG0012345'),
  short_description: optionalText,
  state: z.string().regex(/^-?\d+$/, 'must be a state code'),
  type: optionalText,
  risk: optionalText,
  priority: optionalText,
  start_date: optionalText,
  end_date: optionalText,
  assignment_group: reference,
  correlation_id: optionalText,
  sys_updated_on: glideTime,
});
export type ChangeRequestRecord = z.infer<typeof changeRequestRecord>;

/** Incident `state` codes of the base system (sys_choice for incident.state). */
const INCIDENT_STATES: Record<string, string> = { '1': 'new', '2': 'in_progress', '3': 'on_hold', '6': 'resolved', '7': 'closed', '8': 'cancelled' };

export function incidentState(code: string): string {
  return INCIDENT_STATES[code] ?? `state_${code}`;
}

/** What of an incident counts as a change: not its update stamp or counters, so a work note alone is no change. */
export function incidentContent(record: IncidentRecord): Record<string, unknown> {
  const { sys_updated_on: _updated, sys_id: _id, ...content } = record;
  return content;
}

export function changeRequestContent(record: ChangeRequestRecord): Record<string, unknown> {
  const { sys_updated_on: _updated, sys_id: _id, ...content } = record;
  return content;
}

/** The domain's source system name for an instance: `servicenow`, or `servicenow:<name>` beside the default. */
export function sourceSystem(instanceName: string): string {
  return instanceName === 'default' ? 'servicenow' : `servicenow:${instanceName}`;
}
