/**
 * Comments and attachments of synced Jira issues, against the fake Jira and a real database and evidence store:
 * a sync queues the issues whose comments or attachments changed; their comments are kept on the task once each
 * (and not pushed back), their attachments mirrored into evidence once each, type-checked as everywhere else.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jiraIssueExtras } from '../../../src/connectors/jira/extras.ts';
import { jira } from '../../../src/connectors/jira/index.ts';
import { issueTarget } from '../../../src/connectors/jira/mapper.ts';
import { Keyring } from '../../../src/connectors/sdk/crypto.ts';
import { ensureInstanceFromEnv } from '../../../src/connectors/sdk/instances.ts';
import type { DomainEvent } from '../../../src/domain/events.ts';
import { connectorSync } from '../../../src/jobs/connector-sync.ts';
import { routeDomainEvent } from '../../../src/jobs/domain-events.ts';
import type { JobDeps } from '../../../src/jobs/job-deps.ts';
import { type FakeJira, startFakeJira } from '../../fakes/jira/server.ts';
import { type DomainFixture, domainFixture, fixtureJobDeps } from '../../support/domain.ts';

const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
let fx: DomainFixture;
let fake: FakeJira;
let deps: JobDeps;
let instanceId: string;
const jobContext = (name: string) => ({ deps, logger: deps.logger, signal: new AbortController().signal, job: { id: randomUUID(), name, retryCount: 0 } });
// A one-page PDF's first bytes are enough for the type check; the body is what Jira stores.
const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'), randomBytes(64), Buffer.from('\n%%EOF\n')]);
const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(62), Buffer.from('PE\0\0'), randomBytes(128)]);

beforeAll(async () => {
  fx = await domainFixture();
  fake = await startFakeJira({ email: 'px-bot@example.com', apiToken: 'api-token-secret', now: () => fx.clock.now() });
  deps = fixtureJobDeps(fx, { keyring });
  instanceId = (await ensureInstanceFromEnv(fx.tdb.db, keyring, jira, {
    name: 'default',
    settings: { baseUrl: fake.url, deployment: 'cloud', authMode: 'pat', email: 'px-bot@example.com', projectKeys: ['SEC'] },
    credentials: { api_token: 'api-token-secret' },
  }))!;
});
afterAll(async () => {
  await fake.close();
  await fx.close();
});

const sync = () => connectorSync.handler(connectorSync.schema.parse({ connector: 'jira', instanceId, model: 'issue', runId: randomUUID(), trigger: 'manual' }), jobContext(connectorSync.name));
/** Runs every queued jira.issue_extras job not run yet. */
const ran = new Set<string>();
async function runExtras(): Promise<Record<string, number>[]> {
  const results: Record<string, number>[] = [];
  for (const job of await fx.jobs.boss.findJobs<{ payload: { instanceId: string; issueIds: string[] } }>('jira.issue_extras')) {
    if (ran.has(job.id)) continue;
    ran.add(job.id);
    results.push((await jiraIssueExtras.handler(jiraIssueExtras.schema.parse(job.data.payload), jobContext(jiraIssueExtras.name))) as Record<string, number>);
  }
  return results;
}

describe('Jira comments and attachments', () => {
  it('keeps comments on the task and mirrors attachments into evidence, each once', async () => {
    const plain = fake.createIssue({ project: 'SEC', summary: 'No extras here' });
    const issue = fake.createIssue({ project: 'SEC', summary: 'Collect the Q4 access review' });
    fake.addComment(issue.id, 'Export attached, reviewed by the system owner.');
    fake.addComment(issue.id, 'Second reviewer signed off.');
    fake.addAttachment(issue.id, { filename: 'access-review-q4.pdf', mimeType: 'application/pdf', content: PDF });
    fake.addAttachment(issue.id, { filename: 'tool.exe', mimeType: 'application/octet-stream', content: EXE });
    await sync();
    const jobs = await fx.jobs.boss.findJobs<{ payload: { issueIds: string[] } }>('jira.issue_extras');
    expect(jobs.map((job) => job.data.payload.issueIds)).toEqual([[issue.id]]); // not the issue without any
    expect(await runExtras()).toEqual([{ issues: 1, comments: 2, mirrored: 1, refused: 1 }]);

    const task = (await fx.tdb.db.selectFrom('task_links').select('task_id').where('target', '=', issueTarget('default', issue.id)).executeTakeFirstOrThrow()).task_id;
    const comments = await fx.tdb.db.selectFrom('audit_log').select('detail').where('action', '=', 'task.comment').where('object_id', '=', `T-${task}`).orderBy('seq').execute();
    expect(comments.map((row) => (row.detail as { text: string }).text)).toEqual([expect.stringContaining('in Jira: Export attached, reviewed by the system owner.'), expect.stringContaining('in Jira: Second reviewer signed off.')]);
    const evidence = await fx.tdb.db.selectFrom('evidence').innerJoin('evidence_links', 'evidence_links.evidence_id', 'evidence.id').select(['evidence.source', 'evidence.original_name', 'evidence.media_type', 'evidence.scan_status', 'evidence_links.target']).where('evidence.source', '=', 'jira').where('evidence_links.kind', '=', 'task').execute();
    expect(evidence).toEqual([expect.objectContaining({ source: 'jira', original_name: 'access-review-q4.pdf', media_type: 'application/pdf', scan_status: 'clean', target: task })]);
    const refused = await fx.tdb.db.selectFrom('external_records').select(['number', 'content_hash']).where('config_id', '=', instanceId).where('model', '=', 'attachment').orderBy('number').execute();
    expect(refused).toEqual([
      { number: 'access-review-q4.pdf', content_hash: expect.stringMatching(/^[0-9a-f]{64}$/) },
      { number: 'tool.exe', content_hash: 'refused' },
    ]);

    // Comments from Jira are not sent back to it.
    for (const job of await fx.jobs.boss.findJobs<{ payload: DomainEvent }>('domain.event', { data: { payload: { type: 'task.commented' } } })) {
      await routeDomainEvent.handler(routeDomainEvent.schema.parse(job.data.payload), jobContext(routeDomainEvent.name));
    }
    expect(await fx.tdb.db.selectFrom('integration_pushes').select('id').where('config_id', '=', instanceId).execute()).toEqual([]);

    // A new comment: the issue changes, its extras run again, and only the new comment is added.
    fake.addComment(issue.id, 'Closing: evidence filed.');
    fake.updateIssue(plain.id, { summary: 'Still no extras' });
    await sync();
    expect(await runExtras()).toEqual([{ issues: 1, comments: 1, mirrored: 0, refused: 0 }]);
  });
});
