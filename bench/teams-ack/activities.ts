/**
 * What teams-ack sends and what it seeds: linked approvers, approval tasks waiting for them, and signed Teams
 * activities built from the verbatim fixtures in test/fixtures/teams, addressed as test/support/teams-service.ts
 * does (`serviceUrl`, `recipient: 28:<app id>`, the tenant in `channelData.tenant.id` and
 * `conversation.tenantId`, `from.aadObjectId`), each with its own activity id (a repeated one is a redelivery
 * and would skip the work).
 *
 * Half the activities are messages in the sender's personal chat (`help` and `tasks` in turn: the command
 * list, and the personal home with the approvals waiting), half are `Action.Execute` Approve clicks
 * (`adaptiveCard/action`, verb `approve`, data `{ value: <task id> }`) by the task's own approver.
 *
 * Tokens: the channel's JWT names the service URL, not the activity, and is valid for an hour, so a pool of
 * tokens is signed before each step (RS256 costs the channel ~1 ms each: signing per request would load the
 * load generator, not the servers) and reused round-robin. botbuilder keeps no cache of validated tokens, so
 * every request is verified in full (signature against the JWKS, issuer, audience, endorsement, service URL).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { teamsDeliveryId } from '../../src/bot/teams/inbound.ts';
import type { Db } from '../../src/db/database.ts';
import { approvalPolicySchema } from '../../src/domain/tasks.ts';
import { createUser, linkIdentity } from '../../src/domain/users.ts';
import type { FakeChannel } from '../../test/fakes/teams/channel.ts';

type Activity = Record<string, unknown>;

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
/** Never called in role web (replies are staged for a worker); a closed port on loopback if it were. */
export const SERVICE_URL = 'http://127.0.0.1:9/teams/';
const TOKEN_POOL = 256;

const fixture = (name: string): Activity => JSON.parse(readFileSync(fileURLToPath(new URL(`../../test/fixtures/teams/${name}`, import.meta.url)), 'utf8')) as Activity;
const messageFixture = fixture('teams_message_personal_docs.json');
const invokeFixture = fixture('teams_invoke_adaptiveCard_action_sdk_test.json');

export interface Approver {
  userId: string;
  aadObjectId: string;
  mri: string;
  name: string;
}

/** The approval tasks, in id order, each with the index of its one approver. */
export interface SeededTask {
  id: string;
  approver: number;
}

export interface Seed {
  approvers: Approver[];
  tasks: SeededTask[];
}

/**
 * `approvers` users with the approver role, each linked to a Teams identity (surface `teams`, the tenant, an
 * Entra object id), and `tasks` approval tasks pending (quorum 1, one approver each, in turn; no requester, so
 * no self-approval). The tasks are inserted in bulk as `createTask` writes their rows, without its audit
 * rows and creation events (no worker would take the events; tens of thousands of transactions would only
 * lengthen the set-up).
 */
export async function seed(db: Db, input: { approvers: number; tasks: number }, into: Seed): Promise<void> {
  for (let i = 0; i < input.approvers; i++) {
    const name = `Bench Approver ${i}`;
    const user = await createUser(db, { email: `bench-approver-${i}@example.test`, displayName: name, roles: ['approver', 'contributor'] });
    if (!user.ok) throw new Error(user.refusal.message);
    const approver: Approver = { userId: user.value.id, aadObjectId: randomUUID(), mri: `29:${randomUUID()}`, name };
    const linked = await linkIdentity(db, approver.userId, { surface: 'teams', tenant: TENANT, externalId: approver.aadObjectId }, 'bench');
    if (!linked.ok) throw new Error(linked.refusal.message);
    into.approvers.push(approver);
  }
  const policies = into.approvers.map((approver) => JSON.stringify(approvalPolicySchema.parse({ approverUserIds: [approver.userId], quorum: 1 })));
  const now = new Date();
  for (let from = 0; from < input.tasks; from += 1000) {
    const rows = Array.from({ length: Math.min(1000, input.tasks - from) }, (_, k) => {
      const n = from + k;
      return { type: 'approval' as const, title: `Bench approval ${n}`, state: 'pending_approval' as const, requester_id: null, assignee_id: null, approval_policy: policies[n % policies.length]!, created_at: now, updated_at: now };
    });
    const ids = await db.insertInto('tasks').values(rows).returning('id').execute();
    ids.forEach(({ id }, k) => into.tasks.push({ id, approver: (from + k) % policies.length }));
  }
  // Statistics and a vacuumed table, as a database that grew by use has them: freshly bulk-loaded, the planner
  // guesses that few tasks are pending and answers the home's "newest 100 pending" by reading every pending task
  // and sorting them (4.4 ms of PostgreSQL CPU a `tasks` message here, against 0.3 ms with statistics), and
  // autovacuum's insert-triggered pass over the new tasks would run during the first rungs.
  await sql`vacuum analyze`.execute(db);
  // The bulk load's dirty pages written out now, not by the checkpointer during the measured steps: its writes
  // and its data-file fsyncs held the WAL's fsyncs up by hundreds of milliseconds at the first rungs (run 6).
  // Needs a superuser (the embedded server's); a DATABASE_URL without one measures with the writes pending.
  await sql`checkpoint`.execute(db).catch(() => undefined);
}

/** Hands out tasks to click: each once, in order; past the end, around again (clicks the domain refuses as already decided). */
export class TaskPool {
  private next = 0;
  /** Clicks handed a task decided (or clicked) before. */
  repeats = 0;
  private readonly tasks: readonly SeededTask[];
  constructor(tasks: readonly SeededTask[]) {
    this.tasks = tasks;
  }
  take(): SeededTask {
    if (this.next >= this.tasks.length) this.repeats++;
    return this.tasks[this.next++ % this.tasks.length]!;
  }
  get size(): number {
    return this.tasks.length;
  }
}

export type ActivityKind = 'message' | 'invoke';

/** Activity ids are unique over the whole run (every step builds its requests anew). */
let serial = 0;

/**
 * Builds the requests of one step: a share `invokes` of them (spread evenly; 0.5: every other one) are Approve
 * clicks, the rest messages. Remembers each request's delivery id and kind, so 2xx answers can be checked in
 * the database.
 */
export function teamsActivities(input: { appId: string; channel: FakeChannel; approvers: readonly Approver[]; tasks: TaskPool; runId: string; texts: readonly string[]; invokes: number }) {
  const bot = { id: `28:${input.appId}`, name: 'ProjectX' };
  const authorizations = Array.from({ length: TOKEN_POOL }, () => input.channel.authorization({ serviceUrl: SERVICE_URL }));
  const deliveryIds: string[] = [];
  const kinds: ActivityKind[] = [];
  let messages = 0;
  const address = (base: Activity, from: Approver, extra: Activity): Activity => ({
    ...base,
    id: `${input.runId}-${(serial++).toString(36)}`,
    serviceUrl: SERVICE_URL,
    from: { id: from.mri, name: from.name, aadObjectId: from.aadObjectId },
    recipient: bot,
    conversation: { id: `a:personal-${from.aadObjectId}`, conversationType: 'personal', tenantId: TENANT },
    channelData: { ...(base.channelData as object | undefined), tenant: { id: TENANT } },
    timestamp: new Date().toISOString(),
    ...extra,
  });
  return {
    deliveryIds,
    kinds,
    request: (i: number) => {
      let activity: Activity;
      if (Math.floor((i + 1) * input.invokes) === Math.floor(i * input.invokes)) {
        const from = input.approvers[messages % input.approvers.length]!;
        activity = address(messageFixture, from, { text: input.texts[messages % input.texts.length], attachments: [] });
        messages++;
        kinds[i] = 'message';
      } else {
        const task = input.tasks.take();
        activity = address(invokeFixture, input.approvers[task.approver]!, { replyToId: '1:card', value: { action: { type: 'Action.Execute', verb: 'approve', data: { value: task.id }, id: randomUUID() }, trigger: 'manual' } });
        kinds[i] = 'invoke';
      }
      deliveryIds[i] = teamsDeliveryId(activity)!;
      return {
        method: 'POST' as const,
        path: '/api/messages',
        headers: { 'content-type': 'application/json', authorization: authorizations[i % TOKEN_POOL]! },
        body: JSON.stringify(activity),
      };
    },
  };
}
