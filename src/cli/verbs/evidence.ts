/** `projectx evidence …`: upload files as a user (the same checks, hashing and audit as a chat upload), and list what is stored. */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ingestEvidence } from '../../connectors/evidence-stores/ingest.ts';
import { deleteQuarantined, listQuarantine, releaseQuarantined } from '../../connectors/evidence-stores/quarantine.ts';
import { CLI_ACTOR } from '../../domain/actor.ts';
import { listEvidence } from '../../domain/evidence.ts';
import { parseTaskRef } from '../../domain/tasks.ts';
import { evidencePipelineOf } from '../../module.ts';
import { UsageError, limitOption, must, one, oneArgument, parse, strings } from '../args.ts';
import { userByEmail } from '../context.ts';
import { printList } from '../output.ts';
import { defineVerb } from '../verb.ts';

export const evidenceVerb = defineVerb({
  name: 'evidence',
  summary: 'Evidence files: upload them for a control or task, list them, deal with quarantined ones',
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
