/**
 * Evidence expiry and renewal with an injected clock across 31 days: evidence valid for 30 days gets one renewal
 * task for the control owner, reminders at 30, 7 and 1 days before and once when overdue (each routed to the
 * owner's DM), and new evidence for the control closes the task. Control owners hear of new evidence and of
 * files that could not be recorded.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestEvidence } from '../../src/connectors/evidence-stores/ingest.ts';
import type { Actor } from '../../src/domain/actor.ts';
import type { DomainEvent } from '../../src/domain/events.ts';
import { renewalStage, runRenewals } from '../../src/domain/renewals.ts';
import { routeEvent } from '../../src/domain/routing.ts';
import type { User } from '../../src/domain/users.ts';
import { type DomainFixture, domainFixture } from '../support/domain.ts';
import { localEvidencePipeline } from '../support/temp.ts';

const DAY = 86_400_000;
const text = (label: string) => Buffer.from(`${label} ${randomBytes(8).toString('hex')}\n`);

describe('evidence renewal', () => {
  let fixture: DomainFixture;
  let owner: User;
  let uploader: Actor;
  const pipeline = () => localEvidencePipeline('renewal-evidence');

  beforeAll(async () => {
    fixture = await domainFixture();
    owner = await fixture.user({ roles: ['approver'] });
    uploader = { surface: 'slack', user: await fixture.user({ roles: ['contributor'] }) };
  });
  afterAll(() => fixture.close());

  const upload = (control: string, bytes: Buffer, name: string, validUntil?: Date) =>
    ingestEvidence(fixture.deps, pipeline(), uploader, { content: Readable.from([bytes]), fileName: name, source: 'slack', controlIds: [control], validUntil });
  /** The events of a type on the queue, oldest first (the domain.event jobs the sink enqueued). */
  const events = async (type: string, controlId: string) =>
    (await fixture.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type } } }))
      .map((job) => job.data.payload)
      .filter((event) => event.controlIds?.includes(controlId))
      .sort((a, b) => a.occurredAt.localeCompare(b.occurredAt));

  it('names the reminder step a date has reached', () => {
    const now = new Date('2026-12-01T06:00:00Z');
    expect([31, 30, 8, 7, 2, 1, 0.5, 0, -3].map((days) => renewalStage(new Date(now.getTime() + days * DAY), now))).toEqual([undefined, '30', '30', '7', '7', '1', '1', 'overdue', 'overdue']);
  });

  it('opens one renewal task, reminds the owner at 30, 7 and 1 days and when overdue, and closes it when new evidence arrives', async () => {
    const control = await fixture.control({ ownerId: owner.id, renewalDays: 365 });
    const start = fixture.clock.now();
    const expires = new Date(start.getTime() + 30 * DAY);
    const first = await upload(control, text('access review Q4'), 'access-review-q4.pdf', expires);
    expect(first).toMatchObject({ ok: true, value: { outcome: 'recorded' } });
    const link = await fixture.tdb.db.selectFrom('evidence_links').select('valid_until').where('target', '=', control).executeTakeFirstOrThrow();
    expect(link.valid_until).toEqual(expires);

    // 31 daily runs.
    const perDay: { day: number; opened: number; reminded: number }[] = [];
    for (let day = 0; day <= 31; day++) {
      const summary = await runRenewals(fixture.deps);
      if (summary.opened + summary.reminded > 0) perDay.push({ day, opened: summary.opened, reminded: summary.reminded });
      if (day < 31) fixture.clock.advance(DAY);
    }
    expect(perDay).toEqual([{ day: 0, opened: 1, reminded: 1 }, { day: 23, opened: 0, reminded: 1 }, { day: 29, opened: 0, reminded: 1 }, { day: 30, opened: 0, reminded: 1 }]);

    const tasks = await fixture.tdb.db.selectFrom('tasks').innerJoin('task_links', 'task_links.task_id', 'tasks.id').selectAll('tasks').where('task_links.kind', '=', 'control').where('task_links.target', '=', control).execute();
    expect(tasks).toHaveLength(1);
    expect(tasks[0]).toMatchObject({ type: 'evidence_request', state: 'open', assignee_id: owner.id, due_at: expires, title: `Renew evidence for ${control}: access-review-q4.pdf expires ${expires.toISOString().slice(0, 10)}` });

    const reminders = await events('evidence.renewal_due', control);
    expect(reminders.map((event) => [event.data?.stage, event.assigneeId, event.subject.id])).toEqual([
      ['30', owner.id, tasks[0]!.id],
      ['7', owner.id, tasks[0]!.id],
      ['1', owner.id, tasks[0]!.id],
      ['overdue', owner.id, tasks[0]!.id],
    ]);
    expect(reminders[1]!.summary).toBe(`Evidence for ${control} (access-review-q4.pdf) expires in 7 days (${expires.toISOString().slice(0, 10)}): renew it (T-${tasks[0]!.id})`);
    // Each reminder goes to the owner's DM.
    expect(await routeEvent(fixture.tdb.db, reminders[0]!)).toContainEqual({ surface: 'slack', kind: 'assignee_dm', target: `user:${owner.id}` });

    // The renewal arrives (valid for the control's 365 days): the task is done, and no more reminders.
    const renewed = await upload(control, text('access review Q1'), 'access-review-q1.pdf');
    expect(renewed).toMatchObject({ ok: true, value: { outcome: 'recorded' } });
    const task = await fixture.tdb.db.selectFrom('tasks').select('state').where('id', '=', tasks[0]!.id).executeTakeFirstOrThrow();
    expect(task.state).toBe('done');
    expect(await fixture.tdb.db.selectFrom('evidence_renewals').select(['closed_by_evidence']).where('control_id', '=', control).execute()).toEqual([{ closed_by_evidence: renewed.ok && renewed.value.outcome === 'recorded' ? renewed.value.id : null }]);
    const newLink = await fixture.tdb.db.selectFrom('evidence_links').select('valid_until').where('target', '=', control).where('evidence_id', '=', renewed.ok && renewed.value.outcome === 'recorded' ? renewed.value.id : '').executeTakeFirstOrThrow();
    expect(newLink.valid_until).toEqual(new Date(fixture.clock.now().getTime() + 365 * DAY));
    fixture.clock.advance(DAY);
    expect(await runRenewals(fixture.deps)).toEqual({ opened: 0, reminded: 0, closed: 0 });
  });

  it('tells the control owner of new evidence and of a file that was not recorded', async () => {
    const control = await fixture.control({ ownerId: owner.id });
    expect(await upload(control, text('policy'), 'policy.txt')).toMatchObject({ ok: true });
    const [recorded] = await events('evidence.recorded', control);
    expect(recorded?.approverIds).toEqual([owner.id]);
    expect(await routeEvent(fixture.tdb.db, recorded!)).toContainEqual({ surface: 'slack', kind: 'approvers_dm', target: `user:${owner.id}` });

    const executable = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(8), Buffer.from([2, 0, 0x3e, 0, 1, 0, 0, 0]), Buffer.alloc(48)]);
    expect(await upload(control, executable, 'tool.txt')).toMatchObject({ ok: false, refusal: { code: 'unsupported_media_type' } });
    const [failed] = await events('evidence.ingest_failed', control);
    expect(failed).toMatchObject({ approverIds: [owner.id], data: { code: 'unsupported_media_type', source: 'slack' } });
    expect(failed?.summary).toMatch(new RegExp(`^Evidence for ${control} from slack was not recorded: tool\\.txt: files of type`));
    expect(await routeEvent(fixture.tdb.db, failed!)).toContainEqual({ surface: 'slack', kind: 'approvers_dm', target: `user:${owner.id}` });
  });
});
