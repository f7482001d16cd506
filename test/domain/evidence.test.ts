import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Recorded, ingestEvidence } from '../../src/connectors/evidence-stores/ingest.ts';
import { LocalEvidenceStore } from '../../src/connectors/evidence-stores/local.ts';
import { type EvidencePipeline, evidencePipeline } from '../../src/connectors/evidence-stores/pipeline.ts';
import type { Result } from '../../src/domain/result.ts';
import { SNIFF_BYTES } from '../../src/connectors/evidence-stores/media-type.ts';
import type { Actor } from '../../src/domain/actor.ts';
import { type DomainFixture, auditRows, domainFixture, eventsFor } from '../support/domain.ts';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const token = () => randomBytes(6).toString('hex');
/** A minimal valid PDF; `note` (a comment) makes its content, and so its hash, unique per test. */
const pdf = (note: string) =>
  Buffer.from(`%PDF-1.4\n% ${note}\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n`);
/** A valid 1x1 RGBA PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

describe('ingestEvidence with the local store', () => {
  let fixture: DomainFixture;
  let base: string;
  let shared: EvidencePipeline;
  let contributor: Actor;
  let viewer: Actor;
  let controlA: string;
  let controlB: string;

  beforeAll(async () => {
    fixture = await domainFixture();
    base = await mkdtemp(path.join(tmpdir(), 'projectx-evidence-'));
    shared = evidencePipeline(new LocalEvidenceStore(path.join(base, 'shared')), { stagingDir: path.join(base, 'staging') });
    contributor = { surface: 'slack', user: await fixture.user({ roles: ['contributor'] }) };
    viewer = { surface: 'slack', user: await fixture.user({ roles: ['viewer'] }) };
    controlA = await fixture.control();
    controlB = await fixture.control();
  });
  afterAll(async () => {
    await fixture.close();
    await rm(base, { recursive: true, force: true });
  });

  /** A store of the test's own, its staging directory inside, so "nothing was written" can be checked on the whole directory. */
  const freshStore = async () => {
    const root = await mkdtemp(path.join(base, 'store-'));
    return { root, store: evidencePipeline(new LocalEvidenceStore(root), { stagingDir: path.join(root, 'staging') }) };
  };
  /** Every file under `root` (including its tmp dir), relative to it. */
  const filesIn = async (root: string) =>
    (await readdir(root, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile()).map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
  /** No scanner here (test/connectors/evidence-stores has the scan step): every accepted file is recorded unscanned. */
  const ingest = async (bytes: Buffer | Readable, options: { fileName?: string; controlIds?: string[]; maxBytes?: number; actor?: Actor; into?: EvidencePipeline } = {}): Promise<Result<Recorded>> => {
    const pipeline = options.into ?? shared;
    const result = await ingestEvidence(fixture.deps, options.maxBytes ? { ...pipeline, maxBytes: options.maxBytes } : pipeline, options.actor ?? contributor, {
      content: Buffer.isBuffer(bytes) ? Readable.from([bytes]) : bytes,
      source: 'slack',
      fileName: options.fileName,
      controlIds: options.controlIds ?? [controlA],
    });
    if (result.ok && result.value.outcome !== 'recorded') throw new Error(`held without a scanner: ${result.value.message}`);
    return result as Result<Recorded>;
  };
  const evidenceRows = (sha: string) => fixture.tdb.db.selectFrom('evidence').selectAll().where('sha256', '=', sha).execute();
  const evidenceCount = async () => Number((await fixture.tdb.db.selectFrom('evidence').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  it('accepts a PDF and a PNG by their content, records their SHA-256 and stores the exact bytes at the returned file:// uri', async () => {
    // The PNG is named .pdf on purpose: the type comes from the bytes, not the name.
    for (const [bytes, fileName, mediaType] of [[pdf(token()), 'report.pdf', 'application/pdf'], [PNG, 'diagram.pdf', 'image/png']] as const) {
      const result = await ingest(bytes, { fileName });
      expect(result.ok, JSON.stringify(result)).toBe(true);
      if (!result.ok) return;
      expect(result.value).toMatchObject({ sha256: sha256(bytes), sizeBytes: bytes.length, mediaType, stored: true, newLinks: [`control:${controlA}`], fileName, outcome: 'recorded', scanStatus: 'unscanned' });
      expect(result.value.storageUri).toMatch(/^file:\/\//);
      expect(await readFile(fileURLToPath(result.value.storageUri))).toEqual(bytes);
      expect(await evidenceRows(sha256(bytes))).toMatchObject([{ id: result.value.id, media_type: mediaType, size_bytes: String(bytes.length), original_name: fileName, uploaded_by: contributor.user?.id, scan_status: 'unscanned', scanned_at: null }]);
    }
  });

  it('audits a successful record and emits evidence.recorded', async () => {
    const bytes = pdf(token());
    const result = await ingest(bytes, { fileName: 'audited.pdf' });
    if (!result.ok) throw new Error(result.refusal.message);
    const rows = await auditRows(fixture, sha256(bytes));
    expect(rows).toMatchObject([{ action: 'evidence.record', outcome: 'success', actor: `user:${contributor.user?.id}`, detail: { stored: true, newLinks: [`control:${controlA}`] } }]);
    expect(await eventsFor(fixture, result.value.id)).toEqual(['evidence.recorded']);
  });

  it('stores identical content once: again for the same control adds nothing, for another control adds a link', async () => {
    const bytes = pdf(token());
    const first = await ingest(bytes, { fileName: 'policy.pdf' });
    const again = await ingest(bytes, { fileName: 'policy-copy.pdf' });
    const other = await ingest(bytes, { fileName: 'policy.pdf', controlIds: [controlB] });
    if (!first.ok || !again.ok || !other.ok) throw new Error('an upload was refused');
    expect(first.value).toMatchObject({ stored: true, newLinks: [`control:${controlA}`] });
    expect(again.value).toMatchObject({ id: first.value.id, stored: false, newLinks: [] });
    expect(other.value).toMatchObject({ id: first.value.id, stored: false, newLinks: [`control:${controlB}`] });

    expect(await evidenceRows(sha256(bytes))).toHaveLength(1);
    const links = await fixture.tdb.db.selectFrom('evidence_links').select(['kind', 'target']).where('evidence_id', '=', first.value.id).orderBy('target').execute();
    expect(links).toEqual([controlA, controlB].sort().map((target) => ({ kind: 'control', target })));
    // One file on disk for the three uploads, and no temporaries left behind.
    const shared = path.dirname(path.dirname(fileURLToPath(first.value.storageUri)));
    expect((await filesIn(shared)).filter((file) => file.endsWith(sha256(bytes)))).toHaveLength(1);
    expect(await readdir(path.join(shared, 'tmp'))).toEqual([]);
    // An event for each upload that linked something; none for the repeat.
    expect(await eventsFor(fixture, first.value.id)).toEqual(['evidence.recorded', 'evidence.recorded']);
  });

  it('refuses a file over the size limit part-way through the stream and leaves no file, not even a temporary', async () => {
    const { root, store: own } = await freshStore();
    let pulled = 0;
    function* chunks() {
      for (let i = 0; i < 200; i++) {
        pulled++;
        yield Buffer.alloc(1000, 'a');
      }
    }
    const before = await evidenceCount();
    const result = await ingest(Readable.from(chunks()), { fileName: 'huge.txt', maxBytes: 10_000, into: own });
    expect(result).toMatchObject({ ok: false, refusal: { code: 'evidence_too_large' } });
    expect(pulled).toBeLessThan(200);
    expect(await filesIn(root)).toEqual([]);
    expect(await evidenceCount()).toBe(before);

    // Exactly at the limit is accepted.
    const atLimit = Buffer.from(randomBytes(5_000).toString('hex'));
    expect(await ingest(atLimit, { maxBytes: 10_000, into: own })).toMatchObject({ ok: true, value: { sizeBytes: 10_000, mediaType: 'text/plain' } });
  });

  it('releases the source stream when a file is refused as too large', async () => {
    const { store: own } = await freshStore();
    const content = Readable.from(Array.from({ length: 50 }, () => Buffer.alloc(1000, 'b')));
    const result = await ingest(content, { maxBytes: 5_000, into: own });
    expect(result).toMatchObject({ ok: false, refusal: { code: 'evidence_too_large' } });
    expect(content.destroyed).toBe(true);
  });

  it('refuses executables and unrecognisable binaries, and an empty file, without storing anything', async () => {
    const { root, store: own } = await freshStore();
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(8), Buffer.from([2, 0, 0x3e, 0, 1, 0, 0, 0]), Buffer.alloc(48)]);
    const exe = Buffer.concat([Buffer.from('MZ'), Buffer.from([0x90, 0, 3, 0, 0, 0, 4, 0]), randomBytes(64)]);
    const noise = Buffer.concat([randomBytes(100), Buffer.from([0, 0, 0]), randomBytes(100)]);
    for (const [bytes, fileName] of [[elf, 'notes.txt'], [exe, 'setup.pdf'], [noise, 'data.csv']] as const) {
      const content = Readable.from([bytes]);
      expect(await ingest(content, { fileName, into: own })).toMatchObject({ ok: false, refusal: { code: 'unsupported_media_type' } });
      expect(content.destroyed).toBe(true);
    }
    expect(await ingest(Buffer.alloc(0), { fileName: 'empty.txt', into: own })).toMatchObject({ ok: false, refusal: { code: 'empty_file' } });
    expect(await filesIn(root)).toEqual([]);
  });

  it('accepts UTF-8 text, even with a multi-byte character cut at the sniff boundary, and refuses text that is not UTF-8', async () => {
    // 'a' then 4-byte emoji: the sniffed head ends with 3 bytes of a cut character.
    const text = Buffer.from(`a${'😀'.repeat(1100)} ${token()}`);
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(text.subarray(0, SNIFF_BYTES))).toThrow();
    const result = await ingest(text, { fileName: 'log.txt' });
    expect(result).toMatchObject({ ok: true, value: { mediaType: 'text/plain', sizeBytes: text.length, sha256: sha256(text) } });
    if (result.ok) expect(await readFile(fileURLToPath(result.value.storageUri))).toEqual(text);

    const csv = Buffer.from(`id,name\n1,Zoë\n2,${token()}\n`);
    expect(await ingest(csv, { fileName: 'Users.CSV' })).toMatchObject({ ok: true, value: { mediaType: 'text/csv' } });
    const latin1 = Buffer.from(`caf\xe9 au lait ${token()}`, 'latin1');
    expect(await ingest(latin1, { fileName: 'menu.txt' })).toMatchObject({ ok: false, refusal: { code: 'unsupported_media_type' } });
  });

  // Refused before a byte is read, so the audit row names the file, not a hash.
  it('refuses a viewer (forbidden) and an unknown control (unknown_target), auditing each refusal', async () => {
    const forbiddenBytes = pdf(token());
    const forbiddenName = `forbidden-${token()}.pdf`;
    expect(await ingest(forbiddenBytes, { actor: viewer, fileName: forbiddenName })).toMatchObject({ ok: false, refusal: { code: 'forbidden' } });
    expect(await auditRows(fixture, forbiddenName)).toMatchObject([
      { action: 'evidence.record', outcome: 'refused', actor: `user:${viewer.user?.id}`, detail: { code: 'forbidden' } },
    ]);

    const unknownBytes = pdf(token());
    const unknownName = `unknown-${token()}.pdf`;
    const unknown = await ingest(unknownBytes, { controlIds: ['ZZ-404'], fileName: unknownName });
    expect(unknown).toMatchObject({ ok: false, refusal: { code: 'unknown_target' } });
    if (!unknown.ok) expect(unknown.refusal.message).toContain('ZZ-404');
    expect(await auditRows(fixture, unknownName)).toMatchObject([{ outcome: 'refused', detail: { code: 'unknown_target' } }]);

    expect(await evidenceRows(sha256(forbiddenBytes))).toEqual([]);
    expect(await evidenceRows(sha256(unknownBytes))).toEqual([]);
  });

  it('writes nothing to the store for an upload that is refused (forbidden or unknown control)', async () => {
    const { root, store: own } = await freshStore();
    expect(await ingest(pdf(token()), { actor: viewer, into: own })).toMatchObject({ ok: false, refusal: { code: 'forbidden' } });
    expect(await ingest(pdf(token()), { controlIds: ['ZZ-405'], into: own })).toMatchObject({ ok: false, refusal: { code: 'unknown_target' } });
    expect(await filesIn(root)).toEqual([]);
  });
});
