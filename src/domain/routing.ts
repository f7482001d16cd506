/**
 * Notification routing: rules from an event type (exact, or a prefix like `incident.*`) and optional filters
 * (highest priority, control) to targets: a channel on a surface, the assignee's DM, the approvers' DMs, an
 * email address. The runbook's default channels are seeded by the migration and managed with `projectx routing`.
 */
import type { Kysely, Selectable } from 'kysely';
import type { Database, NotificationRulesTable, Surface, TargetKind } from '../db/schema.ts';
import type { DomainEvent } from './events.ts';
import { type Result, ok, refuse } from './result.ts';

export type Rule = Selectable<NotificationRulesTable>;

export interface RoutedTarget {
  surface: Surface;
  kind: TargetKind;
  /** A channel name or id, `user:<id>` for a DM, or an email address. */
  target: string;
}

export function ruleMatches(rule: Pick<Rule, 'event_pattern' | 'max_priority' | 'control_id' | 'enabled'>, event: DomainEvent): boolean {
  if (!rule.enabled) return false;
  const pattern = rule.event_pattern;
  const typeMatches = pattern.endsWith('*') ? event.type.startsWith(pattern.slice(0, -1)) : event.type === pattern;
  if (!typeMatches) return false;
  if (rule.max_priority !== null && (event.priority === undefined || event.priority > rule.max_priority)) return false;
  if (rule.control_id !== null && !(event.controlIds ?? []).includes(rule.control_id)) return false;
  return true;
}

/** Every distinct target the event goes to. */
export async function routeEvent(db: Kysely<Database>, event: DomainEvent): Promise<RoutedTarget[]> {
  const rules = await db.selectFrom('notification_rules').selectAll().where('enabled', '=', true).execute();
  const targets = new Map<string, RoutedTarget>();
  const add = (target: RoutedTarget) => targets.set(`${target.surface}|${target.kind}|${target.target}`, target);
  for (const rule of rules.filter((candidate) => ruleMatches(candidate, event))) {
    if (rule.target_kind === 'assignee_dm') {
      if (event.assigneeId) add({ surface: rule.surface, kind: 'assignee_dm', target: `user:${event.assigneeId}` });
    } else if (rule.target_kind === 'approvers_dm') {
      for (const id of event.approverIds ?? []) add({ surface: rule.surface, kind: 'approvers_dm', target: `user:${id}` });
    } else if (rule.target) {
      add({ surface: rule.surface, kind: rule.target_kind, target: rule.target });
    }
  }
  return [...targets.values()];
}

export interface RuleInput {
  eventPattern: string;
  surface: Surface;
  targetKind: TargetKind;
  target?: string | undefined;
  maxPriority?: number | undefined;
  controlId?: string | undefined;
}

export async function addRule(db: Kysely<Database>, input: RuleInput): Promise<Result<Rule>> {
  if (!/^[a-z_]+(\.[a-z_]+)*(\.\*)?$|^\*$/.test(input.eventPattern)) return refuse('invalid_pattern', `"${input.eventPattern}" is not an event type or prefix (like incident.* or task.assigned)`);
  if ((input.targetKind === 'channel' || input.targetKind === 'email') && !input.target) return refuse('missing_target', `a ${input.targetKind} rule needs a target`);
  const row = await db
    .insertInto('notification_rules')
    .values({
      event_pattern: input.eventPattern,
      surface: input.surface,
      target_kind: input.targetKind,
      target: input.target ?? null,
      max_priority: input.maxPriority ?? null,
      control_id: input.controlId?.toUpperCase() ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return ok(row);
}

export async function listRules(db: Kysely<Database>): Promise<Rule[]> {
  return db.selectFrom('notification_rules').selectAll().orderBy('event_pattern').orderBy('created_at').execute();
}

export async function removeRule(db: Kysely<Database>, id: string): Promise<boolean> {
  const result = await db.deleteFrom('notification_rules').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}
