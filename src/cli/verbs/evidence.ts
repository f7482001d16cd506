/** `projectx evidence …`: upload files as a user (the same checks, hashing and audit as a chat upload), and list what is stored. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ingestEvidence } from '../../connectors/evidence-stores/ingest.ts';
import { deleteQuarantined, listQuarantine, releaseQuarantined } from '../../connectors/evidence-stores/quarantine.ts';
import { resumeStore, storePause } from '../../connectors/evidence-stores/store-health.ts';
import { CLI_ACTOR } from '../../domain/actor.ts';
import { listEvidence } from '../../domain/evidence.ts';
import { parseTaskRef } from '../../domain/tasks.ts';
import { evidencePipelineOf } from '../../module.ts';
import { UsageError, fail, limitOption, must, one, oneArgument, parse, strings } from '../args.ts';
import { userByEmail } from '../context.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

export const evidenceVerb = defineVerb({
  name: 'evidence',
  summary: 'Evidence files: upload them for a control or task, list, show and verify them, deal with quarantined ones and the store',
  commands: [
    {
      name: 'add',
      usage: 'evidence add --as <email> (--control <id> | --task <id>)... [--valid-until <YYYY-MM-DD>] <file>...',
      summary: 'Each file is checked by content, hashed (SHA-256), stored and linked; exit 1 if any file was refused.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { as: { type: 'string' }, control: { type: 'string', multiple: true }, task: { type: 'string', multiple: true }, 'valid-until': { type: 'string' } });
        if (positionals.length === 0) throw new UsageError('evidence add needs at least one file');
        if (strings(values.control).length === 0 && strings(values.task).length === 0) throw new UsageError('give the control (--control <id>) or task (--task <id>) the evidence is for');
        const validText = one(values['valid-until']);
        const validUntil = validText === undefined ? undefined : new Date(`${validText}T00:00:00Z`);
        if (validText !== undefined && (!/^\d{4}-\d{2}-\d{2}$/.test(validText) || Number.isNaN(validUntil!.getTime()))) throw new UsageError('--valid-until takes a date like 2027-06-30');
        const user = await userByEmail(ctx, one(values.as));
        const pipeline = evidencePipelineOf(ctx.modules, ctx.config);
        const taskIds = strings(values.task).map((id) => id.replace(/^t-?/i, ''));
        let failed = 0;
        for (const file of positionals) {
          const info = await stat(file).catch(() => undefined);
          if (!info?.isFile()) {
            io.err(`${file}: not a readable file`);
            failed++;
            continue;
          }
          const result = await ingestEvidence(ctx.domain, pipeline, { surface: 'console', user }, {
            content: createReadStream(file),
            fileName: path.basename(file),
            source: 'cli',
            controlIds: strings(values.control),
            taskIds,
            validUntil,
          });
          if (!result.ok) {
            io.err(`${file}: ${result.refusal.message}`);
            failed++;
            continue;
          }
          if (result.value.outcome === 'held') {
            io.out(`${file}: ${result.value.message} (quarantine ${result.value.quarantineId})`);
            continue;
          }
          const { sha256, sizeBytes, mediaType, stored, newLinks, scanStatus } = result.value;
          io.out(`${file}: sha256 ${sha256} (${sizeBytes} bytes, ${mediaType}, ${scanStatus === 'clean' ? 'scanned clean' : 'not scanned'})${stored ? '' : ', identical content already stored'}${newLinks.length ? `; linked to ${newLinks.join(', ')}` : '; already linked'}`);
        }
        return failed > 0 ? 1 : 0;
      },
    },
    {
      name: 'list',
      usage: 'evidence list [--control <id>] [--task <id>] [--limit <n>]',
      summary: 'Newest first, with what each file is linked to.',
      list: true,
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { control: { type: 'string' }, task: { type: 'string' }, limit: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const task = one(values.task);
        const taskId = task === undefined ? undefined : parseTaskRef(task);
        if (task !== undefined && taskId === undefined) throw new UsageError('--task takes a task like T-42');
        const rows = await listEvidence(ctx.db, { controlId: one(values.control), taskId, limit: limitOption(values.limit) });
        printList(io, rows, {
          line: (row) => `${row.id}\t${row.createdAt.toISOString()}\t${row.originalName ?? '-'}\t${row.mediaType}\t${row.sizeBytes} bytes\t${row.source}${row.uploadedBy ? ` by ${row.uploadedBy}` : ''}\t${row.links.join(',') || 'unlinked'}\tsha256 ${row.sha256}`,
          json: (row) => ({ ...row }),
          empty: 'no evidence',
        });
        return 0;
      },
    },
    {
      name: 'show',
      usage: 'evidence show <id or sha256>',
      summary: 'One evidence file: what it is, where it is stored, how it was scanned, what it counts for and until when.',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        const key = oneArgument(positionals, 'evidence id or sha256').toLowerCase();
        const column = /^[0-9a-f]{64}$/.test(key) ? 'sha256' : /^[0-9a-f-]{36}$/.test(key) ? 'id' : undefined;
        if (!column) throw new UsageError(`"${key}" is neither an evidence id (a UUID) nor a SHA-256`);
        const row = await ctx.db.selectFrom('evidence').leftJoin('users', 'users.id', 'evidence.uploaded_by').selectAll('evidence').select('users.email').where(`evidence.${column}`, '=', key).executeTakeFirst();
        if (!row) fail(`no evidence ${key}`);
        const links = await ctx.db.selectFrom('evidence_links').selectAll().where('evidence_id', '=', row.id).orderBy('created_at').execute();
        const lines = [
          `evidence ${row.id}`,
          `  name        ${row.original_name ?? '-'}`,
          `  type, size  ${row.media_type}, ${row.size_bytes} bytes`,
          `  sha256      ${row.sha256}`,
          `  stored at   ${row.storage_uri}`,
          `  scan        ${row.scan_status}${row.scanned_at ? ` (${row.scanned_at.toISOString()})` : ''}`,
          `  from        ${row.source}${row.email ? ` by ${row.email}` : ''}, ${row.created_at.toISOString()}`,
          ...links.map((link) => `  ${link.kind === 'control' ? 'control' : 'task   '}     ${link.kind === 'task' ? `T-${link.target}` : link.target}${link.valid_until ? `, valid until ${link.valid_until.toISOString().slice(0, 10)}` : ''}`),
        ];
        for (const line of lines) io.out(line);
        return 0;
      },
    },
    {
      name: 'verify',
      usage: 'evidence verify [--limit <n>]',
      summary: 'Re-reads each stored file of the configured store and compares its SHA-256 and size with the record; exit 1 if any differs or is missing.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { limit: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const { store } = evidencePipelineOf(ctx.modules, ctx.config);
        const rows = await ctx.db.selectFrom('evidence').select(['id', 'sha256', 'size_bytes', 'storage_uri', 'original_name']).orderBy('created_at').orderBy('id').limit(limitOption(values.limit, 1000, 1_000_000)).execute();
        let bad = 0;
        let elsewhere = 0;
        for (const row of rows) {
          const name = `${row.id} (${row.original_name ?? row.sha256.slice(0, 12)})`;
          let content;
          try {
            content = await store.open(row.storage_uri);
          } catch (error) {
            if (error instanceof Error && error.message === 'that evidence is not in this store') {
              elsewhere++;
              continue;
            }
            bad++;
            io.err(`${name}: cannot be read: ${error instanceof Error ? error.message : String(error)}`);
            continue;
          }
          const hash = createHash('sha256');
          let size = 0;
          try {
            for await (const chunk of content) {
              hash.update(chunk as Buffer);
              size += (chunk as Buffer).length;
            }
          } catch (error) {
            bad++;
            io.err(`${name}: cannot be read: ${error instanceof Error ? error.message : String(error)}`);
            continue;
          }
          const actual = hash.digest('hex');
          if (actual !== row.sha256 || size !== Number(row.size_bytes)) {
            bad++;
            io.err(`${name}: MISMATCH: the record says sha256 ${row.sha256} (${row.size_bytes} bytes), the store holds sha256 ${actual} (${size} bytes)`);
          }
        }
        const checked = rows.length - elsewhere;
        io.out(`${checked} file${checked === 1 ? '' : 's'} verified in the ${store.kind} store: ${checked - bad} intact, ${bad} not${elsewhere > 0 ? `; ${elsewhere} stored elsewhere (another store) not checked` : ''}`);
        return bad > 0 ? 1 : 0;
      },
    },
    {
      name: 'store status',
      usage: 'evidence store status',
      summary: 'The configured store, and whether ingestion into it is paused (out of space).',
      async run(ctx, args, io) {
        const { positionals } = parse(args, {});
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const { store } = evidencePipelineOf(ctx.modules, ctx.config);
        const pause = await storePause(ctx.db, store);
        io.out(pause ? `${store.kind}: PAUSED since ${pause.since.toISOString()}: ${pause.message}` : `${store.kind}: taking files`);
        return 0;
      },
    },
    {
      name: 'store resume',
      usage: 'evidence store resume --reason "<why>"',
      summary: 'Ends a pause after space was freed; held files are stored on their next retry. Audited.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { reason: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const reason = one(values.reason)?.trim();
        if (!reason) throw new UsageError('say why ingestion may resume (--reason "…"): it is audited');
        const { store } = evidencePipelineOf(ctx.modules, ctx.config);
        if (!(await resumeStore(ctx.domain, store, CLI_ACTOR, reason))) fail(`the ${store.kind} store is not paused`);
        io.out(`the ${store.kind} store takes files again; held files are stored on their next retry (within a minute or so)`);
        return 0;
      },
    },
    {
      name: 'quarantine list',
      usage: 'evidence quarantine list [--all] [--limit <n>]',
      summary: 'Files held back: infected (waiting for an operator), or waiting for a scanner (retried every minute). --all: also those recorded or deleted.',
      list: true,
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { all: { type: 'boolean' }, limit: { type: 'string' } });
        if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
        const rows = await listQuarantine(ctx.db, { all: values.all === true, limit: limitOption(values.limit) });
        printList(io, rows, {
          line: (row) => `${row.id}\t${row.createdAt.toISOString()}\t${row.status}\t${row.reason}${row.signature ? ` (${row.signature})` : ''}\t${row.name ?? '-'}\t${row.sizeBytes} bytes\t${row.source} by ${row.uploader}\t${row.targets.join(',')}${row.status === 'held' && row.reason !== 'infected' ? `\t${row.attempts} scan attempts${row.lastError ? `, last: ${row.lastError}` : ''}` : ''}`,
          json: (row) => ({ ...row }),
          empty: 'nothing in quarantine',
        });
        return 0;
      },
    },
    {
      name: 'quarantine release',
      usage: 'evidence quarantine release <id> --reason "<why>"',
      summary: 'Records a held file without a clean scan (a false positive, a file you vouch for), as released, audited with your reason.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { reason: { type: 'string' } });
        const id = quarantineId(oneArgument(positionals, 'quarantine id'));
        const reason = one(values.reason)?.trim();
        if (!reason) throw new UsageError('say why the file may be released (--reason "…"): it is audited');
        const released = must(await releaseQuarantined(ctx.domain, evidencePipelineOf(ctx.modules, ctx.config), CLI_ACTOR, id, reason));
        io.out(`quarantined file ${id} released: recorded as evidence ${released.evidenceId} (sha256 ${released.sha256})`);
        return 0;
      },
    },
    {
      name: 'quarantine delete',
      usage: 'evidence quarantine delete <id> --reason "<why>"',
      summary: 'Deletes a held file for good (its record stays, as deleted), audited with your reason.',
      async run(ctx, args, io) {
        const { values, positionals } = parse(args, { reason: { type: 'string' } });
        const id = quarantineId(oneArgument(positionals, 'quarantine id'));
        const reason = one(values.reason)?.trim();
        if (!reason) throw new UsageError('say why the file is deleted (--reason "…"): it is audited');
        const deleted = must(await deleteQuarantined(ctx.domain, CLI_ACTOR, id, reason));
        io.out(`quarantined file ${id} (sha256 ${deleted.sha256}) deleted`);
        return 0;
      },
    },
  ],
});

function quarantineId(value: string): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value)) throw new UsageError(`"${value}" is not a quarantine id (a UUID, from: projectx evidence quarantine list)`);
  return value.toLowerCase();
}
