/**
 * The domain on a real database with the real event sink (pg-boss on the same database, no workers), plus
 * builders with overrides for users, controls and tasks.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config.ts';
import type { JobDeps } from '../../src/jobs/job-deps.ts';
import type { Role } from '../../src/db/schema.ts';
import { CLI_ACTOR } from '../../src/domain/actor.ts';
import type { DomainDeps } from '../../src/domain/deps.ts';
import { createControl } from '../../src/domain/controls.ts';
import { type CreateTaskInput, type Task, createTask } from '../../src/domain/tasks.ts';
import { type User, createUser } from '../../src/domain/users.ts';
import { createEventSink } from '../../src/jobs/domain-events.ts';
import { serviceConnectors, serviceJobs } from './jobs.ts';
import { type JobRuntime, startJobRuntime } from '../../src/jobs/runtime.ts';
import { createMetrics } from '../../src/metrics.ts';
import { type ManualClock, manualClock } from './clock.ts';
import { type TestDatabase, createTestDatabase } from './database.ts';
import { captureLogs } from './logs.ts';
import { localEvidencePipeline } from './temp.ts';

export interface DomainFixture {
  tdb: TestDatabase;
  deps: DomainDeps;
  clock: ManualClock;
  jobs: JobRuntime;
  user(overrides?: { email?: string; name?: string; roles?: Role[] }): Promise<User>;
  control(overrides?: { id?: string; title?: string; ownerId?: string; renewalDays?: number }): Promise<string>;
  task(overrides?: Partial<CreateTaskInput>): Promise<Task>;
  close(): Promise<void>;
}

export async function domainFixture(): Promise<DomainFixture> {
  const tdb = await createTestDatabase();
  const clock = manualClock();
  const jobs = await startJobRuntime({
    connectionString: tdb.url,
    definitions: serviceJobs,
    logger: captureLogs().logger,
    metrics: createMetrics({ defaultMetrics: false }),
    supervise: false,
  });
  const deps: DomainDeps = { db: tdb.db, events: createEventSink(jobs), clock };
  const unique = () => randomBytes(4).toString('hex');
  return {
    tdb,
    deps,
    clock,
    jobs,
    async user(overrides = {}) {
      const email = overrides.email ?? `user-${unique()}@example.test`;
      const result = await createUser(tdb.db, { email, displayName: overrides.name ?? email.split('@')[0]!, roles: overrides.roles ?? ['viewer'] });
      if (!result.ok) throw new Error(result.refusal.message);
      return result.value;
    },
    async control(overrides = {}) {
      const result = await createControl(tdb.db, { id: overrides.id ?? `AC-${unique()}`, title: overrides.title ?? 'A control', ownerId: overrides.ownerId, renewalDays: overrides.renewalDays });
      if (!result.ok) throw new Error(result.refusal.message);
      return result.value.id;
    },
    async task(overrides = {}) {
      const result = await createTask(deps, CLI_ACTOR, { type: 'review', title: 'Review the thing', ...overrides });
      if (!result.ok) throw new Error(result.refusal.message);
      return result.value;
    },
    async close() {
      await jobs.stop(1000);
      await tdb.drop();
    },
  };
}

/** Audit rows for an object, oldest first. */
export async function auditRows(fixture: DomainFixture, objectId: string) {
  return fixture.tdb.db.selectFrom('audit_log').selectAll().where('object_id', '=', objectId).orderBy('seq').execute();
}

/** Domain events waiting in the outbox queue for a subject. */
export async function eventsFor(fixture: DomainFixture, subjectId: string): Promise<string[]> {
  const jobs = await fixture.jobs.boss.findJobs<{ payload: { type: string } }>('domain.event', { data: { payload: { subject: { id: subjectId } } } });
  return jobs.map((job) => job.data.payload.type).sort();
}

/** What job handlers get (JobDeps) on the fixture's database and queue: no chat surfaces, a local evidence store. */
export function fixtureJobDeps(fixture: DomainFixture, overrides: Partial<JobDeps> = {}): JobDeps {
  const config = loadConfig({});
  if (!config.ok) throw new Error(config.problems.join('; '));
  return {
    db: fixture.tdb.db,
    logger: captureLogs().logger,
    clock: fixture.clock,
    metrics: createMetrics({ defaultMetrics: false }),
    config: config.config,
    jobs: fixture.jobs,
    events: fixture.deps.events,
    notifiers: [],
    rerenderers: [],
    connectors: serviceConnectors,
    integrations: () => Promise.resolve([]),
    evidence: localEvidencePipeline('evidence'),
    ...overrides,
  };
}
