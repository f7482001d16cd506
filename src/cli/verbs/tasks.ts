/** `projectx tasks …`: create tasks (approvals with their policy, reviews, remediation), reassign and list them. */
import type { Role, TaskPriority, TaskType } from '../../db/schema.ts';
import { CLI_ACTOR } from '../../domain/actor.ts';
import { TASK_STATES, TASK_TYPES, assignTask, createTask, listTasks, parseTaskRef } from '../../domain/tasks.ts';
import { ROLES } from '../../domain/users.ts';
import { UsageError, limitOption, must, one, parse, strings } from '../args.ts';
import { type OperatorContext, userByEmail } from '../context.ts';
import { printList } from '../output.ts';
import { type Io, defineVerb } from '../verb.ts';

const DURATION = /^(\d+)([mhd])$/;

export const tasksVerb = defineVerb({
  name: 'tasks',
  summary: 'Tasks: approvals, reviews, remediation, evidence requests',
  commands: [
    {
      name: 'create',
      usage:
        'tasks create --type <type> --title "<title>" [--assignee <email>] [--requester <email>] [--approver <email>]... [--approver-role <role>]... [--control-owners] [--quorum <n>] [--expires-in <n>(m|h|d)] [--due <date>] [--control <id>]... [--priority low|normal|high] [--description "<text>"]',
      summary: `Types: ${TASK_TYPES.join(', ')}. Any --approver, --approver-role or --control-owners makes it wait for approval; the requester may never approve it.`,
      run: create,
    },
    {
      name: 'assign',
      usage: 'tasks assign <T-id> (<email> | --none)',
      summary: 'Reassigns a task (audited; the new assignee is notified; a linked Jira issue is reassigned too).',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { none: { type: 'boolean' } });
        const id = positionals[0] ? parseTaskRef(positionals[0]) : undefined;
        if (!id) throw new UsageError('name the task (T-42)');
        if ((positionals[1] === undefined) === (values.none !== true) || positionals.length > 2) throw new UsageError('give the assignee\'s email, or --none');
        const user = positionals[1] ? await userByEmail(ctx, positionals[1]) : undefined;
        const task = must(await assignTask(ctx.domain, CLI_ACTOR, id, user?.id ?? null));
        io.out(`${task.ref} ${user ? `assigned to ${user.email}` : 'unassigned'}`);
        return 0;
      },
    },
    {
      name: 'list',
      usage: 'tasks list [--state <state>]... [--limit <n>]',
      summary: `Newest first. States: ${TASK_STATES.join(', ')}.`,
      list: true,
      async run(ctx, args, io) {
        const { values } = parse(args, { state: { type: 'string', multiple: true }, limit: { type: 'string' } });
        const states = strings(values.state);
        const bad = states.filter((state) => !(TASK_STATES as string[]).includes(state));
        if (bad.length > 0) throw new UsageError(`unknown state ${bad.join(', ')} (states: ${TASK_STATES.join(', ')})`);
        printList(io, await listTasks(ctx.db, { states: states as never, limit: limitOption(values.limit, 200) }), {
          line: (task) => `${task.ref}\t${task.state}\t${task.type}\t${task.title}`,
          json: (task) => ({ ref: task.ref, id: task.id, type: task.type, state: task.state, priority: task.priority, title: task.title, assigneeId: task.assigneeId, requesterId: task.requesterId, dueAt: task.dueAt, links: task.links, createdAt: task.createdAt, updatedAt: task.updatedAt }),
          empty: 'no tasks',
        });
        return 0;
      },
    },
  ],
});

async function create(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    type: { type: 'string' },
    title: { type: 'string' },
    description: { type: 'string' },
    assignee: { type: 'string' },
    requester: { type: 'string' },
    approver: { type: 'string', multiple: true },
    'approver-role': { type: 'string', multiple: true },
    'control-owners': { type: 'boolean' },
    quorum: { type: 'string' },
    'expires-in': { type: 'string' },
    due: { type: 'string' },
    control: { type: 'string', multiple: true },
    priority: { type: 'string' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (quote a title with spaces: --title "…")`);
  const type = one(values.type) as TaskType | undefined;
  if (!type || !TASK_TYPES.includes(type)) throw new UsageError(`--type must be one of ${TASK_TYPES.join(', ')}`);
  const title = one(values.title);
  if (!title) throw new UsageError('--title is required');
  const priority = one(values.priority) as TaskPriority | undefined;
  if (priority && !['low', 'normal', 'high'].includes(priority)) throw new UsageError('--priority must be low, normal or high');
  const approverRoles = strings(values['approver-role']) as Role[];
  if (approverRoles.some((role) => !ROLES.includes(role))) throw new UsageError(`--approver-role must be one of ${ROLES.join(', ')}`);
  let expiresAt: string | null = null;
  const expiresIn = one(values['expires-in']);
  if (expiresIn) {
    const match = DURATION.exec(expiresIn);
    if (!match) throw new UsageError('--expires-in takes a duration like 30m, 12h or 7d');
    const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'm' | 'h' | 'd'];
    expiresAt = new Date(ctx.domain.clock.now().getTime() + Number(match[1]) * unit).toISOString();
  }
  const due = one(values.due);
  if (due && Number.isNaN(Date.parse(due))) throw new UsageError('--due takes a date like 2026-12-01');
  const quorum = one(values.quorum);
  if (quorum !== undefined && !/^\d+$/.test(quorum)) throw new UsageError('--quorum takes a whole number');
  const assignee = values.assignee ? await userByEmail(ctx, one(values.assignee), '--assignee') : undefined;
  const requester = values.requester ? await userByEmail(ctx, one(values.requester), '--requester') : undefined;
  const approverIds: string[] = [];
  for (const email of strings(values.approver)) approverIds.push((await userByEmail(ctx, email, '--approver')).id);
  const wantsPolicy = approverIds.length > 0 || approverRoles.length > 0 || values['control-owners'] === true;
  const task = must(
    await createTask(ctx.domain, CLI_ACTOR, {
      type,
      title,
      description: one(values.description),
      priority,
      assigneeId: assignee?.id,
      requesterId: requester?.id,
      dueAt: due ? new Date(due) : undefined,
      controlIds: strings(values.control),
      policy: wantsPolicy ? { approverUserIds: approverIds, approverRoles, controlOwners: values['control-owners'] === true, quorum: quorum ? Number(quorum) : 1, expiresAt } : undefined,
    }),
  );
  io.out(`created ${task.ref} (${task.state}) ${task.title}`);
  return 0;
}
