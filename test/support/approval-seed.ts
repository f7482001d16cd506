/**
 * Approval tasks waiting for people who are linked to users of a fake Slack workspace, written through the
 * domain with the real event sink (pg-boss on the same database, no workers: the service's own workers pick
 * the events up), for tests that decide them with `/projectx approve`.
 */
import { systemClock } from '../../src/clock.ts';
import { CLI_ACTOR } from '../../src/domain/actor.ts';
import type { DomainDeps } from '../../src/domain/deps.ts';
import { createTask } from '../../src/domain/tasks.ts';
import { createUser, linkIdentity } from '../../src/domain/users.ts';
import { createEventSink } from '../../src/jobs/domain-events.ts';
import { startJobRuntime } from '../../src/jobs/runtime.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { FakeSlack } from '../fakes/slack/server.ts';
import type { TestDatabase } from './database.ts';
import { serviceJobs } from './jobs.ts';
import { captureLogs } from './logs.ts';

export interface SeededApproval {
  /** `T-42` */
  ref: string;
  /** The Slack user (in the fake's workspace) who may approve it, and that workspace. */
  slackUserId: string;
  teamId: string;
}

/** `count` approval tasks (quorum 1), spread over `approvers` approvers, each linked to a Slack user the fake knows. */
export async function seedApprovals(tdb: TestDatabase, fake: FakeSlack, input: { count: number; approvers: number }): Promise<SeededApproval[]> {
  const jobs = await startJobRuntime({ connectionString: tdb.url, definitions: serviceJobs, logger: captureLogs().logger, metrics: createMetrics({ defaultMetrics: false }), supervise: false });
  try {
    const domain: DomainDeps = { db: tdb.db, events: createEventSink(jobs), clock: systemClock };
    const approvers: { userId: string; slackUserId: string }[] = [];
    for (let i = 0; i < input.approvers; i++) {
      const email = `approver-${i}@example.test`;
      const slackUserId = `UAPPROVER${i}`;
      const user = await createUser(tdb.db, { email, displayName: `Approver ${i}`, roles: ['approver'] });
      if (!user.ok) throw new Error(user.refusal.message);
      fake.addUser({ id: slackUserId, teamId: fake.teamId, realName: `Approver ${i}`, email });
      const linked = await linkIdentity(tdb.db, user.value.id, { surface: 'slack', tenant: fake.teamId, externalId: slackUserId }, 'test');
      if (!linked.ok) throw new Error(linked.refusal.message);
      approvers.push({ userId: user.value.id, slackUserId });
    }
    const seeded: SeededApproval[] = [];
    for (let i = 0; i < input.count; i++) {
      const approver = approvers[i % approvers.length]!;
      const task = await createTask(domain, CLI_ACTOR, { type: 'approval', title: `Approval ${i}`, policy: { approverUserIds: [approver.userId], quorum: 1 } });
      if (!task.ok) throw new Error(task.refusal.message);
      seeded.push({ ref: task.value.ref, slackUserId: approver.slackUserId, teamId: fake.teamId });
    }
    return seeded;
  } finally {
    await jobs.stop(1000);
  }
}
