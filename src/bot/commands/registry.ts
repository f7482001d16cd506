/**
 * Every chat command: its usage, what it does, the permission it needs, and its handler (one file each under
 * handlers/). `dispatch` authorizes against `permission` before any handler runs.
 */
import type { Permission } from '../../domain/permissions.ts';
import type { Reply } from '../message.ts';
import type { CommandContext } from './context.ts';
import { ack } from './handlers/ack.ts';
import { decideTask } from './handlers/decide.ts';
import { evidence } from './handlers/evidence.ts';
import { help } from './handlers/help.ts';
import { incident } from './handlers/incident.ts';
import { link } from './handlers/link.ts';
import { status } from './handlers/status.ts';
import { task } from './handlers/task.ts';
import { tasks } from './handlers/tasks.ts';
import { type Command, USAGE, type Verb } from './parse.ts';

export interface CommandSpec<V extends Verb = Verb> {
  verb: V;
  usage: string;
  summary: string;
  permission: Permission;
  run: (ctx: CommandContext, command: Extract<Command, { verb: V }>) => Promise<Reply>;
}

const spec = <V extends Verb>(verb: V, summary: string, permission: Permission, run: CommandSpec<V>['run']): CommandSpec<V> => ({ verb, usage: USAGE[verb], summary, permission, run });

export const COMMANDS: readonly CommandSpec[] = [
  spec('help', 'what you can do here', 'help', (ctx) => help(ctx, COMMANDS)),
  spec('tasks', 'your open tasks and the approvals waiting for you (`--all`: every open task)', 'tasks.read_own', tasks),
  spec('task', 'one task, with its buttons', 'tasks.read_own', task),
  spec('approve', 'approve a task (a reason is optional)', 'tasks.decide', (ctx, command) => decideTask(ctx, command, 'approve')),
  spec('deny', 'deny a task (a reason is required)', 'tasks.decide', (ctx, command) => decideTask(ctx, command, 'deny')),
  spec('ack', 'acknowledge an incident', 'incidents.acknowledge', ack),
  spec('incident', 'look up an incident', 'incidents.read', incident),
  spec('evidence', 'upload evidence for a control or task', 'evidence.upload', evidence),
  spec('status', 'integration health', 'status.read', status),
  spec('link', 'link your chat account to ProjectX', 'link', link),
] as CommandSpec[];

export function commandFor(verb: Verb): CommandSpec {
  return COMMANDS.find((candidate) => candidate.verb === verb)!;
}
