/**
 * Operator verbs of the `projectx` CLI: the chat in a terminal (`shell`, `chat`) and the seed/admin verbs a
 * newcomer needs to try everything without a chat platform (`users`, `controls`, `tasks`, `incidents`,
 * `routing`, `audit`, `evidence`). Every verb runs against the real database through the domain layer, so the
 * same rules and the same audit trail apply as in Slack.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { LocalEvidenceStore } from '../../connectors/evidence-stores/local.ts';
import { ingestEvidence } from '../../connectors/evidence-stores/ingest.ts';
import { integrationHealth } from '../../connectors/health.ts';
import type { Role, Surface, TargetKind, TaskPriority, TaskType } from '../../db/schema.ts';
import { type Actor, CLI_ACTOR } from '../../domain/actor.ts';
import { appendAudit, verifyAuditChain } from '../../domain/audit.ts';
import { createControl, searchControls } from '../../domain/controls.ts';
import { upsertIncident } from '../../domain/incidents.ts';
import type { Result } from '../../domain/result.ts';
import { addRule, listRules, removeRule } from '../../domain/routing.ts';
import { TASK_STATES, TASK_TYPES, createTask, listTasks } from '../../domain/tasks.ts';
import { ROLES, type User, createUser, findUserByEmail, linkIdentity, listUsers, redeemLinkCode, setRoles } from '../../domain/users.ts';
import type { OperatorContext } from '../../main.ts';
import type { CommandContext } from '../commands/context.ts';
import { ConsoleSession } from './session.ts';
import { partnersVerb, webhooksVerb } from '../../connectors/webhook-bridge/cli.ts';
import { subscriptionsVerb } from '../../connectors/webhook-bridge/outbound/cli.ts';
import { emailVerb } from '../../connectors/email/cli.ts';
import { connectorsVerb, credentialsVerb, pushesVerb, syncVerb } from '../../connectors/sdk/cli.ts';

/** A usage problem: the message and exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** Lines typed by the person (for `shell`). */
  input: NodeJS.ReadableStream;
  interactive: boolean;
}

export const OPERATOR_VERBS = ['shell', 'chat', 'users', 'controls', 'tasks', 'incidents', 'routing', 'audit', 'evidence', 'partners', 'webhooks', 'subscriptions', 'email', 'sync', 'credentials', 'pushes', 'connectors'] as const;
export type OperatorVerb = (typeof OPERATOR_VERBS)[number];

export const OPERATOR_USAGE = `  shell --as <email>                          the bot in a terminal (press buttons with "press N")
  chat --as <email> "<text>"                  one command, e.g. chat --as ann@x.test "approve T-1"
  users add <email> [--name "<name>"] [--role <role>]...   roles: ${ROLES.join(', ')}
  users list | users roles <email> <role,...>
  users link <email> (--slack <team or enterprise id>:<user id> | --teams <tenant id>:<object id>)
  users link-code <code> <email>              confirm a code a chat user got from /projectx link
  controls add <id> --title "<title>" [--owner <email>] [--program <id>] | controls list [<search>]
  tasks create --type <type> --title "<title>" [--assignee <email>] [--requester <email>] [--approver <email>]...
               [--approver-role <role>]... [--control-owners] [--quorum <n>] [--expires-in <n>(m|h|d)]
               [--due <date>] [--control <id>]... [--priority low|normal|high] [--description "<text>"]
  tasks list [--state <state>]...
  incidents add <number> --priority <1-5> --description "<text>" [--state <state>] [--source <system>]
  routing list | routing remove <id>
  routing add --event <type or prefix.*> (--channel <name> | --assignee-dm | --approvers-dm | --email <address>)
              [--surface slack|teams|email] [--max-priority <n>] [--control <id>]
  audit verify [--tenant <tenant>]            walk the audit hash chain; exit 1 on a break
  evidence add --as <email> (--control <id> | --task <id>)... <file>...
  partners add <key> [--scheme standard|github|jira] [--mapping-file <json>] [--description "<text>"]
               [--email-sender <address or @domain>]...   who may act for it by mail (partner+<key>@…)
  partners list | partners rotate-secret <key> [--overlap-hours <n>] | partners remove <key>
  webhooks quarantine list [--partner <key>] | webhooks quarantine show <id>
  webhooks quarantine replay <id> [--body-file <fixed.json>]
  webhooks dead list [--partner <key>] | webhooks dead replay <id>
  subscriptions add --url <url> --event <type or prefix.*>... [--description "<text>"]   prints the secret once
  subscriptions list | subscriptions remove <id> | subscriptions enable <id>
  subscriptions deliveries <id> [--limit <n>]  recent outbound webhook deliveries with every attempt
  email quarantine list [--limit <n>] | email quarantine show <id> | email quarantine replay <id>
  email dead list [--limit <n>] | email dead show <id> | email dead replay <id>
  connectors list | connectors enable|disable <connector> [--instance <name>]
  connectors configure <connector> [--instance <name>] [--settings-file <json>] [--credentials-stdin]
                                              credentials as a JSON object on stdin, e.g. {"client_secret": "…"}
  sync <connector> [--full] [--wait] [--model <name>]... [--instance <name>] [--timeout <seconds>]
                                              run a sync now; with --wait, print each run's summary as JSON
  credentials rotate-key [--all]              re-encrypt every stored secret under the first PROJECTX_ENCRYPTION_KEY
  pushes list [--status pending|failed|sent] [--limit <n>] | pushes replay <id>
                                              writes to connected systems: waiting, failed for good, sent`;

type Options = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

export function parse<T extends Options>(args: readonly string[], options: T) {
  try {
    return parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

export const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : typeof value === 'string' ? [value] : []);
export const one = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** Unwraps a domain result: prints the refusal and exits 1. */
export function must<T>(result: Result<T>): T {
  if (!result.ok) throw Object.assign(new Error(result.refusal.message), { exitCode: 1, code: result.refusal.code });
  return result.value;
}

async function userByEmail(ctx: OperatorContext, email: string | undefined, what = '--as'): Promise<User> {
  if (!email) throw new UsageError(`${what} <email> is required`);
  const user = await findUserByEmail(ctx.db, email);
  if (!user) throw Object.assign(new Error(`no user with email ${email} (add one with: projectx users add ${email} --role …)`), { exitCode: 1 });
  return user;
}

function commandContext(ctx: OperatorContext, actor: Actor): CommandContext {
  return { domain: ctx.domain, actor, integrations: () => integrationHealth(ctx.db, ctx.config) };
}

/** Runs an operator verb; returns the exit code. */
export async function runOperatorVerb(ctx: OperatorContext, verb: OperatorVerb, args: readonly string[], io: Io): Promise<number> {
  switch (verb) {
    case 'shell':
      return shell(ctx, args, io);
    case 'chat': {
      const { values, positionals } = parse(args, { as: { type: 'string' } });
      const user = await userByEmail(ctx, one(values.as));
      if (positionals.length === 0) throw new UsageError('chat needs the command text, e.g. chat --as you@x.test "tasks"');
      const session = new ConsoleSession(commandContext(ctx, { surface: 'console', user }));
      const output = await session.handle(positionals.join(' '));
      (output.refused ? io.err : io.out)(output.text);
      return output.refused ? 1 : 0;
    }
    case 'users':
      return users(ctx, args, io);
    case 'controls':
      return controls(ctx, args, io);
    case 'tasks':
      return tasks(ctx, args, io);
    case 'incidents':
      return incidents(ctx, args, io);
    case 'routing':
      return routing(ctx, args, io);
    case 'audit': {
      const { values, positionals } = parse(args, { tenant: { type: 'string' } });
      if (positionals[0] !== 'verify') throw new UsageError('audit verify [--tenant <tenant>]');
      const report = await verifyAuditChain(ctx.db, one(values.tenant));
      if (report.breaks.length === 0) {
        io.out(`audit chain of tenant ${report.tenant}: ${report.rows} rows, intact`);
        return 0;
      }
      io.err(`audit chain of tenant ${report.tenant}: ${report.rows} rows, ${report.breaks.length} break(s):`);
      for (const broken of report.breaks) io.err(`  row ${broken.seq}: ${broken.reason}: ${broken.detail}`);
      return 1;
    }
    case 'evidence':
      return evidence(ctx, args, io);
    case 'partners':
      return partnersVerb(ctx, args, io);
    case 'webhooks':
      return webhooksVerb(ctx, args, io);
    case 'subscriptions':
      return subscriptionsVerb(ctx, args, io);
    case 'email':
      return emailVerb(ctx, args, io);
    case 'sync':
      return syncVerb(ctx, args, io, ctx.logger);
    case 'credentials':
      return credentialsVerb(ctx, args, io);
    case 'pushes':
      return pushesVerb(ctx, args, io);
    case 'connectors':
      return connectorsVerb(ctx, args, io);
  }
}

async function shell(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const { values } = parse(args, { as: { type: 'string' } });
  const user = await userByEmail(ctx, one(values.as));
  const session = new ConsoleSession(commandContext(ctx, { surface: 'console', user }));
  const rl = createInterface({ input: io.input, terminal: io.interactive });
  io.out(`ProjectX shell as ${user.displayName} <${user.email}>. Type "help", "press N" for a button, "exit" to leave.`);
  const ask = () => (io.interactive ? io.out(session.prompt.trimEnd()) : undefined);
  ask();
  for await (const line of rl) {
    const text = line.trim();
    if (text === 'exit' || text === 'quit') break;
    if (text) {
      const output = await session.handle(text);
      io.out(output.text);
    }
    ask();
  }
  rl.close();
  return 0;
}

async function users(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, { name: { type: 'string' }, role: { type: 'string', multiple: true } });
      const email = positionals[0];
      if (!email) throw new UsageError('users add <email> [--name "<name>"] [--role <role>]...');
      const roles = strings(values.role).flatMap((role) => role.split(',')).map((role) => role.trim()) as Role[];
      const user = must(await createUser(ctx.db, { email, displayName: one(values.name) ?? email, roles }));
      await audit(ctx, 'user.create', 'user', user.email, { roles: user.roles });
      io.out(`added ${user.displayName} <${user.email}> (${user.roles.join(', ') || 'no roles'}) id ${user.id}`);
      return 0;
    }
    case 'list': {
      for (const user of await listUsers(ctx.db)) io.out(`${user.email}\t${user.displayName}\t${user.roles.join(',') || '-'}${user.active ? '' : '\t(inactive)'}`);
      return 0;
    }
    case 'roles': {
      const [email, list] = rest;
      if (!email || list === undefined) throw new UsageError('users roles <email> <role,role>');
      const user = await userByEmail(ctx, email, 'email');
      const roles = list.split(',').map((role) => role.trim()).filter(Boolean) as Role[];
      const unknown = roles.filter((role) => !ROLES.includes(role));
      if (unknown.length > 0) throw new UsageError(`unknown role ${unknown.join(', ')} (roles: ${ROLES.join(', ')})`);
      await setRoles(ctx.db, user.id, roles);
      await audit(ctx, 'user.roles', 'user', user.email, { from: user.roles, to: roles });
      io.out(`${user.email}: ${roles.join(', ') || 'no roles'}`);
      return 0;
    }
    case 'link': {
      const { values, positionals } = parse(rest, { slack: { type: 'string' }, teams: { type: 'string' } });
      const user = await userByEmail(ctx, positionals[0], 'users link <email>');
      const surface: Surface | undefined = values.slack ? 'slack' : values.teams ? 'teams' : undefined;
      const spec = one(values.slack) ?? one(values.teams);
      const match = spec ? /^([^:\s]+):([^:\s]+)$/.exec(spec) : null;
      if (!surface || !match) throw new UsageError('users link <email> (--slack <team or enterprise id>:<user id> | --teams <tenant id>:<object id>)');
      const identity = { surface, tenant: match[1]!, externalId: match[2]! };
      const linked = must(await linkIdentity(ctx.db, user.id, identity, 'operator'));
      await audit(ctx, 'identity.link', 'user', user.email, { surface, tenant: identity.tenant, externalId: identity.externalId });
      io.out(linked.created ? `linked ${surface} ${spec} to ${user.email}` : `${surface} ${spec} was already linked to ${user.email}`);
      return 0;
    }
    case 'link-code': {
      const [code, email] = rest;
      if (!code || !email) throw new UsageError('users link-code <code> <email>');
      const user = await userByEmail(ctx, email, 'email');
      const identity = must(await redeemLinkCode(ctx.db, code, user.id, ctx.domain.clock.now()));
      await audit(ctx, 'identity.link', 'user', user.email, { surface: identity.surface, tenant: identity.tenant, externalId: identity.externalId, via: 'link_code' });
      io.out(`linked ${identity.surface} ${identity.tenant}:${identity.externalId} to ${user.email}`);
      return 0;
    }
    default:
      throw new UsageError('users add|list|roles|link|link-code …');
  }
}

async function controls(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'add') {
    const { values, positionals } = parse(rest, { title: { type: 'string' }, owner: { type: 'string' }, program: { type: 'string' } });
    const id = positionals[0];
    const title = one(values.title);
    if (!id || !title) throw new UsageError('controls add <id> --title "<title>" [--owner <email>] [--program <id>]');
    const owner = values.owner ? await userByEmail(ctx, one(values.owner), '--owner') : undefined;
    const control = must(await createControl(ctx.db, { id, title, ownerId: owner?.id, programId: one(values.program) }));
    await audit(ctx, 'control.create', 'control', control.id, { owner: owner?.email ?? null });
    io.out(`added control ${control.id} ${control.title}${owner ? ` (owner ${owner.email})` : ''}`);
    return 0;
  }
  if (sub === 'list') {
    for (const control of await searchControls(ctx.db, rest.join(' '), 500)) io.out(`${control.id}\t${control.title}`);
    return 0;
  }
  throw new UsageError('controls add|list …');
}

const DURATION = /^(\d+)([mhd])$/;

async function tasks(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    const { values } = parse(rest, { state: { type: 'string', multiple: true } });
    const states = strings(values.state);
    const bad = states.filter((state) => !(TASK_STATES as string[]).includes(state));
    if (bad.length > 0) throw new UsageError(`unknown state ${bad.join(', ')} (states: ${TASK_STATES.join(', ')})`);
    for (const task of await listTasks(ctx.db, { states: states as never, limit: 200 })) io.out(`${task.ref}\t${task.state}\t${task.type}\t${task.title}`);
    return 0;
  }
  if (sub !== 'create') throw new UsageError('tasks create|list …');
  const { values } = parse(rest, {
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
  const type = one(values.type) as TaskType | undefined;
  if (!type || !TASK_TYPES.includes(type)) throw new UsageError(`--type must be one of ${TASK_TYPES.join(', ')}`);
  const title = one(values.title);
  if (!title) throw new UsageError('--title is required');
  const priority = one(values.priority) as TaskPriority | undefined;
  if (priority && !['low', 'normal', 'high'].includes(priority)) throw new UsageError('--priority must be low, normal or high');
  const assignee = values.assignee ? await userByEmail(ctx, one(values.assignee), '--assignee') : undefined;
  const requester = values.requester ? await userByEmail(ctx, one(values.requester), '--requester') : undefined;
  const approverIds: string[] = [];
  for (const email of strings(values.approver)) approverIds.push((await userByEmail(ctx, email, '--approver')).id);
  const approverRoles = strings(values['approver-role']) as Role[];
  if (approverRoles.some((role) => !ROLES.includes(role))) throw new UsageError(`--approver-role must be one of ${ROLES.join(', ')}`);
  const wantsPolicy = approverIds.length > 0 || approverRoles.length > 0 || values['control-owners'] === true;
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

async function incidents(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'add') throw new UsageError('incidents add <number> --priority <1-5> --description "<text>" [--state <state>] [--source <system>]');
  const { values, positionals } = parse(rest, { priority: { type: 'string' }, description: { type: 'string' }, state: { type: 'string' }, source: { type: 'string' } });
  const number = positionals[0];
  const description = one(values.description);
  if (!number || !values.priority || !description) throw new UsageError('incidents add <number> --priority <1-5> --description "<text>"');
  const source = one(values.source) ?? 'manual';
  const { incident, created } = must(
    await upsertIncident(ctx.domain, CLI_ACTOR, { sourceSystem: source, externalId: number.toUpperCase(), number, priority: Number(values.priority), state: one(values.state) ?? 'new', shortDescription: description }),
  );
  io.out(`${created ? 'added' : 'updated'} ${incident.number} (P${incident.priority}) ${incident.shortDescription}`);
  return 0;
}

async function routing(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    for (const rule of await listRules(ctx.db)) {
      const filters = [rule.max_priority !== null ? `priority<=${rule.max_priority}` : '', rule.control_id ? `control=${rule.control_id}` : ''].filter(Boolean).join(' ');
      io.out(`${rule.id}\t${rule.event_pattern}\t${rule.surface}:${rule.target_kind}${rule.target ? `:${rule.target}` : ''}${filters ? `\t${filters}` : ''}${rule.enabled ? '' : '\t(disabled)'}`);
    }
    return 0;
  }
  if (sub === 'remove') {
    if (!rest[0]) throw new UsageError('routing remove <id>');
    if (!(await removeRule(ctx.db, rest[0]))) throw Object.assign(new Error(`no routing rule ${rest[0]}`), { exitCode: 1 });
    await audit(ctx, 'routing.remove', 'routing_rule', rest[0], {});
    io.out(`removed ${rest[0]}`);
    return 0;
  }
  if (sub !== 'add') throw new UsageError('routing list|add|remove …');
  const { values } = parse(rest, {
    event: { type: 'string' },
    channel: { type: 'string' },
    'assignee-dm': { type: 'boolean' },
    'approvers-dm': { type: 'boolean' },
    email: { type: 'string' },
    surface: { type: 'string' },
    'max-priority': { type: 'string' },
    control: { type: 'string' },
  });
  const event = one(values.event);
  const kinds: [TargetKind, string | undefined][] = [];
  if (values.channel) kinds.push(['channel', one(values.channel)]);
  if (values['assignee-dm']) kinds.push(['assignee_dm', undefined]);
  if (values['approvers-dm']) kinds.push(['approvers_dm', undefined]);
  if (values.email) kinds.push(['email', one(values.email)]);
  if (!event || kinds.length !== 1) throw new UsageError('routing add --event <type> with exactly one of --channel, --assignee-dm, --approvers-dm, --email');
  const [targetKind, target] = kinds[0]!;
  const surface = (one(values.surface) ?? (targetKind === 'email' ? 'email' : 'slack')) as Surface;
  if (!['slack', 'teams', 'email'].includes(surface)) throw new UsageError('--surface must be slack, teams or email');
  const maxPriority = one(values['max-priority']);
  const rule = must(await addRule(ctx.db, { eventPattern: event, surface, targetKind, target, maxPriority: maxPriority ? Number(maxPriority) : undefined, controlId: one(values.control) }));
  await audit(ctx, 'routing.add', 'routing_rule', rule.id, { event: rule.event_pattern, surface, targetKind, target: target ?? null });
  io.out(`added rule ${rule.id}: ${rule.event_pattern} -> ${surface}:${targetKind}${target ? `:${target}` : ''}`);
  return 0;
}

async function evidence(ctx: OperatorContext, args: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'add') throw new UsageError('evidence add --as <email> (--control <id> | --task <id>)... <file>...');
  const { values, positionals } = parse(rest, { as: { type: 'string' }, control: { type: 'string', multiple: true }, task: { type: 'string', multiple: true } });
  const user = await userByEmail(ctx, one(values.as));
  if (positionals.length === 0) throw new UsageError('evidence add needs at least one file');
  const store = new LocalEvidenceStore(ctx.config.EVIDENCE_LOCAL_DIR ?? path.join(ctx.config.PROJECTX_DATA_DIR, 'evidence'));
  const taskIds = strings(values.task).map((id) => id.replace(/^t-?/i, ''));
  let failed = 0;
  for (const file of positionals) {
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) {
      io.err(`${file}: not a readable file`);
      failed++;
      continue;
    }
    const result = await ingestEvidence(ctx.domain, store, { surface: 'console', user }, {
      content: createReadStream(file),
      fileName: path.basename(file),
      source: 'cli',
      controlIds: strings(values.control),
      taskIds,
    });
    if (!result.ok) {
      io.err(`${file}: ${result.refusal.message}`);
      failed++;
      continue;
    }
    const { sha256, sizeBytes, mediaType, stored, newLinks } = result.value;
    io.out(`${file}: sha256 ${sha256} (${sizeBytes} bytes, ${mediaType})${stored ? '' : ', identical content already stored'}${newLinks.length ? `; linked to ${newLinks.join(', ')}` : '; already linked'}`);
  }
  return failed > 0 ? 1 : 0;
}

/** Administrative verbs are audited like chat actions, under the operator. */
export async function audit(ctx: OperatorContext, action: string, objectType: string, objectId: string, detail: Record<string, unknown>): Promise<void> {
  await ctx.db.transaction().execute((trx) => appendAudit(trx, { actor: CLI_ACTOR, action, objectType, objectId, outcome: 'success', at: ctx.domain.clock.now(), detail }));
}
