/**
 * The evidence pipeline's scan step against a real clamd (test/servers/clamd.ts, started by the global setup
 * on the committed test signatures): infected files are refused and quarantined (not stored), raise the
 * security alert routed to the security channel; clean ones are recorded as scanned; a scanner that is down or
 * over its stream limit holds the file in quarantine, never records it clean, and the retry job records it
 * once it is scanned; without a scanner files are recorded unscanned, or held when a scan is required. The
 * operator's `projectx evidence quarantine list|release|delete`, each audited.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clamdScanner } from '../../../src/connectors/evidence-stores/clamd.ts';
import { ingestEvidence } from '../../../src/connectors/evidence-stores/ingest.ts';
import { LocalEvidenceStore } from '../../../src/connectors/evidence-stores/local.ts';
import { type EvidencePipeline, evidencePipeline } from '../../../src/connectors/evidence-stores/pipeline.ts';
import { retryQuarantined } from '../../../src/connectors/evidence-stores/quarantine.ts';
import { evidenceVerb } from '../../../src/cli/verbs/evidence.ts';
import type { Actor } from '../../../src/domain/actor.ts';
import { routeDomainEvent } from '../../../src/jobs/domain-events.ts';
import { type Clamd, startClamd } from '../../servers/clamd.ts';
import { captureLogs } from '../../support/logs.ts';
import { type DomainFixture, auditRows, domainFixture, eventsFor, fixtureJobDeps } from '../../support/domain.ts';
import { EICAR } from '../../support/eicar.ts';
import { operatorContext, runOperator } from '../../support/operator.ts';
import { localEvidencePipeline, tempPath } from '../../support/temp.ts';
import { zipArchive } from '../../../src/bot/teams/manifest-zip.ts';
import { freePort } from '../../support/fleet.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const text = (label: string) => Buffer.from(`${label} ${randomBytes(8).toString('hex')}\n`);

describe('the evidence pipeline with a real clamd', () => {
  let fixture: DomainFixture;
  let contributor: Actor;
  let control: string;
  let scanning: EvidencePipeline;
  let storeDir: string;
  let down: EvidencePipeline;
  let small: Clamd;

  beforeAll(async () => {
    fixture = await domainFixture();
    contributor = { surface: 'slack', user: await fixture.user({ roles: ['contributor'] }) };
    control = await fixture.control();
    storeDir = tempPath('scanned-store');
    scanning = evidencePipeline(new LocalEvidenceStore(storeDir), { stagingDir: tempPath('scanned-staging'), scanner: clamdScanner(inject('clamav').url) });
    down = localEvidencePipeline('scanner-down', { scanner: clamdScanner(`tcp://127.0.0.1:${await freePort()}`) });
    small = await startClamd(tempPath('clamd-1m'), { streamMaxLength: '1M' });
  });
  afterAll(async () => {
    await small.stop();
    await fixture.close();
  });

  const ingest = (pipeline: EvidencePipeline, bytes: Buffer, fileName: string) =>
    ingestEvidence(fixture.deps, pipeline, contributor, { content: Readable.from([bytes]), fileName, source: 'slack', controlIds: [control] });
  const quarantineRow = (sha: string) => fixture.tdb.db.selectFrom('evidence_quarantine').selectAll().where('sha256', '=', sha).executeTakeFirstOrThrow();
  const chunks = async (id: string) => Buffer.concat((await fixture.tdb.db.selectFrom('evidence_quarantine_chunks').select('data').where('quarantine_id', '=', id).orderBy('seq').execute()).map((row) => row.data));
  const evidenceRow = (sha: string) => fixture.tdb.db.selectFrom('evidence').selectAll().where('sha256', '=', sha).executeTakeFirst();
  const storedFiles = async () => (await readdir(storeDir, { recursive: true, withFileTypes: true }).catch(() => [])).filter((entry) => entry.isFile()).map((entry) => entry.name);

  it('records a clean file as scanned clean', async () => {
    const bytes = text('clean evidence');
    const result = await ingest(scanning, bytes, 'clean.txt');
    expect(result).toMatchObject({ ok: true, value: { outcome: 'recorded', scanStatus: 'clean', sha256: sha256(bytes), newLinks: [`control:${control}`] } });
    expect(await evidenceRow(sha256(bytes))).toMatchObject({ scan_status: 'clean', scanned_at: fixture.clock.now() });
    expect(await storedFiles()).toContain(sha256(bytes));
  });

  it('refuses EICAR, also inside a zip: quarantined with its bytes, never stored, audited, and the security channel told', async () => {
    const zipped = zipArchive([{ name: 'readme.txt', data: text('inside the zip') }, { name: 'tools/eicar.com', data: EICAR }], { deflate: true });
    for (const [bytes, name] of [[EICAR, 'eicar.txt'], [zipped, 'evidence.zip']] as const) {
      const before = await storedFiles();
      const result = await ingest(scanning, bytes, name);
      expect(result).toMatchObject({ ok: false, refusal: { code: 'evidence_infected', permanent: true } });
      if (result.ok) return;
      expect(result.refusal.message).toMatch(new RegExp(`^${name.replace('.', '\\.')} was refused: the virus scanner found Test\\.EICAR\\.Custom-[NH]DB\\.UNOFFICIAL in it`));
      // Not in the store, no evidence row; in quarantine, byte for byte, waiting for an operator (no retry).
      expect(await storedFiles()).toEqual(before);
      expect(await evidenceRow(sha256(bytes))).toBeUndefined();
      const row = await quarantineRow(sha256(bytes));
      expect(row).toMatchObject({ status: 'held', reason: 'infected', signature: expect.stringMatching(/^Test\.EICAR\.Custom/), original_name: name, source: 'slack', uploaded_by: contributor.user?.id, control_ids: [control], next_attempt_at: null });
      expect((await chunks(row.id)).equals(bytes)).toBe(true);
      expect((await auditRows(fixture, row.id)).map((entry) => [entry.action, entry.outcome])).toEqual([['evidence.quarantine', 'success']]);
      expect((await auditRows(fixture, sha256(bytes))).map((entry) => [entry.action, entry.outcome, (entry.detail as { code?: string }).code])).toEqual([['evidence.record', 'refused', 'evidence_infected']]);
      expect(await eventsFor(fixture, row.id)).toEqual(['evidence.ingest_failed', 'security.evidence_infected']);
    }
    // The alert is routed like any security event: to #security-alerts (seeded rule `security.*`).
    const row = await quarantineRow(sha256(EICAR));
    const [job] = await fixture.jobs.boss.findJobs<{ payload: Parameters<typeof routeDomainEvent.handler>[0] }>(routeDomainEvent.name, { data: { payload: { type: 'security.evidence_infected', subject: { id: row.id } } } });
    await routeDomainEvent.handler(job!.data.payload, { deps: fixtureJobDeps(fixture), logger: captureLogs().logger, signal: new AbortController().signal, job: { id: job!.id, name: routeDomainEvent.name, retryCount: 0 } });
    expect(await fixture.tdb.db.selectFrom('notifications').select(['target', 'event_type']).where('subject_id', '=', row.id).where('event_type', '=', 'security.evidence_infected').execute()).toEqual([{ target: 'security-alerts', event_type: 'security.evidence_infected' }]);
  });

  it('holds a file while the scanner is down (never recorded clean), and records it once a retry scans it clean', async () => {
    const bytes = text('scanned later');
    const held = await ingest(down, bytes, 'later.txt');
    expect(held).toMatchObject({ ok: true, value: { outcome: 'held', reason: 'scanner_unavailable', sha256: sha256(bytes) } });
    if (!held.ok || held.value.outcome !== 'held') return;
    expect(held.value.message).toMatch(/^later\.txt is held: the virus scanner could not scan it \(clamd at tcp:\/\/127\.0\.0\.1:\d+ refused the connection\)/);
    expect(await evidenceRow(sha256(bytes))).toBeUndefined();
    const row = await quarantineRow(sha256(bytes));
    expect(row).toMatchObject({ status: 'held', reason: 'scanner_unavailable', attempts: 0, next_attempt_at: new Date(fixture.clock.now().getTime() + 60_000) });

    // Not due yet: nothing happens. Due, scanner still down: held, tried again later (backing off).
    expect(await retryQuarantined(fixture.deps, down)).toEqual({ recorded: 0, infected: 0, held: 0 });
    fixture.clock.advance(60_000);
    expect(await retryQuarantined(fixture.deps, down)).toEqual({ recorded: 0, infected: 0, held: 1 });
    expect(await quarantineRow(sha256(bytes))).toMatchObject({ status: 'held', attempts: 1, next_attempt_at: new Date(fixture.clock.now().getTime() + 60_000), last_error: expect.stringMatching(/refused the connection/) });
    expect(await evidenceRow(sha256(bytes))).toBeUndefined();

    // The scanner is back: the next due retry scans it clean and records it for the uploader.
    fixture.clock.advance(60_000);
    expect(await retryQuarantined(fixture.deps, scanning)).toEqual({ recorded: 1, infected: 0, held: 0 });
    expect(await evidenceRow(sha256(bytes))).toMatchObject({ scan_status: 'clean', uploaded_by: contributor.user?.id, original_name: 'later.txt', source: 'slack' });
    expect(await quarantineRow(sha256(bytes))).toMatchObject({ status: 'recorded', resolved_by: 'evidence-quarantine' });
    expect(await chunks(row.id)).toHaveLength(0);
  });

  it('finds EICAR held while the scanner was down when the retry scans it: refused then, and the alert raised', async () => {
    const bytes = Buffer.concat([Buffer.from(`prefix ${randomBytes(4).toString('hex')}\n`), EICAR]);
    expect(await ingest(down, bytes, 'late-virus.txt')).toMatchObject({ ok: true, value: { outcome: 'held' } });
    fixture.clock.advance(60_000);
    expect(await retryQuarantined(fixture.deps, scanning)).toMatchObject({ infected: 1 });
    const row = await quarantineRow(sha256(bytes));
    expect(row).toMatchObject({ status: 'held', reason: 'infected', signature: expect.stringMatching(/^Test\.EICAR\.Custom-NDB/), next_attempt_at: null });
    expect(await evidenceRow(sha256(bytes))).toBeUndefined();
    expect(await eventsFor(fixture, row.id)).toEqual(['evidence.ingest_failed', 'security.evidence_infected']);
    // Infected files wait for an operator: never retried.
    fixture.clock.advance(3_600_000);
    expect(await retryQuarantined(fixture.deps, scanning)).toEqual({ recorded: 0, infected: 0, held: 0 });
  });

  it('holds a file over the scanner\'s stream limit instead of recording it unscanned', async () => {
    const limited = localEvidencePipeline('scan-limit', { scanner: clamdScanner(small.url) });
    const bytes = Buffer.from(randomBytes(768 * 1024).toString('hex')); // 1.5 MB of text, over clamd's 1M
    expect(await ingest(limited, bytes, 'big.txt')).toMatchObject({ ok: true, value: { outcome: 'held', reason: 'scan_limit_exceeded' } });
    expect(await evidenceRow(sha256(bytes))).toBeUndefined();
    expect(await quarantineRow(sha256(bytes))).toMatchObject({ status: 'held', reason: 'scan_limit_exceeded' });
  });

  it('without a scanner records files unscanned, or holds them when EVIDENCE_SCAN_REQUIRED, until a scanner scans them', async () => {
    const unscanned = text('no scanner');
    expect(await ingest(localEvidencePipeline('no-scanner', { scanner: undefined }), unscanned, 'plain.txt')).toMatchObject({ ok: true, value: { outcome: 'recorded', scanStatus: 'unscanned' } });
    expect(await evidenceRow(sha256(unscanned))).toMatchObject({ scan_status: 'unscanned', scanned_at: null });
    // The same content scanned clean later: the record says so.
    expect(await ingest(scanning, unscanned, 'plain.txt')).toMatchObject({ ok: true, value: { outcome: 'recorded', scanStatus: 'clean', stored: false } });
    expect(await evidenceRow(sha256(unscanned))).toMatchObject({ scan_status: 'clean' });

    const required = localEvidencePipeline('scan-required', { scanner: undefined, scanRequired: true });
    const bytes = text('must be scanned');
    const held = await ingest(required, bytes, 'required.txt');
    expect(held).toMatchObject({ ok: true, value: { outcome: 'held', reason: 'scan_required', message: 'required.txt is held until a virus scanner is configured; it will be recorded once scanned.' } });
    // (Other tests' held files may be due too: this one's row tells what happened to it.)
    fixture.clock.advance(60_000);
    await retryQuarantined(fixture.deps, required);
    expect(await quarantineRow(sha256(bytes))).toMatchObject({ status: 'held', reason: 'scan_required', attempts: 1 });
    expect(await evidenceRow(sha256(bytes))).toBeUndefined();
    fixture.clock.advance(120_000);
    await retryQuarantined(fixture.deps, scanning);
    expect(await quarantineRow(sha256(bytes))).toMatchObject({ status: 'recorded', attempts: 2 });
    expect(await evidenceRow(sha256(bytes))).toMatchObject({ scan_status: 'clean' });
  });

  describe('projectx evidence quarantine', () => {
    const env = () => ({ PROJECTX_DATA_DIR: tempPath('cli-data'), EVIDENCE_LOCAL_DIR: storeDir, CLAMAV_URL: inject('clamav').url });
    const run = (args: string[], ctx = operatorContext(fixture, { env: env() })) => runOperator(ctx, evidenceVerb, args);

    it('lists held files, releases one an operator vouches for and deletes another, each audited with the reason', async () => {
      const falsePositive = Buffer.concat([Buffer.from(`vouched ${randomBytes(4).toString('hex')}\n`), EICAR]);
      const virus = Buffer.concat([Buffer.from(`virus ${randomBytes(4).toString('hex')}\n`), EICAR]);
      for (const [bytes, name] of [[falsePositive, 'vouched.txt'], [virus, 'virus.txt']] as const) {
        expect(await ingest(scanning, bytes, name)).toMatchObject({ ok: false });
        fixture.clock.advance(1000); // newest first in the list
      }
      const vouched = await quarantineRow(sha256(falsePositive));
      const infected = await quarantineRow(sha256(virus));

      const listed = await run(['quarantine', 'list', '--json']);
      expect(listed.code).toBe(0);
      const rows = JSON.parse(listed.out.join('\n')) as { id: string; reason: string; name: string; targets: string[] }[];
      expect(rows.filter((row) => [vouched.id, infected.id].includes(row.id))).toMatchObject([
        { id: infected.id, reason: 'infected', name: 'virus.txt', targets: [`control:${control}`] },
        { id: vouched.id, reason: 'infected', name: 'vouched.txt' },
      ]);

      await expect(run(['quarantine', 'release', vouched.id])).rejects.toThrow(/say why the file may be released \(--reason/);
      const released = await run(['quarantine', 'release', vouched.id, '--reason', 'test signature, not malware']);
      expect(released).toMatchObject({ code: 0, out: [expect.stringMatching(new RegExp(`^quarantined file ${vouched.id} released: recorded as evidence [0-9a-f-]{36} \\(sha256 ${sha256(falsePositive)}\\)$`))] });
      expect(await evidenceRow(sha256(falsePositive))).toMatchObject({ scan_status: 'released', uploaded_by: contributor.user?.id });
      expect(await storedFiles()).toContain(sha256(falsePositive));
      expect(await quarantineRow(sha256(falsePositive))).toMatchObject({ status: 'recorded', resolved_by: 'anonymous:cli' });

      const deleted = await run(['quarantine', 'delete', infected.id, '--reason', 'malware']);
      expect(deleted).toMatchObject({ code: 0 });
      expect(await quarantineRow(sha256(virus))).toMatchObject({ status: 'deleted', resolved_by: 'anonymous:cli' });
      expect(await chunks(infected.id)).toHaveLength(0);
      expect(await evidenceRow(sha256(virus))).toBeUndefined();

      const audit = (id: string) => auditRows(fixture, id).then((entries) => entries.map((entry) => [entry.action, entry.actor, (entry.detail as { reason?: string }).reason]));
      expect(await audit(vouched.id)).toEqual([['evidence.quarantine', `user:${contributor.user?.id}`, 'infected'], ['evidence.quarantine.release', 'anonymous:cli', 'test signature, not malware']]);
      expect(await audit(infected.id)).toEqual([['evidence.quarantine', `user:${contributor.user?.id}`, 'infected'], ['evidence.quarantine.delete', 'anonymous:cli', 'malware']]);

      // Done is done; a bad id is a usage error; an unknown one is not found.
      await expect(run(['quarantine', 'delete', infected.id, '--reason', 'again'])).rejects.toThrow(`quarantined file ${infected.id} is deleted already`);
      await expect(run(['quarantine', 'release', 'nope', '--reason', 'x'])).rejects.toThrow('"nope" is not a quarantine id');
      await expect(run(['quarantine', 'release', '00000000-0000-4000-8000-000000000000', '--reason', 'x'])).rejects.toThrow('no quarantined file 00000000-0000-4000-8000-000000000000');
      expect((await run(['quarantine', 'list', '--all', '--json'])).out.join('\n')).toContain(infected.id);
    });
  });
});
